//! A store whose packs live in S3-compatible object storage and everything else in a local
//! folder: the distributed mode's blob bytes, behind the same I/O seam as a disk.
//!
//! Names under `packs/` and `parts/` (the durable parts of upload sessions, which any
//! node may continue) are objects with the same key in the bucket; every other name
//! (`uploads/…`, `meta.redb`, `lock`) goes to the local [`Vfs`] unchanged. The engine is
//! not told: its rules already fit a bucket.
//! - A pack is written in two ways. A large blob's upload file becomes a pack by a rename,
//!   which here uploads the file (streamed, multipart) before it returns; the shared pack
//!   of small blobs is written in place and `sync_data` uploads it whole
//!   (`object/file.rs` says what that costs). Either way the object holds the bytes
//!   before the row naming them commits, which is the engine's durability rule.
//! - A pack is never rewritten below its committed length, and ids are never reused, so a
//!   local copy of a pack is valid forever: reads are served from whole copies kept in
//!   `cache/packs/` of the local folder, so maps and `pread` work as on a disk
//!   (`object/cache.rs`).
//! - Directory entries of `packs/` need no sync: an object exists once its upload
//!   completed, and is gone once deleted.
//!
//! Errors are `io::Error`s whose kind says what the engine does: an unreachable store is
//! `NotConnected`, which the engine answers as unavailable (503, `Retry-After`), a missing
//! object `NotFound`, refused credentials `PermissionDenied`; each message names the key.

mod bucket;
mod cache;
mod file;

use std::io;
use std::sync::Arc;

use bucket::Bucket;
use cache::Cache;
use file::{missing, PackHandle};

use super::{FileRef, FsSpace, Held, OpenMode, Vfs, VfsFile};
use crate::objects::Objects;
use crate::pack::format::{PACKS, PARTS};

/// Packs in a bucket, the rest of the store in a local folder (normally a
/// [`RealFs`](super::RealFs) on the node's data folder), with up to `cache_bytes` of
/// packs copied locally for reading.
pub struct ObjectFs {
    cache: Arc<Cache>,
    cache_bytes: u64,
}

impl std::fmt::Debug for ObjectFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectFs")
            .field("packs", &self.cache.bucket().describe(PACKS))
            .field("local", &self.cache.local())
            .field("cache_bytes", &self.cache_bytes)
            .finish()
    }
}

impl ObjectFs {
    /// The store of `local` with its packs in `objects`' bucket. Sends nothing and
    /// touches no file yet. `cache_bytes` bounds the local copies of packs; it should
    /// leave room on the local disk for uploads in progress and the free-space reserve.
    pub fn new(local: Arc<dyn Vfs>, objects: Objects, cache_bytes: u64) -> ObjectFs {
        ObjectFs {
            cache: Arc::new(Cache::new(local, Bucket::new(objects), cache_bytes)),
            cache_bytes,
        }
    }

    fn local(&self) -> &dyn Vfs {
        self.cache.local()
    }

    fn bucket(&self) -> &Bucket {
        self.cache.bucket()
    }
}

/// The pack file `name` stands for (`packs/<file>`), if it is under `packs/`; a name
/// deeper than that is refused, as the bucket could not tell it from a pack.
fn pack_file(name: &str) -> io::Result<Option<&str>> {
    let Some(file) = name.strip_prefix(PACKS).and_then(|r| r.strip_prefix('/')) else {
        return Ok(None);
    };
    if file.is_empty() || file.contains('/') || file == "." || file == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name}: not a pack file name"),
        ));
    }
    Ok(Some(file))
}

/// Whether `dir` is `packs/` itself, which the bucket stands for.
fn is_packs_dir(dir: &str) -> bool {
    dir.trim_end_matches('/') == PACKS
}

/// Whether `dir` is `parts/` itself, which the bucket stands for.
fn is_parts_dir(dir: &str) -> bool {
    dir.trim_end_matches('/') == PARTS
}

/// The object key of `name` if it is an upload part (`parts/<file>`); a deeper name is
/// refused, as for packs.
fn part_key(name: &str) -> io::Result<Option<&str>> {
    let Some(file) = name.strip_prefix(PARTS).and_then(|r| r.strip_prefix('/')) else {
        return Ok(None);
    };
    if file.is_empty() || file.contains('/') || file == "." || file == ".." {
        return Err(part_name_refused(name));
    }
    Ok(Some(name))
}

