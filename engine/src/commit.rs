//! Group commit: the only path that writes metadata, and the only place [`Durable`] is made.
//!
//! # Ordering invariant
//! For every write the engine acknowledges:
//! 1. the blob bytes it names are on disk: the shared pack is `fdatasync`ed by this thread
//!    before the transaction commits, and a large blob's pack was `fdatasync`ed by the
//!    finishing thread before it was renamed into `packs/` and handed here;
//! 2. the directory entries of packs created or renamed into `packs/` are synced (one
//!    `fsync` of the directory per batch), so a committed row never names a missing file;
//! 3. then the redb transaction naming those bytes commits with `Durability::Immediate`;
//! 4. only then does the caller get its [`Durable`] result.
//!
//! A crash between 1–2 and 3 leaves synced bytes no row names: `recover` cuts the shared
//! pack back to its committed length and deletes unnamed pack files. A failed sync or commit
//! fails the whole batch (its transaction is dropped, i.e. aborted) and latches the shared
//! pack read-only: it is never written or synced again, and the next small blob starts a
//! new pack. If redb latched on the failure, the database is reopened (`metadb.rs`) before
//! the next batch; the first batch to commit again marks the store healthy.
//!
//! Writes that need no durability when made (upload session rows: a session acknowledges
//! bytes only once synced) ride in the same batches; a batch of
//! only those commits with `Durability::None`, made durable by the next durable commit (a
//! `KeepUpload`, which the first `sync_upload` of a session sends, is one) or the final one
//! when the engine is dropped.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use redb::{ReadableTable, Table, WriteTransaction};

use crate::keys::{BlobKey, UploadId};
use crate::pack::format::{pack_name, upload_name, PACKS, PACK_HEADER_LEN, UPLOAD_RESERVED};
use crate::pack::writer::SharedPack;
use crate::schema::{self, PackRow, RepoKey, RepoKeyPair, UploadRow};
use crate::tenancy::{self, AuditRec, TenancyError, TenancyTables};
use crate::{
    blob, gc, manifest, BlobLoc, DeleteOutcome, Inner, ManifestRef, NewManifest, PutManifestError,
    StoreError,
};

/// Proof that what it carries is on disk and committed. Made only in this module, after the
/// ordering invariant above held for it.
#[must_use]
#[derive(Debug)]
pub struct Durable<T>(T);

impl<T> Durable<T> {
    /// The value, once the caller has acted on its durability (e.g. built the 201).
    pub fn into_inner(self) -> T {
        self.0
    }
    /// The value, without giving up the proof.
    pub fn get(&self) -> &T {
        &self.0
    }
}

