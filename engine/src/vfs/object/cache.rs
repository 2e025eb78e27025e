//! The node's local copies of packs (`cache/packs/<id>.pack` in the local folder), bounded
//! in bytes, least recently used evicted first, each pack downloaded once however many
//! threads miss it at the same moment.
//!
//! Why a whole-file copy rather than ranged reads: the server sends blob bytes from memory
//! maps and streams whole blobs with `pread`, both of which want a file; and a pack is
//! immutable once synced (its id is never reused), so a copy never goes stale and needs no
//! revalidation. The one pack that changes is a shared pack this node is appending to, and
//! its copy *is* the file being written: a writable handle pins its name, so the copy is
//! never evicted from under the writer and every reader opening it meanwhile sees the
//! appended bytes.
//!
//! Eviction unlinks: Linux keeps an unlinked file readable by whoever has it open or mapped
//! (the engine's pack cache holds up to `open_packs` of them), so a pull in progress is
//! never cut short; the disk space comes back when the last holder lets go. The bound
//! counts the copies on disk by name, so it can be passed by what open handles still hold.
//!
//! Copies are complete or absent: a download goes to `cache/tmp/` and is renamed in only
//! once it is whole and synced, so a crash never leaves a torn copy to be trusted later;
//! `cache/tmp/` is emptied and `cache/packs/` counted again when the cache is first used.
//! The store's lock (the local folder's) keeps a second process out of the cache.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::bucket::Bucket;
use crate::vfs::{FileRef, OpenMode, Vfs};

/// The local folder holding the copies.
pub(super) const CACHE_DIR: &str = "cache/packs";
/// Downloads in progress, renamed into [`CACHE_DIR`] once complete.
const TMP_DIR: &str = "cache/tmp";

/// Pack file `file`'s copy in the local folder.
pub(super) fn cache_name(file: &str) -> String {
    format!("{CACHE_DIR}/{file}")
}

/// The local copies of packs and the bucket they come from.
pub(super) struct Cache {
    local: Arc<dyn Vfs>,
    bucket: Bucket,
    /// Bytes of copies kept at most (see the module docs for what it does not count).
    bound: u64,
    state: Mutex<State>,
    /// Makes each download's temporary name unique.
    next_tmp: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Whether the folders exist and the copies on disk were counted.
    ready: bool,
    /// Copies by pack file name.
    entries: HashMap<String, Entry>,
    /// The same names by last use, oldest first (ticks are unique).
    order: BTreeMap<u64, String>,
    /// Bytes of all entries.
    total: u64,
    tick: u64,
    /// Writable handles open per name: never evicted while any is.
    pins: HashMap<String, usize>,
    /// Downloads in progress: a second thread missing the same pack waits for the first.
    downloads: HashMap<String, Arc<Download>>,
}

struct Entry {
    len: u64,
    tick: u64,
}

/// One download, awaited by every thread that missed the same pack meanwhile.
#[derive(Default)]
struct Download {
    /// The downloaded file (its handle is shared: the copy may already be evicted by the
    /// time a waiter wakes), or the failure's kind and message.
    done: Mutex<Option<Result<FileRef, (io::ErrorKind, String)>>>,
    cv: Condvar,
    /// The pack was removed while it downloaded: the copy is not kept.
    removed: AtomicBool,
}

impl Download {
    fn finish(&self, r: Result<FileRef, (io::ErrorKind, String)>) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
        self.cv.notify_all();
    }

    fn wait(&self) -> io::Result<FileRef> {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match &*done {
                Some(Ok(f)) => return Ok(f.clone()),
                Some(Err((kind, msg))) => return Err(io::Error::new(*kind, msg.clone())),
                None => done = self.cv.wait(done).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }
}

/// Ends a download that did not finish normally (its thread panicked), so that nobody
/// waits for it forever.
struct Abandoned<'a> {
    cache: &'a Cache,
    file: &'a str,
    slot: &'a Download,
    armed: bool,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.cache.lock().downloads.remove(self.file);
            self.slot.finish(Err((
                io::ErrorKind::Other,
                format!("the download of pack {} was abandoned", self.file),
            )));
        }
    }
}

impl Cache {
    pub(super) fn new(local: Arc<dyn Vfs>, bucket: Bucket, bound: u64) -> Cache {
        Cache {
            local,
            bucket,
            bound,
            state: Mutex::new(State::default()),
            next_tmp: AtomicU64::new(0),
        }
    }

    pub(super) fn local(&self) -> &dyn Vfs {
        &*self.local
    }

