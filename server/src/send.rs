//! The per-connection write queue: response bytes from the core and blob ranges from pack
//! files, sent in order.
//!
//! Blob bytes are written to the socket straight from a read-only map of the pack, a
//! window of at most [`WINDOW`] at a time: no copy into a buffer of ours, and memory per
//! connection bounded by the window whatever the blob size. On loopback here one 256 MiB
//! blob went out at 3.2-3.7 GB/s this way against 2.1-2.3 GB/s with `sendfile(2)`, which
//! hands the socket page references it must then account for piece by piece. A slow
//! reader costs an `Arc<PackFile>`, two offsets and at most one window; past
//! [`FULL_WINDOWS`] windows alive in the process, new ones are [`SMALL_WINDOW`] long, so
//! thousands of stalled downloads cannot pile up mappings.
//!
//! Mapping a window loads its pages, which waits on the disk when they are not in the
//! page cache, and an event loop that waits serves none of its other connections. So a
//! window whose pages are not all cached is first read by a [`Loader`] (reader threads in
//! the server) while the connection waits ([`Flushed::Loading`]); once bytes came from the
//! disk, the window after is read ahead while this one goes out.

use berth_engine::{BlobWindow, PackFile};
use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;
use std::sync::atomic::{
    AtomicU8, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::Arc;

/// Most bytes of a pack mapped at once per connection: large enough that a window serves
/// several socket writes (a map and its page population cost about one write), small
/// enough that many concurrent pulls stay light in resident memory.
const WINDOW: usize = 2 << 20;
/// Windows of [`WINDOW`] alive at once in the process, beyond which new ones are small.
const FULL_WINDOWS: usize = 64;
const SMALL_WINDOW: usize = 128 << 10;

/// Windows alive now, across connections and event loops.
static LIVE_WINDOWS: AtomicUsize = AtomicUsize::new(0);

/// A mapped window and the pack offset of its first byte; counted while alive.
struct Window {
    at: u64,
    map: BlobWindow,
}

impl Window {
    /// How long a window for `left` more bytes is now.
    fn len_for(left: u64) -> usize {
        let cap = if LIVE_WINDOWS.load(Relaxed) < FULL_WINDOWS {
            WINDOW
        } else {
            SMALL_WINDOW
        };
        // At most `cap`, so it fits in usize.
        left.min(cap as u64) as usize
    }

    fn new(at: u64, map: BlobWindow) -> Window {
        LIVE_WINDOWS.fetch_add(1, Relaxed);
        Window { at, map }
    }

    /// Maps `len` bytes of `file` from `at`.
    fn map(file: &PackFile, at: u64, len: usize) -> io::Result<Window> {
        let map = file
            .window(at, len)
            .map_err(|source| pack_read(file, at, source))?;
        Ok(Window::new(at, map))
    }

    /// Maps `len` bytes of `file` from `at` if they are all in memory.
    fn map_cached(file: &PackFile, at: u64, len: usize) -> io::Result<Option<Window>> {
        let map = file
            .cached_window(at, len)
            .map_err(|source| pack_read(file, at, source))?;
        Ok(map.map(|m| Window::new(at, m)))
    }

    fn end(&self) -> u64 {
        self.at + self.map.bytes().len() as u64
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        LIVE_WINDOWS.fetch_sub(1, Relaxed);
    }
}

/// Blob bytes could not be read from their pack (short file, or the map failed): the
/// store's fault, not the client's, though the response is cut short all the same.
#[derive(Debug, thiserror::Error)]
#[error("cannot read pack {pack} from offset {at}: {source}")]
pub struct PackRead {
    pack: u64,
    at: u64,
    source: io::Error,
}

fn pack_read(file: &PackFile, at: u64, source: io::Error) -> io::Error {
    let pack = file.id();
    io::Error::new(source.kind(), PackRead { pack, at, source })
}

/// Reads pack bytes into the page cache away from the event loop.
pub trait Loader {
    /// Starts reading `file[at..at + len]`. The [`Load`] says when the bytes are in (or
    /// could not be read), and whoever flushes this queue is then told to flush again.
    fn load(&self, file: &Arc<PackFile>, at: u64, len: usize) -> Arc<Load>;
}

/// One read of pack bytes into memory, shared by the queue that waits for it and whoever
/// does it. Only the queue holding it wants the answer: once it is dropped (the connection
/// closed), the read need not be done.
#[derive(Debug, Default)]
pub struct Load(AtomicU8);

const PENDING: u8 = 0;
const LOADED: u8 = 1;
const FAILED: u8 = 2;

impl Load {
    /// The bytes are in memory (`true`), or reading them failed.
    pub fn finish(&self, ok: bool) {
        self.0.store(if ok { LOADED } else { FAILED }, Release);
    }

    /// `None` while pending; then whether the bytes were read.
    pub(crate) fn outcome(&self) -> Option<bool> {
        match self.0.load(Acquire) {
            PENDING => None,
            s => Some(s == LOADED),
        }
    }
}

/// A read a [`Loader`] is doing for a blob range: the window of `len` bytes at `at`.
struct Ahead {
    at: u64,
    len: usize,
    load: Arc<Load>,
}

impl Ahead {
    /// The window once its bytes are in, mapped exactly as long as the read (how long a
    /// new window would be may have changed since); `None` while the read is pending.
    fn window(&self, file: &PackFile) -> io::Result<Option<Window>> {
        match self.load.outcome() {
            None => Ok(None),
            Some(true) => Window::map(file, self.at, self.len).map(Some),
            Some(false) => Err(pack_read(
                file,
                self.at,
                io::Error::other("reading from the disk failed"),
            )),
        }
    }
}

/// Whether a flush failed reading a pack rather than writing the socket.
pub fn is_pack_read(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<PackRead>())
}

