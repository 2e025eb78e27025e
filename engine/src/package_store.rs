//! The package index's rows in the store.
//!
//! The package queue: which manifests still wait for their package details (contents,
//! checksums, facts). A manifest PUT adds its row in the manifest's own transaction, so an
//! acknowledged push is always queued, and a crash or restart resumes where it was; the
//! indexer takes rows off with [`Engine::package_done`] once it has recorded them, and a
//! manifest DELETE removes its row with the manifest. Nothing here runs on a push's path
//! beyond one row insert in a transaction that commits anyway.
//!
//! Layer listings: what each layer blob holds, by its key, listed once however many images
//! share it and removed with the blob by garbage collection.
//!
//! Versions: what the indexer recorded of each manifest in a repository (its
//! `VersionRecord` and, for an image, its file system by directory), written in one commit
//! with the queue row's removal and removed with the manifest; when each was last pushed
//! (written by the manifest PUT) and how often it was pulled or downloaded (added to in
//! batches by the server).

use crate::kv::ReadableTable;

use crate::commit::Tables;
use crate::commit::{Batch, Write};
use crate::keys::BlobKey;
use crate::package::version::{chunk_key, dir_chunks};
use crate::package::{FsNode, FsTree, LayerListing, VersionRecord};
use crate::schema;
use crate::{Engine, StoreError};

/// A version's rows, ready for the committer.
pub(crate) struct VersionRows {
    repo: String,
    key: Vec<u8>,
    record: Vec<u8>,
    /// (chunk key, encoded chunk).
    dirs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Its layers' encoded keys, each once.
    layers: Vec<Vec<u8>>,
    /// Whether this finishes the version (off the queue), or its checksums are to follow.
    done: bool,
}

/// A version's Download checksums, or why there are none, to add to its record.
pub(crate) struct ChecksumRows {
    repo: String,
    key: Vec<u8>,
    checksums: std::collections::BTreeMap<String, crate::package::Checksums>,
    error: Option<String>,
}

/// A version holding the paths a search asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathHit {
    /// Its repository.
    pub repo: String,
    /// Its manifest's key.
    pub key: BlobKey,
    /// The paths found (`/`-separated, no leading slash).
    pub paths: Vec<Box<[u8]>>,
}

/// One page of a directory of a version's file system.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirPage {
    /// Entries in name order, each with its name.
    pub entries: Vec<(Box<[u8]>, FsNode)>,
    /// Whether entries follow the last one.
    pub more: bool,
}

/// The counters of one version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VersionStats {
    /// When it was last pushed (unix seconds), if pushed since push times are kept.
    pub pushed_at: Option<u64>,
    /// Pulls (manifest GETs) and Downloads.
    pub downloads: u64,
}

/// A version of an image, as listed on the image's page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionSummary {
    /// The manifest's key.
    pub key: BlobKey,
    /// Tags pointing at it, in order.
    pub tags: Vec<String>,
    /// Its counters.
    pub stats: VersionStats,
    /// What the index recorded, once indexed.
    pub record: Option<VersionRecord>,
}

impl Write for VersionRows {
    type Out = ();
    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<(), StoreError> {
        apply_put_version(&mut b.t, self)
    }
}

impl Write for ChecksumRows {
    type Out = ();
    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<(), StoreError> {
        apply_put_checksums(&mut b.t, self)
    }
}

/// Adds to versions' download counts: (repository, encoded manifest key, count).
struct AddDownloads(Vec<(String, Vec<u8>, u64)>);

impl Write for AddDownloads {
    type Out = ();
    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<(), StoreError> {
        apply_add_downloads(&mut b.t, &self.0)
    }
}

/// Takes manifests, (repository, encoded key), off the package queue.
struct PackageDone(Vec<(String, Vec<u8>)>);

impl Write for PackageDone {
    type Out = ();
    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<(), StoreError> {
        for (repo, kb) in &self.0 {
            b.t.package_queue.remove((repo.as_str(), &kb[..]))?;
        }
        Ok(())
    }
}

