//! The engine's I/O seam: every file the store touches (packs, upload files, the metadata
//! database, their directories) is reached through [`Vfs`] and [`VfsFile`], never through
//! `std::fs` directly.
//!
//! Three implementations exist. [`RealFs`] is the store's folder on a local disk (plain
//! `pread`/`pwrite`/`fdatasync`, read-only maps for sending blobs). [`SimFs`] is a file
//! system in memory that remembers, per file and per directory, what was written and what
//! was made durable, so that a test can "crash" it at any sync point and reopen the store on
//! what a power cut would have left, or make any operation fail the way a disk does (an
//! `fsync` error, `ENOSPC`, `EIO`, a short write, a failing rename). [`ObjectFs`] keeps the
//! `packs/` names in an S3 bucket, shared by every node of a distributed store, and every
//! other name in a local folder: a pack is uploaded whole when synced (or renamed in from an
//! upload file), and read from a node-local cache of whole packs filled on a miss, so maps
//! and the send path are those of a disk.
//!
//! Names are `/`-separated and relative to the store's root (`packs/<id>.pack`,
//! `uploads/<id>`, `meta.redb`): the engine never builds an absolute path, so a backend is
//! free to keep its files anywhere. The engine's rules — bytes synced before the row naming
//! them commits, a pack never rewritten below its committed length — are what a backend has
//! to honour, and [`SimFs`] is how they are tested; a backend shared by several processes
//! says so ([`Vfs::shared`]), and the engine then writes each pack in one batch and repairs
//! no pack at open that another node may be writing.

//! The metadata database runs on the seam too: [`VfsBackend`] is redb's `StorageBackend`
//! over a [`VfsFile`].

mod object;
mod real;
pub mod sim;

use std::fmt;
use std::io;
use std::sync::Arc;

pub use object::ObjectFs;
pub use real::GrowingMap;
pub(crate) use real::RealFile;
pub use real::{fs_space, RealFs};
pub use sim::SimFs;

/// An open file of the store; shared between threads (`pread`/`pwrite` need no cursor).
pub type FileRef = Arc<dyn VfsFile>;

/// How [`Vfs::open`] opens a file. Every file the store creates is owner-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Reading an existing file.
    Read,
    /// Reading and writing an existing file.
    Write,
    /// Reading and writing a file that must not exist yet.
    CreateNew,
    /// Reading and writing, creating the file empty if it does not exist.
    Create,
}

/// A file system holding one store.
pub trait Vfs: Send + Sync + fmt::Debug + 'static {
    /// Opens `name`.
    fn open(&self, name: &str, mode: OpenMode) -> io::Result<FileRef>;
    /// Renames `from` to `to`, replacing `to`; durable once both directories are synced.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Deletes `name`; durable once its directory is synced.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Creates directory `dir` (and its parents) if missing.
    fn create_dir(&self, dir: &str) -> io::Result<()>;
    /// Makes the entries of directory `dir` (`""`: the root) durable: files created,
    /// renamed in or out, deleted.
    fn sync_dir(&self, dir: &str) -> io::Result<()>;
    /// The names of the entries of `dir` (names only, not paths).
    fn list(&self, dir: &str) -> io::Result<Vec<String>>;
    /// The length of `name`.
    fn len_of(&self, name: &str) -> io::Result<u64>;
    /// Takes the store's exclusive lock: `None` if another process holds it. The lock lasts
    /// as long as what is returned.
    fn lock(&self) -> io::Result<Option<Held>>;
    /// Room on the file system holding the store.
    fn space(&self) -> io::Result<FsSpace>;
    /// `name` as the operator knows it (a path), for log messages.
    fn describe(&self, name: &str) -> String;
    /// Whether other processes (other nodes) create and read this store's packs too: the
    /// engine then draws pack ids at random, writes each shared pack in one batch only,
    /// and at open repairs no pack it did not write (another node may be writing it).
    fn shared(&self) -> bool {
        false
    }
    /// Requests to a remote service behind the files (an object store) and their time.
    fn latency(&self) -> Option<crate::LatencySum> {
        None
    }
    /// Makes file `name` hold exactly bytes `at..at + len` of `from`, durable (and, on a
    /// shared store, seen by every node) when this returns: a part of an upload session
    /// another node may continue (`upload/shared.rs`). Written once, never changed.
    fn put_part(&self, name: &str, from: &dyn VfsFile, at: u64, len: u64) -> io::Result<()> {
        self.create_dir(parent(name))?;
        let f = self.open(name, OpenMode::Create)?;
        f.set_len(0)?;
        copy_range(from, at, len, &*f, 0)?;
        f.sync_data()?;
        self.sync_dir(parent(name))
    }
    /// Writes the whole of file `name` (a part [`put_part`](Self::put_part) wrote) into
    /// `into` from offset `at`; returns its length.
    fn fetch_part(&self, name: &str, into: &dyn VfsFile, at: u64) -> io::Result<u64> {
        let f = self.open(name, OpenMode::Read)?;
        let len = f.len()?;
        copy_range(&*f, 0, len, into, at)?;
        Ok(len)
    }
}

