//! A crash at every sync point of a scripted workload, on the simulated file system.
//!
//! The workload (tenancy writes, uploads streamed and chunked with a sync after each chunk,
//! finishes into shared and single packs, manifest PUTs with tags, a tag moved, a mount,
//! deletes, garbage collection with compaction, a registry deleted with its uploads) runs
//! once untouched, which records what a reader sees after each step. Then for each sync
//! point k (until a run ends before its k-th) it runs again on a fresh file system that stops at the
//! k-th sync, and the store is reopened on what a power cut would have left — only what
//! was synced, and, in a second pass, some sectors of what was not ("torn" writes). The
//! reopened store must:
//! - pass `check` (rehashing every blob);
//! - show exactly what it showed after the last step acknowledged, or after the step in
//!   flight had it completed — nothing half-done, nothing lost, every blob bit-exact;
//! - still hold every upload session a sync acknowledged, with at least the synced bytes;
//! - take new pushes and pass `check` again.
//!
//! `BERTH_CRASH_SWEEP=full` tears each crash with several seeds instead of one.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use berth_engine::vfs::{SimFs, Vfs};
use berth_engine::{
    BlobKey, CheckOptions, Clock, Engine, EngineOptions, GcOptions, ManifestRef, RegistryRec,
    TokenKind, TokenRec, Visibility,
};
use common::{data, manifest};

const NOW: u64 = 1_000_000;
const WEB: &str = "acme/apps/web";
const API: &str = "acme/apps/api";
const TMP: &str = "acme/tmp/x";
const REPOS: [&str; 3] = [WEB, API, TMP];

fn opts() -> EngineOptions {
    EngineOptions {
        small_blob_bytes: 4096,
        // Small shared packs: several of them, so compaction has one to empty that is not
        // the one being appended to.
        shared_pack_bytes: 8192,
        min_free_bytes: Some(0),
        ..EngineOptions::default()
    }
}

fn clock() -> Clock {
    Arc::new(|| NOW)
}

fn open(fs: &SimFs) -> Result<Engine, String> {
    Engine::open_on(Arc::new(fs.clone()), opts(), clock()).map_err(|e| e.to_string())
}

/// The workload's blobs: small ones (shared packs) and large ones (packs of their own).
fn blob(i: usize) -> Vec<u8> {
    let len = [900, 6000, 2500, 9000, 3000, 3000, 5000, 3000][i];
    data(i as u64 + 1, len)
}

fn key(i: usize) -> BlobKey {
    BlobKey::sha256_of(&blob(i))
}

fn man_body(i: usize) -> String {
    format!("{{\"schemaVersion\":2,\"manifest\":{i}}}")
}

/// An upload session a sync acknowledged: it must survive a crash with at least `len`.
struct Acked {
    repo: &'static str,
    id: String,
    len: u64,
    /// Its finish (or its registry's deletion) was called: it may be gone.
    finishing: bool,
}

struct Run {
    e: Engine,
    sessions: Vec<Acked>,
}

