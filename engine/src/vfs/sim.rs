//! A file system in memory that knows what a power cut would keep, and fails on request.
//!
//! Each file keeps two images: what was written (what reads see) and what is durable (what
//! the last `sync_data` made so). Directories do the same for their entries: a file created,
//! renamed or deleted is durable only once its directory is synced, and a directory itself
//! once its parent is. [`SimFs::restart`] is the machine coming back after a crash: a new
//! file system holding only the durable images and entries — optionally with some sectors of
//! the writes made since the last sync landed anyway, in any order, as a disk that
//! reorders its write-back does ("torn" writes; sectors are the unit a disk writes whole).
//!
//! Faults come three ways: [`SimFs::inject`] makes chosen operations fail (an `fsync`
//! error, `ENOSPC` or `EIO` from a write, a short write, a failing rename);
//! [`SimFs::fail_after`] makes every change after the n-th fail, like a disk that died;
//! [`SimFs::crash_at_sync`] stops the machine at the n-th sync point (`sync_data` or
//! `sync_dir`), which then does not happen and neither does anything after it. A capacity
//! makes writes past it short, then `ENOSPC`, as a full disk does.
//!
//! Handles stay valid after their file is deleted or renamed (they name the file, not the
//! path), as on Unix. Everything is behind one mutex: this is for tests, not speed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::FsSpace;
use super::{parent, FileRef, Held, MapHow, Mapped, OpenMode, Vfs, VfsFile};

/// What a disk writes whole: a torn write keeps or loses each sector of it.
pub const SECTOR: u64 = 512;

/// The operations a fault can hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOp {
    /// `write_at`.
    Write,
    /// `sync_data` of a file.
    SyncData,
    /// `sync_dir`.
    SyncDir,
    /// `rename`.
    Rename,
    /// `remove`.
    Remove,
    /// `open` that creates a file.
    Create,
    /// `set_len`.
    SetLen,
    /// Any of the above.
    Any,
}

/// How a faulty operation fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// `EIO`.
    Io,
    /// `ENOSPC`.
    NoSpace,
    /// A write lands only its first half and says so (a short write, not an error); other
    /// operations fail with `EIO`.
    Short,
}

/// An operation made to fail.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Which operations.
    pub op: FaultOp,
    /// Only on names starting with this (`""`: every name).
    pub prefix: String,
    /// How.
    pub kind: FaultKind,
    /// Matching operations let through before the first failure.
    pub skip: u64,
    /// Failures before the fault is spent (`u64::MAX`: never spent).
    pub times: u64,
}

impl Fault {
    /// The next `op` on a name under `prefix` fails as `kind`, once.
    pub fn once(op: FaultOp, prefix: &str, kind: FaultKind) -> Fault {
        Fault {
            op,
            prefix: prefix.to_owned(),
            kind,
            skip: 0,
            times: 1,
        }
    }
}

/// A change to a file not yet synced, kept for tearing.
#[derive(Clone, Debug)]
enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Clone, Debug, Default)]
struct Inode {
    /// What reads see.
    data: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Changes since the last sync, in order.
    pending: Vec<Pending>,
    modified: u64,
}

#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    names: BTreeMap<String, u64>,
    dirs: BTreeSet<String>,
    durable_names: BTreeMap<String, u64>,
    durable_dirs: BTreeSet<String>,
    /// Changes made (writes, syncs, renames, removes, creations, length changes).
    ops: u64,
    /// Sync points reached.
    syncs: u64,
    crash_at_sync: Option<u64>,
    crashed: bool,
    faults: Vec<Fault>,
    fail_after: Option<(u64, FaultKind)>,
    capacity: u64,
    locked: bool,
    /// The time files are stamped with (seconds).
    now: u64,
}

/// A simulated file system; clones share it.
#[derive(Clone, Debug)]
pub struct SimFs {
    s: Arc<Mutex<State>>,
}

impl Default for SimFs {
    fn default() -> Self {
        SimFs::new()
    }
}

fn err(kind: FaultKind) -> io::Error {
    match kind {
        FaultKind::NoSpace => io::Error::from_raw_os_error(libc::ENOSPC),
        FaultKind::Io | FaultKind::Short => io::Error::from_raw_os_error(libc::EIO),
    }
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the machine is down")
}

