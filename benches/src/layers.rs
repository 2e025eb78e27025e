//! Image layers for the package benches: real gzip tars (the `tar` and `flate2` crates, as
//! any image builder writes them) holding as many files and directories as a figure needs,
//! so the indexer does the work it does on real images; and the config and manifest that
//! make them an image.

use std::io::{self, Write};

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::payload::{fill_random, sha256_digest};
use crate::registry::{self, Extra, OpError, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST};

/// What the files hold.
#[derive(Clone, Copy, Debug)]
pub enum Content {
    /// Bytes from a 16-letter alphabet: gzip halves them with real Huffman work, about as
    /// a layer of binaries and libraries compresses.
    Text,
    /// Incompressible bytes.
    Random,
}

/// A tree of `dirs` directories under `root`, `files_per_dir` files each.
#[derive(Clone, Debug)]
pub struct TreeSpec {
    pub root: String,
    pub dirs: usize,
    pub files_per_dir: usize,
    /// File sizes are spread evenly over `min_file..=max_file`.
    pub min_file: usize,
    pub max_file: usize,
    pub content: Content,
    /// gzip level, 0 (stored) to 9.
    pub level: u32,
    /// Makes the files of one layer differ from another's.
    pub seed: u64,
    /// Stop adding files once this many compressed bytes are written.
    pub stop_at: Option<u64>,
}

/// What a tree came to.
#[derive(Clone, Copy, Debug, Default)]
pub struct Written {
    /// Directories and files in the tar.
    pub entries: u64,
    /// Bytes of tar (uncompressed).
    pub tar_bytes: u64,
    pub gz_bytes: u64,
}

/// Counts what passes through to the inner writer.
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(b)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_767_225_600);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Writes the tree as a gzip tar to `out`, returning `out` and what was written.
pub fn write_tree<W: Write>(spec: &TreeSpec, out: W) -> io::Result<(W, Written)> {
    let gz = GzEncoder::new(Counting { inner: out, n: 0 }, Compression::new(spec.level));
    let mut b = tar::Builder::new(Counting { inner: gz, n: 0 });
    let mut w = Written::default();
    // The root's parents first, as tar does.
    let mut parent = String::new();
    for part in spec.root.split('/').filter(|p| !p.is_empty()) {
        parent.push_str(part);
        parent.push('/');
        b.append_data(
            &mut header(tar::EntryType::Directory, 0, 0o755),
            &parent,
            io::empty(),
        )?;
        w.entries += 1;
    }
    let mut buf = vec![0u8; spec.max_file];
    let span = spec.max_file.saturating_sub(spec.min_file) + 1;
    let mut n = 0u64;
    'dirs: for d in 0..spec.dirs {
        let dir = format!("{parent}d{d:04}/");
        b.append_data(
            &mut header(tar::EntryType::Directory, 0, 0o755),
            &dir,
            io::empty(),
        )?;
        w.entries += 1;
        for f in 0..spec.files_per_dir {
            if let Some(limit) = spec.stop_at {
                if b.get_ref().inner.get_ref().n >= limit {
                    break 'dirs;
                }
            }
            n += 1;
            let seed = spec.seed.wrapping_mul(0x1000_0000_01b3) ^ n;
            let size =
                spec.min_file + (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize % span;
            let body = &mut buf[..size];
            fill_random(body, seed);
            if let Content::Text = spec.content {
                for c in body.iter_mut() {
                    *c = b"abcdefghijklmnop"[usize::from(*c & 15)];
                }
            }
            let path = format!("{dir}f{f:04}.so");
            b.append_data(
                &mut header(tar::EntryType::Regular, size as u64, 0o644),
                &path,
                &body[..],
            )?;
            w.entries += 1;
        }
    }
    let tar = b.into_inner()?;
    w.tar_bytes = tar.n;
    let counting = tar.inner.finish()?;
    w.gz_bytes = counting.n;
    Ok((counting.inner, w))
}

/// A layer held in memory.
pub struct Layer {
    pub bytes: Vec<u8>,
    pub digest: String,
    pub written: Written,
}

impl Layer {
    pub fn tree(spec: &TreeSpec) -> Layer {
        let (bytes, written) = write_tree(spec, Vec::new()).expect("writing to memory");
        Layer::of(bytes, written)
    }

