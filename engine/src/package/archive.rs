//! The Download: one tar that is at once an OCI image layout and a `docker save` archive.
//!
//! Its layout is computed up front from the manifest, the config and the layers' digests
//! and sizes, so its length is known before the first byte (`Content-Length`, `Range`) and
//! its bytes are the same every time (so its checksums hold): fixed member order, mtime 0,
//! uid/gid 0, modes 0644/0755, ustar headers. Only the small members (headers, `oci-layout`,
//! `index.json`, `manifest.json`) are held in memory; blob members are named by digest and
//! streamed from the store by whoever sends the archive.
//!
//! Members, in order (the readers take them in any order):
//! - directories `blobs/` and `blobs/sha256/`, then `blobs/sha256/<hex>` for the manifest,
//!   the config and each layer, each once, byte-exact;
//! - `oci-layout`, then the two members that name the image: `index.json` (one entry: the
//!   manifest, with `org.opencontainers.image.ref.name` and `io.containerd.image.name` when
//!   there is a tag) and `manifest.json` (the `docker save` view: `Config`, `RepoTags`,
//!   `Layers`).
//!
//! `docker load`, `podman load`, `skopeo copy docker-archive:` and `oci-archive:` load it.

use std::ops::Range;

use serde_json::json;

/// A blob of the archive: `sha256:<hex>` and its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveBlob {
    /// The digest, `sha256:<64 hex>`.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What the archive is made of.
#[derive(Clone, Debug)]
pub struct ArchiveSpec<'a> {
    /// The manifest (an image manifest, not an index: an index downloads per platform).
    pub manifest: ArchiveBlob,
    /// The manifest's media type.
    pub manifest_media_type: &'a str,
    /// The config blob.
    pub config: ArchiveBlob,
    /// The layers, lowest first.
    pub layers: &'a [ArchiveBlob],
    /// `host/org/registry/image`, for the loaded image's name.
    pub repository: &'a str,
    /// The tag, when the version has one.
    pub tag: Option<&'a str>,
}

/// Why an archive cannot be laid out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArchiveError {
    /// `docker load` and the OCI layout name blobs `blobs/<alg>/<hex>`; only sha256 images
    /// load everywhere.
    #[error("the download needs sha256 digests; {0} is not one")]
    NotSha256(String),
}

/// A part of the archive's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Bytes held in the plan (headers, small members, padding).
    Bytes(Vec<u8>),
    /// A blob's bytes, `sha256:<hex>`, whole.
    Blob(ArchiveBlob),
}

impl Part {
    fn len(&self) -> u64 {
        match self {
            Part::Bytes(b) => b.len() as u64,
            Part::Blob(b) => b.size,
        }
    }
}

/// A piece of a byte range of the archive, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece<'p> {
    /// Bytes to send as they are.
    Bytes(&'p [u8]),
    /// `range` of the blob `digest`.
    Blob {
        /// `sha256:<hex>`.
        digest: &'p str,
        /// Offsets within the blob.
        range: Range<u64>,
    },
}

/// The archive's layout: its parts in order and its total length.
#[derive(Clone, Debug)]
pub struct ArchivePlan {
    parts: Vec<(u64, Part)>,
    len: u64,
    /// Where the members that name the image begin; see [`ArchivePlan::shared_len`].
    shared: u64,
}

const BLOCK: u64 = 512;

