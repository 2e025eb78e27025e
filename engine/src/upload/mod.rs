//! Upload sessions: bytes go to `uploads/<id>` as they arrive; a pool hashes them behind
//! (`hasher.rs`).
//!
//! Each session has its own lock; the append path takes only a read lock on the session
//! table and then that lock, so sessions never wait for each other. An append is one
//! `pwrite` into the page cache and a hand-off to the hashing pool, cheap enough for the
//! server's network thread. An upload file starts
//! with `UPLOAD_RESERVED` zero bytes (room for the pack and record headers), so a large
//! finished upload becomes a pack by writing those headers and renaming the file.
//!
//! On a shared store (several nodes on one bucket and database) a session's durable state
//! is its row and its parts in the bucket instead, so any node can continue it
//! (`shared.rs`); the upload file is then this node's working copy.

mod session;
mod shared;

pub(crate) use session::Sessions;
pub(crate) use shared::sweep_parts;

use session::{live, lock, DropUpload, Session, Slot, ENDED, SWEEP_EVERY_SECS};

use std::sync::atomic::Ordering;
use std::sync::Arc;

use sha2::{Digest, Sha512};

use crate::blob::{BlobSource, FinishBlob, NotStored};
use crate::commit::{Batch, Committer, Durable, Write};
use crate::hasher::RunningHash;
use crate::keys::{Alg, BlobKey, UploadId};
use crate::pack::format::{
    pack_header, pack_name, record_header, upload_name, KIND_SINGLE, PACK_HEADER_LEN, UPLOADS,
    UPLOAD_RESERVED,
};
use crate::schema::{self, UploadRow};
use crate::vfs::{OpenMode, VfsFile};
use crate::{blob, AppendError, BlobLoc, FinishError, Inner, StoreError, UploadStatus};

/// Session `id` as this node should use it: on a shared store, checked against its
/// row (and taken up from it) once per request.
fn find(inner: &Inner, repo: &str, id: &str) -> Result<Option<(UploadId, Arc<Slot>)>, StoreError> {
    if inner.fs.shared() {
        return shared::current(inner, repo, id);
    }
    Ok(inner.uploads.get(id))
}

pub(crate) fn start(
    inner: &Inner,
    commit: &Committer,
    repo: &str,
) -> Result<UploadStatus, StoreError> {
    let now = (inner.clock)();
    let last = inner.uploads.last_sweep.load(Ordering::Relaxed);
    if now >= last + SWEEP_EVERY_SECS
        && inner
            .uploads
            .last_sweep
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        expire(inner, commit)?;
    }
    inner.space.start_upload()?;
    let id = UploadId::random().map_err(|e| StoreError::new(format!("random upload id: {e}")))?;
    let name = upload_name(id.as_str());
    let file = inner
        .packs
        .open_file(&name, OpenMode::CreateNew, "create upload file")?;
    // Zero room for the headers the file will need if it becomes a pack (a sparse hole).
    if let Err(e) = file.set_len(UPLOAD_RESERVED) {
        let _ = inner.fs.remove(&name);
        return Err(StoreError::io(format!("size upload file {id}"), e));
    }
    let shared = inner.fs.shared();
    let row = if shared {
        shared::fresh(repo, now)
    } else {
        UploadRow {
            repo: repo.to_owned(),
            created: now,
            shared: None,
        }
    };
    // On a shared store the next request may reach another node, which must find the row:
    // it is durable before the id is given out.
    let posted = if shared {
        commit
            .submit(KeepUpload {
                id: id.clone(),
                row: row.clone(),
            })
            .map(|_| ())
    } else {
        commit.post(StartUpload {
            id: id.clone(),
            row: row.clone(),
        })
    };
    if let Err(e) = posted {
        let _ = inner.fs.remove(&name);
        return Err(e);
    }
    let status = UploadStatus {
        id: id.as_str().to_owned(),
        len: 0,
    };
    let s = Session {
        repo: repo.to_owned(),
        hash: RunningHash::new(file.clone(), 0),
        file,
        len: 0,
        touched: now,
        ended: false,
        durable: shared,
        known: shared.then_some(row),
        local_from: 0,
        // The next request may come after another node's.
        verified: !shared,
    };
    inner.uploads.write_map().insert(id, Slot::new(s));
    Ok(status)
}

