//! What clients and operators see when the store fails: internal errors carry a request id,
//! not engine text; a full disk refuses pushes with 507 and heals without a restart.

// Tests wait for the server's log: the server's clock rule is not theirs.
#![allow(clippy::disallowed_methods)]

mod common;
use common::*;

use std::path::{Path, PathBuf};

/// A tmpfs mounted for one test, unmounted (lazily, so a server still holding files cannot
/// keep it) when dropped, also when the test fails.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = std::env::temp_dir().join(format!(
            "berth-tmpfs-{}-{}",
            std::process::id(),
            sha256(size.as_bytes()).get(7..15).unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount(8)");
        assert!(
            st.success(),
            "this test needs a tmpfs at {} (run it as root, with mount(8)): {st}",
            dir.display()
        );
        Tmpfs { dir }
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(st.success(), "remount {}: {st}", self.dir.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// POST, one PATCH, PUT: the first answer that is not the expected one, or the digest.
fn try_push(c: &mut Client, data: &[u8]) -> Result<String, Response> {
    let digest = sha256(data);
    let r = c.request("POST", &format!("/v2/{REPO}/blobs/uploads/"), &[], b"");
    if r.status != 202 {
        return Err(r);
    }
    let loc = r.header("location").unwrap().to_string();
    let r = c.request(
        "PATCH",
        &loc,
        &[("Content-Type", "application/octet-stream")],
        data,
    );
    if r.status != 202 {
        return Err(r);
    }
    let loc = r.header("location").unwrap().to_string();
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c.request("PUT", &format!("{loc}{sep}digest={digest}"), &[], b"");
    if r.status != 201 {
        return Err(r);
    }
    Ok(digest)
}

/// Nothing the engine says about itself reaches a client: no path, no database text.
fn assert_no_engine_text(r: &Response, data: &Path) {
    let t = r.text();
    for leak in [
        data.to_str().unwrap(),
        "storage error",
        "metadata database",
        "redb",
        "No space left",
        ".pack",
    ] {
        assert!(!t.contains(leak), "{leak:?} sent to a client: {r:?}");
    }
}

/// Writes zeros to `path` until the filesystem has no room left.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 << 10];
    loop {
        if f.write_all(&block).is_err() {
            break;
        }
    }
    // The last bytes too, a byte at a time.
    while f.write_all(&[0u8]).is_ok() {}
}

