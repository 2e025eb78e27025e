//! `berth_engine::Engine` on a real directory: uploads made durable (append + finish, so
//! hashing, pack writes, fsync and the redb commit are all in), the reads a pull makes per
//! request (blob stat, manifest by tag and by digest, from the manifest cache and with it
//! off), and the token lookup behind every authenticated request that a connection has not
//! verified yet (among 10 000 tokens). Each put is a new blob, never a dedupe hit. And the
//! recurring cost of garbage collection: a run over 10 000 blobs, 1 000 manifests and their
//! 10 000 references, which reads every row and finds nothing to remove.

use berth_engine::{
    BlobKey, Engine, EngineOptions, GcOptions, ManifestRef, NewManifest, TokenKind, TokenRec,
};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const REPO: &str = "bench/engine/app";
/// The server appends what one socket read delivered; use a typical receive-buffer slice.
const APPEND_SLICE: usize = 1 << 20;

/// Distinct blob bodies: random bytes with a counter in the first 8, so every upload is new
/// content and the engine cannot dedupe it away.
fn fresh_blob(base: &[u8], n: &AtomicU64) -> (Vec<u8>, BlobKey) {
    let mut b = base.to_vec();
    let i = n.fetch_add(1, Ordering::Relaxed);
    b[..8].copy_from_slice(&i.to_le_bytes());
    let key = BlobKey::sha256_of(&b);
    (b, key)
}

fn upload(e: &Engine, data: &[u8], key: &BlobKey) {
    let s = e.start_upload(REPO).expect("start_upload");
    let mut off = 0u64;
    for chunk in data.chunks(APPEND_SLICE) {
        off = e
            .append_upload(REPO, &s.id, off, chunk)
            .expect("append_upload");
    }
    let loc = e.finish_upload(REPO, &s.id, key).expect("finish_upload");
    black_box(loc.into_inner());
}

fn puts(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Engine::open(dir.path(), EngineOptions::default()).expect("Engine::open");
    let counter = AtomicU64::new(0);
    let mut g = c.benchmark_group("engine_put");
    // Each 1 MiB put waits for an fsync; give the samples room.
    g.measurement_time(Duration::from_secs(5));
    for size in [1usize << 20, 64 << 20] {
        let mut base = vec![0u8; size];
        berth_benches::payload::fill_random(&mut base, size as u64);
        g.throughput(Throughput::Bytes(size as u64));
        if size > 1 << 20 {
            g.sample_size(10);
            g.measurement_time(Duration::from_secs(8));
        }
        let label = berth_benches::size::fmt_size(size as u64);
        g.bench_with_input(
            BenchmarkId::new("upload_finish", label),
            &base,
            |b, base| {
                // The digest is the client's; compute it outside the timed part.
                b.iter_batched(
                    || fresh_blob(base, &counter),
                    |(data, key)| upload(&e, &data, &key),
                    BatchSize::PerIteration,
                )
            },
        );
    }
    g.finish();
}

fn reads(c: &mut Criterion) {
    reads_with(c, "engine_read", EngineOptions::default());
    let uncached = EngineOptions {
        manifest_cache_bytes: 0,
        ..EngineOptions::default()
    };
    reads_with(c, "engine_read_uncached", uncached);
}

fn reads_with(c: &mut Criterion, group: &str, opts: EngineOptions) {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Engine::open(dir.path(), opts).expect("Engine::open");
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let mut layer = vec![0u8; 1 << 20];
    berth_benches::payload::fill_random(&mut layer, 7);
    let (ck, lk) = (BlobKey::sha256_of(&config), BlobKey::sha256_of(&layer));
    upload(&e, &config, &ck);
    upload(&e, &layer, &lk);
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{ck}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{lk}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    )
    .into_bytes();
    let mk = BlobKey::sha256_of(&body);
    let put = e.put_manifest(
        REPO,
        NewManifest {
            key: mk.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            body,
            tags: vec!["v1".into()],
            blobs: vec![ck, lk.clone()],
            external: vec![],
            manifests: vec![],
            subject: None,
        },
    );
    let _durable = put.expect("put_manifest");

    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    g.bench_function("stat_blob", |b| {
        b.iter(|| {
            e.stat_blob(REPO, black_box(&lk))
                .expect("stat_blob")
                .expect("present")
        })
    });
    g.bench_function("get_manifest_tag", |b| {
        b.iter(|| {
            e.get_manifest(REPO, ManifestRef::Tag(black_box("v1")))
                .expect("get_manifest")
                .expect("present")
        })
    });
    g.bench_function("get_manifest_digest", |b| {
        b.iter(|| {
            e.get_manifest(REPO, ManifestRef::Key(black_box(&mk)))
                .expect("get_manifest")
                .expect("present")
        })
    });
    g.finish();
}

fn tokens(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = std::sync::Arc::new(
        Engine::open(dir.path(), EngineOptions::default()).expect("Engine::open"),
    );
    e.create_org("acme", 1).expect("create_org");
    let hash = |i: u64| {
        let mut h = [0u8; 32];
        h.copy_from_slice(&BlobKey::sha256_of(&i.to_le_bytes()).hash);
        h
    };
    const TOKENS: u64 = 10_000;
    // Created from several threads, so the group commit batches them.
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                for i in (t..TOKENS).step_by(8) {
                    e.create_token(TokenRec {
                        id: format!("tok_{i:016x}"),
                        kind: TokenKind::Org,
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
                    .expect("create_token");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("token thread");
    }
    let hashes: Vec<[u8; 32]> = (0..TOKENS).map(hash).collect();
    let mut g = c.benchmark_group("engine_tenancy");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("token_by_hash_among_10k", |b| {
        b.iter(|| {
            i = (i + 7919) % hashes.len();
            e.token_by_hash(black_box(&hashes[i]))
                .expect("token_by_hash")
                .expect("present")
        })
    });
    g.finish();
}

/// A store of `BLOBS` small blobs, every ten named by one tagged manifest, then repeated
/// collections: the scans a run makes every `gc_interval` however little it reclaims.
fn gc(c: &mut Criterion) {
    const BLOBS: u64 = 10_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let e = std::sync::Arc::new(Engine::open(dir.path(), EngineOptions::default()).expect("open"));
    // Uploaded from several threads, so the group commit batches their fsyncs.
    let threads: Vec<_> = (0..16u64)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                for m in (t..BLOBS / 10).step_by(16) {
                    let keys: Vec<BlobKey> = (0..10)
                        .map(|i| {
                            let body = (m * 10 + i).to_le_bytes().repeat(64);
                            let key = BlobKey::sha256_of(&body);
                            upload(&e, &body, &key);
                            key
                        })
                        .collect();
                    let body = format!("{{\"bench\":{m}}}").into_bytes();
                    let put = e.put_manifest(
                        REPO,
                        NewManifest {
                            key: BlobKey::sha256_of(&body),
                            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                            body,
                            tags: vec![format!("v{m}")],
                            blobs: keys,
                            external: vec![],
                            manifests: vec![],
                            subject: None,
                        },
                    );
                    let _durable = put.expect("put_manifest");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("upload thread");
    }
    let mut g = c.benchmark_group("engine_gc");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BLOBS));
    g.bench_function("run_over_10k_blobs_nothing_to_remove", |b| {
        b.iter(|| {
            let r = e.collect_garbage(GcOptions::standard()).expect("gc");
            assert_eq!(r.blobs_removed, 0);
            black_box(r)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = reads, tokens, puts, gc
}
criterion_main!(benches);