/// Records a layer's listing (encoded key, encoded listing) while the blob is stored, with
/// (file name, encoded paths of that name in the layer) for path searches.
struct PutListing {
    key: Vec<u8>,
    listing: Vec<u8>,
    names: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Write for PutListing {
    type Out = ();
    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<(), StoreError> {
        let t = &mut b.t;
        // A blob collected since it was listed takes no listing with it.
        if t.blobs.get(&self.key[..])?.is_some() {
            t.layer_listings.insert(&self.key[..], &self.listing[..])?;
            for (name, paths) in &self.names {
                t.names.insert((&name[..], &self.key[..]), &paths[..])?;
            }
        }
        Ok(())
    }
}

/// The cluster-wide lock of the package indexer ("berthi").
const INDEXER_LOCK: i64 = 0x62_65_72_74_68_69;

impl Engine {
    /// Applies a package-index write durably.
    fn submit<W: Write<Out = ()>>(&self, w: W) -> Result<(), StoreError> {
        self.commit.submit(w).map(crate::Durable::into_inner)
    }
}

fn apply_put_version(t: &mut Tables<'_>, rows: &VersionRows) -> Result<(), StoreError> {
    let (repo, kb) = (rows.repo.as_str(), &rows.key[..]);
    if rows.done {
        t.package_queue.remove((repo, kb))?;
    }
    // Deleted since it was indexed: nothing to record.
    if t.manifests.get((repo, kb))?.is_none() {
        return Ok(());
    }
    remove_dirs(t, repo, kb)?;
    t.versions.insert((repo, kb), &rows.record[..])?;
    for (ck, chunk) in &rows.dirs {
        t.dirs.insert((repo, kb, &ck[..]), &chunk[..])?;
    }
    for lk in &rows.layers {
        t.layer_users.insert((&lk[..], repo, kb), ())?;
    }
    Ok(())
}

fn apply_put_checksums(t: &mut Tables<'_>, rows: &ChecksumRows) -> Result<(), StoreError> {
    let (repo, kb) = (rows.repo.as_str(), &rows.key[..]);
    t.package_queue.remove((repo, kb))?;
    let Some(v) = t.versions.get((repo, kb))? else {
        return Ok(());
    };
    let mut record = decode_record(v.value())?;
    drop(v);
    record.checksums = rows.checksums.clone();
    record.checksum_error = rows.error.clone();
    let encoded = serde_json::to_vec(&record)
        .map_err(|e| StoreError::new(format!("encode a version record: {e}")))?;
    t.versions.insert((repo, kb), &encoded[..])?;
    Ok(())
}

/// Inside garbage collection's sweep: a layer blob's listing, and the names a path search
/// finds it by, go with the blob.
pub(crate) fn apply_forget_listing(t: &mut Tables<'_>, kb: &[u8]) -> Result<(), StoreError> {
    let Some(v) = t.layer_listings.remove(kb)? else {
        return Ok(());
    };
    // A listing that does not decode leaves name rows that lead nowhere: a search checks
    // every hit against the version's files.
    let names = match schema::decode_layer_listing(v.value()) {
        Ok(l) => names_of(&l).into_iter().map(|(n, _)| n).collect(),
        Err(_) => Vec::new(),
    };
    drop(v);
    for name in names {
        t.names.remove((&name[..], kb))?;
    }
    Ok(())
}

/// A listing's entries grouped by file name: (name, the paths with it).
fn names_of(l: &LayerListing) -> Vec<(Vec<u8>, Vec<&[u8]>)> {
    let mut by: std::collections::BTreeMap<&[u8], Vec<&[u8]>> = Default::default();
    for e in l.entries() {
        let (_, name) = crate::package::layer::split_last(&e.path);
        by.entry(name).or_default().push(&e.path);
    }
    by.into_iter().map(|(n, p)| (n.to_vec(), p)).collect()
}

fn apply_add_downloads(
    t: &mut Tables<'_>,
    items: &[(String, Vec<u8>, u64)],
) -> Result<(), StoreError> {
    for (repo, kb, n) in items {
        let key = (repo.as_str(), &kb[..]);
        // Counts of a manifest deleted meanwhile go with it.
        if t.manifests.get(key)?.is_none() {
            continue;
        }
        let have = t.downloads.get(key)?.map(|v| v.value()).unwrap_or(0);
        t.downloads.insert(key, have.saturating_add(*n))?;
    }
    Ok(())
}

/// Inside a manifest DELETE: everything the index holds of the version goes with it.
pub(crate) fn apply_forget_version(
    t: &mut Tables<'_>,
    repo: &str,
    kb: &[u8],
) -> Result<(), StoreError> {
    if let Some(v) = t.versions.remove((repo, kb))? {
        if let Ok(record) = decode_record(v.value()) {
            for lk in record_layers(&record) {
                t.layer_users.remove((&lk.encode()[..], repo, kb))?;
            }
        }
    }
    t.pushed.remove((repo, kb))?;
    t.downloads.remove((repo, kb))?;
    remove_dirs(t, repo, kb)
}

fn remove_dirs(t: &mut Tables<'_>, repo: &str, kb: &[u8]) -> Result<(), StoreError> {
    let mut dead = Vec::new();
    let start: (&str, &[u8], &[u8]) = (repo, kb, &[]);
    for entry in t.dirs.range(start..)? {
        let (k, _) = entry?;
        let (r, m, ck) = k.value();
        if r != repo || m != kb {
            break;
        }
        dead.push(ck.to_vec());
    }
    for ck in dead {
        t.dirs.remove((repo, kb, &ck[..]))?;
    }
    Ok(())
}

/// Queues every stored manifest (a store upgraded from before the queue existed); returns
/// how many.
pub(crate) fn queue_every_manifest(t: &mut Tables<'_>) -> Result<u64, StoreError> {
    let mut keys = Vec::new();
    for entry in t.manifests.iter()? {
        let (k, _) = entry?;
        let (repo, kb) = k.value();
        keys.push((repo.to_owned(), kb.to_vec()));
    }
    for (repo, kb) in &keys {
        t.package_queue.insert((repo.as_str(), &kb[..]), ())?;
    }
    Ok(keys.len() as u64)
}

/// Forgets every layer listing (a store upgraded from before path searches: its layers are
/// listed again, with their names, as the queue is worked).
pub(crate) fn forget_every_listing(t: &mut Tables<'_>) -> Result<(), StoreError> {
    t.layer_listings.clear()?;
    Ok(())
}

impl Engine {
    /// The indexer's turn: nodes sharing the metadata work the package queue one at a time
    /// (each would otherwise list the same layers), as long as what is returned lives.
    /// `None` while another node's indexer has it; on an embedded store, always taken.
    pub fn indexer_turn(&self) -> Result<Option<crate::vfs::Held>, StoreError> {
        self.inner.db.cluster_lock(INDEXER_LOCK)
    }

