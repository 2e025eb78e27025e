//! Organisations, registries, tokens and the audit log.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use berth_engine::{
    AppendError, AuditRec, BlobKey, DeleteOutcome, Engine, FinishError, ManifestRef,
    PutManifestError, RegistryRec, TenancyError, TokenKind, TokenRec, Visibility,
};
use common::*;

fn registry(org: &str, name: &str) -> RegistryRec {
    RegistryRec {
        org: org.into(),
        slug: berth_engine::slug_of(name).expect("a name with a slug"),
        name: name.into(),
        description: String::new(),
        visibility: Visibility::Private,
        created: 100,
    }
}

fn hash_of(secret: &str) -> [u8; 32] {
    let k = BlobKey::sha256_of(secret.as_bytes());
    let mut h = [0u8; 32];
    h.copy_from_slice(&k.hash);
    h
}

fn org_token(id: &str, org: &str, registries: &[&str]) -> TokenRec {
    TokenRec {
        id: id.into(),
        kind: TokenKind::Org,
        org: Some(org.into()),
        read: true,
        write: true,
        registries: registries.iter().map(|s| s.to_string()).collect(),
        description: format!("token {id}"),
        created: 200,
        expires: None,
        last_used: None,
        revoked: None,
        hash: hash_of(&format!("berth_pat_{id}")),
    }
}

fn admin_token(id: &str) -> TokenRec {
    TokenRec {
        kind: TokenKind::Admin,
        org: None,
        registries: vec![],
        hash: hash_of(&format!("berth_adm_{id}")),
        ..org_token(id, "-", &[])
    }
}

fn audit(org: &str, action: &str, time: u64) -> AuditRec {
    AuditRec {
        seq: 0,
        time,
        org: org.into(),
        actor: "admin".into(),
        action: action.into(),
        target: format!("t{time}"),
        detail: String::new(),
    }
}

/// A store with org `acme` and its registry `web`.
fn acme(dir: &std::path::Path) -> Engine {
    let e = open(dir);
    e.create_org("acme", 1).unwrap();
    e.create_registry(registry("acme", "Web")).unwrap();
    e
}

#[test]
fn create_org_refuses_a_taken_slug_and_one_outside_the_grammar() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let o = e.create_org("acme", 7).unwrap();
    assert_eq!((o.slug.as_str(), o.created), ("acme", 7));
    assert!(matches!(
        e.create_org("acme", 8),
        Err(TenancyError::OrgExists)
    ));
    for bad in ["", "Acme", "a/b", "-a", "a--b", &"x".repeat(40)] {
        assert!(
            matches!(e.create_org(bad, 8), Err(TenancyError::Invalid(_))),
            "{bad:?}"
        );
    }
    assert_eq!(e.get_org("acme").unwrap().unwrap().created, 7);
    assert_eq!(e.list_orgs().unwrap().len(), 1);
}

#[test]
fn create_registry_refuses_an_unknown_org_and_a_taken_slug() {
    let dir = tempfile::tempdir().unwrap();
    let e = acme(dir.path());
    assert!(matches!(
        e.create_registry(registry("nobody", "Web")),
        Err(TenancyError::OrgUnknown)
    ));
    assert!(matches!(
        e.create_registry(registry("acme", "web")),
        Err(TenancyError::RegistryExists)
    ));
    let mut bad = registry("acme", "Api");
    bad.slug = "Api Two".into();
    assert!(matches!(
        e.create_registry(bad),
        Err(TenancyError::Invalid(_))
    ));
    // the same slug in another org is a different registry
    e.create_org("other", 2).unwrap();
    e.create_registry(registry("other", "Web")).unwrap();
    let slugs: Vec<String> = e
        .list_registries("acme")
        .unwrap()
        .into_iter()
        .map(|g| g.slug)
        .collect();
    assert_eq!(slugs, ["web"]);
}