    /// A gzip tar of these files (their parent directories are not entries).
    pub fn files(files: &[(&str, &[u8])]) -> Layer {
        let gz = GzEncoder::new(Vec::new(), Compression::default());
        let mut b = tar::Builder::new(Counting { inner: gz, n: 0 });
        for (path, body) in files {
            let mut h = header(tar::EntryType::Regular, body.len() as u64, 0o755);
            b.append_data(&mut h, path, *body)
                .expect("writing to memory");
        }
        let tar = b.into_inner().expect("writing to memory");
        let tar_bytes = tar.n;
        let bytes = tar.inner.finish().expect("writing to memory");
        let written = Written {
            entries: files.len() as u64,
            tar_bytes,
            gz_bytes: bytes.len() as u64,
        };
        Layer::of(bytes, written)
    }

    fn of(bytes: Vec<u8>, written: Written) -> Layer {
        Layer {
            digest: sha256_digest(&bytes),
            bytes,
            written,
        }
    }
}

/// The config and manifest of an image of some layers, each named by digest and size.
pub struct ImageMeta {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl ImageMeta {
    pub fn new(title: &str, layers: &[(&str, u64)]) -> ImageMeta {
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": { "Labels": { "org.opencontainers.image.title": title } },
            // The bench does not hash what the layers unpack to; the indexer never reads these.
            "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|(d, _)| *d).collect::<Vec<_>>() },
        })
        .to_string()
        .into_bytes();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": sha256_digest(&config), "size": config.len() },
            "layers": layers.iter().map(|(d, s)| serde_json::json!({
                "mediaType": OCI_LAYER, "digest": d, "size": s,
            })).collect::<Vec<_>>(),
        })
        .to_string()
        .into_bytes();
        ImageMeta { config, manifest }
    }

    /// Pushes the config, then the manifest under `tag` (the layers must be pushed first).
    pub fn push(
        &self,
        c: &mut crate::client::HttpConn,
        extra: &Extra,
        repo: &str,
        tag: &str,
    ) -> Result<(), OpError> {
        registry::push_blob(
            c,
            extra,
            repo,
            &sha256_digest(&self.config),
            &[&self.config],
        )?;
        registry::put_manifest(c, extra, repo, tag, OCI_MANIFEST, &self.manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn listing(gz: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        let mut a = tar::Archive::new(flate2::read::GzDecoder::new(gz));
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            assert_eq!(body.len() as u64, e.header().size().unwrap());
            names.push(e.path().unwrap().to_string_lossy().into_owned());
        }
        names
    }

    #[test]
    fn a_tree_is_a_gzip_tar_of_its_directories_and_files() {
        let spec = TreeSpec {
            root: "usr/lib".into(),
            dirs: 3,
            files_per_dir: 4,
            min_file: 10,
            max_file: 100,
            content: Content::Text,
            level: 6,
            seed: 1,
            stop_at: None,
        };
        let l = Layer::tree(&spec);
        let names = listing(&l.bytes);
        assert_eq!(names.len(), 2 + 3 + 12);
        assert_eq!(l.written.entries, 17);
        assert_eq!(names[..3], ["usr/", "usr/lib/", "usr/lib/d0000/"]);
        assert_eq!(names[3], "usr/lib/d0000/f0000.so");
        assert_eq!(l.written.gz_bytes, l.bytes.len() as u64);
        assert_ne!(Layer::tree(&TreeSpec { seed: 2, ..spec }).digest, l.digest);
    }

    #[test]
    fn a_tree_stops_near_its_compressed_size() {
        let spec = TreeSpec {
            root: "big".into(),
            dirs: 1000,
            files_per_dir: 100,
            min_file: 1000,
            max_file: 4000,
            content: Content::Random,
            level: 0,
            seed: 1,
            stop_at: Some(200_000),
        };
        let l = Layer::tree(&spec);
        assert!(
            (200_000..300_000).contains(&l.bytes.len()),
            "{}",
            l.bytes.len()
        );
        assert_eq!(listing(&l.bytes).len() as u64, l.written.entries);
    }

    #[test]
    fn the_manifest_names_config_and_layers() {
        let a = Layer::files(&[("usr/lib/libssl.so.3", b"ssl")]);
        let m = ImageMeta::new("t", &[(&a.digest, a.bytes.len() as u64)]);
        let v: serde_json::Value = serde_json::from_slice(&m.manifest).unwrap();
        assert_eq!(v["config"]["digest"], sha256_digest(&m.config));
        assert_eq!(v["layers"][0]["digest"], a.digest.as_str());
        assert_eq!(listing(&a.bytes), ["usr/lib/libssl.so.3"]);
    }
}
