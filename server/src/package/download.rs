//! The Download of a version: which blobs its archive holds and what it is named, the same
//! for the indexer (which hashes it) and the Download route (which sends it), so the
//! checksums the details show are those of the bytes sent.

use berth_core::{WebRequest, WebResponse};
use berth_engine::package::{ArchiveBlob, ArchivePlan, ArchiveSpec, Kind, ManifestFacts, Piece};
use berth_engine::BlobKey;
use sha2::{Digest as _, Sha256};

use super::path::VersionRef;
use super::reply::{failure, Env, Failure};
use super::view::{platforms, Viewer};
use crate::auth::policy::Principal;
use crate::web::download::{lookup_in, pieces, PiecesError};
use crate::web::ranged;

/// Sends the Download of version `version` of `repo` (through an index to `platform`) to
/// `p`: the API's `…/download` and the version page's Download button both answer with it,
/// so who may download what, the bytes, their name and their count are decided once.
///
/// Access is pulling's (`Viewer::resolve`): what `p` may not pull is a 404. The archive
/// names the tag asked for (by digest, or a platform image reached through an index: no
/// tag), so its bytes are those whose checksums the version's details show. A GET whose
/// answer starts at byte 0 counts one Download; a resumed range and a HEAD do not.
pub fn answer(
    env: &Env<'_>,
    p: &Principal,
    repo: &str,
    version: &VersionRef,
    platform: Option<&str>,
    req: &WebRequest,
) -> WebResponse {
    match send(env, p, repo, version, platform, req) {
        Ok(r) => r,
        Err(f) => failure(f),
    }
}

/// The Download, or why not (status, code, message) for the caller to render: JSON in the
/// API, a page in the web UI.
pub fn send(
    env: &Env<'_>,
    p: &Principal,
    repo: &str,
    version: &VersionRef,
    platform: Option<&str>,
    req: &WebRequest,
) -> Result<WebResponse, Failure> {
    let v = Viewer {
        e: env.e,
        p,
        host: env.host,
        downloads: env.downloads,
    };
    let r = v.resolve(repo, version, platform)?;
    let asked = format!("{repo}{}", version.suffix());
    let none = |why: String| (409, "NO_DOWNLOAD", why);
    match r.facts.kind() {
        Kind::Image => {}
        Kind::Index => {
            return Err((
                400,
                "PLATFORM_REQUIRED",
                format!(
                    "{asked} is a multi-platform index: each platform downloads on its own; choose one with ?platform= ({})",
                    platforms(&r.facts).join(", ")
                ),
            ))
        }
        Kind::Artifact => {
            return Err(none(format!(
                "{asked} is an artifact, not a container image: only images have a Download"
            )))
        }
    }
    let specs = archive_specs(
        env.host,
        repo,
        &r.key,
        &r.media_type,
        r.body.len() as u64,
        &r.facts,
    )
    .map_err(|why| none(format!("{asked} has no Download: {why}")))?;
    let plan = specs
        .plan(r.tag.as_deref())
        .map_err(|why| none(format!("{asked} has no Download: {why}")))?;
    let etag = entity_tag(&plan);
    let mut broken = None;
    // Whether the bytes sent begin at the first (no range sent for a 416).
    let mut from_start = false;
    let mut resp = ranged::answer(req, plan.len(), &etag, "application/x-tar", |range| {
        from_start = range.start == 0;
        pieces(&plan, range, lookup_in(env.e, repo, (&r.key, &r.body))).unwrap_or_else(|e| {
            broken = Some(e);
            Vec::new()
        })
    });
    match broken {
        None => {}
        Some(PiecesError::Missing(d)) => {
            return Err((
                404,
                "NOT_FOUND",
                format!("{asked} is no longer whole: its blob {d} was deleted"),
            ))
        }
        Some(PiecesError::Store(s)) => return Err((500, "INTERNAL", crate::failure::internal(&s))),
        Some(e @ PiecesError::Short { .. }) => {
            tracing::error!(error = %e, repo, "download: a stored blob is shorter than its manifest says");
            return Err((
                500,
                "INTERNAL",
                format!("the store holds a damaged blob of {asked}; see the server log"),
            ));
        }
    }
    if req.method == "GET" && from_start {
        env.downloads.count(repo, r.key.clone());
    }
    resp.headers.extend([
        (
            "Content-Disposition".into(),
            format!(
                "attachment; filename=\"{}\"",
                file_name(repo, version, platform)
            ),
        ),
        ("Cache-Control".into(), "private, no-cache".into()),
    ]);
    Ok(resp)
}

