//! Garbage collection, online. First, links of blobs into repositories that no manifest
//! there references and nobody used for a grace (`unreferenced_after`, see `touch.rs`) are
//! removed: that is how deleting an image gives its layers back. Then blobs no repository
//! links are removed, their packs deleted (a large blob is a pack of its own) or, for
//! shared packs mostly dead, compacted by copying the live blobs into the current shared
//! pack. Abandoned upload sessions expire.
//!
//! Planning reads an MVCC snapshot and never blocks anyone. Every change is an operation
//! of the committer, which checks its premise again inside its write transaction, so a
//! push, mount or delete racing the collection is never lost:
//! - a link is removed only if it is still unused then: a manifest PUT since the snapshot
//!   marked the links it names as used when the committer applied it, and a client that
//!   found a blob (HEAD, GET, mount) before naming it in a manifest marked it too;
//! - a blob is removed only if, in that transaction, no repository links it (a push or
//!   mount of it that committed first wins; one that commits later stores it again);
//! - a blob is moved only if its row still names the old place, and the pack is dropped
//!   only by the last move of a pack that is not the one being appended to (no row can
//!   start naming a pack nobody appends to).
//!
//! A manifest can be pushed only while its blobs are linked in its repository, so a blob
//! a manifest references is unlinked only by an explicit blob DELETE, after which nobody
//! can pull it from that repository anyway.
//!
//! Pack files are unlinked after the commit; pulls that already hold one keep reading it,
//! and the committer opens it in the pack cache before the commit, which keeps it for
//! [`RETIRE_GRACE_SECS`](crate::pack::reader::RETIRE_GRACE_SECS), so a pull that looked the blob up just before the change still
//! finds the old bytes.

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::TryLockError;

use crate::kv::ReadableTable;

use crate::commit::{Batch, Committer, Tables, Write};
use crate::keys::BlobKey;
use crate::pack::format::{PACK_HEADER_LEN, RECORD_HEADER_LEN};
use crate::touch::link_hash;
use crate::{schema, BlobLoc, Inner, StoreError};

/// Blobs swept per transaction, bounding how long one holds the committer.
const SWEEP_BATCH: usize = 1024;
/// Bytes moved per transaction during compaction, likewise.
const MOVE_BATCH_BYTES: u64 = 64 << 20;

/// What to do.
#[derive(Clone, Copy, Debug, Default)]
pub struct GcOptions {
    /// Report what would be reclaimed and change nothing.
    pub dry_run: bool,
    /// Links (a blob in a repository) that no manifest of the repository references are
    /// removed once unused for this many seconds (see `touch.rs` for "used"); `None`
    /// keeps them until the blob is deleted from the repository.
    pub unreferenced_after: Option<u64>,
    /// A shared pack is compacted once its live data is below this share of its data
    /// (0.0 to 1.0; 0.5 by default through [`GcOptions::standard`]).
    pub compact_below: f64,
}

impl GcOptions {
    /// Compacts shared packs less than half live; drops links no manifest references after
    /// a day unused.
    pub fn standard() -> GcOptions {
        GcOptions {
            dry_run: false,
            unreferenced_after: Some(24 * 3600),
            compact_below: 0.5,
        }
    }
}

/// What a collection did (or, dry, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Nothing was changed: the figures say what a collection would do now.
    pub dry_run: bool,
    /// Upload sessions past their expiry, removed with their files.
    pub uploads_expired: u64,
    /// Links of blobs into repositories that no manifest there references any more.
    pub links_removed: u64,
    /// Blobs no repository linked, removed.
    pub blobs_removed: u64,
    /// Their data bytes.
    pub blob_bytes_removed: u64,
    /// Live blobs copied out of shared packs being compacted.
    pub blobs_moved: u64,
    /// Their data bytes.
    pub bytes_moved: u64,
    /// Pack files deleted: single-blob packs of removed blobs and compacted shared packs.
    pub packs_removed: u64,
    /// Bytes of those pack files: the space given back to the file system once no pull
    /// reads them (minus `bytes_moved` written again elsewhere).
    pub pack_bytes_removed: u64,
    /// Live blobs compaction could not read: left in place with their pack (`berth check`
    /// says more).
    pub blobs_unreadable: u64,
}

