//! Garbage collection: what no repository links goes, with its space; what is linked stays
//! byte-exact, also while pushes, mounts and deletes run alongside.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use berth_engine::{BlobKey, DeleteOutcome, Engine, EngineOptions, GcError, GcOptions, GcReport};
use common::*;

/// Small blobs up to 4 KiB share packs of at most 16 KiB, so a few make several packs.
fn small_packs() -> EngineOptions {
    EngineOptions {
        shared_pack_bytes: 16 << 10,
        ..opts()
    }
}

fn gc(e: &Engine) -> GcReport {
    e.collect_garbage(GcOptions::standard()).expect("gc")
}

fn dry(e: &Engine) -> GcReport {
    e.collect_garbage(GcOptions {
        dry_run: true,
        ..GcOptions::standard()
    })
    .expect("dry gc")
}

/// A store whose clock (unix seconds) the test moves.
fn with_clock(dir: &Path) -> (Engine, Arc<AtomicU64>) {
    let now = Arc::new(AtomicU64::new(1_000_000));
    (open_at(dir, &now), now)
}

/// The store in `dir` (re)opened on the clock `now`.
fn open_at(dir: &Path, now: &Arc<AtomicU64>) -> Engine {
    let now = now.clone();
    Engine::open_with_clock(dir, on(dir, opts()), Arc::new(move || now.load(SeqCst))).unwrap()
}

fn packs(dir: &Path) -> Vec<String> {
    files_in(&dir.join("packs"))
}

#[test]
fn a_large_blob_nobody_links_loses_its_pack_and_linked_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let (a, b) = (data(1, 50_000), data(2, 60_000));
    let (ka, la) = push(&e, "r1", &a);
    let (kb, lb) = push(&e, "r1", &b);
    push(&e, "r2", &b);
    assert_eq!(packs(dir.path()).len(), 2);
    assert_eq!(gc(&e).blobs_removed, 0, "everything is linked");

    assert_eq!(e.unlink_blob("r1", &ka).unwrap(), DeleteOutcome::Deleted);
    assert_eq!(e.unlink_blob("r1", &kb).unwrap(), DeleteOutcome::Deleted);
    let r = gc(&e);
    assert_eq!(
        r,
        GcReport {
            blobs_removed: 1,
            blob_bytes_removed: a.len() as u64,
            packs_removed: 1,
            pack_bytes_removed: la.offset + la.len,
            ..GcReport::default()
        }
    );
    assert_eq!(packs(dir.path()).len(), 1, "a's pack file is gone");
    assert_eq!(e.stat_blob("r2", &kb).unwrap(), Some(lb));
    assert_eq!(e.read_blob(lb).unwrap(), b);
    assert_clean(&e);
    assert_eq!(gc(&e), GcReport::default(), "nothing left to do");

    // The blob can be pushed again, and is stored again.
    let (_, la2) = push(&e, "r3", &a);
    assert_ne!(la2.pack, la.pack);
    assert_eq!(e.read_blob(la2).unwrap(), a);
    drop(e);
    let e = open(dir.path());
    assert_eq!(e.read_blob(la2).unwrap(), a);
    assert_eq!(e.read_blob(lb).unwrap(), b);
    assert_clean(&e);
}

