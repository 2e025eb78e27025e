//! Content management of the OCI conformance suite (spec digest §10.1 "Content management",
//! §8.3, and T2's "deletes are atomic": HEAD right after a delete is 404).

use berth_tests::content::{self, Image};
use berth_tests::http::Client;
use berth_tests::Expect as _;
use berth_tests::Registry;
use serde_json::json;

const NAME: &str = "e2e/tests/conformance/management";

fn tag_list(c: &mut Client) -> Option<Vec<String>> {
    let r = c.get(&format!("/v2/{NAME}/tags/list"));
    match r.status {
        200 => Some(
            r.json()["tags"]
                .as_array()
                .unwrap_or_else(|| panic!("{r:?}"))
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect(),
        ),
        404 => None,
        _ => panic!("tags list:\n{r:?}"),
    }
}

/// T1 "Content management": delete a tag, then the manifest by digest, then its blobs.
#[test]
fn delete_tag_then_manifest_then_blobs_each_take_effect_at_once() {
    let reg = Registry::start();
    let mut c = reg.client();
    let img = Image::random(2, 512);
    c.push_image(NAME, &img, "tagtest0");
    c.put_manifest(NAME, "keep", &img.manifest);
    let before = tag_list(&mut c).expect("tags after push");
    assert_eq!(before, vec!["keep", "tagtest0"]);

    // Tag delete: 202; the tag is gone, the manifest is still there by digest and other tag.
    let r = c
        .delete(&format!("/v2/{NAME}/manifests/tagtest0"))
        .expect(202);
    assert!(
        r.body.is_empty() || r.header("Content-Length") == Some("0"),
        "{r:?}"
    );
    c.head(&format!("/v2/{NAME}/manifests/tagtest0"))
        .expect(404);
    c.get(&format!("/v2/{NAME}/manifests/tagtest0")).expect(404);
    c.assert_manifest(NAME, &img.manifest.digest, &img.manifest);
    c.assert_manifest(NAME, "keep", &img.manifest);
    assert_eq!(
        tag_list(&mut c),
        Some(vec!["keep".to_string()]),
        "one tag fewer"
    );

    // Manifest delete by digest: 202; it and every tag pointing to it are gone.
    c.delete(&format!("/v2/{NAME}/manifests/{}", img.manifest.digest))
        .expect(202);
    c.head(&format!("/v2/{NAME}/manifests/{}", img.manifest.digest))
        .expect(404);
    c.get(&format!("/v2/{NAME}/manifests/{}", img.manifest.digest))
        .expect(404);
    c.head(&format!("/v2/{NAME}/manifests/keep")).expect(404);
    match tag_list(&mut c) {
        None => {}
        Some(t) => assert!(t.is_empty(), "tags left after deleting the manifest: {t:?}"),
    }
    // Deleting it again: 404.
    let r = c
        .delete(&format!("/v2/{NAME}/manifests/{}", img.manifest.digest))
        .expect(404);
    assert_eq!(r.error_codes()[0], "MANIFEST_UNKNOWN", "{r:?}");

    // Blobs: 202, then HEAD and GET 404; a second delete 404 BLOB_UNKNOWN.
    for b in img.blobs() {
        c.delete(&format!("/v2/{NAME}/blobs/{}", b.digest))
            .expect(202);
        c.head(&format!("/v2/{NAME}/blobs/{}", b.digest))
            .expect(404);
        c.get(&format!("/v2/{NAME}/blobs/{}", b.digest)).expect(404);
        let r = c
            .delete(&format!("/v2/{NAME}/blobs/{}", b.digest))
            .expect(404);
        assert_eq!(r.error_codes()[0], "BLOB_UNKNOWN", "{r:?}");
    }
}

