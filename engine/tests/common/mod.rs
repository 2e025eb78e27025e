#![allow(dead_code)]

use std::path::Path;

use berth_engine::{BlobKey, BlobLoc, Engine, EngineOptions, NewManifest};

pub fn opts() -> EngineOptions {
    EngineOptions {
        small_blob_bytes: 4096,
        ..EngineOptions::default()
    }
}

pub fn open(dir: &Path) -> Engine {
    Engine::open(dir, opts()).expect("open store")
}

/// Pushes `bytes` into `repo` in chunks of `chunk` bytes; returns its key and location.
pub fn push_chunked(e: &Engine, repo: &str, bytes: &[u8], chunk: usize) -> (BlobKey, BlobLoc) {
    let key = BlobKey::sha256_of(bytes);
    let up = e.start_upload(repo).expect("start upload");
    let mut off = 0u64;
    for c in bytes.chunks(chunk.max(1)) {
        off = e.append_upload(repo, &up.id, off, c).expect("append");
    }
    let loc = e
        .finish_upload(repo, &up.id, &key)
        .expect("finish")
        .into_inner();
    (key, loc)
}

pub fn push(e: &Engine, repo: &str, bytes: &[u8]) -> (BlobKey, BlobLoc) {
    push_chunked(e, repo, bytes, 1 << 16)
}

/// Deterministic bytes of length `n`, different for each `seed`.
pub fn data(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn manifest(body: &str, tags: &[&str], blobs: &[BlobKey]) -> NewManifest {
    NewManifest {
        key: BlobKey::sha256_of(body.as_bytes()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        body: body.as_bytes().to_vec(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        blobs: blobs.to_vec(),
        external: vec![],
        manifests: vec![],
        subject: None,
    }
}

pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn assert_clean(e: &Engine) {
    let r = e
        .check_with(berth_engine::CheckOptions { rehash: true })
        .expect("check");
    assert!(
        r.problems.is_empty(),
        "check found problems: {:?}",
        r.problems
    );
}