pub(crate) fn status(
    inner: &Inner,
    repo: &str,
    id: &str,
) -> Result<Option<UploadStatus>, StoreError> {
    if inner.fs.shared() {
        return shared::status(inner, repo, id);
    }
    let Some((id, s)) = inner.uploads.get(id) else {
        return Ok(None);
    };
    let len = s.mirror.load(Ordering::Acquire);
    if s.repo != repo || len == ENDED {
        return Ok(None);
    }
    Ok(Some(UploadStatus {
        id: id.as_str().to_owned(),
        len,
    }))
}

/// Makes the session's bytes so far and its row durable; `None` if the session is unknown,
/// not `repo`'s, or ended (finished, cancelled, expired) before or while this ran. The
/// lock is held only to read the file and length: the `fdatasync` and the commit wait run
/// without it, so appends on the event loop go on.
///
/// The first sync of a session also makes its directory entry durable and writes its row
/// again in a durable commit: the row `start` queued rides without durability, and a batch
/// that failed for another op's sake may have dropped it. Later syncs cost one `fdatasync`.
pub(crate) fn sync(
    inner: &Inner,
    commit: &Committer,
    repo: &str,
    id: &str,
) -> Result<Option<UploadStatus>, StoreError> {
    if inner.fs.shared() {
        return shared::sync(inner, commit, repo, id);
    }
    let Some((id, s)) = inner.uploads.get(id) else {
        return Ok(None);
    };
    let (file, len, row) = {
        let Some(g) = live(&s, repo) else {
            return Ok(None);
        };
        let row = (!g.durable).then(|| UploadRow {
            repo: g.repo.clone(),
            created: g.touched,
            shared: None,
        });
        (g.file.clone(), g.len, row)
    };
    file.sync_data()
        .map_err(|e| StoreError::io("fdatasync upload file", e))?;
    if let Some(row) = row {
        crate::commit::sync_dir(&*inner.fs, UPLOADS)?;
        commit
            .submit(KeepUpload {
                id: id.clone(),
                row,
            })?
            .into_inner();
        if let Some(mut g) = live(&s, repo) {
            g.durable = true;
        }
    }
    if s.mirror.load(Ordering::Acquire) == ENDED {
        // Ended meanwhile: its own end dropped (or will drop) its row; make sure the row
        // written again above does not outlive it.
        let _ = commit.post(DropUpload { id: id.clone() });
        return Ok(None);
    }
    Ok(Some(UploadStatus {
        id: id.as_str().to_owned(),
        len,
    }))
}

/// Feeds the session's data bytes (`len` of them after the reserved room) to `f`.
fn hash_file(file: &dyn VfsFile, len: u64, mut f: impl FnMut(&[u8])) -> Result<(), StoreError> {
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < len {
        let want = (len - pos).min(buf.len() as u64) as usize;
        let got = file
            .read_at(&mut buf[..want], UPLOAD_RESERVED + pos)
            .map_err(|e| StoreError::io("read upload file", e))?;
        if got == 0 {
            return Err(StoreError::new("upload file is shorter than its session"));
        }
        f(&buf[..got]);
        pos += got as u64;
    }
    Ok(())
}

pub(crate) fn append(
    inner: &Inner,
    repo: &str,
    id: &str,
    offset: u64,
    bytes: &[u8],
) -> Result<u64, AppendError> {
    let Some((_, s)) = find(inner, repo, id)? else {
        return Err(AppendError::Unknown);
    };
    let Some(mut g) = live(&s, repo) else {
        return Err(AppendError::Unknown);
    };
    let durable = g
        .known
        .as_ref()
        .and_then(|k| k.shared.as_ref())
        .map(|k| k.len);
    if durable.is_some_and(|d| offset == d && d < g.len) {
        // A shared session resent from its durable length: the bytes past it came with a
        // request that never ended in a sync (cut off, refused), so no one acknowledged
        // them. They go; the hash starts over from a point they had not reached.
        g.len = offset;
        g.hash.rewound(offset);
        let _ = g.file.set_len(UPLOAD_RESERVED + offset);
        s.publish(&g);
    }
    if offset != g.len {
        return Err(AppendError::Offset {
            got: offset,
            have: g.len,
        });
    }
    let new_len = g.len + bytes.len() as u64;
    if inner.opts.max_upload_bytes.is_some_and(|max| new_len > max) {
        return Err(AppendError::TooLarge);
    }
    inner.space.append(bytes.len() as u64)?;
    if let Err(e) = g.file.write_all_at(bytes, UPLOAD_RESERVED + g.len) {
        // Part of the bytes may have landed: take the file's word for the length.
        let on_disk = g.file.len().unwrap_or(UPLOAD_RESERVED);
        g.len = on_disk.saturating_sub(UPLOAD_RESERVED);
        g.hash.rewound(g.len);
        s.publish(&g);
        return Err(StoreError::io("write upload file", e).into());
    }
    g.hash.wrote(new_len, &inner.uploads.hashers);
    g.len = new_len;
    g.touched = (inner.clock)();
    s.publish(&g);
    Ok(new_len)
}