#[test]
fn operations_on_missing_records_say_which_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let e = acme(dir.path());
    assert!(matches!(
        e.list_registries("nobody"),
        Err(TenancyError::OrgUnknown)
    ));
    assert!(matches!(
        e.list_tokens("nobody"),
        Err(TenancyError::OrgUnknown)
    ));
    assert!(matches!(
        e.update_registry("acme", "api", Some(Visibility::Public), None),
        Err(TenancyError::RegistryUnknown)
    ));
    assert!(matches!(
        e.delete_registry("acme", "api", 5),
        Err(TenancyError::RegistryUnknown)
    ));
    assert!(matches!(
        e.revoke_token("tok_missing", 5),
        Err(TenancyError::TokenUnknown)
    ));
    assert!(e.get_registry("acme", "api").unwrap().is_none());
    assert!(e.get_token("tok_missing").unwrap().is_none());
}

#[test]
fn create_token_refuses_an_unknown_org_or_registry_and_inconsistent_records() {
    let dir = tempfile::tempdir().unwrap();
    let e = acme(dir.path());
    assert!(matches!(
        e.create_token(org_token("tok_1", "nobody", &[])),
        Err(TenancyError::OrgUnknown)
    ));
    assert!(matches!(
        e.create_token(org_token("tok_1", "acme", &["web", "api"])),
        Err(TenancyError::RegistryUnknown)
    ));
    let mut admin_with_org = admin_token("tok_2");
    admin_with_org.org = Some("acme".into());
    let mut org_without_org = org_token("tok_3", "acme", &[]);
    org_without_org.org = None;
    let mut registry_rw = org_token("tok_4", "acme", &["web"]);
    registry_rw.kind = TokenKind::Registry;
    let mut registry_all = org_token("tok_5", "acme", &[]);
    registry_all.kind = TokenKind::Registry;
    registry_all.write = false;
    let bad_id = org_token("tok/../6", "acme", &[]);
    for t in [
        admin_with_org,
        org_without_org,
        registry_rw,
        registry_all,
        bad_id,
    ] {
        let id = t.id.clone();
        assert!(
            matches!(e.create_token(t), Err(TenancyError::Invalid(_))),
            "{id}"
        );
    }
    // none of the refused tokens was stored
    assert!(e.list_tokens("acme").unwrap().is_empty());
    assert!(!e.has_admin_token().unwrap());

    e.create_token(org_token("tok_1", "acme", &["web"]))
        .unwrap();
    // a second token with the same id or the same secret hash is refused
    let mut same_hash = org_token("tok_7", "acme", &[]);
    same_hash.hash = org_token("tok_1", "acme", &[]).hash;
    for t in [org_token("tok_1", "acme", &[]), same_hash] {
        assert!(matches!(e.create_token(t), Err(TenancyError::Invalid(_))));
    }
    assert_eq!(e.list_tokens("acme").unwrap().len(), 1);
}

#[test]
fn token_by_hash_finds_the_token_and_misses_a_wrong_hash() {
    let dir = tempfile::tempdir().unwrap();
    let e = acme(dir.path());
    let t = org_token("tok_0123456789abcdef", "acme", &["web"]);
    e.create_token(t.clone()).unwrap();
    assert_eq!(e.token_by_hash(&t.hash).unwrap(), Some(t.clone()));
    assert_eq!(e.get_token(&t.id).unwrap(), Some(t.clone()));
    let mut wrong = t.hash;
    wrong[31] ^= 1;
    assert_eq!(e.token_by_hash(&wrong).unwrap(), None);
    assert_eq!(e.token_by_hash(&hash_of("berth_pat_guess")).unwrap(), None);
}

