//! Pushing to an OCI registry (Distribution spec §4.3 and §6): a blob in one PUT or in
//! PATCHed chunks, a manifest, an image of both. The tests and the load generator push
//! through these, so every push checks the same answers: the status the spec requires, the
//! upload's `Location` and `Range`, the `Docker-Content-Digest` of what was stored.

use crate::conn::HttpConn;
use crate::error::Error;
use crate::response::{Response, Sink};
use sha2::{Digest as _, Sha256};
use std::fmt;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// An uncompressed tar layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// `sha256:<64 hex>` of `bytes`, the digest a registry names them by.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A push step that did not get the answer it needs.
#[derive(Debug)]
pub enum PushError {
    /// No answer.
    Transport { step: &'static str, err: Error },
    /// An answer, not the one the spec requires (`why` says what was wrong with it).
    Refused {
        step: &'static str,
        why: String,
        response: Box<Response>,
    },
}

impl PushError {
    /// The answer that was refused, if there was one.
    pub fn response(&self) -> Option<&Response> {
        match self {
            PushError::Transport { .. } => None,
            PushError::Refused { response, .. } => Some(response),
        }
    }
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Transport { step, err } => write!(f, "{step}: {err}"),
            PushError::Refused {
                step,
                why,
                response,
            } => {
                let body = &response.body[..response.body.len().min(300)];
                write!(
                    f,
                    "{step}: {why} (HTTP {}: {})",
                    response.status,
                    String::from_utf8_lossy(body)
                )
            }
        }
    }
}

impl std::error::Error for PushError {}

/// Sends one request and requires `status`.
fn call(
    c: &mut HttpConn,
    step: &'static str,
    (method, path): (&str, &str),
    headers: &[(&str, &str)],
    body: &[&[u8]],
    status: u16,
) -> Result<Response, PushError> {
    let r = c
        .request(method, path, headers, body, Sink::Keep)
        .map_err(|err| PushError::Transport { step, err })?;
    if r.status != status {
        return Err(refused(step, format!("want HTTP {status}"), r));
    }
    Ok(r)
}

fn refused(step: &'static str, why: String, r: Response) -> PushError {
    PushError::Refused {
        step,
        why,
        response: Box::new(r),
    }
}

/// `headers` and then `more`.
fn with<'a>(
    headers: &[(&'a str, &'a str)],
    more: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut all = headers.to_vec();
    all.extend_from_slice(more);
    all
}

/// The path and query of a `Location`, which may be absolute or relative (spec §2.1).
pub fn location_path(loc: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = loc.strip_prefix(scheme) {
            return rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    loc
}

/// The upload URL with `digest=<d>` added to its query (spec §4.3).
pub fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

/// `POST /v2/<repo>/blobs/uploads/` → 202; the upload's `Location` as a path.
pub fn start_upload(
    c: &mut HttpConn,
    headers: &[(&str, &str)],
    repo: &str,
) -> Result<String, PushError> {
    let step = "POST blobs/uploads/";
    let path = format!("/v2/{repo}/blobs/uploads/");
    let r = call(c, step, ("POST", &path), headers, &[], 202)?;
    location(step, r)
}

fn location(step: &'static str, r: Response) -> Result<String, PushError> {
    match r.header("location") {
        Some(l) => Ok(location_path(l).to_string()),
        None => Err(refused(step, "no Location header".into(), r)),
    }
}

/// `PUT <location>?digest=<d>` with `body` (empty after PATCHes) → 201 naming `digest`.
pub fn finish_upload(
    c: &mut HttpConn,
    headers: &[(&str, &str)],
    location: &str,
    digest: &str,
    body: &[&[u8]],
) -> Result<Response, PushError> {
    let step = "PUT upload?digest=";
    let all = with(headers, &[("Content-Type", "application/octet-stream")]);
    let r = call(
        c,
        step,
        ("PUT", &with_digest(location, digest)),
        &all,
        body,
        201,
    )?;
    match r.header("docker-content-digest") {
        Some(d) if d != digest => Err(refused(
            step,
            format!("Docker-Content-Digest {d} for a {digest} upload"),
            r,
        )),
        _ => Ok(r),
    }
}

/// A monolithic push: POST, then one PUT with the whole body (what containerd does); the
/// PUT's answer.
pub fn push_blob(
    c: &mut HttpConn,
    headers: &[(&str, &str)],
    repo: &str,
    digest: &str,
    body: &[&[u8]],
) -> Result<Response, PushError> {
    let loc = start_upload(c, headers, repo)?;
    finish_upload(c, headers, &loc, digest, body)
}

/// A chunked push: POST, `data` in `chunks` PATCHes with `Content-Range` (each answered
/// with the `Range` received so far), then the closing PUT. The digest.
pub fn push_blob_in_chunks(
    c: &mut HttpConn,
    headers: &[(&str, &str)],
    repo: &str,
    data: &[u8],
    chunks: usize,
) -> Result<String, PushError> {
    let step = "PATCH upload";
    let digest = sha256_digest(data);
    let mut loc = start_upload(c, headers, repo)?;
    let step_len = data.len().div_ceil(chunks.max(1)).max(1);
    for (i, part) in data.chunks(step_len).enumerate() {
        let start = i * step_len;
        let end = start + part.len() - 1;
        let range = format!("{start}-{end}");
        let all = with(
            headers,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", &range),
            ],
        );
        let r = call(c, step, ("PATCH", &loc), &all, &[part], 202)?;
        let want = format!("0-{end}");
        if r.header("range") != Some(want.as_str()) {
            return Err(refused(step, format!("want Range {want}"), r));
        }
        loc = location(step, r)?;
    }
    finish_upload(c, headers, &loc, &digest, &[])?;
    Ok(digest)
}

