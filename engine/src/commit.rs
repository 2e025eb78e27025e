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
//! bytes only once synced) ride in the same batches; a batch of only those commits with
//! `Durability::None`, made durable by the next durable commit (a session's row written
//! again by its first `sync_upload`, in `upload.rs`, is one) or the final one when the
//! engine is dropped.
//!
//! This module knows no kind of write: each is a [`Write`] beside the code it serves, and
//! its caller gets back the typed result of that write alone.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::kv::{ReadableTable, Table, WriteTransaction};
use crossbeam_channel::{Receiver, Sender};

use crate::keys::{BlobKey, UploadId};
use crate::pack::format::{PACKS, PACK_HEADER_LEN};
use crate::pack::writer::SharedPack;
use crate::schema::{self, PackRow, RepoKey, RepoKeyPair};
use crate::tenancy::records::{append_audit, AuditRec, TenancyTables};
use crate::{BlobLoc, Inner, StoreError};

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

impl<T, E> Durable<Result<T, E>> {
    /// A durable outcome that is either a durable value or why there is none.
    pub(crate) fn transpose(self) -> Result<Durable<T>, E> {
        self.0.map(Durable)
    }
}

impl<T> Durable<Option<T>> {
    /// A durable outcome that may hold a durable value.
    pub(crate) fn transpose(self) -> Option<Durable<T>> {
        self.0.map(Durable)
    }
}

/// A blob link or location read back from a committed row. Every row a reader can see that
/// names blob bytes was committed durably (only session rows commit with
/// `Durability::None`), so it is already durable.
pub(crate) fn already_durable(loc: BlobLoc) -> Durable<BlobLoc> {
    Durable(loc)
}

/// A write the committer applies inside a batch's transaction. Each kind of write lives
/// beside the code it serves (`blob.rs`, `manifest.rs`, `upload.rs`, `gc.rs`,
/// `tenancy/`, `package_store.rs`); this module knows none of them, only this trait. The
/// caller gets back exactly the `Out` its write made: a reply cannot reach another write.
pub(crate) trait Write: Send + 'static {
    /// What the caller gets once the batch committed.
    type Out: Send + 'static;
    /// Whether the batch must commit durably before the caller is answered. Only session
    /// rows ride without (see the module docs).
    const DURABLE: bool = true;
    /// Applies the write; an `Err` fails the whole batch.
    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<Self::Out, StoreError>;
    /// Audit entries committed with the change, if it changed something.
    fn audit(&self) -> &[AuditRec] {
        &[]
    }
    /// Whether `out` says the store changed (so the audit entries are written).
    fn changed(_out: &Self::Out) -> bool {
        true
    }
    /// Undoes what was done for this write outside the transaction, after the batch it
    /// rode in failed.
    fn failed(&self, _inner: &Inner) {}
}

/// A queued write with its reply channel, its type erased so one queue holds every kind.
trait Queued: Send {
    fn durable(&self) -> bool;
    fn apply(&mut self, b: &mut Batch<'_, '_>) -> Result<(), StoreError>;
    /// The batch committed: answer with what `apply` made.
    fn succeed(self: Box<Self>);
    /// The batch failed: undo what was done outside it, and answer with why.
    fn fail(self: Box<Self>, inner: &Inner, e: StoreError);
}

struct Job<W: Write> {
    write: W,
    out: Option<W::Out>,
    reply: Sender<Result<W::Out, StoreError>>,
}

impl<W: Write> Queued for Job<W> {
    fn durable(&self) -> bool {
        W::DURABLE
    }

    fn apply(&mut self, b: &mut Batch<'_, '_>) -> Result<(), StoreError> {
        let out = self.write.apply(b)?;
        // An entry that cannot be written fails the batch like any other row: a change is
        // never committed without the entry that records it.
        if W::changed(&out) {
            for rec in self.write.audit() {
                append_audit(b.tenancy()?, rec)?;
            }
        }
        self.out = Some(out);
        Ok(())
    }

    fn succeed(self: Box<Self>) {
        let reply = match self.out {
            Some(out) => Ok(out),
            None => Err(StoreError::new("internal: a write was never applied")),
        };
        let _ = self.reply.send(reply);
    }