#[test]
fn a_revoked_token_reads_as_revoked_at_once_and_revoking_again_keeps_the_first_time() {
    let dir = tempfile::tempdir().unwrap();
    let e = acme(dir.path());
    let t = org_token("tok_a", "acme", &[]);
    e.create_token(t.clone()).unwrap();
    let r = e.revoke_token("tok_a", 500).unwrap();
    assert_eq!(r.revoked, Some(500));
    assert_eq!(
        e.token_by_hash(&t.hash).unwrap().unwrap().revoked,
        Some(500)
    );
    assert_eq!(e.get_token("tok_a").unwrap().unwrap().revoked, Some(500));
    let again = e.revoke_token("tok_a", 900).unwrap();
    assert_eq!(again.revoked, Some(500));
    // the record is kept, for the audit trail
    assert_eq!(e.list_tokens("acme").unwrap(), vec![again]);
}

#[test]
fn has_admin_token_counts_only_admin_tokens_not_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let e = acme(dir.path());
    assert!(!e.has_admin_token().unwrap());
    e.create_token(org_token("tok_org", "acme", &[])).unwrap();
    assert!(!e.has_admin_token().unwrap());
    e.create_token(admin_token("tok_adm1")).unwrap();
    assert!(e.has_admin_token().unwrap());
    // admin tokens belong to no org's list
    assert_eq!(e.list_tokens("acme").unwrap().len(), 1);
    e.revoke_token("tok_adm1", 10).unwrap();
    assert!(!e.has_admin_token().unwrap());
    e.create_token(admin_token("tok_adm2")).unwrap();
    assert!(e.has_admin_token().unwrap());
}

#[test]
fn touch_tokens_records_last_use_in_one_call_never_moving_it_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let e = acme(dir.path());
    e.create_token(org_token("tok_a", "acme", &[])).unwrap();
    e.create_token(org_token("tok_b", "acme", &[])).unwrap();
    e.touch_tokens(&[
        ("tok_a".into(), 50),
        ("tok_b".into(), 60),
        ("tok_gone".into(), 70),
    ])
    .unwrap();
    assert_eq!(e.get_token("tok_a").unwrap().unwrap().last_used, Some(50));
    assert_eq!(e.get_token("tok_b").unwrap().unwrap().last_used, Some(60));
    e.touch_tokens(&[("tok_a".into(), 40), ("tok_b".into(), 80)])
        .unwrap();
    assert_eq!(e.get_token("tok_a").unwrap().unwrap().last_used, Some(50));
    assert_eq!(e.get_token("tok_b").unwrap().unwrap().last_used, Some(80));
    e.touch_tokens(&[]).unwrap();
    assert!(e.get_token("tok_gone").unwrap().is_none());
}

#[test]
fn update_registry_changes_only_what_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let e = acme(dir.path());
    let g = e
        .update_registry("acme", "web", Some(Visibility::Public), None)
        .unwrap();
    assert_eq!(
        (g.visibility, g.description.as_str()),
        (Visibility::Public, "")
    );
    let g = e
        .update_registry("acme", "web", None, Some("the site".into()))
        .unwrap();
    assert_eq!(g.visibility, Visibility::Public);
    assert_eq!(g.description, "the site");
    assert_eq!(e.get_registry("acme", "web").unwrap(), Some(g));
}

