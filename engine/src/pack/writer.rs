//! Appending to a shared pack. Owned by the committer thread alone, so it needs no lock.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::format::{
    pack_file_name, pack_header, record_header, KIND_SHARED, PACK_HEADER_LEN, RECORD_HEADER_LEN,
};
use super::reader::PackCache;
use crate::keys::BlobKey;
use crate::{BlobLoc, StoreError};

/// The shared pack small blobs are appended to.
pub(crate) struct SharedPack {
    pub(crate) id: u64,
    file: File,
    /// End of the bytes written; past the committed length until the batch commits.
    pub(crate) tail: u64,
}

impl SharedPack {
    /// Creates `packs/<id>.pack` holding only its header. The file and its directory entry
    /// are synced with the first batch that appends to it (before that batch commits).
    pub(crate) fn create(packs: &PackCache, dir: &Path, id: u64) -> Result<SharedPack, StoreError> {
        let path = dir.join(pack_file_name(id));
        let file = packs.open_file(
            crate::descriptors::new_file()
                .read(true)
                .write(true)
                .create_new(true),
            &path,
            "create pack",
        )?;
        file.write_all_at(&pack_header(KIND_SHARED, id), 0)
            .map_err(|e| StoreError::io(format!("write pack header {}", path.display()), e))?;
        Ok(SharedPack {
            id,
            file,
            tail: PACK_HEADER_LEN,
        })
    }

    /// Reopens a shared pack to append after `committed_len` (its tail was cut there at open).
    pub(crate) fn reopen(
        dir: &Path,
        id: u64,
        committed_len: u64,
    ) -> Result<SharedPack, StoreError> {
        let path = dir.join(pack_file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(format!("open pack {}", path.display()), e))?;
        Ok(SharedPack {
            id,
            file,
            tail: committed_len,
        })
    }

    /// Writes a record (header + data) at the tail; the data's location is returned.
    pub(crate) fn append(&mut self, key: &BlobKey, data: &[u8]) -> Result<BlobLoc, StoreError> {
        let len = data.len() as u64;
        let io = |e| StoreError::io(format!("append to pack {}", self.id), e);
        self.file
            .write_all_at(&record_header(key, len), self.tail)
            .map_err(io)?;
        let offset = self.tail + RECORD_HEADER_LEN;
        self.file.write_all_at(data, offset).map_err(io)?;
        self.tail = offset + len;
        Ok(BlobLoc {
            pack: self.id,
            offset,
            len,
        })
    }

    /// `fdatasync`. Called at most once per failure: the caller latches the pack on error.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        #[cfg(test)]
        if FAIL_NEXT_SYNC.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other("injected fdatasync failure"));
        }
        self.file.sync_data()
    }
}

/// Makes the next shared-pack sync fail, as a disk would (unit tests only).
#[cfg(test)]
pub(crate) static FAIL_NEXT_SYNC: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::FAIL_NEXT_SYNC;
    use crate::{BlobKey, CheckOptions, Engine, EngineOptions, FinishError};

    fn push(e: &Engine, bytes: &[u8]) -> Result<crate::BlobLoc, FinishError> {
        let up = e.start_upload("r")?;
        e.append_upload("r", &up.id, 0, bytes)
            .map_err(|e| match e {
                crate::AppendError::Store(s) => FinishError::Store(s),
                other => panic!("{other}"),
            })?;
        Ok(e.finish_upload("r", &up.id, &BlobKey::sha256_of(bytes))?
            .into_inner())
    }

    #[test]
    fn a_failed_pack_sync_fails_the_batch_latches_the_pack_and_later_blobs_use_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let (a, c);
        {
            let e = Engine::open(dir.path(), EngineOptions::default()).unwrap();
            a = push(&e, b"before").unwrap();
            FAIL_NEXT_SYNC.store(true, Ordering::SeqCst);
            assert!(matches!(push(&e, b"during"), Err(FinishError::Store(_))));
            assert_eq!(
                e.stat_blob("r", &BlobKey::sha256_of(b"during")).unwrap(),
                None
            );
            assert_eq!(e.stats().failed_packs, 1);
            assert!(!e.check().unwrap().is_clean(), "the latch shows in check");
            c = push(&e, b"after").unwrap();
            assert_ne!(c.pack, a.pack, "a latched pack takes no new blobs");
            assert_eq!(e.read_blob(a).unwrap(), b"before");
            assert_eq!(e.read_blob(c).unwrap(), b"after");
        }
        let e = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        assert_eq!(
            e.stat_blob("r", &BlobKey::sha256_of(b"before")).unwrap(),
            Some(a)
        );
        assert_eq!(
            e.stat_blob("r", &BlobKey::sha256_of(b"after")).unwrap(),
            Some(c)
        );
        assert_eq!(
            e.stat_blob("r", &BlobKey::sha256_of(b"during")).unwrap(),
            None
        );
        let r = e.check_with(CheckOptions { rehash: true }).unwrap();
        assert!(r.is_clean(), "{:?}", r.problems);
        assert!(
            r.repaired.iter().any(|x| x.contains("uncommitted")),
            "{:?}",
            r.repaired
        );
    }
}
