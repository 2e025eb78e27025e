//! The engine's packs on object storage (`berth_engine::vfs::ObjectFs`) against a real
//! three-node Garage cluster: an engine pushes small blobs (a shared pack, synced whole at
//! each commit, past one part as a multipart upload) and large ones (single packs, uploaded
//! by the rename that makes them packs), puts manifests and reads everything back
//! bit-exact, with the bucket holding exactly its `packs/*.pack`; a tail a crash left past a
//! shared pack's committed length is cut from the copy and the object; the same store opened
//! on another folder with only `meta.redb` (another node) reads every blob from the bucket;
//! garbage collection deletes a removed pack's object and copy; a small cache evicts and
//! reads go on; an unreachable store is `StoreError::Unavailable` within the client's
//! timeouts; and with one Garage node down, reads and writes go on through another.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_engine::objects::Objects;
use berth_engine::vfs::{ObjectFs, RealFs};
use berth_engine::{
    system_clock, BlobKey, BlobLoc, Engine, EngineOptions, FinishError, GcOptions, ManifestRef,
    NewManifest, StoreError,
};
use berth_tests::content::random_bytes;
use berth_tests::Garage;

const MIB: usize = 1 << 20;
/// Blobs up to this go into shared packs; larger ones are packs of their own.
const SMALL: usize = 2 * MIB;

fn objects(g: &Garage, node: usize) -> Objects {
    g.objects(node)
}

/// Like [`objects`], giving up on an unreachable node within a few seconds.
fn impatient(g: &Garage, node: usize) -> Objects {
    Objects::open(berth_tests::garage::impatient(g.objects_config(node)))
        .expect("open the object store client")
}

fn opts(open_packs: usize) -> EngineOptions {
    EngineOptions {
        small_blob_bytes: SMALL as u64,
        open_packs,
        // The tests' temporary folders may sit on a nearly full disk: no reserve.
        min_free_bytes: Some(0),
        ..EngineOptions::default()
    }
}

/// The store whose local files are in `dir` and packs in `o`'s bucket.
fn open(dir: &Path, o: &Objects, cache_bytes: u64, open_packs: usize) -> Engine {
    let fs = ObjectFs::new(Arc::new(RealFs::new(dir)), o.clone(), cache_bytes);
    Engine::open_on(Arc::new(fs), opts(open_packs), system_clock()).expect("open the store")
}

/// Pushes `bytes` into `repo` in 1 MiB appends.
fn push(e: &Engine, repo: &str, bytes: &[u8]) -> Result<BlobLoc, FinishError> {
    let key = BlobKey::sha256_of(bytes);
    let up = e.start_upload(repo)?;
    let mut at = 0;
    for c in bytes.chunks(MIB) {
        at = e
            .append_upload(repo, &up.id, at, c)
            .unwrap_or_else(|err| panic!("append to {repo}: {err}"));
    }
    Ok(e.finish_upload(repo, &up.id, &key)?.into_inner())
}

