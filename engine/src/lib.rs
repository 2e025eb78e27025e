//! `berth-engine`: Berth's content-addressed store.
//!
//! Metadata (blobs, repository links, manifests, tags, referrers, upload sessions, packs,
//! and the tenancy records: organisations, registries, tokens, audit log) lives in one redb
//! database, `DIR/meta.redb`; blob bytes live in append-only pack files,
//! `DIR/packs/<id>.pack` (layout in `pack/format.rs`); uploads in progress are plain files,
//! `DIR/uploads/<id>`. `DIR/lock` is held with an exclusive `flock` while a store is open,
//! so two processes never open one store. Every file is reached through the I/O seam,
//! [`vfs`]: the real disk, or a simulated one the crash tests cut the power of.
//!
//! The engine knows nothing of HTTP, sockets or the wire format of digests: the server
//! converts between those and the storage nouns here ([`BlobKey`], repository names as
//! `&str`, upload ids). The API is synchronous and [`Engine`] is `Send + Sync`: the server
//! calls it from its event loops (reads, appends) and from worker threads (everything that
//! commits).
//!
//! # Guarantees
//! - **Nothing is visible before it is durable.** A blob, link, manifest, tag or referrer is
//!   returned by a read only after its pack bytes were `fdatasync`ed and the redb transaction
//!   naming them committed with `Durability::Immediate`. Methods that make something durable
//!   return [`Durable<T>`], which only the commit path can build; the server acknowledges a
//!   push (201) only from one. The order is stated once, in `commit.rs`.
//! - **Group commit.** Every write (finish, mount, unlink, manifest put/delete, tenancy
//!   records: the `Engine` methods in `tenancy.rs`) is handed to
//!   one committer thread, which batches whatever is queued into one `fdatasync` of the
//!   shared pack and one redb write transaction. Callers block until their batch is
//!   durable. Upload session rows ride along without the caller waiting: `start_upload`
//!   costs a file creation, so the server may answer it inline. A session becomes durable
//!   with [`Engine::sync_upload`] (what a PATCH's 202 waits for): its file is
//!   `fdatasync`ed and a durable commit covers its row, so acknowledged bytes survive a
//!   crash and the client resumes where it was.
//! - **Reads never block on writes**: they are redb read transactions (MVCC) and `mmap`ed or
//!   `pread` pack bytes. Manifest reads look in the manifest cache first, whose mutex a
//!   write holds only to drop one repository's entries.
//! - **A blob is stored once** however many repositories link it; finishing an upload of a
//!   blob already stored just links it.
//! - **Uploads** are appended with plain `pwrite(2)` and nothing else on the caller's
//!   thread: a small pool hashes (SHA-256) the written bytes behind the appends, reading
//!   them back from the page cache, and starts their write-back early; `finish_upload`
//!   hashes whatever the pool has not reached and `fdatasync`s what is still dirty
//!   (`hasher.rs`). A session survives a clean restart (its hash is rebuilt from the file
//!   the same way). After a crash, a session synced by [`Engine::sync_upload`] (every
//!   PATCH's 202) is restored with at least the synced length; one never synced may be
//!   gone, and the client's next status check says so.
//!
//! # Crash model
//! A crash (process kill or power loss) at any instant leaves the store as of the last
//! committed redb transaction: redb itself is crash-safe, and every row it holds names only
//! bytes that were synced before the row committed. What the crash can leave behind and
//! `open` repairs (`recover.rs`):
//! - bytes past a shared pack's committed length (a batch that synced but did not commit, or
//!   never synced): truncated;
//! - pack files no committed row names (a large upload renamed into `packs/` whose commit did
//!   not happen): deleted;
//! - upload files without a session row, and session rows without a file: removed.
//!
//! After an I/O error on a pack, the pack is latched read-only and never written or synced
//! again (a failed `fsync` may have dropped dirty pages; retrying could report success for
//! lost data); new blobs go to a new pack. The count shows in [`StoreStats`].
//!
//! redb latches too after a failed write (a full disk), refusing every later write; the
//! committer then closes the database and opens it again before the next batch
//! (`metadb.rs`), so writes resume once space is back, without a restart. The reopen
//! re-reads the last committed transaction: nothing acknowledged is lost, nothing of the
//! failed batch shows. [`Engine::health`] says whether writes are failing. Uploads are
//! refused below a reserve of free space (`min_free_bytes`, `space.rs`) so that deletes
//! and garbage collection keep room to free space on a full disk. A write refused for space
//! carries a message for clients ([`StoreError::full_message`]); every other
//! [`StoreError`] names files and ids and is for the log only.

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

