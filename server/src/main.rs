//! `berth`: the running program of the Berth OCI registry. Parses the command line, loads
//! the configuration, prepares the data directory and runs the event loops (DESIGN.md,
//! server/). Start-up problems are reported as one line saying what to do, with exit code 2.

#![deny(clippy::undocumented_unsafe_blocks)]

mod cli;
mod config;
mod conn;
mod datadir;
mod dispatch;
mod logging;
mod metrics;
mod reactor;
mod send;
mod web;
mod workers;

use clap::Parser;
use cli::{Cli, Command};
use config::{Config, Flags};
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code for a start-up problem the operator must fix (bad config, port, data dir).
const EXIT_SETUP: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            data,
            config,
        } => serve(Flags {
            listen,
            data,
            config,
        }),
        Command::Check { data, config } => check(Flags {
            listen: None,
            data,
            config,
        }),
        Command::Defaults => {
            print!("{}", config::describe_defaults());
            ExitCode::SUCCESS
        }
    }
}

fn env_vars() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .collect()
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("berth: {msg}");
    ExitCode::from(EXIT_SETUP)
}

fn serve(flags: Flags) -> ExitCode {
    let cfg = match Config::load(&flags, &env_vars()) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    logging::init(cfg.log_format);
    let dir = match datadir::prepare(&cfg.data, true) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let listener = match std::net::TcpListener::bind(cfg.listen) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return fail(format_args!(
                "cannot listen on {}: address in use; pass --listen ADDR or stop the other process",
                cfg.listen
            ))
        }
        Err(e) => {
            return fail(format_args!(
                "cannot listen on {}: {e}; pass --listen ADDR with an address of this machine",
                cfg.listen
            ))
        }
    };
    let addr = listener.local_addr().unwrap_or(cfg.listen);
    let metrics = Arc::new(metrics::Metrics::new(cfg.threads));
    let store = match dispatch::Store::open(&cfg, metrics.clone()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            return fail(format_args!(
                "cannot open the store in {}: {e}; run `berth check --data {}` or pass --data DIR",
                dir.path.display(),
                dir.path.display()
            ))
        }
    };
    println!(
        "berth: listening on http://{addr}, data in {}",
        dir.path.display()
    );
    let end = reactor::serve(&cfg, listener, store, metrics);
    // The engine (last Arc<Store> holder was the pool and reactors, now gone) has been
    // dropped and flushed by here; the lock goes last.
    drop(dir);
    match end {
        Ok(reactor::ServeEnd::Clean) => {
            println!("berth: stopped");
            ExitCode::SUCCESS
        }
        Ok(reactor::ServeEnd::Failed) => {
            eprintln!("berth: stopped after an internal error (see the log above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("berth: cannot start the event loops: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(flags: Flags) -> ExitCode {
    let cfg = match Config::load(&flags, &env_vars()) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    logging::init(cfg.log_format);
    let dir = match datadir::prepare(&cfg.data, false) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let metrics = Arc::new(metrics::Metrics::new(1));
    let store = match dispatch::Store::open(&cfg, metrics) {
        Ok(s) => s,
        Err(e) => {
            return fail(format_args!(
                "cannot open the store in {}: {e}",
                dir.path.display()
            ))
        }
    };
    match store.check() {
        Ok(r) => {
            for line in &r.repaired {
                println!("repaired: {line}");
            }
            for line in &r.problems {
                println!("problem: {line}");
            }
            if r.problems.is_empty() {
                println!(
                    "berth: store in {} is consistent ({} repaired)",
                    dir.path.display(),
                    r.repaired.len()
                );
                ExitCode::SUCCESS
            } else {
                println!(
                    "berth: store in {} has {} problem(s)",
                    dir.path.display(),
                    r.problems.len()
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("berth: check failed: {e}");
            ExitCode::FAILURE
        }
    }
}
