//! The store's folder on a local disk: `std::fs` files, read-only memory maps, and the two
//! syscalls outside `std` the engine makes on files (`mincore`, `sync_file_range`). The
//! engine's `unsafe` for files lives here alone.
//!
//! Mapping a file is sound only while nobody shrinks or rewrites the mapped range, or a
//! read faults (SIGBUS) or sees bytes change under it. The store keeps that true:
//! - pack bytes below a pack's committed length are never rewritten; shared packs only grow
//!   past the mapped length, and a mapping never extends past what was committed when it
//!   was made;
//! - tails are truncated only in `recover`, at open, before anything is mapped;
//! - the data directory is held under an exclusive lock, so no second Berth process
//!   changes it, and packs are deleted only when no committed row names them (an unlinked
//!   file stays readable through existing maps);
//! - an upload file's data, once written, is never rewritten (the one later write, at
//!   finish, is the headers before `UPLOAD_RESERVED`, outside every view taken for hashing),
//!   and an upload file is never truncated while the store is open.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use memmap2::{Advice, MmapOptions, MmapRaw};

use super::FsSpace;
use super::{FileRef, Held, MapHow, Mapped, OpenMode, Vfs, VfsFile};
use crate::descriptors::{DIR_MODE, FILE_MODE};

/// The store in a folder of the local file system.
#[derive(Debug)]
pub struct RealFs {
    root: PathBuf,
    /// Directories opened once, so that syncing their entries needs no descriptor then (a
    /// commit must not fail for want of one).
    dirs: Mutex<HashMap<String, Arc<File>>>,
}

impl RealFs {
    /// The store in `root` (created by [`Vfs::create_dir`]`("")`).
    pub fn new(root: &Path) -> RealFs {
        RealFs {
            root: root.to_path_buf(),
            dirs: Mutex::new(HashMap::new()),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        if name.is_empty() {
            self.root.clone()
        } else {
            self.root.join(name)
        }
    }

    fn dir(&self, dir: &str) -> io::Result<Arc<File>> {
        let mut dirs = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = dirs.get(dir) {
            return Ok(d.clone());
        }
        let d = Arc::new(File::open(self.path(dir))?);
        dirs.insert(dir.to_owned(), d.clone());
        Ok(d)
    }
}

impl Vfs for RealFs {
    fn open(&self, name: &str, mode: OpenMode) -> io::Result<FileRef> {
        let mut o = OpenOptions::new();
        o.mode(FILE_MODE).read(true);
        match mode {
            OpenMode::Read => {}
            OpenMode::Write => {
                o.write(true);
            }
            OpenMode::CreateNew => {
                o.write(true).create_new(true);
            }
            OpenMode::Create => {
                o.write(true).create(true).truncate(false);
            }
        }
        Ok(Arc::new(RealFile(o.open(self.path(name))?)))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path(from), self.path(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.path(name))
    }

    fn create_dir(&self, dir: &str) -> io::Result<()> {
        // Owner-only; an existing one keeps its mode (the server warns about loose ones).
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(self.path(dir))?;
        self.dir(dir).map(drop)
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        self.dir(dir)?.sync_all()
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(self.path(dir))? {
            if let Some(n) = e?.file_name().to_str() {
                names.push(n.to_owned());
            }
        }
        Ok(names)
    }

    fn len_of(&self, name: &str) -> io::Result<u64> {
        Ok(std::fs::metadata(self.path(name))?.len())
    }

