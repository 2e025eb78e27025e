//! Pull workflows of the OCI conformance suite (spec digest §10.1 "Pull", §10.2 additions):
//! end-1, end-2, end-3 against the real binary.

use berth_tests::content::{self, fields, Blob, Descriptor, OCI_MANIFEST};
use berth_tests::digest::sha256_digest;
use berth_tests::Expect as _;
use berth_tests::{Registry, Request};
use serde_json::json;

const NAME: &str = "e2e/tests/conformance/pull";

#[test]
fn ping_answers_200_with_the_api_version_header() {
    let reg = Registry::start();
    let mut c = reg.client();
    let r = c.get("/v2/").expect(200);
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0"),
        "{r:?}"
    );
}

/// T1 Pull: setup pushes two configs, a layer, manifest[0] by tag and manifest[1] by digest,
/// then checks blobs and manifests by digest and tag, and the errors.
#[test]
fn pull_workflow_serves_blobs_and_manifests_by_tag_and_digest() {
    let reg = Registry::start();
    let mut c = reg.client();

    let layer = Blob::new(
        content::OCI_LAYER_GZIP,
        content::tar_gz_layer(&[("a", content::random_bytes(300))])
            .0
            .bytes,
    );
    let configs: Vec<Blob> = (0..2)
        .map(|i| Blob::json(content::OCI_CONFIG, &json!({"author": format!("pull-{i}-{}", content::random_word(6)), "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})))
        .collect();
    for b in configs.iter().chain([&layer]) {
        c.push_blob(NAME, b);
    }
    // T1 descriptors carry `data` on the config and an unknown field.
    let manifests: Vec<Blob> = configs
        .iter()
        .map(|cfg| {
            let d = cfg.desc().with("newUnspecifiedField", json!(null));
            content::manifest(&d, &[layer.desc()], fields([]))
        })
        .collect();
    c.put_manifest(NAME, "tagtest0", &manifests[0]);
    c.put_manifest(NAME, &manifests[1].digest.clone(), &manifests[1]);

    // Blobs: missing → 404 for HEAD and GET.
    let missing = sha256_digest(b"never pushed");
    let r = c.head(&format!("/v2/{NAME}/blobs/{missing}")).expect(404);
    assert!(r.body.is_empty());
    c.get(&format!("/v2/{NAME}/blobs/{missing}")).expect(404);

    // Blobs: existing → 200, with Content-Length and a matching digest header.
    for b in configs.iter().chain([&layer]) {
        let h = c
            .head(&format!("/v2/{NAME}/blobs/{}", b.digest))
            .expect(200);
        assert_eq!(
            h.header("Content-Length"),
            Some(b.len().to_string().as_str()),
            "HEAD blob Content-Length:\n{h:?}"
        );
        assert_eq!(
            h.header("Docker-Content-Digest"),
            Some(b.digest.as_str()),
            "HEAD blob digest:\n{h:?}"
        );
        c.assert_blob(NAME, b);
    }

    // Manifests: a non-existent (and non-tag) reference → 404 for HEAD and GET.
    c.head(&format!("/v2/{NAME}/manifests/.INVALID_MANIFEST_NAME"))
        .expect(404);
    c.get(&format!("/v2/{NAME}/manifests/.INVALID_MANIFEST_NAME"))
        .expect(404);

    // Manifests by digest and by tag, HEAD and GET.
    for (reference, m) in [
        (manifests[0].digest.as_str(), &manifests[0]),
        ("tagtest0", &manifests[0]),
        (manifests[1].digest.as_str(), &manifests[1]),
    ] {
        let h = c
            .send(
                Request::head(&format!("/v2/{NAME}/manifests/{reference}"))
                    .header("Accept", OCI_MANIFEST),
            )
            .expect(200);
        assert!(h.body.is_empty());
        assert_eq!(h.header("Content-Type"), Some(OCI_MANIFEST), "{h:?}");
        assert_eq!(
            h.header("Content-Length"),
            Some(m.len().to_string().as_str()),
            "{h:?}"
        );
        assert_eq!(
            h.header("Docker-Content-Digest"),
            Some(m.digest.as_str()),
            "{h:?}"
        );
        c.assert_manifest(NAME, reference, m);
        let g = c.get(&format!("/v2/{NAME}/manifests/{reference}"));
        assert_eq!(
            g.header("Docker-Content-Digest"),
            Some(m.digest.as_str()),
            "{g:?}"
        );
    }

    // Error shape: a malformed digest reference → 400 with spec JSON, or 404.
    let r = c
        .get(&format!("/v2/{NAME}/manifests/sha256:totallywrong"))
        .expect_one_of(&[400, 404]);
    if r.status == 400 {
        let codes = r.error_codes();
        assert!(!codes.is_empty(), "400 without error codes:\n{r:?}");
    }
}

#[test]
fn missing_manifest_by_random_digest_or_tag_is_404_manifest_unknown() {
    let reg = Registry::start();
    let mut c = reg.client();
    let img = content::Image::random(1, 256);
    c.push_image(NAME, &img, "present");
    let random = sha256_digest(&content::random_bytes(32));
    for reference in [random.as_str(), "absent-tag"] {
        c.head(&format!("/v2/{NAME}/manifests/{reference}"))
            .expect(404);
        let r = c
            .get(&format!("/v2/{NAME}/manifests/{reference}"))
            .expect(404);
        assert_eq!(r.error_codes()[0], "MANIFEST_UNKNOWN", "{r:?}");
    }
    // A repository that was never pushed to.
    let r = c
        .get("/v2/e2e/tests/never/pushed/manifests/latest")
        .expect(404);
    let code = &r.error_codes()[0];
    assert!(
        code == "NAME_UNKNOWN" || code == "MANIFEST_UNKNOWN",
        "{r:?}"
    );
}

#[test]
fn blob_is_404_in_a_repository_that_does_not_hold_it() {
    let reg = Registry::start();
    let mut c = reg.client();
    let b = Blob::new("application/octet-stream", content::random_bytes(1000));
    c.push_blob("e2e/tests/holder/repo", &b);
    c.assert_blob("e2e/tests/holder/repo", &b);
    let r = c
        .get(&format!("/v2/e2e/tests/other/repo/blobs/{}", b.digest))
        .expect(404);
    assert_eq!(r.error_codes()[0], "BLOB_UNKNOWN", "{r:?}");
    c.head(&format!("/v2/e2e/tests/other/repo/blobs/{}", b.digest))
        .expect(404);
}

/// T2 "range requests": the six cases of digest §4.3 on a 2048-byte blob.
#[test]
fn blob_range_requests_answer_the_six_cases() {
    let reg = Registry::start();
    let mut c = reg.client();
    let b = Blob::new("application/octet-stream", content::random_bytes(2048));
    c.push_blob(NAME, &b);
    let path = format!("/v2/{NAME}/blobs/{}", b.digest);
    // (Range header, status, expected inclusive byte span)
    type Case = (&'static str, u16, Option<(usize, usize)>);
    let cases: [Case; 6] = [
        ("bytes=0-99", 206, Some((0, 99))),
        ("bytes=100-", 206, Some((100, 2047))),
        ("bytes=-100", 206, Some((1948, 2047))),
        ("bytes=2000-5000", 206, Some((2000, 2047))),
        ("bytes=5000-10000", 416, None),
        ("bytes=500-0", 416, None),
    ];
    for (range, status, want) in cases {
        let r = c.send(Request::get(&path).header("Range", range));
        assert_eq!(r.status, status, "Range: {range}\n{r:?}");
        match want {
            Some((a, z)) => {
                assert_eq!(
                    r.header("Content-Range"),
                    Some(format!("bytes {a}-{z}/2048").as_str()),
                    "Range: {range}\n{r:?}"
                );
                assert_eq!(
                    r.header("Content-Length"),
                    Some((z - a + 1).to_string().as_str()),
                    "Range: {range}"
                );
                assert!(r.body == b.bytes[a..=z], "Range: {range}: wrong bytes");
            }
            None => {
                if let Some(cr) = r.header("Content-Range") {
                    assert_eq!(cr, "bytes */2048", "Range: {range}");
                }
            }
        }
    }
    // A resumed docker download: `bytes=<offset>-` must give 206 starting at that offset.
    let r = c
        .send(Request::get(&path).header("Range", "bytes=1024-"))
        .expect(206);
    assert!(r.body == b.bytes[1024..]);
    // A Range that does not parse is ignored (RFC 9110 §14.2): 200 with the whole blob.
    for range in ["bytes=abc", "bytes=-", "bytes=1-x"] {
        let r = c.send(Request::get(&path).header("Range", range));
        assert_eq!(r.status, 200, "Range: {range}\n{r:?}");
        assert!(r.body == b.bytes, "Range: {range}: wrong bytes");
    }
}

#[test]
fn nested_index_and_its_children_pull_by_digest() {
    let reg = Registry::start();
    let mut c = reg.client();
    let a = content::Image::random_for("amd64", 1, 256);
    let b = content::Image::random_for("arm64", 1, 256);
    c.push_image(NAME, &a, &a.manifest.digest.clone());
    c.push_image(NAME, &b, &b.manifest.digest.clone());
    let inner = content::index(&[a.index_entry(), b.index_entry()], fields([]));
    c.put_manifest(NAME, &inner.digest.clone(), &inner);
    let outer = content::index(
        &[Descriptor::new(
            content::OCI_INDEX,
            &inner.digest,
            inner.len() as u64,
        )],
        fields([]),
    );
    c.put_manifest(NAME, "nested", &outer);
    c.assert_manifest(NAME, "nested", &outer);
    c.assert_manifest(NAME, &outer.digest.clone(), &outer);
    c.assert_manifest(NAME, &inner.digest.clone(), &inner);
    c.assert_manifest(NAME, &a.manifest.digest.clone(), &a.manifest);
    c.assert_manifest(NAME, &b.manifest.digest.clone(), &b.manifest);
    // An empty index is valid too.
    let empty = content::index(&[], fields([]));
    c.put_manifest(NAME, "empty-index", &empty);
    c.assert_manifest(NAME, "empty-index", &empty);
}