/// T1 teardown with `OCI_DELETE_MANIFEST_BEFORE_BLOBS=0`: blobs first (202/404/405 only),
/// and the manifest delete still works afterwards.
#[test]
fn deleting_blobs_before_their_manifest_leaves_the_manifest_deletable() {
    let reg = Registry::start();
    let mut c = reg.client();
    let img = Image::random(1, 256);
    c.push_image(NAME, &img, "t");
    for b in img.blobs() {
        c.delete(&format!("/v2/{NAME}/blobs/{}", b.digest))
            .expect_one_of(&[202, 404, 405]);
    }
    c.delete(&format!("/v2/{NAME}/manifests/{}", img.manifest.digest))
        .expect(202);
    c.head(&format!("/v2/{NAME}/manifests/{}", img.manifest.digest))
        .expect(404);
}

/// A blob shared by two repositories is unlinked from one only (stored once, linked twice).
#[test]
fn deleting_a_blob_in_one_repository_keeps_it_in_another() {
    let reg = Registry::start();
    let mut c = reg.client();
    let b = content::Blob::new("application/octet-stream", content::random_bytes(5000));
    c.push_blob("e2e/tests/one/repo", &b);
    c.push_blob("e2e/tests/two/repo", &b);
    c.delete(&format!("/v2/e2e/tests/one/repo/blobs/{}", b.digest))
        .expect(202);
    c.head(&format!("/v2/e2e/tests/one/repo/blobs/{}", b.digest))
        .expect(404);
    c.assert_blob("e2e/tests/two/repo", &b);
}

/// T2 deletes in reverse order (index, then its children), each followed by HEAD → 404;
/// a tag that moved keeps pointing at its new manifest.
#[test]
fn index_and_children_delete_in_reverse_order_and_moved_tags_follow() {
    let reg = Registry::start();
    let mut c = reg.client();
    let a = Image::random_for("amd64", 1, 256);
    let b = Image::random_for("arm64", 1, 256);
    c.push_image(NAME, &a, &a.manifest.digest.clone());
    c.push_image(NAME, &b, &b.manifest.digest.clone());
    let idx = content::index(
        &[a.index_entry(), b.index_entry()],
        content::fields([("annotations", json!({"k": "v"}))]),
    );
    c.put_manifest(NAME, "multi", &idx);
    // Move a tag: "moving" first names a, then b.
    c.put_manifest(NAME, "moving", &a.manifest);
    c.put_manifest(NAME, "moving", &b.manifest);
    c.assert_manifest(NAME, "moving", &b.manifest);

    for m in [&idx, &b.manifest, &a.manifest] {
        c.delete(&format!("/v2/{NAME}/manifests/{}", m.digest))
            .expect(202);
        c.head(&format!("/v2/{NAME}/manifests/{}", m.digest))
            .expect(404);
    }
    c.head(&format!("/v2/{NAME}/manifests/multi")).expect(404);
    c.head(&format!("/v2/{NAME}/manifests/moving")).expect(404);
}

/// Deletes survive a restart: nothing deleted comes back, nothing kept goes away.
#[test]
fn deletes_are_durable_across_a_restart() {
    let mut reg = Registry::start();
    let mut c = reg.client();
    let gone = Image::random(1, 256);
    let kept = Image::random(1, 256);
    c.push_image(NAME, &gone, "gone");
    c.push_image(NAME, &kept, "kept");
    c.delete(&format!("/v2/{NAME}/manifests/{}", gone.manifest.digest))
        .expect(202);
    c.delete(&format!("/v2/{NAME}/blobs/{}", gone.layers[0].digest))
        .expect(202);
    drop(c);
    reg.restart();
    let mut c = reg.client();
    c.head(&format!("/v2/{NAME}/manifests/gone")).expect(404);
    c.head(&format!("/v2/{NAME}/manifests/{}", gone.manifest.digest))
        .expect(404);
    c.head(&format!("/v2/{NAME}/blobs/{}", gone.layers[0].digest))
        .expect(404);
    c.assert_manifest(NAME, "kept", &kept.manifest);
    for b in kept.blobs() {
        c.assert_blob(NAME, b);
    }
    drop(c);
    reg.stop();
    reg.assert_check_clean();
}
