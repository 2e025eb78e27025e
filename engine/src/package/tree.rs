//! An image's file system: its layers' listings applied lowest first.
//!
//! The rules (OCI image-spec, "Applying changesets"):
//! - `DIR/.wh.NAME` removes `DIR/NAME`, and everything under it, from the layers below;
//! - `DIR/.wh..wh..opq` hides everything under `DIR` from the layers below, while entries
//!   of the same layer under `DIR` stay, wherever the marker sits in the tar;
//! - an entry replaces the same path from below; a directory over a directory keeps the
//!   children below, anything else over a directory removes them;
//! - parents a tar leaves out exist implicitly.
//!
//! Paths are kept with their `/` turned into NUL (which no normalised path holds), so a
//! directory's whole subtree is one contiguous key range: whiteouts remove ranges, and a
//! directory's children are read without walking its grandchildren.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::layer::{EntryKind, EntryMeta, LayerChange, LayerEntry, LayerListing};

/// One path of the merged file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FsNode {
    /// What it is.
    pub meta: EntryMeta,
    /// The layer (0 = lowest) that last set this path.
    pub layer: usize,
    /// A directory no layer lists, implied by the paths under it.
    pub implicit: bool,
}

impl FsNode {
    fn of(e: &LayerEntry, layer: usize) -> FsNode {
        FsNode {
            meta: e.meta.clone(),
            layer,
            implicit: false,
        }
    }

    fn implicit_dir(layer: usize) -> FsNode {
        FsNode {
            meta: EntryMeta {
                kind: EntryKind::Dir,
                size: 0,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: 0,
                link: None,
            },
            layer,
            implicit: true,
        }
    }
}

/// What one layer did to the layers below it (paths as `/`-separated bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerChanges {
    /// Paths that did not exist below.
    pub added: Vec<Box<[u8]>>,
    /// Paths that existed below and were replaced.
    pub changed: Vec<Box<[u8]>>,
    /// Paths removed by a whiteout or hidden by an opaque directory (the topmost removed
    /// path only; `removed_entries` counts everything under them too).
    pub removed: Vec<Box<[u8]>>,
    /// Every path removed, subtrees included.
    pub removed_entries: u64,
}

/// The merged file system of an image.
#[derive(Clone, Debug, Default)]
pub struct FsTree {
    nodes: BTreeMap<Vec<u8>, FsNode>,
}

/// A path's key: `/` → NUL.
fn key(path: &[u8]) -> Vec<u8> {
    path.iter()
        .map(|&b| if b == b'/' { 0 } else { b })
        .collect()
}

/// A key's path: NUL → `/`.
fn unkey(key: &[u8]) -> Box<[u8]> {
    key.iter().map(|&b| if b == 0 { b'/' } else { b }).collect()
}

/// The first key after every key under `dir_key` (`dir_key` NUL ... sorts before it).
fn subtree_end(dir_key: &[u8]) -> Vec<u8> {
    let mut k = dir_key.to_vec();
    k.push(1);
    k
}

/// The first key under `dir_key` (the root is the empty key: everything is under it).
fn subtree_start(dir_key: &[u8]) -> Vec<u8> {
    let mut k = dir_key.to_vec();
    if !k.is_empty() {
        k.push(0);
    }
    k
}

impl FsTree {
    /// An empty file system.
    pub fn new() -> FsTree {
        FsTree::default()
    }

    /// Applies layer number `layer` (each higher than the last) and says what it changed.
    pub fn apply(&mut self, layer: usize, listing: &LayerListing) -> LayerChanges {
        let mut changes = LayerChanges::default();
        for c in &listing.changes {
            match c {
                LayerChange::Entry(e) => self.put(layer, e, &mut changes),
                LayerChange::Whiteout(path) => {
                    let k = key(path);
                    let n = self.remove_below(&k, layer, true);
                    if n > 0 {
                        changes.removed.push(path.clone());
                        changes.removed_entries += n;
                    }
                }
                LayerChange::Opaque(dir) => {
                    let k = key(dir);
                    if !dir.is_empty() {
                        self.ensure_parents(&k, layer, &mut changes);
                        if !self
                            .nodes
                            .get(&k)
                            .is_some_and(|n| n.meta.kind == EntryKind::Dir)
                        {
                            self.nodes.insert(k.clone(), FsNode::implicit_dir(layer));
                        }
                    }
                    let n = self.remove_below(&k, layer, false);
                    if n > 0 {
                        changes.removed.push(dir.clone());
                        changes.removed_entries += n;
                    }
                }
            }
        }
        changes
    }

