//! Manifest validation on push (spec digest §6.4 steps 3-4): decide the media type, check
//! the structure leniently, and collect what the store must know. The body is never
//! re-serialised: the caller stores the exact bytes that were sent.

use super::digest::{Digest, DigestError};
use serde::Deserialize;
use serde_json::value::RawValue;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The manifest kinds the registry stores (§6.1). Schema 1 and unknown types are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    OciManifest,
    OciIndex,
    DockerManifest,
    DockerList,
}

impl Kind {
    pub fn media_type(self) -> &'static str {
        match self {
            Kind::OciManifest => OCI_MANIFEST,
            Kind::OciIndex => OCI_INDEX,
            Kind::DockerManifest => DOCKER_MANIFEST,
            Kind::DockerList => DOCKER_LIST,
        }
    }

    fn from_media_type(s: &str) -> Option<Kind> {
        [
            Kind::OciManifest,
            Kind::OciIndex,
            Kind::DockerManifest,
            Kind::DockerList,
        ]
        .into_iter()
        .find(|k| k.media_type().eq_ignore_ascii_case(s))
    }

    fn is_index(self) -> bool {
        matches!(self, Kind::OciIndex | Kind::DockerList)
    }
}

/// What a valid manifest tells the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub kind: Kind,
    /// Config and pushed layers, deduplicated.
    pub blobs: Vec<Digest>,
    /// Layers clients may fetch from elsewhere (`urls`, non-distributable types): not
    /// required in the repository, but referenced when it holds them. Deduplicated.
    pub external: Vec<Digest>,
    /// Index entries, deduplicated.
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    /// `artifactType`, else (image manifests) `config.mediaType` — the referrers value (§7.2).
    pub artifact_type: Option<String>,
    /// Top-level `annotations` as raw JSON text, if an object.
    pub annotations: Option<String>,
}

/// Why a manifest was refused: always 400 MANIFEST_INVALID with this detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub String);

fn invalid(s: impl Into<String>) -> Invalid {
    Invalid(s.into())
}

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<i64>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    #[serde(borrow)]
    annotations: Option<&'a RawValue>,
    #[serde(rename = "fsLayers")]
    fs_layers: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<i64>,
    urls: Option<Vec<String>>,
    /// Read only to be checked: annotations are a map of strings (image-spec
    /// annotations.md); anything else makes the manifest invalid.
    #[allow(dead_code)]
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// Strips parameters and whitespace from a `Content-Type` value.
pub fn base_media_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

/// Content types that say nothing about the manifest kind: the body decides (§6.4 step 3).
fn is_generic(ct: &str) -> bool {
    ct.is_empty()
        || ct.eq_ignore_ascii_case("application/json")
        || ct.eq_ignore_ascii_case("application/octet-stream")
        || ct == "*/*"
}

