//! A pack opened for writing on object storage: writes go to the local copy, and
//! `sync_data` makes the object hold exactly the copy's bytes before it returns.
//!
//! That is how the engine's one durability rule survives the move to a bucket: bytes are
//! durable before the metadata row naming them commits (`commit.rs`), and here durable
//! means in the object store, which every node reads, not on this node's disk.
//!
//! An object cannot be appended to, so each `sync_data` after a write uploads the whole
//! file again (one PUT, or a multipart upload streamed from the file past one part). A
//! shared pack synced once per batch therefore costs the sum of its sizes at every batch:
//! quadratic in the pack's length. The engine keeps shared packs small in this mode; a
//! single-blob pack is uploaded once, by the rename that brings it in (`ObjectFs::rename`).
//!
//! Opening an existing pack for writing fetches nothing yet: the engine opens every pack
//! that way at start to check its length (`recover.rs`), and only the one it appends to,
//! or the rare one it cuts back, needs its bytes. Until then `len` is the object's, as a
//! `HEAD` said at open, which is also its committed part.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::bucket::Bucket;
use super::cache::Cache;
use crate::vfs::{FileRef, GrowingMap, MapHow, Mapped, VfsFile};

/// A writable pack: the local copy (fetched on first use) and the object it is synced to.
pub(super) struct PackHandle {
    cache: Arc<Cache>,
    /// `<id>.pack`.
    file: String,
    key: String,
    local: OnceLock<FileRef>,
    /// Taken to fetch the local copy and for each sync, so neither runs twice at once.
    gate: Mutex<()>,
    /// The object's length at open, while there is no local copy.
    remote_len: u64,
    /// Written or cut since the object last matched the copy.
    dirty: AtomicBool,
}

impl std::fmt::Debug for PackHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackHandle")
            .field("key", &self.key)
            .field("fetched", &self.local.get().is_some())
            .field("dirty", &self.dirty.load(Ordering::Relaxed))
            .finish()
    }
}

impl PackHandle {
    /// Opens existing pack `file` for writing: its local copy if there is one, else just
    /// the object's length (`NotFound` if there is no object either).
    pub(super) fn open(cache: &Arc<Cache>, file: &str) -> io::Result<PackHandle> {
        let mut h = PackHandle::pinned(cache, file)?;
        if let Some(f) = cache.cached(file, true)? {
            let _ = h.local.set(f);
            return Ok(h);
        }
        match cache.bucket().head(&h.key)? {
            Some(len) => {
                h.remote_len = len;
                Ok(h)
            }
            None => Err(missing(cache.bucket(), &h.key)),
        }
    }

    /// Creates pack `file`; with `new`, `AlreadyExists` if the bucket holds it already,
    /// without, the existing one is opened.
    pub(super) fn create(cache: &Arc<Cache>, file: &str, new: bool) -> io::Result<PackHandle> {
        let key = Bucket::key(file);
        // The bucket decides, not the local folder: a copy without an object is what a
        // crash leaves of a pack created and never synced, whose id is then free again.
        if cache.bucket().head(&key)?.is_some() {
            if new {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} already exists", cache.bucket().describe(&key)),
                ));
            }
            return PackHandle::open(cache, file);
        }
        let h = PackHandle::pinned(cache, file)?;
        let f = cache.create(file)?;
        let _ = h.local.set(f);
        // The object must exist after the first sync even if nothing is written.
        h.dirty.store(true, Ordering::Release);
        Ok(h)
    }

    /// A handle holding a pin on `file`, no copy yet.
    fn pinned(cache: &Arc<Cache>, file: &str) -> io::Result<PackHandle> {
        cache.pin(file)?;
        Ok(PackHandle {
            cache: cache.clone(),
            file: file.to_owned(),
            key: Bucket::key(file),
            local: OnceLock::new(),
            gate: Mutex::new(()),
            remote_len: 0,
            dirty: AtomicBool::new(false),
        })
    }

    /// The local copy, downloaded on first use.
    fn local(&self) -> io::Result<&FileRef> {
        if let Some(f) = self.local.get() {
            return Ok(f);
        }
        let _g = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = self.local.get() {
            return Ok(f);
        }
        let f = self.cache.open(&self.file, true)?;
        Ok(self.local.get_or_init(|| f))
    }
}

impl Drop for PackHandle {
    fn drop(&mut self) {
        self.cache.unpin(&self.file);
    }
}

impl VfsFile for PackHandle {
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        self.local()?.read_at(buf, at)
    }

    fn write_at(&self, buf: &[u8], at: u64) -> io::Result<usize> {
        let f = self.local()?;
        // Before the write: one that fails halfway may still have changed the copy.
        self.dirty.store(true, Ordering::Release);
        f.write_at(buf, at)
    }

    fn len(&self) -> io::Result<u64> {
        match self.local.get() {
            Some(f) => f.len(),
            None => Ok(self.remote_len),
        }
    }

    fn modified_secs(&self) -> io::Result<u64> {
        match self.local.get() {
            Some(f) => f.modified_secs(),
            None => Ok(0),
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let f = self.local()?;
        self.dirty.store(true, Ordering::Release);
        f.set_len(len)
    }

    /// The local copy's bytes made durable on its disk first (a copy is trusted after a
    /// restart, so it must not be torn), then uploaded whole if they changed.
    fn sync_data(&self) -> io::Result<()> {
        let _g = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        let Some(f) = self.local.get() else {
            // Never fetched, so never written: the object is the file.
            return Ok(());
        };
        f.sync_data()?;
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let len = f.len()?;
        if let Err(e) = self.cache.bucket().upload(&self.key, &**f, len) {
            self.dirty.store(true, Ordering::Release);
            return Err(e);
        }
        self.cache.resized(&self.file, len);
        Ok(())
    }

    fn map(&self, at: u64, len: usize, how: MapHow) -> io::Result<Option<Mapped>> {
        self.local()?.map(at, len, how)
    }

    fn map_growing(&self, at: u64, len: u64) -> io::Result<Option<GrowingMap>> {
        self.local()?.map_growing(at, len)
    }

    fn start_writeback(&self, at: u64, len: u64) -> io::Result<()> {
        self.local()?.start_writeback(at, len)
    }
}

/// `NotFound` for a pack the bucket does not hold.
pub(super) fn missing(bucket: &Bucket, key: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist", bucket.describe(key)),
    )
}