    fn put(&mut self, layer: usize, e: &LayerEntry, changes: &mut LayerChanges) {
        let k = key(&e.path);
        self.ensure_parents(&k, layer, changes);
        let node = FsNode::of(e, layer);
        match self.nodes.get(&k) {
            None => changes.added.push(e.path.clone()),
            Some(old) if old.layer < layer => changes.changed.push(e.path.clone()),
            // The same path twice in one tar: the later entry wins, counted once.
            Some(_) => {}
        }
        if node.meta.kind != EntryKind::Dir {
            let under: Vec<Vec<u8>> = self.subtree(&k).map(|(k, _)| k.clone()).collect();
            changes.removed_entries += under.len() as u64;
            for u in under {
                self.nodes.remove(&u);
            }
        }
        self.nodes.insert(k, node);
    }

    /// Makes every parent of `k` a directory, implied at `layer` where missing; a parent
    /// that is not a directory (a file where a tar puts children) becomes one.
    fn ensure_parents(&mut self, k: &[u8], layer: usize, changes: &mut LayerChanges) {
        let mut end = 0;
        while let Some(i) = k[end..].iter().position(|&b| b == 0) {
            let parent = &k[..end + i];
            match self.nodes.get(parent) {
                Some(n) if n.meta.kind == EntryKind::Dir => {}
                existing => {
                    if existing.is_none() {
                        changes.added.push(unkey(parent));
                    } else {
                        changes.changed.push(unkey(parent));
                    }
                    self.nodes
                        .insert(parent.to_vec(), FsNode::implicit_dir(layer));
                }
            }
            end += i + 1;
        }
    }

    /// Removes, from layers below `layer`, everything under `k` and (`itself`) `k` itself.
    /// Returns how many paths went.
    fn remove_below(&mut self, k: &[u8], layer: usize, itself: bool) -> u64 {
        let mut gone: Vec<Vec<u8>> = self
            .subtree(k)
            .filter(|(_, n)| n.layer < layer)
            .map(|(k, _)| k.clone())
            .collect();
        if itself && !k.is_empty() && self.nodes.get(k).is_some_and(|n| n.layer < layer) {
            gone.push(k.to_vec());
        }
        let n = gone.len() as u64;
        for g in gone {
            self.nodes.remove(&g);
        }
        // Entries this layer put under `k` before its marker stay; so do their parents
        // (implied now, if the directories were only below).
        let kept: Vec<Vec<u8>> = self.subtree(k).map(|(k, _)| k.clone()).collect();
        for kept in kept {
            let mut end = 0;
            while let Some(i) = kept[end..].iter().position(|&b| b == 0) {
                self.nodes
                    .entry(kept[..end + i].to_vec())
                    .or_insert_with(|| FsNode::implicit_dir(layer));
                end += i + 1;
            }
        }
        n
    }

