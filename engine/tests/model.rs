//! Random operation sequences against a `BTreeMap` model, reopening the store in between.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use std::sync::Arc;

use berth_engine::vfs::sim::{FaultKind, SimFs};
use berth_engine::{
    system_clock, BlobKey, CheckOptions, DeleteOutcome, Engine, EngineOptions, ManifestRef,
    PutManifestError,
};
use common::*;
use proptest::prelude::*;

const REPOS: [&str; 3] = ["a/x", "a/y", "b/z"];
const TAGS: [&str; 3] = ["latest", "v1", "v2"];

#[derive(Clone, Debug)]
enum Op {
    Push {
        repo: usize,
        blob: usize,
    },
    Unlink {
        repo: usize,
        blob: usize,
    },
    Mount {
        repo: usize,
        blob: usize,
        from: Option<usize>,
    },
    Put {
        repo: usize,
        man: usize,
        tag: Option<usize>,
    },
    DeleteTag {
        repo: usize,
        tag: usize,
    },
    DeleteManifest {
        repo: usize,
        man: usize,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0..REPOS.len();
    prop_oneof![
        4 => (r.clone(), 0..5usize).prop_map(|(repo, blob)| Op::Push { repo, blob }),
        1 => (r.clone(), 0..5usize).prop_map(|(repo, blob)| Op::Unlink { repo, blob }),
        1 => (r.clone(), 0..5usize, proptest::option::of(r.clone()))
            .prop_map(|(repo, blob, from)| Op::Mount { repo, blob, from }),
        3 => (r.clone(), 0..4usize, proptest::option::of(0..TAGS.len()))
            .prop_map(|(repo, man, tag)| Op::Put { repo, man, tag }),
        1 => (r.clone(), 0..TAGS.len()).prop_map(|(repo, tag)| Op::DeleteTag { repo, tag }),
        1 => (r.clone(), 0..4usize).prop_map(|(repo, man)| Op::DeleteManifest { repo, man }),
        1 => Just(Op::Reopen),
    ]
}

/// Blob `i`: small ones and one past `small_blob_bytes`, so both pack paths are exercised.
fn blob(i: usize) -> Vec<u8> {
    data(i as u64 + 100, if i == 4 { 6000 } else { i * 10 })
}

/// Manifest `i` references blobs `i` and `i + 1`.
fn man(i: usize) -> (BlobKey, Vec<u8>, Vec<BlobKey>) {
    let body = format!("{{\"manifest\":{i}}}").into_bytes();
    let refs = vec![
        BlobKey::sha256_of(&blob(i)),
        BlobKey::sha256_of(&blob(i + 1)),
    ];
    (BlobKey::sha256_of(&body), body, refs)
}

#[derive(Clone, Default)]
struct Model {
    stored: BTreeSet<BlobKey>,
    links: BTreeSet<(String, BlobKey)>,
    repos: BTreeSet<String>,
    manifests: BTreeSet<(String, BlobKey)>,
    tags: BTreeMap<(String, String), BlobKey>,
}

/// Applies `op` to the store and to the model. The model takes the op's effect before the
/// store is asked, so that when the store fails (`Err`, a storage error: the disk failed)
/// `m` holds the state had the op gone through; the caller keeps the state before.
fn try_apply(e: &Engine, m: &mut Model, op: &Op) -> Result<(), String> {
    let s = |r: &dyn std::fmt::Display| r.to_string();
    match *op {
        Op::Push { repo, blob: b } => {
            let bytes = blob(b);
            let k = BlobKey::sha256_of(&bytes);
            m.stored.insert(k.clone());
            m.links.insert((REPOS[repo].into(), k.clone()));
            m.repos.insert(REPOS[repo].into());
            let up = e.start_upload(REPOS[repo]).map_err(|x| s(&x))?;
            let mut off = 0u64;
            for c in bytes.chunks(7) {
                off = e
                    .append_upload(REPOS[repo], &up.id, off, c)
                    .map_err(|x| s(&x))?;
            }
            let loc = e
                .finish_upload(REPOS[repo], &up.id, &k)
                .map_err(|x| s(&x))?
                .into_inner();
            assert_eq!(e.read_blob(loc).unwrap(), bytes);
        }
        Op::Unlink { repo, blob: b } => {
            let k = BlobKey::sha256_of(&blob(b));
            let want = if !m.repos.contains(REPOS[repo]) {
                DeleteOutcome::RepoUnknown
            } else if m.links.remove(&(REPOS[repo].into(), k.clone())) {
                DeleteOutcome::Deleted
            } else {
                DeleteOutcome::NotFound
            };
            assert_eq!(e.unlink_blob(REPOS[repo], &k).map_err(|x| s(&x))?, want);
        }
        Op::Mount {
            repo,
            blob: b,
            from,
        } => {
            let k = BlobKey::sha256_of(&blob(b));
            // a blob `repo` already links needs no source
            let available = m.links.contains(&(REPOS[repo].into(), k.clone()))
                || match from {
                    Some(f) => m.links.contains(&(REPOS[f].into(), k.clone())),
                    None => m.stored.contains(&k),
                };
            if available {
                m.links.insert((REPOS[repo].into(), k.clone()));
                m.repos.insert(REPOS[repo].into());
            }
            let got = e
                .mount_blob(REPOS[repo], &k, from.map(|f| REPOS[f]))
                .map_err(|x| s(&x))?;
            assert_eq!(got.is_some(), available, "{op:?}");
        }
        Op::Put { repo, man: i, tag } => {
            let (k, body, refs) = man(i);
            let missing: Vec<BlobKey> = refs
                .iter()
                .filter(|r| !m.links.contains(&(REPOS[repo].into(), (*r).clone())))
                .cloned()
                .collect();
            if missing.is_empty() {
                m.manifests.insert((REPOS[repo].into(), k.clone()));
                m.repos.insert(REPOS[repo].into());
                if let Some(t) = tag {
                    m.tags
                        .insert((REPOS[repo].into(), TAGS[t].into()), k.clone());
                }
            }
            let mut nm = manifest("", &[], &refs);
            nm.key = k;
            nm.body = body;
            nm.tags = tag.map(|t| vec![TAGS[t].to_string()]).unwrap_or_default();
            match e.put_manifest(REPOS[repo], nm) {
                Ok(_) => assert!(missing.is_empty(), "{op:?} stored with missing {missing:?}"),
                Err(PutManifestError::Missing(mut got)) => {
                    got.sort();
                    let mut want = missing;
                    want.sort();
                    want.dedup();
                    assert_eq!(got, want);
                }
                Err(PutManifestError::Store(err)) => return Err(err.to_string()),
            }
        }
        Op::DeleteTag { repo, tag } => {
            let want = if !m.repos.contains(REPOS[repo]) {
                DeleteOutcome::RepoUnknown
            } else if m
                .tags
                .remove(&(REPOS[repo].into(), TAGS[tag].into()))
                .is_some()
            {
                DeleteOutcome::Deleted
            } else {
                DeleteOutcome::NotFound
            };
            let got = e
                .delete_manifest(REPOS[repo], ManifestRef::Tag(TAGS[tag]))
                .map_err(|x| s(&x))?;
            assert_eq!(got, want);
        }
        Op::DeleteManifest { repo, man: i } => {
            let (k, _, _) = man(i);
            let want = if !m.repos.contains(REPOS[repo]) {
                DeleteOutcome::RepoUnknown
            } else if m.manifests.remove(&(REPOS[repo].into(), k.clone())) {
                m.tags.retain(|(r, _), v| !(r == REPOS[repo] && *v == k));
                DeleteOutcome::Deleted
            } else {
                DeleteOutcome::NotFound
            };
            let got = e
                .delete_manifest(REPOS[repo], ManifestRef::Key(&k))
                .map_err(|x| s(&x))?;
            assert_eq!(got, want);
        }
        Op::Reopen => {}
    }
    Ok(())
}

fn apply(e: &Engine, m: &mut Model, op: &Op) {
    if let Err(err) = try_apply(e, m, op) {
        panic!("{op:?}: {err}");
    }
}

fn compare(e: &Engine, m: &Model) {
    let (cat, more) = e.catalog(None, 100).unwrap();
    assert_eq!(cat, m.repos.iter().cloned().collect::<Vec<_>>());
    assert!(!more);
    for repo in REPOS {
        for b in 0..6 {
            let k = BlobKey::sha256_of(&blob(b));
            let linked = m.links.contains(&(repo.into(), k.clone()));
            let got = e.stat_blob(repo, &k).unwrap();
            assert_eq!(got.is_some(), linked, "{repo} blob {b}");
            if let Some(loc) = got {
                assert_eq!(e.read_blob(loc).unwrap(), blob(b));
            }
        }
        for i in 0..4 {
            let (k, body, _) = man(i);
            let got = e.get_manifest(repo, ManifestRef::Key(&k)).unwrap();
            assert_eq!(
                got.map(|g| g.body.to_vec()),
                m.manifests.contains(&(repo.into(), k)).then_some(body)
            );
        }
        let tags: Vec<String> = m
            .tags
            .keys()
            .filter(|(r, _)| r == repo)
            .map(|(_, t)| t.clone())
            .collect();
        let got = e.list_tags(repo, None, 100).unwrap();
        if m.repos.contains(repo) {
            assert_eq!(got, Some((tags.clone(), false)));
        } else {
            assert_eq!(got, None);
        }
        // Every tag the model knows of, present or deleted: a stale tag answered from the
        // manifest cache after a delete would show here.
        for t in TAGS {
            let want = m.tags.get(&(repo.to_string(), t.to_string()));
            let got = e.get_manifest(repo, ManifestRef::Tag(t)).unwrap();
            assert_eq!(got.map(|g| g.key).as_ref(), want, "{repo}:{t}");
        }
    }
    assert_eq!(e.stats().blobs, m.stored.len() as u64);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_operation_sequences_match_the_model_across_reopens(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut e = open(dir.path());
        let mut m = Model::default();
        for op in &ops {
            if let Op::Reopen = op {
                drop(e);
                e = open(dir.path());
                compare(&e, &m);
            } else {
                apply(&e, &mut m, op);
                // After every write too: reads answered from the manifest cache must
                // follow each put and delete.
                compare(&e, &m);
            }
        }
        compare(&e, &m);
        assert_clean(&e);
        drop(e);
        let e = open(dir.path());
        compare(&e, &m);
        assert_clean(&e);
    }
}

fn open_sim(fs: &SimFs) -> Result<Engine, String> {
    let o = EngineOptions {
        min_free_bytes: Some(0),
        ..opts()
    };
    Engine::open_on(Arc::new(fs.clone()), o, system_clock()).map_err(|e| e.to_string())
}

/// Whether the store shows exactly the model (`compare`, without failing the test).
fn shows(e: &Engine, m: &Model) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compare(e, m))).is_ok()
}

