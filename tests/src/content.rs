//! OCI content for tests: random blobs, real tar+gzip layers, configs, manifests, indexes,
//! artifacts. Everything is built as exact bytes plus descriptors, because the registry must
//! store and serve manifests byte-for-byte (spec §1.3) and tests compare bytes.

use std::io::Write;

use flate2::write::GzEncoder;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::digest::{sha256_digest, sha512_digest};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// A descriptor (image-spec `descriptor.md`), with room for any extra field.
#[derive(Clone, Debug)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    /// `annotations`, `platform`, `artifactType`, `urls`, `data`, custom fields...
    pub extra: Map<String, Value>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: &str, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size,
            extra: Map::new(),
        }
    }

    /// Adds a field (`platform`, `annotations`, ...).
    pub fn with(mut self, key: &str, value: Value) -> Descriptor {
        self.extra.insert(key.to_string(), value);
        self
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("mediaType".into(), json!(self.media_type));
        m.insert("digest".into(), json!(self.digest));
        m.insert("size".into(), json!(self.size));
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

/// Bytes plus their media type and digest.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub digest: String,
}

impl Blob {
    /// A blob named by its SHA-256.
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        let digest = sha256_digest(&bytes);
        Blob {
            media_type: media_type.to_string(),
            bytes,
            digest,
        }
    }

    /// A blob named by its SHA-512.
    pub fn new_sha512(media_type: &str, bytes: Vec<u8>) -> Blob {
        let digest = sha512_digest(&bytes);
        Blob {
            media_type: media_type.to_string(),
            bytes,
            digest,
        }
    }

    /// A JSON document serialised once, so the bytes (and digest) are fixed from here on.
    pub fn json(media_type: &str, v: &Value) -> Blob {
        Blob::new(
            media_type,
            serde_json::to_vec(v).expect("serialise JSON value"),
        )
    }

    pub fn desc(&self) -> Descriptor {
        Descriptor::new(&self.media_type, &self.digest, self.bytes.len() as u64)
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// `len` random bytes (incompressible, so sizes on the wire are what the test asked for).
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(rand::random());
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// A random lower-case tag-safe word.
pub fn random_word(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    random_bytes(len)
        .into_iter()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect()
}

/// A real layer: a tar of `files`, gzip-compressed. Returns the blob and its DiffID
/// (the digest of the uncompressed tar), which the config must list.
pub fn tar_gz_layer(files: &[(&str, Vec<u8>)]) -> (Blob, String) {
    gzip_layer(tar_bytes(files))
}

/// `tar` gzip-compressed as a layer blob, and its DiffID.
fn gzip_layer(tar: Vec<u8>) -> (Blob, String) {
    let diff_id = sha256_digest(&tar);
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gzip into a Vec");
    let gz = gz.finish().expect("finish gzip into a Vec");
    (Blob::new(OCI_LAYER_GZIP, gz), diff_id)
}

/// One entry of a hand-built layer.
pub enum TarEntry {
    Dir,
    /// Bytes and mode.
    File(Vec<u8>, u32),
    /// The link's target.
    Symlink(String),
}

/// A gzip layer of `entries` (path, entry), in that order, owned by `uid:gid`, and its
/// DiffID: for images whose files, modes, links and owners a test chooses.
pub fn gzip_tar(entries: &[(String, TarEntry)], uid: u64, gid: u64) -> (Blob, String) {
    let mut b = tar::Builder::new(Vec::new());
    for (path, e) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(uid);
        h.set_gid(gid);
        match e {
            TarEntry::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, std::io::empty())
                    .expect("append a directory to an in-memory tar");
            }
            TarEntry::File(data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, data.as_slice())
                    .expect("append a file to an in-memory tar");
            }
            TarEntry::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target)
                    .expect("append a link to an in-memory tar");
            }
        }
    }
    gzip_layer(b.into_inner().expect("finish an in-memory tar"))
}

/// A tar archive of regular files (with their parent directories) as bytes.
pub fn tar_bytes(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for (path, _) in files {
        let mut acc = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for p in &parts[..parts.len() - 1] {
            acc.push_str(p);
            acc.push('/');
            dirs.insert(acc.clone());
        }
    }
    for d in dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, &d, std::io::empty())
            .expect("append dir to in-memory tar");
    }
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, data.as_slice())
            .expect("append file to in-memory tar");
    }
    b.into_inner().expect("finish in-memory tar")
}

/// An image: config, layers, and the manifest naming them.
#[derive(Clone, Debug)]
pub struct Image {
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub manifest: Blob,
    pub architecture: String,
}