#[test]
fn audit_lists_newest_first_and_pages_with_before_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let e = acme(dir.path());
    for i in 1..=10u64 {
        assert_eq!(
            e.append_audit(audit("acme", "manifest.push", i)).unwrap(),
            i
        );
        // other orgs have their own sequence and never show up in acme's log
        assert_eq!(e.append_audit(audit("zeta", "org.create", i)).unwrap(), i);
    }
    let seqs = |v: Vec<AuditRec>| v.into_iter().map(|a| a.seq).collect::<Vec<_>>();
    assert_eq!(seqs(e.list_audit("acme", None, 3).unwrap()), [10, 9, 8]);
    assert_eq!(seqs(e.list_audit("acme", Some(8), 3).unwrap()), [7, 6, 5]);
    assert_eq!(seqs(e.list_audit("acme", Some(3), 3).unwrap()), [2, 1]);
    assert!(e.list_audit("acme", Some(1), 3).unwrap().is_empty());
    assert!(e.list_audit("acme", None, 0).unwrap().is_empty());
    assert!(e.list_audit("nobody", None, 10).unwrap().is_empty());
    // walking pages by the last seq seen yields every entry once
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = e.list_audit("acme", before, 4).unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.seq);
        all.extend(page);
    }
    assert_eq!(seqs(all.clone()), (1..=10).rev().collect::<Vec<_>>());
    let newest = &all[0];
    assert_eq!(
        (newest.org.as_str(), newest.time, newest.action.as_str()),
        ("acme", 10, "manifest.push")
    );
    assert_eq!(newest.target, "t10");
    // a filtered page holds `limit` kept entries, however many others lie between
    let fourth = |a: &AuditRec| a.seq.is_multiple_of(4);
    assert_eq!(
        seqs(e.list_audit_where("acme", None, 2, fourth).unwrap()),
        [8, 4]
    );
    assert_eq!(
        seqs(e.list_audit_where("acme", Some(8), 5, fourth).unwrap()),
        [4]
    );
}

#[test]
fn delete_registry_is_refused_while_an_image_exists_and_allowed_once_it_is_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let e = acme(dir.path());
    // a registry whose slug extends "web" must not count as inside it
    e.create_registry(registry("acme", "Web 2")).unwrap();
    let (b, _) = push(&e, "acme/web-2/app", b"elsewhere");
    let _ = e
        .put_manifest("acme/web-2/app", manifest("{\"o\":1}", &["v1"], &[b]))
        .unwrap();

    let repo = "acme/web/team/app";
    let (cfg, _) = push(&e, repo, b"{config}");
    let (layer, _) = push(&e, repo, &data(3, 5000));
    let m = manifest("{\"m\":1}", &["latest"], &[cfg.clone(), layer.clone()]);
    let mkey = m.key.clone();
    let _ = e.put_manifest(repo, m).unwrap();

    assert!(matches!(
        e.delete_registry("acme", "web", 5),
        Err(TenancyError::RegistryNotEmpty)
    ));
    assert_eq!(
        e.delete_manifest(repo, ManifestRef::Key(&mkey)).unwrap(),
        DeleteOutcome::Deleted
    );
    // blob links alone still hold the registry
    assert!(matches!(
        e.delete_registry("acme", "web", 5),
        Err(TenancyError::RegistryNotEmpty)
    ));
    assert_eq!(e.unlink_blob(repo, &cfg).unwrap(), DeleteOutcome::Deleted);
    assert!(matches!(
        e.delete_registry("acme", "web", 5),
        Err(TenancyError::RegistryNotEmpty)
    ));
    assert_eq!(e.unlink_blob(repo, &layer).unwrap(), DeleteOutcome::Deleted);

    e.delete_registry("acme", "web", 5).unwrap();
    assert!(e.get_registry("acme", "web").unwrap().is_none());
    assert!(matches!(
        e.delete_registry("acme", "web", 5),
        Err(TenancyError::RegistryUnknown)
    ));
    // its empty repositories left the catalog; the sibling's did not
    let (names, _) = e.catalog(None, 100).unwrap();
    assert_eq!(names, ["acme/web-2/app"]);
    assert!(e.get_registry("acme", "web-2").unwrap().is_some());
    // and the slug can be created again
    e.create_registry(registry("acme", "Web")).unwrap();
    assert_clean(&e);
}

