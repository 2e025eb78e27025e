//! The services the distributed mode stands on, as the tests start them: a PostgreSQL that
//! keeps what it committed across a crash. The later distributed tests build on these; if
//! one of them fails here, it is the harness, not Berth.

use berth_tests::Postgres;

#[test]
fn postgres_accepts_sql_and_keeps_committed_rows_across_a_crash() {
    let mut pg = Postgres::start();
    assert!(
        pg.url().starts_with("postgres://berth:") && pg.url().ends_with("/berth"),
        "{}",
        pg.url()
    );
    assert_eq!(
        pg.sql("SELECT current_user, current_database()").trim(),
        "berth|berth"
    );
    assert_eq!(pg.sql("SHOW fsync").trim(), "on");
    // The role logs in with its password over TCP: a wrong one is refused.
    let psql = std::path::Path::new(berth_tests::postgres::BIN_DIR).join("psql");
    let wrong = berth_tests::Cmd::new(&psql)
        .args(["-X", "-h", "127.0.0.1", "-p", &pg.addr().port().to_string()])
        .args(["-U", "berth", "-d", "berth", "-c", "SELECT 1"])
        .env("PGPASSWORD", "not-the-password")
        .env("PGPASSFILE", "/dev/null")
        .output()
        .1;
    assert!(!wrong.status.success(), "a wrong password was accepted");
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );

    pg.sql("CREATE TABLE t (k int PRIMARY KEY, v text NOT NULL)");
    pg.sql("INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g");
    // `stop` is an immediate shutdown: no checkpoint, recovery replays the WAL.
    pg.stop();
    assert!(
        pg.try_sql("SELECT 1").is_err(),
        "PostgreSQL still answers after stop"
    );
    pg.start_again();
    assert_eq!(
        pg.sql("SELECT count(*), max(v) FROM t").trim(),
        "1000|row 999"
    );
    pg.sql("INSERT INTO t VALUES (1001, 'after restart')");
    assert_eq!(
        pg.sql("SELECT v FROM t WHERE k = 1001").trim(),
        "after restart"
    );
}