type Step = (&'static str, fn(&mut Run) -> Result<(), String>);

fn s<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

/// Pushes blob `i` into `repo` in chunks of `chunk`, syncing after each (as a PATCH's 202
/// does), then finishes it.
fn push(run: &mut Run, repo: &'static str, i: usize, chunk: usize) -> Result<(), String> {
    let bytes = blob(i);
    let up = s(run.e.start_upload(repo))?;
    let mut off = 0;
    for c in bytes.chunks(chunk) {
        off = s(run.e.append_upload(repo, &up.id, off, c))?;
        let st = s(run.e.sync_upload(repo, &up.id))?.ok_or("the session vanished")?;
        match run.sessions.iter_mut().find(|a| a.id == up.id) {
            Some(a) => a.len = st.len,
            None => run.sessions.push(Acked {
                repo,
                id: up.id.clone(),
                len: st.len,
                finishing: false,
            }),
        }
    }
    if let Some(a) = run.sessions.iter_mut().find(|a| a.id == up.id) {
        a.finishing = true;
    }
    let _ = s(run.e.finish_upload(repo, &up.id, &key(i)))?;
    run.sessions.retain(|a| a.id != up.id);
    Ok(())
}

/// Starts an upload of `bytes` into `repo`, syncs it, and leaves it open.
fn leave_open(run: &mut Run, repo: &'static str, bytes: &[u8]) -> Result<(), String> {
    let up = s(run.e.start_upload(repo))?;
    let len = s(run.e.append_upload(repo, &up.id, 0, bytes))?;
    s(run.e.sync_upload(repo, &up.id))?.ok_or("the session vanished")?;
    run.sessions.push(Acked {
        repo,
        id: up.id,
        len,
        finishing: false,
    });
    Ok(())
}

fn put(run: &mut Run, repo: &str, m: usize, tags: &[&str], blobs: &[usize]) -> Result<(), String> {
    let keys: Vec<BlobKey> = blobs.iter().map(|&b| key(b)).collect();
    let _ = s(run
        .e
        .put_manifest(repo, manifest(&man_body(m), tags, &keys)))?;
    Ok(())
}

fn registry(slug: &str) -> RegistryRec {
    RegistryRec {
        org: "acme".into(),
        slug: slug.into(),
        name: slug.into(),
        description: String::new(),
        visibility: Visibility::Private,
        created: NOW,
    }
}

fn steps() -> Vec<Step> {
    vec![
        ("create an org", |r| {
            s(r.e.create_org("acme", NOW)).map(drop)
        }),
        ("create a registry", |r| {
            s(r.e.create_registry(registry("apps"))).map(drop)
        }),
        ("stream a small blob", |r| push(r, WEB, 0, usize::MAX)),
        ("push what will be garbage", |r| push(r, WEB, 5, usize::MAX)),
        ("chunk a large blob", |r| push(r, WEB, 1, 2000)),
        ("chunk a small blob", |r| push(r, WEB, 2, 1000)),
        ("put a manifest tagged latest", |r| {
            put(r, WEB, 1, &["latest"], &[0, 1])
        }),
        ("mount a blob", |r| {
            s(r.e.mount_blob(API, &key(0), Some(WEB)))?
                .map(drop)
                .ok_or_else(|| "not mounted".to_string())
        }),
        ("move the tag", |r| {
            put(r, WEB, 2, &["latest", "v2"], &[0, 2])
        }),
        ("create a token", |r| {
            s(r.e.create_token(TokenRec {
                id: "tok_0000000000000001".into(),
                kind: TokenKind::Org,
                org: Some("acme".into()),
                read: true,
                write: true,
                registries: vec![],
                description: "ci".into(),
                created: NOW,
                expires: None,
                last_used: None,
                revoked: None,
                hash: [7; 32],
            }))
        }),
        ("stream a large blob", |r| push(r, API, 3, usize::MAX)),
        ("put a second repository's manifest", |r| {
            put(r, API, 3, &["v1"], &[0, 3])
        }),
        ("leave an upload open", |r| {
            leave_open(r, API, &blob(4)[..1500])
        }),
        ("fill the shared pack: the next one starts", |r| {
            push(r, API, 7, 1024)
        }),
        ("delete a manifest", |r| {
            let k = BlobKey::sha256_of(man_body(1).as_bytes());
            s(r.e.delete_manifest(WEB, ManifestRef::Key(&k))).map(drop)
        }),
        ("unlink a large blob", |r| {
            s(r.e.unlink_blob(WEB, &key(1))).map(drop)
        }),
        ("unlink a small blob", |r| {
            s(r.e.unlink_blob(WEB, &key(5))).map(drop)
        }),
        ("collect garbage, compacting", |r| {
            let g = GcOptions {
                dry_run: false,
                unreferenced_after: None,
                compact_below: 1.0,
            };
            let done = s(r.e.collect_garbage(g))?;
            if done.blobs_removed < 2 || done.blobs_moved == 0 || done.packs_removed < 2 {
                return Err(format!(
                    "the collection did not sweep and compact: {done:?}"
                ));
            }
            Ok(())
        }),
        ("revoke the token", |r| {
            s(r.e.revoke_token("tok_0000000000000001", NOW)).map(drop)
        }),
        ("make the registry public", |r| {
            s(r.e.update_registry("acme", "apps", Some(Visibility::Public), None)).map(drop)
        }),
        ("create a second registry", |r| {
            s(r.e.create_registry(registry("tmp"))).map(drop)
        }),
        ("start an upload into it", |r| leave_open(r, TMP, &blob(6))),
        ("delete it, ending the upload", |r| {
            // The deletion ends the registry's sessions: from here the session may be gone.
            for a in r.sessions.iter_mut().filter(|a| a.repo == TMP) {
                a.finishing = true;
            }
            s(r.e.delete_registry("acme", "tmp", NOW))?;
            r.sessions.retain(|a| a.repo != TMP);
            Ok(())
        }),
    ]
}

/// What a reader sees: which blobs each repository links (each read back and compared
/// bit for bit), its tags and manifests, and the tenancy records.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    links: BTreeSet<(String, usize)>,
    tags: BTreeMap<String, Vec<(String, BlobKey)>>,
    manifests: BTreeSet<(String, usize)>,
    registries: Vec<(String, Visibility)>,
    tokens: Vec<(String, Option<u64>)>,
}