#[test]
fn shared_packs_mostly_dead_are_compacted_and_their_live_blobs_keep_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), on(dir.path(), small_packs())).unwrap();
    let blobs: Vec<Vec<u8>> = (0..20).map(|i| data(100 + i, 3000)).collect();
    let pushed: Vec<_> = blobs.iter().map(|b| push(&e, "r", b)).collect();
    let first = pushed[0].1.pack;
    let before = packs(dir.path()).len();
    assert!(before >= 4, "several shared packs: {before}");
    // Keep one blob in four; the rest are deleted.
    for (i, (k, _)) in pushed.iter().enumerate() {
        if i % 4 != 0 {
            e.unlink_blob("r", k).unwrap();
        }
    }
    let would = dry(&e);
    assert!(would.dry_run);
    assert_eq!(packs(dir.path()).len(), before, "a dry run changes nothing");
    assert_eq!(e.stat_blob("r", &pushed[0].0).unwrap(), Some(pushed[0].1));

    let r = gc(&e);
    assert_eq!(r.blobs_removed, 15);
    assert_eq!(r.blob_bytes_removed, 15 * 3000);
    assert!(r.blobs_moved >= 1 && r.packs_removed >= 2, "{r:?}");
    assert_eq!(
        GcReport {
            dry_run: true,
            ..r.clone()
        },
        would,
        "the dry run foretold it"
    );
    assert!(packs(dir.path()).len() < before);
    let old = e.pack_file(first).unwrap();
    for (i, (k, _)) in pushed.iter().enumerate() {
        let now = e.stat_blob("r", k).unwrap();
        if i % 4 == 0 {
            let loc = now.expect("a kept blob is still linked");
            assert_ne!(loc.pack, first, "moved out of the compacted pack");
            assert_eq!(e.read_blob(loc).unwrap(), blobs[i]);
        } else {
            assert_eq!(now, None);
        }
    }
    // A pull that held the old pack still reads it.
    let w = old.window(pushed[0].1.offset, 3000).unwrap();
    assert_eq!(w.bytes(), &blobs[0][..]);
    assert_clean(&e);
    drop((w, old, e));

    let e = Engine::open(dir.path(), on(dir.path(), small_packs())).unwrap();
    assert_clean(&e);
    for (i, (k, _)) in pushed.iter().enumerate().filter(|(i, _)| i % 4 == 0) {
        let loc = e.stat_blob("r", k).unwrap().unwrap();
        assert_eq!(e.read_blob(loc).unwrap(), blobs[i]);
    }
    // Nothing more to sweep. The pack appended to before the restart is not the one
    // appended to now (the newest is), so its dead blob is compacted away now, once.
    let r = gc(&e);
    assert_eq!(
        (r.blobs_removed, r.blobs_moved, r.packs_removed),
        (0, 1, 1),
        "{r:?}"
    );
    assert_eq!(gc(&e), GcReport::default());
    for (i, (k, _)) in pushed.iter().enumerate().filter(|(i, _)| i % 4 == 0) {
        let loc = e.stat_blob("r", k).unwrap().unwrap();
        assert_eq!(e.read_blob(loc).unwrap(), blobs[i]);
    }
    assert_clean(&e);
}

#[test]
fn a_blob_linked_anywhere_or_being_appended_to_is_never_collected() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), on(dir.path(), small_packs())).unwrap();
    let small = data(7, 100);
    let (k, loc) = push(&e, "a", &small);
    // Mounted elsewhere, then deleted where it was pushed: still linked from "b".
    let mounted = e.mount_blob("b", &k, Some("a")).unwrap().unwrap();
    assert_eq!(mounted.into_inner(), loc);
    e.unlink_blob("a", &k).unwrap();
    let r = gc(&e);
    assert_eq!(r.blobs_removed, 0);
    // The pack being appended to is never compacted, however dead.
    let (k2, _) = push(&e, "a", &data(8, 200));
    e.unlink_blob("a", &k2).unwrap();
    let r = gc(&e);
    assert_eq!((r.blobs_removed, r.blobs_moved, r.packs_removed), (1, 0, 0));
    assert_eq!(e.stat_blob("b", &k).unwrap(), Some(loc));
    assert_eq!(e.read_blob(loc).unwrap(), small);
    assert_clean(&e);
}