/// Most iovecs in one `writev`; a response is a handful of chunks.
const MAX_IOV: usize = 64;

/// One piece of queued output.
enum Chunk {
    Bytes(Bytes),
    File {
        file: Arc<PackFile>,
        pos: u64,
        end: u64,
        /// The mapped bytes around `pos`; `None` until the first write and between windows.
        window: Option<Window>,
        /// The next window's bytes, being read from the disk.
        ahead: Option<Ahead>,
    },
}

/// Output waiting for the socket, in order.
#[derive(Default)]
pub struct WriteQueue {
    chunks: VecDeque<Chunk>,
    /// Bytes still to send, blob ranges included.
    len: u64,
    /// The response being queued cannot be completed: nothing more is taken.
    cut: bool,
}

/// How a flush ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued was written.
    Drained,
    /// The socket would block; a writable event will come.
    Blocked,
    /// This flush sent its budget and the socket may still be writable: no event will come,
    /// so the caller must flush again soon.
    Budget,
    /// The next bytes are being read from the disk; the [`Loader`] says when to flush again.
    Loading,
}

/// What one write from the queue did.
enum Wrote {
    Sent(u64),
    Loading,
}

/// Where bytes go. The socket in production, a recording mock in tests.
pub trait Sink {
    /// Writes from `bufs` in order; `more` says another write follows at once (a blob after
    /// its headers) so the kernel may hold a partial segment.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>], more: bool) -> io::Result<usize>;
}

impl WriteQueue {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Takes nothing more, for good: a blob of the response being queued cannot be read
    /// (its pack will not open), so whatever follows it (the rest of a pieced body, the
    /// answers to pipelined requests) would reach the client as the missing bytes. What
    /// was queued before still goes out; the connection then closes, which tells the
    /// client the body is short.
    pub fn cut_short(&mut self) {
        self.cut = true;
    }

    /// Whether [`cut_short`](Self::cut_short) was called.
    pub fn is_cut(&self) -> bool {
        self.cut
    }

    pub fn push_bytes(&mut self, b: Bytes) {
        if !b.is_empty() && !self.cut {
            self.len += b.len() as u64;
            self.chunks.push_back(Chunk::Bytes(b));
        }
    }

    /// Queues `file[start..end]`.
    pub fn push_file(&mut self, file: Arc<PackFile>, start: u64, end: u64) {
        if end > start && !self.cut {
            self.len += end - start;
            self.chunks.push_back(Chunk::File {
                file,
                pos: start,
                end,
                window: None,
                ahead: None,
            });
        }
    }

