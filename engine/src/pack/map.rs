//! Read-only memory maps of pack files (whole, or a window for sending a blob), and of
//! upload files being hashed: the engine's `unsafe` module for maps.
//!
//! Mapping a file is sound only while nobody shrinks or rewrites the mapped range, or a
//! read faults (SIGBUS) or sees bytes change under it. The store keeps that true:
//! - pack bytes below a pack's committed length are never rewritten; shared packs only grow
//!   past the mapped length, and a mapping never extends past what was committed when it
//!   was made;
//! - tails are truncated only in `recover`, at open, before anything is mapped;
//! - the data directory is held under an exclusive lock, so no second Berth process
//!   changes it, and packs are deleted only when no committed row names them (an unlinked
//!   file stays readable through existing maps).

#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use std::sync::Arc;

use memmap2::{Advice, Mmap, MmapOptions, MmapRaw};

/// An open pack file as the engine hands it out to send blobs from. Only the engine makes
/// one (or a caller that takes on this module's rules with [`PackFile::assume_stable`]), so
/// every window onto it maps bytes that stay put.
#[derive(Debug)]
pub struct PackFile {
    id: u64,
    file: File,
}

impl PackFile {
    pub(crate) fn new(id: u64, file: File) -> PackFile {
        PackFile { id, file }
    }

    /// Wraps a file that is not one of an open store's packs (tests of code that sends
    /// blobs).
    ///
    /// # Safety
    /// Nobody may truncate or rewrite `file` while a [`BlobWindow`] onto it lives: a read
    /// through the window would then fault (SIGBUS) or see bytes change under a `&[u8]`.
    pub unsafe fn assume_stable(file: File) -> PackFile {
        PackFile { id: 0, file }
    }

    /// The pack's number (its file name); 0 for a file wrapped by `assume_stable`.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The file itself (metadata, `pread`).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Maps bytes `start..start + len` for reading, pages loaded up front. `UnexpectedEof`
    /// if the file does not hold them all.
    pub fn window(&self, start: u64, len: usize) -> io::Result<BlobWindow> {
        self.holds(start, len)?;
        // SAFETY: the whole range lies below the file's length (checked above), and this
        // module's invariants (or `assume_stable`'s promise) keep those bytes from being
        // truncated or rewritten while the map lives; the map is read-only. (memmap2 maps
        // from the page boundary below `start` and hands out the bytes from `start`.)
        let map = unsafe {
            MmapOptions::new()
                .offset(start)
                .len(len)
                .populate()
                .map(&self.file)?
        };
        Ok(BlobWindow { map })
    }

    /// Reads bytes `start..start + len` through `scratch` and drops them: afterwards they
    /// are in the page cache (until the kernel evicts them), so a [`window`](Self::window)
    /// onto them loads without waiting on the disk. Plain reads, not a map: a thread
    /// loading pages through a map holds the process's address-space lock while it waits
    /// on the disk, and every other thread's `mmap` waits behind it.
    pub fn read_into_cache(&self, start: u64, len: usize, scratch: &mut [u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        if scratch.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no scratch space",
            ));
        }
        let (mut at, end) = (start, start.saturating_add(len as u64));
        while at < end {
            let want = scratch
                .len()
                .min(usize::try_from(end - at).unwrap_or(usize::MAX));
            match self.file.read_at(&mut scratch[..want], at) {
                Ok(0) => return Err(short_pack()),
                Ok(n) => at += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Like [`window`](Self::window), but only if every page is in the page cache already,
    /// so that loading them waits on no disk: `None` otherwise. (`mincore` tells only a
    /// process that owns the file or may write it; to any other it calls every page cached,
    /// so a store whose packs belong to another user gets windows that may wait on disk.)
    pub fn cached_window(&self, start: u64, len: usize) -> io::Result<Option<BlobWindow>> {
        self.holds(start, len)?;
        // SAFETY: as in `window`: the range lies below the file's length, this module's
        // invariants keep its bytes from being truncated or rewritten while the map lives,
        // and the map is read-only.
        let map = unsafe { MmapOptions::new().offset(start).len(len).map(&self.file)? };
        // SAFETY: `map` is a live mapping of exactly `map.len()` bytes from `map.as_ptr()`.
        if !unsafe { all_resident(map.as_ptr(), map.len()) }? {
            return Ok(None);
        }
        // Page-table entries in one call, as `populate` does for `window`. A kernel without
        // MADV_POPULATE_READ (before 5.14) faults the pages in as they are sent instead.
        let _ = map.advise(Advice::PopulateRead);
        Ok(Some(BlobWindow { map }))
    }

    /// `UnexpectedEof` unless the file holds bytes `start..start + len`: a map must never
    /// reach past the end (a read there would fault).
    fn holds(&self, start: u64, len: usize) -> io::Result<()> {
        let end = start
            .checked_add(len as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range overflows"))?;
        if self.file.metadata()?.len() < end {
            return Err(short_pack());
        }
        Ok(())
    }
}

fn short_pack() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "pack file ended before the blob did",
    )
}

