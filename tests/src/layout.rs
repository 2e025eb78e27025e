//! OCI image layouts on disk (image-spec `image-layout.md`, digest §11.1): what skopeo copies
//! from and to.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::content::{Blob, Descriptor, Image};
use crate::digest::sha256_digest;

/// A layout folder being written: blobs go to disk at once, `index.json` on `write_index`.
pub struct Layout {
    root: PathBuf,
    entries: Vec<Value>,
}

impl Layout {
    /// Creates `oci-layout` and `blobs/` under `root`.
    pub fn create(root: &Path) -> Layout {
        std::fs::create_dir_all(root.join("blobs/sha256")).expect("create layout blobs dir");
        std::fs::write(
            root.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .expect("write oci-layout");
        Layout {
            root: root.to_path_buf(),
            entries: Vec::new(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes a blob under `blobs/<alg>/<hex>`.
    pub fn add_blob(&self, blob: &Blob) {
        let (alg, hex) = blob
            .digest
            .split_once(':')
            .expect("a blob digest has the form alg:hex");
        let dir = self.root.join("blobs").join(alg);
        std::fs::create_dir_all(&dir).expect("create blobs/<alg>");
        std::fs::write(dir.join(hex), &blob.bytes).expect("write layout blob");
    }

    /// Writes an image's blobs and manifest; lists it in `index.json` (tagged if `tag`).
    pub fn add_image(&mut self, img: &Image, tag: Option<&str>) {
        for b in img.blobs() {
            self.add_blob(b);
        }
        self.add_manifest(&img.manifest, tag);
    }

    /// Writes a multi-platform index and its images (blobs and manifests, listed only
    /// through the index); lists the index in `index.json` (tagged if `tag`).
    pub fn add_index(&mut self, idx: &Blob, images: &[&Image], tag: Option<&str>) {
        for img in images {
            for b in img.blobs() {
                self.add_blob(b);
            }
            self.add_blob(&img.manifest);
        }
        self.add_manifest(idx, tag);
    }

    /// Writes a manifest or index and lists it in `index.json` (tagged if `tag`).
    pub fn add_manifest(&mut self, m: &Blob, tag: Option<&str>) {
        self.add_blob(m);
        let mut d = m.desc();
        if let Some(t) = tag {
            d = d.with(
                "annotations",
                json!({"org.opencontainers.image.ref.name": t}),
            );
        }
        self.entries.push(d.to_json());
    }

    /// Writes `index.json` listing everything added with a tag or entry.
    pub fn write_index(&self) {
        let idx = json!({
            "schemaVersion": 2,
            "mediaType": crate::content::OCI_INDEX,
            "manifests": self.entries,
        });
        std::fs::write(
            self.root.join("index.json"),
            serde_json::to_vec_pretty(&idx).expect("serialise index.json"),
        )
        .expect("write index.json");
    }
}

/// Reads a blob of any layout by digest.
pub fn read_blob(root: &Path, digest: &str) -> Vec<u8> {
    let (alg, hex) = digest.split_once(':').expect("digest has the form alg:hex");
    let p = root.join("blobs").join(alg).join(hex);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The descriptors listed in a layout's `index.json`.
pub fn index_entries(root: &Path) -> Vec<Descriptor> {
    let text = std::fs::read(root.join("index.json")).expect("read index.json");
    let v: Value = serde_json::from_slice(&text).expect("index.json is JSON");
    v["manifests"]
        .as_array()
        .expect("index.json has manifests")
        .iter()
        .map(|d| {
            let mut desc = Descriptor::new(
                d["mediaType"].as_str().unwrap_or_default(),
                d["digest"].as_str().expect("entry digest"),
                d["size"].as_u64().expect("entry size"),
            );
            if let Some(a) = d.get("annotations") {
                desc = desc.with("annotations", a.clone());
            }
            desc
        })
        .collect()
}

/// Checks that every blob in a layout hashes to its file name.
pub fn assert_layout_consistent(root: &Path) {
    let dir = root.join("blobs/sha256");
    for e in std::fs::read_dir(&dir).expect("read layout blobs") {
        let e = e.expect("layout dir entry");
        let bytes = std::fs::read(e.path()).expect("read layout blob");
        let want = format!("sha256:{}", e.file_name().to_string_lossy());
        assert_eq!(
            sha256_digest(&bytes),
            want,
            "layout blob content differs from its name"
        );
    }
}
