//! Reopening and crash repair.

mod common;

use std::io::Write;

use berth_engine::{BlobKey, ManifestRef};
use common::*;

#[test]
fn reopen_after_close_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let small = data(1, 100);
    let large = data(2, 50_000);
    let (ks, ls, kl, ll, mkey);
    {
        let e = open(dir.path());
        (ks, ls) = push(&e, "app", &small);
        (kl, ll) = push(&e, "app", &large);
        let m = manifest("{}", &["t"], &[ks.clone(), kl.clone()]);
        mkey = m.key.clone();
        let _ = e.put_manifest("app", m).unwrap();
    }
    let e = open(dir.path());
    assert_eq!(e.stat_blob("app", &ks).unwrap(), Some(ls));
    assert_eq!(e.stat_blob("app", &kl).unwrap(), Some(ll));
    assert_eq!(e.read_blob(ls).unwrap(), small);
    assert_eq!(e.read_blob(ll).unwrap(), large);
    assert_eq!(
        e.get_manifest("app", ManifestRef::Tag("t"))
            .unwrap()
            .unwrap()
            .key,
        mkey
    );
    assert_eq!(e.catalog(None, 10).unwrap().0, vec!["app"]);
    // the shared pack is appended to again, not replaced
    let (_, ls2) = push(&e, "app", &data(3, 100));
    assert_eq!(ls2.pack, ls.pack);
    assert!(e.check().unwrap().repaired.is_empty());
    assert_clean(&e);
}

#[test]
fn an_upload_session_survives_reopen_and_can_be_appended_to_and_finished() {
    let dir = tempfile::tempdir().unwrap();
    for size in [1000usize, 40_000] {
        let bytes = data(4, size);
        let id;
        {
            let e = open(dir.path());
            let up = e.start_upload("app").unwrap();
            id = up.id;
            e.append_upload("app", &id, 0, &bytes[..size / 3]).unwrap();
        }
        let e = open(dir.path());
        let st = e.upload_status("app", &id).unwrap().unwrap();
        assert_eq!(st.len, (size / 3) as u64);
        e.append_upload("app", &id, st.len, &bytes[size / 3..])
            .unwrap();
        let key = BlobKey::sha256_of(&bytes);
        let loc = e.finish_upload("app", &id, &key).unwrap().into_inner();
        assert_eq!(e.read_blob(loc).unwrap(), bytes);
        assert_clean(&e);
    }
}

fn pack_path(dir: &std::path::Path, id: u64) -> std::path::PathBuf {
    dir.join("packs").join(format!("{id:016x}.pack"))
}

#[test]
fn garbage_past_a_shared_packs_committed_length_is_cut_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (key, loc) = {
        let e = open(dir.path());
        push(&e, "app", b"committed")
    };
    let path = pack_path(dir.path(), loc.pack);
    let committed = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[0xAB; 5000])
        .unwrap();
    let e = open(dir.path());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), committed);
    let report = e.check().unwrap();
    assert!(
        report.repaired.iter().any(|r| r.contains("cut 5000")),
        "{:?}",
        report.repaired
    );
    assert_eq!(
        e.read_blob(e.stat_blob("app", &key).unwrap().unwrap())
            .unwrap(),
        b"committed"
    );
    // appends continue at the committed tail
    let (_, l2) = push(&e, "app", b"next");
    assert_eq!(l2.pack, loc.pack);
    assert_eq!(l2.offset, committed + 96);
    assert_clean(&e);
}

#[test]
fn stray_upload_files_and_unreferenced_pack_files_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (kept_session, lost_session, loc);
    {
        let e = open(dir.path());
        (_, loc) = push(&e, "app", &data(5, 20_000));
        kept_session = e.start_upload("app").unwrap().id;
        lost_session = e.start_upload("app").unwrap().id;
    }
    // a large upload renamed into packs/ whose commit never happened
    std::fs::copy(pack_path(dir.path(), loc.pack), pack_path(dir.path(), 0xFF)).unwrap();
    // an upload file whose session row never committed
    std::fs::write(
        dir.path()
            .join("uploads")
            .join("0123456789abcdef0123456789abcdef"),
        b"x",
    )
    .unwrap();
    // a session whose file was lost
    std::fs::remove_file(dir.path().join("uploads").join(&lost_session)).unwrap();
    let e = open(dir.path());
    assert!(!pack_path(dir.path(), 0xFF).exists());
    assert_eq!(
        files_in(&dir.path().join("uploads")),
        vec![kept_session.clone()]
    );
    assert!(e.upload_status("app", &kept_session).unwrap().is_some());
    assert!(e.upload_status("app", &lost_session).unwrap().is_none());
    let repaired = e.check().unwrap().repaired;
    assert_eq!(repaired.len(), 3, "{repaired:?}");
    assert_clean(&e);
    // new packs never reuse an id that was on disk
    let (_, l2) = push(&e, "app", &data(6, 20_000));
    assert!(l2.pack > 0xFF);
}

#[test]
fn check_reports_a_pack_shorter_than_its_committed_length() {
    let dir = tempfile::tempdir().unwrap();
    let loc = {
        let e = open(dir.path());
        push(&e, "app", &data(7, 20_000)).1
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(pack_path(dir.path(), loc.pack))
        .unwrap();
    f.set_len(loc.offset + 10).unwrap();
    let e = open(dir.path());
    let r = e.check().unwrap();
    assert!(!r.problems.is_empty());
    assert!(
        e.read_blob(loc).is_err(),
        "a short pack is an error, not a panic"
    );
}

#[test]
fn check_with_rehash_finds_flipped_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let loc = {
        let e = open(dir.path());
        push(&e, "app", b"pristine").1
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(pack_path(dir.path(), loc.pack))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"X", loc.offset).unwrap();
    let e = open(dir.path());
    assert!(e.check().unwrap().is_clean(), "structure is intact");
    let r = e
        .check_with(berth_engine::CheckOptions { rehash: true })
        .unwrap();
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
}

#[test]
fn a_large_session_reopened_mid_stream_is_rehashed_from_its_file_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(5, 20 << 20);
    let cut = (12 << 20) + 12345;
    let id;
    {
        let e = open(dir.path());
        id = e.start_upload("app").unwrap().id;
        let mut off = 0;
        for s in bytes[..cut].chunks(256 << 10) {
            off = e.append_upload("app", &id, off, s).unwrap();
        }
        // dropped at once: the pool may be anywhere behind the appends
    }
    let e = open(dir.path());
    let st = e.upload_status("app", &id).unwrap().unwrap();
    assert_eq!(st.len, cut as u64);
    let mut off = st.len;
    for s in bytes[cut..].chunks(100_000) {
        off = e.append_upload("app", &id, off, s).unwrap();
    }
    let key = BlobKey::sha256_of(&bytes);
    let loc = e.finish_upload("app", &id, &key).unwrap().into_inner();
    assert_eq!(e.read_blob(loc).unwrap(), bytes);
    assert_clean(&e);
}
