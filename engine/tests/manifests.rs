//! Manifests, tags, referrers, catalog and deletion.

mod common;

use berth_engine::{BlobKey, DeleteOutcome, ManifestRef, PutManifestError, ReferrerRec};
use common::*;

#[test]
fn a_manifest_put_by_tag_reads_back_by_tag_and_by_digest() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let (cfg, _) = push(&e, "app", b"{config}");
    let (layer, _) = push(&e, "app", &data(1, 10_000));
    let m = manifest("{\"m\":1}", &["1.0", "latest"], &[cfg, layer]);
    let key = m.key.clone();
    let _ = e.put_manifest("app", m).unwrap();
    for r in [
        ManifestRef::Tag("1.0"),
        ManifestRef::Tag("latest"),
        ManifestRef::Key(&key),
    ] {
        let got = e.get_manifest("app", r).unwrap().unwrap();
        assert_eq!(got.key, key);
        assert_eq!(got.body, &b"{\"m\":1}"[..]);
        assert_eq!(got.media_type, "application/vnd.oci.image.manifest.v1+json");
    }
    assert!(e
        .get_manifest("app", ManifestRef::Tag("2.0"))
        .unwrap()
        .is_none());
    assert!(e
        .get_manifest("other", ManifestRef::Key(&key))
        .unwrap()
        .is_none());
    assert_clean(&e);
}

#[test]
fn a_manifest_whose_blobs_are_not_in_the_repository_is_refused_with_missing() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let (here, _) = push(&e, "app", b"here");
    let (elsewhere, _) = push(&e, "other", b"elsewhere");
    let never = BlobKey::sha256_of(b"never pushed");
    let child = BlobKey::sha256_of(b"child manifest");
    let mut m = manifest(
        "{}",
        &["t"],
        &[here.clone(), elsewhere.clone(), never.clone()],
    );
    m.manifests = vec![child.clone()];
    let mut want = vec![elsewhere, never, child];
    want.sort();
    match e.put_manifest("app", m.clone()) {
        Err(PutManifestError::Missing(mut got)) => {
            got.sort();
            assert_eq!(got, want);
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    // nothing stored: no manifest, no tag, and a new repository is not created either
    assert!(e
        .get_manifest("app", ManifestRef::Key(&m.key))
        .unwrap()
        .is_none());
    assert_eq!(e.list_tags("app", None, 10).unwrap(), Some((vec![], false)));
    let lonely = manifest("{}", &["t"], &[here]);
    assert!(matches!(
        e.put_manifest("fresh", lonely),
        Err(PutManifestError::Missing(_))
    ));
    assert_eq!(e.list_tags("fresh", None, 10).unwrap(), None);
}

#[test]
fn an_index_may_reference_child_manifests_of_its_repository() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let child = manifest("{\"child\":1}", &[], &[]);
    let child_key = child.key.clone();
    let _ = e.put_manifest("app", child).unwrap();
    let mut index = manifest("{\"index\":1}", &["multi"], &[]);
    index.manifests = vec![child_key.clone()];
    let _ = e.put_manifest("app", index.clone()).unwrap();
    assert!(matches!(
        e.put_manifest("other", index),
        Err(PutManifestError::Missing(k)) if k == vec![child_key]
    ));
}

#[test]
fn tags_list_is_bytewise_sorted_and_paginates_strictly_after_last() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    assert_eq!(e.list_tags("app", None, 10).unwrap(), None);
    let tags = ["b", "a", "B", "a1", "Z", "_x", "0"];
    let m = manifest("{}", &tags, &[]);
    let _ = e.put_manifest("app", m).unwrap();
    let _ = e
        .put_manifest("app2", manifest("{}", &["zz"], &[]))
        .unwrap();
    let mut sorted: Vec<String> = tags.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(
        e.list_tags("app", None, 100).unwrap(),
        Some((sorted.clone(), false))
    );
    assert_eq!(
        e.list_tags("app", None, 3).unwrap(),
        Some((sorted[..3].to_vec(), true))
    );
    assert_eq!(
        e.list_tags("app", Some(&sorted[2]), 3).unwrap(),
        Some((sorted[3..6].to_vec(), true))
    );
    assert_eq!(
        e.list_tags("app", Some(&sorted[3]), 3).unwrap(),
        Some((sorted[4..7].to_vec(), false))
    );
    assert_eq!(
        e.list_tags("app", Some("zzz"), 3).unwrap(),
        Some((vec![], false))
    );
    // `last` need not be a tag that exists
    assert_eq!(
        e.list_tags("app", Some("a0"), 1).unwrap(),
        Some((vec!["a1".to_string()], true))
    );
    assert_eq!(e.list_tags("app", None, 0).unwrap(), Some((vec![], true)));
}