mod blob;
mod check;
mod commit;
mod descriptors;
mod error;
mod gc;
mod hasher;
mod keys;
mod kv;
mod latency;
pub use kv::pg::PgLimits;
pub use latency::LatencySum;

/// The version of the metadata's layout this build reads and writes; `open` upgrades older
/// ones and refuses newer ones.
pub const SCHEMA_VERSION: u32 = schema::SCHEMA_VERSION;
mod manifest;
mod manifest_cache;
mod metadb;
pub mod objects;
mod pack;
pub mod package;
mod package_store;
mod recover;
mod repos;
mod schema;
mod space;
mod tenancy;
mod touch;
mod upload;
pub mod vfs;

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

pub use commit::Durable;
pub use descriptors::{is_exhaustion, AlarmFn, DescriptorAlarm, DIR_MODE, FILE_MODE};
pub use error::{AppendError, FinishError, PutManifestError, StoreError};
pub use gc::{GcError, GcOptions, GcReport};
pub use keys::{Alg, BlobKey};
pub use pack::map::{BlobWindow, PackFile};
pub use pack::reader::BlobReader;
pub use space::{default_min_free_bytes, DEFAULT_MIN_FREE_BYTES};
pub use tenancy::{
    is_slug, slug_of, AuditRec, OrgRec, RegistryRec, TenancyError, TokenKind, TokenRec, Visibility,
    MAX_SLUG_LEN,
};
pub use vfs::{fs_space, FsSpace};

/// Which pack file holds a blob and where: the byte range of its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlobLoc {
    /// Pack id (`DIR/packs/<id as 16 hex digits>.pack`).
    pub pack: u64,
    /// Offset of the blob's first byte in the pack.
    pub offset: u64,
    /// Length of the blob in bytes.
    pub len: u64,
}

/// Tunables; every one has a default.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Blobs up to this size are copied into shared packs; larger uploads become packs of
    /// their own without a copy.
    pub small_blob_bytes: u64,
    /// Maximum size of one uploaded blob; `None` for unbounded.
    pub max_upload_bytes: Option<u64>,
    /// Upload sessions untouched for this long are removed (seconds).
    pub upload_expiry_secs: u64,
    /// Memory for manifests recently read (bodies, bytes); 0 turns the cache off.
    pub manifest_cache_bytes: usize,
    /// A shared pack takes no new blobs past this size (the next starts a new pack).
    /// Smaller packs are compacted sooner and in less time; more packs mean more files.
    pub shared_pack_bytes: u64,
    /// Pack files kept open (each a descriptor, and a map once read); past it the least
    /// recently used close. Each large blob is a pack, so this bounds the descriptors reads
    /// hold: choose it from the process's descriptor limit.
    pub open_packs: usize,
    /// Told whenever a file cannot be opened for want of descriptors.
    pub on_out_of_descriptors: Option<DescriptorAlarm>,
    /// Uploads are refused while less than this is free on the store's filesystem, so
    /// metadata commits, deletes and garbage collection keep room on a full disk; `None`
    /// takes [`default_min_free_bytes`] of the filesystem, `Some(0)` turns it off.
    pub min_free_bytes: Option<u64>,
    /// Where the metadata lives: the store's own `meta.redb` (the default) or PostgreSQL.
    pub metadata: Metadata,
}

/// Where a store keeps its metadata.
#[derive(Clone, Default)]
pub enum Metadata {
    /// `DIR/meta.redb`, in the store's folder.
    #[default]
    Embedded,
    /// A PostgreSQL database, shared by every node of a distributed deployment.
    Postgres {
        /// `postgres://user[:password]@host[:port]/database`.
        url: String,
        /// Timeouts and the connection pool's size.
        limits: PgLimits,
    },
}

impl std::fmt::Debug for Metadata {
    // The URL may hold a password: it is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Metadata::Embedded => f.write_str("Embedded"),
            Metadata::Postgres { limits, .. } => write!(f, "Postgres({limits:?})"),
        }
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            small_blob_bytes: 1 << 20,
            max_upload_bytes: None,
            upload_expiry_secs: 24 * 3600,
            manifest_cache_bytes: 8 << 20,
            shared_pack_bytes: pack::format::SHARED_PACK_ROLL_BYTES,
            open_packs: 4096,
            on_out_of_descriptors: None,
            min_free_bytes: None,
            metadata: Metadata::Embedded,
        }
    }
}

