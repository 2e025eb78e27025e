//! Blobs and repository links: reads (MVCC, never blocking) and their writes inside a batch.

use redb::ReadableTable;

use crate::commit::{already_durable, Committer, Durable, Tables};
use crate::keys::BlobKey;
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
    commit.mount(repo, key, from)
}

/// Links the blob encoded as `kb` into `repo`, creating the repository if new.
pub(crate) fn link(t: &mut Tables<'_>, repo: &str, kb: &[u8]) -> Result<(), StoreError> {
    t.links.insert((repo, kb), ())?;
    t.linked_by.insert((kb, repo), ())?;
    t.repos.insert(repo, ())?;
    Ok(())
}

pub(crate) fn apply_mount(
    t: &mut Tables<'_>,
    repo: &str,
    key: &BlobKey,
    from: Option<&str>,
) -> Result<Option<BlobLoc>, StoreError> {
    let kb = key.encode();
    let Some(loc) = t
        .blobs
        .get(&kb[..])?
        .map(|v| schema::decode_loc(v.value()))
        .transpose()?
    else {
        return Ok(None);
    };
    if let Some(f) = from {
        if t.links.get((f, &kb[..]))?.is_none() {
            return Ok(None);
        }
    }
    link(t, repo, &kb)?;
    Ok(Some(loc))
}

pub(crate) fn apply_unlink(
    t: &mut Tables<'_>,
    repo: &str,
    key: &BlobKey,
) -> Result<DeleteOutcome, StoreError> {
    if t.repos.get(repo)?.is_none() {
        return Ok(DeleteOutcome::RepoUnknown);
    }
    let kb = key.encode();
    if t.links.remove((repo, &kb[..]))?.is_none() {
        return Ok(DeleteOutcome::NotFound);
    }
    t.linked_by.remove((&kb[..], repo))?;
    Ok(DeleteOutcome::Deleted)
}
