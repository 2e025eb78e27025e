//! Appending to a shared pack. Owned by the committer thread alone, so it needs no lock.

use super::format::{
    pack_header, pack_name, record_header, KIND_SHARED, PACK_HEADER_LEN, RECORD_HEADER_LEN,
};
use super::reader::PackCache;
use crate::keys::BlobKey;
use crate::vfs::{FileRef, OpenMode};
use crate::{BlobLoc, StoreError};

/// The shared pack small blobs are appended to.
pub(crate) struct SharedPack {
    pub(crate) id: u64,
    file: FileRef,
    /// End of the bytes written; past the committed length until the batch commits.
    pub(crate) tail: u64,
}

impl SharedPack {
    /// Creates `packs/<id>.pack` holding only its header. The file and its directory entry
    /// are synced with the first batch that appends to it (before that batch commits).
    pub(crate) fn create(packs: &PackCache, id: u64) -> Result<SharedPack, StoreError> {
        let file = packs.open_file(&pack_name(id), OpenMode::CreateNew, "create pack")?;
        file.write_all_at(&pack_header(KIND_SHARED, id), 0)
            .map_err(|e| StoreError::io(format!("write the header of pack {id}"), e))?;
        Ok(SharedPack {
            id,
            file,
            tail: PACK_HEADER_LEN,
        })
    }

    /// Reopens a shared pack to append after `committed_len` (its tail was cut there at open).
    pub(crate) fn reopen(
        packs: &PackCache,
        id: u64,
        committed_len: u64,
    ) -> Result<SharedPack, StoreError> {
        let file = packs.open_file(&pack_name(id), OpenMode::Write, "open pack")?;
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
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::vfs::sim::{Fault, FaultKind, FaultOp, SimFs};
    use crate::{system_clock, BlobKey, CheckOptions, Engine, EngineOptions, FinishError};

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
        let fs = SimFs::new();
        let open = |fs: &SimFs| {
            Engine::open_on(
                Arc::new(fs.clone()),
                EngineOptions::default(),
                system_clock(),
            )
            .unwrap()
        };
        let (a, c);
        {
            let e = open(&fs);
            a = push(&e, b"before").unwrap();
            fs.inject(Fault::once(FaultOp::SyncData, "packs/", FaultKind::Io));
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
        let e = open(&fs);
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
