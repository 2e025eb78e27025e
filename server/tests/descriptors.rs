//! The real `berth` binary under a small descriptor limit (`ulimit -n`): every blob over
//! `small_blob_bytes` is a pack file of its own, and the server must keep serving however
//! many there are; running out of descriptors anyway is logged and counted.

// Tests measure wall time and wait for the process: the server's clock rule is not theirs.
#![allow(clippy::disallowed_methods)]

mod common;
use common::*;
use std::os::unix::process::CommandExt;

/// `berth serve` with soft and hard `RLIMIT_NOFILE` at `limit`, its log in `log`.
fn serve_limited(
    data: &std::path::Path,
    log: &std::path::Path,
    limit: u64,
    env: &[(&str, &str)],
) -> Server {
    let mut cmd = serve_command(data, &[]);
    // Two event loops whatever the machine: each holds descriptors of its own.
    cmd.env("BERTH_THREADS", "2").envs(env.iter().copied());
    let lim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: only setrlimit, async-signal-safe, between fork and exec; `lim` is copied in.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Server::spawn_logging_to(cmd, Stdio::from(std::fs::File::create(log).unwrap()))
}

/// Pushes `data` in one POST with `?digest=`; the status.
fn push_whole(c: &mut Client, data: &[u8]) -> Response {
    c.request(
        "POST",
        &format!("/v2/{REPO}/blobs/uploads/?digest={}", sha256(data)),
        &[("Content-Type", "application/octet-stream")],
        data,
    )
}

const BLOBS: u32 = 300;
const BLOB_LEN: usize = 24 << 10;

fn blob(i: u32) -> Vec<u8> {
    pattern(BLOB_LEN, i + 1)
}

/// Under `ulimit -n 128`, many more blobs than the server can keep open are pushed and
/// pulled in turn, then all pulled again: every request is answered, byte-exact, and no
/// descriptor ran out.
#[test]
fn more_large_blobs_than_descriptors_are_all_pushed_and_pulled() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let data = dir.path().join("data");
    let srv = serve_limited(
        &data,
        &log,
        128,
        &[("BERTH_SMALL_BLOB_BYTES", "4KiB"), ("BERTH_LOG", "info")],
    );
    let mut c = srv.client();
    for i in 0..BLOBS {
        let b = blob(i);
        let r = push_whole(&mut c, &b);
        assert_eq!(r.status, 201, "push {i}: {r:?}");
        let r = c.get(&format!("/v2/{REPO}/blobs/{}", sha256(&b)));
        assert_eq!(r.status, 200, "pull {i}: {}", r.text());
        assert!(r.body == b, "pull {i}: other bytes");
    }
    for i in (0..BLOBS).rev() {
        let b = blob(i);
        let r = c.get(&format!("/v2/{REPO}/blobs/{}", sha256(&b)));
        assert_eq!(r.status, 200, "second pull {i}: {}", r.text());
        assert!(r.body == b, "second pull {i}: other bytes");
    }
    let text = c.get("/metrics").text();
    assert_eq!(counter(&text, "berth_descriptors_exhausted_total"), 0);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("open_packs") && log.contains("128"),
        "the budget's derivation is logged at start:\n{log}"
    );
}

/// With the open-pack budget forced far past what `ulimit -n` allows, descriptors run out:
/// each time is counted in /metrics and reported at ERROR (not once per failure), and the
/// server goes on answering.
#[test]
fn running_out_of_descriptors_is_logged_at_error_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let data = dir.path().join("data");
    let srv = serve_limited(
        &data,
        &log,
        128,
        &[
            ("BERTH_SMALL_BLOB_BYTES", "4KiB"),
            ("BERTH_OPEN_PACKS", "100000"),
        ],
    );
    let mut c = srv.client();
    // Connections held open take descriptors too, so the packs kept open soon meet them.
    let mut held = Vec::new();
    for i in 0..BLOBS {
        let b = blob(i);
        let _ = push_whole(&mut c, &b);
        let _ = c.get(&format!("/v2/{REPO}/blobs/{}", sha256(&b)));
        if i % 4 == 0 && held.len() < 60 {
            if let Ok(s) = TcpStream::connect(srv.addr) {
                held.push(s);
            }
        }
    }
    drop(held);
    let text = c.get("/metrics").text();
    let n = counter(&text, "berth_descriptors_exhausted_total");
    assert!(n > 0, "{text}");
    let log = std::fs::read_to_string(&log).unwrap();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("descriptors"))
        .collect();
    assert!(
        !errors.is_empty(),
        "no ERROR line about descriptors:\n{log}"
    );
    assert!(
        errors.len() < n as usize || n == 1,
        "one ERROR line per failure ({n}): not rate-limited:\n{log}"
    );
    assert!(c.get("/v2/").status == 200, "still answering");
}

/// Connections past what the limit allows: the failed accepts are counted and reported, the
/// event loop waits for descriptors to come back instead of spinning, and once the crowd
/// leaves a new client is served.
#[test]
fn accepting_past_the_limit_is_reported_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let srv = serve_limited(&dir.path().join("data"), &log, 64, &[]);
    let mut c = srv.client();
    let crowd: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(srv.addr).ok())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let n = loop {
        let n = counter(
            &c.get("/metrics").text(),
            "berth_descriptors_exhausted_total",
        );
        if n > 0 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(n > 0, "no failed accept counted");
    drop(crowd);
    let mut fresh = srv.client();
    assert_eq!(fresh.get("/v2/").status, 200);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("accept a connection")),
        "{log}"
    );
}
