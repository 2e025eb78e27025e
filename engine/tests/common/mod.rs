#![allow(dead_code)]

use std::path::Path;

use berth_engine::{BlobKey, BlobLoc, Engine, EngineOptions, Metadata, NewManifest, PgLimits};

pub fn opts() -> EngineOptions {
    EngineOptions {
        small_blob_bytes: 4096,
        ..EngineOptions::default()
    }
}

pub fn open(dir: &Path) -> Engine {
    Engine::open(dir, on(dir, opts())).expect("open store")
}

/// `o` with the store's metadata where the run asks: with `BERTH_TEST_POSTGRES` set (the URL
/// of a PostgreSQL server and a role that may create databases), each store folder gets a
/// database of its own there, named for the folder, so the suite runs on both backends.
pub fn on(dir: &Path, o: EngineOptions) -> EngineOptions {
    let Ok(server) = std::env::var("BERTH_TEST_POSTGRES") else {
        return o;
    };
    let name = format!("t{:016x}", fnv(dir.to_string_lossy().as_bytes()));
    let mut admin =
        postgres::Client::connect(&server, postgres::NoTls).expect("BERTH_TEST_POSTGRES");
    let exists = !admin
        .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .unwrap()
        .is_empty();
    if !exists {
        // Another process of the test (a crash test's child) may create it at the same
        // moment, and concurrent creations may find the template busy: retry a few times.
        let mut tries = 0;
        while let Err(e) = admin.batch_execute(&format!("CREATE DATABASE {name}")) {
            let code = e.code().map(|c| c.code().to_owned());
            if code.as_deref() == Some("42P04") {
                break; // made by the other process
            }
            tries += 1;
            assert!(tries < 20, "create database {name}: {e}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let mut cfg: postgres::Config = server.parse().unwrap();
    cfg.dbname(&name);
    let url = config_url(&cfg);
    EngineOptions {
        metadata: Metadata::Postgres {
            url,
            limits: PgLimits::default(),
        },
        ..o
    }
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325, |h, &c| {
        (h ^ c as u64).wrapping_mul(0x100000001b3)
    })
}

/// The URL of `c` (host, port, user, password, database).
fn config_url(c: &postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let user = c.get_user().unwrap_or("postgres");
    let pw = c
        .get_password()
        .map(|p| format!(":{}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    format!(
        "postgres://{user}{pw}@{host}:{port}/{}",
        c.get_dbname().unwrap_or("")
    )
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