    /// Up to `limit` manifests waiting for package details, as (repository, manifest key),
    /// in key order. A row whose key does not decode (never written by this engine) is
    /// skipped.
    pub fn package_queue(&self, limit: usize) -> Result<Vec<(String, BlobKey)>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(schema::PACKAGE_QUEUE)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            if out.len() >= limit {
                break;
            }
            let (k, _) = entry?;
            let (repo, kb) = k.value();
            if let Some(key) = BlobKey::decode(kb) {
                out.push((repo.to_owned(), key));
            }
        }
        Ok(out)
    }

    /// Records what the layer blob `key` holds (listed once, whatever number of images
    /// share it). A blob no longer stored records nothing.
    pub fn put_layer_listing(
        &self,
        key: &BlobKey,
        listing: &LayerListing,
    ) -> Result<(), StoreError> {
        let names = names_of(listing)
            .into_iter()
            .map(|(n, paths)| (n, schema::encode_paths(&paths)))
            .collect();
        self.submit(PutListing {
            key: key.encode(),
            listing: schema::encode_layer_listing(listing),
            names,
        })
    }

    /// What the layer blob `key` holds, once listed.
    pub fn layer_listing(&self, key: &BlobKey) -> Result<Option<LayerListing>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(schema::LAYER_LISTINGS)?;
        let Some(v) = table.get(&key.encode()[..])? else {
            return Ok(None);
        };
        Ok(Some(schema::decode_layer_listing(v.value())?))
    }

    /// Records what the index found of version `key` of `repo` (and, for an image, its file
    /// system) and takes it off the package queue, in one commit. A manifest deleted since
    /// records nothing.
    pub fn put_version(
        &self,
        repo: &str,
        key: &BlobKey,
        record: &VersionRecord,
        tree: Option<&FsTree>,
    ) -> Result<(), StoreError> {
        self.record_version(repo, key, record, tree, true)
    }

    /// Like [`Engine::put_version`], but the version stays queued until
    /// [`Engine::put_checksums`] adds its Download's checksums: its files show at once,
    /// and a crash before the checksums indexes it again.
    pub fn put_version_listed(
        &self,
        repo: &str,
        key: &BlobKey,
        record: &VersionRecord,
        tree: Option<&FsTree>,
    ) -> Result<(), StoreError> {
        self.record_version(repo, key, record, tree, false)
    }

    /// Adds the Download's checksums (by tag name), or why there are none, to version
    /// `key`'s record, and takes it off the package queue.
    pub fn put_checksums(
        &self,
        repo: &str,
        key: &BlobKey,
        checksums: std::collections::BTreeMap<String, crate::package::Checksums>,
        error: Option<String>,
    ) -> Result<(), StoreError> {
        self.submit(ChecksumRows {
            repo: repo.to_owned(),
            key: key.encode(),
            checksums,
            error,
        })
    }

    fn record_version(
        &self,
        repo: &str,
        key: &BlobKey,
        record: &VersionRecord,
        tree: Option<&FsTree>,
        done: bool,
    ) -> Result<(), StoreError> {
        let encoded = serde_json::to_vec(record)
            .map_err(|e| StoreError::new(format!("encode a version record: {e}")))?;
        let dirs = tree
            .map(|t| {
                dir_chunks(t)
                    .into_iter()
                    .map(|(k, entries)| (k, schema::encode_dir_chunk(&entries)))
                    .collect()
            })
            .unwrap_or_default();
        let mut layers: Vec<Vec<u8>> = record_layers(record).map(|k| k.encode()).collect();
        layers.sort();
        layers.dedup();
        self.submit(VersionRows {
            repo: repo.to_owned(),
            key: key.encode(),
            record: encoded,
            dirs,
            layers,
            done,
        })
    }

    /// What the index recorded of version `key` of `repo`, once indexed.
    pub fn version(&self, repo: &str, key: &BlobKey) -> Result<Option<VersionRecord>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(schema::PACKAGE_VERSIONS)?;
        let Some(v) = table.get((repo, &key.encode()[..]))? else {
            return Ok(None);
        };
        decode_record(v.value()).map(Some)
    }

    /// Whether version `key` of `repo` waits for the indexer.
    pub fn version_queued(&self, repo: &str, key: &BlobKey) -> Result<bool, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(schema::PACKAGE_QUEUE)?;
        let queued = table.get((repo, &key.encode()[..]))?.is_some();
        Ok(queued)
    }

    /// When version `key` of `repo` was pushed, and how often it was downloaded.
    pub fn version_stats(&self, repo: &str, key: &BlobKey) -> Result<VersionStats, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let kb = key.encode();
        let pushed = txn.open_table(schema::PACKAGE_PUSHED)?;
        let downloads = txn.open_table(schema::PACKAGE_DOWNLOADS)?;
        let stats = VersionStats {
            pushed_at: pushed.get((repo, &kb[..]))?.map(|v| v.value()),
            downloads: downloads
                .get((repo, &kb[..]))?
                .map(|v| v.value())
                .unwrap_or(0),
        };
        Ok(stats)
    }

    /// Up to `limit` entries of directory `dir` (`/`-separated, no leading slash; the root
    /// is empty) of image version `key` of `repo`, after the name `after`; `None` when the
    /// version has no such directory (or is not indexed).
    pub fn version_dir(
        &self,
        repo: &str,
        key: &BlobKey,
        dir: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Option<DirPage>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(schema::PACKAGE_DIRS)?;
        let kb = key.encode();
        let first = chunk_key(dir, b"");
        let mut end = dir.to_vec();
        end.push(1);
        // Start at the chunk holding `after` (the last chunk keyed at or before it).
        let mut start = first.clone();
        if let Some(a) = after {
            let probe = chunk_key(dir, a);
            let lo: (&str, &[u8], &[u8]) = (repo, &kb[..], &first[..]);
            let hi: (&str, &[u8], &[u8]) = (repo, &kb[..], &probe[..]);
            if let Some(e) = table.range(lo..=hi)?.next_back() {
                start = e?.0.value().2.to_vec();
            }
        }
        let lo: (&str, &[u8], &[u8]) = (repo, &kb[..], &start[..]);
        let hi: (&str, &[u8], &[u8]) = (repo, &kb[..], &end[..]);
        let mut page = DirPage::default();
        let mut found = false;
        for entry in table.range(lo..hi)? {
            found = true;
            let (_, v) = entry?;
            for (name, node) in schema::decode_dir_chunk(v.value())? {
                if after.is_some_and(|a| *name <= *a) {
                    continue;
                }
                if page.entries.len() == limit {
                    page.more = true;
                    return Ok(Some(page));
                }
                page.entries.push((name, node));
            }
        }
        Ok(found.then_some(page))
    }

    /// The entry at `path` (`/`-separated, no leading slash) of image version `key`.
    pub fn version_entry(
        &self,
        repo: &str,
        key: &BlobKey,
        path: &[u8],
    ) -> Result<Option<FsNode>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(schema::PACKAGE_DIRS)?;
        entry_in(&table, repo, &key.encode(), path)
    }

    /// Versions holding an entry named `name` (a file name, no `/`), with the paths it has
    /// there; with `path`, only that path (`/`-separated, no leading slash). Each hit is
    /// checked against the version's files (a higher layer may have removed it) and kept
    /// only if `keep(repository)` says so (the caller's access); at most `limit` versions.
    pub fn find_paths(
        &self,
        name: &[u8],
        path: Option<&[u8]>,
        limit: usize,
        mut keep: impl FnMut(&str) -> bool,
    ) -> Result<Vec<PathHit>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let names = txn.open_table(schema::PACKAGE_NAMES)?;
        let users = txn.open_table(schema::PACKAGE_LAYER_USERS)?;
        let dirs = txn.open_table(schema::PACKAGE_DIRS)?;
        let mut hits: Vec<PathHit> = Vec::new();
        let mut at: std::collections::HashMap<(String, Vec<u8>), usize> = Default::default();
        let start: (&[u8], &[u8]) = (name, &[]);
        for entry in names.range(start..)? {
            let (k, v) = entry?;
            let (n, lk) = k.value();
            if n != name {
                break;
            }
            let mut paths = schema::decode_paths(v.value())?;
            paths.retain(|p| path.is_none_or(|want| **p == *want));
            if paths.is_empty() {
                continue;
            }
            let ustart: (&[u8], &str, &[u8]) = (lk, "", &[]);
            for u in users.range(ustart..)? {
                let (uk, _) = u?;
                let (ulk, repo, kb) = uk.value();
                if ulk != lk {
                    break;
                }
                if !at.contains_key(&(repo.to_owned(), kb.to_vec())) && !keep(repo) {
                    continue;
                }
                for p in &paths {
                    if entry_in(&dirs, repo, kb, p)?.is_none() {
                        continue;
                    }
                    let slot = match at.get(&(repo.to_owned(), kb.to_vec())) {
                        Some(i) => *i,
                        None => {
                            let Some(key) = BlobKey::decode(kb) else {
                                continue;
                            };
                            if hits.len() == limit {
                                return Ok(hits);
                            }
                            at.insert((repo.to_owned(), kb.to_vec()), hits.len());
                            hits.push(PathHit {
                                repo: repo.to_owned(),
                                key,
                                paths: Vec::new(),
                            });
                            hits.len() - 1
                        }
                    };
                    if !hits[slot].paths.contains(p) {
                        hits[slot].paths.push(p.clone());
                    }
                }
            }
        }
        Ok(hits)
    }

    /// The tags pointing at version `key` of `repo`, in order.
    pub fn version_tags(&self, repo: &str, key: &BlobKey) -> Result<Vec<String>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let mut by_key = tags_by_key(&txn.open_table(schema::TAGS)?, repo)?;
        Ok(by_key.remove(&key.encode()).unwrap_or_default())
    }

    /// The versions of image `repo`: every manifest stored in it, with its tags, counters
    /// and index record, newest push first.
    pub fn list_versions(&self, repo: &str) -> Result<Vec<VersionSummary>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let manifests = txn.open_table(schema::MANIFESTS)?;
        let tags = txn.open_table(schema::TAGS)?;
        let versions = txn.open_table(schema::PACKAGE_VERSIONS)?;
        let pushed = txn.open_table(schema::PACKAGE_PUSHED)?;
        let downloads = txn.open_table(schema::PACKAGE_DOWNLOADS)?;
        let mut by_key = tags_by_key(&tags, repo)?;
        let mut out = Vec::new();
        let start: (&str, &[u8]) = (repo, &[]);
        for entry in manifests.range(start..)? {
            let (k, _) = entry?;
            let (r, kb) = k.value();
            if r != repo {
                break;
            }
            let Some(key) = BlobKey::decode(kb) else {
                continue;
            };
            let record = match versions.get((repo, kb))? {
                Some(v) => Some(decode_record(v.value())?),
                None => None,
            };
            out.push(VersionSummary {
                tags: by_key.remove(kb).unwrap_or_default(),
                stats: VersionStats {
                    pushed_at: pushed.get((repo, kb))?.map(|v| v.value()),
                    downloads: downloads.get((repo, kb))?.map(|v| v.value()).unwrap_or(0),
                },
                record,
                key,
            });
        }
        out.sort_by_key(|v| std::cmp::Reverse(v.stats.pushed_at));
        Ok(out)
    }

    /// Adds to versions' download counts in one commit: (repository, manifest key, count).
    /// Counts of versions deleted meanwhile are dropped.
    pub fn add_downloads(&self, items: &[(String, BlobKey, u64)]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let items = items
            .iter()
            .map(|(r, k, n)| (r.clone(), k.encode(), *n))
            .collect();
        self.submit(AddDownloads(items))
    }

    /// How many manifests wait for the indexer.
    pub fn package_queue_len(&self) -> Result<u64, StoreError> {
        let txn = self.inner.db.begin_read()?;
        txn.open_table(schema::PACKAGE_QUEUE)?.len()
    }

    /// Takes manifests off the package queue (their details are recorded, or they are gone),
    /// durably: after a crash they are not worked on again.
    pub fn package_done(&self, done: &[(String, BlobKey)]) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        let items = done.iter().map(|(r, k)| (r.clone(), k.encode())).collect();
        self.submit(PackageDone(items))
    }
}

