//! The commands that run on this machine: `serve` (the event loops until a signal), `check`
//! and `reset-admin-token` (the store with no server running), and the dispatch from the
//! command line to them and to the admin commands. Start-up problems are reported as one line
//! saying what to do, with exit code 2.

use crate::cli::{Cli, Command};
use crate::config::{self, Config, Flags};
use crate::dispatch::OpenError;
use crate::{
    admin, datadir, descriptors, dispatch, housekeeping, indexer, logging, metrics, permissions,
    reactor,
};
use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code for a start-up problem the operator must fix (bad config, port, data dir).
const EXIT_SETUP: u8 = 2;

/// Runs the command the command line names; the binary's `main` is only this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            listen,
            data,
            config,
            public_url,
            trusted_proxies,
            metadata,
            blobs,
            fix_permissions,
        } => serve(Flags {
            listen,
            data,
            config,
            public_url,
            trusted_proxies,
            metadata,
            blobs,
            fix_permissions,
        }),
        Command::Check {
            data,
            config,
            quick,
            metadata,
        } => check(
            Flags {
                data,
                config,
                metadata,
                ..Flags::default()
            },
            !quick,
        ),
        Command::Migrate {
            data,
            config,
            metadata,
        } => migrate(Flags {
            data,
            config,
            metadata,
            ..Flags::default()
        }),
        Command::ResetAdminToken {
            data,
            config,
            metadata,
        } => reset_admin_token(Flags {
            data,
            config,
            metadata,
            ..Flags::default()
        }),
        Command::Defaults => {
            say!("{}", config::describe_defaults().trim_end());
            ExitCode::SUCCESS
        }
        cmd @ (Command::Org { .. }
        | Command::Registry { .. }
        | Command::Token { .. }
        | Command::Audit { .. }
        | Command::Package { .. }
        | Command::Search { .. }
        | Command::Gc { .. }) => admin::run(cmd),
    }
}