/// Validates a manifest body pushed with `content_type` (parameters allowed).
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Parsed, Invalid> {
    let doc: Doc<'_> =
        serde_json::from_slice(body).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
    let ct = content_type.map(base_media_type).unwrap_or("");
    let kind = if !is_generic(ct) {
        if let Some(mt) = &doc.media_type {
            if !mt.eq_ignore_ascii_case(ct) {
                return Err(invalid(format!(
                    "mediaType {mt} does not match Content-Type {ct}"
                )));
            }
        }
        Kind::from_media_type(ct)
            .ok_or_else(|| invalid(format!("unsupported manifest media type {ct}")))?
    } else if let Some(mt) = &doc.media_type {
        Kind::from_media_type(mt)
            .ok_or_else(|| invalid(format!("unsupported manifest media type {mt}")))?
    } else if doc.fs_layers.is_some() || doc.schema_version == Some(1) {
        return Err(invalid("schema 1 manifests are not supported"));
    } else if doc.manifests.is_some() {
        Kind::OciIndex
    } else if doc.config.is_some() {
        Kind::OciManifest
    } else {
        return Err(invalid(
            "cannot tell the manifest type: set Content-Type or mediaType",
        ));
    };
    if doc.schema_version != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let mut blobs = Vec::new();
    let mut externals = Vec::new();
    let mut manifests = Vec::new();
    let mut artifact_type = doc.artifact_type.clone();
    if kind.is_index() {
        if doc.config.is_some() || doc.layers.is_some() {
            return Err(invalid("an index has no config or layers"));
        }
        for d in doc.manifests.iter().flatten() {
            manifests.push(
                descriptor_digest(d, "manifests")?
                    .ok_or_else(|| invalid("index entry digest unsupported"))?,
            );
        }
    } else {
        if doc.manifests.is_some() {
            return Err(invalid("an image manifest has no manifests array"));
        }
        let config = doc
            .config
            .as_ref()
            .ok_or_else(|| invalid("config is required"))?;
        blobs.push(
            descriptor_digest(config, "config")?
                .ok_or_else(|| invalid("config digest unsupported"))?,
        );
        if artifact_type.is_none() {
            artifact_type = config.media_type.clone();
        }
        for l in doc.layers.iter().flatten() {
            let external = l.urls.as_ref().is_some_and(|u| !u.is_empty())
                || l.media_type
                    .as_deref()
                    .is_some_and(|m| m.contains("nondistributable") || m.contains("foreign"));
            match descriptor_digest(l, "layers")? {
                Some(d) if !external => blobs.push(d),
                Some(d) => externals.push(d),
                // Only external layers may use an algorithm this registry cannot store.
                None if external => {}
                None => return Err(invalid("layer digest algorithm unsupported")),
            }
        }
    }
    let subject = match &doc.subject {
        Some(s) => descriptor_digest(s, "subject")?,
        None => None,
    };
    dedup(&mut blobs);
    dedup(&mut externals);
    dedup(&mut manifests);
    if let Some(raw) = doc.annotations {
        serde_json::from_str::<Option<std::collections::BTreeMap<String, String>>>(raw.get())
            .map_err(|e| invalid(format!("annotations must map strings to strings: {e}")))?;
    }
    let annotations = doc
        .annotations
        .map(RawValue::get)
        .filter(|a| a.trim_start().starts_with('{'))
        .map(str::to_owned);
    Ok(Parsed {
        kind,
        blobs,
        external: externals,
        manifests,
        subject,
        artifact_type,
        annotations,
    })
}

/// The descriptor's digest: `Ok(None)` if well-formed but of an algorithm we do not store.
fn descriptor_digest(d: &Descriptor, what: &str) -> Result<Option<Digest>, Invalid> {
    if d.size.is_some_and(|s| s < 0) {
        return Err(invalid(format!("{what}: negative size")));
    }
    let s = d
        .digest
        .as_deref()
        .ok_or_else(|| invalid(format!("{what}: digest missing")))?;
    match Digest::parse(s) {
        Ok(dg) => Ok(Some(dg)),
        Err(DigestError::Unsupported) => Ok(None),
        Err(e) => Err(invalid(format!("{what}: {s}: {e}"))),
    }
}

