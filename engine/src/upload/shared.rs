//! Upload sessions on a shared store, which any node may continue: a POST on one node, a
//! PATCH on a second and the PUT on a third, with no sticky sessions at the balancer.
//!
//! The session's durable state is its metadata row ([`SharedUpload`]): the length, the
//! SHA-256 state after those bytes (sha2's serialized state), and where each part starts.
//! A part is the bytes one PATCH brought, written as a whole object under `parts/` by
//! [`Vfs::put_part`](crate::vfs::Vfs::put_part) before the row naming it commits; so a
//! PATCH's 202 means the bytes are in the object store and the row says so, as a 202
//! means an `fdatasync` on a store of one node.
//!
//! Each node keeps what it received in its own upload file, as a store of one node does.
//! A node that takes up a session another node moved starts a file holding nothing below
//! the row's length (a hole) and a hash resumed from the row's state, so it hashes only
//! what it receives itself; a finish fetches the parts into the hole only when the bytes
//! must be stored (a blob already stored needs none of them).
//!
//! Whether this node's copy is current is checked against the row at the first use after
//! each request that ended here (a start or a sync), one metadata read per request, not per
//! append; a copy holding bytes the row does not (a request cut off before its sync) is not
//! current. A sync commits only if the row still holds the state this node continued from
//! (compare and set), so two nodes appending to one session at once cannot both win; each
//! part's name carries a tag its writer drew, so the loser deletes only its own object, and
//! its PATCH answers as if the session were unknown.
//!
//! A session's row is dropped durably before its parts are deleted, and the expiry sweep
//! drops a row only if no node changed it since the sweep read it.

use std::sync::Arc;

use sha2::digest::common::hazmat::SerializableState;
use sha2::Sha256;

use super::session::{live, lock, Session, Slot, SWEEP_EVERY_SECS};
use crate::commit::{Batch, Committer, Write};
use crate::keys::UploadId;
use crate::kv::ReadableTable;
use crate::pack::format::{parse_part_file_name, part_name, upload_name, PARTS, UPLOAD_RESERVED};
use crate::schema::{self, SharedUpload, UploadRow};
use crate::vfs::{OpenMode, VfsFile};
use crate::{Inner, StoreError, UploadStatus};

/// The row of a session starting now.
pub(super) fn fresh(repo: &str, now: u64) -> UploadRow {
    UploadRow {
        repo: repo.to_owned(),
        created: now,
        shared: Some(SharedUpload {
            len: 0,
            touched: now,
            sha256: Sha256::default().serialize().to_vec(),
            parts: Vec::new(),
        }),
    }
}

/// The SHA-256 state a row holds.
fn resumed(state: &[u8]) -> Result<Sha256, StoreError> {
    let bytes = state
        .try_into()
        .map_err(|_| StoreError::new("upload row: SHA-256 state of the wrong length"))?;
    Sha256::deserialize(bytes).map_err(|_| StoreError::new("upload row: unreadable SHA-256 state"))
}

/// Session `id`'s row.
fn row(inner: &Inner, id: &UploadId) -> Result<Option<UploadRow>, StoreError> {
    let txn = inner.db.begin_read()?;
    let t = txn.open_table(schema::UPLOADS)?;
    let found = t
        .get(id.as_str())?
        .map(|v| schema::decode_upload(v.value()))
        .transpose()?;
    Ok(found)
}

/// The session's length as the store has it: what every node would say.
pub(super) fn status(
    inner: &Inner,
    repo: &str,
    id: &str,
) -> Result<Option<UploadStatus>, StoreError> {
    let Some(id) = UploadId::parse(id) else {
        return Ok(None);
    };
    Ok(row(inner, &id)?.and_then(|r| {
        let s = r.shared.filter(|_| r.repo == repo)?;
        Some(UploadStatus {
            id: id.as_str().to_owned(),
            len: s.len,
        })
    }))
}