/// What happens once the disk has failed and been replaced or repaired.
#[derive(Clone, Copy, Debug)]
enum Afterwards {
    /// The same process goes on: the store recovers by itself (latched packs stay
    /// latched, the metadata database is reopened between batches).
    GoOn,
    /// The process restarts on the same disk.
    Restart,
    /// The power goes: only what was synced is left.
    PowerCut,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The disk fails (`EIO` or `ENOSPC` from every change after the n-th) somewhere in a
    /// random sequence. The failing operation reports a storage error, later writes do
    /// too, and nothing panics; once the disk works again the store shows the state before
    /// the failed operation or, if its commit reached the disk, after it — whichever, it
    /// is whole — and it goes on matching the model.
    #[test]
    fn random_sequences_on_a_failing_disk_match_the_model(
        ops in proptest::collection::vec(op(), 1..30),
        fail_at in 0..30usize,
        after in 0..60u64,
        no_space in any::<bool>(),
        then in prop_oneof![
            Just(Afterwards::GoOn),
            Just(Afterwards::Restart),
            Just(Afterwards::PowerCut)
        ],
    ) {
        let kind = if no_space { FaultKind::NoSpace } else { FaultKind::Io };
        let mut fs = SimFs::new();
        let mut e = open_sim(&fs).unwrap();
        let mut m = Model::default();
        let mut failed = false;
        for (i, op) in ops.iter().enumerate() {
            if i == fail_at {
                fs.fail_after(Some(fs.ops() + after), kind);
            }
            if let Op::Reopen = op {
                if fs.ops() > 0 && i >= fail_at && !failed {
                    // A restart on a failing disk may fail to open: not this test's point.
                    continue;
                }
                drop(e);
                e = open_sim(&fs).unwrap();
                compare(&e, &m);
                continue;
            }
            let before = m.clone();
            let Err(why) = try_apply(&e, &mut m, op) else {
                compare(&e, &m);
                continue;
            };
            prop_assert!(!failed, "a write failed on a healed disk: {why}");
            prop_assert!(i >= fail_at, "a write failed before any fault: {why}");
            failed = true;
            // Later writes fail cleanly too while the disk is bad.
            let mut probe = m.clone();
            let fresh = Op::Push { repo: 0, blob: 5 };
            prop_assert!(try_apply(&e, &mut probe, &fresh).is_err() || fs.ops() <= after);
            fs.heal();
            match then {
                Afterwards::GoOn => {}
                Afterwards::Restart => {
                    drop(e);
                    e = open_sim(&fs).unwrap();
                }
                Afterwards::PowerCut => {
                    drop(e);
                    fs = fs.restart(None);
                    e = open_sim(&fs).unwrap();
                }
            }
            if shows(&e, &before) {
                m = before;
            } else {
                compare(&e, &m);
            }
            // Going on, a pack the failure latched stays latched (and `check` says so) until
            // the next start; nothing else may be wrong.
            let r = e.check_with(CheckOptions { rehash: true }).unwrap();
            prop_assert!(
                r.problems.iter().all(|p| p.contains("latched read-only after an I/O error")),
                "{:?}",
                r.problems
            );
        }
        fs.heal();
        compare(&e, &m);
        // A pack latched by the failure shows in `check` until the restart below clears it.
        drop(e);
        let e = open_sim(&fs).unwrap();
        compare(&e, &m);
        assert_clean(&e);
    }
}