    fn fail(self: Box<Self>, inner: &Inner, e: StoreError) {
        self.write.failed(inner);
        let _ = self.reply.send(Err(e));
    }
}

/// Writes nothing; answered once everything queued before it has committed.
struct Barrier;

impl Write for Barrier {
    type Out = ();
    const DURABLE: bool = false;
    fn apply(&self, _: &mut Batch<'_, '_>) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Every table, opened once per batch.
pub(crate) struct Tables<'t> {
    pub(crate) blobs: Table<'t, &'static [u8], &'static [u8]>,
    pub(crate) links: Table<'t, RepoKey, ()>,
    pub(crate) link_uses: Table<'t, RepoKey, u64>,
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
            link_uses: txn.open_table(schema::LINK_USES)?,
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

/// What a write sees of its batch: the tables, the shared pack to append small blobs to,
/// and the effects to carry out (or undo) once the transaction commits (or fails).
pub(crate) struct Batch<'a, 't> {
    pub(crate) t: Tables<'t>,
    txn: &'t WriteTransaction,
    tt: Option<TenancyTables<'t>>,
    pub(crate) inner: &'a Inner,
    st: &'a mut State,
    fx: &'a mut Effects,
}

impl<'t> Batch<'_, 't> {
    /// The tenancy tables, opened the first time a write of the batch needs them.
    pub(crate) fn tenancy(&mut self) -> Result<&mut TenancyTables<'t>, StoreError> {
        if self.tt.is_none() {
            self.tt = Some(TenancyTables::open(self.txn)?);
        }
        self.tt
            .as_mut()
            .ok_or_else(|| StoreError::new("internal: tenancy tables not open"))
    }

    /// The batch's tables and the tenancy tables, for a write that changes both.
    pub(crate) fn tables_and_tenancy(
        &mut self,
    ) -> Result<(&mut Tables<'t>, &mut TenancyTables<'t>), StoreError> {
        self.tenancy()?;
        match self.tt.as_mut() {
            Some(tt) => Ok((&mut self.t, tt)),
            None => Err(StoreError::new("internal: tenancy tables not open")),
        }
    }

    /// Appends a blob to the shared pack (synced with the batch, before it commits).
    pub(crate) fn append_shared(
        &mut self,
        key: &BlobKey,
        data: &[u8],
    ) -> Result<BlobLoc, StoreError> {
        let sp = self.st.shared_for(self.inner, data.len() as u64, self.fx)?;
        self.fx.shared_written = true;
        sp.append(key, data)
    }

    /// The shared pack being appended to, which compaction must leave alone.
    pub(crate) fn shared_pack(&self) -> Option<u64> {
        self.st.shared.as_ref().map(|sp| sp.id)
    }

    /// `repo`'s link to the blob encoded as `kb` is made or named now (see `touch.rs`); on
    /// a shared store also written down, for the other nodes' collections.
    pub(crate) fn used(&mut self, repo: &str, kb: &[u8]) -> Result<(), StoreError> {
        let now = (self.inner.clock)();
        self.inner.touches.touch(repo, kb, now);
        self.inner.gc.relinked(repo, kb);
        if self.inner.fs.shared() {
            self.t.link_uses.insert((repo, kb), now)?;
        }
        Ok(())
    }

    /// Stores blob `kb`'s location (replacing any), counting its bytes in the totals.
    pub(crate) fn put_blob(&mut self, kb: &[u8], loc: &BlobLoc) -> Result<(), StoreError> {
        let old = self
            .t
            .blobs
            .insert(kb, &schema::encode_loc(loc)[..])?
            .map(|v| schema::decode_loc(v.value()))
            .transpose()?;
        self.fx.blob_bytes += loc.len as i64 - old.map_or(0, |o| o.len as i64);
        Ok(())
    }

    /// Removes blob `kb`'s row; where it was.
    pub(crate) fn remove_blob(&mut self, kb: &[u8]) -> Result<Option<BlobLoc>, StoreError> {
        let old = self
            .t
            .blobs
            .remove(kb)?
            .map(|v| schema::decode_loc(v.value()))
            .transpose()?;
        self.fx.blob_bytes -= old.map_or(0, |o| o.len as i64);
        Ok(old)
    }

    /// Stores pack `id`'s row (replacing any), counting its bytes in the totals.
    pub(crate) fn put_pack(&mut self, id: u64, row: &PackRow) -> Result<(), StoreError> {
        put_pack(&mut self.t, self.fx, id, row)
    }

    /// Removes pack `id`'s row; what it said.
    pub(crate) fn remove_pack(&mut self, id: u64) -> Result<Option<PackRow>, StoreError> {
        let old = self
            .t
            .packs
            .remove(id)?
            .map(|v| schema::decode_pack(v.value()))
            .transpose()?;
        self.fx.pack_bytes -= old.as_ref().map_or(0, |o| o.committed_len as i64);
        Ok(old)
    }

    /// The store-wide values (`schema::META`), in the batch's transaction.
    pub(crate) fn meta(&self) -> Result<Table<'t, &'static str, &'static [u8]>, StoreError> {
        self.txn.open_table(schema::META)
    }

    /// A pack file was created or renamed into `packs/`: the directory is synced before the
    /// commit.
    pub(crate) fn pack_entry_changed(&mut self) {
        self.fx.dir_changed = true;
    }

    /// Deletes file `name` once the batch committed.
    pub(crate) fn delete_after(&mut self, name: String) {
        self.fx.delete_after.push(name);
    }

    /// Links garbage collection removed (by hash): unmarked if the batch fails.
    pub(crate) fn unlinked(&mut self, hashes: Vec<u64>) {
        self.fx.unlinked.extend(hashes);
    }

    /// Whether a registry's deletion ended upload session `id`.
    pub(crate) fn ended(&self, id: &UploadId) -> bool {
        self.st.ended.contains(id)
    }

    /// Ends upload session `id` (its registry was deleted), unless the batch fails.
    pub(crate) fn end(&mut self, id: &UploadId) {
        if self.st.ended.insert(id.clone()) {
            self.fx.ended.push(id.clone());
        }
    }
}

