//! One layer blob, listed: the tar's entries in order, compactly, with whiteouts told apart.
//!
//! The blob is sniffed, not trusted to its media type (some pushers label gzip as plain
//! tar): gzip starts `1f 8b`, zstd `28 b5 2f fd`, anything else is read as a plain tar. Only
//! headers are kept; file contents are skipped through the decompressor, except for the few
//! small files the caller asks to capture (`os-release`).
//!
//! What cannot be read is marked, not fatal: a corrupt stream ends the listing with
//! `error` set and the entries before it kept; an entry whose path escapes the root, holds a
//! NUL or runs past `max_path_bytes` is left out and counted in `skipped`; past
//! `max_entries` or `max_uncompressed_bytes` (a tar bomb) the listing stops, `truncated`.

use std::io::{self, BufReader, Read};

/// How a layer's bytes are compressed, as sniffed from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// zstd (RFC 8878).
    Zstd,
}

impl Compression {
    /// The compression of a blob starting with `head` (its first 4 bytes suffice).
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// What a tar entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (also GNU sparse and contiguous files).
    File,
    /// A directory.
    Dir,
    /// A symbolic link; `link` holds its target as written.
    Symlink,
    /// A hard link; `link` holds the path (normalised) of the file it shares.
    HardLink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// An entry type with no meaning in an image file system.
    Other,
}

/// What an entry is, wherever it is shown (a layer's listing, the merged file system).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// The entry's type.
    pub kind: EntryKind,
    /// Content bytes (0 for anything but files).
    pub size: u64,
    /// Permission bits and set-id/sticky bits (`0o7777`).
    pub mode: u32,
    /// Owner id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// A link's target (symlinks as written, hard links normalised).
    pub link: Option<Box<[u8]>>,
}

/// One entry of a layer's tar, as the file system will show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerEntry {
    /// Normalised: relative, `/`-separated, no `.` or `..` components, no trailing `/`,
    /// never empty, never holding NUL. Bytes: tar names need not be UTF-8.
    pub path: Box<[u8]>,
    /// What it is.
    pub meta: EntryMeta,
}

/// One step of a layer applied over the layers below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerChange {
    /// An entry added or replacing the same path below.
    Entry(LayerEntry),
    /// `DIR/.wh.NAME`: `DIR/NAME` (and everything under it) removed from the layers below.
    Whiteout(Box<[u8]>),
    /// `DIR/.wh..wh..opq`: everything under `DIR` from the layers below hidden. The root
    /// directory is the empty path.
    Opaque(Box<[u8]>),
}

/// Bounds on what one layer may cost to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanLimits {
    /// Entries listed before the listing stops (`truncated`). A million covers the largest
    /// real images (a full distribution is ~100k files) with room to spare.
    pub max_entries: u64,
    /// Longest path kept (PATH_MAX); longer entries are skipped.
    pub max_path_bytes: usize,
    /// Uncompressed bytes read before the listing stops (`truncated`): what a tar bomb may
    /// cost in decompression time.
    pub max_uncompressed_bytes: u64,
    /// Largest file captured whole.
    pub max_capture_bytes: u64,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits {
            max_entries: 1 << 20,
            max_path_bytes: 4096,
            max_uncompressed_bytes: 64 << 30,
            max_capture_bytes: 64 << 10,
        }
    }
}

/// A layer's listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerListing {
    /// The entries and whiteouts, in tar order.
    pub changes: Vec<LayerChange>,
    /// Contents of the requested files this layer holds (normalised path, bytes).
    pub captured: Vec<(Box<[u8]>, Vec<u8>)>,
    /// Entries left out: a path that escapes the root, holds NUL or is too long.
    pub skipped: u64,
    /// The listing stopped at a limit (entries or uncompressed bytes).
    pub truncated: bool,
    /// The stream could not be read past this point (corrupt compression or tar); the
    /// entries before it are kept.
    pub error: Option<String>,
    /// Uncompressed bytes read.
    pub uncompressed_bytes: u64,
}

impl LayerListing {
    /// Entries (not whiteouts) listed.
    pub fn entries(&self) -> impl Iterator<Item = &LayerEntry> {
        self.changes.iter().filter_map(|c| match c {
            LayerChange::Entry(e) => Some(e),
            _ => None,
        })
    }

    /// Whether everything in the layer was listed.
    pub fn complete(&self) -> bool {
        !self.truncated && self.error.is_none()
    }
}