fn manifest(tag: &str, blobs: &[&[u8]]) -> NewManifest {
    let keys: Vec<BlobKey> = blobs.iter().map(|b| BlobKey::sha256_of(b)).collect();
    let body = format!(
        "{{\"schemaVersion\":2,\"tag\":\"{tag}\",\"layers\":{:?}}}",
        keys.iter().map(|k| hex(&k.hash)).collect::<Vec<_>>()
    );
    NewManifest {
        key: BlobKey::sha256_of(body.as_bytes()),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        body: body.into_bytes(),
        tags: vec![tag.into()],
        blobs: keys,
        external: vec![],
        manifests: vec![],
        subject: None,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What the test pushed: each blob with its repository and where the engine put it.
struct Pushed {
    blobs: Vec<(&'static str, Vec<u8>, BlobLoc)>,
}

impl Pushed {
    /// Every blob found in its repository where it was put and read back bit-exact, by
    /// map, and the largest streamed too.
    fn read_all(&self, e: &Engine) {
        for (repo, bytes, loc) in &self.blobs {
            let key = BlobKey::sha256_of(bytes);
            assert_eq!(e.stat_blob(repo, &key).unwrap(), Some(*loc), "{repo}");
            assert!(
                e.read_blob(*loc).expect("read a blob") == *bytes,
                "blob of {} bytes in pack {} differs",
                bytes.len(),
                loc.pack
            );
        }
        // Streamed with pread, as listing a layer does, for the largest.
        let (_, bytes, loc) = self.blobs.iter().max_by_key(|b| b.1.len()).unwrap();
        let mut streamed = Vec::new();
        std::io::Read::read_to_end(&mut e.blob_reader(*loc).unwrap(), &mut streamed).unwrap();
        assert!(streamed == *bytes, "streamed blob differs");
    }

    fn packs(&self) -> BTreeSet<u64> {
        self.blobs.iter().map(|b| b.2.pack).collect()
    }
}

fn key_of(pack: u64) -> String {
    format!("packs/{pack:016x}.pack")
}

/// The keys of the bucket's objects under `packs/`.
fn pack_objects(o: &Objects) -> BTreeSet<String> {
    o.list("packs")
        .unwrap()
        .map(|i| i.expect("list the bucket").key)
        .collect()
}

/// The local copies in `dir`'s cache: how many and their bytes.
fn cached(dir: &Path) -> (usize, u64) {
    let Ok(entries) = std::fs::read_dir(dir.join("cache/packs")) else {
        return (0, 0);
    };
    entries.fold((0, 0), |(n, bytes), e| {
        (n + 1, bytes + e.unwrap().metadata().unwrap().len())
    })
}

/// A new local folder holding only `from`'s metadata, as another node would have: its
/// packs are all in the bucket, none cached.
fn another_node(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(from.join("meta.redb"), dir.path().join("meta.redb")).unwrap();
    dir
}

fn assert_clean(e: &Engine) {
    let r = e
        .check_with(berth_engine::CheckOptions { rehash: true })
        .unwrap();
    assert!(r.is_clean(), "{:?}", r.problems);
}

/// Small blobs (one shared pack growing past a part), large ones (single packs, one of
/// them several parts) and a manifest naming some of each.
fn push_everything(e: &Engine) -> Pushed {
    let mut blobs = Vec::new();
    for (repo, len) in [
        ("acme/app", 100),
        ("acme/app", 10_000),
        ("acme/app", SMALL - 1),
        ("acme/db", 3 * MIB / 2),
        ("acme/db", 3 * MIB / 2),
        ("acme/db", SMALL + 1),
        ("acme/app", 3 * MIB),
        ("acme/app", 11 * MIB),
    ] {
        let bytes = random_bytes(len);
        let loc = push(e, repo, &bytes).expect("push");
        blobs.push((repo, bytes, loc));
    }
    let app: Vec<&[u8]> = blobs
        .iter()
        .filter(|b| b.0 == "acme/app")
        .map(|b| &b.1[..])
        .collect();
    let _ = e
        .put_manifest("acme/app", manifest("v1", &app))
        .expect("put manifest");
    let db: Vec<&[u8]> = blobs[3..5].iter().map(|b| &b.1[..]).collect();
    let _ = e
        .put_manifest("acme/db", manifest("v1", &db))
        .expect("put manifest");
    Pushed { blobs }
}

fn assert_manifests(e: &Engine, p: &Pushed) {
    let app: Vec<&[u8]> = p
        .blobs
        .iter()
        .filter(|b| b.0 == "acme/app")
        .map(|b| &b.1[..])
        .collect();
    let want = manifest("v1", &app);
    let got = e
        .get_manifest("acme/app", ManifestRef::Tag("v1"))
        .unwrap()
        .expect("the manifest");
    assert_eq!((&got.body[..], got.key), (&want.body[..], want.key));
}

#[test]
fn object_fs_keeps_packs_in_the_bucket_and_another_node_reads_them() {
    let g = Garage::start(3);
    let o = objects(&g, 0);
    let first = tempfile::tempdir().unwrap();
    let pushed;
    {
        let e = open(first.path(), &o, 1 << 30, 4096);
        pushed = push_everything(&e);
        let packs = pushed.packs();
        assert!(packs.len() >= 4, "shared and single packs: {packs:?}");
        // Every node writes packs in the one bucket: each shared pack is written in one
        // batch (the pushes here are one batch each), under an id drawn at random.
        let shared = pushed.blobs[0].2.pack;
        assert_ne!(pushed.blobs[4].2.pack, shared, "a shared pack per batch");
        assert!(packs.iter().all(|&p| p > 1 << 20), "random ids: {packs:?}");
        pushed.read_all(&e);
        assert_manifests(&e, &pushed);
        let want: BTreeSet<String> = packs.iter().map(|&p| key_of(p)).collect();
        assert_eq!(pack_objects(&o), want, "one object per pack");
        for &p in &packs {
            let len = o.head(&key_of(p)).unwrap().unwrap();
            assert_eq!(
                std::fs::metadata(
                    first
                        .path()
                        .join("cache/packs")
                        .join(format!("{p:016x}.pack"))
                )
                .unwrap()
                .len(),
                len,
                "the copy is the object"
            );
        }
        assert!(
            !first.path().join("packs").exists(),
            "no pack on the local disk outside the cache"
        );
        assert_clean(&e);
    }

    // Bytes past a pack's committed length (another node's shared pack mid-batch looks
    // the same) are left alone at open: nothing is repaired, and reads use committed rows.
    let shared = pushed.blobs[0].2.pack;
    let copy = first
        .path()
        .join("cache/packs")
        .join(format!("{shared:016x}.pack"));
    let mut torn = std::fs::read(&copy).unwrap();
    torn.extend_from_slice(&[7u8; 1000]);
    std::fs::write(&copy, &torn).unwrap();
    o.put(&key_of(shared), torn.clone()).unwrap();
    {
        let e = open(first.path(), &o, 1 << 30, 4096);
        assert!(e.repaired().is_empty(), "{:?}", e.repaired());
        assert_eq!(o.head(&key_of(shared)).unwrap(), Some(torn.len() as u64));
        pushed.read_all(&e);
    }

    // Another node: the same metadata, an empty cache. Every byte comes from the bucket.
    let second = another_node(first.path());
    let e = open(second.path(), &o, 1 << 30, 4096);
    assert_eq!(cached(second.path()).0, 0, "opening fetched no pack");
    pushed.read_all(&e);
    assert_manifests(&e, &pushed);
    assert_eq!(cached(second.path()).0, pushed.packs().len());
    assert_clean(&e);

    // It writes too: a new large blob, and a small one into the shared pack it resumed.
    let mut blobs = Vec::new();
    for len in [SMALL + 7, 5000] {
        let bytes = random_bytes(len);
        let loc = push(&e, "acme/new", &bytes).expect("push on the second node");
        blobs.push(("acme/new", bytes, loc));
    }
    let more = Pushed { blobs };
    assert!(
        !pushed.packs().contains(&more.blobs[1].2.pack),
        "a new shared pack, never one written before"
    );
    more.read_all(&e);

    // Garbage collection removing a pack deletes its object and its copy.
    let (repo, big, loc) = &pushed.blobs[6];
    assert_ne!(loc.pack, pushed.blobs[0].2.pack, "a single pack");
    e.delete_manifest(repo, ManifestRef::Tag("v1")).unwrap();
    e.unlink_blob(repo, &BlobKey::sha256_of(big)).unwrap();
    let r = e.collect_garbage(GcOptions::standard()).expect("gc");
    assert!(r.packs_removed >= 1, "{r:?}");
    assert_eq!(
        o.head(&key_of(loc.pack)).unwrap(),
        None,
        "the object is gone"
    );
    let copy = second
        .path()
        .join("cache/packs")
        .join(format!("{:016x}.pack", loc.pack));
    assert!(!copy.exists(), "the copy is gone");
    assert!(!pack_objects(&o).contains(&key_of(loc.pack)));
    assert_clean(&e);
}

#[test]
fn object_fs_evicts_past_its_bound_and_reads_on() {
    let g = Garage::start(3);
    let o = objects(&g, 1);
    let first = tempfile::tempdir().unwrap();
    let pushed = {
        let e = open(first.path(), &o, 1 << 30, 4096);
        push_everything(&e)
    };
    // 4 MiB of copies at most, one pack open in the engine: reading every blob downloads,
    // evicts, and downloads again.
    let bound = 4 * MIB as u64;
    let dir = another_node(first.path());
    let e = open(dir.path(), &o, bound, 1);
    // The shared pack the engine appends to is pinned while its writer lives.
    let shared = o.head(&key_of(pushed.blobs[0].2.pack)).unwrap().unwrap();
    for round in 0..2 {
        pushed.read_all(&e);
        let (n, bytes) = cached(dir.path());
        assert!(
            n < pushed.packs().len(),
            "round {round}: {n} copies kept, all {} packs",
            pushed.packs().len()
        );
        assert!(bytes <= bound + shared, "round {round}: {bytes} bytes kept");
    }
    // Many readers at once of a pack neither the cache nor the engine holds (the engine
    // closes it to open another): they share one download.
    let (_, big, loc) = pushed.blobs.iter().max_by_key(|b| b.1.len()).unwrap();
    e.read_blob(pushed.blobs[5].2).unwrap();
    let e = Arc::new(e);
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let e = e.clone();
            let loc = *loc;
            std::thread::spawn(move || e.read_blob(loc).unwrap())
        })
        .collect();
    for r in readers {
        assert!(r.join().unwrap() == *big);
    }
    assert_clean(&e);
}

#[test]
fn object_fs_unreachable_is_unavailable_and_one_node_down_changes_nothing() {
    let mut g = Garage::start(3);
    let first = tempfile::tempdir().unwrap();
    let pushed = {
        let e = open(first.path(), &impatient(&g, 2), 1 << 30, 4096);
        push_everything(&e)
    };
    let dir = another_node(first.path());

    // Open through node 2, which then goes away: nothing listens at its endpoint.
    {
        let e = open(dir.path(), &impatient(&g, 2), 1 << 30, 4096);
        g.stop_node(2);
        let started = Instant::now();
        let (_, _, loc) = &pushed.blobs[7];
        match e.read_blob(*loc) {
            Err(StoreError::Unavailable(why)) => {
                assert!(why.contains(&key_of(loc.pack)), "names the key: {why}");
                assert!(!why.contains(g.secret()), "{why}");
            }
            other => panic!("want Unavailable, got {other:?}"),
        }
        // Storing a large blob uploads it: unavailable too, and nothing is stored.
        let big = random_bytes(SMALL + 1);
        match push(&e, "acme/app", &big) {
            Err(FinishError::Store(StoreError::Unavailable(_))) => {}
            other => panic!("want Unavailable, got {other:?}"),
        }
        assert_eq!(
            e.stat_blob("acme/app", &BlobKey::sha256_of(&big)).unwrap(),
            None
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(cached(dir.path()).0, 0);

    // Through node 0, with node 2 still down: everything reads, writes go on.
    let o = objects(&g, 0);
    let e = open(dir.path(), &o, 1 << 30, 4096);
    pushed.read_all(&e);
    assert_manifests(&e, &pushed);
    let mut blobs = Vec::new();
    for len in [300, SMALL + 3, 7 * MIB] {
        let bytes = random_bytes(len);
        let loc = push(&e, "acme/down", &bytes).expect("push with a node down");
        blobs.push(("acme/down", bytes, loc));
    }
    let down = Pushed { blobs };
    let refs: Vec<&[u8]> = down.blobs.iter().map(|b| &b.1[..]).collect();
    let _ = e
        .put_manifest("acme/down", manifest("v1", &refs))
        .expect("put a manifest with a node down");
    down.read_all(&e);
    for p in down.packs() {
        assert!(o.head(&key_of(p)).unwrap().is_some());
    }
    assert_clean(&e);
    drop(e);

    // Another node again, with an empty cache: what was written with a node down is there.
    let third = another_node(dir.path());
    let e = open(third.path(), &o, 1 << 30, 4096);
    down.read_all(&e);
    pushed.read_all(&e);
}