    fn lock(&self) -> io::Result<Option<Held>> {
        let f = OpenOptions::new()
            .mode(FILE_MODE)
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.path("lock"))?;
        match f.try_lock() {
            Ok(()) => {
                // The holder's pid, for the message a second process gives (`recover::lock`).
                f.set_len(0)?;
                f.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)?;
                Ok(Some(Held::new(f)))
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn space(&self) -> io::Result<FsSpace> {
        fs_space(&self.root)
    }

    fn describe(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// `statvfs(2)` of the filesystem holding `dir`.
pub fn fs_space(dir: &Path) -> std::io::Result<FsSpace> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` points to writable memory the size of a
    // `statvfs`, which the call fills on success.
    let r = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised the whole struct.
    let st = unsafe { st.assume_init() };
    // The field types differ between targets (u32 on some): widen, never narrow.
    #[allow(clippy::useless_conversion)]
    let (frsize, bavail, blocks) = (
        u64::from(st.f_frsize),
        u64::from(st.f_bavail),
        u64::from(st.f_blocks),
    );
    Ok(FsSpace {
        free: bavail.saturating_mul(frsize),
        total: blocks.saturating_mul(frsize),
    })
}

/// A file of [`RealFs`].
#[derive(Debug)]
pub(crate) struct RealFile(pub(crate) File);

impl VfsFile for RealFile {
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        self.0.read_at(buf, at)
    }

    fn write_at(&self, buf: &[u8], at: u64) -> io::Result<usize> {
        self.0.write_at(buf, at)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn modified_secs(&self) -> io::Result<u64> {
        Ok(self
            .0
            .metadata()?
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs()))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn map(&self, at: u64, len: usize, how: MapHow) -> io::Result<Option<Mapped>> {
        if len == 0 {
            // A zero-length map is an error for mmap(2); nothing to map anyway.
            return Ok(Some(Mapped::copied(Vec::new())));
        }
        let mut o = MmapOptions::new();
        o.offset(at).len(len);
        if how == MapHow::Load {
            o.populate();
        }
        // SAFETY: the caller knows the file holds `at..at + len` and that nobody truncates or
        // rewrites those bytes while the map lives (this module's invariants, or
        // `PackFile::assume_stable`'s promise); the map is read-only. (memmap2 maps from the
        // page boundary below `at` and hands out the bytes from `at`.)
        let map = unsafe { o.map(&self.0)? };
        if how == MapHow::IfCached {
            // SAFETY: `map` is a live mapping of exactly `map.len()` bytes from `map.as_ptr()`.
            if !unsafe { all_resident(map.as_ptr(), map.len()) }? {
                return Ok(None);
            }
            // Page-table entries in one call, as `populate` does for `Load`. A kernel without
            // MADV_POPULATE_READ (before 5.14) faults the pages in as they are sent instead.
            let _ = map.advise(Advice::PopulateRead);
        }
        Ok(Some(Mapped::of_map(map)))
    }

    fn map_growing(&self, at: u64, len: u64) -> io::Result<Option<GrowingMap>> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("window too large"))?;
        let map = MmapOptions::new()
            .offset(at)
            .len(len)
            .map_raw_read_only(&self.0)?;
        Ok(Some(GrowingMap { map, start: at }))
    }

    #[cfg(target_os = "linux")]
    fn start_writeback(&self, at: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let off = i64::try_from(at).map_err(|_| io::Error::other("offset out of range"))?;
        let n = i64::try_from(len).map_err(|_| io::Error::other("length out of range"))?;
        // No SYNC_FILE_RANGE_WAIT_* flag: the call does not wait, and does not consume
        // write-back errors (the file's error state is not advanced), which the final
        // `fdatasync` still reports.
        // SAFETY: sync_file_range(2) takes a descriptor and three integers and touches no
        // memory of ours; `self.0` is borrowed for the call, so the descriptor stays open
        // (and names this file) until it returns.
        let r = unsafe {
            libc::sync_file_range(self.0.as_raw_fd(), off, n, libc::SYNC_FILE_RANGE_WRITE)
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// A read-only window onto a file that is still growing (an upload being hashed), so its
/// bytes are hashed in place rather than copied out. The window may reach past the file's
/// end (the file grows into it); a slice is handed out only for bytes below the file's
/// length at that moment, so no reference ever covers a page that would fault.
pub struct GrowingMap {
    map: MmapRaw,
    /// File offset of the window's first byte.
    start: u64,
}

impl GrowingMap {
    /// Bytes `from..to` of `file` (the file this window maps), if the window spans them and
    /// the file holds them.
    pub fn bytes(&self, file: &dyn VfsFile, from: u64, to: u64) -> io::Result<Option<&[u8]>> {
        let end = self.start + self.map.len() as u64;
        if from < self.start || to > end || from > to {
            return Ok(None);
        }
        if file.len()? < to {
            return Ok(None);
        }
        // Within the map, which fits in memory, so these fit in usize.
        let (at, n) = ((from - self.start) as usize, (to - from) as usize);
        // SAFETY: `at..at + n` lies inside the mapping (checked above), and below the
        // file's length, so every page of it is backed by the file and readable; the module
        // docs' invariants keep those bytes from being rewritten or truncated while the
        // window lives (files only grow past them), and the map is read-only, so nothing
        // writes through it. The slice borrows `self`, which keeps the mapping alive.
        let b = unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(at), n) };
        Ok(Some(b))
    }
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