/// A blob link or location read back from a committed row. Every row a reader can see that
/// names blob bytes was committed durably (only session rows commit with
/// `Durability::None`), so it is already durable.
pub(crate) fn already_durable(loc: BlobLoc) -> Durable<BlobLoc> {
    Durable(loc)
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

pub(crate) enum ManifestKey {
    Tag(String),
    Key(BlobKey),
}

pub(crate) enum Op {
    StartUpload {
        id: UploadId,
        row: UploadRow,
    },
    DropUpload {
        id: UploadId,
    },
    FinishBlob {
        repo: String,
        key: BlobKey,
        src: BlobSource,
        upload: UploadId,
    },
    Mount {
        repo: String,
        key: BlobKey,
        from: Option<String>,
    },
    Unlink {
        repo: String,
        key: BlobKey,
        audit: Vec<AuditRec>,
    },
    PutManifest {
        repo: String,
        m: Box<NewManifest>,
        audit: Vec<AuditRec>,
    },
    DeleteManifest {
        repo: String,
        r: ManifestKey,
        audit: Vec<AuditRec>,
    },
    /// Organisations, registries, tokens, audit (`tenancy.rs`).
    Tenancy(tenancy::Op),
    /// Writes nothing; answered once everything queued before it has committed.
    Barrier,
    /// Takes manifests off the package queue (`package_store.rs`).
    PackageDone {
        items: Vec<(String, Vec<u8>)>,
    },
    /// Records a version's index (`package_store.rs`) while its manifest is stored, and
    /// takes it off the package queue.
    PutVersion(Box<crate::package_store::VersionRows>),
    /// Adds a version's checksums to its record and takes it off the queue.
    PutChecksums(Box<crate::package_store::ChecksumRows>),
    /// Adds to versions' download counts: (repository, encoded manifest key, count).
    AddDownloads {
        items: Vec<(String, Vec<u8>, u64)>,
    },
    /// Records a layer's listing (encoded key, encoded listing) while the blob is stored.
    PutListing {
        key: Vec<u8>,
        listing: Vec<u8>,
        /// (file name, encoded paths of that name in the layer), for path searches.
        names: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Writes a session's row again, durably (`sync_upload`); answered once it and
    /// everything queued before it are durable.
    KeepUpload {
        id: UploadId,
        row: UploadRow,
    },
    /// Removes the links (repository, encoded key) last used at or before `cutoff`
    /// (`gc.rs`).
    UnlinkStale {
        links: Vec<(String, Vec<u8>)>,
        cutoff: u64,
    },
    /// Removes the blobs (encoded keys) no repository links (`gc.rs`).
    Sweep {
        keys: Vec<Vec<u8>>,
    },
    /// Copies the blobs still at these places in `pack` to the shared pack; with `last`,
    /// then drops `pack` (`gc.rs`).
    Compact {
        pack: u64,
        moves: Vec<gc::Placed>,
        last: bool,
    },
}

impl Op {
    fn needs_durability(&self) -> bool {
        !matches!(
            self,
            Op::StartUpload { .. } | Op::DropUpload { .. } | Op::Barrier
        )
    }

    /// Audit entries to append in the same transaction if the operation changes something.
    fn audit(&self) -> &[AuditRec] {
        match self {
            Op::Unlink { audit, .. }
            | Op::PutManifest { audit, .. }
            | Op::DeleteManifest { audit, .. } => audit,
            _ => &[],
        }
    }
}

/// Whether a batch needs the tenancy tables opened.
fn any_tenancy(batch: &[Job]) -> bool {
    batch
        .iter()
        .any(|j| matches!(j.op, Op::Tenancy(_)) || !j.op.audit().is_empty())
}

pub(crate) enum Outcome {
    Unit,
    Loc(BlobLoc),
    MaybeLoc(Option<BlobLoc>),
    Missing(Vec<BlobKey>),
    Delete(DeleteOutcome),
    /// A blob the finishing thread saw stored had vanished by commit time.
    Vanished,
    /// The upload's registry was deleted while it finished: nothing was stored.
    Ended,
    /// A tenancy write's result; a refusal wrote nothing but does not fail the batch.
    Tenancy(Result<tenancy::Done, tenancy::Refusal>),
    Swept(gc::Swept),
    Unlinked(u64),
    Moved(gc::Moved),
}

impl Outcome {
    /// Whether the operation changed the store (and so gets its audit entries).
    fn changed(&self) -> bool {
        match self {
            Outcome::Unit | Outcome::Loc(_) | Outcome::MaybeLoc(Some(_)) => true,
            Outcome::Delete(d) => *d == DeleteOutcome::Deleted,
            Outcome::Tenancy(r) => r.is_ok(),
            Outcome::Swept(_) | Outcome::Moved(_) | Outcome::Unlinked(_) => true,
            Outcome::MaybeLoc(None) | Outcome::Missing(_) | Outcome::Vanished | Outcome::Ended => {
                false
            }
        }
    }
}

struct Job {
    op: Op,
    reply: Sender<Result<Outcome, StoreError>>,
}

/// Every table, opened once per batch.
pub(crate) struct Tables<'t> {
    pub(crate) blobs: Table<'t, &'static [u8], &'static [u8]>,
    pub(crate) links: Table<'t, RepoKey, ()>,
    pub(crate) linked_by: Table<'t, (&'static [u8], &'static str), ()>,
    pub(crate) repos: Table<'t, &'static str, ()>,
    pub(crate) manifests: Table<'t, RepoKey, &'static [u8]>,
    pub(crate) tags: Table<'t, (&'static str, &'static str), &'static [u8]>,
    pub(crate) referrers: Table<'t, RepoKeyPair, &'static [u8]>,
    pub(crate) refs: Table<'t, RepoKeyPair, u8>,
    pub(crate) uploads: Table<'t, &'static str, &'static [u8]>,
    pub(crate) packs: Table<'t, u64, &'static [u8]>,
    pub(crate) package_queue: Table<'t, RepoKey, ()>,
    pub(crate) layer_listings: Table<'t, &'static [u8], &'static [u8]>,
    pub(crate) versions: Table<'t, RepoKey, &'static [u8]>,
    pub(crate) dirs: Table<'t, RepoKeyPair, &'static [u8]>,
    pub(crate) pushed: Table<'t, RepoKey, u64>,
    pub(crate) names: Table<'t, (&'static [u8], &'static [u8]), &'static [u8]>,
    pub(crate) layer_users: Table<'t, (&'static [u8], &'static str, &'static [u8]), ()>,
    pub(crate) downloads: Table<'t, RepoKey, u64>,
}