#[test]
fn deleting_a_registry_ends_its_upload_sessions_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let e = acme(dir.path());
    e.create_registry(registry("acme", "Tmp")).unwrap();
    e.create_registry(registry("acme", "Tmp 2")).unwrap();
    let repo = "acme/tmp/app";
    let bytes = b"half a layer";
    let plain = e.start_upload(repo).unwrap();
    e.append_upload(repo, &plain.id, 0, bytes).unwrap();
    let synced = e.start_upload("acme/tmp/team/app").unwrap();
    e.append_upload("acme/tmp/team/app", &synced.id, 0, bytes)
        .unwrap();
    assert!(e
        .sync_upload("acme/tmp/team/app", &synced.id)
        .unwrap()
        .is_some());
    // a registry whose slug extends "tmp" is not inside it
    let sibling = e.start_upload("acme/tmp-2/app").unwrap();
    let elsewhere = e.start_upload("acme/web/app").unwrap();

    e.delete_registry("acme", "tmp", 5).unwrap();
    e.create_registry(registry("acme", "Tmp")).unwrap();
    let key = BlobKey::sha256_of(bytes);
    for (r, id) in [(repo, &plain.id), ("acme/tmp/team/app", &synced.id)] {
        assert!(e.upload_status(r, id).unwrap().is_none(), "{r}");
        assert!(matches!(
            e.append_upload(r, id, bytes.len() as u64, b"more"),
            Err(AppendError::Unknown)
        ));
        assert!(matches!(
            e.finish_upload(r, id, &key),
            Err(FinishError::Unknown)
        ));
    }
    assert!(e.stat_blob(repo, &key).unwrap().is_none());
    let mut files: Vec<String> = std::fs::read_dir(dir.path().join("uploads"))
        .unwrap()
        .map(|f| f.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut want = vec![sibling.id.clone(), elsewhere.id.clone()];
    want.sort();
    assert_eq!(files, want, "the ended sessions' files are gone");
    assert_clean(&e);
    drop(e);
    let e = open(dir.path());
    assert!(e.upload_status(repo, &plain.id).unwrap().is_none());
    assert!(e
        .upload_status("acme/tmp/team/app", &synced.id)
        .unwrap()
        .is_none());
    assert!(e
        .upload_status("acme/tmp-2/app", &sibling.id)
        .unwrap()
        .is_some());
    assert_clean(&e);
}

#[test]
fn deleting_a_registry_revokes_the_tokens_that_name_it_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let e = acme(dir.path());
    e.create_registry(registry("acme", "Api")).unwrap();
    e.create_org("beta", 1).unwrap();
    e.create_registry(registry("beta", "Web")).unwrap();
    let reader = TokenRec {
        kind: TokenKind::Registry,
        write: false,
        hash: hash_of("berth_rt_reader"),
        ..org_token("tok_reader", "acme", &["web"])
    };
    let tokens = [
        reader,
        org_token("tok_web_api", "acme", &["web", "api"]),
        org_token("tok_web_and_api", "acme", &["web", "api"]),
        org_token("tok_api", "acme", &["api"]),
        org_token("tok_all", "acme", &[]),
        org_token("tok_beta_web", "beta", &["web"]),
    ];
    for t in &tokens {
        e.create_token(t.clone()).unwrap();
    }
    e.revoke_token("tok_web_api", 3).unwrap();

    let revoked = e.delete_registry("acme", "web", 7).unwrap();
    assert_eq!(revoked, ["tok_reader", "tok_web_and_api"]);
    let when = |id: &str| e.get_token(id).unwrap().unwrap().revoked;
    assert_eq!(when("tok_reader"), Some(7));
    assert_eq!(when("tok_web_and_api"), Some(7));
    // revoked before keeps its first time; the others are untouched
    assert_eq!(when("tok_web_api"), Some(3));
    for id in ["tok_api", "tok_all", "tok_beta_web"] {
        assert_eq!(when(id), None, "{id}");
    }
    // a registry created again under the slug is not covered by the old token
    e.create_registry(registry("acme", "Web")).unwrap();
    assert_eq!(
        e.token_by_hash(&hash_of("berth_rt_reader"))
            .unwrap()
            .unwrap()
            .revoked,
        Some(7)
    );
    assert_clean(&e);
}