fn see(e: &Engine) -> Result<Seen, String> {
    let mut seen = Seen {
        links: BTreeSet::new(),
        tags: BTreeMap::new(),
        manifests: BTreeSet::new(),
        registries: Vec::new(),
        tokens: Vec::new(),
    };
    for repo in REPOS {
        for i in 0..8 {
            if let Some(loc) = s(e.stat_blob(repo, &key(i)))? {
                let got = s(e.read_blob(loc))?;
                if got != blob(i) {
                    return Err(format!("blob {i} in {repo} reads back different bytes"));
                }
                seen.links.insert((repo.to_owned(), i));
            }
        }
        for m in 1..=3 {
            let k = BlobKey::sha256_of(man_body(m).as_bytes());
            if let Some(got) = s(e.get_manifest(repo, ManifestRef::Key(&k)))? {
                if got.body[..] != *man_body(m).as_bytes() {
                    return Err(format!("manifest {m} in {repo} reads back different bytes"));
                }
                seen.manifests.insert((repo.to_owned(), m));
            }
        }
        let tags = s(e.list_tags(repo, None, 100))?
            .map(|(t, _)| t)
            .unwrap_or_default();
        let mut named = Vec::new();
        for t in tags {
            let m = s(e.get_manifest(repo, ManifestRef::Tag(&t)))?.ok_or("a listed tag is gone")?;
            named.push((t, m.key));
        }
        seen.tags.insert(repo.to_owned(), named);
    }
    if s(e.get_org("acme"))?.is_some() {
        for r in s(e.list_registries("acme"))? {
            seen.registries.push((r.slug, r.visibility));
        }
        for t in s(e.list_tokens("acme"))? {
            seen.tokens.push((t.id, t.revoked));
        }
    }
    Ok(seen)
}

/// The untouched run: what is seen after each step, and the sync points it reaches.
fn reference() -> (Vec<Seen>, u64) {
    let fs = SimFs::new();
    let mut run = Run {
        e: open(&fs).expect("open"),
        sessions: Vec::new(),
    };
    let mut seen = vec![see(&run.e).expect("see")];
    for (name, step) in steps() {
        step(&mut run).unwrap_or_else(|e| panic!("{name}: {e}"));
        seen.push(see(&run.e).expect("see"));
    }
    drop(run);
    (seen, fs.syncs())
}

/// Runs the workload on `fs` until the crash; returns the steps acknowledged and the
/// sessions a sync acknowledged.
fn run_until_crash(fs: &SimFs) -> (usize, Vec<Acked>) {
    let Ok(e) = open(fs) else {
        return (0, Vec::new());
    };
    let mut run = Run {
        e,
        sessions: Vec::new(),
    };
    let mut done = 0;
    for (_, step) in steps() {
        if step(&mut run).is_err() {
            break;
        }
        done += 1;
    }
    let Run { e, sessions } = run;
    drop(e);
    (done, sessions)
}