#[test]
fn expired_upload_sessions_are_collected_with_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let (e, now) = with_clock(dir.path());
    let up = e.start_upload("r").unwrap();
    e.append_upload("r", &up.id, 0, b"abandoned").unwrap();
    e.sync_upload("r", &up.id).unwrap();
    assert_eq!(gc(&e).uploads_expired, 0);
    now.fetch_add(opts().upload_expiry_secs + 1, SeqCst);
    assert_eq!(dry(&e).uploads_expired, 1, "a dry run counts it");
    assert!(
        e.upload_status("r", &up.id).unwrap().is_some(),
        "and keeps it"
    );
    assert_eq!(gc(&e).uploads_expired, 1);
    assert!(e.upload_status("r", &up.id).unwrap().is_none());
    assert!(files_in(&dir.path().join("uploads")).is_empty());
}

/// Pushes, mounts and deletes race repeated collections; afterwards every blob still
/// linked reads back exactly, nothing unlinked is left, and the store checks clean.
#[test]
fn collections_racing_pushes_mounts_and_deletes_lose_nothing_linked() {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(Engine::open(dir.path(), on(dir.path(), small_packs())).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let (e, stop) = (e.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(SeqCst) {
                gc(&e);
                runs += 1;
            }
            runs
        })
    };
    let writers: Vec<_> = (0..3u64)
        .map(|w| {
            let e = e.clone();
            std::thread::spawn(move || {
                let mut kept: Vec<(String, BlobKey, Vec<u8>)> = Vec::new();
                for i in 0..60u64 {
                    // Few distinct contents, so pushes often meet a blob being collected;
                    // every fifth is large (a pack of its own).
                    let n = if i % 5 == 0 { 20_000 } else { 1500 };
                    let bytes = data(i % 7 + 1000 * (i % 5), n);
                    let repo = format!("w{w}/r{}", i % 3);
                    let (k, _) = push(&e, &repo, &bytes);
                    if i % 2 == 0 {
                        e.unlink_blob(&repo, &k).unwrap();
                        kept.retain(|(r, kk, _)| !(r == &repo && kk == &k));
                    } else {
                        let other = format!("w{w}/m{i}");
                        if e.mount_blob(&other, &k, Some(&repo)).unwrap().is_some() {
                            kept.push((other, k.clone(), bytes.clone()));
                        }
                        kept.push((repo, k, bytes));
                    }
                }
                kept
            })
        })
        .collect();
    let kept: Vec<_> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    stop.store(true, SeqCst);
    assert!(collector.join().unwrap() > 0);
    gc(&e);
    for (repo, k, bytes) in &kept {
        let loc = e
            .stat_blob(repo, k)
            .unwrap()
            .unwrap_or_else(|| panic!("{k} gone from {repo}"));
        assert_eq!(&e.read_blob(loc).unwrap(), bytes, "{k} in {repo}");
    }
    assert_eq!(dry(&e).blobs_removed, 0);
    assert_clean(&e);
    drop(e);
    let e = Engine::open(dir.path(), on(dir.path(), small_packs())).unwrap();
    assert_clean(&e);
}

#[test]
fn concurrent_collections_remove_each_blob_once() {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(open(dir.path()));
    for i in 0..200 {
        let (k, _) = push(&e, "r", &data(i, 500));
        e.unlink_blob("r", &k).unwrap();
    }
    let results: Vec<_> = (0..4)
        .map(|_| {
            let e = e.clone();
            std::thread::spawn(move || e.collect_garbage(GcOptions::standard()))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let removed: u64 = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.blobs_removed)
        .sum();
    assert_eq!(removed, 200, "each blob removed once");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(r, GcError::Busy), "{r}");
    }
}

/// A deleted pack stays open for lookups made just before its deletion, for a minute of
/// the store's clock; then it is closed and no lookup finds it.
#[test]
fn a_deleted_pack_stays_open_for_a_grace_minute() {
    let dir = tempfile::tempdir().unwrap();
    let (e, now) = with_clock(dir.path());
    let big = data(5, 50_000);
    let (k, loc) = push(&e, "r", &big);
    e.unlink_blob("r", &k).unwrap();
    assert_eq!(gc(&e).packs_removed, 1);
    let f = e.pack_file(loc.pack).expect("still open within the grace");
    assert_eq!(f.window(loc.offset, big.len()).unwrap().bytes(), &big[..]);
    drop(f);
    now.fetch_add(59, SeqCst);
    e.close_retired_packs();
    assert!(e.pack_file(loc.pack).is_ok(), "59 s on");
    now.fetch_add(1, SeqCst);
    e.close_retired_packs();
    assert!(e.pack_file(loc.pack).is_err(), "closed after a minute");
}