#[test]
fn catalog_is_sorted_and_paginates() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    assert_eq!(e.catalog(None, 10).unwrap(), (vec![], false));
    let names = ["org/reg/b", "org/reg/a", "org/reg/a/sub", "alpha/x/y"];
    for n in names {
        push(&e, n, b"x");
    }
    let mut sorted: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(e.catalog(None, 10).unwrap(), (sorted.clone(), false));
    assert_eq!(e.catalog(None, 2).unwrap(), (sorted[..2].to_vec(), true));
    assert_eq!(
        e.catalog(Some(&sorted[1]), 2).unwrap(),
        (sorted[2..4].to_vec(), false)
    );
    // an upload session alone does not make a repository
    e.start_upload("not/yet/here").unwrap();
    assert_eq!(e.catalog(None, 10).unwrap().0.len(), 4);
}

#[test]
fn delete_by_tag_removes_only_the_tag() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let m = manifest("{}", &["a", "b"], &[]);
    let key = m.key.clone();
    let _ = e.put_manifest("app", m).unwrap();
    assert_eq!(
        e.delete_manifest("app", ManifestRef::Tag("a")).unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        e.delete_manifest("app", ManifestRef::Tag("a")).unwrap(),
        DeleteOutcome::NotFound
    );
    assert!(e
        .get_manifest("app", ManifestRef::Tag("a"))
        .unwrap()
        .is_none());
    assert!(e
        .get_manifest("app", ManifestRef::Tag("b"))
        .unwrap()
        .is_some());
    assert!(e
        .get_manifest("app", ManifestRef::Key(&key))
        .unwrap()
        .is_some());
    assert_eq!(
        e.delete_manifest("nope", ManifestRef::Tag("a")).unwrap(),
        DeleteOutcome::RepoUnknown
    );
}

fn referrer(body: &str, art: &str) -> ReferrerRec {
    ReferrerRec {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        key: BlobKey::sha256_of(body.as_bytes()),
        size: body.len() as u64,
        artifact_type: Some(art.into()),
        annotations: Some("{\"k\":\"v\"}".into()),
    }
}

#[test]
fn delete_by_digest_removes_the_manifest_its_tags_and_its_referrer_entry() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let subject = manifest("{\"subject\":1}", &["v1", "stable"], &[]);
    let skey = subject.key.clone();
    let _ = e.put_manifest("app", subject).unwrap();
    let other = manifest("{\"other\":1}", &["keep"], &[]);
    let _ = e.put_manifest("app", other).unwrap();
    let mut sigs = Vec::new();
    for (i, art) in ["sig", "sbom"].iter().enumerate() {
        let body = format!("{{\"referrer\":{i}}}");
        let mut r = manifest(&body, &[], &[]);
        r.subject = Some((skey.clone(), referrer(&body, art)));
        sigs.push(r.key.clone());
        let _ = e.put_manifest("app", r).unwrap();
    }
    let got = e.referrers("app", &skey).unwrap();
    assert_eq!(got.len(), 2);
    assert!(got
        .iter()
        .any(|r| r.artifact_type.as_deref() == Some("sbom")));
    assert!(e.referrers("other", &skey).unwrap().is_empty());

    // deleting a referrer removes it from the list
    assert_eq!(
        e.delete_manifest("app", ManifestRef::Key(&sigs[0]))
            .unwrap(),
        DeleteOutcome::Deleted
    );
    let got = e.referrers("app", &skey).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].key, sigs[1]);

    // deleting the subject removes it and every tag pointing to it, not other tags;
    // referrers of a missing subject are still listed (spec §7.2)
    assert_eq!(
        e.delete_manifest("app", ManifestRef::Key(&skey)).unwrap(),
        DeleteOutcome::Deleted
    );
    assert!(e
        .get_manifest("app", ManifestRef::Key(&skey))
        .unwrap()
        .is_none());
    assert_eq!(
        e.list_tags("app", None, 10).unwrap(),
        Some((vec!["keep".to_string()], false))
    );
    assert_eq!(e.referrers("app", &skey).unwrap().len(), 1);
    assert_eq!(
        e.delete_manifest("app", ManifestRef::Key(&skey)).unwrap(),
        DeleteOutcome::NotFound
    );
    assert_eq!(
        e.delete_manifest("nope", ManifestRef::Key(&skey)).unwrap(),
        DeleteOutcome::RepoUnknown
    );
    assert_clean(&e);
}

