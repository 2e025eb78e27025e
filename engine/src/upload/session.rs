//! A node's live upload sessions: each with its own lock, found through one map.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::commit::{Batch, Write};
use crate::hasher::{HasherPool, RunningHash};
use crate::keys::UploadId;
use crate::schema::UploadRow;
use crate::vfs::FileRef;
use crate::StoreError;

/// Expired sessions are swept from `start_upload` at most this often; on a shared store a
/// copy idle this long may be dropped by the sweep.
pub(super) const SWEEP_EVERY_SECS: u64 = 60;

pub(crate) struct Session {
    pub(super) repo: String,
    pub(super) file: FileRef,
    /// Data bytes received (the file holds `UPLOAD_RESERVED + len`).
    pub(super) len: u64,
    /// SHA-256 of the data, computed behind the appends.
    pub(super) hash: Arc<RunningHash>,
    /// Seconds since the epoch of the last append (or start).
    pub(super) touched: u64,
    /// Set once finished, cancelled, expired or ended with its registry: the session
    /// accepts nothing more.
    pub(super) ended: bool,
    /// The session's row and its file's directory entry are durable (a sync made them so,
    /// or the session was restored from disk): later syncs only `fdatasync` the file.
    pub(super) durable: bool,
    /// On a shared store: the row as this node last wrote or read it, to tell whether
    /// another node moved the session since (`shared.rs`); `None` otherwise.
    pub(super) known: Option<UploadRow>,
    /// On a shared store: data bytes below this are in parts, not in the file (a session
    /// taken up from another node), until a finish fetches them; 0 otherwise.
    pub(super) local_from: u64,
    /// On a shared store: checked against its row since the last request here ended;
    /// always `true` otherwise.
    pub(super) verified: bool,
}

/// A session and what readers may learn without waiting for it.
pub(crate) struct Slot {
    pub(super) repo: String,
    /// The session's length, or [`ENDED`]; written under `s`'s lock, read without it, so
    /// `upload_status` (answered on the event loop) never waits for an append or a finish.
    pub(super) mirror: AtomicU64,
    pub(super) s: Mutex<Session>,
}

pub(super) const ENDED: u64 = u64::MAX;

impl Slot {
    pub(super) fn new(s: Session) -> Arc<Slot> {
        Arc::new(Slot {
            repo: s.repo.clone(),
            mirror: AtomicU64::new(s.len),
            s: Mutex::new(s),
        })
    }
    pub(super) fn publish(&self, s: &Session) {
        let v = if s.ended { ENDED } else { s.len };
        self.mirror.store(v, Ordering::Release);
    }
}

/// The live sessions.
pub(crate) struct Sessions {
    pub(super) map: RwLock<HashMap<UploadId, Arc<Slot>>>,
    pub(super) last_sweep: AtomicU64,
    pub(super) hashers: HasherPool,
    /// Held while a session is taken up from its row (shared stores).
    pub(super) adopting: Mutex<()>,
}

impl Sessions {
    pub(crate) fn new() -> Result<Sessions, StoreError> {
        Ok(Sessions {
            map: RwLock::new(HashMap::new()),
            last_sweep: AtomicU64::new(0),
            hashers: HasherPool::start()?,
            adopting: Mutex::new(()),
        })
    }

    /// Re-adds a session found at open; its hash is rebuilt from the file behind the next
    /// append, or at finish.
    pub(crate) fn restore(
        &self,
        id: UploadId,
        repo: String,
        file: FileRef,
        len: u64,
        touched: u64,
    ) {
        let s = Session {
            repo,
            hash: RunningHash::new(file.clone(), len),
            file,
            len,
            touched,
            ended: false,
            durable: true,
            known: None,
            local_from: 0,
            verified: true,
        };
        self.write_map().insert(id, Slot::new(s));
    }

    pub(crate) fn count(&self) -> usize {
        self.read_map().len()
    }

    pub(crate) fn ids(&self) -> Vec<UploadId> {
        self.read_map().keys().cloned().collect()
    }

    pub(super) fn read_map(&self) -> std::sync::RwLockReadGuard<'_, HashMap<UploadId, Arc<Slot>>> {
        // Poisoning means a thread panicked holding the lock; single inserts and removes
        // never leave the map half-changed, so it is still sound to use.
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn write_map(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<UploadId, Arc<Slot>>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The session `id` of `repo`, locked, if live.
    pub(super) fn get(&self, id: &str) -> Option<(UploadId, Arc<Slot>)> {
        let id = UploadId::parse(id)?;
        let s = self.read_map().get(&id)?.clone();
        Some((id, s))
    }

    pub(super) fn remove(&self, id: &UploadId) {
        self.write_map().remove(id);
    }

    /// Removes `id` if it is still `slot` (not a copy taken up since).
    pub(super) fn remove_if(&self, id: &UploadId, slot: &Arc<Slot>) {
        let mut map = self.write_map();
        if map.get(id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            map.remove(id);
        }
    }
}

pub(super) fn lock(s: &Mutex<Session>) -> MutexGuard<'_, Session> {
    // A panic mid-append leaves at worst a length the file does not back, which the
    // digest check catches; keep serving the session.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The session, locked, if it is live and belongs to `repo`.
pub(super) fn live<'a>(slot: &'a Slot, repo: &str) -> Option<MutexGuard<'a, Session>> {
    if slot.repo != repo {
        return None;
    }
    let g = lock(&slot.s);
    (!g.ended).then_some(g)
}

/// Forgets a session's row, without waiting (a row left behind names a missing file,
/// which the next open drops).
pub(super) struct DropUpload {
    pub(super) id: UploadId,
}

impl Write for DropUpload {
    type Out = ();
    const DURABLE: bool = false;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<(), StoreError> {
        b.t.uploads.remove(self.id.as_str())?;
        Ok(())
    }
}