#[test]
fn records_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let t = org_token("tok_keep", "acme", &["web"]);
    {
        let e = acme(dir.path());
        e.update_registry("acme", "web", Some(Visibility::Public), Some("d".into()))
            .unwrap();
        e.create_token(t.clone()).unwrap();
        e.create_token(admin_token("tok_adm")).unwrap();
        e.revoke_token("tok_keep", 77).unwrap();
        e.touch_tokens(&[("tok_adm".into(), 88)]).unwrap();
        e.append_audit(audit("acme", "org.create", 1)).unwrap();
        e.append_audit(audit("acme", "registry.create", 2)).unwrap();
    }
    let e = open(dir.path());
    assert_eq!(e.get_org("acme").unwrap().unwrap().created, 1);
    let g = e.get_registry("acme", "web").unwrap().unwrap();
    assert_eq!(g.visibility, Visibility::Public);
    assert_eq!((g.name.as_str(), g.description.as_str()), ("Web", "d"));
    let got = e.token_by_hash(&t.hash).unwrap().unwrap();
    assert_eq!(
        got,
        TokenRec {
            revoked: Some(77),
            ..t
        }
    );
    assert_eq!(e.get_token("tok_adm").unwrap().unwrap().last_used, Some(88));
    assert!(e.has_admin_token().unwrap());
    let log = e.list_audit("acme", None, 10).unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].action, "registry.create");
    // the sequence continues where it stopped
    assert_eq!(e.append_audit(audit("acme", "token.create", 3)).unwrap(), 3);
    assert_clean(&e);
}

#[test]
fn tokens_and_audit_entries_written_from_several_threads_are_all_present() {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(acme(dir.path()));
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                for i in 0..20 {
                    let id = format!("tok_{t}_{i}");
                    e.create_token(org_token(&id, "acme", &["web"])).unwrap();
                    seqs.push(e.append_audit(audit("acme", "token.create", i)).unwrap());
                }
                seqs
            })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for th in threads {
        for s in th.join().unwrap() {
            assert!(seqs.insert(s), "sequence number {s} handed out twice");
        }
    }
    assert_eq!(seqs, (1..=120).collect());
    let tokens = e.list_tokens("acme").unwrap();
    assert_eq!(tokens.len(), 120);
    for t in &tokens {
        assert_eq!(e.token_by_hash(&t.hash).unwrap().as_ref(), Some(t));
    }
    assert_eq!(e.list_audit("acme", None, 1000).unwrap().len(), 120);
    assert_clean(&e);
}

#[test]
fn concurrent_creates_of_one_org_let_exactly_one_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(open(dir.path()));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let e = e.clone();
            std::thread::spawn(move || e.create_org("race", i).is_ok())
        })
        .collect();
    let won = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert_eq!(won, 1);
}

