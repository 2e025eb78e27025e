//! Blob uploads, dedupe, mounts and unlinks.

mod common;

use std::sync::Arc;

use berth_engine::{AppendError, BlobKey, DeleteOutcome, Engine, EngineOptions, FinishError};
use common::*;

#[test]
fn a_small_blob_reads_back_and_is_linked_only_where_pushed() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let bytes = data(1, 1000);
    let (key, loc) = push_chunked(&e, "a/b/c", &bytes, 77);
    assert_eq!(loc.len, 1000);
    assert_eq!(e.read_blob(loc).unwrap(), bytes);
    assert_eq!(e.stat_blob("a/b/c", &key).unwrap(), Some(loc));
    assert_eq!(e.stat_blob("a/b/other", &key).unwrap(), None);
    let f = e.pack_file(loc.pack).unwrap();
    let mut buf = vec![0; 1000];
    f.file().read_exact_at(&mut buf, loc.offset).unwrap();
    assert_eq!(buf, bytes);
    // What the server sends from: a window onto the same bytes, and no further.
    let w = f.window(loc.offset, 1000).unwrap();
    assert_eq!(w.bytes(), &bytes[..]);
    let past = f.window(loc.offset, usize::try_from(1 << 30).unwrap());
    assert_eq!(
        past.err().unwrap().kind(),
        std::io::ErrorKind::UnexpectedEof
    );
    assert_clean(&e);
}

#[test]
fn the_empty_blob_can_be_pushed_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let (key, loc) = push(&e, "r", b"");
    assert_eq!(loc.len, 0);
    assert_eq!(e.read_blob(loc).unwrap(), Vec::<u8>::new());
    assert_eq!(e.stat_blob("r", &key).unwrap(), Some(loc));
}

#[test]
fn a_large_upload_becomes_its_own_pack_without_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let bytes = data(2, 100_000);
    let up = e.start_upload("r").unwrap();
    let upload_path = dir.path().join("uploads").join(&up.id);
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&upload_path).unwrap());
    e.append_upload("r", &up.id, 0, &bytes).unwrap();
    let key = BlobKey::sha256_of(&bytes);
    let loc = e.finish_upload("r", &up.id, &key).unwrap().into_inner();
    assert!(!upload_path.exists(), "the upload file was consumed");
    let pack = dir
        .path()
        .join("packs")
        .join(format!("{:016x}.pack", loc.pack));
    let pack_ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&pack).unwrap());
    assert_eq!(ino, pack_ino, "the upload file itself became the pack");
    assert_eq!(e.read_blob(loc).unwrap(), bytes);
    assert_clean(&e);
}

#[test]
fn dedupe_across_repos_keeps_one_stored_copy() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    for (n, size) in [(3, 500), (4, 50_000)] {
        let bytes = data(n, size);
        let (k1, l1) = push(&e, "one", &bytes);
        let (k2, l2) = push(&e, "two", &bytes);
        let (_, l3) = push(&e, "one", &bytes);
        assert_eq!(k1, k2);
        assert_eq!(l1, l2, "second push links the stored copy");
        assert_eq!(l1, l3);
    }
    let s = e.stats();
    assert_eq!(s.blobs, 2);
    assert_eq!(s.blob_bytes, 50_500);
    assert_eq!(s.repositories, 2);
    // one shared pack + one single-blob pack; duplicate large packs were dropped
    assert_eq!(files_in(&dir.path().join("packs")).len(), 2);
    assert!(files_in(&dir.path().join("uploads")).is_empty());
    assert_clean(&e);
}

#[test]
fn digest_mismatch_discards_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    for size in [10, 10_000] {
        let up = e.start_upload("r").unwrap();
        e.append_upload("r", &up.id, 0, &data(5, size)).unwrap();
        let wrong = BlobKey::sha256_of(b"something else");
        assert!(matches!(
            e.finish_upload("r", &up.id, &wrong),
            Err(FinishError::DigestMismatch)
        ));
        assert_eq!(e.upload_status("r", &up.id).unwrap(), None);
        assert!(matches!(
            e.append_upload("r", &up.id, size as u64, b"x"),
            Err(AppendError::Unknown)
        ));
        assert_eq!(e.stat_blob("r", &wrong).unwrap(), None);
    }
    assert!(files_in(&dir.path().join("uploads")).is_empty());
    assert_eq!(e.stats().blobs, 0);
}

