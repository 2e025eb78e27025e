//! skopeo (containers/image, as podman and buildah use it) against the registry: layouts to
//! the registry and back, byte for byte.

use berth_tests::content::{self, fields, Image, OCI_INDEX, OCI_MANIFEST};
use berth_tests::layout::{self, Layout};
use berth_tests::Expect as _;
use berth_tests::{Registry, Request};
use serde_json::{json, Value};

/// Pulls `reference` into a fresh layout and checks every blob against `img`.
fn pull_and_compare(reg: &Registry, repo_ref: &str, img: &Image, dir: &str) {
    let out = reg.scratch(dir);
    reg.skopeo_copy(
        &format!("docker://{}/{repo_ref}", reg.host()),
        &format!("oci:{}:pulled", out.display()),
        &[],
    );
    layout::assert_layout_consistent(&out);
    let entries = layout::index_entries(&out);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        entries[0].digest, img.manifest.digest,
        "manifest digest changed on the way back"
    );
    assert!(layout::read_blob(&out, &img.manifest.digest) == img.manifest.bytes);
    for b in img.blobs() {
        assert!(
            layout::read_blob(&out, &b.digest) == b.bytes,
            "blob {} differs after the round trip",
            b.digest
        );
    }
}

#[test]
fn skopeo_copies_a_multi_layer_image_to_the_registry_and_back_byte_exact() {
    let mut reg = Registry::start();
    let img = Image::random(4, 400_000);
    let src = reg.scratch("src");
    let mut l = Layout::create(&src);
    l.add_image(&img, Some("v1"));
    l.write_index();

    reg.skopeo_copy(
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/e2e/tests/skopeo/app:v1", reg.host()),
        &[],
    );

    // The registry holds exactly the layout's bytes.
    let mut c = reg.client();
    c.assert_manifest("e2e/tests/skopeo/app", "v1", &img.manifest);
    for b in img.blobs() {
        c.assert_blob("e2e/tests/skopeo/app", b);
    }
    let tags = c
        .get("/v2/e2e/tests/skopeo/app/tags/list")
        .expect(200)
        .json();
    assert_eq!(tags["tags"], json!(["v1"]));

    // skopeo inspect sees the same digest the registry reports.
    let out = berth_tests::clients::skopeo()
        .args(["inspect", "--tls-verify=false", "--raw", "--authfile"])
        .arg(reg.authfile())
        .arg(format!("docker://{}/e2e/tests/skopeo/app:v1", reg.host()))
        .run();
    assert_eq!(
        out.as_bytes(),
        img.manifest.bytes.as_slice(),
        "skopeo inspect --raw"
    );

    pull_and_compare(&reg, "e2e/tests/skopeo/app:v1", &img, "back");
    // And by digest.
    pull_and_compare(
        &reg,
        &format!("e2e/tests/skopeo/app@{}", img.manifest.digest),
        &img,
        "back-digest",
    );

    // After a restart everything is still served.
    drop(c);
    reg.restart();
    pull_and_compare(&reg, "e2e/tests/skopeo/app:v1", &img, "after-restart");

    // Copy registry → registry (mount or re-upload; both must work).
    reg.skopeo_copy(
        &format!("docker://{}/e2e/tests/skopeo/app:v1", reg.host()),
        &format!("docker://{}/e2e/tests/skopeo/copy:v2", reg.host()),
        &[],
    );
    pull_and_compare(&reg, "e2e/tests/skopeo/copy:v2", &img, "copied");
}

#[test]
fn skopeo_copies_a_multi_arch_index_with_all() {
    let reg = Registry::start();
    let amd = Image::random_for("amd64", 2, 100_000);
    let arm = Image::random_for("arm64", 2, 100_000);
    let idx = content::index(&[amd.index_entry(), arm.index_entry()], fields([]));
    let src = reg.scratch("src");
    let mut l = Layout::create(&src);
    l.add_index(&idx, &[&amd, &arm], Some("multi"));
    l.write_index();

    reg.skopeo_copy(
        &format!("oci:{}:multi", src.display()),
        &format!("docker://{}/e2e/tests/skopeo/multi:1", reg.host()),
        &["--all"],
    );

    let mut c = reg.client();
    c.assert_manifest("e2e/tests/skopeo/multi", "1", &idx);
    for img in [&amd, &arm] {
        c.assert_manifest(
            "e2e/tests/skopeo/multi",
            &img.manifest.digest,
            &img.manifest,
        );
        for b in img.blobs() {
            c.assert_blob("e2e/tests/skopeo/multi", b);
        }
    }

    let out = reg.scratch("back");
    reg.skopeo_copy(
        &format!("docker://{}/e2e/tests/skopeo/multi:1", reg.host()),
        &format!("oci:{}:multi", out.display()),
        &["--all"],
    );
    layout::assert_layout_consistent(&out);
    assert_eq!(layout::index_entries(&out)[0].digest, idx.digest);
    for img in [&amd, &arm] {
        assert!(layout::read_blob(&out, &img.manifest.digest) == img.manifest.bytes);
        for b in img.blobs() {
            assert!(layout::read_blob(&out, &b.digest) == b.bytes);
        }
    }
}

#[test]
fn skopeo_pushes_an_artifact_with_a_subject_that_referrers_then_lists() {
    let reg = Registry::start();
    let img = Image::random(1, 50_000);
    let (art, layer) = content::artifact(
        "application/vnd.berth.test.sbom",
        &img.manifest.desc(),
        ("org.example.kind", "sbom"),
    );
    let src = reg.scratch("src");
    let mut l = Layout::create(&src);
    l.add_image(&img, Some("app"));
    l.add_blob(&content::empty_json());
    l.add_blob(&layer);
    l.add_manifest(&art, Some("sbom"));
    l.write_index();

    reg.skopeo_copy(
        &format!("oci:{}:app", src.display()),
        &format!("docker://{}/e2e/tests/skopeo/art:app", reg.host()),
        &[],
    );
    reg.skopeo_copy(
        &format!("oci:{}:sbom", src.display()),
        &format!("docker://{}/e2e/tests/skopeo/art:sbom", reg.host()),
        &[],
    );

    let mut c = reg.client();
    c.assert_manifest("e2e/tests/skopeo/art", "sbom", &art);
    let r = c
        .send(Request::get(&format!(
            "/v2/e2e/tests/skopeo/art/referrers/{}",
            img.manifest.digest
        )))
        .expect(200);
    assert_eq!(r.header("Content-Type"), Some(OCI_INDEX));
    let v: Value = r.json();
    let list = v["manifests"]
        .as_array()
        .expect("referrers manifests array");
    assert_eq!(list.len(), 1, "{v:#}");
    assert_eq!(list[0]["digest"], json!(art.digest));
    assert_eq!(list[0]["mediaType"], json!(OCI_MANIFEST));
    assert_eq!(list[0]["size"], json!(art.len()));
    assert_eq!(
        list[0]["artifactType"],
        json!("application/vnd.berth.test.sbom")
    );
    assert_eq!(list[0]["annotations"], json!({"org.example.kind": "sbom"}));
}