/// Session `id` of `repo` as its row has it, as a local session: this node's own copy if
/// it is current, else one taken up from the row. `None` if the session has ended (on any
/// node) or is not `repo`'s.
pub(super) fn current(
    inner: &Inner,
    repo: &str,
    id: &str,
) -> Result<Option<(UploadId, Arc<Slot>)>, StoreError> {
    let Some(id) = UploadId::parse(id) else {
        return Ok(None);
    };
    let local = inner.uploads.read_map().get(&id).cloned();
    if let Some(slot) = &local {
        let g = lock(&slot.s);
        if g.ended {
            // Finishing or being dropped here: it takes nothing more.
            return Ok(None);
        }
        if g.verified && slot.repo == repo {
            drop(g);
            return Ok(Some((id, slot.clone())));
        }
    }
    // One check at a time on this node, so two requests of one session take it up once,
    // and each from the row as it is now. Taken with no session or map lock held, and
    // neither is held waiting for it.
    let _one = inner
        .uploads
        .adopting
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let found = row(inner, &id)?;
    let Some((row, state)) = found.and_then(|r| {
        let s = r.shared.clone()?;
        Some((r, s))
    }) else {
        forget(inner, &id);
        return Ok(None);
    };
    if row.repo != repo {
        return Ok(None);
    }
    let local = inner.uploads.read_map().get(&id).cloned();
    if let Some(slot) = local {
        let mut g = lock(&slot.s);
        if g.ended {
            return Ok(None);
        }
        // Current: the row is as this node last saw it, and this copy holds nothing past
        // it (bytes a request received and never made durable are not the session's).
        if g.known.as_ref().and_then(|k| k.shared.as_ref()) == Some(&state) && g.len == state.len {
            g.verified = true;
            drop(g);
            return Ok(Some((id, slot)));
        }
        drop(g);
        // Moved on by another node (or ended here): this copy is stale.
        forget(inner, &id);
    }
    inner.space.start_upload()?;
    let name = upload_name(id.as_str());
    let _ = inner.fs.remove(&name);
    let file = inner
        .packs
        .open_file(&name, OpenMode::Create, "create upload file")?;
    // The parts' bytes are not here: a hole the size of the row's length, filled by
    // `fill` if the finish needs them.
    if let Err(e) = file.set_len(UPLOAD_RESERVED + state.len) {
        let _ = inner.fs.remove(&name);
        return Err(StoreError::io(format!("size upload file {id}"), e));
    }
    let sha = resumed(&state.sha256)?;
    let s = Session {
        repo: row.repo.clone(),
        hash: crate::hasher::RunningHash::resume(file.clone(), state.len, sha, state.len),
        file,
        len: state.len,
        touched: (inner.clock)(),
        ended: false,
        durable: true,
        local_from: state.len,
        known: Some(row),
        verified: true,
    };
    let slot = Slot::new(s);
    inner.uploads.write_map().insert(id.clone(), slot.clone());
    Ok(Some((id, slot)))
}

/// Drops this node's copy of session `id`, leaving its row and parts alone: another node
/// has it, or it has ended.
fn forget(inner: &Inner, id: &UploadId) {
    let Some(slot) = inner.uploads.read_map().get(id).cloned() else {
        return;
    };
    let mut g = lock(&slot.s);
    if g.ended {
        return;
    }
    g.ended = true;
    g.hash.abandon();
    slot.publish(&g);
    drop(g);
    inner.uploads.remove_if(id, &slot);
    let _ = inner.fs.remove(&upload_name(id.as_str()));
}