#[test]
fn a_malformed_want_key_is_a_mismatch_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let up = e.start_upload("r").unwrap();
    let bad = BlobKey {
        alg: berth_engine::Alg::Sha256,
        hash: vec![1, 2, 3],
    };
    assert!(matches!(
        e.finish_upload("r", &up.id, &bad),
        Err(FinishError::DigestMismatch)
    ));
}

#[test]
fn sha512_uploads_finish_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    for size in [300, 20_000] {
        let bytes = data(6, size);
        let key = BlobKey::sha512_of(&bytes);
        let up = e.start_upload("r").unwrap();
        e.append_upload("r", &up.id, 0, &bytes[..size / 2]).unwrap();
        e.append_upload("r", &up.id, (size / 2) as u64, &bytes[size / 2..])
            .unwrap();
        let loc = e.finish_upload("r", &up.id, &key).unwrap().into_inner();
        assert_eq!(e.read_blob(loc).unwrap(), bytes);
        assert_eq!(e.stat_blob("r", &key).unwrap(), Some(loc));
    }
    let up = e.start_upload("r").unwrap();
    e.append_upload("r", &up.id, 0, b"abc").unwrap();
    assert!(matches!(
        e.finish_upload("r", &up.id, &BlobKey::sha512_of(b"abd")),
        Err(FinishError::DigestMismatch)
    ));
    assert_clean(&e);
}

#[test]
fn appends_at_the_wrong_offset_are_refused_and_the_session_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let up = e.start_upload("r").unwrap();
    assert_eq!(e.append_upload("r", &up.id, 0, b"hello").unwrap(), 5);
    match e.append_upload("r", &up.id, 0, b"hello") {
        Err(AppendError::Offset { got: 0, have: 5 }) => {}
        other => panic!("expected an offset error, got {other:?}"),
    }
    match e.append_upload("r", &up.id, 9, b"x") {
        Err(AppendError::Offset { got: 9, have: 5 }) => {}
        other => panic!("expected an offset error, got {other:?}"),
    }
    assert_eq!(e.upload_status("r", &up.id).unwrap().unwrap().len, 5);
    // A sync reports the length it made durable, twice alike; only for the session's repo.
    for _ in 0..2 {
        assert_eq!(e.sync_upload("r", &up.id).unwrap().unwrap().len, 5);
    }
    assert_eq!(e.sync_upload("other", &up.id).unwrap(), None);
    assert_eq!(e.append_upload("r", &up.id, 5, b" world").unwrap(), 11);
    let key = BlobKey::sha256_of(b"hello world");
    let loc = e.finish_upload("r", &up.id, &key).unwrap().into_inner();
    assert_eq!(e.read_blob(loc).unwrap(), b"hello world");
    // Ended sessions, finished or cancelled, are not synced; nor unknown ones.
    assert_eq!(e.sync_upload("r", &up.id).unwrap(), None);
    let gone = e.start_upload("r").unwrap();
    assert!(e.cancel_upload("r", &gone.id).unwrap());
    assert_eq!(e.sync_upload("r", &gone.id).unwrap(), None);
    assert_eq!(
        e.sync_upload("r", "0123456789abcdef0123456789abcdef")
            .unwrap(),
        None
    );
    assert_clean(&e);
}

#[test]
fn sessions_are_private_to_their_repository_and_unknown_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let up = e.start_upload("r").unwrap();
    assert_eq!(up.id.len(), 32);
    assert!(matches!(
        e.append_upload("other", &up.id, 0, b"x"),
        Err(AppendError::Unknown)
    ));
    assert_eq!(e.upload_status("other", &up.id).unwrap(), None);
    assert!(matches!(
        e.append_upload("r", "../../meta.redb", 0, b"x"),
        Err(AppendError::Unknown)
    ));
    assert!(matches!(
        e.finish_upload("r", "nope", &BlobKey::sha256_of(b"")),
        Err(FinishError::Unknown)
    ));
    assert!(!e.cancel_upload("other", &up.id).unwrap());
    assert!(e.cancel_upload("r", &up.id).unwrap());
    assert!(!e.cancel_upload("r", &up.id).unwrap());
    assert_eq!(e.upload_status("r", &up.id).unwrap(), None);
    assert!(files_in(&dir.path().join("uploads")).is_empty());
}