/// A shared pack whose live blob cannot be read is kept with that blob, and the
/// collection goes on without failing anyone else's writes.
#[test]
fn a_live_blob_that_cannot_be_read_keeps_its_pack_and_fails_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), on(dir.path(), small_packs())).unwrap();
    let blobs: Vec<Vec<u8>> = (0..6).map(|i| data(300 + i, 3000)).collect();
    let pushed: Vec<_> = blobs.iter().map(|b| push(&e, "r", b)).collect();
    let first = pushed[0].1.pack;
    assert_eq!(pushed[4].1.pack, first);
    assert_ne!(
        pushed[5].1.pack, first,
        "the sixth starts the pack appended to"
    );
    for (k, _) in &pushed[..4] {
        e.unlink_blob("r", k).unwrap();
    }
    // The kept blob is the pack's last: cut its tail off.
    let path = dir.path().join("packs").join(format!("{first:016x}.pack"));
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(pushed[4].1.offset + 100).unwrap();
    drop(f);

    let r = gc(&e);
    assert_eq!(r.blobs_removed, 4);
    assert_eq!(
        (r.blobs_unreadable, r.blobs_moved, r.packs_removed),
        (1, 0, 0)
    );
    assert!(path.exists(), "the pack stays with its unreadable blob");
    assert_eq!(
        e.stats().failed_packs,
        0,
        "the pack appended to is not latched"
    );
    let (_, loc) = push(&e, "r", &data(400, 2000));
    assert_eq!(e.read_blob(loc).unwrap(), data(400, 2000));
}

/// A manifest whose blob was deleted from its repository does not make the store fail its
/// check once the bytes are collected.
#[test]
fn the_store_checks_clean_after_collecting_a_blob_a_manifest_named() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let (layer, _) = push(&e, "r", &data(500, 50_000));
    let (config, _) = push(&e, "r", b"{}");
    let m = manifest(r#"{"m":1}"#, &["v1"], &[config.clone(), layer.clone()]);
    let _ = e.put_manifest("r", m).unwrap();
    e.unlink_blob("r", &layer).unwrap();
    assert_eq!(gc(&e).blobs_removed, 1);
    assert_clean(&e);
}

const DAY: u64 = 24 * 3600;

