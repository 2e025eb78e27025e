//! Blobs and repository links: reads (MVCC, never blocking) and their writes inside a batch.

use crate::kv::ReadableTable;

use crate::commit::{already_durable, Batch, Committer, Durable, Tables, Write};
use crate::keys::{BlobKey, UploadId};
use crate::pack::format::{pack_name, upload_name, UPLOAD_RESERVED};
use crate::schema::PackRow;
use crate::tenancy::records::AuditRec;
use crate::{schema, BlobLoc, DeleteOutcome, Inner, StoreError};

/// The blob's location if `repo` links it. `used`: a client's lookup, which counts as a
/// use of the link for garbage collection's grace; the store's own reads (the package
/// indexer) do not, or they would keep a deleted image's layers past it.
pub(crate) fn stat(
    inner: &Inner,
    repo: &str,
    key: &BlobKey,
    used: bool,
) -> Result<Option<BlobLoc>, StoreError> {
    if !key.is_well_formed() {
        return Ok(None);
    }
    let kb = key.encode();
    let txn = inner.db.begin_read()?;
    let links = txn.open_table(schema::BLOB_LINKS)?;
    if links.get((repo, &kb[..]))?.is_none() {
        return Ok(None);
    }
    let blobs = txn.open_table(schema::BLOBS)?;
    let loc = blobs
        .get(&kb[..])?
        .map(|v| schema::decode_loc(v.value()))
        .transpose()?;
    if loc.is_some() && used {
        // A client that found the blob here may be about to name it in a manifest: the
        // link is used. Garbage collection either sees this use when it checks the link,
        // or had marked the link as being removed before it checked, so before now.
        inner.touches.touch(repo, &kb, (inner.clock)());
        if inner.gc.was_unlinked(repo, &kb) {
            return Ok(None);
        }
    }
    Ok(loc)
}

/// The blob's location if it is stored at all.
pub(crate) fn locate(inner: &Inner, key: &BlobKey) -> Result<Option<BlobLoc>, StoreError> {
    let kb = key.encode();
    let txn = inner.db.begin_read()?;
    let blobs = txn.open_table(schema::BLOBS)?;
    let loc = blobs
        .get(&kb[..])?
        .map(|v| schema::decode_loc(v.value()))
        .transpose()?;
    Ok(loc)
}

/// Mount, answered from a read transaction when nothing needs writing (the blob is absent
/// from `from`, or `repo` links it already); else committed by the committer, which checks
/// again inside its transaction.
pub(crate) fn mount(
    inner: &Inner,
    commit: &Committer,
    repo: &str,
    key: &BlobKey,
    from: Option<&str>,
) -> Result<Option<Durable<BlobLoc>>, StoreError> {
    if !key.is_well_formed() {
        return Ok(None);
    }
    if let Some(loc) = stat(inner, repo, key, true)? {
        return Ok(Some(already_durable(loc)));
    }
    let available = match from {
        Some(f) => stat(inner, f, key, true)?.is_some(),
        None => locate(inner, key)?.is_some(),
    };
    if !available {
        return Ok(None);
    }
    let w = Mount {
        repo: repo.to_owned(),
        key: key.clone(),
        from: from.map(str::to_owned),
    };
    Ok(commit.submit(w)?.transpose())
}

/// Links the blob encoded as `kb` into `repo`, creating the repository if new.
pub(crate) fn link(t: &mut Tables<'_>, repo: &str, kb: &[u8]) -> Result<(), StoreError> {
    t.links.insert((repo, kb), ())?;
    t.linked_by.insert((kb, repo), ())?;
    t.repos.insert(repo, ())?;
    Ok(())
}

/// Links a stored blob into a repository (from `from`, if named, which must link it).
struct Mount {
    repo: String,
    key: BlobKey,
    from: Option<String>,
}

impl Write for Mount {
    type Out = Option<BlobLoc>;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<Option<BlobLoc>, StoreError> {
        let kb = self.key.encode();
        let Some(loc) =
            b.t.blobs
                .get(&kb[..])?
                .map(|v| schema::decode_loc(v.value()))
                .transpose()?
        else {
            return Ok(None);
        };
        if let Some(f) = &self.from {
            if b.t.links.get((f.as_str(), &kb[..]))?.is_none() {
                return Ok(None);
            }
        }
        link(&mut b.t, &self.repo, &kb)?;
        b.used(&self.repo, &kb)?;
        Ok(Some(loc))
    }