/// The source of "now" for upload expiry, in seconds since the Unix epoch. The engine reads
/// the time through this alone, so tests can move it.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The wall clock.
#[allow(clippy::disallowed_methods)] // the one place the engine reads the time
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

/// State of an upload session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadStatus {
    /// `[A-Za-z0-9_-]`, at most 64 bytes (in practice 32 lowercase hex digits).
    pub id: String,
    /// Bytes received so far.
    pub len: u64,
}

/// A manifest to store. The server has validated it.
#[derive(Clone, Debug)]
pub struct NewManifest {
    /// Digest of `body`, computed by the server with the algorithm the client named.
    pub key: BlobKey,
    /// As received (`Content-Type`, else the body's `mediaType`); returned on GET.
    pub media_type: String,
    /// The raw bytes, never re-serialised.
    pub body: Vec<u8>,
    /// Tags to point at this manifest.
    pub tags: Vec<String>,
    /// Blobs that must be linked into the repository (config, layers).
    pub blobs: Vec<BlobKey>,
    /// Layers clients may fetch from elsewhere: not required, but those the repository
    /// links are referenced like `blobs` (so garbage collection keeps them).
    pub external: Vec<BlobKey>,
    /// Manifests that must be in the repository (index children).
    pub manifests: Vec<BlobKey>,
    /// The manifest's `subject` and the referrer entry to list under it; never checked
    /// for existence (spec §6.4 step 6).
    pub subject: Option<(BlobKey, ReferrerRec)>,
}

/// A referrer entry as stored; the server converts to/from the core's `Referrer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferrerRec {
    /// The referrer manifest's media type.
    pub media_type: String,
    /// The referrer manifest's key.
    pub key: BlobKey,
    /// The referrer manifest's size in bytes.
    pub size: u64,
    /// See spec §7.2 for which value the server puts here.
    pub artifact_type: Option<String>,
    /// The referrer's top-level annotations as a JSON object, verbatim.
    pub annotations: Option<String>,
}

/// A stored manifest.
#[derive(Clone, Debug)]
pub struct StoredManifest {
    /// Its key (as pushed: sha256 or sha512).
    pub key: BlobKey,
    /// The media type recorded at push.
    pub media_type: String,
    /// The bytes as pushed (shared with the manifest cache).
    pub body: bytes::Bytes,
}

/// How a manifest is named in a lookup or delete.
#[derive(Clone, Debug)]
pub enum ManifestRef<'a> {
    /// By tag.
    Tag(&'a str),
    /// By digest.
    Key(&'a BlobKey),
}

/// What a delete found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// It existed and is gone, durably.
    Deleted,
    /// The repository exists, the thing named does not.
    NotFound,
    /// Nothing was ever pushed to the repository.
    RepoUnknown,
}

/// Counters for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct StoreStats {
    /// Distinct stored blobs.
    pub blobs: u64,
    /// Sum of their lengths (each counted once, however many repositories link it).
    pub blob_bytes: u64,
    /// Committed bytes of all pack files (headers and not-yet-collected garbage included).
    pub pack_bytes: u64,
    /// Manifests, counted once per repository holding them.
    pub manifests: u64,
    /// Repositories.
    pub repositories: u64,
    /// Upload sessions in progress.
    pub uploads_open: u64,
    /// Packs latched read-only after an I/O error since open.
    pub failed_packs: u64,
    /// Garbage collections run since open (dry runs not counted).
    pub gc_runs: u64,
    /// Blobs they removed.
    pub gc_blobs_removed: u64,
    /// Bytes of the pack files they deleted.
    pub gc_pack_bytes_removed: u64,
    /// Pack files the read cache holds open now (at most `EngineOptions::open_packs`, and
    /// packs garbage collection just deleted).
    pub open_packs: u64,
    /// Statements sent to the metadata database and the time they took, if it is
    /// PostgreSQL.
    pub metadata_latency: Option<LatencySum>,
    /// Requests to the object store and the time they took, if blobs are in a bucket.
    pub object_latency: Option<LatencySum>,
}

