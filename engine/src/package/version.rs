//! What the package index records of one version (a manifest in a repository), worked out
//! by the indexer from the manifest, its config and its layers' listings: the facts the
//! details page and `berth package show` print, and the image's file system by directory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::checksum::Checksums;
use super::facts::{Descriptor, Kind, ManifestFacts};
use super::layer::LayerListing;
use super::osrelease;
use super::tree::{FsNode, FsTree};
use super::EntryKind;

/// The distribution an image's `os-release` names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distribution {
    /// `ID` (`debian`, `alpine`).
    pub id: Option<String>,
    /// `NAME` (`Debian GNU/Linux`).
    pub name: Option<String>,
    /// `VERSION_ID`, else `VERSION` (`12`, `3.20.3`).
    pub version: Option<String>,
    /// `PRETTY_NAME`.
    pub pretty_name: Option<String>,
}

/// How far one layer could be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerState {
    /// Listed whole.
    Listed,
    /// Listed as far as it was valid: corrupt, or past a limit.
    Partial,
    /// Foreign or non-distributable: clients fetch it from elsewhere (`urls`); the
    /// registry does not hold it, so its files are not shown.
    External,
    /// The registry does not hold it (any more).
    Missing,
}

/// One layer of a version, as the index saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// `alg:hex`.
    pub digest: String,
    /// As the manifest names it.
    pub media_type: String,
    /// Bytes, as the manifest names it.
    pub size: u64,
    /// How far it was read.
    pub state: LayerState,
    /// Why it was read only in part.
    pub error: Option<String>,
    /// Entries its tar lists (whiteouts not counted).
    pub entries: u64,
    /// Entries left out as hostile (escaping paths, NUL, too long).
    pub skipped: u64,
    /// What it did to the layers below it.
    pub added: u64,
    /// Paths it replaced.
    pub changed: u64,
    /// Paths it removed (whiteouts and opaque directories), subtrees included.
    pub removed: u64,
}

impl LayerInfo {
    /// A layer not (yet) read: external, else missing until it is listed.
    pub fn unread(d: &Descriptor) -> LayerInfo {
        LayerInfo {
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
            size: d.size,
            state: if d.external {
                LayerState::External
            } else {
                LayerState::Missing
            },
            error: None,
            entries: 0,
            skipped: 0,
            added: 0,
            changed: 0,
            removed: 0,
        }
    }
}

/// The recorded facts of one version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// `image`, `index` or `artifact`.
    pub kind: String,
    /// When it was indexed (unix seconds).
    pub indexed_at: u64,
    /// Bytes of the manifest, its config and its layers, each blob once (for an index,
    /// every platform's too).
    pub size: u64,
    /// Files, directories and other entries of the image's file system (images only).
    pub total_files: Option<u64>,
    /// From the image's `os-release`.
    pub distribution: Option<Distribution>,
    /// The image's layers, lowest first.
    pub layers: Vec<LayerInfo>,
    /// The Download's checksums by the tag it names (`""`: the version by digest).
    pub checksums: BTreeMap<String, Checksums>,
    /// Why the checksums could not be computed.
    pub checksum_error: Option<String>,
}

impl VersionRecord {
    /// Whether every layer was read whole (external layers are not read, by design).
    pub fn complete(&self) -> bool {
        self.layers
            .iter()
            .all(|l| matches!(l.state, LayerState::Listed | LayerState::External))
    }
}

/// Where the distribution is named: `/etc/os-release`, else `/usr/lib/os-release`.
pub const OS_RELEASE: [&[u8]; 2] = [b"etc/os-release", b"usr/lib/os-release"];

/// The kind's name in a record.
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Image => "image",
        Kind::Index => "index",
        Kind::Artifact => "artifact",
    }
}

/// Merges an image's layers: `listings[i]` is layer `i`'s listing, `None` when it was not
/// read (external or missing). Returns the record (without size, time or checksums, which
/// the indexer adds) and the file system.
pub fn merge_image(
    facts: &ManifestFacts,
    listings: &[Option<&LayerListing>],
) -> (VersionRecord, FsTree) {
    let mut tree = FsTree::new();
    let mut layers = Vec::with_capacity(facts.layers.len());
    for (i, d) in facts.layers.iter().enumerate() {
        let listing = listings.get(i).copied().flatten();
        let mut info = LayerInfo::unread(d);
        if let Some(l) = listing {
            let ch = tree.apply(i, l);
            info.state = if l.complete() {
                LayerState::Listed
            } else {
                LayerState::Partial
            };
            info.error = match (&l.error, l.truncated) {
                (Some(e), _) => Some(e.clone()),
                (None, true) => Some("listing stopped at a limit".into()),
                (None, false) => None,
            };
            info.entries = l.entries().count() as u64;
            info.skipped = l.skipped;
            info.added = ch.added.len() as u64;
            info.changed = ch.changed.len() as u64;
            info.removed = ch.removed_entries;
        }
        layers.push(info);
    }
    let distribution = distribution(&tree, listings);
    let record = VersionRecord {
        kind: kind_name(Kind::Image).into(),
        total_files: Some(tree.len() as u64),
        distribution,
        layers,
        ..VersionRecord::default()
    };
    (record, tree)
}

/// The distribution named by the `os-release` file the merged file system holds, read from
/// the layer that last set it (following `/etc/os-release` → `../usr/lib/os-release`).
fn distribution(tree: &FsTree, listings: &[Option<&LayerListing>]) -> Option<Distribution> {
    OS_RELEASE.iter().find_map(|p| {
        let (path, node) = tree.resolve(p)?;
        if node.meta.kind != EntryKind::File {
            return None;
        }
        let listing = listings.get(node.layer).copied().flatten()?;
        let (_, bytes) = listing.captured.iter().find(|(c, _)| **c == path[..])?;
        let kv = osrelease::parse(bytes);
        let get = |k: &str| kv.get(k).filter(|v| !v.is_empty()).cloned();
        let d = Distribution {
            id: get("ID"),
            name: get("NAME"),
            version: get("VERSION_ID").or_else(|| get("VERSION")),
            pretty_name: get("PRETTY_NAME"),
        };
        (d != Distribution::default()).then_some(d)
    })
}

