//! The Berth OCI registry's server: the command line, the configuration, the data directory,
//! the event loops and workers, the management API, the package index and the web pages
//! (docs/architecture.md, "server/"). The `berth` binary is [`run`].
//!
//! Almost everything is private to the crate, so that what the server is made of can change
//! without a caller to keep in step. What is public is what code outside it needs: [`run`]
//! for the binary and [`untrusted`], the parsers of bytes from the network and the operator,
//! for fuzz targets.

// `unsafe` only where a syscall needs it: the modules that make one allow it, each block
// with its SAFETY comment.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

/// `println!` that ignores a closed stdout: a start-up or shutdown line must never panic.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `eprintln!` that ignores a closed stderr.
macro_rules! warn_out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

mod admin;
mod audit;
mod auth;
mod bootstrap;
mod cli;
mod clock;
mod config;
mod conn;
mod datadir;
#[allow(unsafe_code)] // getrlimit(2) and setrlimit(2)
mod descriptors;
mod dispatch;
mod failure;
mod housekeeping;
#[allow(unsafe_code)] // sched_setscheduler(2) and ioprio_set(2)
mod indexer;
mod logging;
mod metrics;
mod nouns;
mod package;
mod peers;
mod permissions;
mod proxies;
mod reactor;
mod readers;
mod rfc3339;
mod run;
mod secret;
#[allow(unsafe_code)] // sendmsg(2) of a response head and pack bytes in one call
mod send;
mod shared;
pub mod untrusted;
mod web;
mod workers;

pub use run::main as run;
