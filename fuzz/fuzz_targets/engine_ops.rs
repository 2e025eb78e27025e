//! Sequences of store operations on the simulated disk, with faults, crashes and restarts
//! mixed in. Each input byte picks an operation; the bytes after it are its arguments.
//!
//! What must hold whatever the sequence: nothing panics; once the disk is healed and the
//! power cut, the store reopens, `check` finds nothing wrong, and every blob and manifest
//! a call acknowledged (and no later call tried to remove) reads back bit-exact.

#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_engine::vfs::sim::{Fault, FaultKind, FaultOp, SimFs};
use berth_engine::{BlobKey, Clock, Engine, EngineOptions, GcOptions, ManifestRef, NewManifest};
use libfuzzer_sys::fuzz_target;

const REPOS: [&str; 3] = ["a/x", "a/y", "b/z"];
const TAGS: [&str; 2] = ["latest", "v1"];

/// The input, read a byte at a time (zeros once it runs out).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.byte() as usize % from.len()]
    }
}

fn opts() -> EngineOptions {
    EngineOptions {
        small_blob_bytes: 2048,
        shared_pack_bytes: 8192,
        min_free_bytes: Some(0),
        ..EngineOptions::default()
    }
}

fn open(fs: &SimFs, clock: &Clock) -> Option<Engine> {
    Engine::open_on(Arc::new(fs.clone()), opts(), clock.clone()).ok()
}

/// Blob `seed`'s bytes: small or large (a pack of its own).
fn blob(seed: u8) -> Vec<u8> {
    let len = (seed as usize * 97) % 6000;
    (0..len).map(|i| (i as u8) ^ seed).collect()
}

fn manifest_body(seed: u8, blobs: &[BlobKey]) -> Vec<u8> {
    let list: Vec<String> = blobs.iter().map(|k| format!("{k:?}")).collect();
    format!("{{\"m\":{seed},\"b\":{list:?}}}").into_bytes()
}

/// What calls acknowledged: blobs (by repository) and manifests, with their bytes.
#[derive(Default)]
struct Acked {
    blobs: BTreeMap<(usize, BlobKey), Vec<u8>>,
    manifests: BTreeMap<(usize, BlobKey), Vec<u8>>,
}

fn push(e: &Engine, repo: &str, bytes: &[u8], chunk: usize, sync: bool) -> bool {
    let key = BlobKey::sha256_of(bytes);
    let Ok(up) = e.start_upload(repo) else {
        return false;
    };
    let mut off = 0;
    for c in bytes.chunks(chunk.max(1)) {
        match e.append_upload(repo, &up.id, off, c) {
            Ok(n) => off = n,
            Err(_) => return false,
        }
        if sync && e.sync_upload(repo, &up.id).is_err() {
            return false;
        }
    }
    e.finish_upload(repo, &up.id, &key).is_ok()
}

fn verify(e: &Engine, acked: &Acked) {
    let r = e.check().expect("check runs");
    assert!(r.is_clean(), "check: {:?}", r.problems);
    for ((repo, key), bytes) in &acked.blobs {
        let loc = e
            .stat_blob(REPOS[*repo], key)
            .expect("stat")
            .unwrap_or_else(|| panic!("acknowledged blob {key:?} in {} is gone", REPOS[*repo]));
        assert_eq!(&e.read_blob(loc).expect("read"), bytes);
    }
    for ((repo, key), body) in &acked.manifests {
        let m = e
            .get_manifest(REPOS[*repo], ManifestRef::Key(key))
            .expect("get")
            .unwrap_or_else(|| panic!("acknowledged manifest {key:?} is gone"));
        assert_eq!(&m.body[..], &body[..]);
    }
}

