//! Hashing uploads off the append path.
//!
//! `append_upload` runs on the server's network thread, so it only `pwrite`s and returns.
//! A session's SHA-256 is computed here, on a small pool of threads, from the bytes read
//! back out of the page cache (`pread` into a buffer each thread reuses), in order. The
//! digest is the one the old inline hashing gave: the same bytes in the same order, and
//! they are the bytes the file (later the pack) holds.
//!
//! The bytes are read in place through a read-only map of the upload file
//! (`VfsFile::map_growing`), so hashing costs no copy; `pread` is the fallback if a map
//! cannot be made (or the file system makes none).
//!
//! Each session's [`RunningHash`] records how far it is hashed, under a lock; whoever holds
//! the lock advances it. While the upload streams that is a pool thread; at finish it is
//! the finishing thread, which hashes whatever the pool has not reached, so finishing waits
//! for no queue. A session restored at open starts unhashed and is caught up the same way.
//!
//! The pool threads also ask for write-back (`VfsFile::start_writeback`) of the appended bytes every
//! [`WRITEBACK_EVERY`], so the `fdatasync` at finish has only the tail to write. They hand
//! the request to one write-back thread rather than make it themselves: starting write-back
//! can wait for the filesystem journal or the device queue, and hashing must not. The
//! append path itself never touches the disk beyond its `pwrite` into the page cache, and
//! never takes a lock a pool thread holds while reading.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use sha2::{Digest, Sha256};

use crate::pack::format::UPLOAD_RESERVED;
use crate::vfs::{FileRef, GrowingMap};
use crate::StoreError;

/// Bytes a pool thread hashes per lock hold, and the size of its reusable buffer: small
/// enough to stay in L2 between the copy and the hash, and to let a finishing thread take
/// the lock promptly.
const CHUNK: usize = 256 << 10;

/// Span of an upload file mapped at once for hashing; a new window is mapped when the
/// hash reaches the end of the last. Pages read through a map count towards the server's
/// resident memory until it is unmapped, so this bounds what hashing adds to RSS per session
/// (one remap per 8 MiB costs next to nothing beside hashing them).
const WINDOW: u64 = 8 << 20;

/// Write-back of a session's bytes is started once this many are dirty past the last start.
pub(crate) const WRITEBACK_EVERY: u64 = 8 << 20;

/// Write-back ranges end on this boundary, so a page still being appended to is never
/// among them (its next `pwrite` would then wait for the disk on stable-page devices).
const WRITEBACK_ALIGN: u64 = 1 << 20;

/// The pool never has more threads than this, however many cores there are: one upload is
/// hashed by one thread at a time, and hashing shares the cores with the network threads.
const MAX_THREADS: usize = 4;

/// A session's hash and write-back progress, shared by its session and the pool.
pub(crate) struct RunningHash {
    file: FileRef,
    /// Data bytes written so far (the file holds `UPLOAD_RESERVED` more).
    written: AtomicU64,
    /// Set while the session is queued on, or being worked by, a pool thread; at most one
    /// thread works a session at a time, which keeps its bytes in order.
    queued: AtomicBool,
    /// The session ended: pool threads drop it.
    abandoned: AtomicBool,
    /// File offset where the next write-back range starts; touched only by the pool thread
    /// that set `queued`.
    writeback_from: AtomicU64,
    state: Mutex<HashState>,
}

struct HashState {
    /// Where hashing starts over after a rewind: the state handed to
    /// [`RunningHash::resume`], and the data bytes it holds.
    base: (Sha256, u64),
    sha: Sha256,
    /// Data bytes fed to `sha`.
    hashed: u64,
    /// Where the next bytes are read from; `None` until needed, or if mapping failed.
    window: Option<GrowingMap>,
}

impl RunningHash {
    /// The hash of a session whose file holds `written` data bytes, none hashed yet.
    pub(crate) fn new(file: FileRef, written: u64) -> Arc<RunningHash> {
        RunningHash::resume(file, written, Sha256::new(), 0)
    }

