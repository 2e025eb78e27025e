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

use memmap2::{Mmap, MmapOptions, MmapRaw};

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
        let end = start
            .checked_add(len as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "window overflows"))?;
        if self.file.metadata()?.len() < end {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "pack file ended before the blob did",
            ));
        }
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
