//! The OCI Distribution requests the load generator sends (spec §4, §5, §6.4), each checked
//! for the status the spec requires, so a run against a broken server fails loudly instead
//! of measuring error pages.

use crate::client::{ClientError, HttpConn, Response, Sink};
use crate::credentials::basic_authorization;
use crate::payload::{fill_random, sha256_digest};
use std::fmt;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

#[derive(Debug)]
pub enum OpError {
    Client(ClientError),
    /// The server answered, but not as the spec requires.
    Unexpected {
        op: &'static str,
        status: u16,
        detail: String,
    },
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpError::Client(e) => write!(f, "{e}"),
            OpError::Unexpected { op, status, detail } => {
                write!(f, "{op}: unexpected status {status}: {detail}")
            }
        }
    }
}

impl std::error::Error for OpError {}

impl From<ClientError> for OpError {
    fn from(e: ClientError) -> Self {
        OpError::Client(e)
    }
}

fn expect(op: &'static str, r: &Response, ok: &[u16]) -> Result<(), OpError> {
    if ok.contains(&r.status) {
        return Ok(());
    }
    let detail = String::from_utf8_lossy(&r.body[..r.body.len().min(300)]).into_owned();
    Err(OpError::Unexpected {
        op,
        status: r.status,
        detail,
    })
}

/// Extra request headers (e.g. `Authorization`) sent with every request of a run.
#[derive(Clone, Debug, Default)]
pub struct Extra(pub Vec<(String, String)>);

impl Extra {
    /// Adds `Authorization: Basic base64("berth:" + secret)`; refuses a second
    /// `Authorization`, which a server would see as a malformed request, not as a choice.
    pub fn add_basic_token(&mut self, secret: &str) -> Result<(), String> {
        if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("token secret: expected printable ASCII without spaces".into());
        }
        if self.has_authorization() {
            return Err("token secret: an Authorization header is already set".into());
        }
        self.0
            .push(("Authorization".to_string(), basic_authorization(secret)));
        Ok(())
    }

    pub fn has_authorization(&self) -> bool {
        self.0
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
    }

    fn with<'a>(&'a self, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut v: Vec<(&str, &str)> = more.to_vec();
        v.extend(self.0.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        v
    }
}

/// `GET /v2/` (end-1): 200, or 401 when the server wants credentials.
pub fn ping(c: &mut HttpConn, extra: &Extra) -> Result<u16, OpError> {
    let r = c.request("GET", "/v2/", &extra.with(&[]), &[], Sink::Keep)?;
    expect("GET /v2/", &r, &[200, 401])?;
    Ok(r.status)
}

