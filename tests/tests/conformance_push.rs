//! Push workflows of the OCI conformance suite (spec digest §10.1 "Push" and the §10.2
//! additions): uploads in every style, mounts, manifests in their wild variants.

use berth_tests::content::{self, fields, Blob, Descriptor, Image, OCI_MANIFEST};
use berth_tests::digest::{sha256_digest, sha512_digest, EMPTY_BLOB, EMPTY_JSON};
use berth_tests::http::{with_query, Client, Response};
use berth_tests::Expect as _;
use berth_tests::{Registry, Request};
use serde_json::json;

const NAME: &str = "e2e/tests/conformance/push";
const NAME2: &str = "e2e/tests/conformance/cross";

/// PATCH a chunk; `range` adds `Content-Range: s-e` (the chunked style of §5.4).
fn patch(c: &mut Client, loc: &str, bytes: &[u8], range: Option<(usize, usize)>) -> Response {
    let mut req = Request::patch(loc).octets();
    if let Some((s, e)) = range {
        req = req.header("Content-Range", &format!("{s}-{e}"));
    }
    c.send(req.body(bytes.to_vec()))
}

/// PUT `?digest=` closing an upload, with an optional final body.
fn close(c: &mut Client, loc: &str, digest: &str, body: &[u8]) -> Response {
    let mut req = Request::put(&with_query(loc, &format!("digest={digest}")));
    if !body.is_empty() {
        req = req.octets();
    }
    c.send(req.body(body.to_vec()))
}

/// How an upload's bytes travel before the close that names `digest`.
#[derive(Clone, Copy, Debug)]
enum Style {
    /// All of them in the closing PUT.
    Put,
    /// One streamed PATCH (no Content-Range), then an empty PUT.
    Stream,
    /// Two PATCHes with Content-Range, then an empty PUT.
    Chunks,
}

/// Starts an upload, sends `bytes` in `style` and closes it with `digest`: the close's answer.
fn upload(c: &mut Client, style: Style, digest: &str, bytes: &[u8]) -> Response {
    let loc = c.start_upload(NAME);
    match style {
        Style::Put => close(c, &loc, digest, bytes),
        Style::Stream => {
            let loc = patch(c, &loc, bytes, None).expect(202).location();
            close(c, &loc, digest, &[])
        }
        Style::Chunks => {
            let half = bytes.len() / 2;
            let loc = patch(c, &loc, &bytes[..half], Some((0, half - 1)))
                .expect(202)
                .location();
            let loc = patch(c, &loc, &bytes[half..], Some((half, bytes.len() - 1)))
                .expect(202)
                .location();
            close(c, &loc, digest, &[])
        }
    }
}

/// After a successful close: 201, Location pullable with the same bytes, digest header right.
#[track_caller]
fn assert_closed(c: &mut Client, r: Response, digest: &str, bytes: &[u8]) {
    let r = r.expect(201);
    if let Some(d) = r.header("Docker-Content-Digest") {
        assert_eq!(d, digest, "{r:?}");
    }
    let loc = r.location();
    let g = c.get(&loc).expect(200);
    assert!(g.body == bytes, "GET {loc}: bytes differ from those pushed");
    assert_eq!(
        g.header("Content-Length"),
        Some(bytes.len().to_string().as_str())
    );
    let h = c.head(&format!("/v2/{NAME}/blobs/{digest}"));
    if h.status == 200 {
        assert!(h.body.is_empty());
        assert_eq!(
            h.header("Content-Length"),
            Some(bytes.len().to_string().as_str()),
            "{h:?}"
        );
        if let Some(d) = h.header("Docker-Content-Digest") {
            assert_eq!(d, digest);
        }
    }
}

