//! What a version's manifest and config say about it: the Details and About sections of its
//! page, before any layer is read.
//!
//! A well-known field is read from the manifest's annotations first, then the config's
//! labels (builders set one or the other: `docker buildx --annotation` the first, a
//! Dockerfile `LABEL` the second). Everything is optional: an artifact (a Helm chart, an
//! SBOM, a signature) has no image config, an old Docker image no annotations. A document
//! that is not JSON yields no facts rather than an error: the store already accepted it.

use std::collections::BTreeMap;

use serde_json::Value;

/// The OCI annotation keys shown as their own fields (image-spec, "Pre-Defined Annotation
/// Keys"); the rest are listed as they are.
pub mod key {
    /// Human-readable description.
    pub const DESCRIPTION: &str = "org.opencontainers.image.description";
    /// Homepage.
    pub const URL: &str = "org.opencontainers.image.url";
    /// Source code.
    pub const SOURCE: &str = "org.opencontainers.image.source";
    /// SPDX licence expression.
    pub const LICENSES: &str = "org.opencontainers.image.licenses";
    /// Version of the packaged software.
    pub const VERSION: &str = "org.opencontainers.image.version";
    /// Title.
    pub const TITLE: &str = "org.opencontainers.image.title";
    /// Base image's reference.
    pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
    /// Base image's manifest digest.
    pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
    /// Creation date (RFC 3339).
    pub const CREATED: &str = "org.opencontainers.image.created";
}

/// Image manifest media types (OCI, Docker v2).
pub const IMAGE_MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
/// Index media types (OCI, Docker manifest list).
pub const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
/// Image config media types (OCI, Docker).
pub const IMAGE_CONFIG_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// A blob a manifest names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// Its media type.
    pub media_type: String,
    /// `alg:hex`.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// The registry need not hold it: it has `urls`, or a non-distributable media type.
    pub external: bool,
    /// For an index entry: the platform it is for.
    pub platform: Option<Platform>,
    /// Its own annotations.
    pub annotations: BTreeMap<String, String>,
}

/// `os/architecture[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Platform {
    /// `linux`, `windows`, `unknown`, ...
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `v7`, `v8`, ...
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Platform> {
        let mut it = s.split('/');
        let os = it.next().filter(|s| !s.is_empty())?;
        let architecture = it.next().filter(|s| !s.is_empty())?;
        let variant = it.next().filter(|s| !s.is_empty()).map(str::to_owned);
        if it.next().is_some() {
            return None;
        }
        Some(Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant,
        })
    }

    /// An attestation or other non-runnable entry of an index (buildkit writes
    /// `unknown/unknown`).
    pub fn is_unknown(&self) -> bool {
        self.os == "unknown" || self.architecture == "unknown"
    }
}

/// What kind of thing a manifest describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An image: a runnable config and file-system layers.
    Image,
    /// An index of manifests (a multi-platform image, usually).
    Index,
    /// Anything else: an artifact (its `artifactType` or config media type says which).
    Artifact,
}

/// The facts of one manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestFacts {
    /// Its media type (the field, else the one it was pushed with).
    pub media_type: String,
    /// `artifactType`, else a config media type that is not an image config.
    pub artifact_type: Option<String>,
    /// The config descriptor (images and artifacts).
    pub config: Option<Descriptor>,
    /// Layers (images and artifacts), lowest first.
    pub layers: Vec<Descriptor>,
    /// An index's entries.
    pub manifests: Vec<Descriptor>,
    /// `subject`: the manifest this one refers to (signatures, SBOMs).
    pub subject: Option<String>,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
}

impl ManifestFacts {
    /// Reads a manifest pushed with `media_type`.
    pub fn parse(bytes: &[u8], media_type: &str) -> ManifestFacts {
        let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        let media_type = v
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or(media_type)
            .to_owned();
        let config = v.get("config").and_then(descriptor);
        let artifact_type = v
            .get("artifactType")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                config.as_ref().map(|c| c.media_type.clone()).filter(|t| {
                    !IMAGE_CONFIG_TYPES.contains(&t.as_str())
                        && t != "application/vnd.oci.empty.v1+json"
                })
            });
        let list = |k: &str| -> Vec<Descriptor> {
            v.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(descriptor).collect())
                .unwrap_or_default()
        };
        ManifestFacts {
            artifact_type,
            config,
            layers: list("layers"),
            manifests: list("manifests"),
            subject: v
                .get("subject")
                .and_then(|s| s.get("digest"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            annotations: strings(v.get("annotations")),
            media_type,
        }
    }

    /// Image, index or artifact.
    pub fn kind(&self) -> Kind {
        if INDEX_TYPES.contains(&self.media_type.as_str()) || !self.manifests.is_empty() {
            Kind::Index
        } else if self.artifact_type.is_none()
            && self
                .config
                .as_ref()
                .is_some_and(|c| IMAGE_CONFIG_TYPES.contains(&c.media_type.as_str()))
        {
            Kind::Image
        } else {
            Kind::Artifact
        }
    }

    /// The blobs this manifest names (config, then layers), each once.
    pub fn blobs(&self) -> Vec<&Descriptor> {
        let mut seen = std::collections::HashSet::new();
        self.config
            .iter()
            .chain(&self.layers)
            .filter(|d| seen.insert(d.digest.as_str()))
            .collect()
    }
}

