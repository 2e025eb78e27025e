//! One HTTP/1.1 connection: `handle_input` in, `poll_output` out. Dispatches over the
//! `http` and `oci` modules; parses nothing itself.
//!
//! SKELETON: the public surface below is the contract the server drives. Bodies are to be
//! written.

use crate::limits::Limits;
use crate::need::{BlobHandle, Need, NeedId, Reply};
use bytes::Bytes;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

/// Something that happened to the connection.
#[derive(Debug)]
pub enum Input {
    /// `n` bytes were read into the slice last returned by `recv_buf()`.
    Recv { now: Instant, n: usize },
    /// The peer closed its sending side.
    Eof { now: Instant },
    /// The answer to the need `id`.
    Reply {
        now: Instant,
        id: NeedId,
        reply: Reply,
    },
    /// `deadline()` has passed.
    Timeout(Instant),
}

/// Something the connection wants done. Drain with `poll_output()` until `None` after
/// every `handle_input`.
#[derive(Debug)]
pub enum Output<'c> {
    /// Write these bytes to the socket, in order with everything else.
    Transmit(Bytes),
    /// Write `range` (relative to the blob's first byte) of the blob at `blob`, after
    /// everything transmitted before it.
    SendBlob { blob: BlobHandle, range: Range<u64> },
    /// Answer with exactly one `Input::Reply { id, .. }`. While a need is outstanding the
    /// connection produces no other output and `wants_read()` is false.
    Need(NeedId, Need<'c>),
    /// One request has been fully answered: for the access log and metrics.
    Done(RequestRecord),
    /// Flush what was queued, then close the socket.
    Close,
}

/// A finished request, for the access log and metrics. Never carries header values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// Request target path (no query string).
    pub path: String,
    /// Low-cardinality route name for metrics, e.g. `blob_get`, `manifest_put`, `web`.
    pub route: &'static str,
    pub status: u16,
    /// Body bytes received.
    pub bytes_in: u64,
    /// Body bytes sent (including blob bytes handed out with `SendBlob`).
    pub bytes_out: u64,
    pub started: Instant,
    pub finished: Instant,
}

/// The server drove the connection wrongly. Never caused by peer data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Misuse {
    #[error("reply for {0:?}, which is not the outstanding need")]
    UnexpectedReply(NeedId),
    #[error("input after the connection closed")]
    Closed,
    #[error("recv of {0} bytes exceeds the buffer handed out")]
    RecvOverflow(usize),
}

/// One HTTP/1.1 connection's protocol state.
pub struct Connection {
    limits: Arc<Limits>,
}

impl Connection {
    pub fn new(limits: Arc<Limits>, now: Instant) -> Connection {
        let _ = now;
        Connection { limits }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Spare space to read socket bytes into; report how many with `Input::Recv`.
    /// Empty when `wants_read()` is false.
    pub fn recv_buf(&mut self) -> &mut [u8] {
        &mut []
    }

    pub fn handle_input(&mut self, input: Input) -> Result<(), Misuse> {
        let _ = input;
        Ok(())
    }

    pub fn poll_output(&mut self) -> Option<Output<'_>> {
        None
    }

    /// The earliest instant at which `Input::Timeout` must be delivered, if any.
    pub fn deadline(&self) -> Option<Instant> {
        None
    }

    /// Whether the connection wants more bytes from the socket now.
    pub fn wants_read(&self) -> bool {
        false
    }

    /// Whether the connection has closed (after `Output::Close` was returned).
    pub fn is_closed(&self) -> bool {
        false
    }
}