/// T1 "Streamed": POST, one PATCH without Content-Range, PUT ?digest= without body.
#[test]
fn streamed_upload_post_patch_put_creates_the_blob() {
    let reg = Registry::start();
    let mut c = reg.client();
    let bytes = content::random_bytes(10_000);
    let digest = sha256_digest(&bytes);
    let post = c
        .send(Request::post(&format!("/v2/{NAME}/blobs/uploads/")).header("Content-Length", "0"))
        .expect(202);
    let loc = post.location();
    assert!(
        loc.starts_with(&format!("/v2/{NAME}/blobs/uploads/")),
        "upload Location {loc}"
    );
    if let Some(range) = post.header("Range") {
        assert!(range.starts_with("0-"), "empty session Range {range}");
    }
    let p = patch(&mut c, &loc, &bytes, None).expect(202);
    assert_eq!(p.header("Range"), Some("0-9999"), "{p:?}");
    let loc = p.location();
    let r = close(&mut c, &loc, &digest, &[]);
    assert_closed(&mut c, r, &digest, &bytes);
}

/// docker streams a whole layer in one PATCH with `Transfer-Encoding: chunked` (§5.9).
#[test]
fn streamed_patch_with_chunked_transfer_encoding_is_appended_whole() {
    let reg = Registry::start();
    let mut c = reg.client();
    let bytes = content::random_bytes(300_000);
    let digest = sha256_digest(&bytes);
    let loc = c.start_upload(NAME);
    let chunks: Vec<Vec<u8>> = bytes.chunks(32 * 1024 + 7).map(<[u8]>::to_vec).collect();
    let p = c
        .send(Request::patch(&loc).octets().chunked(chunks))
        .expect(202);
    assert_eq!(p.header("Range"), Some("0-299999"), "{p:?}");
    let r = close(&mut c, &p.location(), &digest, &[]);
    assert_closed(&mut c, r, &digest, &bytes);
}

/// T1 "Monolithic": single POST with `?digest=` (201, or 202 without storing), then POST→PUT.
#[test]
fn monolithic_uploads_store_the_blob_in_one_request() {
    let reg = Registry::start();
    let mut c = reg.client();
    let cfg = Blob::json(
        content::OCI_CONFIG,
        &json!({"author": content::random_word(10)}),
    );
    let layer = Blob::new(content::OCI_LAYER_GZIP, content::random_bytes(5000));
    c.get(&format!("/v2/{NAME}/blobs/{}", cfg.digest))
        .expect(404);

    // Single POST with the body.
    let r = c.send(
        Request::post(&format!("/v2/{NAME}/blobs/uploads/?digest={}", cfg.digest))
            .octets()
            .body(cfg.bytes.clone()),
    );
    match r.status {
        201 => {
            r.location();
            c.assert_blob(NAME, &cfg);
        }
        202 => {
            r.location();
            c.get(&format!("/v2/{NAME}/blobs/{}", cfg.digest))
                .expect(404);
        }
        _ => panic!("single POST must be 201 or 202:\n{r:?}"),
    }

    // POST then PUT with the whole body.
    for b in [&cfg, &layer] {
        let loc = c.start_upload(NAME);
        let r = close(&mut c, &loc, &b.digest, &b.bytes);
        assert_closed(&mut c, r, &b.digest, &b.bytes);
    }
}