/// Ends a session whose bytes will not be stored: drops it from memory, disk and metadata.
fn discard(inner: &Inner, commit: &Committer, id: &UploadId, slot: &Slot, s: &mut Session) {
    s.ended = true;
    s.hash.abandon();
    slot.publish(s);
    inner.uploads.remove(id);
    let _ = inner.fs.remove(&upload_name(id.as_str()));
    drop_row(inner, commit, id, s.known.as_ref());
}

/// Forgets an ended session's row: on a store of one node without waiting (a row left
/// behind names a missing file, which the next open drops); on a shared store durably,
/// then its parts.
fn drop_row(inner: &Inner, commit: &Committer, id: &UploadId, known: Option<&UploadRow>) {
    match known {
        Some(row) => shared::end_row(inner, commit, id, row),
        None => {
            let _ = commit.post(DropUpload { id: id.clone() });
        }
    }
}

pub(crate) fn finish(
    inner: &Inner,
    commit: &Committer,
    repo: &str,
    id: &str,
    want: &BlobKey,
) -> Result<Durable<BlobLoc>, FinishError> {
    let Some((id, s)) = find(inner, repo, id)? else {
        return Err(FinishError::Unknown);
    };
    // The session ends here, under its lock, and the lock is let go before the slow part
    // (hashing the tail, `fdatasync`, waiting for the commit): `append_upload` and
    // `cancel_upload` run on the server's event loop and take this lock, so holding it
    // across the finish would stall every connection of that loop. They find the session
    // ended and answer at once; expiry skips it.
    let (file, hash, len, known, local_from) = {
        let Some(mut g) = live(&s, repo) else {
            return Err(FinishError::Unknown);
        };
        g.ended = true;
        s.publish(&g);
        (
            g.file.clone(),
            g.hash.clone(),
            g.len,
            g.known.clone(),
            g.local_from,
        )
    };
    let gone = || {
        hash.abandon();
        inner.uploads.remove(&id);
        let _ = inner.fs.remove(&upload_name(id.as_str()));
        drop_row(inner, commit, &id, known.as_ref());
    };
    // Bytes other nodes received are fetched only when they are needed, and once.
    let filled = std::cell::Cell::new(local_from == 0);
    let fill = || match known.as_ref().and_then(|k| k.shared.as_ref()) {
        Some(k) if !filled.get() => {
            shared::fill(inner, &id, &*file, k, local_from)?;
            filled.set(true);
            Ok(())
        }
        _ => Ok(()),
    };
    if inner.opts.max_upload_bytes.is_some_and(|max| len > max) {
        gone();
        return Err(FinishError::TooLarge);
    }
    #[cfg(test)]
    test_gate::wait(repo);
    let checked = match want.alg {
        // SHA-512 is not kept with the session: hashed from the bytes, all of them here.
        Alg::Sha512 => fill().and_then(|()| verify(&*file, &hash, len, want)),
        Alg::Sha256 => verify(&*file, &hash, len, want),
    };
    let matches = match checked {
        Ok(m) => m,
        Err(e) => {
            gone();
            return Err(e.into());
        }
    };
    if !matches {
        gone();
        return Err(FinishError::DigestMismatch);
    }
    // From here the session is consumed whatever happens.
    hash.abandon();
    inner.uploads.remove(&id);
    let src = Finished {
        id: &id,
        file: &*file,
        len,
        fill: &fill,
        // On a shared store another node may have ended the session meanwhile.
        require_row: known.is_some(),
    };
    let r = store(inner, commit, repo, src, want);
    if matches!(r, Ok(Some(_))) {
        shared::delete_parts(inner, &id, known.as_ref());
    } else {
        // Whatever of the upload is left is no use to anyone now.
        gone();
    }
    // `None`: its registry was deleted meanwhile, which ended the session.
    r?.ok_or(FinishError::Unknown)
}

