//! Runs a command with a throwaway PostgreSQL server: `BERTH_TEST_POSTGRES` names it (the
//! URL of a role that may create databases), so the engine's integration suite and the
//! end-to-end tests run their stores on PostgreSQL metadata, each store in a database of its
//! own (`engine/tests/common`, `tests/src/registry.rs`). The server is stopped and its
//! folder removed when the command ends; the command's exit status is this program's.
//!
//! `cargo run -p berth-tests --bin with-postgres -- cargo test -p berth-engine --tests`
//!
//! With `--garage` first, it also starts a three-node Garage cluster and names it in
//! `BERTH_TEST_GARAGE`: then every registry the end-to-end tests start without storage of
//! their own is a distributed deployment (a database and a bucket of its own, three
//! `berth serve` nodes, a round-robin front the clients reach them through), so the suite
//! runs against many nodes without sticky sessions (`tests/src/registry.rs`).
//!
//! `cargo run -p berth-tests --bin with-postgres -- --garage cargo test -p berth-tests --test e2e -- skopeo::`

use std::process::{Command, ExitCode};

use berth_tests::postgres::Postgres;
use berth_tests::Garage;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let garage = args.first().is_some_and(|a| a == "--garage");
    if garage {
        args.remove(0);
    }
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: with-postgres [--garage] COMMAND [ARGS...]");
        return ExitCode::from(2);
    };
    let pg = Postgres::start();
    pg.superuser_sql("ALTER ROLE berth CREATEDB");
    let garage = garage.then(|| Garage::start(3));
    let mut cmd = Command::new(program);
    cmd.args(rest).env("BERTH_TEST_POSTGRES", pg.url());
    if let Some(g) = &garage {
        cmd.env("BERTH_TEST_GARAGE", g.env_value());
    }
    let status = cmd.status();
    drop(garage);
    drop(pg);
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("with-postgres: {program} exited with {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("with-postgres: cannot run {program}: {e}");
            ExitCode::FAILURE
        }
    }
}
