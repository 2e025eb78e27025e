//! Every endpoint and error path of spec digest §3-§8 against `ModelStore`.

use berth_core::oci::Algorithm;
use berth_core::oci::{Digest, Reference, RepoName};
use berth_core::testkit::{Harness, Request, Response};
use berth_core::{hash, Limits};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn repo(s: &str) -> RepoName {
    RepoName::parse(s).unwrap()
}

fn sha256(b: &[u8]) -> Digest {
    hash(Algorithm::Sha256, b)
}

fn assert_common(r: &Response) {
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );
    if r.status != 204 {
        assert!(
            r.header("Content-Length").is_some(),
            "status {} without Content-Length",
            r.status
        );
    }
}

/// Pushes a blob with POST + PUT and returns its digest.
fn push_blob(h: &mut Harness, name: &str, data: &[u8]) -> Digest {
    let d = sha256(data);
    let r = h.send(&Request::post(format!("/v2/{name}/blobs/uploads/")));
    assert_eq!(r.status, 202);
    let loc = r.header("Location").unwrap().to_owned();
    let r = h.send(&Request::put(format!("{loc}?digest={d}")).body(data));
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    d
}

fn image_manifest(config: &Digest, layers: &[&Digest], extra: &str) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|l| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{l}","size":1}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",{extra}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{}]}}"#,
        layers.join(",")
    )
}

/// A repository with a config, a layer and a manifest tagged `v1`. Returns the manifest
/// digest and body.
fn seeded(h: &mut Harness) -> (Digest, String) {
    let c = push_blob(h, "org/app", b"{}");
    let l = push_blob(h, "org/app", b"layer-bytes");
    let m = image_manifest(&c, &[&l], "");
    let r = h.send(
        &Request::put("/v2/org/app/manifests/v1")
            .header("Content-Type", OCI_MANIFEST)
            .body(m.clone()),
    );
    assert_eq!(r.status, 201);
    (sha256(m.as_bytes()), m)
}

#[test]
fn ping_answers_200_with_empty_json_on_both_spellings() {
    let mut h = Harness::new();
    for p in ["/v2/", "/v2"] {
        let r = h.send(&Request::get(p));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"{}");
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_common(&r);
    }
}

#[test]
fn head_gets_the_get_headers_and_no_body() {
    let mut h = Harness::new();
    let r = h.send(&Request::head("/v2/"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("2"));
    assert!(r.body.is_empty());
    // The next request parses right after: no body bytes were sent for the HEAD.
    let r = h.send(&Request::get("/v2/"));
    assert_eq!(r.body, b"{}");
}

#[test]
fn blob_get_and_head_serve_bytes_with_digest_headers() {
    let mut h = Harness::new();
    let d = push_blob(&mut h, "a/b", b"hello world");
    let r = h.send(&Request::get(format!("/v2/a/b/blobs/{d}")));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world");
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(d.to_string().as_str())
    );
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(r.header("ETag"), Some(format!("\"{d}\"").as_str()));
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    assert_common(&r);
    let r = h.send(&Request::head(format!("/v2/a/b/blobs/{d}")));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("11"));
    assert!(r.body.is_empty());
}

#[test]
fn blob_missing_or_in_another_repository_is_404_blob_unknown() {
    let mut h = Harness::new();
    let d = push_blob(&mut h, "a/b", b"x");
    let r = h.send(&Request::get(format!("/v2/other/blobs/{d}")));
    assert_eq!(r.status, 404);
    assert_eq!(r.error_codes(), ["BLOB_UNKNOWN"]);
    let r = h.send(&Request::head(format!("/v2/other/blobs/{d}")));
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
}

#[test]
fn blob_range_requests_give_206_clamped_or_416() {
    let mut h = Harness::new();
    let data: Vec<u8> = (0..2048u32).map(|i| i as u8).collect();
    let d = push_blob(&mut h, "a", &data);
    let get = |h: &mut Harness, range: &str| {
        h.send(&Request::get(format!("/v2/a/blobs/{d}")).header("Range", range))
    };
    let r = get(&mut h, "bytes=0-9");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("Content-Range"), Some("bytes 0-9/2048"));
    assert_eq!(r.body, &data[..10]);
    let r = get(&mut h, "bytes=2000-5000");
    assert_eq!(
        (r.status, r.header("Content-Range")),
        (206, Some("bytes 2000-2047/2048"))
    );
    assert_eq!(r.body, &data[2000..]);
    let r = get(&mut h, "bytes=100-");
    assert_eq!(r.body.len(), 1948);
    let r = get(&mut h, "bytes=-48");
    assert_eq!((r.status, r.body.as_slice()), (206, &data[2000..]));
    let r = get(&mut h, "bytes=5000-10000");
    assert_eq!(
        (r.status, r.header("Content-Range")),
        (416, Some("bytes */2048"))
    );
    let r = get(&mut h, "bytes=500-0");
    assert_eq!(r.status, 416);
    // The connection is still usable after a 416.
    assert_eq!(get(&mut h, "bytes=0-0").body, &data[..1]);
}

#[test]
fn blob_delete_is_202_then_404() {
    let mut h = Harness::new();
    let d = push_blob(&mut h, "a", b"x");
    assert_eq!(
        h.send(&Request::delete(format!("/v2/a/blobs/{d}"))).status,
        202
    );
    let r = h.send(&Request::delete(format!("/v2/a/blobs/{d}")));
    assert_eq!(
        (r.status, r.error_codes()),
        (404, vec!["BLOB_UNKNOWN".to_owned()])
    );
    assert_eq!(
        h.send(&Request::get(format!("/v2/a/blobs/{d}"))).status,
        404
    );
    let r = h.send(&Request::delete(format!("/v2/nope/blobs/{d}")));
    assert_eq!(
        (r.status, r.error_codes()),
        (404, vec!["NAME_UNKNOWN".to_owned()])
    );
}

#[test]
fn upload_start_is_202_with_location_range_and_uuid() {
    let mut h = Harness::new();
    let r = h.send(&Request::post("/v2/a/b/blobs/uploads/"));
    assert_eq!(r.status, 202);
    let loc = r.header("Location").unwrap();
    assert!(loc.starts_with("/v2/a/b/blobs/uploads/"));
    assert_eq!(r.header("Range"), Some("0-0"));
    assert_eq!(r.header("Content-Length"), Some("0"));
    assert_eq!(
        Some(loc.rsplit('/').next().unwrap()),
        r.header("Docker-Upload-UUID")
    );
}