/// A strong entity tag for the archive: a hash of its layout (the bytes it holds itself,
/// and the digest and range of every blob member), which fixes every byte, so it holds
/// before the indexer has hashed the archive and changes whenever the bytes would.
fn entity_tag(plan: &ArchivePlan) -> String {
    let mut h = Sha256::new();
    for p in plan.pieces(0..plan.len()) {
        match p {
            Piece::Bytes(b) => {
                h.update(b"b");
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
            Piece::Blob { digest, range } => {
                h.update(b"d");
                h.update((digest.len() as u64).to_be_bytes());
                h.update(digest.as_bytes());
                h.update(range.start.to_be_bytes());
                h.update(range.end.to_be_bytes());
            }
        }
    }
    format!("\"dl-{}\"", hex::encode(&h.finalize()[..16]))
}

/// `<image's last name component>_<tag or short digest>[_os-arch[-variant]].tar`, in the
/// characters every file system and `Content-Disposition` parser takes (others become `_`).
fn file_name(repo: &str, version: &VersionRef, platform: Option<&str>) -> String {
    let last = repo.rsplit('/').next().unwrap_or(repo);
    let which = match version {
        VersionRef::Tag(t) => t.clone(),
        VersionRef::Digest(d) => {
            let hex = d.split_once(':').map_or(d.as_str(), |(_, h)| h);
            hex.chars().take(12).collect()
        }
    };
    let mut name = format!("{last}_{which}");
    if let Some(p) = platform {
        name.push('_');
        name.push_str(&p.replace('/', "-"));
    }
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.tar")
}

/// What an image version's archives are made of; one plan per name.
pub struct Specs {
    manifest: ArchiveBlob,
    media_type: String,
    config: ArchiveBlob,
    layers: Vec<ArchiveBlob>,
    repository: String,
}

/// The name images carry: the public URL's host, else the address the server listens on
/// (`localhost` for an unspecified one).
pub fn public_host(public_url: Option<&str>, listen: std::net::SocketAddr) -> String {
    if let Some(host) = public_url
        .map(crate::auth::url_host)
        .filter(|h| !h.is_empty())
    {
        return host.to_owned();
    }
    if listen.ip().is_unspecified() {
        format!("localhost:{}", listen.port())
    } else {
        listen.to_string()
    }
}

/// The archive of image version `key` of `repo` (pushed with `media_type`, `manifest_len`
/// bytes long); why there is none (an external layer, a digest other than sha256, not an
/// image).
pub fn archive_specs(
    host: &str,
    repo: &str,
    key: &BlobKey,
    media_type: &str,
    manifest_len: u64,
    facts: &ManifestFacts,
) -> Result<Specs, String> {
    let config = facts
        .config
        .as_ref()
        .ok_or("an image without a config has no Download")?;
    if let Some(l) = facts.layers.iter().find(|l| l.external) {
        return Err(format!(
            "layer {} is foreign (clients fetch it from elsewhere): the Download needs every layer",
            l.digest
        ));
    }
    let blob = |digest: &str, size| ArchiveBlob {
        digest: digest.to_owned(),
        size,
    };
    Ok(Specs {
        manifest: blob(&key.to_string(), manifest_len),
        media_type: media_type.to_owned(),
        config: blob(&config.digest, config.size),
        layers: facts
            .layers
            .iter()
            .map(|l| blob(&l.digest, l.size))
            .collect(),
        repository: format!("{host}/{repo}"),
    })
}

impl Specs {
    /// The archive naming `tag` (`None`: the version by digest).
    pub fn plan(&self, tag: Option<&str>) -> Result<ArchivePlan, String> {
        ArchivePlan::new(&ArchiveSpec {
            manifest: self.manifest.clone(),
            manifest_media_type: &self.media_type,
            config: self.config.clone(),
            layers: &self.layers,
            repository: &self.repository,
            tag,
        })
        .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_carry_the_image_version_and_platform_in_safe_characters() {
        let tag = VersionRef::Tag("1.0".into());
        assert_eq!(file_name("acme/web/tools/app", &tag, None), "app_1.0.tar");
        assert_eq!(
            file_name("acme/web/app", &tag, Some("linux/arm/v7")),
            "app_1.0_linux-arm-v7.tar"
        );
        let d = VersionRef::Digest(format!("sha256:{}", "ab".repeat(32)));
        assert_eq!(file_name("acme/web/app", &d, None), "app_abababababab.tar");
        assert_eq!(
            file_name("acme/web/app", &tag, Some("linux/\"x\";\u{e9}")),
            "app_1.0_linux-_x___.tar"
        );
    }

    #[test]
    fn the_public_host_is_the_urls_else_the_listen_address() {
        let l: std::net::SocketAddr = "0.0.0.0:5000".parse().unwrap();
        assert_eq!(
            public_host(Some("https://r.example.com/"), l),
            "r.example.com"
        );
        assert_eq!(
            public_host(Some("http://10.0.0.1:5000"), l),
            "10.0.0.1:5000"
        );
        assert_eq!(public_host(None, l), "localhost:5000");
        let l: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(public_host(None, l), "127.0.0.1:8080");
    }
}
