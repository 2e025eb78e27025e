//! Views of pack files for sending and reading blobs: a window onto a blob (loaded up front,
//! or only if its pages are cached), and a map of a pack's committed bytes. The maps
//! themselves are the I/O seam's (`vfs`): read-only memory maps on a real disk, copies on a
//! simulated one. The rules that keep a map sound (pack bytes below the committed length are
//! never rewritten or truncated while the store is open) are stated in `vfs/real.rs`.

// `PackFile::assume_stable` hands the map rules to its caller.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::sync::Arc;

use crate::vfs::{FileRef, MapHow, Mapped, RealFile, VfsFile};

/// An open pack file as the engine hands it out to send blobs from. Only the engine makes
/// one (or a caller that takes on the map rules with [`PackFile::assume_stable`]), so
/// every window onto it maps bytes that stay put.
#[derive(Debug)]
pub struct PackFile {
    id: u64,
    file: FileRef,
}

impl PackFile {
    pub(crate) fn new(id: u64, file: FileRef) -> PackFile {
        PackFile { id, file }
    }

    /// Wraps a file that is not one of an open store's packs (tests of code that sends
    /// blobs).
    ///
    /// # Safety
    /// Nobody may truncate or rewrite `file` while a [`BlobWindow`] onto it lives: a read
    /// through the window would then fault (SIGBUS) or see bytes change under a `&[u8]`.
    pub unsafe fn assume_stable(file: File) -> PackFile {
        PackFile {
            id: 0,
            file: Arc::new(RealFile(file)),
        }
    }

    /// The pack's number (its file name); 0 for a file wrapped by `assume_stable`.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The file itself.
    pub fn file(&self) -> &dyn VfsFile {
        &*self.file
    }

    /// Maps bytes `start..start + len` for reading, pages loaded up front. `UnexpectedEof`
    /// if the file does not hold them all.
    pub fn window(&self, start: u64, len: usize) -> io::Result<BlobWindow> {
        self.holds(start, len)?;
        let map = self.file.map(start, len, MapHow::Load)?;
        map.map(|map| BlobWindow { map })
            .ok_or_else(|| io::Error::other("the file system made no map"))
    }

    /// Reads bytes `start..start + len` through `scratch` and drops them: afterwards they
    /// are in the page cache (until the kernel evicts them), so a [`window`](Self::window)
    /// onto them loads without waiting on the disk. Plain reads, not a map: a thread
    /// loading pages through a map holds the process's address-space lock while it waits
    /// on the disk, and every other thread's `mmap` waits behind it.
    pub fn read_into_cache(&self, start: u64, len: usize, scratch: &mut [u8]) -> io::Result<()> {
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
        let map = self.file.map(start, len, MapHow::IfCached)?;
        Ok(map.map(|map| BlobWindow { map }))
    }

    /// `UnexpectedEof` unless the file holds bytes `start..start + len`: a map must never
    /// reach past the end (a read there would fault).
    fn holds(&self, start: u64, len: usize) -> io::Result<()> {
        let end = start
            .checked_add(len as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range overflows"))?;
        if self.file.len()? < end {
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

/// Bytes of a pack, mapped read-only: they count towards the process's resident memory
/// while it lives, so callers keep windows small and short-lived.
pub struct BlobWindow {
    map: Mapped,
}

impl BlobWindow {
    /// The bytes asked for, from the window's start.
    pub fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }
}

/// A read-only view of the first `len` bytes of a pack file.
pub(crate) struct PackMap {
    map: Mapped,
}

impl PackMap {
    /// Maps `len` bytes of `file`, all of which the caller knows to be committed.
    pub(crate) fn new(file: &dyn VfsFile, len: u64) -> io::Result<PackMap> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("pack too large to map"))?;
        let map = file
            .map(0, len, MapHow::Lazy)?
            .ok_or_else(|| io::Error::other("the file system made no map"))?;
        Ok(PackMap { map })
    }

    pub(crate) fn len(&self) -> u64 {
        self.map.bytes().len() as u64
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.map.bytes()
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