/// What an image config says (`config.Labels`, platform, creation, the command).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigFacts {
    /// `os/architecture[/variant]`, when the config names them.
    pub platform: Option<Platform>,
    /// `created`.
    pub created: Option<String>,
    /// `config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// `config.Entrypoint` then `config.Cmd`, as one command line.
    pub command: Vec<String>,
    /// `config.Env`.
    pub env: Vec<String>,
    /// `config.ExposedPorts` keys.
    pub ports: Vec<String>,
    /// `config.User`.
    pub user: Option<String>,
    /// `config.WorkingDir`.
    pub workdir: Option<String>,
    /// `rootfs.diff_ids`: the uncompressed digests of the layers.
    pub diff_ids: Vec<String>,
    /// `history[].created_by` of the entries that made a layer (not `empty_layer`).
    pub layer_history: Vec<String>,
}

impl ConfigFacts {
    /// Reads an image config.
    pub fn parse(bytes: &[u8]) -> ConfigFacts {
        let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let c = v.get("config").or_else(|| v.get("container_config"));
        let words = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let platform = match (s(v.get("os")), s(v.get("architecture"))) {
            (Some(os), Some(architecture)) if !os.is_empty() && !architecture.is_empty() => {
                Some(Platform {
                    os,
                    architecture,
                    variant: s(v.get("variant")).filter(|x| !x.is_empty()),
                })
            }
            _ => None,
        };
        let mut command = words(c.and_then(|c| c.get("Entrypoint")));
        command.extend(words(c.and_then(|c| c.get("Cmd"))));
        let layer_history = v
            .get("history")
            .and_then(Value::as_array)
            .map(|h| {
                h.iter()
                    .filter(|e| {
                        !e.get("empty_layer")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    })
                    .map(|e| s(e.get("created_by")).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        ConfigFacts {
            platform,
            created: s(v.get("created")),
            labels: strings(c.and_then(|c| c.get("Labels"))),
            command,
            env: words(c.and_then(|c| c.get("Env"))),
            ports: c
                .and_then(|c| c.get("ExposedPorts"))
                .and_then(Value::as_object)
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default(),
            user: s(c.and_then(|c| c.get("User"))).filter(|x| !x.is_empty()),
            workdir: s(c.and_then(|c| c.get("WorkingDir"))).filter(|x| !x.is_empty()),
            diff_ids: words(v.get("rootfs").and_then(|r| r.get("diff_ids"))),
            layer_history,
        }
    }
}

/// A well-known field: the manifest's annotation, else the config's label.
pub fn field<'a>(
    key: &str,
    annotations: &'a BTreeMap<String, String>,
    labels: &'a BTreeMap<String, String>,
) -> Option<&'a str> {
    annotations
        .get(key)
        .or_else(|| labels.get(key))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn descriptor(v: &Value) -> Option<Descriptor> {
    let media_type = v.get("mediaType")?.as_str()?.to_owned();
    let digest = v.get("digest")?.as_str()?.to_owned();
    let size = v.get("size")?.as_u64()?;
    let has_urls = v
        .get("urls")
        .and_then(Value::as_array)
        .is_some_and(|u| !u.is_empty());
    let external =
        has_urls || media_type.contains(".nondistributable.") || media_type.contains(".foreign.");
    let platform = v.get("platform").and_then(|p| {
        Some(Platform {
            os: p.get("os")?.as_str()?.to_owned(),
            architecture: p.get("architecture")?.as_str()?.to_owned(),
            variant: p
                .get("variant")
                .and_then(Value::as_str)
                .filter(|x| !x.is_empty())
                .map(str::to_owned),
        })
    });
    Some(Descriptor {
        media_type,
        digest,
        size,
        external,
        platform,
        annotations: strings(v.get("annotations")),
    })
}

/// A JSON object of strings; other values are left out.
fn strings(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c","size":10},
        "layers":[
          {"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:l1","size":100},
          {"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"sha256:l2","size":7,"urls":["https://x"]},
          {"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:l1","size":100}],
        "annotations":{"org.opencontainers.image.description":"from the manifest","n":1}}"#;

    const C: &str = r#"{"architecture":"arm64","os":"linux","variant":"v8","created":"2026-01-02T03:04:05Z",
        "config":{"Labels":{"org.opencontainers.image.description":"from a label","org.opencontainers.image.licenses":"MIT"},
          "Entrypoint":["/bin/app"],"Cmd":["--serve"],"Env":["PATH=/bin"],"ExposedPorts":{"8080/tcp":{}},"User":"1000","WorkingDir":""},
        "rootfs":{"type":"layers","diff_ids":["sha256:d1","sha256:d2"]},
        "history":[{"created_by":"ADD rootfs"},{"created_by":"ENV x","empty_layer":true},{"created_by":"RUN make"}]}"#;

    #[test]
    fn an_image_reads_its_fields_from_annotations_then_labels() {
        let m = ManifestFacts::parse(M.as_bytes(), "application/json");
        assert_eq!(m.kind(), Kind::Image);
        assert_eq!(m.layers.len(), 3);
        assert!(m.layers[1].external && !m.layers[0].external);
        assert_eq!(m.blobs().len(), 3, "config, l1 and l2, each once");
        assert_eq!(m.annotations.len(), 1, "non-string values are left out");
        let c = ConfigFacts::parse(C.as_bytes());
        assert_eq!(c.platform.as_ref().unwrap().to_string(), "linux/arm64/v8");
        assert_eq!(c.command, ["/bin/app", "--serve"]);
        assert_eq!(c.ports, ["8080/tcp"]);
        assert_eq!(c.user.as_deref(), Some("1000"));
        assert_eq!(c.workdir, None);
        assert_eq!(c.layer_history, ["ADD rootfs", "RUN make"]);
        assert_eq!(
            field(key::DESCRIPTION, &m.annotations, &c.labels),
            Some("from the manifest")
        );
        assert_eq!(field(key::LICENSES, &m.annotations, &c.labels), Some("MIT"));
        assert_eq!(field(key::URL, &m.annotations, &c.labels), None);
    }

    #[test]
    fn indexes_artifacts_and_garbage_are_told_apart() {
        let idx = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:a","size":1,"platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:b","size":1,"platform":{"os":"unknown","architecture":"unknown"},
             "annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]}"#;
        let i = ManifestFacts::parse(idx.as_bytes(), "");
        assert_eq!(i.kind(), Kind::Index);
        assert!(i.manifests[1].platform.as_ref().unwrap().is_unknown());
        let helm = r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"sha256:c","size":1},
            "layers":[{"mediaType":"application/vnd.cncf.helm.chart.content.v1.tar+gzip","digest":"sha256:l","size":1}]}"#;
        let h = ManifestFacts::parse(
            helm.as_bytes(),
            "application/vnd.oci.image.manifest.v1+json",
        );
        assert_eq!(h.kind(), Kind::Artifact);
        assert_eq!(
            h.artifact_type.as_deref(),
            Some("application/vnd.cncf.helm.config.v1+json")
        );
        let sbom = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/spdx+json",
            "config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:e","size":2},"layers":[],
            "subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:s","size":1}}"#;
        let s = ManifestFacts::parse(sbom.as_bytes(), "");
        assert_eq!(s.kind(), Kind::Artifact);
        assert_eq!(s.subject.as_deref(), Some("sha256:s"));
        let junk = ManifestFacts::parse(b"\xff not json", "application/octet-stream");
        assert_eq!(junk.kind(), Kind::Artifact);
        assert!(junk.layers.is_empty());
        assert_eq!(ConfigFacts::parse(b"[]"), ConfigFacts::default());
    }

    #[test]
    fn platforms_parse_and_print_alike() {
        for s in ["linux/amd64", "linux/arm/v7"] {
            assert_eq!(Platform::parse(s).unwrap().to_string(), s);
        }
        for s in ["", "linux", "linux/", "/amd64", "a/b/c/d"] {
            assert!(Platform::parse(s).is_none(), "{s}");
        }
    }
}