/// Content writes carry their audit entries into their own transaction: an entry exists
/// exactly when its change does, and survives a reopen with it.
#[test]
fn audited_content_writes_append_only_when_they_change_something() {
    let dir = tempfile::tempdir().unwrap();
    let entries = |e: &Engine| {
        e.list_audit("acme", None, 100)
            .unwrap()
            .into_iter()
            .rev()
            .map(|a| (a.seq, a.action, a.target))
            .collect::<Vec<_>>()
    };
    {
        let e = acme(dir.path());
        let repo = "acme/web/app";
        let (layer, _) = push(&e, repo, b"layer bytes");
        let m = manifest("{\"a\":1}", &["v1"], std::slice::from_ref(&layer));
        let _ = e
            .put_manifest_audited(repo, m, vec![audit("acme", "manifest.push", 1)])
            .unwrap();
        // A manifest naming a blob the repository lacks is refused, and so is its entry.
        let absent = BlobKey::sha256_of(b"not pushed");
        let m = manifest("{\"a\":2}", &["v2"], &[absent]);
        let r = e.put_manifest_audited(repo, m, vec![audit("acme", "manifest.push", 2)]);
        assert!(matches!(r, Err(PutManifestError::Missing(_))));
        // Deleting what is not there records nothing.
        let delete_tag = |tag: &str, time: u64| {
            e.delete_manifest_audited(
                repo,
                ManifestRef::Tag(tag),
                vec![audit("acme", "tag.delete", time)],
            )
            .unwrap()
        };
        assert_eq!(delete_tag("nope", 3), DeleteOutcome::NotFound);
        assert_eq!(delete_tag("v1", 4), DeleteOutcome::Deleted);
        let unlink = |time: u64| {
            e.unlink_blob_audited(repo, &layer, vec![audit("acme", "blob.delete", time)])
                .unwrap()
        };
        assert_eq!(unlink(5), DeleteOutcome::Deleted);
        assert_eq!(unlink(6), DeleteOutcome::NotFound);
        // Several entries for one change (a manifest pushed under two tags).
        let m = manifest("{\"a\":3}", &["x", "y"], &[]);
        let two = vec![
            audit("acme", "manifest.push", 7),
            audit("acme", "manifest.push", 8),
        ];
        let _ = e.put_manifest_audited(repo, m, two).unwrap();
    }
    let e = open(dir.path());
    let want = [
        (1, "manifest.push", "t1"),
        (2, "tag.delete", "t4"),
        (3, "blob.delete", "t5"),
        (4, "manifest.push", "t7"),
        (5, "manifest.push", "t8"),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(s, a, t)| (*s, a.to_string(), t.to_string()))
        .collect();
    assert_eq!(entries(&e), want);
}

#[test]
fn management_changes_commit_with_their_audit_entries_and_refusals_write_none() {
    let dir = tempfile::tempdir().unwrap();
    let e = acme(dir.path());
    let actions = |e: &Engine| -> Vec<(String, String)> {
        e.list_audit("acme", None, 100)
            .unwrap()
            .into_iter()
            .rev()
            .map(|a| (a.action, a.target))
            .collect()
    };
    e.create_registry_audited(
        registry("acme", "Api"),
        vec![audit("acme", "registry.create", 5)],
    )
    .unwrap();
    // A refused change writes no entry.
    let taken = e.create_registry_audited(
        registry("acme", "Api"),
        vec![audit("acme", "registry.create", 6)],
    );
    assert!(matches!(taken, Err(TenancyError::RegistryExists)));
    assert!(e
        .create_org_audited("acme", 7, vec![audit("acme", "org.create", 7)])
        .is_err());
    e.create_token_audited(
        org_token("tok_a", "acme", &["api"]),
        vec![audit("acme", "token.create", 8)],
    )
    .unwrap();
    e.create_token_audited(
        org_token("tok_b", "acme", &[]),
        vec![audit("acme", "token.create", 9)],
    )
    .unwrap();
    e.update_registry_audited(
        "acme",
        "api",
        Some(Visibility::Public),
        None,
        vec![audit("acme", "registry.update", 10)],
    )
    .unwrap();
    // The deletion records itself and each token it revokes (only tok_a names api).
    let each = AuditRec {
        action: "token.revoke".into(),
        ..audit("acme", "", 11)
    };
    let revoked = e
        .delete_registry_audited(
            "acme",
            "api",
            11,
            vec![audit("acme", "registry.delete", 11)],
            Some(each),
        )
        .unwrap();
    assert_eq!(revoked, vec!["tok_a".to_string()]);
    e.revoke_token_audited("tok_b", 12, vec![audit("acme", "token.revoke", 12)])
        .unwrap();
    assert_eq!(
        actions(&e),
        [
            ("registry.create", "t5"),
            ("token.create", "t8"),
            ("token.create", "t9"),
            ("registry.update", "t10"),
            ("registry.delete", "t11"),
            ("token.revoke", "tok_a"),
            ("token.revoke", "t12"),
        ]
        .map(|(a, t)| (a.to_string(), t.to_string()))
    );
}
