//! The Download route on the real binary: `GET|HEAD /api/v1/packages/…/download` sends the
//! archive whose checksums the details show, by range for a resume, named for the version,
//! counted once per download from its first byte, to whoever may pull it alone.

mod common;

use common::*;

const DETAILS: &str = "/api/v1/packages/acme/web/app";

fn hex_sha256(b: &[u8]) -> String {
    sha256(b).trim_start_matches("sha256:").to_owned()
}

fn base_layers() -> (Vec<u8>, Vec<u8>) {
    let base = layer_of(&[
        (
            "etc/os-release",
            "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n",
        ),
        ("usr/bin/tool", "#!/bin/sh\necho tool\n"),
    ]);
    let top = layer_of(&[("app/main", "main\n"), ("usr/bin/.wh.tool", "")]);
    (base, top)
}

#[test]
fn a_download_is_the_archive_the_details_hash_resumable_and_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let mut c = srv.client();
    let (base, top) = base_layers();
    let digest = put_image(
        &mut c,
        "1.0",
        br#"{"os":"linux","architecture":"amd64","config":{}}"#,
        &[&base, &top],
    );
    let v = indexed(&mut c, &format!("{DETAILS}:1.0"));
    let want = v["checksums"]["sha256"].as_str().unwrap().to_owned();

    let url = format!("{DETAILS}:1.0/download");
    let first = c.get(&url);
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.header("content-type"), Some("application/x-tar"));
    assert_eq!(
        first.header("content-disposition"),
        Some("attachment; filename=\"app_1.0.tar\"")
    );
    assert_eq!(first.header("accept-ranges"), Some("bytes"));
    assert_eq!(hex_sha256(&first.body), want, "the bytes the details hash");
    let etag = first.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
    let again = c.get(&url);
    assert!(again.body == first.body, "two downloads differ");
    assert_eq!(again.header("etag"), Some(etag.as_str()));

    // A resume: the rest from byte 1000, while the ETag still matches; not counted again.
    let rest = c.request(
        "GET",
        &url,
        &[("Range", "bytes=1000-"), ("If-Range", &etag)],
        b"",
    );
    assert_eq!(rest.status, 206, "{rest:?}");
    let len = first.body.len();
    assert_eq!(
        rest.header("content-range"),
        Some(format!("bytes 1000-{}/{len}", len - 1).as_str())
    );
    assert!(rest.body == first.body[1000..]);
    // A range from the start is a download.
    let head = c.request("GET", &url, &[("Range", "bytes=0-99")], b"");
    assert_eq!((head.status, head.body.len()), (206, 100));
    // A HEAD is not one.
    let h = c.request("HEAD", &url, &[], b"");
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-length"), Some(len.to_string().as_str()));
    let v = c.get(&format!("{DETAILS}:1.0")).json();
    assert_eq!(v["downloads"], 3, "{v}");

    // By digest: no tag in the archive, so its own checksums; named by the short digest.
    let by_digest = format!("{DETAILS}@{digest}");
    let v = indexed(&mut c, &by_digest);
    let r = c.get(&format!("{by_digest}/download"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        hex_sha256(&r.body),
        v["checksums"]["sha256"].as_str().unwrap()
    );
    assert_ne!(r.body, first.body, "the tag is named in the archive");
    let short = &digest["sha256:".len()..][..12];
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("attachment; filename=\"app_{short}.tar\"").as_str())
    );

    // What one may not pull does not exist; an unknown version neither.
    let mut anon = srv.anonymous();
    let r = anon.get(&url);
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "NOT_FOUND");
    assert_eq!(c.get(&format!("{DETAILS}:2.0/download")).status, 404);
    let r = c.request("DELETE", &url, &[], b"");
    assert_eq!(r.status, 405, "{r:?}");
}

#[test]
fn an_index_downloads_per_platform_and_an_artifact_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let mut c = srv.client();
    let (base, top) = base_layers();
    let amd = put_image(
        &mut c,
        "amd",
        br#"{"os":"linux","architecture":"amd64","config":{}}"#,
        &[&base, &top],
    );
    let arm = put_image(
        &mut c,
        "arm",
        br#"{"os":"linux","architecture":"arm64","config":{}}"#,
        &[&top],
    );
    let (amd_len, arm_len) = (
        c_get_manifest(&mut c, "amd").len(),
        c_get_manifest(&mut c, "arm").len(),
    );
    put_index(
        &mut c,
        "multi",
        &[
            platform_entry(&amd, amd_len as u64, "amd64"),
            platform_entry(&arm, arm_len as u64, "arm64"),
        ],
    );

    let r = c.get(&format!("{DETAILS}:multi/download"));
    assert_eq!(r.status, 400, "{r:?}");
    let m = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        m.contains("linux/amd64") && m.contains("linux/arm64") && m.contains("platform"),
        "{m}"
    );

    let v = indexed(&mut c, &format!("{DETAILS}:multi?platform=linux/arm64"));
    let r = c.get(&format!("{DETAILS}:multi/download?platform=linux/arm64"));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"app_multi_linux-arm64.tar\"")
    );
    assert_eq!(
        hex_sha256(&r.body),
        v["checksums"]["sha256"].as_str().unwrap(),
        "the platform image's archive, by digest"
    );
    let r = c.get(&format!("{DETAILS}:multi/download?platform=linux/s390x"));
    assert_eq!(r.status, 404, "{r:?}");
    let r = c.get(&format!("{DETAILS}:amd/download?platform=linux/amd64"));
    assert_eq!(r.status, 400, "not an index: {r:?}");

    // An artifact (a Helm chart) has no Download, and says why.
    let chart = push_blob(&mut c, b"chart", 1);
    let cfg = push_blob(&mut c, b"{}", 1);
    let art = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"{cfg}","size":2}},"layers":[{{"mediaType":"application/vnd.cncf.helm.chart.content.v1.tar+gzip","digest":"{chart}","size":5}}]}}"#
    );
    let r = c.request(
        "PUT",
        "/v2/acme/web/app/manifests/chart",
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        art.as_bytes(),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = c.get(&format!("{DETAILS}:chart/download"));
    assert_eq!(r.status, 409, "{r:?}");
    let m = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(m.contains("artifact"), "{m}");

    // Nor does an image with a foreign layer, which the registry does not hold.
    let cfg = push_blob(&mut c, br#"{"os":"windows","architecture":"amd64"}"#, 1);
    let foreign = format!("sha256:{}", "f".repeat(64));
    let win = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cfg}","size":39}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"{foreign}","size":1000,"urls":["https://example.com/layer"]}}]}}"#
    );
    let r = c.request(
        "PUT",
        "/v2/acme/web/app/manifests/win",
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        win.as_bytes(),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = c.get(&format!("{DETAILS}:win/download"));
    assert_eq!(r.status, 409, "{r:?}");
    let m = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(m.contains("foreign") && m.contains(&foreign), "{m}");
}

fn c_get_manifest(c: &mut Client, tag: &str) -> Vec<u8> {
    let r = c.request(
        "GET",
        &format!("/v2/acme/web/app/manifests/{tag}"),
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}