fn log_text(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// The first line of the log at `p` that `want` accepts, waiting for the logger to write it.
fn log_line(p: &Path, want: impl Fn(&str) -> bool) -> String {
    let t = Instant::now();
    loop {
        if let Some(l) = log_text(p).lines().find(|l| want(l)) {
            return l.to_string();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no such log line in:\n{}",
            log_text(p)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_internal_error_sends_a_request_id_and_logs_the_detail_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log_path = dir.path().join("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = berth(&["serve", "--listen", "127.0.0.1:0", "--data"]);
    cmd.arg(&data);
    let srv = Server::spawn_logging_to(cmd, Stdio::from(log));
    // Uploads cannot be created once their folder is gone: the engine's error names it.
    std::fs::remove_dir_all(data.join("uploads")).unwrap();
    let r = srv
        .client()
        .request("POST", &format!("/v2/{REPO}/blobs/uploads/"), &[], b"");
    assert_eq!(r.status, 500, "{r:?}");
    assert_no_engine_text(&r, &data);
    let v = r.json();
    assert_eq!(v["errors"][0]["code"], "UNKNOWN", "{r:?}");
    let detail = v["errors"][0]["detail"].as_str().unwrap().to_string();
    let id = detail
        .strip_prefix("internal error (request id ")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no request id in {detail:?}"));
    assert!(id.len() >= 8, "{id}");
    let line = log_line(&log_path, |l| l.contains(id));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("uploads"), "the detail is logged: {line}");
}

#[test]
fn a_full_disk_refuses_pushes_with_507_and_heals_without_a_restart() {
    let fs = Tmpfs::mount("48m");
    let dir = tempfile::tempdir().unwrap();
    let data = fs.dir.join("data");
    let log_path = dir.path().join("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut cmd = berth(&["serve", "--listen", "127.0.0.1:0", "--data"]);
    cmd.arg(&data)
        .env("BERTH_LOG", "info")
        .env("BERTH_ACCESS_LOG", "false")
        .env("BERTH_MIN_FREE_SPACE", "8MiB");
    let mut srv = Server::spawn_logging_to(cmd, Stdio::from(log));
    let mut c = srv.client();
    let mut admin = srv.admin_client();

    // Pushes go on until the reserve is reached, then are refused up front with 507.
    let mut pushed = Vec::new();
    let refused = loop {
        assert!(pushed.len() < 40, "48 MiB never filled");
        let seed = pushed.len() as u32 + 1;
        let size = if seed.is_multiple_of(2) {
            2 << 20
        } else {
            900 << 10
        };
        match try_push(&mut c, &pattern(size, seed)) {
            Ok(d) => pushed.push(d),
            Err(r) => break r,
        }
    };
    assert!(pushed.len() >= 10, "pushed only {}", pushed.len());
    assert_eq!(refused.status, 507, "{refused:?}");
    assert_no_engine_text(&refused, &data);
    let v = refused.json();
    assert_eq!(v["errors"][0]["code"], "DENIED", "{refused:?}");
    let msg = v["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("store is full"), "{msg}");
    assert!(msg.contains("min_free_space"), "{msg}");
    // Below the reserve, deletes and collections still commit.
    let r = c.request(
        "DELETE",
        &format!("/v2/{REPO}/blobs/{}", pushed.pop().unwrap()),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "{r:?}");
    let r = admin.json("POST", "/api/v1/gc", "{}");
    assert_eq!(r.status, 200, "{r:?}");

    // Something else takes the last bytes; metadata commits then fail.
    let filler = fs.dir.join("filler");
    fill(&filler);
    let mut failed = 0;
    for i in 0..150 {
        let r = admin.json(
            "POST",
            "/api/v1/orgs/acme/tokens",
            &format!(r#"{{"scopes":["read_packages"],"description":"t{i}"}}"#),
        );
        if r.status != 201 {
            assert_no_engine_text(&r, &data);
            assert!(r.status == 500 || r.status == 507, "{r:?}");
            failed += 1;
        }
    }
    assert!(failed > 0, "no metadata commit failed on a full disk");
    let r = srv.anonymous().get("/healthz");
    assert_eq!(r.status, 503, "{r:?}");
    let metrics = srv.anonymous().get("/metrics").text();
    assert_eq!(counter(&metrics, "berth_store_healthy"), 0, "{metrics}");
    log_line(&log_path, |l| {
        l.contains("ERROR") && l.contains("store is unhealthy")
    });

    // Space comes back: writes work again, without a restart.
    std::fs::remove_file(&filler).unwrap();
    fs.resize("256m");
    let r = admin.json(
        "POST",
        "/api/v1/orgs/acme/tokens",
        r#"{"scopes":["read_packages"],"description":"after"}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = c.request(
        "DELETE",
        &format!("/v2/{REPO}/blobs/{}", pushed.pop().unwrap()),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "{r:?}");
    let again = push_blob(&mut c, &pattern(3 << 20, 999), 3);
    let r = c.request("HEAD", &format!("/v2/{REPO}/blobs/{again}"), &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    for d in &pushed {
        let r = c.request("HEAD", &format!("/v2/{REPO}/blobs/{d}"), &[], b"");
        assert_eq!(r.status, 200, "an acknowledged blob was lost: {r:?}");
    }
    let r = srv.anonymous().get("/healthz");
    assert_eq!(r.status, 200, "{r:?}");
    let metrics = srv.anonymous().get("/metrics").text();
    assert_eq!(counter(&metrics, "berth_store_healthy"), 1, "{metrics}");
    let r = admin.json("POST", "/api/v1/gc", "{}");
    assert_eq!(r.status, 200, "{r:?}");
    log_line(&log_path, |l| l.contains("store is healthy again"));

    srv.signal(libc::SIGTERM);
    assert!(srv.wait(Duration::from_secs(20)).success());
    let out = berth(&["check", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn a_blob_whose_pack_cannot_be_opened_ends_its_connection_after_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut srv = Server::start(&data);
    // Larger than a small blob: its own pack, which nothing else needs at startup.
    let blob = pattern(3 << 20, 11);
    let digest = push_blob(&mut srv.client(), &blob, 1);
    srv.signal(libc::SIGTERM);
    assert!(srv.wait(Duration::from_secs(30)).success());
    let packs: Vec<PathBuf> = std::fs::read_dir(data.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() >= blob.len() as u64)
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    std::fs::remove_file(&packs[0]).unwrap();
    let srv = Server::start(&data);
    let mut c = srv.client();
    // The blob GET and a request after it, in one write: nothing of the second answer may
    // follow the first's head as if it were the blob's bytes.
    let auth = c.auth.clone().unwrap();
    let req = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\n\r\n")
    };
    let both = req(&format!("/v2/{REPO}/blobs/{digest}")) + &req("/v2/");
    let s = c.stream();
    s.write_all(both.as_bytes()).unwrap();
    let mut got = Vec::new();
    // The server closes: read to the end (the client's read timeout fails a hang).
    s.read_to_end(&mut got)
        .expect("the server closes the connection");
    let mut r = berth_client::Reader::new(&got[..], 0, 0);
    let head = r.read_head(false).unwrap();
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(
        head.framing,
        berth_client::Framing::Length(blob.len() as u64),
        "{head:?}"
    );
    let rest = &got[got.len() - r.buffered()..];
    assert!(
        rest.len() < blob.len() && !rest.windows(8).any(|w| w == b"HTTP/1.1"),
        "after the head came {} bytes: {:?}",
        rest.len(),
        String::from_utf8_lossy(&rest[..rest.len().min(200)])
    );
    // The server lives on.
    assert_eq!(srv.client().get("/v2/").status, 200);
}