/// `PUT /v2/<repo>/manifests/<reference>` of type `media_type` → 201.
pub fn put_manifest(
    c: &mut HttpConn,
    headers: &[(&str, &str)],
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> Result<Response, PushError> {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let all = with(headers, &[("Content-Type", media_type)]);
    call(c, "PUT manifest", ("PUT", &path), &all, &[body], 201)
}

/// An OCI image manifest naming a config and layers of `layer_type`, each by
/// `(digest, size)`.
pub fn image_manifest(config: (&str, u64), layers: &[(&str, u64)], layer_type: &str) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, n)| format!(r#"{{"mediaType":"{layer_type}","digest":"{d}","size":{n}}}"#))
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{}","size":{}}},"layers":[{}]}}"#,
        config.0,
        config.1,
        layers.join(",")
    )
}

/// Pushes `config` and uncompressed tar `layers` as monolithic blobs, then their manifest
/// ([`image_manifest`]) as `tag`; the manifest's digest.
pub fn push_image(
    c: &mut HttpConn,
    headers: &[(&str, &str)],
    repo: &str,
    tag: &str,
    config: &[u8],
    layers: &[&[u8]],
) -> Result<String, PushError> {
    let mut descs = Vec::with_capacity(layers.len());
    for blob in std::iter::once(&config).chain(layers) {
        let d = sha256_digest(blob);
        push_blob(c, headers, repo, &d, &[blob])?;
        descs.push((d, blob.len() as u64));
    }
    let layer_descs: Vec<(&str, u64)> = descs[1..].iter().map(|(d, n)| (d.as_str(), *n)).collect();
    let m = image_manifest((&descs[0].0, descs[0].1), &layer_descs, OCI_LAYER_TAR);
    put_manifest(c, headers, repo, tag, OCI_MANIFEST, m.as_bytes())?;
    Ok(sha256_digest(m.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_locations_and_manifests_are_spelt_as_registries_do() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            location_path("http://127.0.0.1:5000/v2/a/b/blobs/uploads/u?_state=x"),
            "/v2/a/b/blobs/uploads/u?_state=x"
        );
        assert_eq!(
            location_path("/v2/a/blobs/uploads/u"),
            "/v2/a/blobs/uploads/u"
        );
        assert_eq!(location_path("http://h"), "/");
        assert_eq!(
            with_digest("/u?_state=x", "sha256:ab"),
            "/u?_state=x&digest=sha256:ab"
        );
        assert_eq!(with_digest("/u", "sha256:ab"), "/u?digest=sha256:ab");
        let m = image_manifest(("sha256:c", 2), &[("sha256:l", 3)], OCI_LAYER_TAR);
        assert_eq!(
            m,
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:l","size":3}]}"#
        );
    }
}