#[test]
fn streamed_patch_then_empty_put_commits_the_blob() {
    let mut h = Harness::new();
    let data = b"streamed layer content".repeat(100);
    let d = sha256(&data);
    let loc = h.upload_location("a");
    let r = h.send(
        &Request::patch(&loc)
            .header("Content-Type", "application/octet-stream")
            .body(data.clone())
            .chunked(333),
    );
    assert_eq!(r.status, 202);
    assert_eq!(
        r.header("Range"),
        Some(format!("0-{}", data.len() - 1).as_str())
    );
    assert_eq!(r.header("Location"), Some(loc.as_str()));
    let r = h.send(&Request::put(format!("{loc}?digest={d}")));
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/a/blobs/{d}").as_str())
    );
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(d.to_string().as_str())
    );
    assert_eq!(h.store.blob(&d).unwrap().as_ref(), data.as_slice());
    // Upload bytes left as slices, never as one gathered body.
    assert!(h.needs.iter().filter(|n| *n == "AppendUpload").count() >= 1);
    // The PATCH asked for its bytes to be made durable, after the last append.
    let at = |name: &str| h.needs.iter().rposition(|n| n == name).unwrap();
    assert!(at("AppendUpload") < at("SyncUpload"), "{:?}", h.needs);
    assert!(at("SyncUpload") < at("FinishUpload"), "{:?}", h.needs);
}

/// A PATCH's 202 reports the range the sync answered with; a session gone by then is
/// BLOB_UPLOAD_UNKNOWN, a failed sync a 500, never a 202.
#[test]
fn a_patch_answers_from_its_sync() {
    use berth_core::{Need, Reply, UploadInfo};
    let patch = |h: &mut Harness| {
        let loc = h.upload_location("a");
        h.send(&Request::patch(&loc).body(vec![7u8; 42]))
    };
    let mut h = Harness::new();
    h.intercept = Some(Box::new(|n: &Need<'_>| match n {
        Need::SyncUpload { upload, .. } => Some(Reply::Upload(Some(UploadInfo {
            id: upload.clone(),
            offset: 40,
        }))),
        _ => None,
    }));
    let r = patch(&mut h);
    assert_eq!(r.status, 202);
    assert_eq!(r.header("Range"), Some("0-39"));

    h.intercept = Some(Box::new(|n: &Need<'_>| {
        matches!(n, Need::SyncUpload { .. }).then_some(Reply::Upload(None))
    }));
    let r = patch(&mut h);
    assert_eq!(r.status, 404);
    assert_eq!(r.error_codes(), ["BLOB_UPLOAD_UNKNOWN"]);

    h.intercept = Some(Box::new(|n: &Need<'_>| {
        matches!(n, Need::SyncUpload { .. }).then(|| Reply::Failed("disk on fire".into()))
    }));
    let r = patch(&mut h);
    assert_eq!(r.status, 500);
}

/// An append the store refuses (another request wrote to the session meanwhile, or the
/// size limit) is the client's 416 or 413, not a 500, and the 416 says where to resume.
#[test]
fn an_append_the_store_refuses_is_a_4xx() {
    use berth_core::{AppendRefused, Need, Reply};
    let mut h = Harness::new();
    h.intercept = Some(Box::new(|n: &Need<'_>| {
        matches!(n, Need::AppendUpload { .. })
            .then_some(Reply::AppendRefused(AppendRefused::OutOfOrder { have: 30 }))
    }));
    let loc = h.upload_location("a");
    for ranged in [false, true] {
        let req = Request::patch(&loc).body(vec![1u8; 20]);
        let req = if ranged {
            req.header("Content-Range", "0-19")
        } else {
            req
        };
        let r = h.send(&req);
        assert_eq!(r.status, 416, "ranged {ranged}");
        assert_eq!(r.error_codes(), ["RANGE_INVALID"]);
        assert_eq!(r.header("Location"), Some(loc.as_str()));
        assert_eq!(r.header("Range"), Some("0-29"));
    }
    h.intercept = Some(Box::new(|n: &Need<'_>| {
        matches!(n, Need::AppendUpload { .. })
            .then_some(Reply::AppendRefused(AppendRefused::TooLarge))
    }));
    let r = h.send(&Request::patch(&loc).body(vec![1u8; 20]));
    assert_eq!(r.status, 413);
    assert_eq!(r.error_codes(), ["SIZE_INVALID"]);
    // The connection still serves.
    h.intercept = None;
    assert_eq!(h.send(&Request::get("/v2/")).status, 200);
}

/// A reply of another kind than the need asked for is the server's bug: whatever step
/// was waiting (here the blob lookup, and an append mid-body), the request gets a 500
/// naming the reply, and the connection closes rather than go on after a broken contract.
#[test]
fn a_reply_of_the_wrong_kind_is_a_500_and_closes() {
    use berth_core::{Need, Page, Reply};
    let d = sha256(b"x");
    for (path, patch) in [(format!("/v2/a/blobs/{d}"), false), (String::new(), true)] {
        let mut h = Harness::new();
        let req = if patch {
            let loc = h.upload_location("a");
            Request::patch(&loc).body(vec![1u8; 20])
        } else {
            Request::get(&path)
        };
        h.intercept = Some(Box::new(|n: &Need<'_>| {
            matches!(n, Need::StatBlob { .. } | Need::AppendUpload { .. })
                .then(|| Reply::Catalog(Page::default()))
        }));
        let r = h.send(&req);
        assert_eq!(r.status, 500, "patch {patch}");
        assert_eq!(r.error_codes(), ["UNKNOWN"]);
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            body.contains("storage answered with an unexpected reply: Catalog"),
            "{body}"
        );
        assert_eq!(r.header("Connection"), Some("close"));
        assert!(h.closed);
    }
}

