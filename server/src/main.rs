//! `berth`: the running program of the Berth OCI registry. Everything it does is in the
//! library (`server/src/lib.rs`, docs/architecture.md "server/"); this is its entry point.

#![deny(unsafe_code)]

fn main() -> std::process::ExitCode {
    berth_server::run()
}
