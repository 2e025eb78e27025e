//! A recorded push-and-pull session, shared by the split, sweep and fuzz-seed tests.

#![allow(dead_code)]

use berth_core::hash;
use berth_core::oci::{Algorithm, Digest};
use berth_core::testkit::Request;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub fn sha256(b: &[u8]) -> Digest {
    hash(Algorithm::Sha256, b)
}

/// The requests of a push then pull, pipelined. Upload ids are the model store's
/// deterministic `up-N`.
pub fn push_session() -> (Vec<Request>, Vec<u8>) {
    let layer: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
    let ld = sha256(&layer);
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let cd = sha256(&config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{ld}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let reqs = vec![
        Request::get("/v2/"),
        Request::head(format!("/v2/s/app/blobs/{ld}")),
        Request::post("/v2/s/app/blobs/uploads/"),
        Request::patch("/v2/s/app/blobs/uploads/up-1")
            .body(layer[..100].to_vec())
            .chunked(7),
        Request::patch("/v2/s/app/blobs/uploads/up-1")
            .header("Content-Range", "100-199")
            .body(layer[100..200].to_vec()),
        Request::put(format!("/v2/s/app/blobs/uploads/up-1?digest={ld}"))
            .body(layer[200..].to_vec()),
        Request::post(format!("/v2/s/app/blobs/uploads/?digest={cd}")).body(config.clone()),
        Request::put("/v2/s/app/manifests/v1")
            .header("Content-Type", OCI_MANIFEST)
            .body(manifest.clone()),
        Request::get("/v2/s/app/manifests/v1"),
        Request::head(format!(
            "/v2/s/app/manifests/{}",
            sha256(manifest.as_bytes())
        )),
        Request::get(format!("/v2/s/app/blobs/{ld}")).header("Range", "bytes=10-19"),
        Request::get("/v2/s/app/tags/list"),
    ];
    let bytes = reqs.iter().flat_map(|r| r.to_bytes()).collect();
    (reqs, bytes)
}