/// Whether the session's `len` data bytes hash to `want`.
fn verify(
    file: &dyn VfsFile,
    hash: &RunningHash,
    len: u64,
    want: &BlobKey,
) -> Result<bool, StoreError> {
    if !want.is_well_formed() {
        return Ok(false);
    }
    let got = match want.alg {
        Alg::Sha256 => hash.digest(len)?.finalize().to_vec(),
        Alg::Sha512 => {
            let mut h = Sha512::new();
            hash_file(file, len, |b| h.update(b))?;
            h.finalize().to_vec()
        }
    };
    Ok(got == want.hash)
}

/// A verified session's bytes, as [`store`] takes them.
struct Finished<'a> {
    id: &'a UploadId,
    file: &'a dyn VfsFile,
    len: u64,
    /// Makes `file` hold all `len` bytes (a session taken up from another node lacks the
    /// parts it did not receive); called only when the bytes are about to be stored.
    fill: &'a dyn Fn() -> Result<(), StoreError>,
    /// The session's row must still be there for the blob to be stored.
    require_row: bool,
}

/// Moves verified bytes into a pack and commits them; `None` if the session ended meanwhile
/// (its registry was deleted; on a shared store, another node ended it): nothing stored.
fn store(
    inner: &Inner,
    commit: &Committer,
    repo: &str,
    src: Finished<'_>,
    key: &BlobKey,
) -> Result<Option<Durable<BlobLoc>>, StoreError> {
    let Finished {
        id,
        file,
        len,
        fill,
        require_row,
    } = src;
    let require = std::cell::Cell::new(require_row);
    let finish = |src: BlobSource| {
        let w = FinishBlob {
            repo: repo.to_owned(),
            key: key.clone(),
            src,
            upload: id.clone(),
            require_row: require.get(),
        };
        Ok::<_, StoreError>(commit.submit(w)?.transpose())
    };
    let linked = |done: Result<Durable<BlobLoc>, NotStored>| match done {
        Ok(done) => Ok(Some(done)),
        Err(NotStored::Ended) => Ok(None),
        // Only a finish that found the blob already stored can find it vanished.
        Err(NotStored::Vanished) => Err(StoreError::new(
            "internal: a blob stored with its bytes vanished in its own commit",
        )),
    };
    if len <= inner.opts.small_blob_bytes {
        fill()?;
        let mut data = Vec::with_capacity(len as usize);
        hash_file(file, len, |b| data.extend_from_slice(b))?;
        return linked(finish(BlobSource::Bytes(data))?);
    }
    if blob::locate(inner, key)?.is_some() {
        match finish(BlobSource::Existing)? {
            // Collected since it was seen: store these bytes after all (the upload file is
            // still here; only the session's row is gone).
            // That commit dropped the row: the next one must not look for it.
            Err(NotStored::Vanished) => require.set(false),
            done => return linked(done),
        }
    }
    fill()?;
    let pack = inner.new_pack_id()?;
    let io = |what: &str, e| StoreError::io(format!("{what} upload {id} as pack {pack}"), e);
    file.write_all_at(&pack_header(KIND_SINGLE, pack), 0)
        .map_err(|e| io("write pack header of", e))?;
    file.write_all_at(&record_header(key, len), PACK_HEADER_LEN)
        .map_err(|e| io("write record header of", e))?;
    file.sync_data().map_err(|e| io("fdatasync", e))?;
    inner
        .fs
        .rename(&upload_name(id.as_str()), &pack_name(pack))
        .map_err(|e| io("rename", e))?;
    linked(finish(BlobSource::Pack { pack, len })?)
}

/// A session's row, as the session starts. It needs no durability until a sync asks for it
/// (a session acknowledges bytes only once synced), so the caller does not wait for it.
struct StartUpload {
    id: UploadId,
    row: UploadRow,
}

