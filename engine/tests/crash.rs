//! Kill -9 a child process mid-push, reopen, and check every acknowledged blob and manifest.
//!
//! The child is this test binary re-run with `BERTH_CRASH_CHILD` set: it pushes blobs
//! (small and large, from several threads) and manifests, and syncs upload sessions it
//! leaves open (what a PATCH's 202 acknowledges), and prints `ACK …` after each
//! acknowledged write. A process kill keeps the page cache, so this checks the engine's
//! ordering and open-time repair, not power loss.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use berth_engine::{BlobKey, ManifestRef};
use common::*;

const CHILD_ENV: &str = "BERTH_CRASH_CHILD";

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // only does work when run as the child
    };
    let seed: u64 = std::env::var("BERTH_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let e = Arc::new(open(std::path::Path::new(&dir)));
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                for i in 0u64.. {
                    let n = seed * 1_000_000 + t * 100_000 + i;
                    let size = match i % 4 {
                        0 => 20_000 + (n % 5000) as usize,
                        _ => (n % 3000) as usize,
                    };
                    let bytes = data(n, size);
                    let repo = format!("r{t}");
                    let (k, _) = push_chunked(&e, &repo, &bytes, 1500);
                    println!("ACK blob {repo} {n} {size} {}", hex(&k));
                    if i % 3 == 0 {
                        let body = format!("{{\"n\":{n}}}");
                        let m = manifest(&body, &[&format!("t{n}")], &[k]);
                        let _ = e.put_manifest(&repo, m).expect("put manifest");
                        println!("ACK manifest {repo} {n}");
                    }
                }
            })
        })
        .collect();
    let sessions = {
        let e = e.clone();
        std::thread::spawn(move || {
            for i in 0u64.. {
                let n = seed * 1_000_000 + 900_000 + i;
                let size = 1_000 + (n % 200_000) as usize;
                let bytes = data(n, size);
                let up = e.start_upload("u").expect("start upload");
                let mut off = 0;
                for chunk in bytes.chunks(64 << 10) {
                    off = e.append_upload("u", &up.id, off, chunk).expect("append");
                }
                let s = e.sync_upload("u", &up.id).expect("sync").expect("session");
                assert_eq!(s.len, size as u64);
                println!("ACK upload u {} {n} {size}", up.id);
            }
        })
    };
    for t in threads {
        let _ = t.join();
    }
    let _ = sessions.join();
}

fn hex(k: &BlobKey) -> String {
    k.hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_acknowledged_write_survives_a_kill_at_a_random_moment() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked_blobs = Vec::new();
    let mut acked_manifests = Vec::new();
    let mut acked_uploads = 0;
    for round in 0..6u64 {
        let mut uploads = Vec::new();
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env("BERTH_CRASH_SEED", (round + 1).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter(|l| l.starts_with("ACK "))
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(150 + (round * 137) % 400));
        child.kill().unwrap();
        child.wait().unwrap();
        for line in reader.join().unwrap() {
            let f: Vec<&str> = line.split(' ').collect();
            match f[1] {
                "blob" => acked_blobs.push((
                    f[2].to_string(),
                    f[3].parse::<u64>().unwrap(),
                    f[4].parse::<usize>().unwrap(),
                )),
                "upload" => uploads.push((
                    f[3].to_string(),
                    f[4].parse::<u64>().unwrap(),
                    f[5].parse::<usize>().unwrap(),
                )),
                _ => acked_manifests.push((f[2].to_string(), f[3].parse::<u64>().unwrap())),
            }
        }
        let e = open(dir.path());
        for (repo, n, size) in &acked_blobs {
            let bytes = data(*n, *size);
            let k = BlobKey::sha256_of(&bytes);
            let loc = e
                .stat_blob(repo, &k)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acked blob {n} lost"));
            assert_eq!(e.read_blob(loc).unwrap(), bytes, "round {round}: blob {n}");
        }
        for (repo, n) in &acked_manifests {
            let got = e
                .get_manifest(repo, ManifestRef::Tag(&format!("t{n}")))
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acked manifest {n} lost"));
            assert_eq!(got.body, format!("{{\"n\":{n}}}").into_bytes());
        }
        // A synced session survives with every byte: it closes into the right blob.
        for (id, n, size) in &uploads {
            let s = e
                .upload_status("u", id)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: synced upload {n} lost"));
            assert_eq!(s.len, *size as u64, "round {round}: upload {n}");
            let k = BlobKey::sha256_of(&data(*n, *size));
            let done = e
                .finish_upload("u", id, &k)
                .unwrap_or_else(|err| panic!("round {round}: upload {n}: {err}"));
            assert_eq!(done.into_inner().len, *size as u64);
        }
        acked_uploads += uploads.len();
        assert_clean(&e);
        eprintln!(
            "round {round}: {} blobs, {} manifests acked; repaired {:?}",
            acked_blobs.len(),
            acked_manifests.len(),
            e.check().unwrap().repaired
        );
    }
    assert!(
        acked_blobs.len() > 20 && acked_uploads > 5,
        "the child acknowledged too little work ({} blobs, {acked_uploads} uploads) to test anything",
        acked_blobs.len()
    );
}