fn verify(after: &SimFs, seen: &[Seen], done: usize, acked: &[Acked], what: &str) {
    let e = open(after).unwrap_or_else(|err| panic!("{what}: reopen failed: {err}"));
    let r = e
        .check_with(CheckOptions { rehash: true })
        .unwrap_or_else(|err| panic!("{what}: check failed: {err}"));
    assert!(r.is_clean(), "{what}: check found {:?}", r.problems);
    let now = see(&e).unwrap_or_else(|err| panic!("{what}: {err}"));
    let in_flight = seen.get(done + 1);
    assert!(
        now == seen[done] || in_flight == Some(&now),
        "{what}: after {done} steps acknowledged the store shows\n{now:#?}\nnot\n{:#?}\nnor \
         the next step's\n{in_flight:#?}",
        seen[done]
    );
    for a in acked {
        match e.upload_status(a.repo, &a.id).expect("status") {
            Some(st) => assert!(
                st.len >= a.len,
                "{what}: session {} holds {} bytes, {} were acknowledged",
                a.id,
                st.len,
                a.len
            ),
            None => assert!(
                a.finishing,
                "{what}: acknowledged session {} ({} bytes) is gone",
                a.id, a.len
            ),
        }
    }
    // Still usable: a new push, a manifest naming it, and a clean check.
    let fresh = data(99, 5000);
    let k = BlobKey::sha256_of(&fresh);
    let up = e.start_upload(API).expect("start after reopen");
    e.append_upload(API, &up.id, 0, &fresh)
        .expect("append after reopen");
    let _ = e
        .finish_upload(API, &up.id, &k)
        .expect("finish after reopen");
    let _ = e
        .put_manifest(API, manifest("{\"after\":1}", &["after"], &[k]))
        .expect("put after reopen");
    let r = e.check_with(CheckOptions { rehash: true }).expect("check");
    assert!(r.is_clean(), "{what}: after new pushes: {:?}", r.problems);
}

#[test]
fn a_crash_at_any_sync_point_loses_nothing_acknowledged_and_shows_nothing_half_done() {
    let (seen, syncs) = reference();
    assert!(syncs > 40, "the workload reaches {syncs} sync points");
    eprintln!("{syncs} sync points, {} steps", seen.len() - 1);
    let seeds: u64 = if std::env::var("BERTH_CRASH_SWEEP").as_deref() == Ok("full") {
        8
    } else {
        1
    };
    // Runs differ by a few sync points: a commit that finds earlier non-durable ones to make
    // durable syncs more, and whether a session's row rides with its first sync or before
    // it is the committer's timing. So the sweep goes on until a run finishes uncrashed.
    let mut k = 1;
    loop {
        let fs = SimFs::new();
        fs.crash_at_sync(k);
        let (done, acked) = run_until_crash(&fs);
        let crashed = fs.crashed();
        verify(
            &fs.restart(None),
            &seen,
            done,
            &acked,
            &format!("crash at sync {k}"),
        );
        for seed in 0..seeds {
            let torn = fs.restart(Some(k * 31 + seed));
            verify(
                &torn,
                &seen,
                done,
                &acked,
                &format!("crash at sync {k}, torn ({seed})"),
            );
        }
        if !crashed {
            assert!(
                k + 8 > syncs,
                "only {k} of about {syncs} sync points were reached"
            );
            break;
        }
        k += 1;
    }
}

#[test]
fn the_simulated_store_passes_its_own_check_and_reopens_unchanged() {
    let (seen, _) = reference();
    // A clean stop, no crash: everything the last step left is there.
    let fs = SimFs::new();
    let (done, acked) = run_until_crash(&fs);
    assert_eq!(done, steps().len());
    assert_eq!(acked.len(), 1, "the upload left open in apps");
    let e = open(&fs).expect("reopen");
    assert_eq!(see(&e).unwrap(), *seen.last().unwrap());
    assert!(e.check().unwrap().is_clean());
    assert!(fs.names().iter().any(|n| n.starts_with("packs/")));
    assert!(fs.len_of("meta.redb").unwrap() > 0);
}