    /// Everything under `dir_key` (not itself); under the root, everything.
    fn subtree(&self, dir_key: &[u8]) -> std::collections::btree_map::Range<'_, Vec<u8>, FsNode> {
        if dir_key.is_empty() {
            self.nodes.range::<Vec<u8>, _>(..)
        } else {
            self.nodes
                .range(subtree_start(dir_key)..subtree_end(dir_key))
        }
    }

    /// Files, directories and everything else in the file system.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the file system is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node at `path` (`/`-separated, normalised).
    pub fn get(&self, path: &[u8]) -> Option<&FsNode> {
        self.nodes.get(&key(path))
    }

    /// The entries of directory `dir` (the root is the empty path), in name order, each
    /// with its name; grandchildren are skipped by seeking, not walked.
    pub fn children<'t>(&'t self, dir: &[u8]) -> Children<'t> {
        let start = subtree_start(&key(dir));
        Children {
            tree: self,
            prefix: start.len(),
            end: subtree_end(&key(dir)),
            next: Bound::Included(start),
            root: dir.is_empty(),
        }
    }

    /// Every path in order, with its node (for persisting the tree).
    pub fn iter(&self) -> impl Iterator<Item = (Box<[u8]>, &FsNode)> {
        self.nodes.iter().map(|(k, n)| (unkey(k), n))
    }

    /// Follows symbolic links from `path` within this file system (at most 40 hops, as
    /// Linux does); the final path and its node, if it exists.
    pub fn resolve(&self, path: &[u8]) -> Option<(Vec<u8>, &FsNode)> {
        let mut path = super::layer::normalise(path)?;
        for _ in 0..40 {
            // Resolve the parents too: `etc` may itself be a link.
            let node = self.get(&path)?;
            match (node.meta.kind, &node.meta.link) {
                (EntryKind::Symlink, Some(target)) => {
                    let (parent, _) = super::layer::split_last(&path);
                    let joined = if target.starts_with(b"/") {
                        target.to_vec()
                    } else {
                        super::layer::join(parent, target)
                    };
                    path = super::layer::normalise(&joined)?;
                }
                _ => return Some((path, node)),
            }
        }
        None
    }
}

/// Iterator over one directory's entries; see [`FsTree::children`].
pub struct Children<'t> {
    tree: &'t FsTree,
    prefix: usize,
    end: Vec<u8>,
    next: Bound<Vec<u8>>,
    root: bool,
}

impl<'t> Iterator for Children<'t> {
    type Item = (Box<[u8]>, &'t FsNode);

    fn next(&mut self) -> Option<Self::Item> {
        let lower = std::mem::replace(&mut self.next, Bound::Unbounded);
        let upper = if self.root {
            Bound::Unbounded
        } else {
            Bound::Excluded(self.end.clone())
        };
        let (k, n) = self.tree.nodes.range((lower, upper)).next()?;
        let name = &k[self.prefix..];
        // Skip this child's subtree: everything starting `name` NUL.
        self.next = Bound::Included(subtree_end(k));
        debug_assert!(!name.contains(&0), "a subtree's first key is its own root");
        Some((unkey(name), n))
    }
}

#[cfg(test)]
mod tests {
    use super::super::layer::{scan_layer, ScanLimits};
    use super::*;

    fn layer(entries: &[(&str, EntryKind, &[u8])]) -> LayerListing {
        let tar = super::super::layer::tests::tar_of(entries);
        scan_layer(&tar[..], &[], &ScanLimits::default())
    }

    fn names(t: &FsTree, dir: &str) -> Vec<String> {
        t.children(dir.as_bytes())
            .map(|(n, _)| String::from_utf8_lossy(&n).into_owned())
            .collect()
    }

    fn all(t: &FsTree) -> Vec<String> {
        t.iter()
            .map(|(p, _)| String::from_utf8_lossy(&p).into_owned())
            .collect()
    }

    fn strs(v: &[Box<[u8]>]) -> Vec<String> {
        v.iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    }

    use EntryKind::{Dir, File, Symlink};