/// Lists the layer blob read from `blob`, capturing the files at `capture` (normalised
/// paths). Never fails: what could not be read is marked in the listing.
pub fn scan_layer(blob: impl Read, capture: &[&[u8]], limits: &ScanLimits) -> LayerListing {
    let mut blob = BufReader::with_capacity(256 << 10, blob);
    let mut listing = LayerListing::default();
    let compression = match io::BufRead::fill_buf(&mut blob) {
        Ok(head) => Compression::sniff(head),
        Err(e) => {
            listing.error = Some(format!("reading the layer: {e}"));
            return listing;
        }
    };
    let budget = limits.max_uncompressed_bytes;
    let result = match compression {
        Compression::None => list(Counted::new(blob, budget), capture, limits, &mut listing),
        Compression::Gzip => list(
            Counted::new(flate2::bufread::MultiGzDecoder::new(blob), budget),
            capture,
            limits,
            &mut listing,
        ),
        Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(blob) {
            Ok(d) => list(Counted::new(d, budget), capture, limits, &mut listing),
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        if e.kind() == io::ErrorKind::FileTooLarge {
            listing.truncated = true;
        } else {
            listing.error = Some(e.to_string());
        }
    }
    listing
}

/// Reads the tar from `r` into `listing`; returns the error that stopped it, if any.
fn list<R: Read>(
    r: Counted<R>,
    capture: &[&[u8]],
    limits: &ScanLimits,
    listing: &mut LayerListing,
) -> io::Result<()> {
    let mut archive = tar::Archive::new(r);
    let entries = archive.entries()?;
    let mut result = Ok(());
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        if listing.changes.len() as u64 >= limits.max_entries {
            listing.truncated = true;
            break;
        }
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                EntryKind::File
            }
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink,
            tar::EntryType::Link => EntryKind::HardLink,
            tar::EntryType::Char => EntryKind::CharDevice,
            tar::EntryType::Block => EntryKind::BlockDevice,
            tar::EntryType::Fifo => EntryKind::Fifo,
            // Extension headers the tar crate has not folded into an entry: no file.
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            _ => EntryKind::Other,
        };
        let raw = entry.path_bytes();
        if raw.len() > limits.max_path_bytes {
            listing.skipped += 1;
            continue;
        }
        let Some(path) = normalise(&raw) else {
            listing.skipped += 1;
            continue;
        };
        if path.is_empty() {
            // The root directory itself (`./`): implied, never listed.
            continue;
        }
        let (parent, name) = split_last(&path);
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            if hidden == b".wh..opq" {
                listing
                    .changes
                    .push(LayerChange::Opaque(parent.to_vec().into()));
            } else if hidden.is_empty() || hidden == b"." || hidden == b".." {
                listing.skipped += 1;
            } else {
                listing
                    .changes
                    .push(LayerChange::Whiteout(join(parent, hidden).into()));
            }
            continue;
        }
        let header = entry.header();
        let link = match kind {
            EntryKind::Symlink => entry
                .link_name_bytes()
                .map(|l| l.into_owned().into_boxed_slice()),
            EntryKind::HardLink => entry
                .link_name_bytes()
                .and_then(|l| normalise(&l))
                .map(Vec::into_boxed_slice),
            _ => None,
        };
        let size = if kind == EntryKind::File {
            entry.size()
        } else {
            0
        };
        let e = LayerEntry {
            meta: EntryMeta {
                kind,
                size,
                mode: header.mode().unwrap_or(0) & 0o7777,
                uid: header.uid().unwrap_or(0),
                gid: header.gid().unwrap_or(0),
                mtime: header.mtime().unwrap_or(0),
                link,
            },
            path: path.into_boxed_slice(),
        };
        if kind == EntryKind::File
            && size <= limits.max_capture_bytes
            && capture.iter().any(|c| **c == *e.path)
        {
            let mut content = Vec::with_capacity(size as usize);
            if let Err(err) = (&mut entry).take(size).read_to_end(&mut content) {
                listing.changes.push(LayerChange::Entry(e));
                result = Err(err);
                break;
            }
            listing.captured.push((e.path.clone(), content));
        }
        listing.changes.push(LayerChange::Entry(e));
    }
    listing.uncompressed_bytes = archive.into_inner().count;
    result
}

/// A path made relative and lexical: `./a//b/` → `a/b`, `/etc/x` → `etc/x`, `a/../b` → `b`.
/// `None` when it climbs above the root or holds NUL.
pub fn normalise(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.contains(&0) {
        return None;
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join(&b'/'))
}