/// Why a collection did not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// Another collection holds the store; nothing was done.
    #[error("a garbage collection is already running; wait for it to finish")]
    Busy,
    /// Reading or writing the store failed; what committed before stays done.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The cluster-wide lock a collection holds (`metadb::MetaDb::cluster_lock`).
const GC_LOCK: i64 = 0x62_65_72_74_68_67; // "berthg"

/// Collections in this process: the one running, a request to stop it, and what they did
/// since open (for `/metrics`).
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Held while a collection runs: one at a time.
    pub running: std::sync::Mutex<()>,
    pub cancel: std::sync::atomic::AtomicBool,
    /// Links (by [`link_hash`]) this run removed or is removing, until made again: a
    /// lookup that read its snapshot just before the removal committed answers "not
    /// here" for them, lest a client skip an upload for a blob about to be gone.
    unlinked: std::sync::Mutex<HashSet<u64>>,
    any_unlinked: std::sync::atomic::AtomicBool,
    pub runs: AtomicU64,
    pub blobs: AtomicU64,
    pub pack_bytes: AtomicU64,
}

impl State {
    fn lock_unlinked(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.unlinked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the link was removed by garbage collection (and not made again since).
    pub(crate) fn was_unlinked(&self, repo: &str, kb: &[u8]) -> bool {
        self.any_unlinked.load(Relaxed) && self.lock_unlinked().contains(&link_hash(repo, kb))
    }

    /// The link was made again.
    pub(crate) fn relinked(&self, repo: &str, kb: &[u8]) {
        self.unmark(&[link_hash(repo, kb)]);
    }

    /// These links (by hash) are there after all: their removal did not commit.
    pub(crate) fn unmark(&self, links: &[u64]) {
        if !links.is_empty() && self.any_unlinked.load(Relaxed) {
            let mut set = self.lock_unlinked();
            for h in links {
                set.remove(h);
            }
        }
    }

    /// Nothing is being or was recently unlinked (a new run).
    pub(crate) fn forget_unlinked(&self) {
        if self.any_unlinked.swap(false, Relaxed) {
            self.lock_unlinked().clear();
        }
    }
}

/// A sweep's result, from the committer.
#[derive(Debug, Default)]
pub(crate) struct Swept {
    pub blobs: u64,
    pub bytes: u64,
    pub packs: Vec<u64>,
    pub pack_bytes: u64,
}

/// A compaction step's result, from the committer.
#[derive(Debug, Default)]
pub(crate) struct Moved {
    /// The pack is being appended to: nothing was done.
    pub skipped: bool,
    /// Blobs that could not be read, left where they are (so is their pack).
    pub unreadable: u64,
    pub blobs: u64,
    pub bytes: u64,
    /// The pack's row was removed and its file will be (this was the last step).
    pub removed_bytes: Option<u64>,
}

pub(crate) fn run(inner: &Inner, commit: &Committer, opts: GcOptions) -> Result<GcReport, GcError> {
    let _one = match inner.gc.running.try_lock() {
        Ok(g) => g,
        // A collection that panicked left nothing half done: its changes were whole
        // transactions.
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return Err(GcError::Busy),
    };
    // Nodes sharing the metadata collect one at a time too.
    let Some(_cluster) = inner.db.cluster_lock(GC_LOCK)? else {
        return Err(GcError::Busy);
    };
    let r = collect(inner, commit, opts);
    // Cancelled runs count too: what they did is done.
    if let Some(report) = r.as_ref().ok().filter(|r| !r.dry_run) {
        let t = &inner.gc;
        t.runs.fetch_add(1, Relaxed);
        t.blobs.fetch_add(report.blobs_removed, Relaxed);
        t.pack_bytes.fetch_add(report.pack_bytes_removed, Relaxed);
    }
    // A cancel asked for while none ran ends the next one at once; it is spent by then.
    inner.gc.cancel.store(false, Relaxed);
    r
}

fn collect(inner: &Inner, commit: &Committer, opts: GcOptions) -> Result<GcReport, GcError> {
    let cancelled = || inner.gc.cancel.load(Relaxed);
    inner.packs.purge_retired((inner.clock)());
    let mut report = GcReport {
        dry_run: opts.dry_run,
        ..GcReport::default()
    };
    report.uploads_expired = if opts.dry_run {
        crate::upload::count_expired(inner)
    } else {
        crate::upload::expire(inner, commit)?
    } as u64;
    if !opts.dry_run && inner.fs.shared() {
        // Parts of sessions that ended on a node that could not delete them.
        crate::upload::sweep_parts(inner)?;
    }

    // Links nothing references any more (their manifests were deleted), unused for the
    // grace: a dry run counts them as gone when it counts blobs.
    let mut gone = HashSet::new();
    if let Some(grace) = opts.unreferenced_after {
        // Used at or before it: stale. Fixed at the snapshot, so a use after it (a
        // manifest PUT naming the link, say) keeps the link however long the run takes.
        let cutoff = (inner.clock)().saturating_sub(grace);
        inner.touches.forget_before(cutoff);
        let stale = stale_links(inner, cutoff)?;
        if opts.dry_run {
            report.links_removed = stale.len() as u64;
            gone = stale.iter().map(|(r, k)| link_hash(r, k)).collect();
        } else {
            inner.gc.forget_unlinked();
            for chunk in stale.chunks(SWEEP_BATCH) {
                if cancelled() {
                    return Ok(report);
                }
                report.links_removed += commit
                    .submit(UnlinkStale {
                        links: chunk.to_vec(),
                        cutoff,
                    })?
                    .into_inner();
            }
        }
    }

    // Sweep: blobs nobody links.
    let plan = plan(inner, &gone)?;
    if opts.dry_run {
        report.blobs_removed = plan.unlinked.len() as u64;
        report.blob_bytes_removed = plan.unlinked.iter().map(|(_, l)| l.len).sum();
        for (_, loc) in &plan.unlinked {
            if let Some(&(schema::PACK_SINGLE, len)) = plan.packs.get(&loc.pack) {
                report.packs_removed += 1;
                report.pack_bytes_removed += len;
            }
        }
    } else {
        for chunk in plan.unlinked.chunks(SWEEP_BATCH) {
            if cancelled() {
                return Ok(report);
            }
            let keys = chunk.iter().map(|(k, _)| k.clone()).collect();
            let s = commit.submit(Sweep { keys })?.into_inner();
            report.blobs_removed += s.blobs;
            report.blob_bytes_removed += s.bytes;
            report.packs_removed += s.packs.len() as u64;
            report.pack_bytes_removed += s.pack_bytes;
        }
    }

    // Compaction: shared packs mostly dead, from a snapshot taken after the sweep (a dry
    // run counts the blobs it would have removed as dead already).
    let after = if opts.dry_run {
        plan.without_unlinked()
    } else {
        plan_live(inner)?
    };
    for (pack, live) in after.compactable(opts.compact_below) {
        let total = live.iter().map(|(_, l)| l.len).sum::<u64>();
        if opts.dry_run {
            report.blobs_moved += live.len() as u64;
            report.bytes_moved += total;
            report.packs_removed += 1;
            report.pack_bytes_removed += after.packs.get(&pack).map_or(0, |p| p.1);
            continue;
        }
        // A pack with nothing live left is dropped by one empty step.
        let steps: Vec<_> = if live.is_empty() {
            vec![Vec::new()]
        } else {
            batches(&live).collect()
        };
        let n = steps.len();
        let mut unreadable = 0;
        for (i, step) in steps.into_iter().enumerate() {
            if cancelled() {
                return Ok(report);
            }
            // The pack goes only if every blob left it.
            let last = i + 1 == n && unreadable == 0;
            let m = commit
                .submit(Compact {
                    pack,
                    moves: step,
                    last,
                })?
                .into_inner();
            if m.skipped {
                break;
            }
            unreadable += m.unreadable;
            report.blobs_unreadable += m.unreadable;
            report.blobs_moved += m.blobs;
            report.bytes_moved += m.bytes;
            if let Some(b) = m.removed_bytes {
                report.packs_removed += 1;
                report.pack_bytes_removed += b;
            }
        }
    }
    Ok(report)
}

/// A blob by encoded key, and where it is.
pub(crate) type Placed = (Vec<u8>, BlobLoc);

/// Consecutive runs of moves of at most [`MOVE_BATCH_BYTES`] (one blob may exceed it).
fn batches(live: &[Placed]) -> impl Iterator<Item = Vec<Placed>> + '_ {
    let mut rest = live;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0u64;
        let n = rest
            .iter()
            .take_while(|(_, l)| {
                let fits = bytes == 0 || bytes + l.len <= MOVE_BATCH_BYTES;
                bytes += l.len;
                fits
            })
            .count()
            .max(1);
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head.to_vec())
    })
}

