//! Manifests (spec digest §6): GET and HEAD (with `If-None-Match`), PUT with its
//! validation, digest and `?tag=` parameters, and DELETE.

use super::ask;
use super::delete::Deleting;
use super::next::{Await, Cx, Next};
use super::read::{AfterGather, Body, Gather};
use super::respond::{self, RespBody, Response};
use crate::http::head::{Framing, Head};
use crate::http::response::ResponseHead;
use crate::limits::{human_bytes, Limits};
use crate::need::{ManifestInfo, ManifestPut, NewManifest, Referrer};
use crate::oci::error::{ErrorCode, ErrorEntry};
use crate::oci::manifest;
use crate::oci::{Algorithm, Digest, Reference, RepoName, Tag};
use sha2::Digest as _;

/// GET or HEAD of a manifest (end-3). `head`: a HEAD, which is not a pull.
pub(super) fn get(
    name: RepoName,
    reference: Reference,
    head: bool,
    if_none_match: Option<String>,
) -> Next {
    let ask = ask::get_manifest(name, reference, !head);
    Next::ask(ask, Get { if_none_match })
}

struct Get {
    if_none_match: Option<String>,
}

impl Await for Get {
    type Reply = Option<ManifestInfo>;

    fn resume(self, m: Option<ManifestInfo>, _: &Cx<'_>) -> Next {
        let Some(m) = m else {
            return respond::code(ErrorCode::ManifestUnknown, None).into();
        };
        // spec digest §2.1: docker sends If-None-Match with the ETag it cached.
        let fresh = self
            .if_none_match
            .is_some_and(|v| etag_matches(&v, &m.digest));
        let mut r = ResponseHead::new(if fresh { 304 } else { 200 });
        r.header("Content-Type", &m.media_type)
            .header_fmt("Docker-Content-Digest", format_args!("{}", m.digest))
            .header_fmt("ETag", format_args!("\"{}\"", m.digest));
        Response::new(r, RespBody::Bytes(m.body)).into()
    }
}

/// PUT of a manifest (end-7, end-7b): its body is gathered first, within `manifest_bytes`.
pub(super) fn put(
    name: RepoName,
    reference: Reference,
    tags: Vec<Tag>,
    h: Head,
    cx: &Cx<'_>,
) -> Next {
    let limit = cx.limits.manifest_bytes;
    if let Framing::Length(n) = h.framing {
        if n > limit as u64 {
            return too_large(cx.limits).into();
        }
    }
    let cap = match h.framing {
        Framing::Length(n) => n as usize,
        _ => 4096,
    };
    let then = AfterGather::Manifest {
        name,
        reference,
        tags,
        content_type: h.content_type,
    };
    Next::Read(Body::Gather(Gather { limit, cap, then }))
}

/// 413 for a manifest over `manifest_bytes`, its message naming the limit.
pub(super) fn too_large(limits: &Limits) -> Response {
    let message = format!(
        "manifest larger than {} (manifest_bytes)",
        human_bytes(limits.manifest_bytes as u64)
    );
    respond::message(413, ErrorCode::SizeInvalid, &message)
}

/// A PUT's body is in: spec digest §6.4 steps 3-8.
pub(super) fn store(
    name: RepoName,
    reference: Reference,
    tag_params: Vec<Tag>,
    content_type: Option<String>,
    data: Vec<u8>,
) -> Next {
    let parsed = match manifest::parse(&data, content_type.as_deref()) {
        Ok(p) => p,
        Err(manifest::Invalid(d)) => {
            return respond::code(ErrorCode::ManifestInvalid, Some(d)).into();
        }
    };
    let alg = match &reference {
        Reference::Digest(d) => d.algorithm(),
        Reference::Tag(_) => Algorithm::Sha256,
    };
    let digest = hash(alg, &data);
    if let Reference::Digest(want) = &reference {
        if *want != digest {
            let detail = format!("manifest digest is {digest}, not {want}");
            return respond::code(ErrorCode::DigestInvalid, Some(detail)).into();
        }
    }
    let mut tags = Vec::with_capacity(tag_params.len() + 1);
    if let Reference::Tag(t) = reference {
        tags.push(t);
    }
    for t in &tag_params {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    let media_type = parsed.kind.media_type().to_owned();
    let size = data.len() as u64;
    let subject = parsed.subject.clone().map(|s| {
        let r = Referrer {
            media_type: media_type.clone(),
            digest: digest.clone(),
            size,
            artifact_type: parsed.artifact_type.clone(),
            annotations: parsed.annotations.clone(),
        };
        (s, r)
    });
    let m = NewManifest {
        digest: digest.clone(),
        media_type,
        body: data.into(),
        tags,
        blobs: parsed.blobs,
        external: parsed.external,
        manifests: parsed.manifests,
        subject,
    };
    let storing = Storing {
        name: name.clone(),
        digest,
        tag_params,
        subject: parsed.subject,
    };
    Next::ask(ask::put_manifest(name, m), storing)
}

struct Storing {
    name: RepoName,
    digest: Digest,
    tag_params: Vec<Tag>,
    subject: Option<Digest>,
}

impl Await for Storing {
    type Reply = ManifestPut;

    fn resume(self, put: ManifestPut, _: &Cx<'_>) -> Next {
        match put {
            ManifestPut::Stored => {
                let ds = self.digest.to_string();
                let mut r = ResponseHead::new(201);
                r.header_fmt("Location", format_args!("/v2/{}/manifests/{ds}", self.name))
                    .header("Docker-Content-Digest", &ds);
                if let Some(s) = self.subject {
                    r.header("OCI-Subject", &s.to_string());
                }
                if !self.tag_params.is_empty() {
                    let list: Vec<&str> = self.tag_params.iter().map(Tag::as_str).collect();
                    r.header("OCI-Tag", &list.join(","));
                }
                Response::empty(r)
            }
            ManifestPut::Missing(list) if list.is_empty() => {
                respond::code(ErrorCode::ManifestBlobUnknown, None)
            }
            ManifestPut::Missing(list) => {
                let entries: Vec<ErrorEntry> = list
                    .iter()
                    .map(|d| ErrorEntry {
                        code: ErrorCode::ManifestBlobUnknown,
                        detail: Some(d.to_string()),
                    })
                    .collect();
                respond::errors_in(ResponseHead::new(400), &entries)
            }
        }
        .into()
    }
}

/// DELETE of a manifest or a tag (end-9).
pub(super) fn delete(name: RepoName, reference: Reference) -> Next {
    Next::ask(
        ask::delete_manifest(name, reference),
        Deleting {
            missing: ErrorCode::ManifestUnknown,
        },
    )
}

/// Digest of `data` with `alg` (no canonicalisation: the exact bytes, spec digest §1.3).
pub fn hash(alg: Algorithm, data: &[u8]) -> Digest {
    match alg {
        Algorithm::Sha256 => Digest::from_hash(alg, &sha2::Sha256::digest(data)),
        Algorithm::Sha512 => Digest::from_hash(alg, &sha2::Sha512::digest(data)),
    }
}

/// Whether an `If-None-Match` list names the digest's ETag (or is `*`).
fn etag_matches(v: &str, d: &Digest) -> bool {
    let want = d.to_string();
    v.split(',').map(str::trim).any(|t| {
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t.strip_prefix('"').and_then(|t| t.strip_suffix('"')) == Some(want.as_str())
    })
}