/// `a/b/c` → (`a/b`, `c`); `c` → (``, `c`).
pub fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// `dir` and `name` joined by `/` (just `name` under the root).
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    if !dir.is_empty() {
        p.extend_from_slice(dir);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// A reader that counts what passes and fails with `FileTooLarge` past its budget.
struct Counted<R> {
    inner: R,
    count: u64,
    budget: u64,
}

impl<R> Counted<R> {
    fn new(inner: R, budget: u64) -> Counted<R> {
        Counted {
            inner,
            count: 0,
            budget,
        }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.count >= self.budget {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "layer larger than max_uncompressed_bytes",
            ));
        }
        let room = usize::try_from(self.budget - self.count).unwrap_or(usize::MAX);
        let n = buf.len().min(room);
        let got = self.inner.read(&mut buf[..n])?;
        self.count += got as u64;
        Ok(got)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tar built entry by entry: (path, kind, content or link target).
    pub(crate) fn tar_of(entries: &[(&str, EntryKind, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_uid(1000);
            h.set_gid(100);
            h.set_mtime(1_700_000_000);
            let (ty, body): (tar::EntryType, &[u8]) = match kind {
                EntryKind::File => (tar::EntryType::Regular, data),
                EntryKind::Dir => (tar::EntryType::Directory, b""),
                EntryKind::Symlink => (tar::EntryType::Symlink, b""),
                EntryKind::HardLink => (tar::EntryType::Link, b""),
                _ => (tar::EntryType::Fifo, b""),
            };
            h.set_entry_type(ty);
            h.set_size(body.len() as u64);
            if matches!(kind, EntryKind::Symlink | EntryKind::HardLink) {
                b.append_link(&mut h, path, std::str::from_utf8(data).unwrap())
                    .unwrap();
            } else {
                // Raw names (`..`, absolute) are written as given, as a hostile pusher would.
                let name = path.as_bytes();
                let gnu = h.as_gnu_mut().unwrap();
                gnu.name[..name.len()].copy_from_slice(name);
                h.set_cksum();
                b.append(&h, body).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn paths(l: &LayerListing) -> Vec<String> {
        l.changes
            .iter()
            .map(|c| match c {
                LayerChange::Entry(e) => String::from_utf8_lossy(&e.path).into_owned(),
                LayerChange::Whiteout(p) => format!("-{}", String::from_utf8_lossy(p)),
                LayerChange::Opaque(p) => format!("opaque:{}", String::from_utf8_lossy(p)),
            })
            .collect()
    }

    #[test]
    fn plain_gzip_and_zstd_layers_list_the_same_entries() {
        let tar = tar_of(&[
            ("./", EntryKind::Dir, b""),
            ("./etc/", EntryKind::Dir, b""),
            ("./etc/os-release", EntryKind::File, b"ID=test\n"),
            ("./usr/bin/tool", EntryKind::File, b"binary"),
            ("./usr/bin/alias", EntryKind::Symlink, b"tool"),
            ("./usr/bin/hard", EntryKind::HardLink, b"./usr/bin/tool"),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        let capture: &[&[u8]] = &[b"etc/os-release"];
        let want = scan_layer(&tar[..], capture, &ScanLimits::default());
        assert!(want.complete(), "{want:?}");
        assert_eq!(
            paths(&want),
            [
                "etc",
                "etc/os-release",
                "usr/bin/tool",
                "usr/bin/alias",
                "usr/bin/hard"
            ]
        );
        assert_eq!(
            want.captured,
            [(b"etc/os-release".to_vec().into(), b"ID=test\n".to_vec())]
        );
        let tool = want.entries().nth(2).unwrap();
        assert_eq!(
            (tool.meta.size, tool.meta.mode, tool.meta.uid, tool.meta.gid),
            (6, 0o644, 1000, 100)
        );
        let alias = want.entries().nth(3).unwrap();
        assert_eq!(alias.meta.link.as_deref(), Some(&b"tool"[..]));
        let hard = want.entries().nth(4).unwrap();
        assert_eq!(hard.meta.link.as_deref(), Some(&b"usr/bin/tool"[..]));
        for blob in [gz, zst] {
            let got = scan_layer(&blob[..], capture, &ScanLimits::default());
            assert_eq!(got.changes, want.changes);
            assert_eq!(got.captured, want.captured);
        }
    }

    #[test]
    fn whiteouts_and_opaque_markers_are_told_apart_from_files() {
        let tar = tar_of(&[
            ("etc/.wh.motd", EntryKind::File, b""),
            ("var/cache/.wh..wh..opq", EntryKind::File, b""),
            (".wh..wh..opq", EntryKind::File, b""),
            ("var/cache/new", EntryKind::File, b"x"),
            ("etc/.wh.", EntryKind::File, b""),
        ]);
        let l = scan_layer(&tar[..], &[], &ScanLimits::default());
        assert_eq!(
            paths(&l),
            ["-etc/motd", "opaque:var/cache", "opaque:", "var/cache/new"]
        );
        assert_eq!(l.skipped, 1);
    }

    #[test]
    fn hostile_paths_are_normalised_or_skipped_never_followed() {
        let long = format!("a/{}", "b".repeat(5000));
        let tar = tar_of(&[
            ("/abs/file", EntryKind::File, b""),
            ("a/../../escape", EntryKind::File, b""),
            ("a/./b/../c", EntryKind::File, b""),
            ("../up", EntryKind::File, b""),
        ]);
        let l = scan_layer(&tar[..], &[], &ScanLimits::default());
        assert_eq!(paths(&l), ["abs/file", "a/c"]);
        assert_eq!(l.skipped, 2);
        assert!(l.complete());
        // A long name (GNU long-name extension) past the limit is skipped.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, &long, &b""[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let l = scan_layer(&tar[..], &[], &ScanLimits::default());
        assert!(l.changes.is_empty());
        assert_eq!(l.skipped, 1);
    }

    #[test]
    fn corrupt_and_truncated_streams_keep_what_came_before() {
        let tar = tar_of(&[
            ("one", EntryKind::File, &[7u8; 3000]),
            ("two", EntryKind::File, &[8u8; 3000]),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        // Cut the gzip stream short: the first entry is listed, then the error.
        let l = scan_layer(&gz[..gz.len() / 2], &[], &ScanLimits::default());
        assert!(l.error.is_some(), "{l:?}");
        // Garbage in the middle of a plain tar.
        let mut bad = tar.clone();
        for b in &mut bad[3584..4096] {
            *b = 0x55;
        }
        let l = scan_layer(&bad[..], &[], &ScanLimits::default());
        assert_eq!(paths(&l), ["one"]);
        assert!(l.error.is_some());
        // Not a tar at all.
        let l = scan_layer(
            &b"hello, this is not a tar"[..],
            &[],
            &ScanLimits::default(),
        );
        assert!(l.changes.is_empty());
        assert!(!l.complete());
    }

    #[test]
    fn limits_stop_a_listing_and_say_so() {
        let many: Vec<(String, EntryKind, &[u8])> = (0..50)
            .map(|i| (format!("f{i}"), EntryKind::File, &b""[..]))
            .collect();
        let many: Vec<(&str, EntryKind, &[u8])> =
            many.iter().map(|(p, k, d)| (p.as_str(), *k, *d)).collect();
        let tar = tar_of(&many);
        let limits = ScanLimits {
            max_entries: 10,
            ..ScanLimits::default()
        };
        let l = scan_layer(&tar[..], &[], &limits);
        assert_eq!(l.changes.len(), 10);
        assert!(l.truncated && l.error.is_none());
        // A bomb: a gzip of zeros far larger than the uncompressed budget.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let big = tar_of(&[("zeros", EntryKind::File, &vec![0u8; 4 << 20])]);
        std::io::Write::write_all(&mut gz, &big).unwrap();
        let gz = gz.finish().unwrap();
        let limits = ScanLimits {
            max_uncompressed_bytes: 1 << 20,
            ..ScanLimits::default()
        };
        let l = scan_layer(&gz[..], &[], &limits);
        assert!(l.truncated, "{l:?}");
        assert!(l.uncompressed_bytes <= 1 << 20);
    }

    #[test]
    fn paths_normalise_lexically() {
        let rows: &[(&str, Option<&str>)] = &[
            ("./a//b/", Some("a/b")),
            ("/etc/x", Some("etc/x")),
            ("a/../b", Some("b")),
            ("./", Some("")),
            ("..", None),
            ("a/../..", None),
            ("a\0b", None),
        ];
        for (raw, want) in rows {
            let got = normalise(raw.as_bytes());
            assert_eq!(got.as_deref(), want.map(str::as_bytes), "{raw:?}");
        }
    }
}