/// T1 "Chunked": 416 for an out-of-order first chunk, exact `Range`, 416 on replay, status
/// GET 204, then the rest and the close.
#[test]
fn chunked_upload_rejects_out_of_order_and_replayed_chunks_with_416() {
    let reg = Registry::start();
    let mut c = reg.client();
    let post = c
        .send(Request::post(&format!("/v2/{NAME}/blobs/uploads/")).header("Content-Length", "0"))
        .expect(202);
    let min: usize = post
        .header("OCI-Chunk-Min-Length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let half = min.max(22);
    let bytes = content::random_bytes(2 * half);
    let digest = sha256_digest(&bytes);
    let first = &bytes[..half];
    let second = &bytes[half..];

    // Second half first → 416.
    let r = patch(&mut c, &post.location(), second, Some((half, 2 * half - 1)));
    assert_eq!(r.status, 416, "out-of-order first chunk:\n{r:?}");

    // A new session, chunk by chunk.
    let loc1 = c.start_upload(NAME);
    let r = patch(&mut c, &loc1, first, Some((0, half - 1))).expect(202);
    assert_eq!(
        r.header("Range"),
        Some(format!("0-{}", half - 1).as_str()),
        "{r:?}"
    );
    let loc2 = r.location();

    // Replaying the same chunk on the first location → 416, session kept.
    let r = patch(&mut c, &loc1, first, Some((0, half - 1)));
    assert_eq!(r.status, 416, "replayed chunk:\n{r:?}");

    // Status on the first location → 204 with Location and Range.
    let s = c.get(&loc1).expect(204);
    s.location();
    assert_eq!(
        s.header("Range"),
        Some(format!("0-{}", half - 1).as_str()),
        "{s:?}"
    );

    let r = patch(&mut c, &loc2, second, Some((half, 2 * half - 1))).expect(202);
    assert_eq!(
        r.header("Range"),
        Some(format!("0-{}", 2 * half - 1).as_str()),
        "{r:?}"
    );
    let r = c.send(
        Request::put(&with_query(&r.location(), &format!("digest={digest}")))
            .header("Content-Length", "0"),
    );
    assert_closed(&mut c, r, &digest, &bytes);
}

/// T2 "chunked multi … out-of-order": three chunks of ≥ 1024 B, the third sent early → 416,
/// recovery from the status GET, and the last chunk carried by the closing PUT.
#[test]
fn chunked_multi_upload_recovers_after_416_using_the_status_range() {
    let reg = Registry::start();
    let mut c = reg.client();
    let post = c
        .send(Request::post(&format!("/v2/{NAME}/blobs/uploads/")).header("Content-Length", "0"))
        .expect(202);
    let min: usize = post
        .header("OCI-Chunk-Min-Length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let chunk = min.max(1024);
    let bytes = content::random_bytes(3 * chunk);
    let digest = sha256_digest(&bytes);
    let parts: Vec<&[u8]> = bytes.chunks(chunk).collect();

    let mut loc = post.location();
    loc = patch(&mut c, &loc, parts[0], Some((0, chunk - 1)))
        .expect(202)
        .location();
    let r = patch(&mut c, &loc, parts[2], Some((2 * chunk, 3 * chunk - 1)));
    assert_eq!(r.status, 416, "chunk 3 before chunk 2:\n{r:?}");

    let s = c.get(&loc).expect(204);
    let range = s.must_header("Range").to_string();
    let end: usize = range
        .strip_prefix("0-")
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("status Range {range:?} is not 0-<end>"));
    assert_eq!(end, chunk - 1, "the 416 must not have appended anything");
    loc = s.location();

    loc = patch(
        &mut c,
        &loc,
        &bytes[end + 1..2 * chunk],
        Some((end + 1, 2 * chunk - 1)),
    )
    .expect(202)
    .location();
    // Final chunk in the PUT, with its Content-Range.
    let r = c.send(
        Request::put(&with_query(&loc, &format!("digest={digest}")))
            .octets()
            .header("Content-Range", &format!("{}-{}", 2 * chunk, 3 * chunk - 1))
            .body(parts[2].to_vec()),
    );
    assert_closed(&mut c, r, &digest, &bytes);
}

/// T2 sha512: POST→PUT, streamed PATCH and chunked PATCH, all closed with a sha512 digest.
#[test]
fn sha512_blobs_push_in_every_style_and_pull_by_their_sha512_digest() {
    let reg = Registry::start();
    let mut c = reg.client();
    for style in [Style::Put, Style::Stream, Style::Chunks] {
        let bytes = content::random_bytes(4096);
        let digest = sha512_digest(&bytes);
        let r = upload(&mut c, style, &digest, &bytes);
        assert_eq!(r.status, 201, "sha512 {style:?}:\n{r:?}");
        assert_closed(&mut c, r, &digest, &bytes);
        let h = c.head(&format!("/v2/{NAME}/blobs/{digest}")).expect(200);
        assert_eq!(h.header("Docker-Content-Digest"), Some(digest.as_str()));
        c.send(Request::delete(&format!("/v2/{NAME}/blobs/{digest}")))
            .expect(202);
        c.head(&format!("/v2/{NAME}/blobs/{digest}")).expect(404);
    }
}

#[test]
fn empty_blob_and_empty_json_blob_push_and_pull() {
    let reg = Registry::start();
    let mut c = reg.client();
    let empty = Blob::new("application/octet-stream", Vec::new());
    assert_eq!(empty.digest, EMPTY_BLOB);
    let json = content::empty_json();
    assert_eq!(json.digest, EMPTY_JSON);
    for b in [&empty, &json] {
        c.push_blob(NAME, b);
        let h = c
            .head(&format!("/v2/{NAME}/blobs/{}", b.digest))
            .expect(200);
        assert_eq!(
            h.header("Content-Length"),
            Some(b.len().to_string().as_str()),
            "{h:?}"
        );
        c.assert_blob(NAME, b);
    }
    // The empty blob also closes through a streamed session with nothing patched.
    let loc = c.start_upload("e2e/tests/conformance/empty2");
    let r = close(&mut c, &loc, EMPTY_BLOB, &[]).expect(201);
    r.location();
    c.get(&format!(
        "/v2/e2e/tests/conformance/empty2/blobs/{EMPTY_BLOB}"
    ))
    .expect(200);
}

/// T2's five bad-digest variants: every close whose digest does not name the bytes → 400.
#[test]
fn bad_digest_closes_are_rejected_with_400_in_all_five_variants() {
    let reg = Registry::start();
    let mut c = reg.client();
    let bytes = content::random_bytes(2000);
    let right = sha256_digest(&bytes);
    let other = sha256_digest(b"some other content");
    let variants: [(&str, String, Style); 5] = [
        (
            "digest of other bytes, body in PUT",
            other.clone(),
            Style::Put,
        ),
        (
            "digest of other bytes, streamed PATCH",
            other.clone(),
            Style::Stream,
        ),
        ("digest of other bytes, chunked PATCH", other, Style::Chunks),
        (
            "truncated hex",
            right[..right.len() - 2].to_string(),
            Style::Put,
        ),
        (
            "upper-case hex",
            format!("sha256:{}", right[7..].to_ascii_uppercase()),
            Style::Put,
        ),
    ];
    for (what, digest, style) in variants {
        let r = upload(&mut c, style, &digest, &bytes);
        assert_eq!(r.status, 400, "{what}:\n{r:?}");
        let codes = r.error_codes();
        assert!(
            codes.iter().any(|c| c == "DIGEST_INVALID"),
            "{what}: want DIGEST_INVALID:\n{r:?}"
        );
        c.head(&format!("/v2/{NAME}/blobs/{right}")).expect(404);
    }
    // A close without any digest is refused too.
    let loc = c.start_upload(NAME);
    let r = c.send(Request::put(&loc).octets().body(bytes.clone()));
    assert_eq!(r.status, 400, "close without ?digest=:\n{r:?}");
}

/// T1/T2 "mount": `?mount=&from=` links a blob held by another repository.
#[test]
fn mount_from_another_repository_links_the_blob() {
    let reg = Registry::start();
    let mut c = reg.client();
    let b = Blob::new(content::OCI_LAYER_GZIP, content::random_bytes(3000));
    c.push_blob(NAME, &b);
    let r = c.send(
        Request::post(&format!(
            "/v2/{NAME2}/blobs/uploads/?mount={}&from={NAME}",
            b.digest
        ))
        .header("Content-Length", "0"),
    );
    match r.status {
        201 => {
            assert_eq!(
                r.location(),
                format!("/v2/{NAME2}/blobs/{}", b.digest),
                "{r:?}"
            );
            if let Some(d) = r.header("Docker-Content-Digest") {
                assert_eq!(d, b.digest);
            }
            c.assert_blob(NAME2, &b);
        }
        202 => {
            assert!(
                r.location()
                    .starts_with(&format!("/v2/{NAME2}/blobs/uploads/")),
                "{r:?}"
            );
            panic!("mount of a blob the source repository holds fell back to an upload (202); a registry with cross-mount should answer 201:\n{r:?}");
        }
        _ => panic!("mount must be 201 or 202:\n{r:?}"),
    }
    // The source still holds it.
    c.assert_blob(NAME, &b);
}

/// T2 "mount anonymous": `?mount=` without `from` may mount (201) or fall back (202).
#[test]
fn mount_without_from_mounts_or_starts_an_upload() {
    let reg = Registry::start();
    let mut c = reg.client();
    let b = Blob::new(content::OCI_LAYER_GZIP, content::random_bytes(3000));
    c.push_blob(NAME, &b);
    let r = c.send(
        Request::post(&format!("/v2/{NAME2}/blobs/uploads/?mount={}", b.digest))
            .header("Content-Length", "0"),
    );
    match r.status {
        201 => {
            assert_eq!(r.location(), format!("/v2/{NAME2}/blobs/{}", b.digest));
            c.assert_blob(NAME2, &b);
        }
        202 => {
            let loc = r.location();
            assert!(
                loc.starts_with(&format!("/v2/{NAME2}/blobs/uploads/")),
                "{r:?}"
            );
            let r = close(&mut c, &loc, &b.digest, &b.bytes).expect(201);
            r.location();
            c.assert_blob(NAME2, &b);
        }
        _ => panic!("anonymous mount must be 201 or 202:\n{r:?}"),
    }
}

/// T1/T2 "mount missing": a digest nobody holds must not mount; it opens an upload (202).
#[test]
fn mount_of_a_missing_blob_falls_back_to_a_usable_upload_session() {
    let reg = Registry::start();
    let mut c = reg.client();
    let b = Blob::new(content::OCI_LAYER_GZIP, content::random_bytes(1500));
    let r = c
        .send(
            Request::post(&format!(
                "/v2/{NAME2}/blobs/uploads/?mount={}&from={NAME}",
                b.digest
            ))
            .header("Content-Length", "0"),
        )
        .expect(202);
    let loc = r.location();
    assert!(
        loc.starts_with(&format!("/v2/{NAME2}/blobs/uploads/")),
        "{r:?}"
    );
    c.get(&format!("/v2/{NAME2}/blobs/{}", b.digest))
        .expect(404);
    let r = close(&mut c, &loc, &b.digest, &b.bytes).expect(201);
    r.location();
    c.assert_blob(NAME2, &b);
}

/// T1 "Manifests": GET missing → 404; the same manifest to four tags; a manifest without
/// layers and without `mediaType`; GET by digest.
#[test]
fn manifest_push_to_four_tags_and_a_layerless_manifest_without_media_type() {
    let reg = Registry::start();
    let mut c = reg.client();
    let img = Image::random(1, 512);
    for b in img.blobs() {
        c.push_blob(NAME, b);
    }
    c.get(&format!("/v2/{NAME}/manifests/{}", img.manifest.digest))
        .expect(404);
    for tag in ["test0", "test1", "test2", "test3"] {
        let r = c.put_manifest(NAME, tag, &img.manifest);
        let loc = r.location();
        let g = c.get(&loc).expect(200);
        assert!(
            g.body == img.manifest.bytes,
            "Location {loc} serves other bytes"
        );
        assert_eq!(g.header("Content-Type"), Some(OCI_MANIFEST));
    }
    let bare = Blob::new(
        OCI_MANIFEST,
        serde_json::to_vec(
            &json!({"schemaVersion": 2, "config": img.config.desc().to_json(), "layers": []}),
        )
        .unwrap(),
    );
    c.put_manifest(NAME, "emptylayer", &bare);
    c.assert_manifest(NAME, "emptylayer", &bare);
    c.assert_manifest(NAME, &img.manifest.digest.clone(), &img.manifest);
}

/// T2 "large-manifest": 390 annotations of 10 000 characters (~3.9 MB) fit the 4 MiB limit.
#[test]
fn large_manifest_of_3_9_mb_round_trips_byte_exact() {
    let reg = Registry::start();
    let mut c = reg.client();
    let img = Image::random(1, 256);
    for b in img.blobs() {
        c.push_blob(NAME, b);
    }
    let annotations: serde_json::Map<String, serde_json::Value> = (0..390)
        .map(|i| {
            (
                format!("org.example.large.{i:03}"),
                json!(content::random_word(10_000)),
            )
        })
        .collect();
    let m = content::manifest(
        &img.config.desc(),
        &img.layers.iter().map(Blob::desc).collect::<Vec<_>>(),
        fields([("annotations", serde_json::Value::Object(annotations))]),
    );
    assert!(
        m.len() > 3_900_000 && m.len() < 4 * 1024 * 1024,
        "size {}",
        m.len()
    );
    c.put_manifest(NAME, &m.digest.clone(), &m);
    c.put_manifest(NAME, "large", &m);
    c.assert_manifest(NAME, "large", &m);
}

/// T2 "custom-fields" and "data-field": unknown fields and `data` are kept byte-exact.
#[test]
fn manifests_with_custom_fields_and_data_fields_are_stored_byte_exact() {
    let reg = Registry::start();
    let mut c = reg.client();
    let img = Image::random(1, 256);
    for b in img.blobs() {
        c.push_blob(NAME, b);
    }
    use berth_tests::auth::base64 as encode;
    let cfg = img
        .config
        .desc()
        .with("data", json!(encode(&img.config.bytes)))
        .with("com.example.custom", json!({"nested": [1, 2, 3]}));
    let layers: Vec<Descriptor> = img
        .layers
        .iter()
        .map(|l| l.desc().with("x-unknown", json!(null)))
        .collect();
    let m = content::manifest(
        &cfg,
        &layers,
        fields([
            ("com.example.top", json!({"a": "b"})),
            ("annotations", json!({"k": "v"})),
        ]),
    );
    // Odd but valid whitespace and key order must survive too: the digest is over raw bytes.
    let text = String::from_utf8(m.bytes.clone())
        .unwrap()
        .replace(",\"", ",\n  \"");
    let m = Blob::new(OCI_MANIFEST, text.into_bytes());
    c.put_manifest(NAME, "custom", &m);
    c.assert_manifest(NAME, "custom", &m);
    c.assert_manifest(NAME, &m.digest.clone(), &m);
}

/// T2 "non-distributable-layers": layers with `urls` and a non-distributable type are never
/// uploaded; the manifest must still be accepted.
#[test]
fn manifest_with_non_distributable_layers_is_accepted_without_their_blobs() {
    let reg = Registry::start();
    let mut c = reg.client();
    let img = Image::random(1, 256);
    for b in img.blobs() {
        c.push_blob(NAME, b);
    }
    let foreign = Descriptor::new(
        content::OCI_LAYER_NONDIST,
        &sha256_digest(b"foreign layer never pushed"),
        12345,
    )
    .with("urls", json!(["https://example.invalid/layer.tar.gz"]));
    let mut layers: Vec<Descriptor> = vec![foreign];
    layers.extend(img.layers.iter().map(Blob::desc));
    let m = content::manifest(&img.config.desc(), &layers, fields([]));
    c.put_manifest(NAME, "nondist", &m);
    c.assert_manifest(NAME, "nondist", &m);
    c.head(&format!("/v2/{NAME}/blobs/{}", layers[0].digest))
        .expect(404);
}

/// T2 "sha512": a manifest pushed by its sha512 digest is stored and served under it.
#[test]
fn sha512_manifest_is_pushed_and_pulled_by_its_sha512_digest() {
    let reg = Registry::start();
    let mut c = reg.client();
    let cfg = Blob::new_sha512(content::OCI_CONFIG, serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})).unwrap());
    let layer = Blob::new_sha512(content::OCI_LAYER_GZIP, content::random_bytes(700));
    for b in [&cfg, &layer] {
        c.push_bytes(NAME, &b.digest, &b.bytes);
    }
    let m = content::manifest(&cfg.desc(), &[layer.desc()], fields([]));
    let d512 = sha512_digest(&m.bytes);
    c.put_manifest(NAME, &d512, &m);
    let r = c.get(&format!("/v2/{NAME}/manifests/{d512}")).expect(200);
    assert!(r.body == m.bytes);
    assert_eq!(r.header("Docker-Content-Digest"), Some(d512.as_str()));
    c.head(&format!("/v2/{NAME}/manifests/{d512}")).expect(200);
}

