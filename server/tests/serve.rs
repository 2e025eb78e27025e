//! The real `berth` binary on a loopback port: push, pull, metrics, shutdown, limits and
//! failure handling, as an authenticated client (see `common`).

// Tests measure wall time and wait for the process: the server's clock rule is not theirs.
#![allow(clippy::disallowed_methods)]

mod common;
use common::*;

#[test]
fn push_pull_metrics_and_sigterm_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start(dir.path());
    let mut c = srv.client();

    let r = c.get("/v2/");
    assert_eq!(r.status, 200);

    // Monolithic POST -> PUT with the whole body.
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let config_digest = sha256(&config);
    let r = c.request("POST", &format!("/v2/{REPO}/blobs/uploads/"), &[], b"");
    assert_eq!(r.status, 202);
    let loc = r.header("location").unwrap().to_string();
    let r = c.request(
        "PUT",
        &format!("{loc}?digest={config_digest}"),
        &[("Content-Type", "application/octet-stream")],
        &config,
    );
    assert_eq!(r.status, 201, "{r:?}");

    // A 64 MiB layer in chunked PATCHes.
    let layer = pattern(64 << 20, 7);
    let layer_digest = push_blob(&mut c, &layer, 3);

    let manifest = image_manifest((&config_digest, config.len()), (&layer_digest, layer.len()));
    let manifest_digest = sha256(manifest.as_bytes());
    let r = c.request(
        "PUT",
        &format!("/v2/{REPO}/manifests/1.0"),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        manifest.as_bytes(),
    );
    assert_eq!(r.status, 201, "{r:?} {}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("docker-content-digest"),
        Some(manifest_digest.as_str())
    );

    // Pulls, on a fresh connection.
    let mut p = srv.client();
    for reference in ["1.0", manifest_digest.as_str()] {
        let r = p.get(&format!("/v2/{REPO}/manifests/{reference}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, manifest.as_bytes());
        assert_eq!(
            r.header("content-type"),
            Some("application/vnd.oci.image.manifest.v1+json")
        );
    }
    let r = p.request(
        "HEAD",
        &format!("/v2/{REPO}/blobs/{layer_digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("67108864"));
    let r = p.get(&format!("/v2/{REPO}/blobs/{layer_digest}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), layer.len());
    assert!(r.body == layer, "64 MiB blob differs from what was pushed");
    let r = p.request(
        "GET",
        &format!("/v2/{REPO}/blobs/{layer_digest}"),
        &[("Range", "bytes=1000000-1999999")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert!(r.body == layer[1_000_000..2_000_000]);
    let r = p.get(&format!("/v2/{REPO}/blobs/{config_digest}"));
    assert_eq!(r.body, config);
    let r = p.get(&format!("/v2/{REPO}/tags/list"));
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("\"1.0\""));
    let r = p.get(&format!("/v2/{REPO}/manifests/nope"));
    assert_eq!(r.status, 404);

    let r = p.get("/metrics");
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    for want in [
        "berth_requests_total{route=",
        "status=\"201\"",
        "berth_connections_open 2",
        "berth_storage_blobs 2",
        "berth_storage_manifests 1",
        "berth_storage_failed_packs 0",
    ] {
        assert!(text.contains(want), "/metrics lacks {want}:\n{text}");
    }
    let sent: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("berth_sent_bytes_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(sent > 64 << 20, "sent {sent}");
    let jobs: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("berth_worker_job_duration_seconds_count "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        jobs >= 3,
        "two blob commits and a manifest put ran on workers: {jobs}"
    );
    assert_eq!(p.get("/healthz").status, 200);
    assert_eq!(p.get("/no/such/page").status, 404);

    // Idle keep-alive connections do not hold up shutdown.
    let t = Instant::now();
    srv.signal(libc::SIGTERM);
    let status = srv.wait(Duration::from_secs(8));
    assert_eq!(status.code(), Some(0));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert!(c.closed_by_server() && p.closed_by_server());
    let out = srv.rest_of_stdout();
    assert!(out.contains("SIGTERM received"), "{out}");
    assert!(out.contains("berth: stopped"), "{out}");

    // What was acknowledged is there after a restart, and the store checks clean.
    let srv = Server::start(dir.path());
    let r = srv.client().get(&format!("/v2/{REPO}/manifests/1.0"));
    assert_eq!(r.body, manifest.as_bytes());
    drop(srv);
    let out = berth(&["check", "--data", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let mut c = srv.client();
    let one = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let auth = srv.auth();
    let two = format!("GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n");
    let three = format!(
        "GET /v2/{REPO}/manifests/latest HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"
    );
    c.stream()
        .write_all(format!("{one}{two}{three}{one}").as_bytes())
        .unwrap();
    assert_eq!(c.response(false).body, b"ok\n");
    assert_eq!(c.response(false).body, b"{}");
    assert_eq!(c.response(false).status, 404);
    assert_eq!(c.response(false).body, b"ok\n");
}

#[test]
fn a_request_in_flight_at_sigterm_finishes_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start(dir.path());
    let mut c = srv.client();
    let r = c.request("POST", &format!("/v2/{REPO}/blobs/uploads/"), &[], b"");
    let loc = r.header("location").unwrap().to_string();
    let data = pattern(1 << 20, 3);
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        srv.auth(),
        data.len()
    );
    c.stream().write_all(head.as_bytes()).unwrap();
    c.stream().write_all(&data[..1000]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    srv.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        srv.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    c.stream().write_all(&data[1000..]).unwrap();
    let r = c.response(false);
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.header("range"), Some("0-1048575"));
    assert_eq!(srv.wait(Duration::from_secs(8)).code(), Some(0));
}

#[test]
fn a_port_in_use_is_reported_with_the_fix_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = berth(&[
        "serve",
        "--listen",
        &addr,
        "--data",
        dir.path().to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "berth: cannot listen on {addr}: address in use; pass --listen ADDR or stop the other process"
        )),
        "{err}"
    );
}

#[test]
fn an_unusable_data_directory_is_reported_with_exit_code_2() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let below_file = file.path().join("data");
    let out = berth(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        below_file.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot be created") && err.contains("--data"),
        "{err}"
    );

    // A directory another berth holds.
    let dir = tempfile::tempdir().unwrap();
    let _first = Server::start(dir.path());
    let out = serve_command(dir.path(), &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another berth (pid"), "{err}");
}

#[test]
fn a_bad_setting_is_reported_with_its_key_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = berth(&["serve", "--data", dir.path().to_str().unwrap()])
        .env("BERTH_IDLE_TIMEOUT", "forever")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`idle_timeout`") && err.contains("BERTH_IDLE_TIMEOUT"),
        "{err}"
    );
}

#[test]
fn check_reports_a_missing_store_and_passes_on_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent");
    let out = berth(&["check", "--data", missing.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    drop(Server::start(dir.path()));
    let out = berth(&["check", "--data", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("consistent"));
}

#[test]
fn a_client_that_half_closes_gets_its_answer_then_the_close() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let mut c = srv.client();
    c.stream()
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    c.stream().shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(c.response(false).body, b"ok\n");
    assert!(c.closed_by_server());
}

#[test]
fn idle_and_slow_connections_are_closed_at_their_deadlines() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(
        dir.path(),
        &[("BERTH_IDLE_TIMEOUT", "1s"), ("BERTH_HEADER_TIMEOUT", "1s")],
    );
    let mut idle = srv.client();
    assert_eq!(idle.get("/healthz").status, 200);
    let mut slow = srv.client();
    slow.stream()
        .write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .unwrap();
    let mut busy = srv.client();
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1500) {
        assert_eq!(busy.get("/healthz").status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        idle.closed_by_server(),
        "idle connection outlived idle_timeout"
    );
    assert!(slow.closed_by_server(), "slow head outlived header_timeout");
    assert_eq!(
        busy.get("/healthz").status,
        200,
        "active connection was closed"
    );
}

#[test]
fn connections_spread_evenly_over_the_event_loops() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(dir.path(), &[("BERTH_THREADS", "3")]);
    let mut conns: Vec<Client> = (0..30).map(|_| srv.client()).collect();
    for c in &mut conns {
        assert_eq!(c.get("/healthz").status, 200);
    }
    let text = String::from_utf8(conns[0].get("/metrics").body).unwrap();
    let per: Vec<i64> = text
        .lines()
        .filter(|l| l.starts_with("berth_reactor_connections_open{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(per.len(), 3, "{text}");
    assert_eq!(per.iter().sum::<i64>(), 30);
    let (lo, hi) = (per.iter().min().unwrap(), per.iter().max().unwrap());
    assert!(hi - lo <= 2, "uneven: {per:?}");
}

#[test]
fn concurrent_pushes_and_pulls_each_get_their_own_bytes_back() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(dir.path(), &[("BERTH_WORKERS", "2")]);
    let addr = srv.addr;
    let threads: Vec<_> = (0..8u32)
        .map(|i| {
            let auth = srv.auth();
            std::thread::spawn(move || {
                let mut c = Client::connect_as(addr, &auth);
                // Sizes straddle the shared-pack threshold (1 MiB).
                let data = pattern(300_000 + (i as usize) * 150_000, 100 + i);
                let d = push_blob(&mut c, &data, 1 + i as usize % 3);
                for _ in 0..3 {
                    let r = c.get(&format!("/v2/{REPO}/blobs/{d}"));
                    assert_eq!(r.status, 200);
                    assert!(r.body == data, "blob {i} came back different");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let text = String::from_utf8(srv.client().get("/metrics").body).unwrap();
    assert!(text.contains("berth_storage_blobs 8"), "{text}");
    assert!(
        text.contains("berth_worker_jobs_in_flight 1\n"),
        "only /metrics itself: {text}"
    );
}

#[test]
fn connections_beyond_the_descriptor_limit_wait_and_are_served_once_others_close() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = berth(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        dir.path().to_str().unwrap(),
    ]);
    // SAFETY: between fork and exec only setrlimit runs, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let srv = Server::spawn(cmd);
    let mut waiting: Vec<TcpStream> = (0..90)
        .map(|_| {
            let mut s = TcpStream::connect(srv.addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            s
        })
        .collect();
    let t = Instant::now();
    let mut rounds = 0;
    while !waiting.is_empty() && t.elapsed() < Duration::from_secs(20) {
        rounds += 1;
        // Answered connections stay open until the round ends, then close, which frees the
        // server's descriptors: within one round at most the limit's worth can be answered,
        // so the later ones must wait for a later round, however fast the server is.
        let mut answered = Vec::new();
        for mut s in std::mem::take(&mut waiting) {
            let mut b = [0u8; 256];
            if matches!(s.read(&mut b), Ok(n) if n > 0 && b.starts_with(b"HTTP/1.1 200")) {
                answered.push(s);
            } else {
                waiting.push(s);
            }
        }
        drop(answered);
    }
    assert!(
        waiting.is_empty(),
        "{} connections never served after {rounds} rounds",
        waiting.len()
    );
    assert!(rounds > 1, "the limit never bit; the test proves nothing");
}

#[test]
fn a_truncated_pack_fails_check_and_its_blob_is_cut_short_not_hung() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(3_000_000, 9); // above the shared-pack threshold: a pack of its own
    let digest = {
        let srv = Server::start(dir.path());
        push_blob(&mut srv.client(), &data, 1)
    };
    let pack = std::fs::read_dir(dir.path().join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(1_000_000)
        .unwrap();

    let out = berth(&["check", "--data", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("problem:"));

    // Serving what is left: the response promises 3 MB, the pack has less. The connection
    // must end (the client sees a short body), not wait forever.
    let srv = Server::start(dir.path());
    let mut c = srv.client();
    c.send("GET", &format!("/v2/{REPO}/blobs/{digest}"), &[], b"");
    let mut got = Vec::new();
    let t = Instant::now();
    loop {
        let mut b = vec![0u8; 1 << 16];
        match c.stream().read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "connection left hanging"
        );
    }
    if got.starts_with(b"HTTP/1.1 200") {
        assert!(
            got.len() < 3_000_000,
            "a short pack cannot yield the whole blob"
        );
    }
    // And the server still serves others.
    assert_eq!(srv.client().get("/healthz").status, 200);
}

#[test]
fn a_client_that_stops_reading_is_dropped_after_the_send_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(dir.path(), &[("BERTH_SEND_TIMEOUT", "1s")]);
    let data = pattern(64 << 20, 5);
    let digest = push_blob(&mut srv.client(), &data, 1);
    let mut c = srv.client();
    c.send("GET", &format!("/v2/{REPO}/blobs/{digest}"), &[], b"");
    std::thread::sleep(Duration::from_millis(2500));
    // Drain what the kernel buffered; the server must have given up before the end.
    let mut total = 0usize;
    loop {
        let mut b = vec![0u8; 1 << 20];
        match c.stream().read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(total < 64 << 20, "the whole blob arrived: {total} bytes");
    let text = String::from_utf8(srv.client().get("/metrics").body).unwrap();
    assert!(text.contains("berth_connections_open 1\n"), "{text}");
}

/// Drops every pack's pages from the page cache, as if nobody had read them for a while.
fn evict_packs(data: &std::path::Path) {
    use std::os::fd::AsRawFd;
    for e in std::fs::read_dir(data.join("packs")).unwrap() {
        let f = std::fs::File::open(e.unwrap().path()).unwrap();
        // SAFETY: fadvise only advises the kernel about an open descriptor's pages.
        let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(r, 0, "posix_fadvise");
    }
}

/// Every pack's pages, read in and locked in memory while this lives: the page cache is
/// otherwise free to drop them at any moment (here a DAMON scheme pages out unmapped file
/// pages of idle-looking memory within a second), which would send a "cached" read to disk.
struct LockedPacks(Vec<(*mut libc::c_void, usize)>);

impl LockedPacks {
    fn new(data: &std::path::Path) -> LockedPacks {
        use std::os::fd::AsRawFd;
        let mut maps = Vec::new();
        for e in std::fs::read_dir(data.join("packs")).unwrap() {
            let f = std::fs::File::open(e.unwrap().path()).unwrap();
            let len = f.metadata().unwrap().len() as usize;
            if len == 0 {
                continue;
            }
            // SAFETY: a fresh read-only shared map of an open file, `len` bytes long; it
            // stays valid after the descriptor closes and is unmapped only in `drop`.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_SHARED | libc::MAP_POPULATE,
                    f.as_raw_fd(),
                    0,
                )
            };
            assert_ne!(
                p,
                libc::MAP_FAILED,
                "mmap: {}",
                std::io::Error::last_os_error()
            );
            maps.push((p, len));
            // Mapped pages are already spared by the DAMON scheme; locked ones by any
            // reclaim. Without CAP_IPC_LOCK the lock may exceed RLIMIT_MEMLOCK: the map
            // alone must then do.
            // SAFETY: `p..p + len` is the live map just made.
            unsafe { libc::mlock(p, len) };
        }
        LockedPacks(maps)
    }
}

impl Drop for LockedPacks {
    fn drop(&mut self) {
        for &(p, len) in &self.0 {
            // SAFETY: each entry is a live map made in `new`, unmapped once, here.
            unsafe { libc::munmap(p, len) };
        }
    }
}

/// A blob whose pages are not in memory is read by the reader threads, window by window
/// and ahead of the socket, and arrives whole and in order; bytes in memory need no reader.
#[test]
fn blob_bytes_not_in_memory_come_through_the_readers() {
    // On disk: pages of a memory-backed temporary folder cannot be dropped.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let srv = Server::start_with(dir.path(), &[("BERTH_READERS", "2")]);
    let mut c = srv.client();
    let data = pattern((9 << 20) + 12_345, 11);
    let d = push_blob(&mut c, &data, 2);
    let reads = |c: &mut Client| counter(&c.get("/metrics").text(), "berth_pack_disk_reads_total");
    assert_eq!(reads(&mut c), 0);

    evict_packs(dir.path());
    let r = c.get(&format!("/v2/{REPO}/blobs/{d}"));
    assert_eq!(r.status, 200);
    assert!(r.body == data, "blob came back different");
    // Five windows of at most 2 MiB.
    assert_eq!(reads(&mut c), 5);

    // In memory (and kept there): no more reads.
    let locked = LockedPacks::new(dir.path());
    let r = c.get(&format!("/v2/{REPO}/blobs/{d}"));
    assert!(r.status == 200 && r.body == data);
    assert_eq!(reads(&mut c), 5);
    drop(locked);

    // A range from the middle, cold again.
    evict_packs(dir.path());
    let (from, to) = (3_000_001usize, 7_654_321usize);
    let r = c.request(
        "GET",
        &format!("/v2/{REPO}/blobs/{d}"),
        &[("Range", &format!("bytes={from}-{to}"))],
        b"",
    );
    assert_eq!(r.status, 206);
    assert!(r.body == data[from..=to], "range came back different");
    assert_eq!(reads(&mut c), 5 + 3);
}

/// Responses carry the current time in `Date` (RFC 9110 §6.6.1), as an HTTP date.
#[test]
fn responses_carry_the_current_date() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let mut c = srv.client();
    for path in ["/v2/", "/v2/no/such/manifests/x", "/healthz"] {
        let r = c.get(path);
        let d = r
            .header("date")
            .unwrap_or_else(|| panic!("no Date on {path}: {r:?}"));
        let t = httpdate::parse_http_date(d).unwrap_or_else(|e| panic!("{d:?}: {e}"));
        let off = match t.duration_since(std::time::SystemTime::now()) {
            Ok(ahead) => ahead,
            Err(behind) => behind.duration(),
        };
        assert!(off < Duration::from_secs(60), "Date {d} is {off:?} off");
    }
}

/// One request on a new connection, which the server has closed by the time this returns
/// (so its slot is free); `None` if the server closed it without an answer.
fn try_get(addr: SocketAddr, path: &str) -> Option<Response> {
    let opts = berth_client::Options {
        read_timeout: Duration::from_secs(10),
        reconnect: false,
        ..Default::default()
    };
    let mut c = berth_client::HttpConn::new(vec![addr], "x", opts);
    let close = [("Connection", "close")];
    match c.request("GET", path, &close, &[], berth_client::Sink::Keep) {
        Ok(r) => {
            let _ = c.socket().unwrap().read_to_end(&mut Vec::new());
            Some(r)
        }
        Err(berth_client::Error::Closed) => None,
        Err(berth_client::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
        Err(e) => panic!("GET {path}: {e}"),
    }
}

/// `try_get` until it is answered (within 10 s).
fn get_when_let_in(addr: SocketAddr, path: &str) -> Response {
    let t = Instant::now();
    loop {
        if let Some(r) = try_get(addr, path) {
            return r;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "never let in");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One address may hold at most `max_connections_per_ip` connections: one more is closed
/// at once, unread, and counted; when one closes, the address may connect again.
#[test]
fn connections_past_the_per_address_cap_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(dir.path(), &[("BERTH_MAX_CONNECTIONS_PER_IP", "3")]);
    // Until the server has seen the provisioning connections close, only the one asking.
    let t = Instant::now();
    while !get_when_let_in(srv.addr, "/metrics")
        .text()
        .contains("\nberth_connections_open 1\n")
    {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut open: Vec<Client> = (0..3).map(|_| srv.anonymous()).collect();
    for c in &mut open {
        assert_eq!(c.get("/healthz").status, 200);
    }
    let fourth = try_get(srv.addr, "/healthz");
    assert!(
        fourth.is_none(),
        "a fourth is closed unanswered: {fourth:?}"
    );
    drop(open.pop());
    assert_eq!(get_when_let_in(srv.addr, "/healthz").status, 200);
    drop(open);
    let metrics = get_when_let_in(srv.addr, "/metrics").text();
    assert!(counter(&metrics, "berth_connections_refused_total") >= 1);
}