#[test]
fn chunked_patches_must_be_in_order_and_a_416_keeps_the_session() {
    let mut h = Harness::new();
    let data: Vec<u8> = (0..42u8).collect();
    let d = sha256(&data);
    let loc = h.upload_location("a");
    // Second half first: 416 RANGE_INVALID with Location and Range.
    let r = h.send(
        &Request::patch(&loc)
            .header("Content-Range", "22-41")
            .body(&data[22..]),
    );
    assert_eq!(r.status, 416);
    assert_eq!(r.error_codes(), ["RANGE_INVALID"]);
    assert_eq!(r.header("Location"), Some(loc.as_str()));
    assert_eq!(r.header("Range"), Some("0-0"));
    let r = h.send(
        &Request::patch(&loc)
            .header("Content-Range", "0-21")
            .body(&data[..22]),
    );
    assert_eq!((r.status, r.header("Range")), (202, Some("0-21")));
    // Replaying the same chunk is out of order.
    let r = h.send(
        &Request::patch(&loc)
            .header("Content-Range", "0-21")
            .body(&data[..22]),
    );
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Range"), Some("0-21"));
    let r = h.send(&Request::get(&loc));
    assert_eq!(
        (r.status, r.header("Range"), r.header("Location")),
        (204, Some("0-21"), Some(loc.as_str()))
    );
    let r = h.send(
        &Request::patch(&loc)
            .header("Content-Range", "22-41")
            .body(&data[22..]),
    );
    assert_eq!((r.status, r.header("Range")), (202, Some("0-41")));
    let r = h.send(&Request::put(format!("{loc}?digest={d}")).header("Content-Length", "0"));
    assert_eq!(r.status, 201);
}

/// A chunk's length must be its range's (spec §5.4 rule 2), known before anything is
/// appended: a Content-Length that disagrees, or a chunked transfer-encoding (whose length
/// is known only once appended), is 400 SIZE_INVALID and writes nothing.
#[test]
fn content_range_that_disagrees_with_content_length_is_400_size_invalid() {
    let mut h = Harness::new();
    let loc = h.upload_location("a");
    let ranged = || Request::patch(&loc).header("Content-Range", "0-9");
    for req in [
        ranged().body(&b"abc"[..]),
        ranged().body(vec![3u8; 20]).chunked(7),
    ] {
        let r = h.send(&req);
        assert_eq!(
            (r.status, r.error_codes()),
            (400, vec!["SIZE_INVALID".to_owned()]),
            "{req:?}"
        );
    }
    assert!(
        !h.needs.iter().any(|n| n == "AppendUpload"),
        "{:?}",
        h.needs
    );
    let r = h.send(&Request::get(&loc));
    assert_eq!((r.status, r.header("Range")), (204, Some("0-0")));
    let r = h.send(
        &Request::patch(&loc)
            .header("Content-Range", "9-0")
            .body(&b"abc"[..]),
    );
    assert_eq!(r.status, 416);
    // The session is intact.
    assert_eq!(h.send(&Request::get(&loc)).status, 204);
}

#[test]
fn put_with_the_whole_body_is_a_monolithic_upload() {
    let mut h = Harness::new();
    let d = push_blob(&mut h, "a", b"monolithic");
    assert!(h.store.has_blob(&repo("a"), &d));
}

#[test]
fn single_post_with_digest_and_body_is_201() {
    let mut h = Harness::new();
    let data = b"single post";
    let d = sha256(data);
    let r = h.send(
        &Request::post(format!(
            "/v2/a/blobs/uploads/?digest={}",
            d.to_string().replace(':', "%3A")
        ))
        .body(&data[..]),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/a/blobs/{d}").as_str())
    );
    assert_eq!(h.send(&Request::get(format!("/v2/a/blobs/{d}"))).body, data);
}

#[test]
fn a_post_whose_chunked_body_breaks_leaves_no_session() {
    // A plain POST: its body is read before a session opens, so none does.
    let mut h = Harness::new();
    let raw = "POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n";
    let rs = h.send_raw(raw.as_bytes(), &[false]);
    assert_eq!(rs[0].status, 400, "{:?}", rs[0]);
    assert!(h.closed);
    assert!(
        !h.needs.contains(&"StartUpload".to_owned()),
        "{:?}",
        h.needs
    );
    assert_eq!(h.store.open_uploads(), 0);

    // A single POST with ?digest=: the session it opened is ended with it.
    let mut h = Harness::new();
    let d = sha256(b"abcdef");
    let raw = format!(
        "POST /v2/a/blobs/uploads/?digest={d} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n"
    );
    let rs = h.send_raw(raw.as_bytes(), &[false]);
    assert_eq!(rs[0].status, 400, "{:?}", rs[0]);
    assert!(h.closed);
    assert_eq!(h.needs, ["StartUpload", "AppendUpload", "CancelUpload"]);
    assert_eq!(h.store.open_uploads(), 0);
}

#[test]
fn a_plain_post_with_a_small_body_opens_its_session_once_the_body_is_read() {
    let mut h = Harness::new();
    let r = h.send(&Request::post("/v2/a/blobs/uploads/").body(&b"ignored"[..]));
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(h.store.open_uploads(), 1);
    assert!(!h.closed);
    let r = h.send(&Request::post("/v2/a/blobs/uploads/").body(vec![0u8; 100_000]));
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(
        h.store.open_uploads(),
        1,
        "a body past discard_bytes opens nothing"
    );
}