/// T2 "invalid-digest-format": PUT to `sha256:baddigeststring` → 400, GET → 400 or 404.
#[test]
fn manifest_put_to_an_invalid_digest_is_400() {
    let reg = Registry::start();
    let mut c = reg.client();
    let img = Image::random(1, 128);
    for b in img.blobs() {
        c.push_blob(NAME, b);
    }
    let r = c.send(
        Request::put(&format!("/v2/{NAME}/manifests/sha256:baddigeststring"))
            .header("Content-Type", OCI_MANIFEST)
            .body(img.manifest.bytes.clone()),
    );
    assert_eq!(r.status, 400, "{r:?}");
    r.error_codes();
    c.get(&format!("/v2/{NAME}/manifests/sha256:baddigeststring"))
        .expect_one_of(&[400, 404]);
}

/// T2 "bad-digest-image": bytes that do not hash to the digest in the URL (trailing
/// whitespace added) → 400 DIGEST_INVALID, and nothing is stored.
#[test]
fn manifest_put_whose_bytes_do_not_match_the_url_digest_is_400_digest_invalid() {
    let reg = Registry::start();
    let mut c = reg.client();
    let img = Image::random(1, 128);
    for b in img.blobs() {
        c.push_blob(NAME, b);
    }
    let mut body = img.manifest.bytes.clone();
    body.extend_from_slice(b"\n  ");
    let r = c.send(
        Request::put(&format!("/v2/{NAME}/manifests/{}", img.manifest.digest))
            .header("Content-Type", OCI_MANIFEST)
            .body(body.clone()),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.error_codes().iter().any(|c| c == "DIGEST_INVALID"),
        "{r:?}"
    );
    c.get(&format!("/v2/{NAME}/manifests/{}", img.manifest.digest))
        .expect(404);
    c.get(&format!("/v2/{NAME}/manifests/{}", sha256_digest(&body)))
        .expect(404);
}