/// `repo`'s tags grouped by the manifest key they point at, each group in order.
fn tags_by_key(
    tags: &crate::kv::ReadOnlyTable<(&'static str, &'static str), &'static [u8]>,
    repo: &str,
) -> Result<std::collections::BTreeMap<Vec<u8>, Vec<String>>, StoreError> {
    let mut by_key: std::collections::BTreeMap<Vec<u8>, Vec<String>> = Default::default();
    for entry in tags.range::<(&str, &str)>((repo, "")..)? {
        let (k, v) = entry?;
        let (r, tag) = k.value();
        if r != repo {
            break;
        }
        by_key
            .entry(v.value().to_vec())
            .or_default()
            .push(tag.to_owned());
    }
    Ok(by_key)
}

/// The entry at `path` of version `kb` of `repo`, from the directory chunks in `dirs`.
fn entry_in(
    dirs: &impl ReadableTable<(&'static str, &'static [u8], &'static [u8]), &'static [u8]>,
    repo: &str,
    kb: &[u8],
    path: &[u8],
) -> Result<Option<FsNode>, StoreError> {
    let (dir, name) = crate::package::layer::split_last(path);
    if name.is_empty() {
        return Ok(None);
    }
    let (first, probe) = (chunk_key(dir, b""), chunk_key(dir, name));
    let lo: (&str, &[u8], &[u8]) = (repo, kb, &first[..]);
    let hi: (&str, &[u8], &[u8]) = (repo, kb, &probe[..]);
    // The chunk holding `name` is the last one keyed at or before it.
    let Some(e) = dirs.range(lo..=hi)?.next_back() else {
        return Ok(None);
    };
    let chunk = schema::decode_dir_chunk(e?.1.value())?;
    Ok(chunk
        .binary_search_by(|(n, _)| (**n).cmp(name))
        .ok()
        .map(|i| chunk[i].1.clone()))
}

/// The layer keys a record names.
fn record_layers(r: &VersionRecord) -> impl Iterator<Item = BlobKey> + '_ {
    r.layers.iter().filter_map(|l| BlobKey::parse(&l.digest))
}