impl ArchivePlan {
    /// Lays out the archive of `spec`.
    pub fn new(spec: &ArchiveSpec<'_>) -> Result<ArchivePlan, ArchiveError> {
        let hex = |b: &ArchiveBlob| -> Result<String, ArchiveError> {
            b.digest
                .strip_prefix("sha256:")
                .filter(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()))
                .map(str::to_owned)
                .ok_or_else(|| ArchiveError::NotSha256(b.digest.clone()))
        };
        let path = |b: &ArchiveBlob| hex(b).map(|h| format!("blobs/sha256/{h}"));
        let reference = spec.tag.map(|t| format!("{}:{t}", spec.repository));
        let mut annotations = serde_json::Map::new();
        if let (Some(tag), Some(r)) = (spec.tag, &reference) {
            annotations.insert("io.containerd.image.name".into(), json!(r));
            annotations.insert("org.opencontainers.image.ref.name".into(), json!(tag));
        }
        let mut entry = json!({
            "mediaType": spec.manifest_media_type,
            "digest": spec.manifest.digest,
            "size": spec.manifest.size,
        });
        if !annotations.is_empty() {
            entry["annotations"] = serde_json::Value::Object(annotations);
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [entry],
        });
        let layers: Vec<String> = spec.layers.iter().map(path).collect::<Result<_, _>>()?;
        let docker = json!([{
            "Config": path(&spec.config)?,
            "RepoTags": reference.iter().collect::<Vec<_>>(),
            "Layers": layers,
        }]);
        let mut plan = ArchivePlan {
            parts: Vec::new(),
            len: 0,
            shared: 0,
        };
        plan.dir("blobs/");
        plan.dir("blobs/sha256/");
        let mut seen = std::collections::HashSet::new();
        let blobs = [&spec.manifest, &spec.config]
            .into_iter()
            .chain(spec.layers);
        for b in blobs {
            if seen.insert(b.digest.as_str()) {
                plan.blob(&path(b)?, b.clone());
            }
        }
        plan.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec());
        plan.shared = plan.len;
        plan.file("index.json", index.to_string().into_bytes());
        plan.file("manifest.json", docker.to_string().into_bytes());
        // The end: two zero blocks.
        plan.push(Part::Bytes(vec![0; 2 * BLOCK as usize]));
        Ok(plan)
    }

    /// The archive's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// How many of the archive's first bytes are the same whatever the tag it names: the
    /// blobs come first and the members naming the image (`index.json`, `manifest.json`)
    /// last, so the checksums of every tag's archive hash the blobs' bytes once and continue
    /// from a copy of that state.
    pub fn shared_len(&self) -> u64 {
        self.shared
    }

    /// Whether the archive is empty (it never is: it always ends with two blocks).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces that make up `range` of the archive, in order.
    pub fn pieces(&self, range: Range<u64>) -> impl Iterator<Item = Piece<'_>> {
        let end = range.end.min(self.len);
        let start = range.start.min(end);
        // The first part that ends after `start`.
        let first = self.parts.partition_point(|(at, p)| at + p.len() <= start);
        self.parts[first..]
            .iter()
            .take_while(move |(at, _)| *at < end)
            .filter_map(move |(at, part)| {
                let from = start.saturating_sub(*at);
                let to = (end - at).min(part.len());
                (to > from).then(|| match part {
                    Part::Bytes(b) => Piece::Bytes(&b[from as usize..to as usize]),
                    Part::Blob(b) => Piece::Blob {
                        digest: &b.digest,
                        range: from..to,
                    },
                })
            })
    }

    /// The blobs the archive holds, each once, in order.
    pub fn blobs(&self) -> impl Iterator<Item = &ArchiveBlob> {
        self.parts.iter().filter_map(|(_, p)| match p {
            Part::Blob(b) => Some(b),
            Part::Bytes(_) => None,
        })
    }

    fn push(&mut self, p: Part) {
        if p.len() == 0 {
            return;
        }
        let at = self.len;
        self.len += p.len();
        // Adjacent byte parts merge: fewer, larger writes.
        if let (Part::Bytes(new), Some((_, Part::Bytes(last)))) = (&p, self.parts.last_mut()) {
            last.extend_from_slice(new);
            return;
        }
        self.parts.push((at, p));
    }

    fn header(&mut self, name: &str, kind: tar::EntryType, mode: u32, size: u64) {
        let mut h = tar::Header::new_ustar();
        // Names here are at most `blobs/sha256/` + 64 hex: 77 bytes, within ustar's 100.
        h.as_ustar_mut()
            .expect("a ustar header")
            .name
            .iter_mut()
            .zip(name.bytes().chain(std::iter::repeat(0)))
            .for_each(|(d, s)| *d = s);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(size);
        h.set_cksum();
        self.push(Part::Bytes(h.as_bytes().to_vec()));
    }

    fn pad(&mut self, size: u64) {
        let rem = size % BLOCK;
        if rem != 0 {
            self.push(Part::Bytes(vec![0; (BLOCK - rem) as usize]));
        }
    }

    fn file(&mut self, name: &str, body: Vec<u8>) {
        let n = body.len() as u64;
        self.header(name, tar::EntryType::Regular, 0o644, n);
        self.push(Part::Bytes(body));
        self.pad(n);
    }

    fn dir(&mut self, name: &str) {
        self.header(name, tar::EntryType::Directory, 0o755, 0);
    }

    fn blob(&mut self, name: &str, b: ArchiveBlob) {
        let n = b.size;
        self.header(name, tar::EntryType::Regular, 0o644, n);
        self.push(Part::Blob(b));
        self.pad(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;
    use std::io::Read;

    fn blob(data: &[u8]) -> (ArchiveBlob, Vec<u8>) {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(data)));
        (
            ArchiveBlob {
                digest,
                size: data.len() as u64,
            },
            data.to_vec(),
        )
    }

    fn render(plan: &ArchivePlan, range: Range<u64>, store: &HashMap<String, Vec<u8>>) -> Vec<u8> {
        let mut out = Vec::new();
        for p in plan.pieces(range) {
            match p {
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::Blob { digest, range } => {
                    out.extend_from_slice(&store[digest][range.start as usize..range.end as usize])
                }
            }
        }
        out
    }

    #[test]
    fn the_archive_is_a_tar_of_the_layout_and_any_range_is_a_slice_of_it() {
        let (m, mb) = blob(b"{\"schemaVersion\":2}");
        let (c, cb) = blob(b"{\"config\":true}");
        let (l1, l1b) = blob(&[1u8; 1000]);
        let (l2, l2b) = blob(&[2u8; 512]);
        let store: HashMap<String, Vec<u8>> = [
            (m.digest.clone(), mb.clone()),
            (c.digest.clone(), cb.clone()),
            (l1.digest.clone(), l1b.clone()),
            (l2.digest.clone(), l2b.clone()),
        ]
        .into_iter()
        .collect();
        let layers = [l1.clone(), l2.clone(), l1.clone()];
        let spec = ArchiveSpec {
            manifest: m.clone(),
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json",
            config: c.clone(),
            layers: &layers,
            repository: "127.0.0.1:5000/acme/web/app",
            tag: Some("1.0"),
        };
        let plan = ArchivePlan::new(&spec).unwrap();
        let whole = render(&plan, 0..plan.len(), &store);
        assert_eq!(whole.len() as u64, plan.len());
        assert_eq!(whole.len() % 512, 0);
        // Same bytes every time.
        let again = ArchivePlan::new(&spec).unwrap();
        assert_eq!(render(&again, 0..again.len(), &store), whole);
        // Every range is the same slice of the whole.
        for (a, b) in [
            (0, 1),
            (0, 513),
            (700, 2600),
            (1, plan.len()),
            (plan.len() - 3, plan.len()),
        ] {
            assert_eq!(
                render(&plan, a..b, &store),
                &whole[a as usize..b as usize],
                "{a}..{b}"
            );
        }
        assert!(render(&plan, plan.len()..plan.len() + 10, &store).is_empty());
        // A tar reader sees the layout, each blob once and byte-exact.
        let mut ar = tar::Archive::new(&whole[..]);
        let mut members = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            assert_eq!(e.header().mtime().unwrap(), 0);
            members.push((name, body));
        }
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        let hex = |b: &ArchiveBlob| format!("blobs/sha256/{}", &b.digest[7..]);
        assert_eq!(
            names,
            [
                "blobs/",
                "blobs/sha256/",
                &hex(&m),
                &hex(&c),
                &hex(&l1),
                &hex(&l2),
                "oci-layout",
                "index.json",
                "manifest.json",
            ]
        );
        assert_eq!(members[2].1, mb);
        assert_eq!(members[4].1, l1b);
        let index: serde_json::Value = serde_json::from_slice(&members[7].1).unwrap();
        assert_eq!(index["manifests"][0]["digest"], m.digest.as_str());
        assert_eq!(
            index["manifests"][0]["annotations"]["io.containerd.image.name"],
            "127.0.0.1:5000/acme/web/app:1.0"
        );
        let docker: serde_json::Value = serde_json::from_slice(&members[8].1).unwrap();
        assert_eq!(docker[0]["RepoTags"][0], "127.0.0.1:5000/acme/web/app:1.0");
        assert_eq!(docker[0]["Layers"].as_array().unwrap().len(), 3);
        assert_eq!(plan.blobs().count(), 4);
        // Another tag's archive differs only after the shared prefix.
        let other = ArchivePlan::new(&ArchiveSpec {
            tag: Some("2.0"),
            ..spec.clone()
        })
        .unwrap();
        let other_whole = render(&other, 0..other.len(), &store);
        let shared = plan.shared_len() as usize;
        assert_eq!(other.shared_len(), plan.shared_len());
        assert_eq!(other_whole[..shared], whole[..shared]);
        assert_ne!(other_whole[shared..], whole[shared..]);
        assert!(whole[..shared].windows(10).all(|w| w != b"index.json"));
    }

    #[test]
    fn an_untagged_version_loads_without_a_name_and_other_digests_are_refused() {
        let (m, _) = blob(b"m");
        let (c, _) = blob(b"c");
        let spec = ArchiveSpec {
            manifest: m,
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json",
            config: c.clone(),
            layers: &[],
            repository: "h/o/r/i",
            tag: None,
        };
        let plan = ArchivePlan::new(&spec).unwrap();
        let mut out = Vec::new();
        for p in plan.pieces(0..plan.len()) {
            if let Piece::Bytes(b) = p {
                out.extend_from_slice(b);
            }
        }
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains(r#""RepoTags":[]"#), "{text}");
        assert!(!text.contains("ref.name"));
        let bad = ArchiveBlob {
            digest: format!("sha512:{}", "0".repeat(128)),
            size: 1,
        };
        let spec = ArchiveSpec {
            config: bad.clone(),
            ..spec
        };
        assert_eq!(
            ArchivePlan::new(&spec).unwrap_err(),
            ArchiveError::NotSha256(bad.digest)
        );
    }
}