impl Vfs for ObjectFs {
    /// Every node of the store reads and writes the bucket's packs.
    fn shared(&self) -> bool {
        true
    }

    fn latency(&self) -> Option<crate::LatencySum> {
        Some(self.bucket().latency())
    }

    /// Written once and read whole, by [`put_part`](Vfs::put_part) and
    /// [`fetch_part`](Vfs::fetch_part), straight to and from the bucket.
    fn put_part(&self, name: &str, from: &dyn VfsFile, at: u64, len: u64) -> io::Result<()> {
        match part_key(name)? {
            Some(key) => self.bucket().upload_range(key, from, at, len),
            None => Err(part_name_refused(name)),
        }
    }

    fn fetch_part(&self, name: &str, into: &dyn VfsFile, at: u64) -> io::Result<u64> {
        match part_key(name)? {
            Some(key) => self.bucket().download_at(key, into, at),
            None => Err(part_name_refused(name)),
        }
    }

    fn open(&self, name: &str, mode: OpenMode) -> io::Result<FileRef> {
        if part_key(name)?.is_some() {
            return Err(not_a_part(name));
        }
        let Some(file) = pack_file(name)? else {
            return self.local().open(name, mode);
        };
        Ok(match mode {
            // The copy itself: nothing to intercept on a file only read.
            OpenMode::Read => self.cache.open(file, false)?,
            OpenMode::Write => Arc::new(PackHandle::open(&self.cache, file)?),
            OpenMode::CreateNew => Arc::new(PackHandle::create(&self.cache, file, true)?),
            OpenMode::Create => Arc::new(PackHandle::create(&self.cache, file, false)?),
        })
    }

    /// A local file renamed into `packs/` is uploaded as that object (complete when this
    /// returns) and then moved into the cache. Renames out of `packs/` or within it are
    /// not something the engine does, and a bucket has no cheap way to do them.
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        match (pack_file(from)?, pack_file(to)?) {
            (None, None) => self.local().rename(from, to),
            (None, Some(file)) => {
                let f = self.local().open(from, OpenMode::Read)?;
                let len = f.len()?;
                self.bucket().upload(&Bucket::key(file), &*f, len)?;
                drop(f);
                self.cache.adopt(from, file, len)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("rename {from} to {to}: packs in a bucket are only renamed into"),
            )),
        }
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        if let Some(key) = part_key(name)? {
            return self.bucket().delete(key);
        }
        let Some(file) = pack_file(name)? else {
            return self.local().remove(name);
        };
        self.bucket().delete(&Bucket::key(file))?;
        self.cache.forget(file)
    }

    fn create_dir(&self, dir: &str) -> io::Result<()> {
        if is_packs_dir(dir) || is_parts_dir(dir) {
            return Ok(());
        }
        self.local().create_dir(dir)
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        if is_packs_dir(dir) || is_parts_dir(dir) {
            return Ok(());
        }
        self.local().sync_dir(dir)
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        if is_packs_dir(dir) {
            return self.bucket().list_dir(PACKS);
        }
        if is_parts_dir(dir) {
            return self.bucket().list_dir(PARTS);
        }
        self.local().list(dir)
    }

    /// The object's length: what is durable, whatever a local copy holds past it.
    fn len_of(&self, name: &str) -> io::Result<u64> {
        if let Some(key) = part_key(name)? {
            return self
                .bucket()
                .head(key)?
                .ok_or_else(|| missing(self.bucket(), key));
        }
        let Some(file) = pack_file(name)? else {
            return self.local().len_of(name);
        };
        let key = Bucket::key(file);
        self.bucket()
            .head(&key)?
            .ok_or_else(|| missing(self.bucket(), &key))
    }

    fn lock(&self) -> io::Result<Option<Held>> {
        self.local().lock()
    }

    fn space(&self) -> io::Result<FsSpace> {
        self.local().space()
    }

    fn describe(&self, name: &str) -> String {
        match pack_file(name) {
            Ok(Some(file)) => self.bucket().describe(&Bucket::key(file)),
            _ if is_packs_dir(name) => self.bucket().describe(PACKS),
            _ => self.local().describe(name),
        }
    }
}

/// Upload parts are whole objects, written and read only through the part calls.
fn not_a_part(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{name}: upload parts are written and read whole (put_part, fetch_part)"),
    )
}

/// A name the part calls cannot take: only `parts/<file>` is an upload part.
fn part_name_refused(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{name}: not an upload part name (parts/<file>)"),
    )
}