fn decode_record(b: &[u8]) -> Result<VersionRecord, StoreError> {
    serde_json::from_slice(b)
        .map_err(|e| StoreError::new(format!("a version record does not decode: {e}")))
}

#[cfg(test)]
mod tests {
    use crate::package::layer::{LayerChange, LayerEntry};
    use crate::package::{EntryKind, FsTree, LayerListing, VersionRecord};
    use crate::{BlobKey, Engine, EngineOptions, ManifestRef, NewManifest};

    fn manifest(body: &[u8], tag: &str) -> NewManifest {
        NewManifest {
            key: BlobKey::sha256_of(body),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            body: body.to_vec(),
            tags: vec![tag.into()],
            blobs: vec![],
            external: vec![],
            manifests: vec![],
            subject: None,
        }
    }

    fn tree(n: usize) -> FsTree {
        let mut changes = Vec::new();
        for i in 0..n {
            changes.push(LayerChange::Entry(LayerEntry {
                path: format!("usr/bin/f{i:05}").into_bytes().into(),
                meta: crate::package::EntryMeta {
                    kind: EntryKind::File,
                    size: i as u64,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    mtime: 0,
                    link: None,
                },
            }));
        }
        let mut t = FsTree::new();
        t.apply(
            0,
            &LayerListing {
                changes,
                ..LayerListing::default()
            },
        );
        t
    }