/// Deleting a manifest gives its blobs' space back once nothing else names them and
/// nobody used them for a day; a blob pushed without a manifest goes the same way, while
/// blobs a manifest references stay.
#[test]
fn blobs_of_a_deleted_manifest_go_after_a_day_unused() {
    let dir = tempfile::tempdir().unwrap();
    let (e, now) = with_clock(dir.path());
    let (layer_bytes, shared_bytes) = (data(600, 50_000), data(601, 40_000));
    let (layer, ll) = push(&e, "r", &layer_bytes);
    let (shared, _) = push(&e, "r", &shared_bytes);
    let (config, _) = push(&e, "r", b"{\"a\":1}");
    let (orphan, _) = push(&e, "r", &data(602, 30_000));
    let m1 = manifest(
        r#"{"m":1}"#,
        &["v1"],
        &[config.clone(), layer.clone(), shared.clone()],
    );
    let m1_key = m1.key.clone();
    let _ = e.put_manifest("r", m1).unwrap();
    let m2 = manifest(r#"{"m":2}"#, &["v2"], &[config.clone(), shared.clone()]);
    let _ = e.put_manifest("r", m2).unwrap();
    assert_eq!(gc(&e), GcReport::default(), "everything was used just now");

    now.fetch_add(DAY + 1, SeqCst);
    let r = gc(&e);
    assert_eq!(
        (r.links_removed, r.blobs_removed),
        (1, 1),
        "the orphan: {r:?}"
    );
    assert_eq!(e.stat_blob("r", &orphan).unwrap(), None);

    assert_eq!(
        e.delete_manifest("r", berth_engine::ManifestRef::Key(&m1_key))
            .unwrap(),
        DeleteOutcome::Deleted
    );
    let would = dry(&e);
    assert_eq!(
        (would.links_removed, would.blobs_removed),
        (1, 1),
        "{would:?}"
    );
    let r = gc(&e);
    assert_eq!(
        (r.links_removed, r.blobs_removed, r.packs_removed),
        (1, 1, 1),
        "the layer only v1 named: {r:?}"
    );
    assert!(!dir
        .path()
        .join("packs")
        .join(format!("{:016x}.pack", ll.pack))
        .exists());
    for (k, b) in [(&shared, &shared_bytes[..]), (&config, &b"{\"a\":1}"[..])] {
        let loc = e.stat_blob("r", k).unwrap().expect("v2 still names it");
        assert_eq!(e.read_blob(loc).unwrap(), b);
    }
    assert_clean(&e);
}

/// A client that found a blob (HEAD) or mounted it may name it in a manifest next: the
/// link stays a day from then, and a day from the store's open.
#[test]
fn a_link_looked_up_mounted_or_opened_recently_stays() {
    let dir = tempfile::tempdir().unwrap();
    let (e, now) = with_clock(dir.path());
    let (a, _) = push(&e, "r", &data(700, 20_000));
    let (b, _) = push(&e, "r", &data(701, 20_000));
    let (c, _) = push(&e, "r", &data(703, 20_000));
    now.fetch_add(DAY - 10, SeqCst);
    assert!(e.stat_blob("r", &a).unwrap().is_some(), "a HEAD");
    // The store's own look (the package indexer) is no use of the link.
    assert!(e.peek_blob("r", &c).unwrap().is_some());
    let _ = e.mount_blob("s", &b, Some("r")).unwrap().unwrap();
    now.fetch_add(20, SeqCst);
    let r = gc(&e);
    assert_eq!(
        (r.links_removed, r.blobs_removed),
        (1, 1),
        "only c, unused for a day: {r:?}"
    );
    assert!(e.stat_blob("r", &c).unwrap().is_none());
    assert!(e.stat_blob("r", &a).unwrap().is_some());
    assert!(
        e.stat_blob("r", &b).unwrap().is_some(),
        "the mount's source"
    );
    assert!(
        e.stat_blob("s", &b).unwrap().is_some(),
        "mounted just before"
    );

    // Reopened: every link counts as used at open.
    drop(e);
    let e = open_at(dir.path(), &now);
    now.fetch_add(DAY - 1, SeqCst);
    assert_eq!(gc(&e).links_removed, 0);
    now.fetch_add(1, SeqCst);
    let r = gc(&e);
    assert_eq!(
        (r.links_removed, r.blobs_removed),
        (3, 2),
        "a in r, b in r and s; then a and b: {r:?}"
    );
    assert_clean(&e);

    // With the grace off, links stay until deleted.
    let (d, _) = push(&e, "r", &data(702, 100));
    now.fetch_add(10 * DAY, SeqCst);
    let keep = GcOptions {
        unreferenced_after: None,
        ..GcOptions::standard()
    };
    assert_eq!(e.collect_garbage(keep).unwrap().links_removed, 0);
    assert!(e.stat_blob("r", &d).unwrap().is_some());
}

/// A blob collected from a repository and pushed or mounted there again is found at once.
#[test]
fn a_link_made_again_after_a_collection_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let (e, now) = with_clock(dir.path());
    let (bytes_a, bytes_b) = (data(800, 20_000), data(801, 3000));
    let (a, _) = push(&e, "r", &bytes_a);
    let (b, _) = push(&e, "r", &bytes_b);
    push(&e, "keep", &bytes_b);
    now.fetch_add(DAY + 1, SeqCst);
    let r = gc(&e);
    assert_eq!(r.links_removed, 3, "{r:?}");
    assert!(e.stat_blob("r", &a).unwrap().is_none());
    let (_, la) = push(&e, "r", &bytes_a);
    assert_eq!(e.stat_blob("r", &a).unwrap(), Some(la), "pushed again");
    assert!(e.stat_blob("r", &b).unwrap().is_none());
    let (_, lb) = push(&e, "keep", &bytes_b);
    let mounted = e.mount_blob("r", &b, Some("keep")).unwrap().unwrap();
    assert_eq!(mounted.into_inner(), lb);
    assert_eq!(e.stat_blob("r", &b).unwrap(), Some(lb), "mounted again");
}