impl<'t> Tables<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            blobs: txn.open_table(schema::BLOBS)?,
            links: txn.open_table(schema::BLOB_LINKS)?,
            linked_by: txn.open_table(schema::BLOB_LINKED_BY)?,
            repos: txn.open_table(schema::REPOS)?,
            manifests: txn.open_table(schema::MANIFESTS)?,
            tags: txn.open_table(schema::TAGS)?,
            referrers: txn.open_table(schema::REFERRERS)?,
            refs: txn.open_table(schema::MANIFEST_REFS)?,
            uploads: txn.open_table(schema::UPLOADS)?,
            packs: txn.open_table(schema::PACKS)?,
            package_queue: txn.open_table(schema::PACKAGE_QUEUE)?,
            layer_listings: txn.open_table(schema::LAYER_LISTINGS)?,
            versions: txn.open_table(schema::PACKAGE_VERSIONS)?,
            dirs: txn.open_table(schema::PACKAGE_DIRS)?,
            pushed: txn.open_table(schema::PACKAGE_PUSHED)?,
            names: txn.open_table(schema::PACKAGE_NAMES)?,
            layer_users: txn.open_table(schema::PACKAGE_LAYER_USERS)?,
            downloads: txn.open_table(schema::PACKAGE_DOWNLOADS)?,
        })
    }
}

/// The handle callers submit writes through. Dropping it drains the queue, makes a final
/// durable commit and joins the thread.
pub(crate) struct Committer {
    tx: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Bumped after every tenancy write that can change an access decision (not last-used
    /// times nor audit entries): readers that cache what they looked up compare it to know they are current.
    tenancy_generation: AtomicU64,
}

/// Batches larger than this are split, bounding one transaction's size and latency.
const MAX_BATCH: usize = 256;

impl Committer {
    pub(crate) fn start(
        inner: Arc<Inner>,
        resume_shared: Option<(u64, u64)>,
    ) -> Result<Committer, StoreError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new()
            .name("berth-commit".into())
            .spawn(move || run(inner, rx, resume_shared))
            .map_err(|e| StoreError::io("start the committer thread", e))?;
        Ok(Committer {
            tx: Some(tx),
            thread: Some(thread),
            tenancy_generation: AtomicU64::new(0),
        })
    }