impl Write for StartUpload {
    type Out = ();
    const DURABLE: bool = false;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<(), StoreError> {
        b.t.uploads
            .insert(self.id.as_str(), &schema::encode_upload(&self.row)[..])?;
        Ok(())
    }
}

/// Writes a session's row again, durably (`sync_upload`): answered once it and everything
/// queued before it are durable. A session its registry's deletion ended is not written.
struct KeepUpload {
    id: UploadId,
    row: UploadRow,
}

impl Write for KeepUpload {
    type Out = ();

    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<(), StoreError> {
        if !b.ended(&self.id) {
            b.t.uploads
                .insert(self.id.as_str(), &schema::encode_upload(&self.row)[..])?;
        }
        Ok(())
    }
}

pub(crate) fn cancel(
    inner: &Inner,
    commit: &Committer,
    repo: &str,
    id: &str,
) -> Result<bool, StoreError> {
    let Some((id, s)) = find(inner, repo, id)? else {
        return Ok(false);
    };
    let Some(mut g) = live(&s, repo) else {
        return Ok(false);
    };
    discard(inner, commit, &id, &s, &mut g);
    Ok(true)
}

/// The live sessions of repositories under `prefix` (`org/registry/`), finishing ones
/// included.
pub(crate) fn under(inner: &Inner, prefix: &str) -> Vec<UploadId> {
    inner
        .uploads
        .read_map()
        .iter()
        .filter(|(_, s)| s.repo.starts_with(prefix))
        .map(|(id, _)| id.clone())
        .collect()
}

/// Ends the sessions a registry deletion ended in its transaction: an append finds them
/// gone, and their files go. One finishing now is left to its finish, which the
/// committer refuses and which removes its file.
pub(crate) fn end(inner: &Inner, commit: &Committer, ids: &[UploadId]) {
    for id in ids {
        let Some(s) = inner.uploads.read_map().get(id).cloned() else {
            continue;
        };
        let mut g = lock(&s.s);
        if !g.ended {
            discard(inner, commit, id, &s, &mut g);
        }
    }
}

/// Removes sessions untouched for `upload_expiry_secs`. Sessions busy right now are in use,
/// so not expired.
pub(crate) fn expire(inner: &Inner, commit: &Committer) -> Result<usize, StoreError> {
    expire_or_count(inner, Some(commit))
}

/// Sessions [`expire`] would remove now, removing none.
pub(crate) fn count_expired(inner: &Inner) -> usize {
    // Without a committer nothing can be discarded, and nothing fails.
    expire_or_count(inner, None).unwrap_or(0)
}

/// Removes the sessions past expiry through `commit`, or with `None` only counts them.
fn expire_or_count(inner: &Inner, commit: Option<&Committer>) -> Result<usize, StoreError> {
    if inner.fs.shared() {
        // Sessions move between nodes: their rows say when they were last used.
        return shared::expire(inner, commit);
    }
    let now = (inner.clock)();
    let expiry = inner.opts.upload_expiry_secs;
    let mut n = 0;
    for id in inner.uploads.ids() {
        let Some(s) = inner.uploads.read_map().get(&id).cloned() else {
            continue;
        };
        let Ok(mut g) = s.s.try_lock() else {
            continue;
        };
        if !g.ended && g.touched.saturating_add(expiry) < now {
            if let Some(commit) = commit {
                discard(inner, commit, &id, &s, &mut g);
            }
            n += 1;
        }
    }
    Ok(n)
}

/// Holds finishes in one repository just before they verify the digest, so tests can act while a
/// finish is in its slow part (unit tests only).
#[cfg(test)]
pub(crate) mod test_gate {
    use std::sync::{Condvar, Mutex};

    /// Repositories whose finishes are held, and those with a finish waiting at the gate:
    /// per repository, so tests running at once do not release each other's.
    static STATE: Mutex<(Vec<String>, Vec<String>)> = Mutex::new((Vec::new(), Vec::new()));
    static CHANGED: Condvar = Condvar::new();

    pub(crate) fn hold(repo: &str) {
        STATE.lock().unwrap().0.push(repo.to_owned());
    }

    pub(crate) fn release(repo: &str) {
        let mut g = STATE.lock().unwrap();
        g.0.retain(|r| r != repo);
        g.1.retain(|r| r != repo);
        CHANGED.notify_all();
    }

