//! Throughput smoke checks; `#[ignore]`d: run in release with
//! `cargo test --release -p berth-engine --test perf -- --ignored --nocapture`.
//! They print numbers and assert only loose floors (benches compare, never assert).

#![allow(clippy::disallowed_methods)] // timing is what these tests do

mod common;

use std::time::Instant;

use berth_engine::{BlobKey, ManifestRef};
use common::*;

#[test]
#[ignore]
fn a_256_mib_push_is_append_bound_and_finish_is_cheap() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let chunk = data(1, 1 << 20);
    let n = 256u64;
    // the blob is the chunk repeated; hash it the same way
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    for _ in 0..n {
        sha2::Digest::update(&mut h, &chunk);
    }
    let key = BlobKey {
        alg: berth_engine::Alg::Sha256,
        hash: sha2::Digest::finalize(h).to_vec(),
    };
    // the floor under the same load: one hash update + one pwrite per chunk
    let raw = std::fs::File::create(dir.path().join("raw")).unwrap();
    let tr = Instant::now();
    let mut hr = <sha2::Sha256 as sha2::Digest>::new();
    for i in 0..n {
        std::os::unix::fs::FileExt::write_all_at(&raw, &chunk, i << 20).unwrap();
        sha2::Digest::update(&mut hr, &chunk);
    }
    let t_raw = tr.elapsed();
    drop(raw);
    let up = e.start_upload("r").unwrap();
    let t0 = Instant::now();
    let mut off = 0;
    for _ in 0..n {
        off = e.append_upload("r", &up.id, off, &chunk).unwrap();
    }
    let t_append = t0.elapsed();
    let t1 = Instant::now();
    let loc = e.finish_upload("r", &up.id, &key).unwrap().into_inner();
    let t_finish = t1.elapsed();
    let total = t0.elapsed();
    let mb = (n << 20) as f64 / 1e6;
    eprintln!(
        "raw pwrite+sha256 {:.0} MB/s; append {:.0} MB/s, finish {:?}, end to end {:.0} MB/s",
        mb / t_raw.as_secs_f64(),
        mb / t_append.as_secs_f64(),
        t_finish,
        mb / total.as_secs_f64()
    );
    let _ = t_raw;
    assert_eq!(loc.len, n << 20);
}

#[test]
#[ignore]
fn manifest_and_blob_lookups_run_at_tens_of_thousands_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let (k, _) = push(&e, "r", b"layer");
    let m = manifest(&"x".repeat(2000), &["latest"], std::slice::from_ref(&k));
    let mk = m.key.clone();
    let _ = e.put_manifest("r", m).unwrap();
    let iters = 100_000;
    let t = Instant::now();
    for _ in 0..iters {
        assert!(e
            .get_manifest("r", ManifestRef::Tag("latest"))
            .unwrap()
            .is_some());
    }
    let per_s = iters as f64 / t.elapsed().as_secs_f64();
    eprintln!("get_manifest by tag: {per_s:.0}/s");
    let t = Instant::now();
    for _ in 0..iters {
        assert!(e
            .get_manifest("r", ManifestRef::Key(&mk))
            .unwrap()
            .is_some());
    }
    eprintln!(
        "get_manifest by key: {:.0}/s",
        iters as f64 / t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    for _ in 0..iters {
        assert!(e.stat_blob("r", &k).unwrap().is_some());
    }
    let stat_s = iters as f64 / t.elapsed().as_secs_f64();
    eprintln!("stat_blob: {stat_s:.0}/s");
    assert!(per_s > 10_000.0 && stat_s > 10_000.0);
}