#[test]
fn max_upload_bytes_is_enforced_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let opts = EngineOptions {
        max_upload_bytes: Some(10),
        ..opts()
    };
    let e = Engine::open(dir.path(), on(dir.path(), opts)).unwrap();
    let up = e.start_upload("r").unwrap();
    e.append_upload("r", &up.id, 0, b"0123456789").unwrap();
    assert!(matches!(
        e.append_upload("r", &up.id, 10, b"x"),
        Err(AppendError::TooLarge)
    ));
    let loc = e
        .finish_upload("r", &up.id, &BlobKey::sha256_of(b"0123456789"))
        .unwrap();
    assert_eq!(loc.into_inner().len, 10);
}

#[test]
fn idle_sessions_expire_and_their_files_go() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NOW: AtomicU64 = AtomicU64::new(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let opts = EngineOptions {
        upload_expiry_secs: 100,
        ..opts()
    };
    let clock: berth_engine::Clock = Arc::new(|| NOW.load(Ordering::SeqCst));
    let e = Engine::open_with_clock(dir.path(), on(dir.path(), opts), clock).unwrap();
    let old = e.start_upload("r").unwrap();
    NOW.fetch_add(60, Ordering::SeqCst);
    let young = e.start_upload("r").unwrap();
    NOW.fetch_add(60, Ordering::SeqCst);
    assert_eq!(e.expire_uploads().unwrap(), 1);
    assert_eq!(e.upload_status("r", &old.id).unwrap(), None);
    assert!(e.upload_status("r", &young.id).unwrap().is_some());
    assert_eq!(
        files_in(&dir.path().join("uploads")),
        vec![young.id.clone()]
    );
    // touching keeps a session alive
    e.append_upload("r", &young.id, 0, b"x").unwrap();
    NOW.fetch_add(90, Ordering::SeqCst);
    assert_eq!(e.expire_uploads().unwrap(), 0);
    assert_eq!(e.stats().uploads_open, 1);
}

#[test]
fn mount_links_only_what_the_source_repository_holds() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let (key, loc) = push(&e, "src", b"layer");
    let absent = BlobKey::sha256_of(b"absent");
    assert!(e.mount_blob("dst", &absent, Some("src")).unwrap().is_none());
    assert!(e
        .mount_blob("dst", &key, Some("elsewhere"))
        .unwrap()
        .is_none());
    assert_eq!(e.stat_blob("dst", &key).unwrap(), None);
    let m = e.mount_blob("dst", &key, Some("src")).unwrap().unwrap();
    assert_eq!(m.into_inner(), loc);
    assert_eq!(e.stat_blob("dst", &key).unwrap(), Some(loc));
    // from = None mounts a blob stored anywhere
    assert_eq!(
        e.mount_blob("any", &key, None)
            .unwrap()
            .unwrap()
            .into_inner(),
        loc
    );
    assert!(e.mount_blob("any", &absent, None).unwrap().is_none());
    // mounting again is a no-op success
    assert!(e.mount_blob("dst", &key, Some("src")).unwrap().is_some());
    let (cat, more) = e.catalog(None, 10).unwrap();
    assert_eq!(cat, vec!["any", "dst", "src"]);
    assert!(!more);
}

#[test]
fn unlink_removes_only_that_repositorys_link() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let (key, loc) = push(&e, "a", b"shared");
    push(&e, "b", b"shared");
    assert_eq!(
        e.unlink_blob("nobody", &key).unwrap(),
        DeleteOutcome::RepoUnknown
    );
    assert_eq!(e.unlink_blob("a", &key).unwrap(), DeleteOutcome::Deleted);
    assert_eq!(e.unlink_blob("a", &key).unwrap(), DeleteOutcome::NotFound);
    assert_eq!(e.stat_blob("a", &key).unwrap(), None);
    assert_eq!(e.stat_blob("b", &key).unwrap(), Some(loc));
    assert_eq!(e.read_blob(loc).unwrap(), b"shared");
    assert_clean(&e);
}