    #[test]
    fn layers_merge_with_whiteouts_opaque_dirs_and_replacements() {
        let base = layer(&[
            ("etc/", Dir, b""),
            ("etc/motd", File, b"hi"),
            ("etc/os-release", File, b"ID=a"),
            ("var/cache/a/x", File, b""),
            ("var/cache/b", File, b""),
            ("usr/lib/thing/", Dir, b""),
            ("usr/lib/thing/inner", File, b""),
            ("opt/keep/file", File, b""),
        ]);
        let top = layer(&[
            ("etc/.wh.motd", File, b""),
            ("var/cache/fresh", File, b"new"),
            ("var/cache/.wh..wh..opq", File, b""),
            ("etc/os-release", File, b"ID=b"),
            ("usr/lib/thing", File, b"now a file"),
            ("opt/keep/", Dir, b""),
            ("etc/.wh.absent", File, b""),
        ]);
        let mut t = FsTree::new();
        let c0 = t.apply(0, &base);
        assert_eq!(c0.changed, Vec::<Box<[u8]>>::new());
        assert_eq!(t.len(), 15);
        let c1 = t.apply(1, &top);
        assert_eq!(
            all(&t),
            [
                "etc",
                "etc/os-release",
                "opt",
                "opt/keep",
                "opt/keep/file",
                "usr",
                "usr/lib",
                "usr/lib/thing",
                "var",
                "var/cache",
                "var/cache/fresh",
            ]
        );
        assert_eq!(strs(&c1.added), ["var/cache/fresh"]);
        assert_eq!(
            strs(&c1.changed),
            ["etc/os-release", "usr/lib/thing", "opt/keep"]
        );
        assert_eq!(strs(&c1.removed), ["etc/motd", "var/cache"]);
        // etc/motd; var/cache/a, var/cache/a/x, var/cache/b; usr/lib/thing/inner.
        assert_eq!(c1.removed_entries, 5);
        assert_eq!(t.get(b"usr/lib/thing").unwrap().meta.kind, File);
        assert_eq!(t.get(b"etc/os-release").unwrap().layer, 1);
        assert!(t.get(b"var").unwrap().implicit);
    }

    #[test]
    fn children_list_one_directory_in_name_order_skipping_subtrees() {
        let l = layer(&[
            ("a/b/c/d", File, b""),
            ("a/b-x", File, b""),
            ("a/b.y", File, b""),
            ("a/a", File, b""),
            ("z", File, b""),
        ]);
        let mut t = FsTree::new();
        t.apply(0, &l);
        assert_eq!(names(&t, ""), ["a", "z"]);
        assert_eq!(names(&t, "a"), ["a", "b", "b-x", "b.y"]);
        assert_eq!(names(&t, "a/b"), ["c"]);
        assert_eq!(names(&t, "a/b/c/d"), Vec::<String>::new());
        assert_eq!(names(&t, "nope"), Vec::<String>::new());
    }

    #[test]
    fn entries_before_an_opaque_marker_keep_their_parents() {
        let mut t = FsTree::new();
        t.apply(
            0,
            &layer(&[("d/sub/old", File, b""), ("d/gone", File, b"")]),
        );
        t.apply(
            1,
            &layer(&[("d/sub/new", File, b""), ("d/.wh..wh..opq", File, b"")]),
        );
        assert_eq!(all(&t), ["d", "d/sub", "d/sub/new"]);
        assert!(t.get(b"d/sub").unwrap().implicit);
    }

    #[test]
    fn an_opaque_root_hides_every_lower_layer() {
        let mut t = FsTree::new();
        t.apply(0, &layer(&[("a/b", File, b""), ("c", File, b"")]));
        let c = t.apply(1, &layer(&[("d", File, b""), (".wh..wh..opq", File, b"")]));
        assert_eq!(all(&t), ["d"]);
        assert_eq!(c.removed_entries, 3);
    }

    #[test]
    fn symlinks_resolve_within_the_image_and_loops_end() {
        let mut t = FsTree::new();
        t.apply(
            0,
            &layer(&[
                ("usr/lib/os-release", File, b"ID=debian"),
                ("etc/os-release", Symlink, b"../usr/lib/os-release"),
                ("abs", Symlink, b"/usr/lib/os-release"),
                ("loop1", Symlink, b"loop2"),
                ("loop2", Symlink, b"loop1"),
                ("out", Symlink, b"../../../../x"),
            ]),
        );
        let (p, n) = t.resolve(b"etc/os-release").unwrap();
        assert_eq!(p, b"usr/lib/os-release");
        assert_eq!(n.meta.kind, File);
        assert_eq!(t.resolve(b"abs").unwrap().0, b"usr/lib/os-release");
        assert!(t.resolve(b"loop1").is_none());
        assert!(t.resolve(b"out").is_none());
        assert!(t.resolve(b"missing").is_none());
    }
}