impl State {
    /// Counts a change to `name` by `op` and says whether (and how) it fails.
    fn change(&mut self, op: FaultOp, name: &str) -> Result<Option<FaultKind>, io::Error> {
        if self.crashed {
            return Err(crashed());
        }
        self.ops += 1;
        if let Some((n, kind)) = self.fail_after {
            if self.ops > n {
                return if kind == FaultKind::Short && op == FaultOp::Write {
                    Ok(Some(kind))
                } else {
                    Err(err(kind))
                };
            }
        }
        let hit = self.faults.iter_mut().position(|f| {
            (f.op == op || f.op == FaultOp::Any) && name.starts_with(&f.prefix) && f.times > 0
        });
        if let Some(i) = hit {
            let f = &mut self.faults[i];
            if f.skip > 0 {
                f.skip -= 1;
                return Ok(None);
            }
            f.times -= 1;
            let kind = f.kind;
            if f.times == 0 {
                self.faults.remove(i);
            }
            if kind == FaultKind::Short && op == FaultOp::Write {
                return Ok(Some(kind));
            }
            return Err(err(kind));
        }
        Ok(None)
    }

    /// A sync point: the crash, if it is set here, happens instead of the sync.
    fn sync_point(&mut self, op: FaultOp, name: &str) -> io::Result<()> {
        if self.crashed {
            return Err(crashed());
        }
        self.syncs += 1;
        if self.crash_at_sync == Some(self.syncs) {
            self.crashed = true;
            return Err(crashed());
        }
        self.change(op, name).map(drop)
    }

    fn used(&self) -> u64 {
        self.inodes.values().map(|i| i.data.len() as u64).sum()
    }

