//! The metadata database's handle, which the committer reopens after a failed write.
//!
//! After an I/O error (a full disk) redb latches: every later write transaction answers
//! `PreviousIo` until the database is closed and opened again, even once the disk has room.
//! So after a failed batch the committer closes the handle and opens the file afresh (the
//! open re-reads what is durable: the last committed transaction; nothing a failed batch
//! began shows). This is not a retried `fsync`: nothing the failed write left in memory is
//! written again. Packs keep their rule (a failed pack stays latched, `commit.rs`).
//!
//! Writers are held by construction: the committer is the only writer and reopens between
//! batches, while every caller's write waits in its queue. Readers hold the lock only to
//! begin a transaction, so a reopen waits for no reader; a read begun on the old handle and
//! still running when it closes fails (`DatabaseClosed`), and the caller answers 500: it
//! never sees anything half-written. A reopen that failed (the disk still failing) leaves
//! no handle; the next read or batch tries again.

use std::sync::{Arc, Mutex, RwLock};

use redb::{Database, ReadableDatabase};

use crate::kv::pg::PgDb;
use crate::kv::{ReadTransaction, WriteTransaction};

use crate::vfs::{OpenMode, Vfs, VfsBackend};
use crate::StoreError;

/// The metadata database's name in the store.
pub(crate) const META_DB: &str = "meta.redb";

/// Opens (creating if need be) the metadata database on the I/O seam.
pub(crate) fn open_db(fs: &dyn Vfs) -> Result<Database, StoreError> {
    let file = fs
        .open(META_DB, OpenMode::Create)
        .map_err(|e| StoreError::io(format!("open {}", fs.describe(META_DB)), e))?;
    Ok(Database::builder().create_with_backend(VfsBackend(file))?)
}

/// Where the metadata lives: the store's own redb file, or a PostgreSQL database.
pub(crate) enum Opened {
    Redb(Database),
    Pg(Arc<PgDb>),
}

pub(crate) struct MetaDb {
    fs: Arc<dyn Vfs>,
    /// `None` only between closing the old handle and opening the new, and after an open
    /// that failed (the next batch tries again). Unused on PostgreSQL.
    db: RwLock<Option<Database>>,
    /// The PostgreSQL database, which reconnects by itself and never latches.
    pg: Option<Arc<PgDb>>,
    /// Why the store is unhealthy: the last batch failed, or the database could not be
    /// opened again; `None` once a batch commits.
    failing: Mutex<Option<String>>,
}

impl MetaDb {
    pub(crate) fn new(fs: Arc<dyn Vfs>, db: Opened) -> MetaDb {
        let (db, pg) = match db {
            Opened::Redb(db) => (Some(db), None),
            Opened::Pg(pg) => (None, Some(pg)),
        };
        MetaDb {
            fs,
            db: RwLock::new(db),
            pg,
            failing: Mutex::new(None),
        }
    }

    fn closed() -> StoreError {
        StoreError::new("metadata database: being reopened after a failed write")
    }

    /// On PostgreSQL, the tenancy generation as committed by any node
    /// (`schema::META_TENANCY_GENERATION`); `None` on redb, where this process's own count
    /// is the truth.
    pub(crate) fn shared_generation(&self) -> Option<Result<u64, StoreError>> {
        use redb::TableHandle;
        let pg = self.pg.as_ref()?;
        Some(
            pg.get_now::<&str>(
                crate::schema::META.name(),
                &crate::schema::META_TENANCY_GENERATION,
            )
            .and_then(|v| v.map_or(Ok(0), |b| crate::schema::decode_u64(&b).map_err(Into::into))),
        )
    }

    /// Statements sent to PostgreSQL and their time; `None` on redb.
    pub(crate) fn latency(&self) -> Option<crate::LatencySum> {
        self.pg.as_ref().map(|pg| pg.latency.sum())
    }

    /// Takes the lock `key` across every node sharing the database, if free; on redb (one
    /// process) there is nothing to share: always taken. `None` if another node holds it.
    pub(crate) fn cluster_lock(&self, key: i64) -> Result<Option<crate::vfs::Held>, StoreError> {
        match &self.pg {
            None => Ok(Some(crate::vfs::Held::new(()))),
            // The connection is not `Sync`; nothing uses it until it is dropped.
            Some(pg) => Ok(pg
                .try_lock(key)?
                .map(|l| crate::vfs::Held::new(Mutex::new(l)))),
        }
    }

    /// A read on the database; if an earlier reopen failed (the disk was still failing),
    /// it tries the reopen first, so reads come back as soon as the disk does, without
    /// waiting for the next write.
    pub(crate) fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        if let Some(pg) = &self.pg {
            return Ok(ReadTransaction::Pg(pg.begin_read()?));
        }
        {
            let g = self.db.read().unwrap_or_else(|p| p.into_inner());
            if let Some(db) = g.as_ref() {
                return Ok(ReadTransaction::Redb(db.begin_read()?));
            }
        }
        self.reopen_if_closed()?;
        let g = self.db.read().unwrap_or_else(|p| p.into_inner());
        Ok(ReadTransaction::Redb(
            g.as_ref().ok_or_else(Self::closed)?.begin_read()?,
        ))
    }

    /// For the committer (and `open`) only: the one writer.
    pub(crate) fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        if let Some(pg) = &self.pg {
            return WriteTransaction::begin_pg(pg);
        }
        let g = self.db.read().unwrap_or_else(|p| p.into_inner());
        Ok(WriteTransaction::Redb(
            g.as_ref().ok_or_else(Self::closed)?.begin_write()?,
        ))
    }

    /// Whether a write can no longer begin on this handle (redb latched it, or it is
    /// closed). The probe writes nothing: the transaction is dropped, i.e. aborted.
    pub(crate) fn latched(&self) -> bool {
        self.pg.is_none() && self.begin_write().is_err()
    }

    /// Closes the handle and opens the file again. The committer calls it between batches,
    /// so no write transaction is alive.
    pub(crate) fn reopen(&self) -> Result<(), StoreError> {
        if self.pg.is_some() {
            return Ok(());
        }
        let mut g = self.db.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = g.take() {
            // A latched handle reports its latch here; closing it is all that is wanted.
            let _ = old.close();
        }
        *g = Some(open_db(&*self.fs)?);
        Ok(())
    }

    /// Opens the file again if an earlier reopen failed. Checked under the write lock, so
    /// that a reader and the committer never both reopen (the second would close the
    /// handle the first just opened, under a write that began on it).
    pub(crate) fn reopen_if_closed(&self) -> Result<(), StoreError> {
        if self.pg.is_some() {
            return Ok(());
        }
        let mut g = self.db.write().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(open_db(&*self.fs)?);
        }
        Ok(())
    }

    /// Why the store is unhealthy, if it is.
    pub(crate) fn failing(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records the outcome of a batch; returns the new state if it changed.
    pub(crate) fn set_failing(&self, why: Option<String>) -> Option<Option<String>> {
        let mut f = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_some() == why.is_some() {
            *f = why;
            return None;
        }
        *f = why.clone();
        Some(why)
    }
}
