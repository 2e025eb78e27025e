//! Runs a command with a throwaway PostgreSQL server: `BERTH_TEST_POSTGRES` names it (the
//! URL of a role that may create databases), so the engine's integration suite and the
//! end-to-end tests run their stores on PostgreSQL metadata, each store in a database of its
//! own (`engine/tests/common`, `tests/src/registry.rs`). The server is stopped and its
//! folder removed when the command ends; the command's exit status is this program's.
//!
//! `cargo run -p berth-tests --bin with-postgres -- cargo test -p berth-engine --tests`

use std::process::{Command, ExitCode};

use berth_tests::postgres::Postgres;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: with-postgres COMMAND [ARGS...]");
        return ExitCode::from(2);
    };
    let pg = Postgres::start();
    pg.superuser_sql("ALTER ROLE berth CREATEDB");
    let status = Command::new(program)
        .args(rest)
        .env("BERTH_TEST_POSTGRES", pg.url())
        .status();
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