/// A directory entry with its name.
pub type Named<T> = (Box<[u8]>, T);

/// Entries per stored chunk of a directory: a page of a huge directory decodes one or two
/// chunks, never the whole directory.
pub const DIR_CHUNK: usize = 1000;

/// The file system as stored rows: for each directory (the root is the empty path), its
/// entries in name order, cut into chunks of [`DIR_CHUNK`]; each chunk keyed by
/// `dir NUL first-name` (an empty directory has one empty chunk keyed `dir NUL`).
pub fn dir_chunks(tree: &FsTree) -> Vec<(Vec<u8>, Vec<Named<&FsNode>>)> {
    let mut dirs: Vec<Box<[u8]>> = vec![Box::default()];
    dirs.extend(
        tree.iter()
            .filter(|(_, n)| n.meta.kind == EntryKind::Dir)
            .map(|(p, _)| p),
    );
    let mut out = Vec::new();
    for dir in dirs {
        let children: Vec<_> = tree.children(&dir).collect();
        if children.is_empty() {
            out.push((chunk_key(&dir, b""), Vec::new()));
            continue;
        }
        let mut it = children.into_iter().peekable();
        while it.peek().is_some() {
            let chunk: Vec<_> = it.by_ref().take(DIR_CHUNK).collect();
            out.push((chunk_key(&dir, &chunk[0].0), chunk));
        }
    }
    out
}

/// The key of the chunk of `dir` whose first entry is `name`.
pub fn chunk_key(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(dir.len() + 1 + name.len());
    k.extend_from_slice(dir);
    k.push(0);
    k.extend_from_slice(name);
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::layer::{LayerChange, LayerEntry};

    fn entry(path: &str, kind: EntryKind, link: Option<&str>) -> LayerChange {
        LayerChange::Entry(LayerEntry {
            path: path.as_bytes().into(),
            meta: crate::package::EntryMeta {
                kind,
                size: 3,
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 0,
                link: link.map(|l| l.as_bytes().into()),
            },
        })
    }

    fn layer(d: &str) -> Descriptor {
        Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            digest: d.into(),
            size: 10,
            ..Descriptor::default()
        }
    }

    #[test]
    fn the_merge_counts_files_names_the_distribution_through_a_link_and_marks_layers() {
        let low = LayerListing {
            changes: vec![
                entry("etc", EntryKind::Dir, None),
                entry(
                    "etc/os-release",
                    EntryKind::Symlink,
                    Some("../usr/lib/os-release"),
                ),
                entry("usr/lib/os-release", EntryKind::File, None),
                entry("usr/bin/old", EntryKind::File, None),
            ],
            captured: vec![(
                b"usr/lib/os-release"[..].into(),
                b"ID=debian\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n".to_vec(),
            )],
            ..LayerListing::default()
        };
        let high = LayerListing {
            changes: vec![
                LayerChange::Whiteout(b"usr/bin/old"[..].into()),
                entry("usr/bin/new", EntryKind::File, None),
            ],
            error: Some("corrupt gzip".into()),
            ..LayerListing::default()
        };
        let mut ext = layer("sha256:ext");
        ext.external = true;
        let facts = ManifestFacts {
            layers: vec![
                layer("sha256:a"),
                layer("sha256:b"),
                ext,
                layer("sha256:gone"),
            ],
            ..ManifestFacts::default()
        };
        let (rec, tree) = merge_image(&facts, &[Some(&low), Some(&high), None, None]);
        // etc, etc/os-release, usr, usr/lib, usr/lib/os-release, usr/bin, usr/bin/new
        assert_eq!(rec.total_files, Some(7));
        assert_eq!(tree.len(), 7);
        let d = rec.distribution.clone().unwrap();
        assert_eq!(d.name.as_deref(), Some("Debian GNU/Linux"));
        assert_eq!(d.version.as_deref(), Some("12"));
        let states: Vec<LayerState> = rec.layers.iter().map(|l| l.state).collect();
        assert_eq!(
            states,
            [
                LayerState::Listed,
                LayerState::Partial,
                LayerState::External,
                LayerState::Missing
            ]
        );
        assert_eq!(rec.layers[1].error.as_deref(), Some("corrupt gzip"));
        assert_eq!((rec.layers[1].added, rec.layers[1].removed), (1, 1));
        assert!(!rec.complete());
    }

    #[test]
    fn directories_are_cut_into_chunks_and_empty_ones_have_a_row() {
        let mut changes = vec![entry("empty", EntryKind::Dir, None)];
        for i in 0..(DIR_CHUNK + 5) {
            changes.push(entry(&format!("big/f{i:05}"), EntryKind::File, None));
        }
        let l = LayerListing {
            changes,
            ..LayerListing::default()
        };
        let mut tree = FsTree::new();
        tree.apply(0, &l);
        let chunks = dir_chunks(&tree);
        let keys: Vec<&[u8]> = chunks.iter().map(|(k, _)| &k[..]).collect();
        assert_eq!(
            keys,
            [&b"\0big"[..], b"big\0f00000", b"big\0f01000", b"empty\0",]
        );
        assert_eq!(chunks[1].1.len(), DIR_CHUNK);
        assert_eq!(chunks[2].1.len(), 5);
        assert!(chunks[3].1.is_empty());
    }
}