/// Whether the store can write, for `/healthz` and `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct StoreHealth {
    /// Why writes are failing (the last commit failed, or the metadata database could not
    /// be opened again); `None` when the last commit succeeded.
    pub failing: Option<String>,
    /// Bytes free on the store's filesystem; `None` if it cannot say.
    pub free_bytes: Option<u64>,
    /// The reserve below which uploads are refused.
    pub min_free_bytes: u64,
}

/// Called by the committer when the store turns unhealthy (with why) or healthy again.
pub type HealthWatch = Box<dyn Fn(Option<&str>) + Send + Sync>;

/// The result of `Engine::check`.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Inconsistencies found; empty for a healthy store.
    pub problems: Vec<String>,
    /// What open-time recovery repaired (tails cut, orphans removed), for the log.
    pub repaired: Vec<String>,
}

impl CheckReport {
    /// No problems found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What `check_with` does beyond the structural checks.
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    /// Re-read every blob and compare its hash with its key (reads every byte stored).
    pub rehash: bool,
}

/// What the committer thread and readers share.
pub(crate) struct Inner {
    /// Where every file of the store lives.
    pub(crate) fs: Arc<dyn vfs::Vfs>,
    pub(crate) db: metadb::MetaDb,
    pub(crate) opts: EngineOptions,
    pub(crate) packs: pack::reader::PackCache,
    pub(crate) uploads: upload::Sessions,
    /// Next pack id to hand out; above every id on disk or in the database at open.
    pub(crate) next_pack: AtomicU64,
    pub(crate) clock: Clock,
    /// Packs latched read-only after an I/O error.
    pub(crate) failed_packs: Mutex<Vec<u64>>,
    /// Manifests recently read, dropped per repository on every write to it.
    pub(crate) manifest_cache: manifest_cache::ManifestCache,
    /// What `open` repaired, reported by `check`.
    pub(crate) repaired: Vec<String>,
    /// The shared pack the committer appends to (`u64::MAX` for none): garbage collection
    /// never compacts it.
    pub(crate) active_shared: AtomicU64,
    pub(crate) gc: gc::State,
    /// When each repository link was last used, for garbage collection's grace.
    pub(crate) touches: touch::Touches,
    /// Free space and the reserve uploads leave.
    pub(crate) space: space::Space,
    /// Told of health changes (`Engine::watch_health`).
    pub(crate) health_watch: Mutex<Option<HealthWatch>>,
    /// Held for the store's lifetime: the store's exclusive lock ([`vfs::Vfs::lock`]).
    _lock: vfs::Held,
}

/// The store. `Send + Sync`; share it in an `Arc`. Dropping it stops the committer after
/// the queued writes and makes open upload sessions durable.
pub struct Engine {
    inner: Arc<Inner>,
    commit: commit::Committer,
}

impl Inner {
    /// The id of a new pack: the next number on a store of one process; on a shared store
    /// (other nodes create packs in the same bucket) a random one, which no other node
    /// will draw (63 bits: a collision is as likely as a hash's).
    pub(crate) fn new_pack_id(&self) -> Result<u64, StoreError> {
        if !self.fs.shared() {
            return Ok(self
                .next_pack
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        }
        let mut b = [0u8; 8];
        getrandom::fill(&mut b)
            .map_err(|e| StoreError::new(format!("no randomness for a pack id: {e}")))?;
        Ok((u64::from_le_bytes(b) >> 1).max(1))
    }
}

impl Engine {
    /// Opens (creating if needed) the store in `dir`, repairing what a crash left.
    pub fn open(dir: &Path, opts: EngineOptions) -> Result<Engine, StoreError> {
        Self::open_with_clock(dir, opts, system_clock())
    }

    /// [`Engine::open`] with the clock used for upload expiry.
    pub fn open_with_clock(
        dir: &Path,
        opts: EngineOptions,
        clock: Clock,
    ) -> Result<Engine, StoreError> {
        Self::open_on(Arc::new(vfs::RealFs::new(dir)), opts, clock)
    }