fn dedup(v: &mut Vec<Digest>) {
    let mut seen = std::collections::HashSet::with_capacity(v.len());
    v.retain(|d| seen.insert(d.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    const L: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,{extra}"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{C}","size":2,"newUnspecifiedField":null}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{L}","size":0}}]}}"#
        )
    }

    #[test]
    fn oci_manifest_without_media_type_is_typed_by_content_type() {
        let p = parse(
            image("").as_bytes(),
            Some("application/vnd.oci.image.manifest.v1+json; charset=x"),
        )
        .unwrap();
        assert_eq!(p.kind, Kind::OciManifest);
        assert_eq!(p.blobs.len(), 2);
        assert_eq!(
            p.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn media_type_field_must_match_content_type() {
        let body = image(r#""mediaType":"application/vnd.oci.image.manifest.v1+json","#);
        assert!(parse(body.as_bytes(), Some(DOCKER_MANIFEST)).is_err());
        assert_eq!(
            parse(body.as_bytes(), Some(OCI_MANIFEST)).unwrap().kind,
            Kind::OciManifest
        );
    }

    #[test]
    fn generic_content_type_sniffs_the_body() {
        let body = image(r#""mediaType":"application/vnd.docker.distribution.manifest.v2+json","#);
        assert_eq!(
            parse(body.as_bytes(), None).unwrap().kind,
            Kind::DockerManifest
        );
        assert_eq!(
            parse(body.as_bytes(), Some("application/json"))
                .unwrap()
                .kind,
            Kind::DockerManifest
        );
        assert_eq!(
            parse(image("").as_bytes(), None).unwrap().kind,
            Kind::OciManifest
        );
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{C}","size":3}}]}}"#
        );
        let p = parse(idx.as_bytes(), None).unwrap();
        assert_eq!((p.kind, p.manifests.len()), (Kind::OciIndex, 1));
    }

    #[test]
    fn schema1_unknown_types_and_bad_structure_are_invalid() {
        let rows: Vec<(String, Option<&str>)> = vec![
            (r#"{"schemaVersion":1,"fsLayers":[]}"#.into(), None),
            (
                image(""),
                Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            ),
            (image(""), Some("application/vnd.example.unknown")),
            (
                image("").replace("\"schemaVersion\":2", "\"schemaVersion\":3"),
                Some(OCI_MANIFEST),
            ),
            (image("").replace(C, "sha256:ABC"), Some(OCI_MANIFEST)),
            (
                image("").replace("\"size\":2", "\"size\":-2"),
                Some(OCI_MANIFEST),
            ),
            (
                r#"{"schemaVersion":2,"layers":[]}"#.into(),
                Some(OCI_MANIFEST),
            ),
            ("not json".into(), Some(OCI_MANIFEST)),
            ("{}".into(), None),
        ];
        for (body, ct) in rows {
            assert!(parse(body.as_bytes(), ct).is_err(), "{body} {ct:?}");
        }
    }

    #[test]
    fn annotations_must_map_strings_to_strings() {
        let m = |ann: &str, layer_ann: &str| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/x","digest":"{C}","size":2}},"layers":[{{"mediaType":"application/y","digest":"{L}","size":1{layer_ann}}}]{ann}}}"#
            )
        };
        for (ann, layer_ann) in [
            ("", ""),
            (r#","annotations":{"a":"b"}"#, r#","annotations":{"c":"d"}"#),
            (r#","annotations":null"#, ""),
            (r#","annotations":{}"#, ""),
        ] {
            let body = m(ann, layer_ann);
            assert!(parse(body.as_bytes(), None).is_ok(), "{body}");
        }
        for (ann, layer_ann) in [
            (r#","annotations":{"a":1}"#, ""),
            (r#","annotations":["a"]"#, ""),
            ("", r#","annotations":{"c":{"d":"e"}}"#),
            ("", r#","annotations":"x""#),
        ] {
            let body = m(ann, layer_ann);
            assert!(parse(body.as_bytes(), None).is_err(), "{body}");
        }
    }

    #[test]
    fn subject_artifact_type_and_annotations_are_collected_raw() {
        let body = format!(
            r#"{{"schemaVersion":2,"artifactType":"application/x","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{C}","size":2}},"layers":null,"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{L}","size":1}},"annotations":{{"k": "v"}}}}"#
        );
        let p = parse(body.as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(p.subject.unwrap().to_string(), L);
        assert_eq!(p.artifact_type.as_deref(), Some("application/x"));
        assert_eq!(p.annotations.as_deref(), Some(r#"{"k": "v"}"#));
    }

    #[test]
    fn external_layers_are_not_required_blobs() {
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"a","digest":"{C}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar","digest":"{L}","size":1,"urls":["http://x"]}},{{"mediaType":"b","digest":"blake3:abc","size":1,"urls":["u"]}}]}}"#
        );
        let p = parse(body.as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(p.blobs, vec![Digest::parse(C).unwrap()]);
        // Listed apart, for the store to reference if it holds them; an algorithm it
        // cannot store is neither.
        assert_eq!(p.external, vec![Digest::parse(L).unwrap()]);
    }
}
