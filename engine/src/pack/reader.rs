//! Reading packs: a cache of open pack files and their read-only maps.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use super::format::pack_file_name;
use super::map::{PackFile, PackMap};
use crate::gc::RETIRE_GRACE_SECS;
use crate::{BlobLoc, StoreError};

/// Past this many cached packs, entries nobody holds are dropped (bounding open fds).
const MAX_CACHED: usize = 4096;

struct PackEntry {
    file: Arc<PackFile>,
    /// Grows (by replacing it) when a read ends past it; readers keep the old one alive.
    map: RwLock<Option<Arc<PackMap>>>,
}

/// Open pack files by id. Cheap to share; lookups take a read lock only.
pub(crate) struct PackCache {
    dir: PathBuf,
    entries: RwLock<HashMap<u64, Arc<PackEntry>>>,
    /// Packs whose files garbage collection deleted, and when: kept open (so found by id)
    /// until [`RETIRE_GRACE_SECS`] have passed, for lookups made just before the deletion.
    retired: Mutex<HashMap<u64, u64>>,
}

impl PackCache {
    pub(crate) fn new(dir: PathBuf) -> PackCache {
        PackCache {
            dir,
            entries: RwLock::new(HashMap::new()),
            retired: Mutex::new(HashMap::new()),
        }
    }

    /// Pack `pack`'s file is about to be deleted, at `now` (seconds): opens it if it is not
    /// open, so that lookups keep finding it, and forgets it once [`RETIRE_GRACE_SECS`]
    /// have passed.
    pub(crate) fn retire(&self, pack: u64, now: u64) {
        // Marked first, so that no eviction drops the entry opened just below.
        self.lock_retired().insert(pack, now);
        // A pack that cannot be opened has no bytes to keep reachable.
        let _ = self.entry(pack);
    }

    /// Closes retired packs past their grace at `now`; their disk space is then free once no pull
    /// holds them.
    pub(crate) fn purge_retired(&self, now: u64) {
        let mut done = Vec::new();
        self.lock_retired().retain(|&id, &mut at| {
            let over = now.saturating_sub(at) >= RETIRE_GRACE_SECS;
            if over {
                done.push(id);
            }
            !over
        });
        if done.is_empty() {
            return;
        }
        // Not under the retired lock: `entry` takes the two the other way round.
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        for id in done {
            entries.remove(&id);
        }
    }

    fn lock_retired(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.retired.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry(&self, pack: u64) -> Result<Arc<PackEntry>, StoreError> {
        if let Some(e) = self.read_entries().get(&pack) {
            return Ok(e.clone());
        }
        let path = self.dir.join(pack_file_name(pack));
        let file = File::open(&path)
            .map_err(|e| StoreError::io(format!("open pack {}", path.display()), e))?;
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_CACHED {
            let retired = self.lock_retired();
            entries.retain(|id, e| Arc::strong_count(e) > 1 || retired.contains_key(id));
        }
        let e = entries
            .entry(pack)
            .or_insert_with(|| {
                Arc::new(PackEntry {
                    file: Arc::new(PackFile::new(pack, file)),
                    map: RwLock::new(None),
                })
            })
            .clone();
        Ok(e)
    }

    fn read_entries(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u64, Arc<PackEntry>>> {
        // A poisoned lock only means another reader panicked mid-lookup; the map itself is
        // never left half-updated (single inserts and retains), so keep using it.
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The open pack file, for the server to send blobs from.
    pub(crate) fn file(&self, pack: u64) -> Result<Arc<PackFile>, StoreError> {
        Ok(self.entry(pack)?.file.clone())
    }

    /// Copies a blob out of its pack's map.
    pub(crate) fn read(&self, loc: BlobLoc) -> Result<Vec<u8>, StoreError> {
        let end = loc
            .offset
            .checked_add(loc.len)
            .ok_or_else(|| StoreError::new(format!("blob location {loc:?} overflows")))?;
        let map = self.map_covering(loc.pack, end)?;
        let bytes = map.bytes();
        // `map_covering` guarantees `map.len() >= end`, and `end` fits in memory since the
        // map does, so these casts and the slice are in range.
        Ok(bytes[loc.offset as usize..end as usize].to_vec())
    }

    /// A map of `pack` at least `end` bytes long.
    pub(crate) fn map_covering(&self, pack: u64, end: u64) -> Result<Arc<PackMap>, StoreError> {
        let e = self.entry(pack)?;
        {
            let m = e.map.read().unwrap_or_else(|p| p.into_inner());
            if let Some(m) = m.as_ref().filter(|m| m.len() >= end) {
                return Ok(m.clone());
            }
        }
        let mut m = e.map.write().unwrap_or_else(|p| p.into_inner());
        if let Some(cur) = m.as_ref().filter(|m| m.len() >= end) {
            return Ok(cur.clone());
        }
        let file_len = e
            .file
            .file()
            .metadata()
            .map_err(|err| StoreError::io(format!("stat pack {pack}"), err))?
            .len();
        if file_len < end {
            return Err(StoreError::new(format!(
                "pack {pack} holds {file_len} bytes, a blob ends at {end} (run `berth check`)"
            )));
        }
        // Maps the whole file as it is now: runtime never truncates a pack (only `open`
        // does, before any map exists), so bytes past `end` stay valid while mapped.
        let new = Arc::new(
            PackMap::new(e.file.file(), file_len)
                .map_err(|err| StoreError::io(format!("map pack {pack}"), err))?,
        );
        *m = Some(new.clone());
        Ok(new)
    }
}