fn env_vars() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .collect()
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    warn_out!("berth: {msg}");
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
    let (limit, raised_from) = descriptors::raise_limit();
    let fds = descriptors::Plan::new(&cfg, limit);
    fds.log(raised_from);
    // Opened before anything else touches the directory: that another berth holds it is the
    // first thing to say, and its files are not this process's to change.
    let metrics = Arc::new(metrics::Metrics::new(cfg.threads));
    let store = match dispatch::Store::open(&cfg, metrics.clone(), &fds) {
        Ok(s) => Arc::new(s),
        Err(OpenError::InUse(e)) => return fail(e),
        Err(OpenError::Store(e)) if cfg.metadata.is_some() || cfg.blobs.is_some() => {
            return fail(format_args!(
                "cannot open the store: {e}; check that the services it names are running \
                 and that --metadata and --blobs (BERTH_METADATA, BERTH_BLOBS) name them, \
                 with the right credentials"
            ))
        }
        Err(OpenError::Store(e)) => {
            return fail(format_args!(
                "cannot open the store in {}: {e}; run `berth check --data {}` or pass --data DIR",
                dir.path.display(),
                dir.path.display()
            ))
        }
    };
    permissions::audit(&dir.path, cfg.fix_permissions);
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
    let admin = match store.bootstrap_admin(&dir.path, unix_now()) {
        Ok(a) => a,
        Err(e) => {
            return fail(format_args!(
                "cannot create the admin token in {}: {e}",
                dir.path.display()
            ))
        }
    };
    say!(
        "berth: listening on http://{addr}, data in {}",
        dir.path.display()
    );
    if let Some(path) = admin {
        // The path only: the secret itself is never printed or logged.
        say!("berth: admin token written to {}", path.display());
    }
    let housekeeper = match housekeeping::Housekeeper::start(store.clone(), cfg.gc_interval) {
        Ok(h) => h,
        Err(e) => {
            warn_out!("berth: cannot start the housekeeping thread: {e}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    let indexer = if cfg.index_packages {
        match indexer::Indexer::start(store.clone(), cfg.index_limits.clone()) {
            Ok(i) => Some(i),
            Err(e) => {
                warn_out!("berth: cannot start the package indexer thread: {e}");
                return ExitCode::from(EXIT_SETUP);
            }
        }
    } else {
        say!("berth: package indexer off (index_packages = false): pushes are queued for it");
        None
    };
    let end = reactor::serve(&cfg, listener, store, metrics);
    if let Some(i) = indexer {
        i.stop();
    }
    housekeeper.stop();
    // The engine (last Arc<Store> holder was the pool and reactors, now gone) has been
    // dropped and flushed by here, and its lock on the directory with it.
    match end {
        Ok(reactor::ServeEnd::Clean) => {
            say!("berth: stopped");
            ExitCode::SUCCESS
        }
        Ok(reactor::ServeEnd::Failed) => {
            warn_out!("berth: stopped after an internal error (see the log above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            warn_out!("berth: cannot start the event loops: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `rehash`: re-read every blob and compare it with its digest, so bit rot on disk is found.
/// Opens the store of an existing data directory with no server running (it takes the
/// directory's lock), for the commands that work on the store directly.
fn open_offline(flags: Flags) -> Result<(datadir::DataDir, dispatch::Store), ExitCode> {
    let cfg = Config::load(&flags, &env_vars()).map_err(fail)?;
    logging::init(cfg.log_format);
    let dir = datadir::prepare(&cfg.data, false).map_err(fail)?;
    let metrics = Arc::new(metrics::Metrics::new(1));
    let fds = descriptors::Plan::new(&cfg, descriptors::raise_limit().0);
    let store = dispatch::Store::open(&cfg, metrics, &fds).map_err(|e| match e {
        OpenError::InUse(e) => fail(e),
        OpenError::Store(e) => fail(format_args!(
            "cannot open the store in {}: {e}",
            dir.path.display()
        )),
    })?;
    permissions::audit(&dir.path, false);
    Ok((dir, store))
}

fn reset_admin_token(flags: Flags) -> ExitCode {
    let (dir, store) = match open_offline(flags) {
        Ok(o) => o,
        Err(code) => return code,
    };
    match store.reset_admin(&dir.path, unix_now()) {
        Ok((revoked, path)) => {
            if revoked.is_empty() {
                say!("berth: no admin token was active");
            } else {
                say!("berth: revoked admin token(s) {}", revoked.join(", "));
            }
            say!(
                "berth: a new admin token is in {} (mode 0600); the CLI reads it from there",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(format_args!("reset-admin-token failed: {e}")),
    }
}

fn migrate(flags: Flags) -> ExitCode {
    let (dir, store) = match open_offline(flags) {
        Ok(o) => o,
        Err(code) => return code,
    };
    for line in store.repaired() {
        say!("berth: {line}");
    }
    say!(
        "berth: the metadata of the store in {} is at schema version {}",
        dir.path.display(),
        berth_engine::SCHEMA_VERSION
    );
    ExitCode::SUCCESS
}

fn check(flags: Flags, rehash: bool) -> ExitCode {
    let (dir, store) = match open_offline(flags) {
        Ok(o) => o,
        Err(code) => return code,
    };
    match store.check(rehash) {
        Ok(r) => {
            for line in &r.repaired {
                say!("repaired: {line}");
            }
            for line in &r.problems {
                say!("problem: {line}");
            }
            if r.problems.is_empty() {
                say!(
                    "berth: store in {} is consistent ({} repaired)",
                    dir.path.display(),
                    r.repaired.len()
                );
                ExitCode::SUCCESS
            } else {
                say!(
                    "berth: store in {} has {} problem(s)",
                    dir.path.display(),
                    r.problems.len()
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            warn_out!("berth: check failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Wall-clock Unix seconds for the admin token's creation time.
#[allow(clippy::disallowed_methods)] // the main thread, at startup or offline: no event loop runs
fn unix_now() -> u64 {
    crate::clock::unix_seconds(std::time::SystemTime::now())
}
