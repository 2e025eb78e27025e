//! The Download of a version: which blobs its archive holds and what it is named, the same
//! for the indexer (which hashes it) and the Download route (which sends it), so the
//! checksums the details show are those of the bytes sent.

use berth_engine::package::{ArchiveBlob, ArchivePlan, ArchiveSpec, ManifestFacts};
use berth_engine::BlobKey;

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
    if let Some(u) = public_url {
        let rest = u.split_once("://").map_or(u, |(_, r)| r);
        let host = rest.split('/').next().unwrap_or(rest);
        if !host.is_empty() {
            return host.to_owned();
        }
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
