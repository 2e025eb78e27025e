//! Reading packs: a cache of open pack files and their read-only maps, at most
//! `EngineOptions::open_packs` of them (each holds a descriptor, and a map once read), the
//! least recently used closed first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use super::format::pack_name;
use super::map::{PackFile, PackMap};
use crate::descriptors::{is_exhaustion, DescriptorAlarm};
use crate::vfs::{FileRef, OpenMode, Vfs};
use crate::{BlobLoc, StoreError};

/// How long (seconds) a retired pack stays open in the pack cache after its file is
/// unlinked.
pub(crate) const RETIRE_GRACE_SECS: u64 = 60;

struct PackEntry {
    file: Arc<PackFile>,
    /// Grows (by replacing it) when a read ends past it; readers keep the old one alive.
    map: RwLock<Option<Arc<PackMap>>>,
    /// The cache's clock at the last lookup: the least recent are closed first.
    used: AtomicU64,
}

/// Open pack files by id. Cheap to share; lookups take a read lock only.
///
/// Closing a pack only drops the cache's hold: a send or read in flight holds the
/// `PackFile` (or `PackMap`) it uses, and the descriptor closes when the last holder lets go.
pub(crate) struct PackCache {
    fs: Arc<dyn Vfs>,
    entries: RwLock<HashMap<u64, Arc<PackEntry>>>,
    /// Packs whose files garbage collection deleted, and when: kept open (so found by id)
    /// until [`RETIRE_GRACE_SECS`] have passed, for lookups made just before the deletion.
    retired: Mutex<HashMap<u64, u64>>,
    /// Packs kept open at most (retired ones are never closed early, so may pass it).
    budget: usize,
    /// Ticks once per lookup, for `PackEntry::used`.
    clock: AtomicU64,
    alarm: Option<DescriptorAlarm>,
}

impl PackCache {
    pub(crate) fn new(
        fs: Arc<dyn Vfs>,
        budget: usize,
        alarm: Option<DescriptorAlarm>,
    ) -> PackCache {
        PackCache {
            fs,
            entries: RwLock::new(HashMap::new()),
            retired: Mutex::new(HashMap::new()),
            budget: budget.max(1),
            clock: AtomicU64::new(0),
            alarm,
        }
    }

    /// Opens `name` as `mode` says. Out of descriptors, it tells the alarm, closes every
    /// cached pack not retired (those a read holds stay open until it ends) and tries once
    /// more: the cache is what holds most descriptors a store has.
    pub(crate) fn open_file(
        &self,
        name: &str,
        mode: OpenMode,
        what: &str,
    ) -> Result<FileRef, StoreError> {
        self.with_room(&format!("{what} {}", self.fs.describe(name)), || {
            self.fs.open(name, mode)
        })
    }

    /// `open`, and once more after closing the cached packs if it found no descriptor;
    /// each time it finds none rings the alarm.
    fn with_room<T>(
        &self,
        what: &str,
        mut open: impl FnMut() -> std::io::Result<T>,
    ) -> Result<T, StoreError> {
        let mut retried = false;
        loop {
            match open() {
                Ok(f) => return Ok(f),
                Err(e) if is_exhaustion(&e) => {
                    if let Some(a) = &self.alarm {
                        a.ring(what, &e);
                    }
                    if retried {
                        return Err(StoreError::io(what, e));
                    }
                    self.close_all();
                    retried = true;
                }
                Err(e) => return Err(StoreError::io(what, e)),
            }
        }
    }

    /// Closes every cached pack not retired.
    fn close_all(&self) {
        let retired = self.lock_retired();
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.retain(|id, _| retired.contains_key(id));
    }

    /// Packs open in the cache now.
    pub(crate) fn open_count(&self) -> usize {
        self.read_entries().len()
    }

    /// Pack `pack`'s file is about to be deleted, at `now` (seconds): opens it if it is not
    /// open, so that lookups keep finding it, and forgets it once [`RETIRE_GRACE_SECS`]
    /// have passed. Opens no more retired packs than the budget: a collection deleting
    /// thousands would otherwise hold as many descriptors for the grace; a pull that looked
    /// one of the others up just before finds it gone, as if it had raced the deletion.
    pub(crate) fn retire(&self, pack: u64, now: u64) {
        // Marked first, so that no eviction drops the entry opened just below.
        let retired = {
            let mut r = self.lock_retired();
            r.insert(pack, now);
            r.len()
        };
        if retired <= self.budget || self.read_entries().contains_key(&pack) {
            // A pack that cannot be opened has no bytes to keep reachable.
            let _ = self.entry(pack);
        }
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
        // The retired lock is released by now (`entry` and `close_all` take it first).
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        for id in done {
            entries.remove(&id);
        }
    }