    fn ino(&self, name: &str) -> io::Result<u64> {
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn node(&mut self, ino: u64) -> &mut Inode {
        self.inodes.entry(ino).or_default()
    }
}

impl SimFs {
    /// An empty file system with room for 64 GiB.
    pub fn new() -> SimFs {
        let mut st = State {
            capacity: 64 << 30,
            next_ino: 1,
            ..State::default()
        };
        st.dirs.insert(String::new());
        st.durable_dirs.insert(String::new());
        SimFs {
            s: Arc::new(Mutex::new(st)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.s.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Limits the bytes all files may hold together.
    pub fn set_capacity(&self, bytes: u64) {
        self.lock().capacity = bytes;
    }

    /// Sets the time new changes are stamped with.
    pub fn set_now(&self, secs: u64) {
        self.lock().now = secs;
    }

    /// Makes operations fail as `f` says.
    pub fn inject(&self, f: Fault) {
        self.lock().faults.push(f);
    }

    /// Makes every change after the `n`-th (counted from the file system's start) fail as
    /// `kind`; `None` lifts it.
    pub fn fail_after(&self, n: Option<u64>, kind: FaultKind) {
        self.lock().fail_after = n.map(|n| (n, kind));
    }

    /// Drops every fault set by [`inject`](Self::inject) and [`fail_after`](Self::fail_after).
    pub fn heal(&self) {
        let mut s = self.lock();
        s.faults.clear();
        s.fail_after = None;
    }

    /// Stops the machine at the `n`-th sync point (1 is the first): that sync fails and so
    /// does every operation after it.
    pub fn crash_at_sync(&self, n: u64) {
        self.lock().crash_at_sync = Some(n);
    }

    /// Stops the machine now.
    pub fn crash(&self) {
        self.lock().crashed = true;
    }

    /// Whether the machine is stopped.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Sync points reached so far.
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// Changes made so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// The machine after a crash now: a new file system with what was durable, and with
    /// `tear` (a seed) some sectors of the unsynced writes too. This one stops.
    pub fn restart(&self, tear: Option<u64>) -> SimFs {
        let mut s = self.lock();
        s.crashed = true;
        let mut rng = tear.map(|seed| seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut next = State {
            capacity: s.capacity,
            next_ino: s.next_ino,
            now: s.now,
            ..State::default()
        };
        // A directory survives if its entry in its parent (the root always) survived.
        for d in &s.durable_dirs {
            let mut up = d.as_str();
            let mut whole = true;
            while !up.is_empty() {
                if !s.durable_dirs.contains(up) {
                    whole = false;
                }
                up = parent(up);
            }
            if whole {
                next.dirs.insert(d.clone());
            }
        }
        for (name, &ino) in &s.durable_names {
            if !next.dirs.contains(parent(name)) {
                continue;
            }
            next.names.insert(name.clone(), ino);
            if next.inodes.contains_key(&ino) {
                continue;
            }
            let node = &s.inodes[&ino];
            let mut data = node.durable.clone();
            if let Some(r) = rng.as_mut() {
                for p in &node.pending {
                    if let Pending::Write(at, bytes) = p {
                        tear_into(&mut data, *at, bytes, r);
                    }
                }
            }
            next.inodes.insert(
                ino,
                Inode {
                    durable: data.clone(),
                    data,
                    pending: Vec::new(),
                    modified: node.modified,
                },
            );
        }
        next.durable_dirs = next.dirs.clone();
        next.durable_names = next.names.clone();
        SimFs {
            s: Arc::new(Mutex::new(next)),
        }
    }

    /// The bytes `name` holds now (tests).
    pub fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        let s = self.lock();
        let ino = s.ino(name)?;
        Ok(s.inodes[&ino].data.clone())
    }

    /// Every file's name (tests).
    pub fn names(&self) -> Vec<String> {
        self.lock().names.keys().cloned().collect()
    }
}

/// Lands each whole sector of the write `bytes` at `at` in `data` or not, as `rng` draws.
fn tear_into(data: &mut Vec<u8>, at: u64, bytes: &[u8], rng: &mut u64) {
    let end = at + bytes.len() as u64;
    let mut s = at - at % SECTOR;
    while s < end {
        let (from, to) = (s.max(at), (s + SECTOR).min(end));
        // xorshift64: deterministic per seed, no dependency.
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        if *rng & 1 == 1 {
            if data.len() < to as usize {
                data.resize(to as usize, 0);
            }
            data[from as usize..to as usize]
                .copy_from_slice(&bytes[(from - at) as usize..(to - at) as usize]);
        }
        s += SECTOR;
    }
}

impl Vfs for SimFs {
    fn open(&self, name: &str, mode: OpenMode) -> io::Result<FileRef> {
        let mut s = self.lock();
        if s.crashed {
            return Err(crashed());
        }
        let ino = match (s.names.get(name).copied(), mode) {
            (Some(_), OpenMode::CreateNew) => {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists))
            }
            (Some(ino), _) => ino,
            (None, OpenMode::Read | OpenMode::Write) => {
                return Err(io::Error::from(io::ErrorKind::NotFound))
            }
            (None, OpenMode::CreateNew | OpenMode::Create) => {
                if !s.dirs.contains(parent(name)) {
                    return Err(io::Error::from(io::ErrorKind::NotFound));
                }
                s.change(FaultOp::Create, name)?;
                let ino = s.next_ino;
                s.next_ino += 1;
                let now = s.now;
                s.node(ino).modified = now;
                s.names.insert(name.to_owned(), ino);
                ino
            }
        };
        Ok(Arc::new(SimFile {
            s: self.s.clone(),
            ino,
            name: name.to_owned(),
            write: mode != OpenMode::Read,
        }))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut s = self.lock();
        s.change(FaultOp::Rename, from)?;
        let ino = s.ino(from)?;
        if !s.dirs.contains(parent(to)) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        s.names.remove(from);
        s.names.insert(to.to_owned(), ino);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut s = self.lock();
        s.change(FaultOp::Remove, name)?;
        s.ino(name)?;
        s.names.remove(name);
        Ok(())
    }

    fn create_dir(&self, dir: &str) -> io::Result<()> {
        let mut s = self.lock();
        if s.crashed {
            return Err(crashed());
        }
        let mut up = dir;
        while !up.is_empty() {
            s.dirs.insert(up.to_owned());
            up = parent(up);
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        let mut s = self.lock();
        s.sync_point(FaultOp::SyncDir, dir)?;
        let inside = |n: &str| parent(n) == dir;
        let State {
            names,
            durable_names,
            dirs,
            durable_dirs,
            ..
        } = &mut *s;
        durable_names.retain(|n, _| !inside(n));
        for (n, &ino) in names.iter().filter(|(n, _)| inside(n)) {
            durable_names.insert(n.clone(), ino);
        }
        durable_dirs.retain(|d| d.is_empty() || !inside(d));
        for d in dirs.iter().filter(|d| !d.is_empty() && inside(d)) {
            durable_dirs.insert(d.clone());
        }
        Ok(())
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let s = self.lock();
        if s.crashed {
            return Err(crashed());
        }
        if !s.dirs.contains(dir) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(s.names
            .keys()
            .chain(s.dirs.iter())
            .filter(|n| !n.is_empty() && parent(n) == dir)
            .map(|n| n.rsplit('/').next().unwrap_or(n).to_owned())
            .collect())
    }

    fn len_of(&self, name: &str) -> io::Result<u64> {
        let s = self.lock();
        let ino = s.ino(name)?;
        Ok(s.inodes.get(&ino).map_or(0, |i| i.data.len() as u64))
    }

    fn lock(&self) -> io::Result<Option<Held>> {
        let mut s = self.lock();
        if s.crashed {
            return Err(crashed());
        }
        if s.locked {
            return Ok(None);
        }
        s.locked = true;
        Ok(Some(Held::new(Unlock(self.s.clone()))))
    }

    fn space(&self) -> io::Result<FsSpace> {
        let s = self.lock();
        Ok(FsSpace {
            free: s.capacity.saturating_sub(s.used()),
            total: s.capacity,
        })
    }

    fn describe(&self, name: &str) -> String {
        format!("sim:/{name}")
    }
}

/// Lets go of [`SimFs`]'s lock when dropped.
struct Unlock(Arc<Mutex<State>>);

impl Drop for Unlock {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).locked = false;
    }
}

/// A file of [`SimFs`].
#[derive(Debug)]
struct SimFile {
    s: Arc<Mutex<State>>,
    ino: u64,
    /// The name it was opened by, for faults chosen by name.
    name: String,
    write: bool,
}

impl SimFile {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.s.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn writable(&self) -> io::Result<()> {
        if self.write {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::EBADF))
        }
    }
}