/// A layer clients may fetch from elsewhere (`urls`, non-distributable) is not required,
/// but once pushed it is kept like any layer its manifest names.
#[test]
fn a_pushed_external_layer_stays_while_its_manifest_does() {
    let dir = tempfile::tempdir().unwrap();
    let (e, now) = with_clock(dir.path());
    let (config, _) = push(&e, "r", b"{}");
    let (foreign, _) = push(&e, "r", &data(900, 20_000));
    let absent = BlobKey::sha256_of(b"never pushed");
    let mut m = manifest(r#"{"m":"win"}"#, &["v1"], std::slice::from_ref(&config));
    m.external = vec![foreign.clone(), absent];
    let key = m.key.clone();
    let _ = e
        .put_manifest("r", m)
        .expect("an external layer need not be here");
    now.fetch_add(DAY + 1, SeqCst);
    assert_eq!(gc(&e).links_removed, 0);
    assert!(e.stat_blob("r", &foreign).unwrap().is_some());
    e.delete_manifest("r", berth_engine::ManifestRef::Key(&key))
        .unwrap();
    now.fetch_add(DAY + 1, SeqCst);
    let r = gc(&e);
    assert_eq!((r.links_removed, r.blobs_removed), (2, 2), "{r:?}");
    assert_clean(&e);
}

/// A cancelled collection stops before its next step and says what it did; the cancel
/// is then spent, and the next run does the rest.
#[test]
fn a_cancelled_collection_stops_and_the_next_one_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let (k, _) = push(&e, "r", &data(950, 20_000));
    e.unlink_blob("r", &k).unwrap();
    e.cancel_garbage_collection();
    let r = gc(&e);
    assert_eq!(r.blobs_removed, 0, "cancelled before its sweep: {r:?}");
    assert_eq!(gc(&e).blobs_removed, 1);
}

#[test]
fn the_byte_totals_metrics_read_follow_pushes_and_collections_and_survive_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let pack_sizes = |dir: &std::path::Path| -> u64 {
        std::fs::read_dir(dir.join("packs"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    {
        let e = Engine::open(dir.path(), small_packs()).unwrap();
        let (ka, _) = push(&e, "r", &data(1, 3000));
        push(&e, "r", &data(2, 9000));
        push(&e, "q", &data(3, 500));
        let s = e.stats();
        assert_eq!(s.blob_bytes, 12_500);
        assert_eq!(
            s.pack_bytes,
            pack_sizes(dir.path()),
            "every pack byte is committed"
        );
        e.unlink_blob("r", &ka).unwrap();
        e.collect_garbage(GcOptions {
            compact_below: 1.0,
            ..GcOptions::standard()
        })
        .unwrap();
        let s = e.stats();
        assert_eq!(s.blob_bytes, 9500);
        assert_clean(&e);
    }
    // A store written before the totals were kept: they are counted at open.
    {
        let db = redb::Database::open(dir.path().join("meta.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
                .unwrap();
            assert!(meta.remove("totals").unwrap().is_some());
        }
        txn.commit().unwrap();
    }
    let e = Engine::open(dir.path(), small_packs()).unwrap();
    assert_eq!(e.stats().blob_bytes, 9500);
    assert_clean(&e);
}