#[test]
fn empty_blob_uploads_and_serves() {
    let mut h = Harness::new();
    let d = push_blob(&mut h, "a", b"");
    assert_eq!(
        d.to_string(),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let r = h.send(&Request::get(format!("/v2/a/blobs/{d}")));
    assert_eq!((r.status, r.header("Content-Length")), (200, Some("0")));
}

#[test]
fn sha512_blobs_verify_with_their_algorithm() {
    let mut h = Harness::new();
    let data = b"sha512 content";
    let d = hash(Algorithm::Sha512, data);
    let loc = h.upload_location("a");
    let r = h.send(&Request::put(format!("{loc}?digest={d}")).body(&data[..]));
    assert_eq!(r.status, 201);
}

#[test]
fn close_with_missing_bad_or_mismatching_digest_is_400_digest_invalid() {
    let mut h = Harness::new();
    let loc = h.upload_location("a");
    for q in ["", "?digest=sha256:abc", "?digest=nope"] {
        let r = h.send(&Request::put(format!("{loc}{q}")).body(&b"data"[..]));
        assert_eq!(
            (r.status, r.error_codes()),
            (400, vec!["DIGEST_INVALID".to_owned()]),
            "{q}"
        );
    }
    let wrong = sha256(b"other");
    let r = h.send(&Request::put(format!("{loc}?digest={wrong}")).body(&b"data"[..]));
    assert_eq!(
        (r.status, r.error_codes()),
        (400, vec!["DIGEST_INVALID".to_owned()])
    );
    // The session was discarded by the store on mismatch.
    assert_eq!(h.send(&Request::get(&loc)).status, 404);
}

#[test]
fn finish_too_large_is_413_size_invalid() {
    let mut h = Harness::new();
    h.store.max_upload = Some(3);
    let data = b"four";
    let loc = h.upload_location("a");
    let r = h.send(&Request::put(format!("{loc}?digest={}", sha256(data))).body(&data[..]));
    assert_eq!(
        (r.status, r.error_codes()),
        (413, vec!["SIZE_INVALID".to_owned()])
    );
}

#[test]
fn upload_size_limit_refuses_before_reading() {
    let mut h = Harness::with_limits(Limits {
        upload_bytes: Some(4),
        ..Limits::default()
    });
    let loc = h.upload_location("a");
    let r = h.send(&Request::patch(&loc).body(&b"12345"[..]));
    assert_eq!(
        (r.status, r.error_codes()),
        (413, vec!["SIZE_INVALID".to_owned()])
    );
    assert!(!h.needs.iter().any(|n| n == "AppendUpload"));
}

#[test]
fn unknown_upload_is_404_blob_upload_unknown() {
    let mut h = Harness::new();
    for req in [
        Request::get("/v2/a/blobs/uploads/nope"),
        Request::patch("/v2/a/blobs/uploads/nope").body(&b"x"[..]),
        Request::put(format!("/v2/a/blobs/uploads/nope?digest={}", sha256(b""))),
        Request::delete("/v2/a/blobs/uploads/nope"),
    ] {
        let r = h.send(&req);
        assert_eq!(
            (r.status, r.error_codes()),
            (404, vec!["BLOB_UPLOAD_UNKNOWN".to_owned()]),
            "{}",
            req.method
        );
    }
    // A session of another repository is unknown here.
    let loc = h.upload_location("a");
    let id = loc.rsplit('/').next().unwrap();
    assert_eq!(
        h.send(&Request::get(format!("/v2/b/blobs/uploads/{id}")))
            .status,
        404
    );
}

#[test]
fn upload_cancel_is_204_and_forgets_the_session() {
    let mut h = Harness::new();
    let loc = h.upload_location("a");
    let r = h.send(&Request::delete(&loc));
    assert_eq!(r.status, 204);
    assert_common(&r);
    assert_eq!(h.send(&Request::get(&loc)).status, 404);
}

#[test]
fn mount_from_a_repository_holding_the_blob_is_201() {
    let mut h = Harness::new();
    let d = push_blob(&mut h, "src", b"shared");
    let r = h.send(&Request::post(format!(
        "/v2/dst/blobs/uploads/?mount={d}&from=src"
    )));
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/dst/blobs/{d}").as_str())
    );
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(d.to_string().as_str())
    );
    assert_eq!(
        h.send(&Request::get(format!("/v2/dst/blobs/{d}"))).status,
        200
    );
}

#[test]
fn mount_of_a_missing_blob_falls_back_to_a_202_session_never_404() {
    let mut h = Harness::new();
    let d = sha256(b"absent");
    for q in [format!("mount={d}&from=src"), format!("mount={d}")] {
        let r = h.send(&Request::post(format!("/v2/dst/blobs/uploads/?{q}")));
        assert_eq!(r.status, 202, "{q}");
        assert!(r
            .header("Location")
            .unwrap()
            .starts_with("/v2/dst/blobs/uploads/"));
    }
    // Without `from`, any repository holding the blob can serve the mount.
    let d = push_blob(&mut h, "elsewhere", b"found");
    assert_eq!(
        h.send(&Request::post(format!("/v2/dst/blobs/uploads/?mount={d}")))
            .status,
        201
    );
}

#[test]
fn manifest_put_by_tag_then_get_and_head_by_tag_and_digest_are_byte_exact() {
    let mut h = Harness::new();
    let (d, body) = seeded(&mut h);
    for reference in ["v1".to_owned(), d.to_string()] {
        let r = h.send(
            &Request::get(format!("/v2/org/app/manifests/{reference}"))
                .header("Accept", OCI_MANIFEST),
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.body, body.as_bytes());
        assert_eq!(r.header("Content-Type"), Some(OCI_MANIFEST));
        assert_eq!(
            r.header("Docker-Content-Digest"),
            Some(d.to_string().as_str())
        );
        assert_eq!(r.header("ETag"), Some(format!("\"{d}\"").as_str()));
        let r = h.send(&Request::head(format!("/v2/org/app/manifests/{reference}")));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Content-Length"),
            Some(body.len().to_string().as_str())
        );
        assert!(r.body.is_empty());
    }
}

#[test]
fn manifest_put_answers_201_with_location_and_digest() {
    let mut h = Harness::new();
    let c = push_blob(&mut h, "a", b"{}");
    let m = image_manifest(&c, &[], "");
    let d = sha256(m.as_bytes());
    let r = h.send(
        &Request::put(format!("/v2/a/manifests/{d}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(m.clone()),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/a/manifests/{d}").as_str())
    );
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(d.to_string().as_str())
    );
    assert_eq!(r.header("Content-Length"), Some("0"));
    assert!(r.header("OCI-Subject").is_none());
}

