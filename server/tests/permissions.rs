//! The data directory is its owner's alone (the packs hold private layers): created
//! 0700/0600 whatever the umask; looser modes are reported at start and, with
//! `--fix-permissions`, tightened.

// Tests measure wall time and wait for the process: the server's clock rule is not theirs.
#![allow(clippy::disallowed_methods)]

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// `berth serve` under umask 022 (what most shells have), its log in `log`.
fn serve(data: &Path, log: &Path, extra: &[&str]) -> Server {
    let mut cmd = serve_command(data, extra);
    // SAFETY: only umask, async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        });
    }
    Server::spawn_logging_to(cmd, Stdio::from(std::fs::File::create(log).unwrap()))
}

fn stop(mut srv: Server) {
    srv.signal(libc::SIGTERM);
    assert!(srv.wait(Duration::from_secs(10)).success());
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every entry under `dir`, `dir` included.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < all.len() {
        if std::fs::symlink_metadata(&all[i]).unwrap().is_dir() {
            let below: Vec<PathBuf> = std::fs::read_dir(&all[i])
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            all.extend(below);
        }
        i += 1;
    }
    all
}

/// A store with a small blob (shared pack), a large one (a pack of its own) and an upload
/// in progress.
fn fill(srv: &Server) {
    let mut c = srv.client();
    push_blob(&mut c, b"small", 1);
    push_blob(&mut c, &pattern(3 << 20, 9), 2);
    let r = c.request("POST", &format!("/v2/{REPO}/blobs/uploads/"), &[], b"");
    assert_eq!(r.status, 202, "{r:?}");
    let loc = r.header("location").unwrap().to_string();
    let r = c.request(
        "PATCH",
        &loc,
        &[("Content-Type", "application/octet-stream")],
        b"pending",
    );
    assert_eq!(r.status, 202, "{r:?}");
}

#[test]
fn a_fresh_data_directory_is_owner_only_under_umask_022() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srv = serve(&data, &dir.path().join("log"), &[]);
    fill(&srv);
    let all = walk(&data);
    for p in &all {
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(p), want, "{} is {:o}", p.display(), mode(p));
    }
    for name in ["meta.redb", "admin-token", "token-key", "lock"] {
        assert!(all.contains(&data.join(name)), "{name} missing: {all:?}");
    }
    let packs = all.iter().filter(|p| p.starts_with(data.join("packs")));
    assert!(packs.count() >= 3, "packs/ and two packs: {all:?}");
    let uploads = all.iter().filter(|p| p.starts_with(data.join("uploads")));
    assert!(uploads.count() >= 2, "uploads/ and the upload: {all:?}");
}

#[test]
fn looser_modes_are_reported_at_start_and_tightened_with_fix_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("log");
    let srv = serve(&data, &log, &[]);
    fill(&srv);
    stop(srv);
    let pack = walk(&data.join("packs"))
        .into_iter()
        .find(|p| p.is_file())
        .unwrap();
    let loosened = [
        (data.clone(), 0o755),
        (data.join("meta.redb"), 0o644),
        (data.join("admin-token"), 0o640),
        (pack.clone(), 0o604),
    ];
    for (p, m) in &loosened {
        chmod(p, *m);
    }

    let srv = serve(&data, &log, &[]);
    let text = std::fs::read_to_string(&log).unwrap();
    let warning = text
        .lines()
        .find(|l| l.contains("WARN") && l.contains("--fix-permissions"))
        .unwrap_or_else(|| panic!("no warning:\n{text}"));
    for (p, _) in &loosened {
        assert!(warning.contains(p.to_str().unwrap()), "{warning}");
    }
    for (p, m) in &loosened {
        assert_eq!(mode(p), *m, "only reported: {}", p.display());
    }
    stop(srv);

    let srv = serve(&data, &log, &["--fix-permissions"]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("owner-only"), "{text}");
    for (p, _) in &loosened {
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(p), want, "{}", p.display());
    }
    stop(srv);

    let srv = serve(&data, &log, &[]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("WARN"), "nothing left to report:\n{text}");
    stop(srv);
}