    /// Blocks until a finish in `repo` waits at the gate: no guessing how long one takes.
    pub(crate) fn arrived(repo: &str) {
        let mut g = STATE.lock().unwrap();
        while !g.1.iter().any(|r| r == repo) {
            g = CHANGED.wait(g).unwrap();
        }
    }

    pub(super) fn wait(repo: &str) {
        let mut g = STATE.lock().unwrap();
        if !g.0.iter().any(|r| r == repo) {
            return;
        }
        g.1.push(repo.to_owned());
        CHANGED.notify_all();
        while g.0.iter().any(|r| r == repo) {
            g = CHANGED.wait(g).unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::test_gate;
    use crate::{AppendError, BlobKey, Engine, EngineOptions, FinishError, RegistryRec};

    #[test]
    fn cancel_and_append_do_not_wait_for_a_finish_of_the_same_session() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        let repo = "gate/finish-vs-cancel";
        let data = vec![7u8; 4096];
        let up = e.start_upload(repo).unwrap();
        e.append_upload(repo, &up.id, 0, &data).unwrap();
        test_gate::hold(repo);
        std::thread::scope(|sc| {
            let finishing = sc.spawn(|| e.finish_upload(repo, &up.id, &BlobKey::sha256_of(&data)));
            // Let the finish reach its digest check (hashing a large or restored upload).
            test_gate::arrived(repo);
            let (tx, rx) = mpsc::channel();
            let (e, up) = (&e, &up);
            sc.spawn(move || {
                let cancelled = e.cancel_upload(repo, &up.id);
                let appended = e.append_upload(repo, &up.id, 4096, b"more");
                let _ = tx.send((cancelled, appended));
            });
            let got = rx.recv_timeout(Duration::from_secs(5));
            test_gate::release(repo);
            let (cancelled, appended) = got.expect("cancel/append waited for the finish");
            assert!(!cancelled.unwrap(), "a finishing session is not cancelled");
            assert!(matches!(appended, Err(AppendError::Unknown)));
            let loc = finishing
                .join()
                .unwrap()
                .map_err(|e: FinishError| e.to_string());
            assert_eq!(e.read_blob(loc.unwrap().into_inner()).unwrap(), data);
        });
        assert!(e.check().unwrap().is_clean());
    }

    #[test]
    fn a_finish_under_way_when_its_registry_is_deleted_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let opts = EngineOptions {
            small_blob_bytes: 4096,
            ..EngineOptions::default()
        };
        let e = Engine::open(dir.path(), opts).unwrap();
        e.create_org("gate", 1).unwrap();
        let reg = RegistryRec {
            org: "gate".into(),
            slug: "gone".into(),
            name: "gone".into(),
            description: String::new(),
            visibility: Default::default(),
            created: 1,
        };
        let repo = "gate/gone/app";
        let packs = || std::fs::read_dir(dir.path().join("packs")).unwrap().count();
        // Copied into the shared pack, and renamed into a pack of its own.
        for len in [100, 10_000] {
            e.create_registry(reg.clone()).unwrap();
            let data = vec![len as u8; len];
            let key = BlobKey::sha256_of(&data);
            let up = e.start_upload(repo).unwrap();
            e.append_upload(repo, &up.id, 0, &data).unwrap();
            let packs_before = packs();
            test_gate::hold(repo);
            let got = std::thread::scope(|sc| {
                let finishing = sc.spawn(|| e.finish_upload(repo, &up.id, &key));
                test_gate::arrived(repo);
                let deleted = e.delete_registry("gate", "gone", 5);
                test_gate::release(repo);
                deleted.unwrap();
                finishing.join().unwrap()
            });
            assert!(matches!(got, Err(FinishError::Unknown)), "{len}: {got:?}");
            assert!(e.stat_blob(repo, &key).unwrap().is_none(), "{len}");
            let left = std::fs::read_dir(dir.path().join("uploads")).unwrap();
            assert_eq!(left.count(), 0, "{len}");
            assert_eq!(packs(), packs_before, "{len}: no pack is left for it");
            let r = e.check().unwrap();
            assert!(r.is_clean(), "{len}: {:?}", r.problems);
        }
    }
}