#[test]
fn manifest_put_by_digest_hashes_with_the_url_algorithm() {
    let mut h = Harness::new();
    let c = push_blob(&mut h, "a", b"{}");
    let m = image_manifest(&c, &[], "");
    let d = hash(Algorithm::Sha512, m.as_bytes());
    let r = h.send(
        &Request::put(format!("/v2/a/manifests/{d}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(m.clone()),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        h.store
            .manifest(&repo("a"), &Reference::Digest(d))
            .unwrap()
            .body,
        m.as_bytes()
    );
}

#[test]
fn manifest_put_digest_mismatch_is_400_digest_invalid() {
    let mut h = Harness::new();
    let c = push_blob(&mut h, "a", b"{}");
    let m = image_manifest(&c, &[], "");
    let d = sha256(m.as_bytes());
    let r = h.send(
        &Request::put(format!("/v2/a/manifests/{d}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(format!("{m} ")),
    );
    assert_eq!(
        (r.status, r.error_codes()),
        (400, vec!["DIGEST_INVALID".to_owned()])
    );
    let r = h.send(
        &Request::put("/v2/a/manifests/sha256:baddigeststring")
            .header("Content-Type", OCI_MANIFEST)
            .body(m),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn manifest_content_type_parameters_are_stripped_and_generic_types_sniffed() {
    let mut h = Harness::new();
    let c = push_blob(&mut h, "a", b"{}");
    let m = image_manifest(&c, &[], "");
    let r = h.send(
        &Request::put("/v2/a/manifests/p")
            .header("Content-Type", &format!("{OCI_MANIFEST}; charset=utf-8"))
            .body(m.clone()),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        h.send(&Request::get("/v2/a/manifests/p"))
            .header("Content-Type"),
        Some(OCI_MANIFEST)
    );
    let r = h.send(&Request::put("/v2/a/manifests/q").body(m.clone()));
    assert_eq!(r.status, 201);
    assert_eq!(
        h.send(&Request::get("/v2/a/manifests/q"))
            .header("Content-Type"),
        Some(OCI_MANIFEST)
    );
    // Without mediaType the Content-Type decides what is served back (spec digest §6.5).
    let bare = m.replace(&format!("\"mediaType\":\"{OCI_MANIFEST}\","), "");
    let r = h.send(
        &Request::put("/v2/a/manifests/emptylayer")
            .header("Content-Type", OCI_MANIFEST)
            .body(bare),
    );
    assert_eq!(r.status, 201);
    assert_eq!(
        h.send(&Request::get("/v2/a/manifests/emptylayer"))
            .header("Content-Type"),
        Some(OCI_MANIFEST)
    );
}

#[test]
fn invalid_manifests_are_400_manifest_invalid() {
    let mut h = Harness::new();
    let c = push_blob(&mut h, "a", b"{}");
    let m = image_manifest(&c, &[], "");
    let rows: Vec<(String, &str)> = vec![
        (
            m.clone(),
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
        (
            m.clone(),
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        ),
        (m.clone(), "application/vnd.unknown+json"),
        (
            r#"{"schemaVersion":1,"fsLayers":[]}"#.into(),
            "application/json",
        ),
        ("not json".into(), OCI_MANIFEST),
        (
            m.replace("\"schemaVersion\":2", "\"schemaVersion\":3"),
            OCI_MANIFEST,
        ),
    ];
    for (body, ct) in rows {
        let r = h.send(
            &Request::put("/v2/a/manifests/t")
                .header("Content-Type", ct)
                .body(body.clone()),
        );
        assert_eq!(
            (r.status, r.error_codes()),
            (400, vec!["MANIFEST_INVALID".to_owned()]),
            "{ct} {body}"
        );
    }
}

#[test]
fn manifest_with_unknown_blobs_is_400_with_one_manifest_blob_unknown_each() {
    let mut h = Harness::new();
    let (c, l1, l2) = (sha256(b"c"), sha256(b"l1"), sha256(b"l2"));
    let m = image_manifest(&c, &[&l1, &l2], "");
    let r = h.send(
        &Request::put("/v2/a/manifests/t")
            .header("Content-Type", OCI_MANIFEST)
            .body(m),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error_codes(), ["MANIFEST_BLOB_UNKNOWN"; 3]);
    let details: Vec<String> = r.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap().to_owned())
        .collect();
    assert!(details.contains(&l2.to_string()));
}

#[test]
fn manifest_over_the_limit_is_413() {
    let mut h = Harness::with_limits(Limits {
        manifest_bytes: 100,
        ..Limits::default()
    });
    let body = format!("{{\"schemaVersion\":2,\"pad\":\"{}\"}}", "x".repeat(200));
    let r = h.send(
        &Request::put("/v2/a/manifests/t")
            .header("Content-Type", OCI_MANIFEST)
            .body(body.clone()),
    );
    assert_eq!(
        (r.status, r.error_codes()),
        (413, vec!["SIZE_INVALID".to_owned()])
    );
    // The small body was discarded and the connection lives on.
    assert!(!h.closed);
    assert_eq!(h.send(&Request::get("/v2/")).status, 200);
    // Chunked bodies are cut off while gathering.
    let r = h.send(
        &Request::put("/v2/a/manifests/t")
            .header("Content-Type", OCI_MANIFEST)
            .body(body)
            .chunked(50),
    );
    assert_eq!(r.status, 413);
    assert_eq!(h.send(&Request::get("/v2/")).status, 200);
}

#[test]
fn manifest_over_the_limit_is_answered_at_once_and_its_body_read_before_the_close() {
    let mut h = Harness::with_limits(Limits {
        manifest_bytes: 100,
        discard_bytes: 10,
        linger_bytes: 1000,
        ..Limits::default()
    });
    let head = format!(
        "PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: 500\r\n\r\n"
    );
    h.heads.push(false);
    h.feed(head.as_bytes());
    let r = &h.responses()[0];
    assert_eq!(r.status, 413);
    assert_eq!(r.header("Connection"), Some("close"));
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        body.contains(r#""message":"manifest larger than 100 B (manifest_bytes)""#),
        "{body}"
    );
    assert!(
        !h.closed,
        "a client writing its whole body first must get to read the answer"
    );
    h.feed(&[b'x'; 499]);
    assert!(!h.closed);
    h.feed(b"x");
    assert!(h.closed, "closed once the body is read");
}

#[test]
fn manifest_much_larger_than_the_discard_budget_closes_after_413() {
    let mut h = Harness::with_limits(Limits {
        manifest_bytes: 100,
        discard_bytes: 10,
        linger_bytes: 100,
        ..Limits::default()
    });
    let body = "x".repeat(500);
    let r = h.send(
        &Request::put("/v2/a/manifests/t")
            .header("Content-Type", OCI_MANIFEST)
            .body(body),
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(h.closed);
}

#[test]
fn manifest_with_subject_answers_oci_subject_and_is_listed_as_referrer() {
    let mut h = Harness::new();
    let (subject, _) = seeded(&mut h);
    let e = push_blob(&mut h, "org/app", b"{}");
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/vnd.example.sbom","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{e}","size":2}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":1}},"annotations":{{"org.example":"one"}}}}"#
    );
    let md = sha256(m.as_bytes());
    let r = h.send(
        &Request::put(format!("/v2/org/app/manifests/{md}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(m.clone()),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.header("OCI-Subject"), Some(subject.to_string().as_str()));
    let r = h.send(&Request::get(format!("/v2/org/app/referrers/{subject}")));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some(OCI_INDEX));
    let v = r.json();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    let e0 = &v["manifests"][0];
    assert_eq!(e0["digest"], md.to_string());
    assert_eq!(e0["size"], m.len());
    assert_eq!(e0["artifactType"], "application/vnd.example.sbom");
    assert_eq!(e0["annotations"], serde_json::json!({"org.example":"one"}));
    let r = h.send(&Request::get(format!(
        "/v2/org/app/referrers/{subject}?artifactType=application/vnd.example.sbom"
    )));
    assert_eq!(r.header("OCI-Filters-Applied"), Some("artifactType"));
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
    let r = h.send(&Request::get(format!(
        "/v2/org/app/referrers/{subject}?artifactType=other%2Ftype"
    )));
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
}

#[test]
fn referrers_of_unknown_digests_or_repositories_are_200_empty_and_bad_digest_400() {
    let mut h = Harness::new();
    let r = h.send(&Request::get(format!(
        "/v2/never/pushed/referrers/{}",
        sha256(b"z")
    )));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some(OCI_INDEX));
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
    assert!(r.header("OCI-Filters-Applied").is_none());
    let r = h.send(&Request::get("/v2/a/referrers/sha256:nothex"));
    assert_eq!(
        (r.status, r.error_codes()),
        (400, vec!["DIGEST_INVALID".to_owned()])
    );
}

#[test]
fn manifest_get_of_invalid_tag_is_404_and_of_malformed_digest_400() {
    let mut h = Harness::new();
    for m in ["GET", "HEAD"] {
        let r = h.send(&Request::new(m, "/v2/a/manifests/.INVALID_MANIFEST_NAME"));
        assert_eq!(r.status, 404, "{m}");
    }
    let r = h.send(&Request::get("/v2/a/manifests/.INVALID_MANIFEST_NAME"));
    assert_eq!(r.error_codes(), ["MANIFEST_UNKNOWN"]);
    let r = h.send(&Request::get("/v2/a/manifests/sha256:totallywrong"));
    assert_eq!(
        (r.status, r.error_codes()),
        (400, vec!["DIGEST_INVALID".to_owned()])
    );
    let r = h.send(&Request::get("/v2/a/manifests/missing"));
    assert_eq!(
        (r.status, r.error_codes()),
        (404, vec!["MANIFEST_UNKNOWN".to_owned()])
    );
}

#[test]
fn manifest_put_with_tag_params_answers_oci_tag_and_tags_them() {
    let mut h = Harness::new();
    let c = push_blob(&mut h, "a", b"{}");
    let m = image_manifest(&c, &[], "");
    let d = sha256(m.as_bytes());
    let r = h.send(
        &Request::put(format!("/v2/a/manifests/{d}?tag=1.2.3&tag=latest"))
            .header("Content-Type", OCI_MANIFEST)
            .body(m),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.header("OCI-Tag"), Some("1.2.3,latest"));
    assert_eq!(h.send(&Request::get("/v2/a/manifests/latest")).status, 200);
    let r = h.send(&Request::get("/v2/a/tags/list"));
    assert_eq!(r.json()["tags"], serde_json::json!(["1.2.3", "latest"]));
}

#[test]
fn invalid_tag_on_put_is_400() {
    let mut h = Harness::new();
    let r = h.send(
        &Request::put("/v2/a/manifests/-bad")
            .header("Content-Type", OCI_MANIFEST)
            .body("{}"),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error_codes(), ["TAG_INVALID"]);
}

#[test]
fn manifest_delete_by_tag_removes_the_tag_only_and_by_digest_everything() {
    let mut h = Harness::new();
    let (d, _) = seeded(&mut h);
    assert_eq!(
        h.send(&Request::delete("/v2/org/app/manifests/v1")).status,
        202
    );
    assert_eq!(
        h.send(&Request::get("/v2/org/app/manifests/v1")).status,
        404
    );
    assert_eq!(
        h.send(&Request::get(format!("/v2/org/app/manifests/{d}")))
            .status,
        200
    );
    assert_eq!(
        h.send(&Request::delete(format!("/v2/org/app/manifests/{d}")))
            .status,
        202
    );
    let r = h.send(&Request::delete(format!("/v2/org/app/manifests/{d}")));
    assert_eq!(
        (r.status, r.error_codes()),
        (404, vec!["MANIFEST_UNKNOWN".to_owned()])
    );
    let r = h.send(&Request::delete("/v2/never/manifests/x"));
    assert_eq!(
        (r.status, r.error_codes()),
        (404, vec!["NAME_UNKNOWN".to_owned()])
    );
}

#[test]
fn tags_list_is_sorted_bytewise_paged_with_link_and_never_null() {
    let mut h = Harness::new();
    let c = push_blob(&mut h, "a", b"{}");
    let m = image_manifest(&c, &[], "");
    for t in ["b", "A", "a", "c", "_x"] {
        h.send(
            &Request::put(format!("/v2/a/manifests/{t}"))
                .header("Content-Type", OCI_MANIFEST)
                .body(m.clone()),
        );
    }
    let r = h.send(&Request::get("/v2/a/tags/list"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!({"name":"a","tags":["A","_x","a","b","c"]})
    );
    assert!(r.header("Link").is_none());
    let r = h.send(&Request::get("/v2/a/tags/list?n=2"));
    assert_eq!(r.json()["tags"], serde_json::json!(["A", "_x"]));
    assert_eq!(
        r.header("Link"),
        Some("</v2/a/tags/list?n=2&last=_x>; rel=\"next\"")
    );
    let r = h.send(&Request::get("/v2/a/tags/list?n=2&last=_x"));
    assert_eq!(r.json()["tags"], serde_json::json!(["a", "b"]));
    let r = h.send(&Request::get("/v2/a/tags/list?last=b"));
    assert_eq!(r.json()["tags"], serde_json::json!(["c"]));
    let r = h.send(&Request::get("/v2/a/tags/list?n=0"));
    assert_eq!(r.json()["tags"], serde_json::json!([]));
    assert!(r.header("Link").is_none());
    let r = h.send(&Request::get("/v2/a/tags/list?last=z"));
    assert_eq!(r.json()["tags"], serde_json::json!([]));
    for bad in ["-1", "x", "1.5", ""] {
        let r = h.send(&Request::get(format!("/v2/a/tags/list?n={bad}")));
        assert_eq!(
            (r.status, r.error_codes()),
            (400, vec!["PAGINATION_NUMBER_INVALID".to_owned()]),
            "{bad}"
        );
    }
    let r = h.send(&Request::get("/v2/unknown/tags/list"));
    assert_eq!(
        (r.status, r.error_codes()),
        (404, vec!["NAME_UNKNOWN".to_owned()])
    );
}

#[test]
fn n_above_the_page_size_is_capped_with_a_link() {
    let mut h = Harness::with_limits(Limits {
        page_size: 2,
        ..Limits::default()
    });
    let c = push_blob(&mut h, "a", b"{}");
    let m = image_manifest(&c, &[], "");
    for t in ["t1", "t2", "t3"] {
        h.send(
            &Request::put(format!("/v2/a/manifests/{t}"))
                .header("Content-Type", OCI_MANIFEST)
                .body(m.clone()),
        );
    }
    let r = h.send(&Request::get("/v2/a/tags/list?n=100"));
    assert_eq!(r.json()["tags"], serde_json::json!(["t1", "t2"]));
    assert_eq!(
        r.header("Link"),
        Some("</v2/a/tags/list?n=2&last=t2>; rel=\"next\"")
    );
}

#[test]
fn catalog_lists_repositories_with_the_same_paging() {
    let mut h = Harness::new();
    for n in ["b/x", "a", "c"] {
        push_blob(&mut h, n, b"1");
    }
    let r = h.send(&Request::get("/v2/_catalog"));
    assert_eq!(
        r.json(),
        serde_json::json!({"repositories":["a","b/x","c"]})
    );
    let r = h.send(&Request::get("/v2/_catalog?n=1&last=a"));
    assert_eq!(r.json()["repositories"], serde_json::json!(["b/x"]));
    assert_eq!(
        r.header("Link"),
        Some("</v2/_catalog?n=1&last=b/x>; rel=\"next\"")
    );
    assert_eq!(h.send(&Request::get("/v2/_catalog?n=x")).status, 400);
}

#[test]
fn invalid_name_is_400_name_invalid() {
    let mut h = Harness::new();
    for p in [
        "/v2/UPPER/tags/list",
        "/v2/a//b/tags/list",
        "/v2/-a/manifests/x",
        "/v2/a_/blobs/uploads/",
    ] {
        let m = if p.ends_with("uploads/") {
            "POST"
        } else {
            "GET"
        };
        let r = h.send(&Request::new(m, p));
        assert_eq!(
            (r.status, r.error_codes()),
            (400, vec!["NAME_INVALID".to_owned()]),
            "{p}"
        );
    }
}

#[test]
fn unknown_route_is_404_and_wrong_method_405_unsupported() {
    let mut h = Harness::new();
    let r = h.send(&Request::get("/v2/a/unknown/thing"));
    assert_eq!(r.status, 404);
    let r = h.send(&Request::new("PATCH", "/v2/a/manifests/x"));
    assert_eq!(
        (r.status, r.error_codes()),
        (405, vec!["UNSUPPORTED".to_owned()])
    );
    // RFC 9110 §15.5.6: a 405 says which methods the resource takes.
    assert_eq!(r.header("Allow"), Some("GET, HEAD, PUT, DELETE"));
    for (req, allow) in [
        (Request::post("/v2/a/tags/list"), "GET, HEAD"),
        (Request::post("/v2/"), "GET, HEAD"),
        (Request::put("/v2/a/blobs/sha256:abc"), "GET, HEAD, DELETE"),
        (Request::get("/v2/a/blobs/uploads/"), "POST"),
    ] {
        let r = h.send(&req);
        assert_eq!((r.status, r.header("Allow")), (405, Some(allow)), "{req:?}");
    }
}

#[test]
fn requests_outside_v2_become_web_needs_with_their_body() {
    let mut h = Harness::new();
    let r = h.send(
        &Request::post("/api/x?q=1")
            .header("X-Any", "v")
            .body(&b"hello"[..]),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Web"), Some("1"));
    assert_eq!(r.body, b"POST /api/x 5");
    assert_common(&r);
    assert_eq!(h.records.last().unwrap().route, "web");
    let r = h.send(&Request::head("/"));
    assert_eq!((r.status, r.header("Content-Length")), (200, Some("8")));
    assert!(r.body.is_empty());
}

#[test]
fn web_body_over_its_limit_is_413() {
    let mut h = Harness::with_limits(Limits {
        web_body_bytes: 4,
        ..Limits::default()
    });
    let r = h.send(&Request::post("/login").body(&b"123456"[..]));
    assert_eq!(r.status, 413);
    assert_eq!(h.send(&Request::get("/v2/")).status, 200);
}

#[test]
fn storage_failure_is_500_unknown_and_the_connection_lives() {
    let mut h = Harness::new();
    h.store.fail = true;
    let r = h.send(&Request::get("/v2/a/tags/list"));
    assert_eq!(
        (r.status, r.error_codes()),
        (500, vec!["UNKNOWN".to_owned()])
    );
    h.store.fail = false;
    assert!(!h.closed);
    assert_eq!(h.send(&Request::get("/v2/")).status, 200);
}

#[test]
fn a_full_store_is_507_denied_with_its_message_and_the_connection_lives() {
    let mut h = Harness::new();
    h.store.full = Some("the store is full: delete images".into());
    let r = h.send(&Request::post("/v2/a/blobs/uploads/"));
    assert_eq!(
        (r.status, r.error_codes()),
        (507, vec!["DENIED".to_owned()])
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["errors"][0]["message"],
        "the store is full: delete images"
    );
    h.store.full = None;
    assert!(!h.closed);
    assert_eq!(h.send(&Request::get("/v2/")).status, 200);
}

#[test]
fn unreachable_storage_is_503_unavailable_with_retry_after_and_the_connection_lives() {
    let mut h = Harness::new();
    let d = push_blob(&mut h, "a", b"12345");
    h.store.unavailable = Some("storage cannot be reached for now".into());
    for req in [
        Request::post("/v2/a/blobs/uploads/"),
        Request::get(format!("/v2/a/blobs/{d}")),
        Request::get("/v2/a/manifests/latest"),
        Request::get("/v2/a/tags/list"),
    ] {
        let r = h.send(&req);
        assert_eq!(
            (r.status, r.error_codes()),
            (503, vec!["UNAVAILABLE".to_owned()])
        );
        assert_eq!(r.header("Retry-After"), Some("2"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v["errors"][0]["message"],
            "storage cannot be reached for now"
        );
        assert!(!h.closed);
    }
    h.store.unavailable = None;
    assert_eq!(
        h.send(&Request::get(format!("/v2/a/blobs/{d}"))).status,
        200
    );
}

#[test]
fn every_answered_request_gives_one_record() {
    let mut h = Harness::new();
    let d = push_blob(&mut h, "a", b"12345");
    h.send(&Request::get(format!("/v2/a/blobs/{d}")));
    h.send(&Request::get("/v2/nothing/here/x"));
    let routes: Vec<(&str, u16)> = h.records.iter().map(|r| (r.route, r.status)).collect();
    assert_eq!(
        routes,
        [
            ("upload_start", 202),
            ("upload_put", 201),
            ("blob_get", 200),
            ("invalid", 404)
        ]
    );
    assert_eq!(h.records[1].bytes_in, 5);
    assert_eq!(h.records[2].bytes_out, 5);
}

#[test]
fn single_post_asks_start_append_finish_in_order() {
    let mut h = Harness::new();
    let data = b"abc";
    let r = h.send(
        &Request::post(format!("/v2/a/blobs/uploads/?digest={}", sha256(data))).body(&data[..]),
    );
    assert_eq!(r.status, 201);
    assert_eq!(h.needs, ["StartUpload", "AppendUpload", "FinishUpload"]);
}

#[test]
fn upload_vanishing_mid_body_is_404_blob_upload_unknown() {
    let mut h = Harness::new();
    let loc = h.upload_location("a");
    let id = berth_core::oci::UploadId::parse(loc.rsplit('/').next().unwrap()).unwrap();
    h.heads.push(false);
    h.feed(
        format!(
            "PATCH {loc} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        .as_bytes(),
    );
    let gone = h.store.answer(&berth_core::Need::CancelUpload {
        repo: repo("a"),
        upload: id,
    });
    assert_eq!(gone, berth_core::Reply::Deleted(berth_core::Deleted::Done));
    h.feed(b"3\r\ndef\r\n0\r\n\r\n");
    let r = h.responses().pop().unwrap();
    assert_eq!(
        (r.status, r.error_codes()),
        (404, vec!["BLOB_UPLOAD_UNKNOWN".to_owned()])
    );
    // The small rest of the chunked body was discarded: the connection still serves.
    assert_eq!(h.send(&Request::get("/v2/")).status, 200);
}

#[test]
fn docker_schema2_manifest_and_list_round_trip_with_their_types() {
    let mut h = Harness::new();
    let c = push_blob(&mut h, "d", b"{}");
    let docker = "application/vnd.docker.distribution.manifest.v2+json";
    let list = "application/vnd.docker.distribution.manifest.list.v2+json";
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"{docker}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{c}","size":2}},"layers":[]}}"#
    );
    let md = sha256(m.as_bytes());
    assert_eq!(
        h.send(
            &Request::put(format!("/v2/d/manifests/{md}"))
                .header("Content-Type", docker)
                .body(m.clone())
        )
        .status,
        201
    );
    let l = format!(
        r#"{{"schemaVersion":2,"mediaType":"{list}","manifests":[{{"mediaType":"{docker}","digest":"{md}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        m.len()
    );
    let r = h.send(
        &Request::put("/v2/d/manifests/multi")
            .header("Content-Type", list)
            .body(l.clone()),
    );
    assert_eq!(r.status, 201);
    let r = h.send(&Request::get("/v2/d/manifests/multi"));
    assert_eq!(
        (r.header("Content-Type"), r.body.as_slice()),
        (Some(list), l.as_bytes())
    );
    assert_eq!(
        h.send(&Request::get(format!("/v2/d/manifests/{md}")))
            .header("Content-Type"),
        Some(docker)
    );
}

#[test]
fn index_with_unknown_children_is_400_manifest_blob_unknown() {
    let mut h = Harness::new();
    let child = sha256(b"not pushed");
    let idx = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{child}","size":3}}]}}"#
    );
    let r = h.send(
        &Request::put("/v2/i/manifests/t")
            .header("Content-Type", OCI_INDEX)
            .body(idx),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error_codes(), ["MANIFEST_BLOB_UNKNOWN"]);
    assert_eq!(r.json()["errors"][0]["detail"], child.to_string());
}

#[test]
fn index_with_subject_answers_oci_subject_and_referrer_has_no_artifact_type() {
    let mut h = Harness::new();
    let subject = sha256(b"never pushed subject");
    let idx = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":9}}}}"#
    );
    let d = sha256(idx.as_bytes());
    let r = h.send(
        &Request::put(format!("/v2/i/manifests/{d}"))
            .header("Content-Type", OCI_INDEX)
            .body(idx),
    );
    assert_eq!(
        (r.status, r.header("OCI-Subject")),
        (201, Some(subject.to_string().as_str()))
    );
    let v = h
        .send(&Request::get(format!("/v2/i/referrers/{subject}")))
        .json();
    assert_eq!(v["manifests"][0]["mediaType"], OCI_INDEX);
    assert!(v["manifests"][0].get("artifactType").is_none());
}

#[test]
fn manifest_get_with_a_matching_if_none_match_is_304_without_body() {
    let mut h = Harness::new();
    let (d, _) = seeded(&mut h);
    let r = h.send(
        &Request::get("/v2/org/app/manifests/v1").header("If-None-Match", &format!("\"{d}\"")),
    );
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(d.to_string().as_str())
    );
    let r = h.send(
        &Request::get("/v2/org/app/manifests/v1").header("If-None-Match", "\"sha256:other\""),
    );
    assert_eq!(r.status, 200);
    // The connection continues in step after the bodiless 304.
    assert_eq!(h.send(&Request::get("/v2/")).status, 200);
}
