//! Read-only memory maps of pack files: the engine's one `unsafe` module.
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

use memmap2::{Mmap, MmapOptions};

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