impl Image {
    /// An amd64/linux image of `layers` real layers, each holding one random file of
    /// about `layer_size` bytes (plus an `/etc/os-release` in the first).
    pub fn random(layers: usize, layer_size: usize) -> Image {
        Image::random_for("amd64", layers, layer_size)
    }

    /// The same for another architecture (for multi-arch indexes).
    pub fn random_for(arch: &str, layers: usize, layer_size: usize) -> Image {
        let mut blobs = Vec::new();
        let mut diff_ids = Vec::new();
        for i in 0..layers {
            let mut files = vec![(
                format!("data/layer{i}-{}.bin", random_word(6)),
                random_bytes(layer_size),
            )];
            if i == 0 {
                files.push((
                    "etc/os-release".to_string(),
                    b"ID=berthtest\nNAME=\"Berth Test\"\nVERSION_ID=1\n".to_vec(),
                ));
            }
            let refs: Vec<(&str, Vec<u8>)> =
                files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
            let (blob, diff_id) = tar_gz_layer(&refs);
            blobs.push(blob);
            diff_ids.push(diff_id);
        }
        let config = Blob::json(
            OCI_CONFIG,
            &json!({
                "created": "2026-01-01T00:00:00Z",
                "author": format!("berth-e2e-{}", random_word(8)),
                "architecture": arch,
                "os": "linux",
                "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/bin/sh"],
                           "Labels": {"org.opencontainers.image.title": "berth e2e"}},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "berth e2e"}],
            }),
        );
        let manifest = manifest(
            &config.desc(),
            &blobs.iter().map(Blob::desc).collect::<Vec<_>>(),
            Map::new(),
        );
        Image {
            config,
            layers: blobs,
            manifest,
            architecture: arch.to_string(),
        }
    }

    /// Config and layers, in push order.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(self.layers.iter())
    }

    /// The manifest's descriptor as an index entry, with its platform.
    pub fn index_entry(&self) -> Descriptor {
        self.manifest.desc().with(
            "platform",
            json!({"architecture": self.architecture, "os": "linux"}),
        )
    }

    /// Total bytes of config and layers.
    pub fn blob_bytes(&self) -> usize {
        self.blobs().map(Blob::len).sum()
    }
}

/// An OCI image manifest with `mediaType` set and any `extra` top-level fields.
pub fn manifest(config: &Descriptor, layers: &[Descriptor], extra: Map<String, Value>) -> Blob {
    let mut m = Map::new();
    m.insert("schemaVersion".into(), json!(2));
    m.insert("mediaType".into(), json!(OCI_MANIFEST));
    m.insert("config".into(), config.to_json());
    m.insert(
        "layers".into(),
        Value::Array(layers.iter().map(Descriptor::to_json).collect()),
    );
    for (k, v) in extra {
        m.insert(k, v);
    }
    Blob::json(OCI_MANIFEST, &Value::Object(m))
}

/// An OCI image index over `manifests`, with any `extra` top-level fields.
pub fn index(manifests: &[Descriptor], extra: Map<String, Value>) -> Blob {
    let mut m = Map::new();
    m.insert("schemaVersion".into(), json!(2));
    m.insert("mediaType".into(), json!(OCI_INDEX));
    m.insert(
        "manifests".into(),
        Value::Array(manifests.iter().map(Descriptor::to_json).collect()),
    );
    for (k, v) in extra {
        m.insert(k, v);
    }
    Blob::json(OCI_INDEX, &Value::Object(m))
}

/// The empty JSON blob `{}` (image-spec §6.3).
pub fn empty_json() -> Blob {
    Blob::new(OCI_EMPTY, b"{}".to_vec())
}

/// An artifact manifest (empty config, `artifactType`, one small layer) that refers to
/// `subject`, with one annotation so referrers listings can be checked exactly.
/// Returns the manifest and its layer blob; the empty config blob is `empty_json()`.
pub fn artifact(
    artifact_type: &str,
    subject: &Descriptor,
    annotation: (&str, &str),
) -> (Blob, Blob) {
    let layer = Blob::new("application/vnd.berth.test.payload", random_bytes(64));
    let mut extra = Map::new();
    extra.insert("artifactType".into(), json!(artifact_type));
    extra.insert("subject".into(), subject.to_json());
    extra.insert("annotations".into(), json!({annotation.0: annotation.1}));
    let m = manifest(&empty_json().desc(), &[layer.desc()], extra);
    (m, layer)
}

/// Builds a `Map` from `(key, value)` pairs, for `extra` arguments.
pub fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