/// Whether every page under `ptr..ptr + len` is in memory (`mincore`).
///
/// # Safety
/// `ptr..ptr + len` must lie in one live mapping made by memmap2, which maps from the page
/// boundary at or below the offset asked for, so the page under `ptr` is mapped too.
unsafe fn all_resident(ptr: *const u8, len: usize) -> io::Result<bool> {
    if len == 0 {
        return Ok(true);
    }
    let page = page_size();
    let base = ptr as usize & !(page - 1);
    let span = ptr as usize + len - base;
    let mut pages = vec![0u8; span.div_ceil(page)];
    // SAFETY: `base..base + span` is mapped (the caller's promise), and mincore writes one
    // byte per page of that span into `pages`, which has exactly that many.
    let r = unsafe { libc::mincore(base as *mut libc::c_void, span, pages.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pages.iter().all(|p| p & 1 == 1))
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always supported on Linux.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// Bytes of a pack, mapped read-only: they count towards the process's resident memory
/// while it lives, so callers keep windows small and short-lived.
pub struct BlobWindow {
    map: Mmap,
}

impl BlobWindow {
    /// The bytes asked for, from the window's start.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}

/// A read-only view of the first `len` bytes of a pack file.
pub(crate) struct PackMap {
    map: Mmap,
}

impl PackMap {
    /// Maps `len` bytes of `file`, all of which the caller knows to be committed.
    pub(crate) fn new(file: &File, len: u64) -> io::Result<PackMap> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("pack too large to map"))?;
        // SAFETY: `file` is a pack, which the invariants in this module's docs keep from
        // being truncated or rewritten below `len` (committed bytes) while the map lives;
        // the map is read-only, so no aliasing `&mut` to its memory can exist.
        let map = unsafe { MmapOptions::new().len(len).map(file)? };
        Ok(PackMap { map })
    }

    pub(crate) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }
}

/// A read-only window onto an upload file that is still growing, so its bytes are hashed
/// in place rather than copied out. The window may reach past the file's end (the file
/// grows into it); a slice is handed out only for bytes below the file's length at that
/// moment, so no reference ever covers a page that would fault.
///
/// The bytes of an upload file keep the pack rules while the store is open: data once
/// written is never rewritten (the one later write, at finish, is the headers before
/// `UPLOAD_RESERVED`, outside every slice taken here), and an upload file is never
/// truncated (cancel and expiry unlink it, finish renames it; only `recover` cuts files,
/// at open, before any window exists).
pub(crate) struct UploadWindow {
    file: Arc<File>,
    map: MmapRaw,
    /// File offset of the window's first byte.
    start: u64,
}

impl UploadWindow {
    /// Maps `len` bytes of `file` from offset `start`, past its end if need be.
    pub(crate) fn new(file: Arc<File>, start: u64, len: u64) -> io::Result<UploadWindow> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("window too large"))?;
        let map = MmapOptions::new()
            .offset(start)
            .len(len)
            .map_raw_read_only(&*file)?;
        Ok(UploadWindow { file, map, start })
    }

    /// Bytes `from..to` of the file, if the window spans them and the file holds them.
    pub(crate) fn bytes(&self, from: u64, to: u64) -> io::Result<Option<&[u8]>> {
        let end = self.start + self.map.len() as u64;
        if from < self.start || to > end || from > to {
            return Ok(None);
        }
        if self.file.metadata()?.len() < to {
            return Ok(None);
        }
        // Within the map, which fits in memory, so these fit in usize.
        let (at, n) = ((from - self.start) as usize, (to - from) as usize);
        // SAFETY: `at..at + n` lies inside the mapping (checked above), and below the
        // file's length, so every page of it is backed by the file and readable; the type
        // docs' invariants keep those bytes from being rewritten or truncated while the
        // window lives (files only grow past them), and the map is read-only, so nothing
        // writes through it. The slice borrows `self`, which keeps the mapping alive.
        let b = unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(at), n) };
        Ok(Some(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    /// Writes `data` to a file on disk and drops its pages from the page cache.
    fn evicted_file(data: &[u8]) -> File {
        // Beside the sources, not in a temporary folder that may be memory-backed (tmpfs
        // pages cannot be dropped).
        let mut f = tempfile::tempfile_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        f.write_all(data).unwrap();
        f.sync_all().unwrap();
        // SAFETY: fadvise only advises the kernel about an open descriptor's pages.
        let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(r, 0, "posix_fadvise");
        f
    }

    fn cached(pack: &PackFile, start: u64, len: usize) -> bool {
        pack.cached_window(start, len).unwrap().is_some()
    }

    #[test]
    fn cached_window_tells_pages_on_disk_from_pages_in_memory() {
        let data = vec![9u8; 16 << 20];
        // SAFETY: a file only this test holds; nothing truncates or rewrites it.
        let pack = unsafe { PackFile::assume_stable(evicted_file(&data)) };
        assert!(!cached(&pack, 0, data.len()), "dropped pages");
        // Loading a window brings its pages (and only roughly those) into the cache.
        let w = pack.window(4096 + 17, 100_000).unwrap();
        assert!(w.bytes().iter().all(|&b| b == 9));
        let w = pack.cached_window(4096 + 17, 100_000).unwrap().unwrap();
        assert_eq!(w.bytes().len(), 100_000);
        assert!(w.bytes().iter().all(|&b| b == 9));
        assert!(!cached(&pack, 8 << 20, 8 << 20), "far from the window");
        // Past the end is an error, as for `window`.
        let e = pack
            .cached_window(data.len() as u64 - 10, 20)
            .err()
            .unwrap();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(pack.cached_window(u64::MAX, 1).is_err());
    }

    #[test]
    fn read_into_cache_brings_a_range_into_memory() {
        let data = vec![4u8; 8 << 20];
        // SAFETY: a file only this test holds; nothing truncates or rewrites it.
        let pack = unsafe { PackFile::assume_stable(evicted_file(&data)) };
        assert!(!cached(&pack, 1 << 20, 3 << 20));
        let mut scratch = vec![0u8; 100_000];
        pack.read_into_cache(1 << 20, 3 << 20, &mut scratch)
            .unwrap();
        assert!(cached(&pack, 1 << 20, 3 << 20));
        let e = pack
            .read_into_cache(7 << 20, 2 << 20, &mut scratch)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