#[test]
fn concurrent_uploads_of_the_same_blob_all_succeed_and_store_one_copy() {
    for size in [2000usize, 300_000] {
        let dir = tempfile::tempdir().unwrap();
        let e = Arc::new(open(dir.path()));
        let bytes = Arc::new(data(7, size));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let e = e.clone();
                let bytes = bytes.clone();
                std::thread::spawn(move || push_chunked(&e, &format!("r{}", i % 3), &bytes, 4096))
            })
            .collect();
        let locs: Vec<_> = threads.into_iter().map(|t| t.join().unwrap().1).collect();
        assert!(locs.iter().all(|l| *l == locs[0]), "{locs:?}");
        assert_eq!(e.read_blob(locs[0]).unwrap(), *bytes);
        assert_eq!(e.stats().blobs, 1);
        assert_eq!(files_in(&dir.path().join("packs")).len(), 1, "size {size}");
        assert!(files_in(&dir.path().join("uploads")).is_empty());
        assert_clean(&e);
    }
}

#[test]
fn concurrent_different_uploads_all_land_intact() {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(open(dir.path()));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                (0..20u64)
                    .map(|i| {
                        let size = if i % 5 == 0 {
                            9000
                        } else {
                            (i * 37 + t) as usize
                        };
                        let bytes = data(t * 1000 + i, size);
                        let (k, l) = push_chunked(&e, &format!("repo{t}"), &bytes, 1000);
                        (k, l, bytes)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    for (k, l, bytes) in &all {
        assert_eq!(&e.read_blob(*l).unwrap(), bytes, "{k}");
    }
    assert_eq!(e.stats().blobs, all.len() as u64);
    assert_clean(&e);
}

#[test]
fn a_second_process_cannot_open_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let _e = open(dir.path());
    let err = match Engine::open(dir.path(), on(dir.path(), opts())) {
        Err(e) => e,
        Ok(_) => panic!("second open succeeded"),
    };
    assert!(err.detail().contains("in use"), "{err}");
    assert!(
        err.detail().contains(&dir.path().display().to_string()),
        "{err}"
    );
}

/// Slices of uneven sizes, so the pool's reads and the write-back ranges never line up
/// with the appends.
fn uneven_slices(bytes: &[u8], seed: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut i = seed;
    while !rest.is_empty() {
        let n = (1 + (i * 7919) % (300 << 10)).min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
        i += 1;
    }
    out
}

#[test]
fn a_large_upload_hashed_behind_its_appends_verifies_against_its_digest_alone() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    // Past several write-back ranges (8 MiB), so early write-out runs while appending.
    let bytes = data(21, 40 << 20);
    let key = BlobKey::sha256_of(&bytes);
    let mut wrong = key.clone();
    wrong.hash[31] ^= 1;
    let (a, b) = (e.start_upload("r").unwrap(), e.start_upload("r").unwrap());
    let (mut oa, mut ob) = (0, 0);
    for s in uneven_slices(&bytes, 3) {
        oa = e.append_upload("r", &a.id, oa, s).unwrap();
        ob = e.append_upload("r", &b.id, ob, s).unwrap();
    }
    assert!(matches!(
        e.finish_upload("r", &b.id, &wrong),
        Err(FinishError::DigestMismatch)
    ));
    let loc = e.finish_upload("r", &a.id, &key).unwrap().into_inner();
    assert_eq!(e.read_blob(loc).unwrap(), bytes);
    assert!(files_in(&dir.path().join("uploads")).is_empty());
    assert_clean(&e);
}

#[test]
fn many_sessions_streaming_at_once_each_finish_with_their_own_digest() {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(open(dir.path()));
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                let bytes = data(100 + t, (9 << 20) + t as usize * 4099);
                let key = BlobKey::sha256_of(&bytes);
                let up = e.start_upload("r").unwrap();
                let mut off = 0;
                for s in uneven_slices(&bytes, t as usize) {
                    off = e.append_upload("r", &up.id, off, s).unwrap();
                }
                let loc = e.finish_upload("r", &up.id, &key).unwrap().into_inner();
                (loc, bytes)
            })
        })
        .collect();
    for t in threads {
        let (loc, bytes) = t.join().unwrap();
        assert_eq!(e.read_blob(loc).unwrap(), bytes);
    }
    assert_clean(&e);
}