/// The path and query of a `Location` header, which may be absolute (Distribution sends
/// `http://host/v2/...`) or a path.
pub fn location_path(loc: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = loc.strip_prefix(scheme) {
            return rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    loc
}

/// The upload URL with `digest=<d>` added to its query (spec §5.6).
pub fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

/// `POST /v2/<repo>/blobs/uploads/` (end-4a) → 202 and the upload's `Location` path.
pub fn start_upload(c: &mut HttpConn, extra: &Extra, repo: &str) -> Result<String, OpError> {
    let path = format!("/v2/{repo}/blobs/uploads/");
    let r = c.request("POST", &path, &extra.with(&[]), &[], Sink::Keep)?;
    expect("POST blobs/uploads/", &r, &[202])?;
    let loc = r.header("location").ok_or(OpError::Unexpected {
        op: "POST blobs/uploads/",
        status: r.status,
        detail: "no Location header".into(),
    })?;
    Ok(location_path(loc).to_string())
}

/// `PUT <location>?digest=<d>` (end-6) with the whole blob as the body → 201.
pub fn finish_upload(
    c: &mut HttpConn,
    extra: &Extra,
    location: &str,
    digest: &str,
    body: &[&[u8]],
) -> Result<(), OpError> {
    let r = c.request(
        "PUT",
        &with_digest(location, digest),
        &extra.with(&[("Content-Type", "application/octet-stream")]),
        body,
        Sink::Keep,
    )?;
    expect("PUT upload?digest=", &r, &[201])?;
    if let Some(d) = r.header("docker-content-digest") {
        if d != digest {
            return Err(OpError::Unexpected {
                op: "PUT upload?digest=",
                status: r.status,
                detail: format!("Docker-Content-Digest {d} for a {digest} upload"),
            });
        }
    }
    Ok(())
}

/// A monolithic push: POST, then one PUT with the whole body (what containerd does, §5.9).
pub fn push_blob(
    c: &mut HttpConn,
    extra: &Extra,
    repo: &str,
    digest: &str,
    body: &[&[u8]],
) -> Result<(), OpError> {
    let loc = start_upload(c, extra, repo)?;
    finish_upload(c, extra, &loc, digest, body)
}

/// `GET /v2/<repo>/blobs/<d>` (end-2) → 200 with exactly `size` bytes, which are counted and
/// dropped.
pub fn pull_blob(
    c: &mut HttpConn,
    extra: &Extra,
    repo: &str,
    digest: &str,
    size: u64,
) -> Result<u64, OpError> {
    let path = format!("/v2/{repo}/blobs/{digest}");
    let r = c.request("GET", &path, &extra.with(&[]), &[], Sink::Discard)?;
    expect("GET blob", &r, &[200])?;
    if r.body_len != size {
        return Err(OpError::Unexpected {
            op: "GET blob",
            status: r.status,
            detail: format!("got {} body bytes, want {size}", r.body_len),
        });
    }
    Ok(r.body_len)
}

/// `PUT /v2/<repo>/manifests/<reference>` (end-7) → 201.
pub fn put_manifest(
    c: &mut HttpConn,
    extra: &Extra,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> Result<(), OpError> {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let r = c.request(
        "PUT",
        &path,
        &extra.with(&[("Content-Type", media_type)]),
        &[body],
        Sink::Keep,
    )?;
    expect("PUT manifest", &r, &[201])
}

/// The request bytes of `GET /v2/<repo>/manifests/<reference>` accepting OCI manifests;
/// built once and resent as is in the manifest-get loop.
pub fn manifest_get_request(c: &HttpConn, extra: &Extra, repo: &str, reference: &str) -> Vec<u8> {
    let path = format!("/v2/{repo}/manifests/{reference}");
    // Distribution answers 404 to an OCI manifest when Accept lacks its type (spec §4.2).
    c.head("GET", &path, &extra.with(&[("Accept", OCI_MANIFEST)]), 0)
}

/// A small but complete image: one config blob, one layer, an OCI manifest naming both.
pub struct SmallImage {
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl SmallImage {
    pub fn new(nonce: u64) -> SmallImage {
        let mut layer = vec![0u8; 4096];
        fill_random(&mut layer, nonce);
        let layer_digest = sha256_digest(&layer);
        let config = format!(
            concat!(
                r#"{{"architecture":"amd64","os":"linux","created":"2026-01-01T00:00:00Z","#,
                r#""config":{{"Labels":{{"org.opencontainers.image.title":"berth-loadgen {}"}}}},"#,
                r#""rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#
            ),
            nonce, layer_digest
        )
        .into_bytes();
        let manifest = format!(
            concat!(
                r#"{{"schemaVersion":2,"mediaType":"{mt}","#,
                r#""config":{{"mediaType":"{ct}","digest":"{cd}","size":{cs}}},"#,
                r#""layers":[{{"mediaType":"{lt}","digest":"{ld}","size":{ls}}}]}}"#
            ),
            mt = OCI_MANIFEST,
            ct = OCI_CONFIG,
            cd = sha256_digest(&config),
            cs = config.len(),
            lt = OCI_LAYER,
            ld = layer_digest,
            ls = layer.len(),
        )
        .into_bytes();
        SmallImage {
            config,
            layer,
            manifest,
        }
    }

    /// Pushes config, layer and the manifest under `tag`.
    pub fn push(
        &self,
        c: &mut HttpConn,
        extra: &Extra,
        repo: &str,
        tag: &str,
    ) -> Result<(), OpError> {
        for blob in [&self.config, &self.layer] {
            push_blob(c, extra, repo, &sha256_digest(blob), &[blob])?;
        }
        put_manifest(c, extra, repo, tag, OCI_MANIFEST, &self.manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_relative_locations_become_paths() {
        assert_eq!(
            location_path("http://127.0.0.1:5000/v2/a/b/blobs/uploads/u?_state=x"),
            "/v2/a/b/blobs/uploads/u?_state=x"
        );
        assert_eq!(
            location_path("/v2/a/blobs/uploads/u"),
            "/v2/a/blobs/uploads/u"
        );
        assert_eq!(location_path("http://h"), "/");
    }

    #[test]
    fn the_digest_joins_an_existing_query_or_starts_one() {
        assert_eq!(
            with_digest("/u?_state=x", "sha256:ab"),
            "/u?_state=x&digest=sha256:ab"
        );
        assert_eq!(with_digest("/u", "sha256:ab"), "/u?digest=sha256:ab");
    }

    #[test]
    fn the_small_image_manifest_names_its_blobs_by_digest_and_size() {
        let img = SmallImage::new(3);
        let m: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
        assert_eq!(m["config"]["digest"], sha256_digest(&img.config));
        assert_eq!(m["config"]["size"], img.config.len());
        assert_eq!(m["layers"][0]["digest"], sha256_digest(&img.layer));
        let _: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
    }
}