    fn changed(out: &Option<BlobLoc>) -> bool {
        out.is_some()
    }
}

/// Removes a blob's link from a repository; the blob stays until garbage collection finds
/// no repository linking it.
pub(crate) struct Unlink {
    pub(crate) repo: String,
    pub(crate) key: BlobKey,
    pub(crate) audit: Vec<AuditRec>,
}

impl Write for Unlink {
    type Out = DeleteOutcome;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<DeleteOutcome, StoreError> {
        let (t, repo) = (&mut b.t, self.repo.as_str());
        if t.repos.get(repo)?.is_none() {
            return Ok(DeleteOutcome::RepoUnknown);
        }
        let kb = self.key.encode();
        if t.links.remove((repo, &kb[..]))?.is_none() {
            return Ok(DeleteOutcome::NotFound);
        }
        t.linked_by.remove((&kb[..], repo))?;
        Ok(DeleteOutcome::Deleted)
    }

    fn audit(&self) -> &[AuditRec] {
        &self.audit
    }

    fn changed(out: &DeleteOutcome) -> bool {
        *out == DeleteOutcome::Deleted
    }
}

/// Where a finished upload's bytes are.
pub(crate) enum BlobSource {
    /// A small blob, to append to the shared pack.
    Bytes(Vec<u8>),
    /// A large blob whose upload file was synced and renamed to `packs/<pack>.pack`.
    Pack { pack: u64, len: u64 },
    /// The blob was already stored when the upload finished; only link it.
    Existing,
}

/// Why a finished upload stored nothing.
pub(crate) enum NotStored {
    /// The blob it meant to link was collected meanwhile (`BlobSource::Existing`): store
    /// the bytes after all.
    Vanished,
    /// Its registry was deleted meanwhile, ending the session.
    Ended,
}

/// Stores and links a finished upload's blob (or links the copy already stored), and drops
/// the session's row.
pub(crate) struct FinishBlob {
    pub(crate) repo: String,
    pub(crate) key: BlobKey,
    pub(crate) src: BlobSource,
    pub(crate) upload: UploadId,
    /// The session's row must be there (a shared store's sessions, whose rows are durable
    /// from the start): without it another node ended the session, and nothing is stored.
    pub(crate) require_row: bool,
}

impl Write for FinishBlob {
    type Out = Result<BlobLoc, NotStored>;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<Self::Out, StoreError> {
        let had_row = b.t.uploads.remove(self.upload.as_str())?.is_some();
        if b.ended(&self.upload) || (self.require_row && !had_row) {
            if let BlobSource::Pack { pack, .. } = self.src {
                b.delete_after(pack_name(pack));
            }
            return Ok(Err(NotStored::Ended));
        }
        let upload_file = upload_name(self.upload.as_str());
        let kb = self.key.encode();
        let existing =
            b.t.blobs
                .get(&kb[..])?
                .map(|v| schema::decode_loc(v.value()))
                .transpose()?;
        if let Some(loc) = existing {
            match self.src {
                BlobSource::Pack { pack, .. } => b.delete_after(pack_name(pack)),
                _ => b.delete_after(upload_file),
            }
            link(&mut b.t, &self.repo, &kb)?;
            b.used(&self.repo, &kb)?;
            return Ok(Ok(loc));
        }
        let loc = match &self.src {
            BlobSource::Existing => return Ok(Err(NotStored::Vanished)),
            BlobSource::Bytes(data) => {
                let loc = b.append_shared(&self.key, data);
                b.delete_after(upload_file);
                loc?
            }
            BlobSource::Pack { pack, len } => {
                b.pack_entry_changed();
                let row = PackRow {
                    kind: schema::PACK_SINGLE,
                    committed_len: UPLOAD_RESERVED + len,
                };
                b.put_pack(*pack, &row)?;
                BlobLoc {
                    pack: *pack,
                    offset: UPLOAD_RESERVED,
                    len: *len,
                }
            }
        };
        b.put_blob(&kb, &loc)?;
        link(&mut b.t, &self.repo, &kb)?;
        b.used(&self.repo, &kb)?;
        Ok(Ok(loc))
    }

    fn changed(out: &Self::Out) -> bool {
        out.is_ok()
    }

    /// A pack the finishing thread renamed in for a batch that failed names nothing.
    fn failed(&self, inner: &Inner) {
        if let BlobSource::Pack { pack, .. } = self.src {
            let _ = inner.fs.remove(&pack_name(pack));
        }
    }
}