/// The handle callers submit writes through. Dropping it drains the queue, makes a final
/// durable commit and joins the thread.
pub(crate) struct Committer {
    tx: Option<Sender<Box<dyn Queued>>>,
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

    fn queue<W: Write>(
        &self,
        write: W,
    ) -> Result<crossbeam_channel::Receiver<Result<W::Out, StoreError>>, StoreError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        let closed = || StoreError::new("the store is closing; retry");
        let job: Box<dyn Queued> = Box::new(Job {
            write,
            out: None,
            reply,
        });
        self.tx
            .as_ref()
            .ok_or_else(closed)?
            .send(job)
            .map_err(|_| closed())?;
        Ok(rx)
    }

    fn wait<W: Write>(&self, write: W) -> Result<W::Out, StoreError> {
        self.queue(write)?
            .recv()
            .map_err(|_| StoreError::new("the store is closing; retry"))?
    }

    /// Applies `write` and returns once its batch committed durably.
    pub(crate) fn submit<W: Write>(&self, write: W) -> Result<Durable<W::Out>, StoreError> {
        const { assert!(W::DURABLE, "only a durable write is answered with Durable") };
        self.wait(write).map(Durable)
    }

    /// Queues `write` without waiting for its batch. Only for session rows, which need no
    /// durability until a sync asks for it: the queue is FIFO, so a session's later finish
    /// or drop commits after its row, and dropping the engine drains the queue before the
    /// final durable commit.
    pub(crate) fn post<W: Write>(&self, write: W) -> Result<(), StoreError> {
        self.queue(write).map(drop)
    }

    /// Returns once every write queued before it (session rows included) has committed.
    pub(crate) fn barrier(&self) -> Result<(), StoreError> {
        self.wait(Barrier)
    }

    /// Counts a tenancy write that can change an access decision, after its commit (or its
    /// failure), so a reader that sees the old generation looks again next time; a bump for
    /// a write that failed costs one lookup.
    pub(crate) fn bump_tenancy_generation(&self) {
        self.tenancy_generation.fetch_add(1, Ordering::Release);
    }

    /// A generation no caller saw before (high bit set, apart from any count kept in the
    /// metadata), so a cached lookup is never trusted while the count cannot be read.
    pub(crate) fn unique_generation(&self) -> u64 {
        (1 << 63) | self.tenancy_generation.fetch_add(1, Ordering::AcqRel)
    }

    pub(crate) fn tenancy_generation(&self) -> u64 {
        self.tenancy_generation.load(Ordering::Acquire)
    }
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

