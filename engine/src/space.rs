//! Free space on the store's filesystem, and the reserve kept below uploads.
//!
//! Once the disk is full every write fails, deletes and garbage collection included, so an
//! operator could not free space through Berth. Uploads (the only writes that take much
//! room) are therefore refused while less than the reserve is free: metadata commits,
//! deletes and collections, which take little, still find room.
//!
//! `statvfs` (`vfs::fs_space`) is one cheap syscall, but appends come many per second: a reading is kept for
//! the second it was taken, less what was appended since.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::vfs::Vfs;
use crate::{Clock, StoreError};

/// The default reserve's ceiling: room for many thousands of metadata commits.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 << 20;

/// The reserve when none is configured: 64 MiB, or 1% of the filesystem if that is less
/// (a small disk is not withheld whole from uploads).
pub fn default_min_free_bytes(total: u64) -> u64 {
    DEFAULT_MIN_FREE_BYTES.min(total / 100)
}

/// Free space as last read, and the reserve uploads must leave.
pub(crate) struct Space {
    fs: Arc<dyn Vfs>,
    /// Uploads are refused while less than this is free.
    pub(crate) reserve: u64,
    clock: Clock,
    /// The second of the last reading (`u64::MAX`: none yet).
    read_at: AtomicU64,
    /// Bytes free at that reading, less what was appended since.
    free: AtomicU64,
}

impl Space {
    /// `reserve` of `None` takes [`default_min_free_bytes`] of the filesystem.
    pub(crate) fn new(fs: Arc<dyn Vfs>, reserve: Option<u64>, clock: Clock) -> Space {
        let reserve = reserve.unwrap_or_else(|| {
            fs.space()
                .map_or(DEFAULT_MIN_FREE_BYTES, |s| default_min_free_bytes(s.total))
        });
        Space {
            fs,
            reserve,
            clock,
            read_at: AtomicU64::new(u64::MAX),
            free: AtomicU64::new(0),
        }
    }

    /// Bytes free now (a reading at most a second old, less what was appended since);
    /// `None` if the filesystem cannot say, in which case nothing is refused.
    pub(crate) fn free(&self) -> Option<u64> {
        let now = (self.clock)();
        if self.read_at.load(Ordering::Acquire) == now {
            return Some(self.free.load(Ordering::Relaxed));
        }
        self.read(now)
    }

    /// A fresh reading, kept for the second `now`.
    fn read(&self, now: u64) -> Option<u64> {
        let s = self.fs.space().ok()?;
        self.free.store(s.free, Ordering::Relaxed);
        self.read_at.store(now, Ordering::Release);
        Some(s.free)
    }

    /// Refuses to start an upload while less than the reserve is free.
    /// Reads afresh (one per upload is cheap): space freed a moment ago counts at once.
    pub(crate) fn start_upload(&self) -> Result<(), StoreError> {
        let free = self.read((self.clock)());
        self.refuse_below(free, self.reserve, 0)
    }

    /// Refuses `len` more bytes of an upload in progress that would leave less than half
    /// the reserve free; counts them as taken otherwise. An upload begun above the reserve
    /// may finish in its upper half, so that a push crossing it is not cut mid-layer (a
    /// refusal mid-body costs the client its connection); the lower half stays for
    /// metadata, deletes and garbage collection.
    pub(crate) fn append(&self, len: u64) -> Result<(), StoreError> {
        self.refuse_below(self.free(), self.reserve / 2, len)
    }

    fn refuse_below(&self, free: Option<u64>, floor: u64, len: u64) -> Result<(), StoreError> {
        let Some(free) = free else {
            return Ok(());
        };
        if free < floor.saturating_add(len) {
            return Err(StoreError::full(
                format!(
                    "{free} bytes free on the filesystem of {}, {len} more to write, below \
                     {floor} (min_free_space {})",
                    self.fs.describe(""),
                    self.reserve
                ),
                format!(
                    "the store is full: {free} bytes free, below min_free_space {}; delete \
                     images and run berth gc",
                    self.reserve
                ),
            ));
        }
        // Saturating: a reading taken meanwhile may already count these bytes.
        let _ = self
            .free
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                Some(f.saturating_sub(len))
            });
        Ok(())
    }
}