/// A snapshot of what blobs live where.
struct Plan {
    /// Blobs no repository links, with where they are.
    unlinked: Vec<Placed>,
    /// Linked blobs in shared packs, by pack.
    live_shared: HashMap<u64, Vec<Placed>>,
    /// Every pack: (kind, committed length).
    packs: HashMap<u64, (u8, u64)>,
    /// The shared pack being appended to when the snapshot was read: never compacted.
    active: u64,
}

impl Plan {
    /// This plan as it would be once its unlinked blobs are gone.
    fn without_unlinked(mut self) -> Plan {
        self.unlinked.clear();
        self
    }

    /// Shared packs whose live data is below `below` of their data, with their live blobs
    /// in pack order. Packs with no live blob at all are among them (an empty list).
    fn compactable(&self, below: f64) -> Vec<(u64, Vec<Placed>)> {
        let mut out = Vec::new();
        for (&id, &(kind, len)) in &self.packs {
            if kind != schema::PACK_SHARED || id == self.active {
                continue;
            }
            let data = len.saturating_sub(PACK_HEADER_LEN);
            let mut live = self.live_shared.get(&id).cloned().unwrap_or_default();
            let live_bytes: u64 = live.iter().map(|(_, l)| l.len + RECORD_HEADER_LEN).sum();
            if data > 0 && (live_bytes as f64) < below * data as f64 {
                live.sort_by_key(|(_, l)| l.offset);
                out.push((id, live));
            }
        }
        out.sort_by_key(|(id, _)| *id);
        out
    }
}