#[test]
fn a_manifest_survives_the_deletion_of_its_blobs_and_can_still_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let (layer, _) = push(&e, "app", b"layer");
    let m = manifest("{}", &["t"], std::slice::from_ref(&layer));
    let key = m.key.clone();
    let _ = e.put_manifest("app", m).unwrap();
    assert_eq!(
        e.unlink_blob("app", &layer).unwrap(),
        DeleteOutcome::Deleted
    );
    assert!(e
        .get_manifest("app", ManifestRef::Tag("t"))
        .unwrap()
        .is_some());
    assert_eq!(
        e.delete_manifest("app", ManifestRef::Key(&key)).unwrap(),
        DeleteOutcome::Deleted
    );
    assert_clean(&e);
}

#[test]
fn retagging_moves_the_tag_to_the_new_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let _ = e
        .put_manifest("app", manifest("{\"v\":1}", &["latest"], &[]))
        .unwrap();
    let m2 = manifest("{\"v\":2}", &["latest"], &[]);
    let k2 = m2.key.clone();
    let _ = e.put_manifest("app", m2).unwrap();
    assert_eq!(
        e.get_manifest("app", ManifestRef::Tag("latest"))
            .unwrap()
            .unwrap()
            .key,
        k2
    );
    assert_eq!(e.stats().manifests, 2);
}

#[test]
fn large_manifests_are_stored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let body = "x".repeat(4 << 20);
    let m = manifest(&body, &["big"], &[]);
    let _ = e.put_manifest("app", m).unwrap();
    let got = e
        .get_manifest("app", ManifestRef::Tag("big"))
        .unwrap()
        .unwrap();
    assert_eq!(got.body.len(), 4 << 20);
}

#[test]
fn every_stored_manifest_waits_in_the_package_queue_until_done_or_deleted_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let e = open(dir.path());
    let (cfg, _) = push(&e, "app", b"{config}");
    let one = manifest("{\"m\":1}", &["1"], std::slice::from_ref(&cfg));
    let two = manifest("{\"m\":2}", &["2"], std::slice::from_ref(&cfg));
    let three = manifest("{\"m\":3}", &[], std::slice::from_ref(&cfg));
    let (k1, k2, k3) = (one.key.clone(), two.key.clone(), three.key.clone());
    for m in [one, two, three] {
        let _ = e.put_manifest("app", m).unwrap();
    }
    let queued = |e: &berth_engine::Engine| {
        let mut q: Vec<BlobKey> = e
            .package_queue(100)
            .unwrap()
            .into_iter()
            .map(|(r, k)| {
                assert_eq!(r, "app");
                k
            })
            .collect();
        q.sort();
        q
    };
    let mut all = vec![k1.clone(), k2.clone(), k3.clone()];
    all.sort();
    assert_eq!(queued(&e), all, "queued in the manifest's own commit");
    assert_eq!(e.package_queue(2).unwrap().len(), 2);
    // A crash or restart resumes the queue.
    drop(e);
    let e = open(dir.path());
    assert_eq!(queued(&e), all);
    // Done: off the queue, durably. Deleted: off with its manifest; a tag delete keeps it.
    e.package_done(&[("app".to_owned(), k1.clone())]).unwrap();
    let _ = e.delete_manifest("app", ManifestRef::Key(&k2)).unwrap();
    let _ = e.delete_manifest("app", ManifestRef::Tag("1")).unwrap();
    assert_eq!(queued(&e), vec![k3.clone()]);
    drop(e);
    let e = open(dir.path());
    assert_eq!(queued(&e), vec![k3]);
    assert_clean(&e);
}