    /// Opens (creating if needed) the store held by `fs`: its own folder on disk
    /// ([`vfs::RealFs`]), or a simulated file system in tests ([`vfs::SimFs`]).
    pub fn open_on(
        fs: Arc<dyn vfs::Vfs>,
        opts: EngineOptions,
        clock: Clock,
    ) -> Result<Engine, StoreError> {
        let opened = recover::open(&*fs, opts, clock)?;
        let now = (opened.clock)();
        let inner = Arc::new(Inner {
            db: metadb::MetaDb::new(fs.clone(), opened.db),
            opts: opened.opts.clone(),
            packs: pack::reader::PackCache::new(
                fs.clone(),
                opened.opts.open_packs,
                opened.opts.on_out_of_descriptors.clone(),
            ),
            uploads: opened.sessions,
            next_pack: AtomicU64::new(opened.next_pack),
            clock: opened.clock.clone(),
            failed_packs: Mutex::new(Vec::new()),
            // Another node may change a repository: its manifests are read afresh each time.
            manifest_cache: manifest_cache::ManifestCache::new(match opened.opts.metadata {
                Metadata::Embedded => opened.opts.manifest_cache_bytes,
                Metadata::Postgres { .. } => 0,
            }),
            repaired: opened.repaired,
            active_shared: AtomicU64::new(u64::MAX),
            gc: gc::State::default(),
            touches: touch::Touches::new(now),
            space: space::Space::new(fs.clone(), opened.opts.min_free_bytes, opened.clock.clone()),
            health_watch: Mutex::new(None),
            _lock: opened.lock,
            fs,
        });
        let commit = commit::Committer::start(inner.clone(), opened.resume_shared)?;
        let engine = Engine { inner, commit };
        engine.expire_uploads()?;
        Ok(engine)
    }

    /// Structural check of the store (see [`Engine::check_with`]); backs `berth check`.
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        self.check_with(CheckOptions::default())
    }

    /// Checks every blob location lies within its pack's committed bytes and record, every
    /// link, tag and referrer names something stored, every manifest's blobs are stored,
    /// every session has its file; with `rehash`, also that every blob hashes to its key.
    pub fn check_with(&self, opts: CheckOptions) -> Result<CheckReport, StoreError> {
        // Session rows are queued without waiting (`start_upload`, a discarded session):
        // let them land first, so the check never sees a row whose file was just removed.
        self.commit.barrier()?;
        check::run(&self.inner, opts)
    }

    /// Reclaims the space of blobs no repository links and of expired upload sessions,
    /// online: pushes and pulls go on meanwhile (see `gc.rs` for why none is lost). One
    /// collection runs at a time; a second call meanwhile is refused.
    pub fn collect_garbage(&self, opts: GcOptions) -> Result<GcReport, GcError> {
        gc::run(&self.inner, &self.commit, opts)
    }