#[test]
fn manifest_whose_media_type_contradicts_content_type_is_400_manifest_invalid() {
    let reg = Registry::start();
    let mut c = reg.client();
    let img = Image::random(1, 128);
    for b in img.blobs() {
        c.push_blob(NAME, b);
    }
    let r = c.send(
        Request::put(&format!("/v2/{NAME}/manifests/mismatch"))
            .header("Content-Type", content::OCI_INDEX)
            .body(img.manifest.bytes.clone()),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.error_codes().iter().any(|c| c == "MANIFEST_INVALID"),
        "{r:?}"
    );
    let r = c.send(
        Request::put(&format!("/v2/{NAME}/manifests/garbage"))
            .header("Content-Type", OCI_MANIFEST)
            .body(b"{not json".to_vec()),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.error_codes().iter().any(|c| c == "MANIFEST_INVALID"),
        "{r:?}"
    );
}

/// end-14: DELETE on an upload location cancels it (204), after which it is unknown.
#[test]
fn cancelled_upload_is_gone() {
    let reg = Registry::start();
    let mut c = reg.client();
    let loc = c.start_upload(NAME);
    let loc = patch(&mut c, &loc, b"partial", None).expect(202).location();
    c.send(Request::delete(&loc)).expect(204);
    let r = c.get(&loc).expect(404);
    assert_eq!(r.error_codes()[0], "BLOB_UPLOAD_UNKNOWN", "{r:?}");
}

/// Re-pushing a blob the repository already holds is a normal 201 (dedupe is silent).
#[test]
fn pushing_the_same_blob_twice_answers_201_both_times() {
    let reg = Registry::start();
    let mut c = reg.client();
    let b = Blob::new("application/octet-stream", content::random_bytes(4000));
    c.push_blob(NAME, &b);
    c.push_blob(NAME, &b);
    c.push_blob(NAME2, &b);
    c.assert_blob(NAME, &b);
    c.assert_blob(NAME2, &b);
}