    fn lock_retired(&self) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        self.retired.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry(&self, pack: u64) -> Result<Arc<PackEntry>, StoreError> {
        let now = self.clock.fetch_add(1, Relaxed);
        if let Some(e) = self.read_entries().get(&pack) {
            e.used.store(now, Relaxed);
            return Ok(e.clone());
        }
        let name = pack_name(pack);
        let file = self.open_file(&name, OpenMode::Read, "open pack")?;
        // Retired packs first, as `purge_retired` takes the two locks.
        let retired = self.lock_retired();
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if !entries.contains_key(&pack) && entries.len() >= self.budget {
            close_least_recent(&mut entries, &retired, self.budget);
        }
        drop(retired);
        let e = entries
            .entry(pack)
            .or_insert_with(|| {
                Arc::new(PackEntry {
                    file: Arc::new(PackFile::new(pack, file)),
                    map: RwLock::new(None),
                    used: AtomicU64::new(now),
                })
            })
            .clone();
        e.used.store(now, Relaxed);
        Ok(e)
    }

    fn read_entries(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u64, Arc<PackEntry>>> {
        // A poisoned lock only means another reader panicked mid-lookup; the map itself is
        // never left half-updated (single inserts and retains), so keep using it.
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The ids of the packs open in the cache (unit tests).
    #[cfg(test)]
    pub(crate) fn open_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.read_entries().keys().copied().collect();
        ids.sort_unstable();
        ids
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
            .len()
            .map_err(|err| StoreError::io(format!("stat pack {pack}"), err))?;
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

/// Makes room for one more pack in a full cache: closes the least recently used packs not
/// retired, a sixteenth of the budget at once (at least one), so that a run of misses does
/// not scan the cache on every open.
fn close_least_recent(
    entries: &mut HashMap<u64, Arc<PackEntry>>,
    retired: &HashMap<u64, u64>,
    budget: usize,
) {
    let mut ages: Vec<(u64, u64)> = entries
        .iter()
        .filter(|(id, _)| !retired.contains_key(id))
        .map(|(id, e)| (e.used.load(Relaxed), *id))
        .collect();
    let over = (entries.len() + 1).saturating_sub(budget);
    let n = over.max(budget / 16).max(1).min(ages.len());
    if n == 0 {
        return;
    }
    if n < ages.len() {
        ages.select_nth_unstable(n - 1);
    }
    for (_, id) in &ages[..n] {
        entries.remove(id);
    }
}

/// A blob's bytes as a `Read`, by `pread` from its pack: for the work that streams whole
/// blobs off the event loops (listing a layer, the Download's checksums) without mapping or
/// copying them whole. It holds its pack file, so the file stays open while it reads even
/// if the cache closes it meanwhile.
pub struct BlobReader {
    file: Arc<PackFile>,
    pos: u64,
    end: u64,
}

impl BlobReader {
    pub(crate) fn new(cache: &PackCache, loc: BlobLoc) -> Result<BlobReader, StoreError> {
        let end = loc
            .offset
            .checked_add(loc.len)
            .ok_or_else(|| StoreError::new(format!("blob location {loc:?} overflows")))?;
        Ok(BlobReader {
            file: cache.file(loc.pack)?,
            pos: loc.offset,
            end,
        })
    }
}

impl std::io::Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let n = buf.len().min(left);
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.file().read_at(&mut buf[..n], self.pos)?;
        if got == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("pack {} ends inside a blob", self.file.id()),
            ));
        }
        self.pos += got as u64;
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use crate::{BlobKey, BlobLoc, DescriptorAlarm, Engine, EngineOptions};

    /// Stores `bytes` (over `small_blob_bytes`: a pack of its own).
    fn push(e: &Engine, bytes: &[u8]) -> BlobLoc {
        let up = e.start_upload("r").unwrap();
        e.append_upload("r", &up.id, 0, bytes).unwrap();
        e.finish_upload("r", &up.id, &BlobKey::sha256_of(bytes))
            .unwrap()
            .into_inner()
    }

    fn engine(dir: &std::path::Path, open_packs: usize) -> Engine {
        let opts = EngineOptions {
            small_blob_bytes: 16,
            open_packs,
            ..EngineOptions::default()
        };
        Engine::open(dir, opts).unwrap()
    }

    #[test]
    fn the_cache_keeps_its_budget_closing_the_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path(), 3);
        let blobs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 100]).collect();
        let locs: Vec<BlobLoc> = blobs.iter().map(|b| push(&e, b)).collect();
        let read = |i: usize| assert_eq!(e.read_blob(locs[i]).unwrap(), blobs[i]);
        read(0);
        read(1);
        read(2);
        read(0);
        read(3);
        let packs = &e.inner.packs;
        let ids = |is: &[usize]| {
            let mut v: Vec<u64> = is.iter().map(|&i| locs[i].pack).collect();
            v.sort_unstable();
            v
        };
        assert_eq!(packs.open_ids(), ids(&[0, 2, 3]), "1 was the least recent");
        read(4);
        assert_eq!(packs.open_ids(), ids(&[0, 3, 4]));
        assert_eq!(e.stats().open_packs, 3);
        for i in 0..5 {
            read(i);
        }
        assert!(packs.open_count() <= 3);
    }

    #[test]
    fn packs_garbage_collection_retires_are_opened_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path(), 2);
        let locs: Vec<BlobLoc> = (0..5u8).map(|i| push(&e, &[i; 100])).collect();
        let packs = &e.inner.packs;
        assert_eq!(packs.open_count(), 0);
        for l in &locs {
            packs.retire(l.pack, 1);
        }
        assert_eq!(packs.open_ids(), vec![locs[0].pack, locs[1].pack]);
        packs.purge_retired(1 + super::RETIRE_GRACE_SECS);
        assert_eq!(packs.open_count(), 0);
    }

    #[test]
    fn a_pack_closed_by_the_cache_stays_readable_through_what_a_send_holds() {
        let dir = tempfile::tempdir().unwrap();
        let e = engine(dir.path(), 1);
        let (a, b) = (vec![7u8; 5000], vec![9u8; 5000]);
        let (la, lb) = (push(&e, &a), push(&e, &b));
        let held = e.pack_file(la.pack).unwrap();
        assert_eq!(e.read_blob(lb).unwrap(), b);
        assert_eq!(
            e.inner.packs.open_ids(),
            vec![lb.pack],
            "a was closed by the cache"
        );
        let w = held.window(la.offset, la.len as usize).unwrap();
        assert_eq!(w.bytes(), &a[..]);
    }

    #[test]
    fn out_of_descriptors_an_open_rings_the_alarm_closes_cached_packs_and_retries_once() {
        let dir = tempfile::tempdir().unwrap();
        let rung = Arc::new(AtomicUsize::new(0));
        let r = rung.clone();
        let alarm = DescriptorAlarm(Arc::new(move |what: &str, err: &std::io::Error| {
            assert_eq!(what, "open something");
            assert!(crate::is_exhaustion(err), "{err}");
            r.fetch_add(1, Ordering::SeqCst);
        }));
        let opts = EngineOptions {
            small_blob_bytes: 16,
            on_out_of_descriptors: Some(alarm),
            ..EngineOptions::default()
        };
        let e = Engine::open(dir.path(), opts).unwrap();
        let fill = || {
            for i in 0..4u8 {
                let b = vec![i; 100];
                let loc = push(&e, &b);
                assert_eq!(e.read_blob(loc).unwrap(), b);
            }
        };
        fill();
        let packs = &e.inner.packs;
        assert_eq!(packs.open_count(), 4);
        let emfile = || std::io::Error::from_raw_os_error(libc::EMFILE);
        let mut tries = 0;
        let got = packs.with_room("open something", || {
            tries += 1;
            if tries == 1 {
                Err(emfile())
            } else {
                Ok(tries)
            }
        });
        assert_eq!(got.unwrap(), 2);
        assert_eq!(rung.load(Ordering::SeqCst), 1);
        assert_eq!(
            packs.open_count(),
            0,
            "the cache closed its packs for the retry"
        );

        fill();
        let got = packs.with_room("open something", || Err::<(), _>(emfile()));
        assert!(got.unwrap_err().to_string().contains("open something"));
        assert_eq!(rung.load(Ordering::SeqCst), 3, "both tries rang");
        let got = packs.with_room("open something", || {
            Err::<(), _>(std::io::Error::from_raw_os_error(libc::ENOENT))
        });
        assert!(got.is_err());
        assert_eq!(rung.load(Ordering::SeqCst), 3, "other errors ring nothing");
    }
}