    /// Writes queued output until it is gone, the sink would block, blob bytes must first
    /// come from the disk (through `loader`), or `budget` bytes have been written. Returns
    /// how it ended and how many bytes were written.
    pub fn flush(
        &mut self,
        sink: &mut impl Sink,
        loader: &impl Loader,
        budget: u64,
    ) -> io::Result<(Flushed, u64)> {
        let mut sent = 0u64;
        loop {
            if self.chunks.is_empty() {
                return Ok((Flushed::Drained, sent));
            }
            if sent >= budget {
                return Ok((Flushed::Budget, sent));
            }
            let r = match self.chunks.front() {
                Some(Chunk::Bytes(_)) => self.write_bytes(sink).map(Wrote::Sent),
                Some(Chunk::File { .. }) => self.write_file(sink, loader, budget - sent),
                None => continue,
            };
            match r {
                Ok(Wrote::Sent(n)) => sent += n,
                Ok(Wrote::Loading) => return Ok((Flushed::Loading, sent)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok((Flushed::Blocked, sent))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// One `writev` of the leading byte chunks.
    fn write_bytes(&mut self, sink: &mut impl Sink) -> io::Result<u64> {
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        let mut k = 0;
        let mut more = false;
        for c in &self.chunks {
            match c {
                Chunk::Bytes(b) if k < MAX_IOV => {
                    iov[k] = IoSlice::new(b);
                    k += 1;
                }
                Chunk::Bytes(_) => {
                    more = true;
                    break;
                }
                Chunk::File { .. } => {
                    more = true;
                    break;
                }
            }
        }
        let n = sink.write_vectored(&iov[..k], more)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.consume(n as u64);
        Ok(n as u64)
    }

    /// One write of the leading blob range from its window, at most `budget` bytes; or,
    /// when the next window's bytes are not in memory, none until `loader` has read them.
    fn write_file(
        &mut self,
        sink: &mut impl Sink,
        loader: &impl Loader,
        budget: u64,
    ) -> io::Result<Wrote> {
        let Some(Chunk::File {
            file,
            pos,
            end,
            window,
            ahead,
        }) = self.chunks.front_mut()
        else {
            return Ok(Wrote::Sent(0));
        };
        let w = match window.take() {
            Some(w) if *pos < w.end() => w,
            _ => match ahead.take() {
                Some(a) if a.at == *pos => {
                    let Some(w) = a.window(file)? else {
                        *ahead = Some(a);
                        return Ok(Wrote::Loading);
                    };
                    // These bytes came from the disk, so the next ones likely will too:
                    // read them while this window goes out.
                    if w.end() < *end {
                        let (at, len) = (w.end(), Window::len_for(*end - w.end()));
                        let load = loader.load(file, at, len);
                        *ahead = Some(Ahead { at, len, load });
                    }
                    w
                }
                _ => {
                    let len = Window::len_for(*end - *pos);
                    match Window::map_cached(file, *pos, len)? {
                        Some(w) => w,
                        None => {
                            let load = loader.load(file, *pos, len);
                            let a = Ahead {
                                at: *pos,
                                len,
                                load,
                            };
                            let Some(w) = a.window(file)? else {
                                *ahead = Some(a);
                                return Ok(Wrote::Loading);
                            };
                            w
                        }
                    }
                }
            },
        };
        // `pos` lies inside the window (checked or just mapped), which fits in memory.
        let here = &w.map.bytes()[(*pos - w.at) as usize..];
        let want = here
            .len()
            .min(usize::try_from(budget.max(1)).unwrap_or(usize::MAX));
        let n = sink.write_vectored(&[IoSlice::new(&here[..want])], false);
        let n = match n {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) => {
                *window = Some(w);
                return Err(e);
            }
        };
        *pos += n as u64;
        if *pos >= *end {
            self.chunks.pop_front();
        } else {
            *window = Some(w);
        }
        self.len -= n as u64;
        Ok(Wrote::Sent(n as u64))
    }

    /// Where the leading blob range's current window starts, if one is mapped.
    #[cfg(test)]
    fn window_at(&self) -> Option<u64> {
        match self.chunks.front() {
            Some(Chunk::File {
                window: Some(w), ..
            }) => Some(w.at),
            _ => None,
        }
    }

    /// How long the leading blob range's current window is, if one is mapped.
    #[cfg(test)]
    fn window_len(&self) -> Option<usize> {
        match self.chunks.front() {
            Some(Chunk::File {
                window: Some(w), ..
            }) => Some(w.map.bytes().len()),
            _ => None,
        }
    }

    /// Drops `n` written bytes from the front of the byte chunks.
    fn consume(&mut self, mut n: u64) {
        self.len -= n;
        while n > 0 {
            let Some(Chunk::Bytes(b)) = self.chunks.front_mut() else {
                return;
            };
            let here = b.len() as u64;
            if n >= here {
                n -= here;
                self.chunks.pop_front();
            } else {
                // n < b.len(), so it fits in usize.
                b.advance(n as usize);
                return;
            }
        }
    }
}

/// A non-blocking TCP socket, written with `sendmsg`.
pub struct SocketSink(pub RawFd);

impl Sink for SocketSink {
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
        // SAFETY: an all-zero msghdr is valid (no name, no control data); the iovec fields
        // point at `bufs`, whose IoSlice is ABI-compatible with iovec and outlives the call.
        let n = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = bufs.len() as _;
            let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
            libc::sendmsg(self.0, &msg, flags)
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    /// Accepts at most `per_call` bytes per call and `capacity` bytes before WouldBlock.
    struct Mock {
        out: Vec<u8>,
        per_call: usize,
        capacity: usize,
        more_flags: Vec<bool>,
    }

    impl Mock {
        fn new(per_call: usize, capacity: usize) -> Mock {
            Mock {
                out: Vec::new(),
                per_call,
                capacity,
                more_flags: Vec::new(),
            }
        }
        fn room(&self) -> usize {
            self.capacity.saturating_sub(self.out.len())
        }
    }

    impl Sink for Mock {
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
            self.more_flags.push(more);
            let mut left = self.per_call.min(self.room());
            if left == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(left);
                self.out.extend_from_slice(&b[..take]);
                n += take;
                left -= take;
                if left == 0 {
                    break;
                }
            }
            Ok(n)
        }
    }

    /// Reads synchronously: the bytes are in when `load` returns.
    struct ReadNow;

    impl Loader for ReadNow {
        fn load(&self, file: &Arc<PackFile>, at: u64, len: usize) -> Arc<Load> {
            let load = Arc::new(Load::default());
            load.finish(file.window(at, len).is_ok());
            load
        }
    }

    /// Flushes again while bytes were being loaded (a test file's pages are normally all
    /// cached, but the kernel may drop them at any time).
    fn flush(q: &mut WriteQueue, sink: &mut impl Sink, budget: u64) -> io::Result<(Flushed, u64)> {
        let mut total = 0;
        loop {
            let (how, sent) = q.flush(sink, &ReadNow, budget)?;
            total += sent;
            if how != Flushed::Loading {
                return Ok((how, total));
            }
        }
    }

    /// Records what it was asked to read; the test says when each read is done.
    #[derive(Default)]
    struct Recorder {
        asked: std::cell::RefCell<Vec<(u64, usize, Arc<Load>)>>,
    }

    impl Loader for Recorder {
        fn load(&self, _: &Arc<PackFile>, at: u64, len: usize) -> Arc<Load> {
            let load = Arc::new(Load::default());
            self.asked.borrow_mut().push((at, len, load.clone()));
            load
        }
    }

    impl Recorder {
        fn asked(&self) -> Vec<(u64, usize)> {
            self.asked
                .borrow()
                .iter()
                .map(|(a, l, _)| (*a, *l))
                .collect()
        }
        fn finish(&self, i: usize, ok: bool) {
            self.asked.borrow()[i].2.finish(ok);
        }
    }

    /// Held by tests whose window lengths must not change under them: how long a window is
    /// depends on how many are alive in the whole process.
    static WINDOW_COUNT: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn lock_window_count() -> std::sync::MutexGuard<'static, ()> {
        WINDOW_COUNT.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A pack on disk whose pages are not in the page cache.
    fn cold_pack(bytes: &[u8]) -> Arc<PackFile> {
        use std::os::fd::AsRawFd;
        // Beside the sources: a memory-backed temporary folder would keep the pages.
        let mut f = tempfile::tempfile_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        f.write_all(bytes).unwrap();
        f.sync_all().unwrap();
        // SAFETY: fadvise only advises the kernel about an open descriptor's pages.
        let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(r, 0, "posix_fadvise");
        // SAFETY: an unlinked temporary file only this test holds.
        let p = Arc::new(unsafe { PackFile::assume_stable(f) });
        assert!(
            p.cached_window(0, bytes.len()).unwrap().is_none(),
            "pages still cached"
        );
        p
    }

    /// Bytes not in memory are read by the loader, not by the flush: the queue waits for
    /// each read, then reads the next window ahead while sending the one it has.
    #[test]
    fn bytes_on_disk_are_loaded_off_the_flush_and_read_ahead() {
        let _count = lock_window_count();
        let data: Vec<u8> = (0..5 * WINDOW as u32 / 2)
            .map(|i| (i % 249) as u8)
            .collect();
        let mut q = WriteQueue::default();
        q.push_bytes(Bytes::from_static(b"H"));
        q.push_file(cold_pack(&data), 0, data.len() as u64);
        let mut m = Mock::new(usize::MAX, usize::MAX);
        let r = Recorder::default();
        // The headers go; the blob waits for its first window.
        assert_eq!(
            q.flush(&mut m, &r, u64::MAX).unwrap(),
            (Flushed::Loading, 1)
        );
        assert_eq!(r.asked(), vec![(0, WINDOW)]);
        // Flushed again before the read is done (another event): still waiting, asked once.
        assert_eq!(
            q.flush(&mut m, &r, u64::MAX).unwrap(),
            (Flushed::Loading, 0)
        );
        assert_eq!(r.asked().len(), 1);
        r.finish(0, true);
        // The first window goes out and the second is read meanwhile.
        let (how, sent) = q.flush(&mut m, &r, u64::MAX).unwrap();
        assert_eq!((how, sent), (Flushed::Loading, WINDOW as u64));
        let second = (WINDOW as u64, WINDOW);
        assert_eq!(r.asked()[1], second);
        r.finish(1, true);
        let (how, sent) = q.flush(&mut m, &r, u64::MAX).unwrap();
        assert_eq!((how, sent), (Flushed::Loading, WINDOW as u64));
        assert_eq!(r.asked()[2], (2 * WINDOW as u64, WINDOW / 2));
        r.finish(2, true);
        assert_eq!(
            q.flush(&mut m, &r, u64::MAX).unwrap(),
            (Flushed::Drained, WINDOW as u64 / 2)
        );
        assert_eq!(r.asked().len(), 3, "nothing read past the range");
        assert_eq!(&m.out[..1], b"H");
        assert!(m.out[1..] == data[..]);
    }

    /// A window is as long as the read that loaded it, though windows alive elsewhere
    /// changed how long a new one would be meanwhile; the next read starts where it ends.
    #[test]
    fn a_loaded_window_is_as_long_as_its_read() {
        let _count = lock_window_count();
        let data = vec![6u8; 3 * WINDOW];
        let f = cold_pack(&data);
        let mut q = WriteQueue::default();
        q.push_file(f.clone(), 0, data.len() as u64);
        let mut m = Mock::new(usize::MAX, usize::MAX);
        let r = Recorder::default();
        // Asked while many windows (onto another file) are alive: a small read.
        let other = pack(&[0u8; 4096]);
        let held: Vec<Window> = (0..FULL_WINDOWS)
            .map(|_| Window::map(&other, 0, 4096).unwrap())
            .collect();
        assert_eq!(
            q.flush(&mut m, &r, u64::MAX).unwrap(),
            (Flushed::Loading, 0)
        );
        assert_eq!(r.asked(), vec![(0, SMALL_WINDOW)]);
        drop(held);
        r.finish(0, true);
        let (how, sent) = q.flush(&mut m, &r, u64::MAX).unwrap();
        assert_eq!((how, sent), (Flushed::Loading, SMALL_WINDOW as u64));
        assert_eq!(r.asked()[1], (SMALL_WINDOW as u64, WINDOW));
    }

    /// A read that failed ends the response with a pack error, as a failed map would.
    #[test]
    fn a_failed_read_is_a_pack_error() {
        let mut q = WriteQueue::default();
        q.push_file(cold_pack(&[1u8; 100_000]), 0, 100_000);
        let mut m = Mock::new(usize::MAX, usize::MAX);
        let r = Recorder::default();
        assert_eq!(
            q.flush(&mut m, &r, u64::MAX).unwrap(),
            (Flushed::Loading, 0)
        );
        r.finish(0, false);
        let e = q.flush(&mut m, &r, u64::MAX).unwrap_err();
        assert!(is_pack_read(&e), "{e}");
        assert!(m.out.is_empty());
    }

    /// Bytes already in memory are sent without the loader.
    #[test]
    fn cached_bytes_need_no_loader() {
        let data = vec![3u8; 3 * WINDOW];
        let f = pack(&data);
        // Loaded, and held mapped so that the kernel does not page them out meanwhile.
        let _held = f.window(0, data.len()).unwrap();
        let mut q = WriteQueue::default();
        q.push_file(f, 0, data.len() as u64);
        let mut m = Mock::new(usize::MAX, usize::MAX);
        let r = Recorder::default();
        let (how, sent) = q.flush(&mut m, &r, u64::MAX).unwrap();
        assert_eq!((how, sent), (Flushed::Drained, data.len() as u64));
        assert!(r.asked().is_empty());
    }

    fn pack(bytes: &[u8]) -> Arc<PackFile> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        // SAFETY: an unlinked temporary file only this test holds; nothing truncates or
        // rewrites it while the queue's windows live.
        Arc::new(unsafe { PackFile::assume_stable(f) })
    }