/// Makes the bytes this node received for the session since its row's length a part, and
/// commits the row naming it, if the row is still where this node took it up. `None` if
/// the session ended, or another node moved it meanwhile.
pub(super) fn sync(
    inner: &Inner,
    commit: &Committer,
    repo: &str,
    id: &str,
) -> Result<Option<UploadStatus>, StoreError> {
    let Some((id, slot)) = current(inner, repo, id)? else {
        return Ok(None);
    };
    let (file, hash, len, known) = {
        let Some(mut g) = live(&slot, repo) else {
            return Ok(None);
        };
        // The request ends here: the next one may come after another node's.
        g.verified = false;
        let Some(known) = g.known.clone() else {
            return Err(StoreError::new(
                "internal: a shared session without its row",
            ));
        };
        (g.file.clone(), g.hash.clone(), g.len, known)
    };
    let Some(prev) = known.shared.clone() else {
        return Err(StoreError::new(
            "internal: a shared session without its row",
        ));
    };
    let status = UploadStatus {
        id: id.as_str().to_owned(),
        len,
    };
    if len == prev.len {
        return Ok(Some(status));
    }
    // Whatever fails from here leaves this copy ahead of the row: dropped, so the next
    // request takes the session up from the row again.
    let failed = |e: StoreError| {
        forget(inner, &id);
        e
    };
    let sha = hash.digest(len).map_err(failed)?.serialize().to_vec();
    let tag = part_tag().map_err(failed)?;
    let part = part_name(id.as_str(), prev.len, tag);
    inner
        .fs
        .put_part(&part, &*file, UPLOAD_RESERVED + prev.len, len - prev.len)
        .map_err(|e| {
            failed(StoreError::io(
                format!("write {}", inner.fs.describe(&part)),
                e,
            ))
        })?;
    let mut next = known.clone();
    let mut parts = prev.parts.clone();
    parts.push((prev.len, tag));
    next.shared = Some(SharedUpload {
        len,
        touched: (inner.clock)(),
        sha256: sha,
        parts,
    });
    let moved = commit
        .submit(SyncPart {
            id: id.clone(),
            from: prev,
            row: next.clone(),
        })
        .map_err(|e| {
            let _ = inner.fs.remove(&part);
            failed(e)
        })?
        .into_inner();
    if !moved {
        let _ = inner.fs.remove(&part);
        forget(inner, &id);
        return Ok(None);
    }
    if let Some(mut g) = live(&slot, repo) {
        g.known = Some(next);
    }
    Ok(Some(status))
}

/// Writes the parts this node's file lacks (below `local_from`) into it, so it holds the
/// session's first `len` bytes.
pub(super) fn fill(
    inner: &Inner,
    id: &UploadId,
    file: &dyn VfsFile,
    known: &SharedUpload,
    local_from: u64,
) -> Result<(), StoreError> {
    for (i, &(start, tag)) in known.parts.iter().enumerate() {
        if start >= local_from {
            break;
        }
        let end = known.parts.get(i + 1).map_or(known.len, |p| p.0);
        let part = part_name(id.as_str(), start, tag);
        let got = inner
            .fs
            .fetch_part(&part, file, UPLOAD_RESERVED + start)
            .map_err(|e| StoreError::io(format!("read {}", inner.fs.describe(&part)), e))?;
        if got != end - start {
            return Err(StoreError::new(format!(
                "{} holds {got} bytes, its session says {}",
                inner.fs.describe(&part),
                end - start
            )));
        }
    }
    Ok(())
}

/// Deletes the parts of an ended session (best effort: garbage collection removes any
/// left behind, see [`sweep_parts`]).
pub(super) fn delete_parts(inner: &Inner, id: &UploadId, known: Option<&UploadRow>) {
    for start in known
        .and_then(|k| k.shared.as_ref())
        .map_or(&[][..], |s| &s.parts[..])
    {
        let _ = inner.fs.remove(&part_name(id.as_str(), start.0, start.1));
    }
}

/// Ends sessions whose row was last changed over `upload_expiry_secs` ago, on whichever
/// node they ran, and drops this node's copies of sessions that ended or moved elsewhere.
/// Sessions this node is using right now are left for the next sweep.
pub(super) fn expire(inner: &Inner, commit: Option<&Committer>) -> Result<usize, StoreError> {
    let now = (inner.clock)();
    let expiry = inner.opts.upload_expiry_secs;
    let mut rows = std::collections::HashMap::new();
    {
        let txn = inner.db.begin_read()?;
        let t = txn.open_table(schema::UPLOADS)?;
        for entry in t.iter()? {
            let (k, v) = entry?;
            if let (Some(id), Ok(row)) =
                (UploadId::parse(k.value()), schema::decode_upload(v.value()))
            {
                rows.insert(id, row);
            }
        }
    }
    let mut n = 0;
    for (id, row) in &rows {
        let touched = row.shared.as_ref().map_or(row.created, |s| s.touched);
        if touched.saturating_add(expiry) >= now {
            continue;
        }
        let busy = inner
            .uploads
            .read_map()
            .get(id)
            .is_some_and(|s| s.s.try_lock().is_err());
        if busy {
            continue;
        }
        n += 1;
        if let Some(commit) = commit {
            // Only if no node moved it since it was read here.
            let dropped = commit
                .submit(DropUnchanged {
                    id: id.clone(),
                    row: row.clone(),
                })?
                .into_inner();
            if dropped {
                forget(inner, id);
                delete_parts(inner, id, Some(row));
            }
        }
    }
    if commit.is_some() {
        // This node's copies idle for a while whose session ended or moved elsewhere; a
        // copy in use (or new since the rows were read) is left alone.
        for id in inner.uploads.ids() {
            let stale = inner.uploads.read_map().get(&id).is_some_and(|slot| {
                slot.s.try_lock().is_ok_and(|g| {
                    g.touched.saturating_add(SWEEP_EVERY_SECS) < now
                        && g.known.as_ref().and_then(|k| k.shared.as_ref())
                            != rows.get(&id).and_then(|r| r.shared.as_ref())
                })
            });
            if stale {
                forget(inner, &id);
            }
        }
    }
    Ok(n)
}