    pub(super) fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change to the state is a few map operations that cannot panic halfway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state, its folders made and its copies counted first if this is the first use
    /// (lazily: the local folder may not exist before the store creates it).
    fn ready(&self) -> io::Result<MutexGuard<'_, State>> {
        let mut st = self.lock();
        if !st.ready {
            self.local.create_dir(CACHE_DIR)?;
            self.local.create_dir(TMP_DIR)?;
            for name in self.local.list(TMP_DIR)? {
                // A download a crash or a failure cut short.
                let _ = self.local.remove(&format!("{TMP_DIR}/{name}"));
            }
            for name in self.local.list(CACHE_DIR)? {
                match self.local.len_of(&cache_name(&name)) {
                    Ok(len) => st.insert(&name, len),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            st.ready = true;
            st.evict(&*self.local, self.bound);
        }
        Ok(st)
    }

    /// A writable handle on `file` opens: its copy stays while any is open.
    pub(super) fn pin(&self, file: &str) -> io::Result<()> {
        *self.ready()?.pins.entry(file.to_owned()).or_default() += 1;
        Ok(())
    }

    pub(super) fn unpin(&self, file: &str) {
        let mut st = self.lock();
        if let Some(n) = st.pins.get_mut(file) {
            *n -= 1;
            if *n == 0 {
                st.pins.remove(file);
            }
        }
        // What was kept for the writer may be over the bound now.
        st.evict(&*self.local, self.bound);
    }

    /// The copy of `file` if there is one, opened for reading (or writing).
    pub(super) fn cached(&self, file: &str, writable: bool) -> io::Result<Option<FileRef>> {
        let mut st = self.ready()?;
        self.open_cached(&mut st, file, writable)
    }

    fn open_cached(
        &self,
        st: &mut State,
        file: &str,
        writable: bool,
    ) -> io::Result<Option<FileRef>> {
        if !st.entries.contains_key(file) {
            return Ok(None);
        }
        let mode = if writable {
            OpenMode::Write
        } else {
            OpenMode::Read
        };
        // Under the state's lock, so no eviction unlinks it between the check and the open.
        match self.local.open(&cache_name(file), mode) {
            Ok(f) => {
                st.touch(file);
                Ok(Some(f))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Removed behind the cache's back: download it again.
                st.remove(file);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The copy of `file`, downloaded first if there is none. A thread that misses a pack
    /// another thread is downloading waits for that download and shares its file.
    pub(super) fn open(&self, file: &str, writable: bool) -> io::Result<FileRef> {
        let (slot, leader) = {
            let mut st = self.ready()?;
            if let Some(f) = self.open_cached(&mut st, file, writable)? {
                return Ok(f);
            }
            match st.downloads.get(file) {
                Some(slot) => (slot.clone(), false),
                None => {
                    let slot = Arc::new(Download::default());
                    st.downloads.insert(file.to_owned(), slot.clone());
                    (slot, true)
                }
            }
        };
        if !leader {
            return slot.wait();
        }
        let mut abandoned = Abandoned {
            cache: self,
            file,
            slot: &slot,
            armed: true,
        };
        let got = self.download(file);
        let mut st = self.lock();
        st.downloads.remove(file);
        abandoned.armed = false;
        match got {
            Ok((f, len)) => {
                if slot.removed.load(Ordering::Acquire) {
                    let _ = self.local.remove(&cache_name(file));
                } else {
                    st.insert(file, len);
                    st.evict(&*self.local, self.bound);
                }
                drop(st);
                slot.finish(Ok(f.clone()));
                Ok(f)
            }
            Err(e) => {
                drop(st);
                slot.finish(Err((e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    /// Downloads `file` into a temporary file and renames it into the cache once whole and
    /// synced. Returns the file (read-write: it may be the copy a writer appends to) and
    /// its length.
    fn download(&self, file: &str) -> io::Result<(FileRef, u64)> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp = format!("{TMP_DIR}/{file}.{n}");
        let f = self.local.open(&tmp, OpenMode::CreateNew)?;
        let copied = (|| {
            let len = self.bucket.download(&Bucket::key(file), &*f)?;
            f.sync_data()?;
            self.local.rename(&tmp, &cache_name(file))?;
            Ok(len)
        })();
        match copied {
            Ok(len) => Ok((f, len)),
            Err(e) => {
                drop(f);
                let _ = self.local.remove(&tmp);
                Err(e)
            }
        }
    }

    /// A new, empty copy for a pack being created (the caller made sure the bucket has no
    /// such object); a copy left by a pack that never reached the bucket is replaced.
    pub(super) fn create(&self, file: &str) -> io::Result<FileRef> {
        let mut st = self.ready()?;
        let name = cache_name(file);
        st.remove(file);
        match self.local.remove(&name) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let f = self.local.open(&name, OpenMode::CreateNew)?;
        st.insert(file, 0);
        Ok(f)
    }

    /// Moves local file `from`, just uploaded as `file`'s object, into the cache: the
    /// first read of a pack this node just stored needs no download.
    pub(super) fn adopt(&self, from: &str, file: &str, len: u64) -> io::Result<()> {
        let mut st = self.ready()?;
        match self.local.rename(from, &cache_name(file)) {
            Ok(()) => {
                st.insert(file, len);
                st.evict(&*self.local, self.bound);
            }
            // The object is complete, which is what the rename promised; the file is
            // only not cached (and is gone, as a renamed file would be).
            Err(_) => {
                let _ = self.local.remove(from);
            }
        }
        Ok(())
    }

    /// `file`'s copy is now `len` bytes long (a writer synced or cut it).
    pub(super) fn resized(&self, file: &str, len: u64) {
        let mut st = self.lock();
        if st.entries.contains_key(file) {
            st.insert(file, len);
            st.evict(&*self.local, self.bound);
        }
    }

    /// Drops `file`'s copy (its object was deleted); one downloading now is not kept.
    pub(super) fn forget(&self, file: &str) -> io::Result<()> {
        let mut st = self.ready()?;
        st.remove(file);
        if let Some(d) = st.downloads.get(file) {
            d.removed.store(true, Ordering::Release);
        }
        match self.local.remove(&cache_name(file)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Bytes of the copies the cache counts now.
    #[cfg(test)]
    fn total(&self) -> u64 {
        self.lock().total
    }
}

impl State {
    /// Records `file`'s copy as `len` bytes, used now.
    fn insert(&mut self, file: &str, len: u64) {
        self.remove(file);
        self.tick += 1;
        self.order.insert(self.tick, file.to_owned());
        self.entries.insert(
            file.to_owned(),
            Entry {
                len,
                tick: self.tick,
            },
        );
        self.total += len;
    }

    fn touch(&mut self, file: &str) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(e) = self.entries.get_mut(file) {
            self.order.remove(&e.tick);
            e.tick = tick;
            self.order.insert(tick, file.to_owned());
        }
    }

    fn remove(&mut self, file: &str) {
        if let Some(e) = self.entries.remove(file) {
            self.order.remove(&e.tick);
            self.total -= e.len;
        }
    }

    /// Unlinks the least recently used copies, skipping pinned ones, until the rest fit.
    fn evict(&mut self, local: &dyn Vfs, bound: u64) {
        while self.total > bound {
            let Some(victim) = self
                .order
                .values()
                .find(|f| !self.pins.contains_key(*f))
                .cloned()
            else {
                break;
            };
            self.remove(&victim);
            // A failed unlink leaves a file the next start counts again.
            let _ = local.remove(&cache_name(&victim));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;
    use crate::objects::{Credentials, Objects, ObjectsConfig};
    use crate::vfs::SimFs;

    /// A cache over a simulated disk whose bucket is at `endpoint`.
    fn cache_at(fs: &SimFs, bound: u64, endpoint: &str) -> Cache {
        let mut c = ObjectsConfig::parse(&format!("s3://bucket?endpoint={endpoint}")).unwrap();
        c.credentials = Some(Credentials::new("id", "secret"));
        let bucket = Bucket::new(Objects::open(c).unwrap());
        Cache::new(Arc::new(fs.clone()), bucket, bound)
    }

    /// A cache whose bucket these tests never reach.
    fn cache(fs: &SimFs, bound: u64) -> Cache {
        cache_at(fs, bound, "http://127.0.0.1:9")
    }

    /// An S3 endpoint of one object, `packs/a`, that counts the requests it gets and
    /// answers each after a pause, so that readers arriving together overlap; anything
    /// else is 404.
    fn one_object_store(body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let gets = Arc::new(AtomicUsize::new(0));
        let counted = gets.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let (body, counted) = (body.clone(), counted.clone());
                std::thread::spawn(move || {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_secs(1));
                    let head = String::from_utf8_lossy(&req);
                    let reply = if head.starts_with("GET /bucket/packs/a ") {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"1\"\r\n\
                             Last-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\n\
                             Connection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(&body);
                        r
                    } else {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    };
                    let _ = conn.write_all(&reply);
                });
            }
        });
        (endpoint, gets)
    }

    #[test]
    fn readers_missing_the_same_pack_share_one_download_and_its_failure() {
        let body: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let (endpoint, gets) = one_object_store(body.clone());
        let fs = SimFs::new();
        let c = Arc::new(cache_at(&fs, 1 << 20, &endpoint));
        let read_together = |file: &'static str| {
            let readers: Vec<_> = (0..4)
                .map(|_| {
                    let c = c.clone();
                    std::thread::spawn(move || c.open(file, false))
                })
                .collect();
            readers
                .into_iter()
                .map(|r| r.join().unwrap())
                .collect::<Vec<_>>()
        };
        for f in read_together("a") {
            let f = f.unwrap();
            let mut got = vec![0u8; body.len()];
            f.read_exact_at(&mut got, 0).unwrap();
            assert!(got == body);
        }
        assert_eq!(
            gets.load(Ordering::SeqCst),
            1,
            "one download for four readers"
        );
        assert_eq!(c.total(), body.len() as u64);
        assert!(c.cached("a", false).unwrap().is_some());
        assert!(fs.list(TMP_DIR).unwrap().is_empty());

        for f in read_together("b") {
            let e = f.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
            assert!(e.to_string().contains("packs/b"), "{e}");
        }
        assert_eq!(
            gets.load(Ordering::SeqCst),
            2,
            "one request for four readers"
        );
        assert!(c.cached("b", false).unwrap().is_none());
        assert!(
            fs.list(TMP_DIR).unwrap().is_empty(),
            "no partial copy is left"
        );

        c.forget("a").unwrap();
        assert!(c.open("a", false).is_ok());
        assert_eq!(
            gets.load(Ordering::SeqCst),
            3,
            "a forgotten copy is fetched again"
        );
    }

    fn put(c: &Cache, fs: &SimFs, file: &str, len: usize) {
        fs.create_dir("uploads").unwrap();
        let from = format!("uploads/{file}");
        let f = fs.open(&from, OpenMode::CreateNew).unwrap();
        f.write_all_at(&vec![1u8; len], 0).unwrap();
        c.adopt(&from, file, len as u64).unwrap();
    }

    fn present(fs: &SimFs, file: &str) -> bool {
        fs.len_of(&cache_name(file)).is_ok()
    }

    #[test]
    fn the_least_recently_used_copies_go_first_and_pinned_ones_stay() {
        let fs = SimFs::new();
        let c = cache(&fs, 250);
        put(&c, &fs, "a", 100);
        put(&c, &fs, "b", 100);
        assert!(c.cached("a", false).unwrap().is_some(), "a is used again");
        c.pin("b").unwrap();
        put(&c, &fs, "c", 100);
        // Over the bound: b is the least recent but pinned, so a goes.
        assert!(!present(&fs, "a") && present(&fs, "b") && present(&fs, "c"));
        assert_eq!(c.total(), 200);
        assert!(c.cached("a", false).unwrap().is_none());
        put(&c, &fs, "d", 100);
        assert!(present(&fs, "b") && !present(&fs, "c") && present(&fs, "d"));
        c.unpin("b");
        put(&c, &fs, "e", 100);
        assert!(!present(&fs, "b") && present(&fs, "d") && present(&fs, "e"));
        assert_eq!(c.total(), 200);
    }

    #[test]
    fn a_new_cache_counts_the_copies_on_disk_and_drops_unfinished_downloads() {
        let fs = SimFs::new();
        let c = cache(&fs, 1000);
        put(&c, &fs, "a", 300);
        put(&c, &fs, "b", 400);
        fs.open(&format!("{TMP_DIR}/c.0"), OpenMode::CreateNew)
            .unwrap();
        drop(c);
        let c = cache(&fs, 500);
        assert!(c.cached("b", false).unwrap().is_some());
        assert_eq!(c.total(), 400, "one copy evicted to fit the smaller bound");
        assert!(fs.list(TMP_DIR).unwrap().is_empty());
        c.forget("b").unwrap();
        assert_eq!(c.total(), 0);
        assert!(!present(&fs, "b"));
    }

    #[test]
    fn creating_a_pack_replaces_a_copy_that_never_reached_the_bucket() {
        let fs = SimFs::new();
        let c = cache(&fs, 1000);
        put(&c, &fs, "a", 300);
        let f = c.create("a").unwrap();
        assert_eq!(f.len().unwrap(), 0);
        assert_eq!(c.total(), 0);
        f.write_all_at(b"header", 0).unwrap();
        c.resized("a", 6);
        assert_eq!(c.total(), 6);
    }
}
