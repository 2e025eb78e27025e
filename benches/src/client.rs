//! The load generator's connections: the workspace's HTTP/1.1 client (`berth-client`) with a
//! read buffer large enough that pulling a big blob costs few syscalls, and a bound on every
//! socket operation so a stalled server cannot stall the run.

use crate::target::Target;
pub use berth_client::{Error as ClientError, HttpConn, Options, Response, Sink};
use std::time::Duration;

/// Read buffer per connection.
const BUF_BYTES: usize = 1 << 20;
/// No single socket operation may stall the run for longer than this.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// A keep-alive connection to `target`, opened now so that connecting stays outside any
/// timed section. Bodies are counted and dropped or kept ([`Sink`]) without a size limit:
/// the load generator sizes what it asks for.
pub fn connect(target: &Target) -> Result<HttpConn, ClientError> {
    let opts = Options {
        connect_timeout: IO_TIMEOUT,
        read_timeout: IO_TIMEOUT,
        write_timeout: IO_TIMEOUT,
        max_body: u64::MAX,
        buffer: BUF_BYTES,
        reconnect: true,
    };
    HttpConn::connect(target.addr, target.authority.clone(), opts)
}
