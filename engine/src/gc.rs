//! Garbage collection, online: blobs no repository links are removed, their packs deleted
//! (a large blob is a pack of its own) or, for shared packs mostly dead, compacted by
//! copying the live blobs into the current shared pack; abandoned upload sessions expire.
//!
//! Planning reads an MVCC snapshot and never blocks anyone. Every change is an operation
//! of the committer, which checks its premise again inside its write transaction, so a
//! push, mount or delete racing the collection is never lost:
//! - a blob is removed only if, in that transaction, no repository links it (a push or
//!   mount of it that committed first wins; one that commits later stores it again);
//! - a blob is moved only if its row still names the old place, and the pack is dropped
//!   only by the last move of a pack that is not the one being appended to (no row can
//!   start naming a pack nobody appends to).
//!
//! Liveness is the link alone. A manifest can be pushed only while its blobs are linked in
//! its repository, so a blob a manifest needs is unlinked only by an explicit blob DELETE,
//! after which nobody can pull it from that repository anyway.
//!
//! Pack files are unlinked after the commit; pulls that already hold one keep reading it,
//! and the committer opens it in the pack cache before the commit, which keeps it for
//! [`RETIRE_GRACE_SECS`], so a pull that looked the blob up just before the change still
//! finds the old bytes.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::TryLockError;

use redb::{ReadableDatabase, ReadableTable};

use crate::commit::{Committer, Tables};
use crate::keys::BlobKey;
use crate::pack::format::{pack_file_name, PACK_HEADER_LEN, RECORD_HEADER_LEN};
use crate::{schema, BlobLoc, Inner, StoreError};

/// How long (seconds) a retired pack stays open in the pack cache after its file is
/// unlinked.
pub(crate) const RETIRE_GRACE_SECS: u64 = 60;

/// Blobs swept per transaction, bounding how long one holds the committer.
const SWEEP_BATCH: usize = 1024;
/// Bytes moved per transaction during compaction, likewise.
const MOVE_BATCH_BYTES: u64 = 64 << 20;

/// What to do.
#[derive(Clone, Copy, Debug, Default)]
pub struct GcOptions {
    /// Report what would be reclaimed and change nothing.
    pub dry_run: bool,
    /// A shared pack is compacted once its live data is below this share of its data
    /// (0.0 to 1.0; 0.5 by default through [`GcOptions::standard`]).
    pub compact_below: f64,
}

impl GcOptions {
    /// Compacts shared packs less than half live.
    pub fn standard() -> GcOptions {
        GcOptions {
            dry_run: false,
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

/// Collections in this process: the one running, a request to stop it, and what they did
/// since open (for `/metrics`).
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Held while a collection runs: one at a time.
    pub running: std::sync::Mutex<()>,
    pub cancel: std::sync::atomic::AtomicBool,
    pub runs: AtomicU64,
    pub blobs: AtomicU64,
    pub pack_bytes: AtomicU64,
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
    if !opts.dry_run {
        report.uploads_expired = crate::upload::expire(inner, commit)? as u64;
    }

    // Sweep: blobs nobody links.
    let plan = plan(inner)?;
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
            let s = commit.sweep(keys)?;
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
            let m = commit.compact(pack, step, i + 1 == n && unreadable == 0)?;
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

fn plan(inner: &Inner) -> Result<Plan, StoreError> {
    read_plan(inner, true)
}

fn plan_live(inner: &Inner) -> Result<Plan, StoreError> {
    read_plan(inner, false)
}

/// One pass over the blobs of a read snapshot. With `sweeping`, blobs nobody links are
/// listed as unlinked; otherwise every blob counts as live.
fn read_plan(inner: &Inner, sweeping: bool) -> Result<Plan, StoreError> {
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
        if sweeping && !is_linked(&linked_by, kb)? {
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

/// Whether any repository links the blob encoded as `kb`.
fn is_linked(
    linked_by: &impl ReadableTable<(&'static [u8], &'static str), ()>,
    kb: &[u8],
) -> Result<bool, StoreError> {
    let from: (&[u8], &str) = (kb, "");
    let mut range = linked_by.range::<(&[u8], &str)>((Bound::Included(from), Bound::Unbounded))?;
    Ok(match range.next() {
        Some(entry) => entry?.0.value().0 == kb,
        None => false,
    })
}

/// Inside the committer's transaction: removes each blob of `keys` that no repository
/// links now, and the pack row of each single-blob pack so emptied. Returns the paths of
/// those packs' files for deletion after the commit.
pub(crate) fn apply_sweep(
    t: &mut Tables<'_>,
    packs_dir: &std::path::Path,
    keys: &[Vec<u8>],
) -> Result<(Swept, Vec<std::path::PathBuf>), StoreError> {
    let mut out = Swept::default();
    let mut files = Vec::new();
    for kb in keys {
        if is_linked(&t.linked_by, kb)? {
            continue;
        }
        let Some(v) = t.blobs.remove(&kb[..])? else {
            continue;
        };
        let loc = schema::decode_loc(v.value())?;
        drop(v);
        out.blobs += 1;
        out.bytes += loc.len;
        let row = t
            .packs
            .get(loc.pack)?
            .map(|v| schema::decode_pack(v.value()))
            .transpose()?;
        if let Some(row) = row.filter(|r| r.kind == schema::PACK_SINGLE) {
            t.packs.remove(loc.pack)?;
            out.packs.push(loc.pack);
            out.pack_bytes += row.committed_len;
            files.push(packs_dir.join(pack_file_name(loc.pack)));
        }
    }
    Ok((out, files))
}

/// The blob a move names, if its row still says it is at `loc`.
pub(crate) fn still_at(
    t: &Tables<'_>,
    kb: &[u8],
    loc: &BlobLoc,
) -> Result<Option<BlobKey>, StoreError> {
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