/// The committer's state between batches.
struct State {
    shared: Option<SharedPack>,
    /// Upload sessions a registry deletion ended: their finish stores nothing and their
    /// row is not written again (a sync racing the deletion). Upload ids are random and
    /// never reused; the set grows only by the sessions deletions end, for the process's
    /// life (after a restart their rows are gone, so nothing restores them).
    ended: HashSet<UploadId>,
}

fn run(inner: Arc<Inner>, rx: Receiver<Box<dyn Queued>>, resume_shared: Option<(u64, u64)>) {
    let shared = resume_shared.and_then(|(id, len)| SharedPack::reopen(&inner.packs, id, len).ok());
    let mut st = State {
        shared: None,
        ended: HashSet::new(),
    };
    st.set_shared(&inner, shared);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        st.process(&inner, batch);
    }
    // Makes session rows committed with `Durability::None` durable, so sessions survive a
    // clean restart. Failing here loses only those rows, which the next open tolerates.
    if let Ok(txn) = inner.db.begin_write() {
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
    /// Links garbage collection removed (by hash): unmarked if the batch fails.
    unlinked: Vec<u64>,
    /// Upload sessions a registry deletion ended: not ended if the batch fails.
    ended: Vec<UploadId>,
    /// What the batch added to (or took from) the stored blobs' bytes and the packs'.
    blob_bytes: i64,
    pack_bytes: i64,
}

impl State {
    fn process(&mut self, inner: &Inner, mut batch: Vec<Box<dyn Queued>>) {
        let mut fx = Effects::default();
        // A reopen that failed is tried again before each batch.
        let reopened = inner.db.reopen_if_closed();
        let result = reopened.and_then(|()| self.commit_batch(inner, &mut batch, &mut fx));
        // Only a durable commit proves the disk takes writes again (one with
        // `Durability::None` may not have written anything).
        let durable = batch.iter().any(|j| j.durable());
        if result.is_err() || durable {
            health(inner, result.as_ref().err());
        }
        match result {
            Ok(()) => {
                // On a shared store a pack is written in one batch only: once its row
                // committed it never changes, so other nodes may cache it for good and a
                // collection anywhere may compact it.
                if inner.fs.shared() && fx.shared_written {
                    self.set_shared(inner, None);
                }
                // Before the replies, so a caller that got its answer never sees the
                // consumed upload file still in `uploads/`.
                for p in fx.delete_after {
                    let _ = inner.fs.remove(&p);
                }
                for job in batch {
                    job.succeed();
                }
            }
            Err(e) => {
                if fx.shared_written {
                    self.latch_shared(inner);
                }
                // The links this batch marked as removed are still there.
                inner.gc.unmark(&fx.unlinked);
                for id in &fx.ended {
                    self.ended.remove(id);
                }
                for job in batch {
                    job.fail(inner, e.clone());
                }
                // redb latches after a failed write until reopened (`metadb.rs`); failing
                // here, the next batch tries again.
                if inner.db.latched() {
                    if let Err(re) = inner.db.reopen() {
                        health(inner, Some(&re));
                    }
                }
            }
        }
    }