    /// The hash of a session whose first `hashed` data bytes `sha` already holds (a
    /// session taken up from another node, whose file has none of them): only bytes past
    /// `hashed` are read, and a rewind never goes below it.
    pub(crate) fn resume(
        file: FileRef,
        written: u64,
        sha: Sha256,
        hashed: u64,
    ) -> Arc<RunningHash> {
        Arc::new(RunningHash {
            file,
            written: AtomicU64::new(written),
            queued: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            writeback_from: AtomicU64::new(0),
            state: Mutex::new(HashState {
                base: (sha.clone(), hashed),
                sha,
                hashed,
                window: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashState> {
        // A panic while hashing leaves `hashed` naming exactly the bytes fed to `sha`
        // (both change together after the update), so the state is still sound.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that the file now holds `written` data bytes and makes sure a pool thread
    /// will hash them. Never blocks: two atomics and at most one channel send.
    pub(crate) fn wrote(self: &Arc<Self>, written: u64, pool: &HasherPool) {
        self.written.store(written, Ordering::SeqCst);
        // SeqCst pairs with the worker's clear-then-recheck in `work`: either it sees this
        // length, or this swap sees its clear and queues the session again.
        if !self.queued.swap(true, Ordering::SeqCst) {
            pool.queue(self.clone());
        }
    }

    /// After a failed write: the file holds `written` data bytes, which may be fewer than
    /// were hashed if its length could not be read; then the hash starts over.
    pub(crate) fn rewound(&self, written: u64) {
        self.written.store(written, Ordering::SeqCst);
        let mut st = self.lock();
        if st.hashed > written {
            let (sha, hashed) = st.base.clone();
            st.sha = sha;
            st.hashed = hashed;
        }
    }

    /// The SHA-256 state after the first `len` data bytes, hashing here whatever the pool
    /// has not reached. `len` must not exceed what was written.
    pub(crate) fn digest(&self, len: u64) -> Result<Sha256, StoreError> {
        let mut st = self.lock();
        if st.hashed > len {
            return Err(StoreError::new("internal: upload hashed past its length"));
        }
        let mut buf = Vec::new();
        while st.hashed < len {
            let n = self.read_next(&mut st, len, &mut buf)?;
            if n == 0 {
                return Err(StoreError::new("upload file is shorter than its session"));
            }
        }
        Ok(st.sha.clone())
    }

    /// Stops pool work on an ended session.
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }

    /// Feeds the next bytes after `st.hashed` (up to `end` and [`CHUNK`]) to the hash,
    /// through the window or else `pread` into `buf`; returns how many (0 at end of file).
    fn read_next(
        &self,
        st: &mut HashState,
        end: u64,
        buf: &mut Vec<u8>,
    ) -> Result<usize, StoreError> {
        let want = (end - st.hashed).min(CHUNK as u64);
        let (from, to) = (
            UPLOAD_RESERVED + st.hashed,
            UPLOAD_RESERVED + st.hashed + want,
        );
        let HashState {
            sha,
            hashed,
            window,
            ..
        } = st;
        for fresh in [false, true] {
            if fresh {
                *window = self.file.map_growing(from, WINDOW.max(want)).ok().flatten();
            }
            if let Some(w) = window.as_ref() {
                let got = w
                    .bytes(&*self.file, from, to)
                    .map_err(|e| StoreError::io("stat upload file", e))?;
                if let Some(b) = got {
                    sha.update(b);
                    *hashed += want;
                    return Ok(want as usize);
                }
            }
        }
        // No map: copy the bytes out instead.
        buf.resize(CHUNK, 0);
        let got = self
            .file
            .read_at(&mut buf[..want as usize], from)
            .map_err(|e| StoreError::io("read upload file", e))?;
        sha.update(&buf[..got]);
        *hashed += got as u64;
        Ok(got)
    }

    /// Asks for write-back of whole `WRITEBACK_ALIGN` blocks written since the last ask,
    /// once there are `WRITEBACK_EVERY` of them.
    fn ask_writeback(self: &Arc<Self>, written: u64, wb: &Sender<WritebackAsk>) {
        let end = (UPLOAD_RESERVED + written) & !(WRITEBACK_ALIGN - 1);
        let from = self.writeback_from.load(Ordering::Relaxed);
        if end >= from + WRITEBACK_EVERY {
            // Only a hint: if the write-back thread is gone, the final `fdatasync` does it.
            let _ = wb.send((self.clone(), from, end - from));
            self.writeback_from.store(end, Ordering::Relaxed);
        }
    }

    /// A pool thread's turn at this session: hash and start write-back up to what was
    /// written, until caught up, then give the session back.
    fn work(self: &Arc<Self>, buf: &mut Vec<u8>, closing: &AtomicBool, wb: &Sender<WritebackAsk>) {
        loop {
            if self.abandoned.load(Ordering::Relaxed) || closing.load(Ordering::Relaxed) {
                self.queued.store(false, Ordering::SeqCst);
                return;
            }
            let written = self.written.load(Ordering::SeqCst);
            self.ask_writeback(written, wb);
            let (hashed, failed) = {
                let mut st = self.lock();
                if st.hashed < written {
                    match self.read_next(&mut st, written, buf) {
                        Ok(n) if n > 0 => continue,
                        // A short file or a read error: the finishing thread meets it too
                        // and reports it; retrying here would only spin.
                        _ => (st.hashed, true),
                    }
                } else {
                    (st.hashed, false)
                }
            };
            self.queued.store(false, Ordering::SeqCst);
            // An append may have landed after `written` was read and found `queued` still
            // set; look again, and take the session back if no one else has.
            if failed
                || self.written.load(Ordering::SeqCst) <= hashed
                || self.queued.swap(true, Ordering::SeqCst)
            {
                return;
            }
        }
    }
}

/// A session and the file range whose write-back to start.
type WritebackAsk = (Arc<RunningHash>, u64, u64);

/// The hashing threads and the write-back thread. Dropping the pool stops them (abandoning
/// queued work: hashes not reached are caught up at finish, bytes not written back are
/// written by the final `fdatasync`) and joins them.
pub(crate) struct HasherPool {
    tx: Option<Sender<Arc<RunningHash>>>,
    wb_tx: Option<Sender<WritebackAsk>>,
    closing: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl HasherPool {
    /// One thread per core, at most [`MAX_THREADS`].
    pub(crate) fn start() -> Result<HasherPool, StoreError> {
        let n = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_THREADS);
        let (tx, rx) = crossbeam_channel::unbounded();
        let (wb_tx, wb_rx) = crossbeam_channel::unbounded::<WritebackAsk>();
        let closing = Arc::new(AtomicBool::new(false));
        let mut pool = HasherPool {
            tx: Some(tx),
            wb_tx: Some(wb_tx.clone()),
            closing: closing.clone(),
            threads: Vec::with_capacity(n + 1),
        };
        for i in 0..n {
            let rx: Receiver<Arc<RunningHash>> = rx.clone();
            let (closing, wb_tx) = (closing.clone(), wb_tx.clone());
            let t = std::thread::Builder::new()
                .name(format!("berth-hash-{i}"))
                .spawn(move || {
                    let mut buf = Vec::new();
                    while let Ok(h) = rx.recv() {
                        h.work(&mut buf, &closing, &wb_tx);
                    }
                })
                .map_err(|e| StoreError::io("start a hashing thread", e))?;
            pool.threads.push(t);
        }
        drop(wb_tx);
        let wb_closing = closing.clone();
        let t = std::thread::Builder::new()
            .name("berth-writeback".into())
            .spawn(move || {
                while let Ok((h, from, len)) = wb_rx.recv() {
                    if wb_closing.load(Ordering::Relaxed) {
                        break;
                    }
                    if !h.abandoned.load(Ordering::Relaxed) {
                        // Only a hint: a failure here is met again, and reported, by the
                        // final `fdatasync`.
                        let _ = h.file.start_writeback(from, len);
                    }
                }
            })
            .map_err(|e| StoreError::io("start the write-back thread", e))?;
        pool.threads.push(t);
        Ok(pool)
    }

    fn queue(&self, h: Arc<RunningHash>) {
        // With no pool (closing), `queued` stays set and the finishing thread hashes all.
        if let Some(tx) = &self.tx {
            let _ = tx.send(h);
        }
    }
}

impl Drop for HasherPool {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::Relaxed);
        self.tx = None;
        self.wb_tx = None;
        for t in self.threads.drain(..) {
            // A panic in a hashing thread is a bug already reported on stderr.
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_pool_alone_catches_up_with_the_writes_and_matches_an_inline_hash() {
        use crate::vfs::{OpenMode, RealFs, Vfs};
        let dir = tempfile::tempdir().unwrap();
        let file = RealFs::new(dir.path())
            .open("u", OpenMode::CreateNew)
            .unwrap();
        let pool = HasherPool::start().unwrap();
        let h = RunningHash::new(file.clone(), 0);
        let mut inline = Sha256::new();
        let mut len = 0u64;
        for i in 0..2000u64 {
            let bytes: Vec<u8> = (0..(i * 613) % 20_000).map(|j| (i ^ j) as u8).collect();
            file.write_all_at(&bytes, UPLOAD_RESERVED + len).unwrap();
            len += bytes.len() as u64;
            inline.update(&bytes);
            h.wrote(len, &pool);
        }
        // No one but the pool hashes here: wait for it, within reason.
        for _ in 0..3000 {
            if h.lock().hashed == len && !h.queued.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            h.lock().hashed,
            len,
            "the pool fell silent behind the writes"
        );
        assert_eq!(h.digest(len).unwrap().finalize(), inline.finalize());
        assert!(
            !h.queued.load(Ordering::SeqCst),
            "the pool gave the session back"
        );
    }
}