impl VfsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        let mut s = self.lock();
        if s.crashed {
            return Err(crashed());
        }
        let data = &s.node(self.ino).data;
        let at = usize::try_from(at).unwrap_or(usize::MAX);
        if at >= data.len() {
            return Ok(0);
        }
        let n = buf.len().min(data.len() - at);
        buf[..n].copy_from_slice(&data[at..at + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], at: u64) -> io::Result<usize> {
        self.writable()?;
        let mut s = self.lock();
        let short = s.change(FaultOp::Write, &self.name)?.is_some();
        let mut n = if short {
            buf.len().div_ceil(2)
        } else {
            buf.len()
        };
        let end = at + n as u64;
        let len = s.node(self.ino).data.len() as u64;
        let grow = end.saturating_sub(len);
        let free = s.capacity.saturating_sub(s.used());
        if grow > free {
            n = n.saturating_sub((grow - free) as usize);
            if n == 0 {
                return Err(err(FaultKind::NoSpace));
            }
        }
        let now = s.now;
        let node = s.node(self.ino);
        let (from, to) = (at as usize, at as usize + n);
        if node.data.len() < to {
            node.data.resize(to, 0);
        }
        node.data[from..to].copy_from_slice(&buf[..n]);
        node.pending.push(Pending::Write(at, buf[..n].to_vec()));
        node.modified = now;
        Ok(n)
    }

    fn len(&self) -> io::Result<u64> {
        let mut s = self.lock();
        if s.crashed {
            return Err(crashed());
        }
        Ok(s.node(self.ino).data.len() as u64)
    }

    fn modified_secs(&self) -> io::Result<u64> {
        Ok(self.lock().node(self.ino).modified)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.writable()?;
        let mut s = self.lock();
        s.change(FaultOp::SetLen, &self.name)?;
        let cur = s.node(self.ino).data.len() as u64;
        if len > cur && len - cur > s.capacity.saturating_sub(s.used()) {
            return Err(err(FaultKind::NoSpace));
        }
        let node = s.node(self.ino);
        node.data.resize(len as usize, 0);
        node.pending.push(Pending::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.lock();
        s.sync_point(FaultOp::SyncData, &self.name)?;
        let node = s.node(self.ino);
        for p in std::mem::take(&mut node.pending) {
            match p {
                Pending::Write(at, bytes) => {
                    let to = at as usize + bytes.len();
                    if node.durable.len() < to {
                        node.durable.resize(to, 0);
                    }
                    node.durable[at as usize..to].copy_from_slice(&bytes);
                }
                Pending::SetLen(len) => node.durable.resize(len as usize, 0),
            }
        }
        Ok(())
    }

    fn map(&self, at: u64, len: usize, _how: MapHow) -> io::Result<Option<Mapped>> {
        let mut buf = vec![0u8; len];
        (self as &dyn VfsFile).read_exact_at(&mut buf, at)?;
        Ok(Some(Mapped::copied(buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(fs: &SimFs, name: &str, bytes: &[u8]) -> FileRef {
        let f = fs.open(name, OpenMode::Create).unwrap();
        f.write_all_at(bytes, 0).unwrap();
        f
    }

    #[test]
    fn a_crash_keeps_synced_bytes_and_entries_only() {
        let fs = SimFs::new();
        fs.create_dir("d").unwrap();
        fs.sync_dir("").unwrap();
        let a = write(&fs, "d/a", b"synced");
        a.sync_data().unwrap();
        fs.sync_dir("d").unwrap();
        a.write_all_at(b"-later", 6).unwrap();
        let b = write(&fs, "d/b", b"data synced, entry not");
        b.sync_data().unwrap();
        let after = fs.restart(None);
        assert!(fs.crashed());
        assert!(a.len().is_err(), "the old machine is down");
        assert_eq!(after.read("d/a").unwrap(), b"synced");
        assert!(after.read("d/b").is_err(), "its entry was never synced");
    }

    #[test]
    fn renames_and_removes_are_durable_with_their_directory() {
        let fs = SimFs::new();
        fs.create_dir("u").unwrap();
        fs.create_dir("p").unwrap();
        fs.sync_dir("").unwrap();
        let f = write(&fs, "u/x", b"x");
        f.sync_data().unwrap();
        fs.sync_dir("u").unwrap();
        fs.rename("u/x", "p/x").unwrap();
        assert_eq!(fs.restart(None).names(), vec!["u/x".to_string()]);
        let fs = SimFs::new();
        fs.create_dir("p").unwrap();
        fs.sync_dir("").unwrap();
        write(&fs, "p/y", b"y").sync_data().unwrap();
        fs.sync_dir("p").unwrap();
        fs.remove("p/y").unwrap();
        assert_eq!(fs.restart(None).names(), vec!["p/y".to_string()]);
    }

    #[test]
    fn a_directory_not_synced_into_its_parent_loses_its_files() {
        let fs = SimFs::new();
        fs.create_dir("d").unwrap();
        write(&fs, "d/a", b"a").sync_data().unwrap();
        fs.sync_dir("d").unwrap();
        assert!(fs.restart(None).names().is_empty());
    }

    #[test]
    fn torn_writes_land_whole_sectors_only() {
        let fs = SimFs::new();
        let f = write(&fs, "f", &[0u8; 4096]);
        f.sync_data().unwrap();
        fs.sync_dir("").unwrap();
        f.write_all_at(&[7u8; 4096], 0).unwrap();
        let mut landed = BTreeSet::new();
        for seed in 0..16 {
            let got = fs.clone().restart(Some(seed)).read("f").unwrap();
            assert_eq!(got.len(), 4096);
            for sector in got.chunks(SECTOR as usize) {
                assert!(sector.iter().all(|&b| b == sector[0]), "a sector is whole");
                landed.insert(sector[0]);
            }
        }
        assert_eq!(
            landed,
            BTreeSet::from([0, 7]),
            "some sectors land, some do not"
        );
    }

    #[test]
    fn faults_fail_what_they_name_and_are_spent() {
        let fs = SimFs::new();
        let f = write(&fs, "p", b"abc");
        fs.inject(Fault::once(FaultOp::SyncData, "p", FaultKind::Io));
        assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
        f.sync_data().unwrap();
        fs.inject(Fault::once(FaultOp::Write, "", FaultKind::Short));
        assert_eq!(f.write_at(b"wxyz", 0).unwrap(), 2, "a short write");
        fs.inject(Fault::once(FaultOp::Write, "", FaultKind::NoSpace));
        let e = f.write_all_at(b"q", 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        fs.inject(Fault::once(FaultOp::Rename, "", FaultKind::Io));
        assert!(fs.rename("p", "q").is_err());
        fs.rename("p", "q").unwrap();
        let n = fs.ops();
        fs.fail_after(Some(n + 1), FaultKind::Io);
        f.write_all_at(b"1", 0).unwrap();
        assert!(f.write_all_at(b"2", 0).is_err());
        fs.heal();
        f.write_all_at(b"3", 0).unwrap();
    }

    #[test]
    fn a_full_disk_writes_short_then_refuses() {
        let fs = SimFs::new();
        fs.set_capacity(10);
        let f = fs.open("f", OpenMode::Create).unwrap();
        assert_eq!(f.write_at(&[1u8; 16], 0).unwrap(), 10);
        assert_eq!(
            f.write_at(&[1u8; 4], 10).unwrap_err().raw_os_error(),
            Some(libc::ENOSPC)
        );
        assert_eq!(fs.space().unwrap().free, 0);
    }

    #[test]
    fn a_crash_at_a_sync_point_stops_everything_from_it() {
        let fs = SimFs::new();
        let f = write(&fs, "f", b"one");
        fs.sync_dir("").unwrap();
        fs.crash_at_sync(3);
        f.sync_data().unwrap();
        assert!(f.sync_data().is_err(), "the third sync is the crash");
        assert!(f.write_at(b"x", 0).is_err());
        assert_eq!(fs.restart(None).read("f").unwrap(), b"one");
    }
}
