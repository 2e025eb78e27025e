//! The services the distributed mode stands on, as the tests start them: a PostgreSQL that
//! keeps what it committed across a crash, a three-node Garage cluster that goes on with
//! one node dead and takes it back, and the round-robin front that spreads connections
//! over nodes and steps around a dead one. The later distributed tests build on these; if
//! one of them fails here, it is the harness, not Berth.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use berth_tests::{Front, Garage, Postgres};

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

/// A backend that answers each connection with its name and closes; `stop` closes its
/// listener, so connecting to it is refused from then on.
struct Backend {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    fn start(name: &'static str) -> Backend {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a backend");
        let addr = l.local_addr().expect("backend address");
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            for c in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(mut c) = c {
                    // Echo what the client sent after the name, to show bytes flow both ways.
                    let mut got = Vec::new();
                    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = c.read_to_end(&mut got);
                    let _ = c.write_all(format!("{name}:").as_bytes());
                    let _ = c.write_all(&got);
                }
            }
        });
        Backend {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One connection through the front: sends `msg`, half-closes, reads the whole answer
/// (empty if the front closed the connection).
fn ask(front: &Front, msg: &str) -> String {
    let mut c = TcpStream::connect(front.addr()).expect("connect to the front");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    // A front with no backend closes the connection at once, maybe before these: the
    // answer (empty) is what the caller checks.
    let _ = c.write_all(msg.as_bytes());
    let _ = c.shutdown(Shutdown::Write);
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

#[test]
fn front_spreads_connections_round_robin_and_skips_a_dead_backend() {
    let mut backends = vec![
        Backend::start("b0"),
        Backend::start("b1"),
        Backend::start("b2"),
    ];
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let front = Front::start(&addrs);
    assert_eq!(front.backends(), addrs);

    let answers: Vec<String> = (0..9).map(|i| ask(&front, &format!("hello {i}"))).collect();
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(
            a,
            &format!("b{}:hello {i}", i % 3),
            "connection {i} in turn"
        );
    }
    for a in &addrs {
        assert_eq!(front.connections(*a), 3);
    }

    // b1 dies: its turns go to the others, and no client is refused.
    backends[1].stop();
    let answers: Vec<String> = (0..6).map(|_| ask(&front, "x")).collect();
    assert!(
        answers.iter().all(|a| a == "b0:x" || a == "b2:x"),
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|a| *a == "b0:x").count(),
        3,
        "{answers:?}"
    );
    assert_eq!(front.refused(), 0);

    // Backends come and go at runtime.
    front.remove(addrs[1]);
    let b3 = Backend::start("b3");
    front.add(b3.addr);
    assert_eq!(front.backends(), vec![addrs[0], addrs[2], b3.addr]);
    let answers: Vec<String> = (0..3).map(|_| ask(&front, "y")).collect();
    let mut names: Vec<&str> = answers.iter().map(|a| &a[..2]).collect();
    names.sort();
    assert_eq!(names, ["b0", "b2", "b3"], "{answers:?}");

    // With every backend gone the front closes the connection: nothing to answer.
    for b in &mut backends {
        b.stop();
    }
    front.remove(b3.addr);
    drop(b3);
    assert_eq!(ask(&front, "z"), "");
    assert_eq!(front.refused(), 1);

    // A large body both ways, to show the pump carries more than one buffer.
    let big = Backend::start("big");
    front.add(big.addr);
    let msg = "0123456789abcdef".repeat(64 * 1024);
    assert_eq!(ask(&front, &msg), format!("big:{msg}"));
}