/// Blobs no repository links (counting the links in `gone` as removed already), and the
/// live blobs of shared packs.
fn plan(inner: &Inner, gone: &HashSet<u64>) -> Result<Plan, StoreError> {
    read_plan(inner, Some(gone))
}

/// The blobs of shared packs, all counted as live.
fn plan_live(inner: &Inner) -> Result<Plan, StoreError> {
    read_plan(inner, None)
}

/// One pass over the blobs of a read snapshot. When `sweeping` (with the links to count as
/// gone), blobs nobody links are listed as unlinked; otherwise every blob counts as live.
fn read_plan(inner: &Inner, sweeping: Option<&HashSet<u64>>) -> Result<Plan, StoreError> {
    // Read before the snapshot: a pack that stops being appended to afterwards is only
    // skipped this time.
    let active = inner
        .active_shared
        .load(std::sync::atomic::Ordering::Acquire);
    let txn = inner.db.begin_read()?;
    let blobs = txn.open_table(schema::BLOBS)?;
    let linked_by = txn.open_table(schema::BLOB_LINKED_BY)?;
    let mut packs = HashMap::new();
    for entry in txn.open_table(schema::PACKS)?.iter()? {
        let (k, v) = entry?;
        let row = schema::decode_pack(v.value())?;
        packs.insert(k.value(), (row.kind, row.committed_len));
    }
    let mut plan = Plan {
        unlinked: Vec::new(),
        live_shared: HashMap::new(),
        packs,
        active,
    };
    for entry in blobs.iter()? {
        let (k, v) = entry?;
        let kb = k.value();
        let loc = schema::decode_loc(v.value())?;
        let unlinked = match sweeping {
            Some(gone) => !is_linked(&linked_by, kb, gone)?,
            None => false,
        };
        if unlinked {
            plan.unlinked.push((kb.to_vec(), loc));
        } else if plan
            .packs
            .get(&loc.pack)
            .is_some_and(|p| p.0 == schema::PACK_SHARED)
        {
            plan.live_shared
                .entry(loc.pack)
                .or_default()
                .push((kb.to_vec(), loc));
        }
    }
    Ok(plan)
}