    #[test]
    fn a_version_is_recorded_paged_by_directory_counted_and_forgotten_with_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        let m = manifest(b"{\"a\":1}", "1.0");
        let key = m.key.clone();
        let _ = e.put_manifest("acme/web/app", m).unwrap();
        assert!(e.version_queued("acme/web/app", &key).unwrap());
        assert!(e
            .version_stats("acme/web/app", &key)
            .unwrap()
            .pushed_at
            .is_some());
        let rec = VersionRecord {
            kind: "image".into(),
            total_files: Some(2503),
            ..VersionRecord::default()
        };
        e.put_version("acme/web/app", &key, &rec, Some(&tree(2500)))
            .unwrap();
        assert!(!e.version_queued("acme/web/app", &key).unwrap());
        assert_eq!(e.version("acme/web/app", &key).unwrap(), Some(rec.clone()));
        // The root, then a page at a time across chunk boundaries.
        let root = e
            .version_dir("acme/web/app", &key, b"", None, 10)
            .unwrap()
            .unwrap();
        assert_eq!(root.entries.len(), 1);
        assert_eq!(&*root.entries[0].0, b"usr");
        let mut names = Vec::new();
        let mut after: Option<Box<[u8]>> = None;
        loop {
            let page = e
                .version_dir("acme/web/app", &key, b"usr/bin", after.as_deref(), 700)
                .unwrap()
                .unwrap();
            names.extend(page.entries.iter().map(|(n, _)| n.clone()));
            after = page.entries.last().map(|(n, _)| n.clone());
            if !page.more {
                break;
            }
        }
        assert_eq!(names.len(), 2500);
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        assert!(e
            .version_dir("acme/web/app", &key, b"nope", None, 10)
            .unwrap()
            .is_none());
        let node = e
            .version_entry("acme/web/app", &key, b"usr/bin/f01999")
            .unwrap()
            .unwrap();
        assert_eq!(node.meta.size, 1999);
        assert!(e
            .version_entry("acme/web/app", &key, b"usr/bin/f9")
            .unwrap()
            .is_none());
        // Pushed again, recorded with its files first and the checksums after: queued
        // until they are in.
        let _ = e
            .put_manifest("acme/web/app", manifest(b"{\"a\":1}", "1.0"))
            .unwrap();
        e.put_version_listed("acme/web/app", &key, &rec, Some(&tree(3)))
            .unwrap();
        assert!(e.version_queued("acme/web/app", &key).unwrap());
        let sums: std::collections::BTreeMap<String, crate::package::Checksums> =
            [("1.0".to_owned(), crate::package::Checksums::default())].into();
        e.put_checksums("acme/web/app", &key, sums.clone(), None)
            .unwrap();
        assert!(!e.version_queued("acme/web/app", &key).unwrap());
        let got = e.version("acme/web/app", &key).unwrap().unwrap();
        assert_eq!((got.checksums, got.total_files), (sums, Some(2503)));
        // Counts add up, in batches.
        let batch = [("acme/web/app".to_owned(), key.clone(), 2)];
        e.add_downloads(&batch).unwrap();
        e.add_downloads(&batch).unwrap();
        assert_eq!(e.version_stats("acme/web/app", &key).unwrap().downloads, 4);
        let versions = e.list_versions("acme/web/app").unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0].tags, ["1.0"]);
        assert_eq!(versions[0].stats.downloads, 4);
        // Deleting the manifest forgets it all.
        e.delete_manifest("acme/web/app", ManifestRef::Key(&key))
            .unwrap();
        assert_eq!(e.version("acme/web/app", &key).unwrap(), None);
        assert!(e
            .version_dir("acme/web/app", &key, b"", None, 10)
            .unwrap()
            .is_none());
        assert_eq!(
            e.version_stats("acme/web/app", &key).unwrap(),
            Default::default()
        );
        // A record for a manifest deleted meanwhile is not kept, nor are its counts.
        e.put_version(
            "acme/web/app",
            &key,
            &VersionRecord::default(),
            Some(&tree(3)),
        )
        .unwrap();
        e.add_downloads(&batch).unwrap();
        assert_eq!(e.version("acme/web/app", &key).unwrap(), None);
        assert!(e
            .version_dir("acme/web/app", &key, b"", None, 10)
            .unwrap()
            .is_none());
        assert_eq!(e.version_stats("acme/web/app", &key).unwrap().downloads, 0);
    }

    fn listing(paths: &[&str]) -> LayerListing {
        LayerListing {
            changes: paths
                .iter()
                .map(|p| {
                    LayerChange::Entry(LayerEntry {
                        path: p.as_bytes().into(),
                        meta: crate::package::EntryMeta {
                            kind: EntryKind::File,
                            size: 1,
                            mode: 0o644,
                            uid: 0,
                            gid: 0,
                            mtime: 0,
                            link: None,
                        },
                    })
                })
                .collect(),
            ..LayerListing::default()
        }
    }

    #[test]
    fn a_path_search_finds_the_versions_whose_files_hold_it_and_forgets_them_with_it() {
        use crate::package::version::merge_image;
        use crate::package::{Descriptor, ManifestFacts};
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        let (repo_a, repo_b) = ("acme/web/a", "acme/web/b");
        let base = b"base layer bytes".to_vec();
        let top = b"top layer bytes".to_vec();
        let (bk, tk) = (BlobKey::sha256_of(&base), BlobKey::sha256_of(&top));
        for (repo, blob) in [(repo_a, &base), (repo_b, &base), (repo_b, &top)] {
            let up = e.start_upload(repo).unwrap();
            e.append_upload(repo, &up.id, 0, blob).unwrap();
            let _ = e
                .finish_upload(repo, &up.id, &BlobKey::sha256_of(blob))
                .unwrap();
        }
        let base_l = listing(&["usr/lib/libssl.so.3", "usr/bin/curl"]);
        let mut top_l = listing(&["opt/libssl.so.3"]);
        top_l
            .changes
            .push(LayerChange::Whiteout(b"usr/bin/curl"[..].into()));
        e.put_layer_listing(&bk, &base_l).unwrap();
        e.put_layer_listing(&tk, &top_l).unwrap();
        let layer = |k: &BlobKey| Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            digest: k.to_string(),
            size: 1,
            ..Descriptor::default()
        };
        // a: the base alone; b: the base, then a layer removing curl and adding a libssl.
        let mut versions = Vec::new();
        for (repo, layers, listings) in [
            (repo_a, vec![layer(&bk)], vec![Some(&base_l)]),
            (
                repo_b,
                vec![layer(&bk), layer(&tk)],
                vec![Some(&base_l), Some(&top_l)],
            ),
        ] {
            let m = manifest(repo.as_bytes(), "1");
            let key = m.key.clone();
            let _ = e.put_manifest(repo, m).unwrap();
            let facts = ManifestFacts {
                layers,
                ..ManifestFacts::default()
            };
            let (rec, tree) = merge_image(&facts, &listings);
            e.put_version(repo, &key, &rec, Some(&tree)).unwrap();
            versions.push(key);
        }
        let found = |name: &str, path: Option<&str>| -> Vec<(String, Vec<String>)> {
            let mut v: Vec<_> = e
                .find_paths(name.as_bytes(), path.map(str::as_bytes), 100, |_| true)
                .unwrap()
                .into_iter()
                .map(|h| {
                    let mut p: Vec<String> = h
                        .paths
                        .iter()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect();
                    p.sort();
                    (h.repo, p)
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            found("libssl.so.3", None),
            [
                (repo_a.to_owned(), vec!["usr/lib/libssl.so.3".to_owned()]),
                (
                    repo_b.to_owned(),
                    vec![
                        "opt/libssl.so.3".to_owned(),
                        "usr/lib/libssl.so.3".to_owned()
                    ]
                ),
            ]
        );
        // b's top layer removed curl: only a holds it.
        assert_eq!(
            found("curl", Some("usr/bin/curl")),
            [(repo_a.to_owned(), vec!["usr/bin/curl".to_owned()])]
        );
        assert!(found("curl", Some("bin/curl")).is_empty());
        assert_eq!(
            e.find_paths(b"libssl.so.3", None, 1, |_| true)
                .unwrap()
                .len(),
            1
        );
        let only_b = e
            .find_paths(b"libssl.so.3", None, 10, |r| r == repo_b)
            .unwrap();
        assert_eq!(only_b.len(), 1);
        assert_eq!(only_b[0].repo, repo_b);
        // Deleting a's version: only b is left.
        e.delete_manifest(repo_a, ManifestRef::Key(&versions[0]))
            .unwrap();
        assert_eq!(found("curl", None), []);
        assert_eq!(found("libssl.so.3", None).len(), 1);
    }
}
