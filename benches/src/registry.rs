//! The OCI Distribution requests the load generator sends (spec §4, §5, §6.4), each checked
//! for the status the spec requires, so a run against a broken server fails loudly instead
//! of measuring error pages.

use crate::client::{ClientError, HttpConn, Response, Sink};
use crate::credentials::basic_authorization;
use crate::payload::{fill_random, sha256_digest};
use berth_client::oci::{self, PushError};
pub use berth_client::oci::{location_path, with_digest, OCI_CONFIG, OCI_MANIFEST};
use std::fmt;

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

impl From<PushError> for OpError {
    fn from(e: PushError) -> Self {
        match e {
            PushError::Transport { err, .. } => OpError::Client(err),
            PushError::Refused {
                step,
                why,
                response,
            } => OpError::Unexpected {
                op: step,
                status: response.status,
                detail: format!(
                    "{why}: {}",
                    String::from_utf8_lossy(&response.body[..response.body.len().min(300)])
                ),
            },
        }
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

/// `POST /v2/<repo>/blobs/uploads/` (end-4a) → 202 and the upload's `Location` path.
pub fn start_upload(c: &mut HttpConn, extra: &Extra, repo: &str) -> Result<String, OpError> {
    Ok(oci::start_upload(c, &extra.with(&[]), repo)?)
}

/// `PUT <location>?digest=<d>` (end-6) with the whole blob as the body → 201.
pub fn finish_upload(
    c: &mut HttpConn,
    extra: &Extra,
    location: &str,
    digest: &str,
    body: &[&[u8]],
) -> Result<(), OpError> {
    oci::finish_upload(c, &extra.with(&[]), location, digest, body)?;
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
    oci::push_blob(c, &extra.with(&[]), repo, digest, body)?;
    Ok(())
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
    oci::put_manifest(c, &extra.with(&[]), repo, reference, media_type, body)?;
    Ok(())
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
    fn the_small_image_manifest_names_its_blobs_by_digest_and_size() {
        let img = SmallImage::new(3);
        let m: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
        assert_eq!(m["config"]["digest"], sha256_digest(&img.config));
        assert_eq!(m["config"]["size"], img.config.len());
        assert_eq!(m["layers"][0]["digest"], sha256_digest(&img.layer));
        let _: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
    }
}