    fn commit_batch(
        &mut self,
        inner: &Inner,
        batch: &mut [Box<dyn Queued>],
        fx: &mut Effects,
    ) -> Result<(), StoreError> {
        let mut txn = inner.db.begin_write()?;
        if !batch.iter().any(|j| j.durable()) {
            txn.set_lazy()?;
        }
        {
            let mut b = Batch {
                t: Tables::open(&txn)?,
                txn: &txn,
                tt: None,
                inner,
                st: self,
                fx,
            };
            for job in batch.iter_mut() {
                job.apply(&mut b)?;
            }
            if b.fx.shared_written {
                // The shared pack exists whenever `shared_written` is set.
                if let Some(sp) = &b.st.shared {
                    if let Err(e) = sp.sync() {
                        return Err(StoreError::io(format!("fdatasync pack {}", sp.id), e));
                    }
                    let row = PackRow {
                        kind: schema::PACK_SHARED,
                        committed_len: sp.tail,
                    };
                    put_pack(&mut b.t, b.fx, sp.id, &row)?;
                }
            }
            if b.fx.blob_bytes != 0 || b.fx.pack_bytes != 0 {
                add_totals(&txn, b.fx.blob_bytes, b.fx.pack_bytes)?;
            }
        }
        if fx.dir_changed {
            sync_dir(&*inner.fs, PACKS)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Publishes which shared pack is being appended to, for garbage collection's plans.
    fn set_shared(&mut self, inner: &Inner, sp: Option<SharedPack>) {
        let id = sp.as_ref().map_or(u64::MAX, |sp| sp.id);
        inner.active_shared.store(id, Ordering::Release);
        self.shared = sp;
    }

    /// Retires the shared pack after a failed write, sync or commit: it is never written
    /// or synced again (see the module docs).
    fn latch_shared(&mut self, inner: &Inner) {
        if let Some(sp) = self.shared.take() {
            inner.active_shared.store(u64::MAX, Ordering::Release);
            let mut failed = inner.failed_packs.lock().unwrap_or_else(|p| p.into_inner());
            failed.push(sp.id);
        }
    }

    /// The shared pack to append `len` more bytes to, creating one if needed.
    fn shared_for(
        &mut self,
        inner: &Inner,
        len: u64,
        fx: &mut Effects,
    ) -> Result<&mut SharedPack, StoreError> {
        let roll = inner.opts.shared_pack_bytes;
        let full = self
            .shared
            .as_ref()
            .is_some_and(|sp| sp.tail > PACK_HEADER_LEN && sp.tail + len > roll);
        if full && !fx.shared_written {
            self.set_shared(inner, None);
        }
        if self.shared.is_none() {
            let id = inner.new_pack_id()?;
            self.set_shared(inner, Some(SharedPack::create(&inner.packs, id)?));
            fx.dir_changed = true;
        }
        // Set just above when it was `None`.
        self.shared
            .as_mut()
            .ok_or_else(|| StoreError::new("internal: no shared pack"))
    }
}

fn put_pack(
    t: &mut Tables<'_>,
    fx: &mut Effects,
    id: u64,
    row: &PackRow,
) -> Result<(), StoreError> {
    let old = t
        .packs
        .insert(id, &schema::encode_pack(row)[..])?
        .map(|v| schema::decode_pack(v.value()))
        .transpose()?;
    fx.pack_bytes += row.committed_len as i64 - old.map_or(0, |o| o.committed_len as i64);
    Ok(())
}

/// Adds a batch's changes to the totals kept in `META` (`schema::META_TOTALS`).
fn add_totals(txn: &WriteTransaction, blob_bytes: i64, pack_bytes: i64) -> Result<(), StoreError> {
    let mut meta = txn.open_table(schema::META)?;
    let now = meta
        .get(schema::META_TOTALS)?
        .map(|v| schema::decode_totals(v.value()))
        .transpose()?
        .unwrap_or_default();
    let add = |n: u64, d: i64| n.saturating_add_signed(d);
    let next = schema::Totals {
        blob_bytes: add(now.blob_bytes, blob_bytes),
        pack_bytes: add(now.pack_bytes, pack_bytes),
    };
    meta.insert(schema::META_TOTALS, &schema::encode_totals(&next)[..])?;
    Ok(())
}

/// Records whether the store can write, telling the watch when that changes.
fn health(inner: &Inner, failed: Option<&StoreError>) {
    let why = failed.map(StoreError::detail);
    if let Some(now) = inner.db.set_failing(why) {
        let watch = inner.health_watch.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = watch.as_ref() {
            w(now.as_deref());
        }
    }
}

/// `fsync` of the store's directory `dir`, making renames and creations in it durable.
pub(crate) fn sync_dir(fs: &dyn crate::vfs::Vfs, dir: &str) -> Result<(), StoreError> {
    fs.sync_dir(dir)
        .map_err(|e| StoreError::io(format!("fsync directory {}", fs.describe(dir)), e))
}