    fn submit(&self, op: Op) -> Result<Outcome, StoreError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        let closed = || StoreError::new("the store is closing; retry");
        self.tx
            .as_ref()
            .ok_or_else(closed)?
            .send(Job { op, reply })
            .map_err(|_| closed())?;
        rx.recv().map_err(|_| closed())?
    }

    /// Queues `op` without waiting for its batch. Only for session rows, which need no
    /// durability until a sync (`keep_upload`) asks for it: the queue is FIFO, so a session's later finish or drop commits after its
    /// row, and dropping the engine drains the queue before the final durable commit.
    fn post(&self, op: Op) -> Result<(), StoreError> {
        let (reply, _) = crossbeam_channel::bounded(1);
        self.tx
            .as_ref()
            .ok_or_else(|| StoreError::new("the store is closing; retry"))?
            .send(Job { op, reply })
            .map_err(|_| StoreError::new("the store is closing; retry"))
    }

    /// Records a new session; returns at once (see [`Committer::post`]).
    pub(crate) fn start_upload(&self, id: UploadId, row: UploadRow) -> Result<(), StoreError> {
        self.post(Op::StartUpload { id, row })
    }

    /// Forgets a session's row; returns at once (see [`Committer::post`]).
    pub(crate) fn drop_upload(&self, id: UploadId) -> Result<(), StoreError> {
        self.post(Op::DropUpload { id })
    }

    /// Records a layer listing, durably.
    pub(crate) fn put_listing(
        &self,
        key: Vec<u8>,
        listing: Vec<u8>,
        names: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        match self.submit(Op::PutListing {
            key,
            listing,
            names,
        })? {
            Outcome::Unit => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// Records a version's index, durably.
    pub(crate) fn put_version(
        &self,
        rows: crate::package_store::VersionRows,
    ) -> Result<(), StoreError> {
        match self.submit(Op::PutVersion(Box::new(rows)))? {
            Outcome::Unit => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// Adds a version's checksums, durably.
    pub(crate) fn put_checksums(
        &self,
        rows: crate::package_store::ChecksumRows,
    ) -> Result<(), StoreError> {
        match self.submit(Op::PutChecksums(Box::new(rows)))? {
            Outcome::Unit => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// Adds to download counts, durably.
    pub(crate) fn add_downloads(
        &self,
        items: Vec<(String, Vec<u8>, u64)>,
    ) -> Result<(), StoreError> {
        match self.submit(Op::AddDownloads { items })? {
            Outcome::Unit => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// Removes package-queue rows, durably.
    pub(crate) fn package_done(&self, items: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
        match self.submit(Op::PackageDone { items })? {
            Outcome::Unit => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// Returns once every write queued before it (session rows included) has committed.
    pub(crate) fn barrier(&self) -> Result<(), StoreError> {
        match self.submit(Op::Barrier)? {
            Outcome::Unit => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// Writes a session's row again and returns once it, and every write queued before it,
    /// is durable: the batch it rides in commits with `fsync`.
    pub(crate) fn keep_upload(&self, id: UploadId, row: UploadRow) -> Result<(), StoreError> {
        match self.submit(Op::KeepUpload { id, row })? {
            Outcome::Unit => Ok(()),
            _ => Err(unexpected()),
        }
    }

    /// Stores and links an upload's blob; [`Finished::Ended`] if its registry was deleted
    /// meanwhile (a pack renamed in for it is deleted; the upload file is the caller's).
    pub(crate) fn finish_blob(
        &self,
        repo: &str,
        key: BlobKey,
        src: BlobSource,
        upload: UploadId,
    ) -> Result<Finished, StoreError> {
        let op = Op::FinishBlob {
            repo: repo.to_owned(),
            key,
            src,
            upload,
        };
        match self.submit(op)? {
            Outcome::Loc(loc) => Ok(Finished::Linked(Durable(loc))),
            Outcome::Ended => Ok(Finished::Ended),
            _ => Err(unexpected()),
        }
    }

    /// Links a blob the finishing thread saw stored; [`Finished::Vanished`] if garbage
    /// collection removed it meanwhile (the session is over either way; its file is left to
    /// the caller).
    pub(crate) fn finish_existing(
        &self,
        repo: &str,
        key: BlobKey,
        upload: UploadId,
    ) -> Result<Finished, StoreError> {
        let op = Op::FinishBlob {
            repo: repo.to_owned(),
            key,
            src: BlobSource::Existing,
            upload,
        };
        match self.submit(op)? {
            Outcome::Loc(loc) => Ok(Finished::Linked(Durable(loc))),
            Outcome::Vanished => Ok(Finished::Vanished),
            Outcome::Ended => Ok(Finished::Ended),
            _ => Err(unexpected()),
        }
    }

    pub(crate) fn unlink_stale(
        &self,
        links: Vec<(String, Vec<u8>)>,
        cutoff: u64,
    ) -> Result<u64, StoreError> {
        match self.submit(Op::UnlinkStale { links, cutoff })? {
            Outcome::Unlinked(n) => Ok(n),
            _ => Err(unexpected()),
        }
    }

    pub(crate) fn sweep(&self, keys: Vec<Vec<u8>>) -> Result<gc::Swept, StoreError> {
        match self.submit(Op::Sweep { keys })? {
            Outcome::Swept(s) => Ok(s),
            _ => Err(unexpected()),
        }
    }

    pub(crate) fn compact(
        &self,
        pack: u64,
        moves: Vec<gc::Placed>,
        last: bool,
    ) -> Result<gc::Moved, StoreError> {
        match self.submit(Op::Compact { pack, moves, last })? {
            Outcome::Moved(m) => Ok(m),
            _ => Err(unexpected()),
        }
    }

    pub(crate) fn mount(
        &self,
        repo: &str,
        key: &BlobKey,
        from: Option<&str>,
    ) -> Result<Option<Durable<BlobLoc>>, StoreError> {
        let op = Op::Mount {
            repo: repo.to_owned(),
            key: key.clone(),
            from: from.map(str::to_owned),
        };
        match self.submit(op)? {
            Outcome::MaybeLoc(loc) => Ok(loc.map(Durable)),
            _ => Err(unexpected()),
        }
    }

    pub(crate) fn unlink(
        &self,
        repo: &str,
        key: &BlobKey,
        audit: Vec<AuditRec>,
    ) -> Result<DeleteOutcome, StoreError> {
        let op = Op::Unlink {
            repo: repo.to_owned(),
            key: key.clone(),
            audit,
        };
        match self.submit(op)? {
            Outcome::Delete(d) => Ok(d),
            _ => Err(unexpected()),
        }
    }

    pub(crate) fn put_manifest(
        &self,
        repo: &str,
        m: NewManifest,
        audit: Vec<AuditRec>,
    ) -> Result<Durable<()>, PutManifestError> {
        let op = Op::PutManifest {
            repo: repo.to_owned(),
            m: Box::new(m),
            audit,
        };
        match self.submit(op)? {
            Outcome::Unit => Ok(Durable(())),
            Outcome::Missing(keys) => Err(PutManifestError::Missing(keys)),
            _ => Err(unexpected().into()),
        }
    }

    pub(crate) fn delete_manifest(
        &self,
        repo: &str,
        r: ManifestRef<'_>,
        audit: Vec<AuditRec>,
    ) -> Result<DeleteOutcome, StoreError> {
        let r = match r {
            ManifestRef::Tag(t) => ManifestKey::Tag(t.to_owned()),
            ManifestRef::Key(k) => ManifestKey::Key(k.clone()),
        };
        let op = Op::DeleteManifest {
            repo: repo.to_owned(),
            r,
            audit,
        };
        match self.submit(op)? {
            Outcome::Delete(d) => Ok(d),
            _ => Err(unexpected()),
        }
    }

    /// Applies a tenancy write durably; a refusal comes back as its [`TenancyError`].
    pub(crate) fn tenancy(&self, op: tenancy::Op) -> Result<tenancy::Done, TenancyError> {
        let decides = !matches!(
            op,
            tenancy::Op::TouchTokens(_) | tenancy::Op::AppendAudit(_)
        );
        let outcome = self.submit(Op::Tenancy(op));
        // After the commit (or its failure), so a reader that sees the old generation
        // looks again next time; a bump for a write that failed costs one lookup.
        if decides {
            self.tenancy_generation.fetch_add(1, Ordering::Release);
        }
        match outcome? {
            Outcome::Tenancy(r) => r.map_err(TenancyError::from),
            _ => Err(unexpected().into()),
        }
    }

    pub(crate) fn tenancy_generation(&self) -> u64 {
        self.tenancy_generation.load(Ordering::Acquire)
    }
}

pub(crate) fn unexpected() -> StoreError {
    StoreError::new("internal: the committer answered with the wrong outcome kind")
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            // A panic in the committer is a bug already reported on stderr; nothing to add.
            let _ = t.join();
        }
    }
}

/// How an upload's finish committed.
pub(crate) enum Finished {
    Linked(Durable<BlobLoc>),
    /// The blob it meant to link was collected meanwhile ([`Committer::finish_existing`]).
    Vanished,
    /// Its registry was deleted meanwhile, ending the session: nothing was stored.
    Ended,
}

/// The committer's state between batches.
struct State {
    inner: Arc<Inner>,
    shared: Option<SharedPack>,
    /// Upload sessions a registry deletion ended: their finish stores nothing and their
    /// row is not written again (a sync racing the deletion). Upload ids are random and
    /// never reused; the set grows only by the sessions deletions end, for the process's
    /// life (after a restart their rows are gone, so nothing restores them).
    ended: HashSet<UploadId>,
}

fn run(inner: Arc<Inner>, rx: Receiver<Job>, resume_shared: Option<(u64, u64)>) {
    let shared = resume_shared.and_then(|(id, len)| SharedPack::reopen(&inner.packs, id, len).ok());
    let mut st = State {
        inner,
        shared: None,
        ended: HashSet::new(),
    };
    st.set_shared(shared);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        st.process(batch);
    }
    // Makes session rows committed with `Durability::None` durable, so sessions survive a
    // clean restart. Failing here loses only those rows, which the next open tolerates.
    if let Ok(txn) = st.inner.db.begin_write() {
        let _ = txn.commit();
    }
}

/// What a batch did besides its rows, to finish or undo after the transaction.
#[derive(Default)]
struct Effects {
    /// The shared pack got records this batch.
    shared_written: bool,
    /// A pack file was created or renamed into `packs/`.
    dir_changed: bool,
    /// Files to delete once the batch committed (consumed uploads, duplicate packs).
    delete_after: Vec<String>,
    /// Packs renamed in by finishing threads: deleted if the batch fails.
    incoming_packs: Vec<String>,
    /// Links garbage collection removed (by hash): unmarked if the batch fails.
    unlinked: Vec<u64>,
    /// Upload sessions a registry deletion ended: not ended if the batch fails.
    ended: Vec<UploadId>,
}

impl State {
    fn process(&mut self, batch: Vec<Job>) {
        let mut fx = Effects::default();
        for j in &batch {
            if let Op::FinishBlob {
                src: BlobSource::Pack { pack, .. },
                ..
            } = &j.op
            {
                fx.incoming_packs.push(pack_name(*pack));
            }
        }
        // A reopen that failed is tried again before each batch.
        let reopened = self.inner.db.reopen_if_closed();
        let result = reopened.and_then(|()| self.commit_batch(&batch, &mut fx));
        // Only a durable commit proves the disk takes writes again (one with
        // `Durability::None` may not have written anything).
        let durable = batch.iter().any(|j| j.op.needs_durability());
        if result.is_err() || durable {
            self.health(result.as_ref().err());
        }
        match result {
            Ok(outcomes) => {
                // Before the replies, so a caller that got its answer never sees the
                // consumed upload file still in `uploads/`.
                for p in fx.delete_after {
                    let _ = self.inner.fs.remove(&p);
                }
                for (job, out) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(out));
                }
            }
            Err(e) => {
                if fx.shared_written {
                    self.latch_shared();
                }
                // The links this batch marked as removed are still there.
                self.inner.gc.unmark(&fx.unlinked);
                for id in &fx.ended {
                    self.ended.remove(id);
                }
                for p in fx.incoming_packs {
                    let _ = self.inner.fs.remove(&p);
                }
                for job in batch {
                    let _ = job.reply.send(Err(e.clone()));
                }
                // redb latches after a failed write until reopened (`metadb.rs`); failing
                // here, the next batch tries again.
                if self.inner.db.latched() {
                    if let Err(re) = self.inner.db.reopen() {
                        self.health(Some(&re));
                    }
                }
            }
        }
    }

    fn commit_batch(
        &mut self,
        batch: &[Job],
        fx: &mut Effects,
    ) -> Result<Vec<Outcome>, StoreError> {
        let mut txn = self.inner.db.begin_write()?;
        if !batch.iter().any(|j| j.op.needs_durability()) {
            txn.set_durability(redb::Durability::None)?;
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        {
            let mut t = Tables::open(&txn)?;
            let mut tt = if any_tenancy(batch) {
                Some(TenancyTables::open(&txn)?)
            } else {
                None
            };
            for job in batch {
                let out = self.apply(&mut t, tt.as_mut(), &job.op, fx)?;
                // An entry that cannot be written fails the batch like any other row: a
                // change is never committed without the entry that records it.
                if out.changed() {
                    for rec in job.op.audit() {
                        // Opened by `any_tenancy` whenever an operation carries entries.
                        let tt = tt
                            .as_mut()
                            .ok_or_else(|| StoreError::new("internal: tenancy tables not open"))?;
                        tenancy::append_audit(tt, rec)?;
                    }
                }
                outcomes.push(out);
            }
            if fx.shared_written {
                // The shared pack exists whenever `shared_written` is set.
                if let Some(sp) = &self.shared {
                    if let Err(e) = sp.sync() {
                        return Err(StoreError::io(format!("fdatasync pack {}", sp.id), e));
                    }
                    let row = PackRow {
                        kind: schema::PACK_SHARED,
                        committed_len: sp.tail,
                    };
                    t.packs.insert(sp.id, &schema::encode_pack(&row)[..])?;
                }
            }
        }
        if fx.dir_changed {
            sync_dir(&*self.inner.fs, PACKS)?;
        }
        txn.commit()?;
        Ok(outcomes)
    }

    /// Moves the blobs of `moves` still in `pack` to the shared pack (the bytes are synced
    /// with the batch, before it commits) and points their rows there; with `last`, drops
    /// the pack's row and deletes its file after the commit.
    fn compact(
        &mut self,
        t: &mut Tables<'_>,
        pack: u64,
        moves: &[gc::Placed],
        last: bool,
        fx: &mut Effects,
    ) -> Result<gc::Moved, StoreError> {
        let mut out = gc::Moved::default();
        if self.shared.as_ref().is_some_and(|sp| sp.id == pack) {
            out.skipped = true;
            return Ok(out);
        }
        // Plain reads, not a map: a pack that cannot be read must cost its own blobs a
        // move, not the batch its writes (nor the process a SIGBUS).
        let file = self.inner.packs.file(pack);
        for (kb, loc) in moves {
            let Some(key) = gc::still_at(t, kb, loc)? else {
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
            let sp = self.shared_for(loc.len, fx)?;
            fx.shared_written = true;
            let to = sp.append(&key, &data)?;
            t.blobs.insert(&kb[..], &schema::encode_loc(&to)[..])?;
            out.blobs += 1;
            out.bytes += loc.len;
        }
        // A blob left behind keeps its pack.
        if last && out.unreadable == 0 {
            if let Some(v) = t.packs.remove(pack)? {
                out.removed_bytes = Some(schema::decode_pack(v.value())?.committed_len);
                self.inner.packs.retire(pack, (self.inner.clock)());
                fx.delete_after.push(pack_name(pack));
            }
        }
        Ok(out)
    }

    /// `repo`'s link to the blob encoded as `kb` is made or named now (see `touch.rs`).
    fn used(&self, repo: &str, kb: &[u8]) {
        self.inner.touches.touch(repo, kb, (self.inner.clock)());
        self.inner.gc.relinked(repo, kb);
    }

    /// Records whether the store can write, telling the watch when that changes.
    fn health(&self, failed: Option<&StoreError>) {
        let why = failed.map(|e| e.detail().to_owned());
        if let Some(now) = self.inner.db.set_failing(why) {
            let watch = self
                .inner
                .health_watch
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(w) = watch.as_ref() {
                w(now.as_deref());
            }
        }
    }

    /// Publishes which shared pack is being appended to, for garbage collection's plans.
    fn set_shared(&mut self, sp: Option<SharedPack>) {
        let id = sp.as_ref().map_or(u64::MAX, |sp| sp.id);
        self.inner.active_shared.store(id, Ordering::Release);
        self.shared = sp;
    }

    /// Retires the shared pack after a failed write, sync or commit: it is never written
    /// or synced again (see the module docs).
    fn latch_shared(&mut self) {
        if let Some(sp) = self.shared.take() {
            self.inner.active_shared.store(u64::MAX, Ordering::Release);
            let mut failed = self
                .inner
                .failed_packs
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            failed.push(sp.id);
        }
    }

    /// The shared pack to append `len` more bytes to, creating one if needed.
    fn shared_for(&mut self, len: u64, fx: &mut Effects) -> Result<&mut SharedPack, StoreError> {
        let roll = self.inner.opts.shared_pack_bytes;
        let full = self
            .shared
            .as_ref()
            .is_some_and(|sp| sp.tail > PACK_HEADER_LEN && sp.tail + len > roll);
        if full && !fx.shared_written {
            self.set_shared(None);
        }
        if self.shared.is_none() {
            let id = self.inner.next_pack.fetch_add(1, Ordering::Relaxed);
            self.set_shared(Some(SharedPack::create(&self.inner.packs, id)?));
            fx.dir_changed = true;
        }
        // Set just above when it was `None`.
        self.shared
            .as_mut()
            .ok_or_else(|| StoreError::new("internal: no shared pack"))
    }

    fn apply(
        &mut self,
        t: &mut Tables<'_>,
        tt: Option<&mut TenancyTables<'_>>,
        op: &Op,
        fx: &mut Effects,
    ) -> Result<Outcome, StoreError> {
        match op {
            Op::StartUpload { id, row } => {
                t.uploads
                    .insert(id.as_str(), &schema::encode_upload(row)[..])?;
                Ok(Outcome::Unit)
            }
            Op::Barrier => Ok(Outcome::Unit),
            Op::PutListing {
                key,
                listing,
                names,
            } => {
                // A blob collected since it was listed takes no listing with it.
                if t.blobs.get(&key[..])?.is_some() {
                    t.layer_listings.insert(&key[..], &listing[..])?;
                    for (name, paths) in names {
                        t.names.insert((&name[..], &key[..]), &paths[..])?;
                    }
                }
                Ok(Outcome::Unit)
            }
            Op::PutVersion(rows) => {
                crate::package_store::apply_put_version(t, rows)?;
                Ok(Outcome::Unit)
            }
            Op::PutChecksums(rows) => {
                crate::package_store::apply_put_checksums(t, rows)?;
                Ok(Outcome::Unit)
            }
            Op::AddDownloads { items } => {
                crate::package_store::apply_add_downloads(t, items)?;
                Ok(Outcome::Unit)
            }
            Op::PackageDone { items } => {
                for (repo, kb) in items {
                    t.package_queue.remove((repo.as_str(), &kb[..]))?;
                }
                Ok(Outcome::Unit)
            }
            Op::KeepUpload { id, .. } if self.ended.contains(id) => Ok(Outcome::Unit),
            Op::KeepUpload { id, row } => {
                t.uploads
                    .insert(id.as_str(), &schema::encode_upload(row)[..])?;
                Ok(Outcome::Unit)
            }
            Op::DropUpload { id } => {
                t.uploads.remove(id.as_str())?;
                Ok(Outcome::Unit)
            }
            Op::FinishBlob {
                repo,
                key,
                src,
                upload,
            } => {
                t.uploads.remove(upload.as_str())?;
                if self.ended.contains(upload) {
                    if let BlobSource::Pack { pack, .. } = src {
                        fx.delete_after.push(pack_name(*pack));
                    }
                    return Ok(Outcome::Ended);
                }
                let upload_path = upload_name(upload.as_str());
                let kb = key.encode();
                let existing = t
                    .blobs
                    .get(&kb[..])?
                    .map(|v| schema::decode_loc(v.value()))
                    .transpose()?;
                if let Some(loc) = existing {
                    match src {
                        BlobSource::Pack { pack, .. } => fx.delete_after.push(pack_name(*pack)),
                        _ => fx.delete_after.push(upload_path),
                    }
                    blob::link(t, repo, &kb)?;
                    self.used(repo, &kb);
                    return Ok(Outcome::Loc(loc));
                }
                let loc = match src {
                    BlobSource::Existing => return Ok(Outcome::Vanished),
                    BlobSource::Bytes(data) => {
                        let sp = self.shared_for(data.len() as u64, fx)?;
                        fx.shared_written = true;
                        let loc = sp.append(key, data);
                        fx.delete_after.push(upload_path);
                        loc?
                    }
                    BlobSource::Pack { pack, len } => {
                        fx.dir_changed = true;
                        let row = PackRow {
                            kind: schema::PACK_SINGLE,
                            committed_len: UPLOAD_RESERVED + len,
                        };
                        t.packs.insert(*pack, &schema::encode_pack(&row)[..])?;
                        BlobLoc {
                            pack: *pack,
                            offset: UPLOAD_RESERVED,
                            len: *len,
                        }
                    }
                };
                t.blobs.insert(&kb[..], &schema::encode_loc(&loc)[..])?;
                blob::link(t, repo, &kb)?;
                self.used(repo, &kb);
                Ok(Outcome::Loc(loc))
            }
            Op::Mount { repo, key, from } => {
                let loc = blob::apply_mount(t, repo, key, from.as_deref())?;
                if loc.is_some() {
                    self.used(repo, &key.encode());
                }
                Ok(Outcome::MaybeLoc(loc))
            }
            Op::Unlink { repo, key, .. } => Ok(Outcome::Delete(blob::apply_unlink(t, repo, key)?)),
            Op::PutManifest { repo, m, .. } => {
                match manifest::apply_put(t, repo, m, (self.inner.clock)())? {
                    Ok(()) => {
                        // Before any collection whose snapshot lacks these references can
                        // unlink them (it checks uses again inside its transaction).
                        for k in &m.blobs {
                            self.used(repo, &k.encode());
                        }
                        for k in &m.external {
                            let kb = k.encode();
                            if t.links.get((repo.as_str(), &kb[..]))?.is_some() {
                                self.used(repo, &kb);
                            }
                        }
                        Ok(Outcome::Unit)
                    }
                    Err(missing) => Ok(Outcome::Missing(missing)),
                }
            }
            Op::DeleteManifest { repo, r, .. } => {
                Ok(Outcome::Delete(manifest::apply_delete(t, repo, r)?))
            }
            Op::UnlinkStale { links, cutoff } => {
                let removed = gc::apply_unlink_stale(t, &self.inner, links, *cutoff)?;
                let n = removed.len() as u64;
                fx.unlinked.extend(removed);
                Ok(Outcome::Unlinked(n))
            }
            Op::Sweep { keys } => {
                let (swept, files) = gc::apply_sweep(t, keys)?;
                for &p in &swept.packs {
                    self.inner.packs.retire(p, (self.inner.clock)());
                }
                fx.delete_after.extend(files);
                Ok(Outcome::Swept(swept))
            }
            Op::Compact { pack, moves, last } => {
                Ok(Outcome::Moved(self.compact(t, *pack, moves, *last, fx)?))
            }
            Op::Tenancy(op) => {
                // Opened by `commit_batch` whenever the batch holds a tenancy write.
                let tt = tt.ok_or_else(|| StoreError::new("internal: tenancy tables not open"))?;
                let mut out = tenancy::apply(t, tt, op)?;
                if let (
                    Ok(tenancy::Done::Deleted { uploads, .. }),
                    tenancy::Op::DeleteRegistry { org, slug, .. },
                ) = (&mut out, op)
                {
                    // Sessions whose row a failed batch dropped end too.
                    let prefix = format!("{org}/{slug}/");
                    for id in crate::upload::under(&self.inner, &prefix) {
                        if !uploads.contains(&id) {
                            uploads.push(id);
                        }
                    }
                    for id in uploads.iter() {
                        if self.ended.insert(id.clone()) {
                            fx.ended.push(id.clone());
                        }
                    }
                }
                Ok(Outcome::Tenancy(out))
            }
        }
    }
}

/// `fsync` of the store's directory `dir`, making renames and creations in it durable.
pub(crate) fn sync_dir(fs: &dyn crate::vfs::Vfs, dir: &str) -> Result<(), StoreError> {
    fs.sync_dir(dir)
        .map_err(|e| StoreError::io(format!("fsync directory {}", fs.describe(dir)), e))
}