/// Whether any repository links the blob encoded as `kb`, not counting the links (by
/// [`link_hash`]) in `gone`.
fn is_linked(
    linked_by: &impl ReadableTable<(&'static [u8], &'static str), ()>,
    kb: &[u8],
    gone: &HashSet<u64>,
) -> Result<bool, StoreError> {
    let from: (&[u8], &str) = (kb, "");
    for entry in linked_by.range::<(&[u8], &str)>((Bound::Included(from), Bound::Unbounded))? {
        let (k, _) = entry?;
        let (b, repo) = k.value();
        if b != kb {
            break;
        }
        if gone.is_empty() || !gone.contains(&link_hash(repo, kb)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Links no manifest of their repository references and nobody used after `cutoff`, as
/// (repository, encoded blob key).
fn stale_links(inner: &Inner, cutoff: u64) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let txn = inner.db.begin_read()?;
    let mut referenced = HashSet::new();
    for entry in txn.open_table(schema::MANIFEST_REFS)?.iter()? {
        let (k, kind) = entry?;
        if kind.value() == schema::REF_BLOB {
            let (repo, _, target) = k.value();
            referenced.insert(link_hash(repo, target));
        }
    }
    let uses = txn.open_table(schema::LINK_USES)?;
    let shared = inner.fs.shared();
    let mut out = Vec::new();
    for entry in txn.open_table(schema::BLOB_LINKS)?.iter()? {
        let (k, _) = entry?;
        let (repo, kb) = k.value();
        if referenced.contains(&link_hash(repo, kb)) || inner.touches.last(repo, kb) > cutoff {
            continue;
        }
        if shared && uses.get((repo, kb))?.is_some_and(|t| t.value() > cutoff) {
            continue;
        }
        out.push((repo.to_owned(), kb.to_vec()));
    }
    Ok(out)
}

/// Removes the links (repository, encoded key) last used at or before `cutoff`.
pub(crate) struct UnlinkStale {
    pub(crate) links: Vec<(String, Vec<u8>)>,
    pub(crate) cutoff: u64,
}

impl Write for UnlinkStale {
    /// How many were removed.
    type Out = u64;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<u64, StoreError> {
        let removed = apply_unlink_stale(&mut b.t, b.inner, &self.links, self.cutoff)?;
        let n = removed.len() as u64;
        b.unlinked(removed);
        Ok(n)
    }
}

/// Removes the blobs (encoded keys) no repository links.
struct Sweep {
    keys: Vec<Vec<u8>>,
}

impl Write for Sweep {
    type Out = Swept;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<Swept, StoreError> {
        let (swept, files) = apply_sweep(b, &self.keys)?;
        for &p in &swept.packs {
            b.inner.packs.retire(p, (b.inner.clock)());
        }
        for f in files {
            b.delete_after(f);
        }
        Ok(swept)
    }
}

/// Moves the blobs of `moves` still in `pack` to the shared pack (the bytes are synced
/// with the batch, before it commits) and points their rows there; with `last`, drops the
/// pack's row and deletes its file after the commit.
struct Compact {
    pack: u64,
    moves: Vec<Placed>,
    last: bool,
}

impl Write for Compact {
    type Out = Moved;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<Moved, StoreError> {
        let pack = self.pack;
        let mut out = Moved::default();
        if b.shared_pack() == Some(pack) {
            out.skipped = true;
            return Ok(out);
        }
        // Plain reads, not a map: a pack that cannot be read must cost its own blobs a
        // move, not the batch its writes (nor the process a SIGBUS).
        let file = b.inner.packs.file(pack);
        for (kb, loc) in &self.moves {
            let Some(key) = still_at(&b.t, kb, loc)? else {
                continue;
            };
            let read = file.as_ref().ok().and_then(|f| {
                let mut data = vec![0u8; usize::try_from(loc.len).ok()?];
                f.file().read_exact_at(&mut data, loc.offset).ok()?;
                Some(data)
            });
            let Some(data) = read else {
                out.unreadable += 1;
                continue;
            };
            let to = b.append_shared(&key, &data)?;
            b.put_blob(kb, &to)?;
            out.blobs += 1;
            out.bytes += loc.len;
        }
        // A blob left behind keeps its pack.
        if self.last && out.unreadable == 0 {
            if let Some(row) = b.remove_pack(pack)? {
                out.removed_bytes = Some(row.committed_len);
                b.inner.packs.retire(pack, (b.inner.clock)());
                b.delete_after(crate::pack::format::pack_name(pack));
            }
        }
        Ok(out)
    }
}

/// Inside the committer's transaction: removes each link of `links` still unused after
/// `cutoff`, and returns the hashes of those removed. A manifest PUT since the plan's
/// snapshot has used the links it names (the committer marks them as it applies the PUT),
/// so none of those goes.
fn apply_unlink_stale(
    t: &mut Tables<'_>,
    inner: &Inner,
    links: &[(String, Vec<u8>)],
    cutoff: u64,
) -> Result<Vec<u64>, StoreError> {
    let mut removed = Vec::new();
    for (repo, kb) in links {
        let h = link_hash(repo, kb);
        // Marked before the check: a lookup that uses the link after the check still
        // sees the mark after its own read (see `blob::stat`).
        inner.gc.any_unlinked.store(true, Relaxed);
        inner.gc.lock_unlinked().insert(h);
        // Another node's use, written down in its commit (shared stores only).
        let used_elsewhere = inner.fs.shared()
            && t.link_uses
                .get((repo.as_str(), &kb[..]))?
                .is_some_and(|u| u.value() > cutoff);
        let gone = !used_elsewhere
            && inner.touches.last(repo, kb) <= cutoff
            && t.links.remove((repo.as_str(), &kb[..]))?.is_some();
        if gone {
            t.linked_by.remove((&kb[..], repo.as_str()))?;
            t.link_uses.remove((repo.as_str(), &kb[..]))?;
            removed.push(h);
        } else {
            inner.gc.lock_unlinked().remove(&h);
        }
    }
    Ok(removed)
}

/// Inside the committer's transaction: removes each blob of `keys` that no repository
/// links now, and the pack row of each single-blob pack so emptied. Returns the names of
/// those packs' files for deletion after the commit.
fn apply_sweep(
    b: &mut Batch<'_, '_>,
    keys: &[Vec<u8>],
) -> Result<(Swept, Vec<String>), StoreError> {
    let mut out = Swept::default();
    let mut files = Vec::new();
    for kb in keys {
        if is_linked(&b.t.linked_by, kb, &HashSet::new())? {
            continue;
        }
        let Some(loc) = b.remove_blob(kb)? else {
            continue;
        };
        // What the package index knew of it goes with it.
        crate::package_store::apply_forget_listing(&mut b.t, kb)?;
        out.blobs += 1;
        out.bytes += loc.len;
        let row =
            b.t.packs
                .get(loc.pack)?
                .map(|v| schema::decode_pack(v.value()))
                .transpose()?;
        if let Some(row) = row.filter(|r| r.kind == schema::PACK_SINGLE) {
            b.remove_pack(loc.pack)?;
            out.packs.push(loc.pack);
            out.pack_bytes += row.committed_len;
            files.push(crate::pack::format::pack_name(loc.pack));
        }
    }
    Ok((out, files))
}

/// The blob a move names, if its row still says it is at `loc`.
fn still_at(t: &Tables<'_>, kb: &[u8], loc: &BlobLoc) -> Result<Option<BlobKey>, StoreError> {
    let now = t
        .blobs
        .get(kb)?
        .map(|v| schema::decode_loc(v.value()))
        .transpose()?;
    if now.as_ref() != Some(loc) {
        return Ok(None);
    }
    Ok(Some(
        BlobKey::decode(kb).ok_or(schema::Corrupt("blob key"))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, EngineOptions, NewManifest};
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::Arc;

    const G: u64 = 100;

    /// A store on a clock (unix seconds) the test moves.
    fn at_clock(dir: &std::path::Path, opts: EngineOptions) -> (Engine, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(1_000_000));
        let clock = {
            let now = now.clone();
            Arc::new(move || now.load(SeqCst))
        };
        (Engine::open_with_clock(dir, opts, clock).unwrap(), now)
    }

    fn push(e: &Engine, repo: &str, bytes: &[u8]) -> BlobKey {
        let key = BlobKey::sha256_of(bytes);
        let up = e.start_upload(repo).unwrap();
        e.append_upload(repo, &up.id, 0, bytes).unwrap();
        let _ = e.finish_upload(repo, &up.id, &key).unwrap();
        key
    }

    /// A manifest PUT that commits after a collection read its plan keeps the links it
    /// names, however late the collection gets to unlinking them.
    #[test]
    fn a_manifest_put_after_the_plan_keeps_its_links_however_late_the_unlink_runs() {
        let dir = tempfile::tempdir().unwrap();
        let opts = EngineOptions {
            small_blob_bytes: 4096,
            ..EngineOptions::default()
        };
        let (e, now) = at_clock(dir.path(), opts);
        let layer = push(&e, "r", &[7u8; 50_000]);
        let config = push(&e, "r", b"{}");
        now.fetch_add(2 * G, SeqCst);
        let cutoff = now.load(SeqCst) - G;
        let stale = stale_links(&e.inner, cutoff).unwrap();
        assert_eq!(stale.len(), 2, "both unreferenced and unused");

        let body = br#"{"m":1}"#.to_vec();
        let m = NewManifest {
            key: BlobKey::sha256_of(&body),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            body,
            tags: vec!["v1".into()],
            blobs: vec![config.clone(), layer.clone()],
            external: vec![],
            manifests: vec![],
            subject: None,
        };
        let _ = e.put_manifest("r", m).unwrap();
        now.fetch_add(10 * G, SeqCst);
        let w = super::UnlinkStale {
            links: stale,
            cutoff,
        };
        assert_eq!(e.commit.submit(w).unwrap().into_inner(), 0);
        assert!(e.stat_blob("r", &layer).unwrap().is_some());
        assert!(e.stat_blob("r", &config).unwrap().is_some());
    }

    /// Old uses are forgotten, but not while a collection runs: it may be about to check
    /// one newer than its cutoff, which must not fall back to "used at open".
    #[test]
    fn uses_are_not_forgotten_under_a_running_collection() {
        let dir = tempfile::tempdir().unwrap();
        let (e, now) = at_clock(dir.path(), EngineOptions::default());
        now.fetch_add(5, SeqCst);
        let k = push(&e, "r", b"x").encode();
        now.fetch_add(10 * G, SeqCst);
        let run = e.inner.gc.running.lock().unwrap();
        e.forget_old_link_uses(Some(G));
        assert_eq!(
            e.inner.touches.last("r", &k),
            1_000_005,
            "kept during the run"
        );
        drop(run);
        e.forget_old_link_uses(Some(G));
        assert_eq!(e.inner.touches.last("r", &k), 1_000_000, "then forgotten");
    }
}
