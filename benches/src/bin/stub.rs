//! `berth-bench-stub --listen 127.0.0.1:PORT`: the storage-less registry stub (see
//! `berth_benches::stub`), the "loopback ceiling" column of `scripts/bench-compare.sh`.

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = match args.as_slice() {
        [flag, addr] if flag == "--listen" => addr,
        _ => {
            eprintln!("usage: berth-bench-stub --listen 127.0.0.1:PORT");
            return ExitCode::from(2);
        }
    };
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("berth-bench-stub: --listen {addr:?}: {e}");
            return ExitCode::from(2);
        }
    };
    if !addr.ip().is_loopback() {
        eprintln!("berth-bench-stub: listens on loopback addresses only");
        return ExitCode::from(2);
    }
    let l = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("berth-bench-stub: bind {addr}: {e}");
            return ExitCode::from(2);
        }
    };
    match berth_benches::stub::run(l) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-bench-stub: {e}");
            ExitCode::from(1)
        }
    }
}