#[test]
#[ignore]
fn small_blob_finishes_batch_under_concurrency() {
    let dir = tempfile::tempdir().unwrap();
    let e = std::sync::Arc::new(open(dir.path()));
    let t = Instant::now();
    let threads: Vec<_> = (0..16u64)
        .map(|i| {
            let e = e.clone();
            std::thread::spawn(move || {
                for j in 0..50u64 {
                    push(&e, "r", &data(i * 1000 + j, 2000));
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    eprintln!("800 small pushes from 16 threads: {:?}", t.elapsed());
}

#[test]
#[ignore]
fn token_lookup_by_hash_costs_microseconds_among_many_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let e = std::sync::Arc::new(open(dir.path()));
    e.create_org("acme", 1).unwrap();
    let hash = |i: u64| {
        let mut h = [0u8; 32];
        h.copy_from_slice(&BlobKey::sha256_of(&i.to_le_bytes()).hash);
        h
    };
    // created from several threads so the group commit batches them
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                for i in (t..10_000).step_by(8) {
                    e.create_token(berth_engine::TokenRec {
                        id: format!("tok_{i:016x}"),
                        kind: berth_engine::TokenKind::Org,
                        org: Some("acme".into()),
                        read: true,
                        write: false,
                        registries: vec![],
                        description: String::new(),
                        created: 1,
                        expires: None,
                        last_used: None,
                        revoked: None,
                        hash: hash(i),
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let n = 100_000u64;
    let t0 = Instant::now();
    for i in 0..n {
        let found = e.token_by_hash(&hash(i % 10_000)).unwrap();
        assert!(found.is_some());
    }
    let per = t0.elapsed() / n as u32;
    eprintln!("token_by_hash among 10k tokens: {per:?} per lookup");
    assert!(per.as_micros() < 200, "{per:?}");
}

/// The server's shape of a big push: POST, then one PUT whose body arrives as ≤256 KiB
/// slices, each handed to `append_upload` on the network thread, then `finish_upload`.
/// Prints, per round and as medians, end-to-end GB/s, the append loop's GB/s and the time
/// of finish alone; first, as a yardstick of how loaded the machine is, the same bytes
/// written and hashed inline on one thread then `fdatasync`ed (what a push used to cost).
/// The machine is shared, so wall times swing with its load; the CPU time each thread spent
/// (from `/proc/self/task/*/schedstat`) is printed too, which the load barely moves:
/// this thread's during the appends and during finish, and the hashing pool's.
/// `BERTH_PERF_ROUNDS` sets the number of rounds (default 5).
#[test]
#[ignore]
fn push_of_256_mib_in_256_kib_slices_reports_gb_per_s_and_finish_time() {
    std::thread::Builder::new()
        .name(MY_NAME.into())
        .spawn(push_256_mib_rounds)
        .unwrap()
        .join()
        .unwrap();
}

/// This bench's thread, found by name among the process's threads.
const MY_NAME: &str = "perf-pusher";

type CpuMap = std::collections::HashMap<String, (String, u64)>;

/// Nanoseconds on CPU so far of every thread of this process: tid -> (name, ns).
fn cpu_by_thread() -> CpuMap {
    let mut m = CpuMap::new();
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let p = t.path();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(p.join("comm")),
            std::fs::read_to_string(p.join("schedstat")),
        ) else {
            continue;
        };
        let ns = stat
            .split(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let tid = t.file_name().to_string_lossy().into_owned();
        m.insert(tid, (name.trim().to_owned(), ns));
    }
    m
}

/// Milliseconds on CPU between two snapshots, over the threads whose name `pick` takes.
fn cpu_ms(a: &CpuMap, b: &CpuMap, pick: impl Fn(&str) -> bool) -> f64 {
    b.iter()
        .filter(|(_, (name, _))| pick(name))
        .map(|(tid, (_, ns))| ns - a.get(tid).map_or(0, |x| x.1))
        .sum::<u64>() as f64
        / 1e6
}

fn push_256_mib_rounds() {
    const TOTAL: usize = 256 << 20;
    const SLICE: usize = 256 << 10;
    let rounds: u64 = std::env::var("BERTH_PERF_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let gb = TOTAL as f64 / 1e9;
    let dir = tempfile::tempdir().unwrap();
    let mut blob = data(7, TOTAL);

    let raw = std::fs::File::create(dir.path().join("raw")).unwrap();
    let t = Instant::now();
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    for (i, s) in blob.chunks(SLICE).enumerate() {
        std::os::unix::fs::FileExt::write_all_at(&raw, s, (i * SLICE) as u64).unwrap();
        sha2::Digest::update(&mut h, s);
    }
    raw.sync_data().unwrap();
    let t_raw = t.elapsed();
    drop((raw, h));
    eprintln!(
        "yardstick: inline pwrite + sha256 + fdatasync on one thread: {:.2} GB/s ({t_raw:?})",
        gb / t_raw.as_secs_f64()
    );

    let e = open(dir.path());
    let mut ends = Vec::new();
    let mut finishes = Vec::new();
    for round in 0..rounds {
        // A different blob each round, so none dedupes against the last.
        blob[..8].copy_from_slice(&round.to_le_bytes());
        let h0 = cpu_by_thread();
        let th = Instant::now();
        let key = BlobKey::sha256_of(&blob);
        let (t_hash, h1) = (th.elapsed(), cpu_by_thread());
        eprintln!(
            "round {round}: sha256 of the 256 MiB in memory: {:.2} GB/s wall, {:.0} cpu ms",
            gb / t_hash.as_secs_f64(),
            cpu_ms(&h0, &h1, |c| c == MY_NAME)
        );
        let up = e.start_upload("r").unwrap();
        let c0 = cpu_by_thread();
        let t0 = Instant::now();
        let mut off = 0;
        for s in blob.chunks(SLICE) {
            off = e.append_upload("r", &up.id, off, s).unwrap();
        }
        let t_append = t0.elapsed();
        let c1 = cpu_by_thread();
        let t1 = Instant::now();
        let loc = e.finish_upload("r", &up.id, &key).unwrap().into_inner();
        let t_finish = t1.elapsed();
        let total = t0.elapsed();
        let c2 = cpu_by_thread();
        let me = |a: &CpuMap, b: &CpuMap| cpu_ms(a, b, |c| c == MY_NAME);
        let pool = cpu_ms(&c0, &c2, |c| c.starts_with("berth-hash"));
        let all = cpu_ms(&c0, &c2, |_| true);
        eprintln!(
            "round {round}: {:.2} GB/s end to end ({total:?}); appends {:.2} GB/s \
             ({t_append:?}); finish {t_finish:?}; cpu ms: appends {:.0}, finish {:.0}, \
             hash pool {pool:.0}, process {all:.0}",
            gb / total.as_secs_f64(),
            gb / t_append.as_secs_f64(),
            me(&c0, &c1),
            me(&c1, &c2),
        );
        assert_eq!(loc.len, TOTAL as u64);
        assert_eq!(e.read_blob(loc).unwrap()[..8], round.to_le_bytes());
        ends.push(gb / total.as_secs_f64());
        finishes.push(t_finish);
    }
    ends.sort_by(f64::total_cmp);
    finishes.sort();
    if let (Some(best), Some(_)) = (ends.last(), finishes.first()) {
        eprintln!(
            "median of {rounds}: {:.2} GB/s end to end (best {best:.2}); finish {:?} (best {:?})",
            ends[ends.len() / 2],
            finishes[finishes.len() / 2],
            finishes[0],
        );
    }
}