    /// Makes a running collection return after the step it is in (what it did so far
    /// stays done and is reported), for a prompt shutdown.
    pub fn cancel_garbage_collection(&self) {
        self.inner
            .gc
            .cancel
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Closes the packs garbage collection deleted once no lookup can still want them
    /// (a minute on), so that their disk space is given back; the server calls it now and
    /// then, and every collection does.
    pub fn close_retired_packs(&self) {
        self.inner.packs.purge_retired((self.inner.clock)());
    }

    /// Forgets uses of links older than `unreferenced_after` seconds (all of them with
    /// `None`): they can no longer keep a link from collections with that grace, and
    /// memory stays bounded by the links used within it.
    /// Skipped while a collection runs: it may still be about to check a use newer than
    /// its cutoff, which must not fall back to "used at open".
    pub fn forget_old_link_uses(&self, unreferenced_after: Option<u64>) {
        let _no_run = match self.inner.gc.running.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        let now = (self.inner.clock)();
        let before = unreferenced_after.map_or(u64::MAX, |g| now.saturating_sub(g));
        self.inner.touches.forget_before(before);
    }

    /// Whether other nodes share this store (its packs are in a bucket): upload sessions
    /// then live in the metadata, and opening, looking up or cancelling one waits on it.
    pub fn shared_store(&self) -> bool {
        self.inner.fs.shared()
    }

    /// What opening the store repaired or upgraded (also in `check`'s report).
    pub fn repaired(&self) -> &[String] {
        &self.inner.repaired
    }

    /// Counters for `/metrics`; zeros if the metadata cannot be read.
    pub fn stats(&self) -> StoreStats {
        check::stats(&self.inner).unwrap_or_default()
    }

    /// Whether writes are failing, and the free space against the reserve.
    pub fn health(&self) -> StoreHealth {
        StoreHealth {
            failing: self.inner.db.failing(),
            free_bytes: self.inner.space.free(),
            min_free_bytes: self.inner.space.reserve,
        }
    }

    /// Has `watch` called, on the committer thread, each time the store turns unhealthy
    /// (with why) or healthy again; replaces any earlier watch.
    pub fn watch_health(&self, watch: HealthWatch) {
        *self
            .inner
            .health_watch
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(watch);
    }

    // blobs

    /// Where `key`'s bytes are, if the blob is linked into `repo`.
    pub fn stat_blob(&self, repo: &str, key: &BlobKey) -> Result<Option<BlobLoc>, StoreError> {
        blob::stat(&self.inner, repo, key, true)
    }

    /// [`stat_blob`](Self::stat_blob) for the store's own reads: it does not count as a use
    /// of the link, so a deleted image's layers are collected on time however long the
    /// package indexer took to reach them.
    pub fn peek_blob(&self, repo: &str, key: &BlobKey) -> Result<Option<BlobLoc>, StoreError> {
        blob::stat(&self.inner, repo, key, false)
    }

    /// Links `key` into `repo` if present in `from` (or anywhere, when `from` is None).
    /// A blob `repo` already links is returned whatever `from` says.
    pub fn mount_blob(
        &self,
        repo: &str,
        key: &BlobKey,
        from: Option<&str>,
    ) -> Result<Option<Durable<BlobLoc>>, StoreError> {
        blob::mount(&self.inner, &self.commit, repo, key, from)
    }

    /// Removes `repo`'s link to `key`; the bytes stay until garbage collection.
    pub fn unlink_blob(&self, repo: &str, key: &BlobKey) -> Result<DeleteOutcome, StoreError> {
        self.unlink_blob_audited(repo, key, Vec::new())
    }

    /// [`unlink_blob`](Self::unlink_blob), appending `audit` to the audit log in the same
    /// transaction if the link was there: the entry and the change are durable together or
    /// not at all, with one commit.
    pub fn unlink_blob_audited(
        &self,
        repo: &str,
        key: &BlobKey,
        audit: Vec<AuditRec>,
    ) -> Result<DeleteOutcome, StoreError> {
        let w = blob::Unlink {
            repo: repo.to_owned(),
            key: key.clone(),
            audit,
        };
        Ok(self.commit.submit(w)?.into_inner())
    }

    /// The open pack file, to send blobs from (through [`PackFile::window`]).
    pub fn pack_file(&self, pack: u64) -> Result<Arc<PackFile>, StoreError> {
        self.inner.packs.file(pack)
    }

    /// A blob's bytes as a stream (`Read`), for work off the event loops that reads whole
    /// blobs too large to hold: listing a layer, checksumming a Download.
    pub fn blob_reader(&self, loc: BlobLoc) -> Result<BlobReader, StoreError> {
        BlobReader::new(&self.inner.packs, loc)
    }

    /// Reads a whole blob (for the indexer, manifests of blobs, tests).
    pub fn read_blob(&self, loc: BlobLoc) -> Result<Vec<u8>, StoreError> {
        self.inner.packs.read(loc)
    }

    // uploads

    /// Starts an upload session for `repo`.
    pub fn start_upload(&self, repo: &str) -> Result<UploadStatus, StoreError> {
        upload::start(&self.inner, &self.commit, repo)
    }

    /// The session's length, if `id` is a live session of `repo`.
    pub fn upload_status(&self, repo: &str, id: &str) -> Result<Option<UploadStatus>, StoreError> {
        upload::status(&self.inner, repo, id)
    }

    /// Makes the session's bytes so far, and the session, durable (what a PATCH's 202
    /// acknowledges): a crash after it restores the session with at least this length.
    /// `None` if the session is unknown, not `repo`'s, or ended (finished, cancelled,
    /// expired, its registry deleted), also while this ran.
    pub fn sync_upload(&self, repo: &str, id: &str) -> Result<Option<UploadStatus>, StoreError> {
        upload::sync(&self.inner, &self.commit, repo, id)
    }

    /// Appends `bytes` at `offset`, which must equal the session's length; returns the new
    /// length. Durable after [`Engine::sync_upload`] or [`Engine::finish_upload`].
    pub fn append_upload(
        &self,
        repo: &str,
        id: &str,
        offset: u64,
        bytes: &[u8],
    ) -> Result<u64, AppendError> {
        upload::append(&self.inner, repo, id, offset, bytes)
    }

    /// Verifies the session's bytes hash to `want`, stores them durably and links the blob
    /// into `repo`. The session ends whatever the outcome (a mismatch discards it).
    pub fn finish_upload(
        &self,
        repo: &str,
        id: &str,
        want: &BlobKey,
    ) -> Result<Durable<BlobLoc>, FinishError> {
        upload::finish(&self.inner, &self.commit, repo, id, want)
    }

    /// Ends the session and drops its bytes; `false` if there was no such session.
    pub fn cancel_upload(&self, repo: &str, id: &str) -> Result<bool, StoreError> {
        upload::cancel(&self.inner, &self.commit, repo, id)
    }

    /// Removes sessions untouched for `upload_expiry_secs`; returns how many. Runs at open
    /// and, at most once a minute, from `start_upload`; the server may also call it.
    pub fn expire_uploads(&self) -> Result<usize, StoreError> {
        upload::expire(&self.inner, &self.commit)
    }

    // manifests

    /// The manifest `r` names in `repo`.
    pub fn get_manifest(
        &self,
        repo: &str,
        r: ManifestRef<'_>,
    ) -> Result<Option<StoredManifest>, StoreError> {
        let cache = &self.inner.manifest_cache;
        let ticket = match cache.get(repo, &r) {
            Ok(hit) => return Ok(Some(hit)),
            Err(ticket) => ticket,
        };
        let found = manifest::get(&self.inner, repo, r.clone())?;
        if let Some(m) = &found {
            cache.insert(ticket, repo, &r, m);
        }
        Ok(found)
    }

    /// Stores a manifest, points its tags, records its referrer entry and references, in one
    /// transaction; refuses with `Missing` (storing nothing) if a referenced blob is not
    /// linked in `repo` or a child manifest is not in `repo`.
    pub fn put_manifest(
        &self,
        repo: &str,
        m: NewManifest,
    ) -> Result<Durable<()>, PutManifestError> {
        self.put_manifest_audited(repo, m, Vec::new())
    }

    /// [`put_manifest`](Self::put_manifest), appending `audit` to the audit log in the same
    /// transaction if the manifest is stored.
    pub fn put_manifest_audited(
        &self,
        repo: &str,
        m: NewManifest,
        audit: Vec<AuditRec>,
    ) -> Result<Durable<()>, PutManifestError> {
        let w = manifest::PutManifest {
            repo: repo.to_owned(),
            m: Box::new(m),
            audit,
        };
        let done = self.commit.submit(w);
        self.inner.manifest_cache.invalidate(repo);
        done?.transpose().map_err(PutManifestError::Missing)
    }

    /// By tag: removes the tag only. By key: removes the manifest, every tag pointing to it
    /// and its referrer entry.
    pub fn delete_manifest(
        &self,
        repo: &str,
        r: ManifestRef<'_>,
    ) -> Result<DeleteOutcome, StoreError> {
        self.delete_manifest_audited(repo, r, Vec::new())
    }

    /// [`delete_manifest`](Self::delete_manifest), appending `audit` to the audit log in the
    /// same transaction if something was deleted.
    pub fn delete_manifest_audited(
        &self,
        repo: &str,
        r: ManifestRef<'_>,
        audit: Vec<AuditRec>,
    ) -> Result<DeleteOutcome, StoreError> {
        let r = match r {
            ManifestRef::Tag(t) => manifest::ManifestKey::Tag(t.to_owned()),
            ManifestRef::Key(k) => manifest::ManifestKey::Key(k.clone()),
        };
        let w = manifest::DeleteManifest {
            repo: repo.to_owned(),
            r,
            audit,
        };
        let done = self.commit.submit(w);
        self.inner.manifest_cache.invalidate(repo);
        Ok(done?.into_inner())
    }

    /// `None` if the repository does not exist; else up to `n` tags after `last`, and
    /// whether more follow.
    pub fn list_tags(
        &self,
        repo: &str,
        last: Option<&str>,
        n: usize,
    ) -> Result<Option<(Vec<String>, bool)>, StoreError> {
        manifest::list_tags(&self.inner, repo, last, n)
    }

    /// Every manifest in `repo` whose subject is `subject` (whether or not it exists).
    pub fn referrers(&self, repo: &str, subject: &BlobKey) -> Result<Vec<ReferrerRec>, StoreError> {
        manifest::referrers(&self.inner, repo, subject)
    }

    /// Up to `n` repository names after `last`, byte-wise sorted, and whether more follow.
    pub fn catalog(&self, last: Option<&str>, n: usize) -> Result<(Vec<String>, bool), StoreError> {
        manifest::catalog(&self.inner, last, n)
    }
}