/// Ends a session whose row is there (a shared store's): the row is dropped durably first,
/// then the parts, so no row is ever left naming parts that are gone.
pub(super) fn end_row(inner: &Inner, commit: &Committer, id: &UploadId, known: &UploadRow) {
    let dropped = commit.submit(DropUploadNow { id: id.clone() });
    if dropped.is_ok() {
        delete_parts(inner, id, Some(known));
    }
}

/// A fresh tag for a part's name.
fn part_tag() -> Result<u64, StoreError> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| StoreError::new(format!("random part tag: {e}")))?;
    Ok(u64::from_le_bytes(b))
}

/// Removes parts no session row names: left by a node that died between writing a part
/// and committing its row, by a sync that lost its race, or by a session that ended on a
/// node that could not delete them. A part is written only while its session's row exists,
/// so one whose row is gone is garbage whenever it is seen. Returns how many went.
pub(crate) fn sweep_parts(inner: &Inner) -> Result<u64, StoreError> {
    let names = inner
        .fs
        .list(PARTS)
        .map_err(|e| StoreError::io(format!("list {}", inner.fs.describe(PARTS)), e))?;
    if names.is_empty() {
        return Ok(0);
    }
    let live: std::collections::HashSet<String> = {
        let txn = inner.db.begin_read()?;
        let t = txn.open_table(schema::UPLOADS)?;
        let mut ids = std::collections::HashSet::new();
        for entry in t.iter()? {
            ids.insert(entry?.0.value().to_owned());
        }
        ids
    };
    let mut n = 0;
    for name in names {
        let Some(id) = parse_part_file_name(&name) else {
            continue;
        };
        if !live.contains(id) {
            let full = format!("{PARTS}/{name}");
            inner
                .fs
                .remove(&full)
                .map_err(|e| StoreError::io(format!("remove {}", inner.fs.describe(&full)), e))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Commits a session's row with one more part, if the row still holds the state the part
/// continues (`from`); answers whether it did.
struct SyncPart {
    id: UploadId,
    from: SharedUpload,
    row: UploadRow,
}

impl Write for SyncPart {
    type Out = bool;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<bool, StoreError> {
        let now =
            b.t.uploads
                .get(self.id.as_str())?
                .map(|v| schema::decode_upload(v.value()))
                .transpose()?;
        let unchanged =
            now.is_some_and(|r| r.repo == self.row.repo && r.shared == Some(self.from.clone()));
        if unchanged && !b.ended(&self.id) {
            b.t.uploads
                .insert(self.id.as_str(), &schema::encode_upload(&self.row)[..])?;
            return Ok(true);
        }
        Ok(false)
    }
}

/// Drops a session's row if it is still `row` (the expiry sweep's): answers whether it did.
struct DropUnchanged {
    id: UploadId,
    row: UploadRow,
}

impl Write for DropUnchanged {
    type Out = bool;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<bool, StoreError> {
        let now =
            b.t.uploads
                .get(self.id.as_str())?
                .map(|v| schema::decode_upload(v.value()))
                .transpose()?;
        if now.as_ref() != Some(&self.row) {
            return Ok(false);
        }
        b.t.uploads.remove(self.id.as_str())?;
        Ok(true)
    }
}

/// Drops a session's row, durably: its parts are deleted only after.
struct DropUploadNow {
    id: UploadId,
}

impl Write for DropUploadNow {
    type Out = ();

    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<(), StoreError> {
        b.t.uploads.remove(self.id.as_str())?;
        Ok(())
    }
}