fuzz_target!(|data: &[u8]| {
    let clock: Clock = Arc::new(|| 1_000_000);
    let mut fs = SimFs::new();
    let mut input = Input(data);
    let Some(mut e) = open(&fs, &clock) else {
        panic!("a new store must open");
    };
    let mut acked = Acked::default();
    let mut steps = 0;
    while !input.0.is_empty() && steps < 64 {
        steps += 1;
        let repo = input.byte() as usize % REPOS.len();
        match input.byte() % 12 {
            0 | 1 => {
                let seed = input.byte();
                let chunk = 1 + input.byte() as usize * 31;
                let bytes = blob(seed);
                if push(&e, REPOS[repo], &bytes, chunk, seed % 2 == 0) {
                    acked
                        .blobs
                        .insert((repo, BlobKey::sha256_of(&bytes)), bytes);
                }
            }
            2 => {
                let seed = input.byte();
                let tag = input.pick(&[None, Some(0), Some(1)]);
                let blobs: Vec<BlobKey> = acked
                    .blobs
                    .keys()
                    .filter(|(r, _)| *r == repo)
                    .take(2)
                    .map(|(_, k)| k.clone())
                    .collect();
                let body = manifest_body(seed, &blobs);
                let key = BlobKey::sha256_of(&body);
                let m = NewManifest {
                    key: key.clone(),
                    media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                    body: body.clone(),
                    tags: tag
                        .map(|t: usize| vec![TAGS[t].to_string()])
                        .unwrap_or_default(),
                    blobs,
                    external: vec![],
                    manifests: vec![],
                    subject: None,
                };
                if e.put_manifest(REPOS[repo], m).is_ok() {
                    acked.manifests.insert((repo, key), body);
                }
            }
            3 => {
                let tag = TAGS[input.byte() as usize % TAGS.len()];
                let _ = e.delete_manifest(REPOS[repo], ManifestRef::Tag(tag));
            }
            4 => {
                if let Some(k) = acked.manifests.keys().find(|(r, _)| *r == repo).cloned() {
                    acked.manifests.remove(&k);
                    let _ = e.delete_manifest(REPOS[repo], ManifestRef::Key(&k.1));
                }
            }
            5 => {
                if let Some(k) = acked.blobs.keys().find(|(r, _)| *r == repo).cloned() {
                    acked.blobs.remove(&k);
                    let _ = e.unlink_blob(REPOS[repo], &k.1);
                }
            }
            6 => {
                let from = input.byte() as usize % REPOS.len();
                if let Some((_, k)) = acked.blobs.keys().find(|(r, _)| *r == from).cloned() {
                    let bytes = acked.blobs[&(from, k.clone())].clone();
                    if let Ok(Some(_)) = e.mount_blob(REPOS[repo], &k, Some(REPOS[from])) {
                        acked.blobs.insert((repo, k), bytes);
                    }
                }
            }
            7 => {
                let g = GcOptions {
                    dry_run: input.byte() % 4 == 0,
                    unreferenced_after: None,
                    compact_below: f64::from(input.byte()) / 255.0,
                };
                let _ = e.collect_garbage(g);
            }
            8 => {
                let op = input.pick(&[
                    FaultOp::Write,
                    FaultOp::SyncData,
                    FaultOp::SyncDir,
                    FaultOp::Rename,
                    FaultOp::Remove,
                    FaultOp::Create,
                    FaultOp::SetLen,
                    FaultOp::Any,
                ]);
                let prefix = input.pick(&["", "packs/", "uploads/", "meta.redb"]);
                let kind = input.pick(&[FaultKind::Io, FaultKind::NoSpace, FaultKind::Short]);
                let mut f = Fault::once(op, prefix, kind);
                f.skip = u64::from(input.byte() % 16);
                fs.inject(f);
            }
            9 => {
                let n = u64::from(input.byte());
                fs.fail_after(Some(fs.ops() + n), FaultKind::Io);
            }
            10 => fs.heal(),
            _ => {
                // A restart: clean, or a power cut (torn or not).
                let how = input.byte() % 3;
                drop(e);
                fs.heal();
                if how > 0 {
                    fs = fs.restart((how == 2).then_some(u64::from(input.byte())));
                }
                e = open(&fs, &clock).expect("a healed store reopens");
                let r = e.check().expect("check runs");
                assert!(r.is_clean(), "check after restart: {:?}", r.problems);
            }
        }
    }
    drop(e);
    fs.heal();
    let fs = fs.restart(None);
    let e = open(&fs, &clock).expect("a healed store reopens after a power cut");
    verify(&e, &acked);
});
