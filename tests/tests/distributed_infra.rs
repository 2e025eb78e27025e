//! The services the distributed mode stands on, as the tests start them: a PostgreSQL that
//! keeps what it committed across a crash, and a three-node Garage cluster that goes on
//! with one node dead and takes it back. The later distributed tests build on these; if
//! one of them fails here, it is the harness, not Berth.

use berth_tests::{Garage, Postgres};

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

/// Writes `bytes` to `key` through node `i` with curl, requiring 200.
fn put(g: &Garage, i: usize, key: &str, bytes: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("body");
    std::fs::write(&file, bytes).expect("write the body");
    let code = g
        .curl(i, key)
        .arg("-T")
        .arg(&file)
        .args(["-o", "/dev/stderr", "-w", "%{http_code}"])
        .run();
    assert_eq!(code.trim(), "200", "PUT {key} through node {i}");
}

/// Reads `key` through node `i` with curl: the status and the body.
fn get(g: &Garage, i: usize, key: &str) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("body");
    let code = g
        .curl(i, key)
        .arg("-o")
        .arg(&file)
        .args(["-w", "%{http_code}"])
        .run();
    (
        code.trim().to_string(),
        std::fs::read(&file).unwrap_or_default(),
    )
}

#[test]
fn garage_three_nodes_serve_s3_with_one_node_down_and_take_it_back() {
    let mut g = Garage::start(3);
    assert_eq!(g.len(), 3);
    assert_eq!(g.region(), "garage");
    assert!(g.key_id().starts_with("GK"), "{}", g.key_id());

    let a = berth_tests::content::random_bytes(300 * 1024);
    put(&g, 0, "infra/a", &a);
    for i in 0..3 {
        let (code, body) = get(&g, i, "infra/a");
        assert_eq!(code, "200", "GET through node {i}");
        assert!(body == a, "node {i} returned other bytes");
    }
    let (code, _) = get(&g, 1, "infra/missing");
    assert_eq!(code, "404");

    // One node down: quorum is two of three, so writes and reads go on.
    g.stop_node(2);
    assert!(!g.is_running(2));
    let b = berth_tests::content::random_bytes(200 * 1024);
    put(&g, 1, "infra/b", &b);
    for i in 0..2 {
        for (key, want) in [("infra/a", &a), ("infra/b", &b)] {
            let (code, body) = get(&g, i, key);
            assert_eq!(code, "200", "GET {key} through node {i} with node 2 down");
            assert!(body == *want, "node {i} returned other bytes for {key}");
        }
    }

    // Back on its own data and ports: it serves what was written while it was down.
    g.start_node(2);
    let (code, body) = get(&g, 2, "infra/b");
    assert_eq!(code, "200", "GET through the restarted node");
    assert!(body == b, "the restarted node returned other bytes");
    put(&g, 2, "infra/c", b"written through the restarted node");
    let (code, body) = get(&g, 0, "infra/c");
    assert_eq!(
        (code.as_str(), &body[..]),
        ("200", &b"written through the restarted node"[..])
    );
}