/// Copies `len` bytes of `from` at `at` to `to` at `to_at`, a megabyte at a time.
fn copy_range(
    from: &dyn VfsFile,
    at: u64,
    len: u64,
    to: &dyn VfsFile,
    to_at: u64,
) -> io::Result<()> {
    let mut buf = vec![0u8; (1 << 20).min(len) as usize];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        from.read_exact_at(&mut buf[..n], at + done)?;
        to.write_all_at(&buf[..n], to_at + done)?;
        done += n as u64;
    }
    Ok(())
}

/// What the filesystem holding the store says about its room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsSpace {
    /// Bytes an unprivileged writer may still use.
    pub free: u64,
    /// The filesystem's size.
    pub total: u64,
}

/// A lock (or any resource) held until dropped.
pub struct Held(#[allow(dead_code)] Box<dyn Send + Sync>);

impl Held {
    pub(crate) fn new(what: impl Send + Sync + 'static) -> Held {
        Held(Box::new(what))
    }
}

impl fmt::Debug for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Held")
    }
}

/// Whether [`VfsFile::map`] must load the pages now or only map pages already in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapHow {
    /// Map and load every page up front (they may wait on the disk).
    Load,
    /// Map only if every page is in memory already; `None` otherwise.
    IfCached,
    /// Map without loading; pages load as they are read.
    Lazy,
}

/// One file of the store.
// `len` is a length that can fail, not a collection's size: no `is_empty` to go with it.
#[allow(clippy::len_without_is_empty)]
pub trait VfsFile: Send + Sync + fmt::Debug {
    /// `pread(2)`: bytes at `at` into `buf`; how many (0 at the end of the file).
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize>;
    /// `pwrite(2)`: `buf` at `at`, extending the file with zeros if need be; how many were
    /// written (fewer than asked when the disk fills).
    fn write_at(&self, buf: &[u8], at: u64) -> io::Result<usize>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// Seconds since the Unix epoch of the last change (0 if unknown).
    fn modified_secs(&self) -> io::Result<u64>;
    /// Cuts or extends (with zeros) the file to `len`.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync(2)`: the bytes and length written so far survive a crash once this
    /// returns. After it fails, what was written since the last success may be lost even if
    /// a later call succeeds: callers never retry it (see `commit.rs`).
    fn sync_data(&self) -> io::Result<()>;
    /// A read-only view of bytes `at..at + len`, which the caller knows the file holds and
    /// nobody rewrites or truncates while the view lives. A file system without maps
    /// answers with a copy.
    fn map(&self, at: u64, len: usize, how: MapHow) -> io::Result<Option<Mapped>>;
    /// A view over a file still growing (an upload being hashed), if the backend can make
    /// one; readers fall back to `read_at` without it.
    fn map_growing(&self, _at: u64, _len: u64) -> io::Result<Option<GrowingMap>> {
        Ok(None)
    }
    /// Asks for write-back of `at..at + len` to start, without waiting: a hint that makes
    /// the next `sync_data` shorter, never a durability step.
    fn start_writeback(&self, _at: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

impl dyn VfsFile + '_ {
    /// `read_at` until `buf` is full; `UnexpectedEof` if the file ends first.
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut at: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, at) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file ended before the bytes asked for",
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    at += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `write_at` until all of `buf` is written.
    pub fn write_all_at(&self, mut buf: &[u8], mut at: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, at) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    buf = &buf[n..];
                    at += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Bytes of a file, mapped read-only or copied out.
pub struct Mapped(MappedInner);

enum MappedInner {
    Map(memmap2::Mmap),
    Copy(Vec<u8>),
}

impl Mapped {
    pub(crate) fn copied(bytes: Vec<u8>) -> Mapped {
        Mapped(MappedInner::Copy(bytes))
    }

    pub(crate) fn of_map(map: memmap2::Mmap) -> Mapped {
        Mapped(MappedInner::Map(map))
    }

    /// The bytes asked for.
    pub fn bytes(&self) -> &[u8] {
        match &self.0 {
            MappedInner::Map(m) => m,
            MappedInner::Copy(v) => v,
        }
    }
}

/// redb's `StorageBackend` over a [`VfsFile`], so the metadata database runs on the seam
/// (and on [`SimFs`] in the crash tests). It takes no lock of its own: the store's lock
/// ([`Vfs::lock`]) already keeps a second process out.
#[derive(Debug)]
pub(crate) struct VfsBackend(pub(crate) FileRef);

impl redb::StorageBackend for VfsBackend {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read_exact_at(out, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_all_at(data, offset)
    }
}

/// The directory holding `name` (`""`: the root).
pub(crate) fn parent(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(d, _)| d)
}