    #[test]
    fn bytes_and_file_ranges_arrive_in_order_across_partial_writes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let f = pack(&data);
        let mut q = WriteQueue::default();
        q.push_bytes(Bytes::from_static(b"HEAD1\r\n"));
        q.push_file(f.clone(), 100, 5_100);
        q.push_bytes(Bytes::from_static(b"HEAD2\r\n"));
        q.push_bytes(Bytes::new());
        q.push_file(f, 9_000, 10_000);
        assert_eq!(q.len(), 7 + 5_000 + 7 + 1_000);

        let mut m = Mock::new(333, usize::MAX);
        let (how, sent) = flush(&mut q, &mut m, u64::MAX).unwrap();
        assert_eq!(how, Flushed::Drained);
        assert_eq!(sent, 6_014);
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
        let mut want = b"HEAD1\r\n".to_vec();
        want.extend_from_slice(&data[100..5_100]);
        want.extend_from_slice(b"HEAD2\r\n");
        want.extend_from_slice(&data[9_000..]);
        assert_eq!(m.out, want);
    }

    #[test]
    fn a_cut_queue_sends_what_it_held_and_takes_nothing_more() {
        let data = vec![5u8; 1000];
        let mut q = WriteQueue::default();
        q.push_bytes(Bytes::from_static(b"HEAD\r\n"));
        q.cut_short();
        q.push_file(pack(&data), 0, 1000);
        q.push_bytes(Bytes::from_static(b"HTTP/1.1 200 OK\r\n"));
        assert!(q.is_cut());
        assert_eq!(q.len(), 6);
        let mut m = Mock::new(usize::MAX, usize::MAX);
        let (how, sent) = flush(&mut q, &mut m, u64::MAX).unwrap();
        assert_eq!((how, sent), (Flushed::Drained, 6));
        assert_eq!(m.out, b"HEAD\r\n");
    }

    #[test]
    fn flush_stops_at_would_block_and_resumes_where_it_stopped() {
        let data = vec![7u8; 4096];
        let mut q = WriteQueue::default();
        q.push_bytes(Bytes::from_static(b"abc"));
        q.push_file(pack(&data), 0, 4096);
        let mut m = Mock::new(1000, 1500);
        let (how, sent) = flush(&mut q, &mut m, u64::MAX).unwrap();
        assert_eq!((how, sent), (Flushed::Blocked, 1500));
        assert_eq!(q.len(), 4099 - 1500);
        m.capacity = usize::MAX;
        let (how, _) = flush(&mut q, &mut m, u64::MAX).unwrap();
        assert_eq!(how, Flushed::Drained);
        assert_eq!(m.out.len(), 4099);
        assert_eq!(&m.out[..3], b"abc");
        assert!(m.out[3..].iter().all(|&b| b == 7));
    }

    #[test]
    fn flush_yields_after_its_budget_with_output_left() {
        let mut q = WriteQueue::default();
        q.push_file(pack(&vec![1u8; 100_000]), 0, 100_000);
        let mut m = Mock::new(10_000, usize::MAX);
        let (how, sent) = flush(&mut q, &mut m, 25_000).unwrap();
        assert_eq!(how, Flushed::Budget);
        assert!((25_000..35_000).contains(&sent), "sent {sent}");
        assert_eq!(q.len(), 100_000 - sent);
    }

    #[test]
    fn headers_before_a_blob_are_sent_with_more_to_follow() {
        let mut q = WriteQueue::default();
        q.push_bytes(Bytes::from_static(b"h"));
        q.push_file(pack(b"xyz"), 0, 3);
        q.push_bytes(Bytes::from_static(b"t"));
        let mut m = Mock::new(usize::MAX, usize::MAX);
        flush(&mut q, &mut m, u64::MAX).unwrap();
        // The headers, then the blob's bytes, then what follows it.
        assert_eq!(m.more_flags, vec![true, false, false]);
        assert_eq!(m.out, b"hxyzt");
    }

    #[test]
    fn a_pack_shorter_than_its_range_is_an_error_not_a_spin() {
        let mut q = WriteQueue::default();
        q.push_file(pack(b"short"), 0, 1_000);
        let mut m = Mock::new(usize::MAX, usize::MAX);
        let e = flush(&mut q, &mut m, u64::MAX).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(is_pack_read(&e), "{e}");
        // A socket error is not a pack error.
        assert!(!is_pack_read(&io::Error::from(io::ErrorKind::BrokenPipe)));
    }

    /// A range longer than two windows, from an offset off any page boundary, through a
    /// sink whose writes do not divide the window: every byte arrives once, in order.
    #[test]
    fn a_range_crosses_windows_from_an_unaligned_offset() {
        let data: Vec<u8> = (0..6_000_000u32).map(|i| (i % 253) as u8).collect();
        let (start, end) = (1_001u64, 1_001 + 5 * WINDOW as u64 / 2);
        let mut q = WriteQueue::default();
        q.push_file(pack(&data), start, end);
        let mut m = Mock::new(300_007, usize::MAX);
        let (how, sent) = flush(&mut q, &mut m, u64::MAX).unwrap();
        assert_eq!((how, sent), (Flushed::Drained, end - start));
        assert!(m.out == data[start as usize..end as usize]);
    }

    /// A socket that stops taking bytes mid-window keeps the window: the next flush goes
    /// on from the same map, and only the bytes past it map the next.
    #[test]
    fn would_block_keeps_the_window() {
        let data = vec![5u8; 3 * WINDOW];
        let mut q = WriteQueue::default();
        q.push_file(pack(&data), 10, 3 * WINDOW as u64);
        let mut m = Mock::new(100_000, 250_000);
        let (how, _) = flush(&mut q, &mut m, u64::MAX).unwrap();
        assert_eq!(how, Flushed::Blocked);
        assert_eq!(q.window_at(), Some(10));
        m.capacity = 500_000;
        flush(&mut q, &mut m, u64::MAX).unwrap();
        assert_eq!(q.window_at(), Some(10), "remapped within the window");
        m.capacity = usize::MAX;
        flush(&mut q, &mut m, u64::MAX).unwrap();
        assert!(q.is_empty());
        assert_eq!(m.out.len(), 3 * WINDOW - 10);
    }

    /// Past `FULL_WINDOWS` windows alive in the process, new windows are small; sending
    /// maps them so.
    #[test]
    fn many_live_windows_make_new_ones_small() {
        let _count = lock_window_count();
        let f = pack(&vec![1u8; 2 * WINDOW]);
        assert_eq!(Window::len_for(2 * WINDOW as u64), WINDOW);
        let held: Vec<Window> = (0..FULL_WINDOWS)
            .map(|_| Window::map(&f, 0, 4096).unwrap())
            .collect();
        assert_eq!(Window::len_for(2 * WINDOW as u64), SMALL_WINDOW);
        let mut q = WriteQueue::default();
        q.push_file(f, 0, 2 * WINDOW as u64);
        let mut m = Mock::new(usize::MAX, 1);
        let _ = flush(&mut q, &mut m, u64::MAX).unwrap();
        assert_eq!(q.window_at(), Some(0));
        assert_eq!(q.window_len(), Some(SMALL_WINDOW));
        drop(held);
    }

    #[test]
    fn socket_sink_sends_file_ranges_over_a_real_socket() {
        use std::net::{TcpListener, TcpStream};
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let mut q = WriteQueue::default();
        q.push_bytes(Bytes::from_static(b"HTTP"));
        q.push_file(pack(&data), 1_000, 150_000);
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; 4 + 149_000];
            client.read_exact(&mut got).unwrap();
            got
        });
        let mut sink = SocketSink(server.as_raw_fd());
        let (how, sent) = flush(&mut q, &mut sink, u64::MAX).unwrap();
        assert_eq!((how, sent), (Flushed::Drained, 149_004));
        let got = reader.join().unwrap();
        assert_eq!(&got[..4], b"HTTP");
        assert!(got[4..] == data[1_000..150_000]);
    }
}