#[test]
fn below_min_free_bytes_uploads_are_refused_as_full_and_deletes_still_commit() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let (key, _) = push(&e, "r", &data(3, 5000));
    let up = e.start_upload("r").unwrap();
    drop(e);
    let free = berth_engine::fs_space(dir.path()).unwrap().free;
    let e = Engine::open(
        dir.path(),
        on(
            dir.path(),
            EngineOptions {
                min_free_bytes: Some(free.saturating_mul(4)),
                ..opts()
            },
        ),
    )
    .unwrap();
    let err = e.start_upload("r").unwrap_err();
    let msg = err.full_message().expect("refused as full");
    assert!(msg.contains("store is full"), "{msg}");
    assert!(msg.contains("min_free_space"), "{msg}");
    assert!(!msg.contains(&dir.path().display().to_string()), "{msg}");
    // An upload in progress cannot take the reserve either.
    match e.append_upload("r", &up.id, 0, b"abc") {
        Err(AppendError::Store(s)) => assert!(s.full_message().is_some(), "{s}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(e.unlink_blob("r", &key).unwrap(), DeleteOutcome::Deleted);
    assert!(e.health().failing.is_none());
    assert_eq!(e.health().min_free_bytes, free.saturating_mul(4));
    drop(e);
    // Off: nothing is refused.
    let e = Engine::open(
        dir.path(),
        on(
            dir.path(),
            EngineOptions {
                min_free_bytes: Some(0),
                ..opts()
            },
        ),
    )
    .unwrap();
    push(&e, "r", &data(4, 100));
    assert_clean(&e);
}

/// A layer pushed as a blob streams back through `blob_reader` (its own pack when large,
/// the shared pack when small), byte-exact, and lists as the tar it is.
#[test]
fn blobs_stream_back_through_a_reader_and_layers_list_from_the_store() {
    use berth_engine::package::{scan_layer, ScanLimits};
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let layer = |files: usize, size: usize| {
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..files {
            let mut h = tar::Header::new_gnu();
            h.set_size(size as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, format!("usr/share/f{i}"), &data(i as u64, size)[..])
                .unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    };
    // Random contents do not compress: 40 files of 64 KiB make a blob past small_blob_bytes.
    for (blob, files) in [(layer(40, 64 << 10), 40), (layer(3, 100), 3)] {
        let (_, loc) = push(&e, "app", &blob);
        let mut back = Vec::new();
        e.blob_reader(loc).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == blob, "{} bytes back of {}", back.len(), blob.len());
        let listing = scan_layer(e.blob_reader(loc).unwrap(), &[], &ScanLimits::default());
        assert!(listing.complete(), "{listing:?}");
        assert_eq!(listing.entries().count(), files);
    }
}

/// A layer's listing is kept by its blob's key, across a reopen, and goes when garbage
/// collection removes the blob; a blob no longer stored gets none.
#[test]
fn a_layer_listing_is_kept_with_its_blob_and_collected_with_it() {
    use berth_engine::package::{scan_layer, ScanLimits};
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "etc/os-release", &b"A=1"[..])
        .unwrap();
    let blob = b.into_inner().unwrap();
    let (key, loc) = push(&e, "app", &blob);
    let capture: &[&[u8]] = &[b"etc/os-release"];
    let listing = scan_layer(e.blob_reader(loc).unwrap(), capture, &ScanLimits::default());
    assert_eq!(e.layer_listing(&key).unwrap(), None);
    e.put_layer_listing(&key, &listing).unwrap();
    drop(e);
    let e = open(dir.path());
    assert_eq!(e.layer_listing(&key).unwrap().as_ref(), Some(&listing));
    assert_eq!(e.unlink_blob("app", &key).unwrap(), DeleteOutcome::Deleted);
    let report = e
        .collect_garbage(berth_engine::GcOptions::standard())
        .unwrap();
    assert_eq!(report.blobs_removed, 1, "{report:?}");
    assert_eq!(e.layer_listing(&key).unwrap(), None);
    e.put_layer_listing(&key, &listing).unwrap();
    assert_eq!(
        e.layer_listing(&key).unwrap(),
        None,
        "not stored, not listed"
    );
    assert_clean(&e);
}
