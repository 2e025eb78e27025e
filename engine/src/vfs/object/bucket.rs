//! The bucket as `ObjectFs` uses it: whole files in and out, and the object store's
//! failures turned into the `io::Error` kinds the engine acts on.
//!
//! The engine reads every failure of its files as an `io::Error`, and sorts them by kind
//! alone: `NotConnected` becomes `StoreError::Unavailable` (503 with `Retry-After`, the
//! request may succeed in a moment), `NotFound` a missing file. So the kind carries what
//! to do, and the message (the `ObjectsError`'s) names the endpoint, the operation and the
//! key, never a credential.

use std::io;

use crate::objects::{Objects, ObjectsError};
use crate::pack::format::PACKS;
use crate::vfs::VfsFile;

/// One bucket holding the packs, under `packs/` as in a store's folder.
#[derive(Clone, Debug)]
pub(super) struct Bucket {
    objects: Objects,
}

impl Bucket {
    /// The client's requests and their time.
    pub(super) fn latency(&self) -> crate::LatencySum {
        self.objects.latency()
    }

    pub(super) fn new(objects: Objects) -> Bucket {
        Bucket { objects }
    }

    /// The object holding pack file `file` (`<id>.pack`): the store's own name for it, so
    /// a bucket reads like a store's `packs/` folder.
    pub(super) fn key(file: &str) -> String {
        format!("{PACKS}/{file}")
    }

    /// `s3://BUCKET/KEY`, for log messages.
    pub(super) fn describe(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.objects.config().bucket)
    }

    /// The object's length, `None` if it does not exist.
    pub(super) fn head(&self, key: &str) -> io::Result<Option<u64>> {
        self.objects.head(key).map_err(io_error)
    }

    /// Deletes the object; a missing one is fine.
    pub(super) fn delete(&self, key: &str) -> io::Result<()> {
        self.objects.delete(key).map_err(io_error)
    }

    /// The names (not keys) of the objects directly under `dir/` (`packs`, `parts`).
    pub(super) fn list_dir(&self, dir: &str) -> io::Result<Vec<String>> {
        let prefix = format!("{dir}/");
        let mut names = Vec::new();
        for info in self.objects.list(dir).map_err(io_error)? {
            let info = info.map_err(io_error)?;
            if let Some(name) = info.key.strip_prefix(&prefix) {
                if !name.is_empty() && !name.contains('/') {
                    names.push(name.to_owned());
                }
            }
        }
        Ok(names)
    }

    /// Streams the whole object into `into` from offset 0, a chunk at a time (a pack may
    /// be gigabytes); returns its length. A connection lost midway is an error, never a
    /// short file taken for the pack.
    /// Local failures keep their OS error (the engine tells a full disk by its code).
    pub(super) fn download(&self, key: &str, into: &dyn VfsFile) -> io::Result<u64> {
        self.download_at(key, into, 0)
    }

    /// [`download`](Self::download) into `into` from offset `base`.
    pub(super) fn download_at(&self, key: &str, into: &dyn VfsFile, base: u64) -> io::Result<u64> {
        let mut reader = self.objects.reader(key, None).map_err(io_error)?;
        let mut at = 0u64;
        while let Some(chunk) = reader.next_chunk().map_err(io_error)? {
            into.write_all_at(&chunk, base + at)?;
            at += chunk.len() as u64;
        }
        Ok(at)
    }

    /// Makes the object `key` hold exactly bytes `0..len` of `from`, complete and visible
    /// when this returns: one PUT when the file fits in one part, else a multipart upload
    /// streamed from the file, which holds at most a few parts in memory and shows nothing
    /// until it completes (a failure leaves the object as it was).
    pub(super) fn upload(&self, key: &str, from: &dyn VfsFile, len: u64) -> io::Result<()> {
        self.upload_range(key, from, 0, len)
    }

    /// [`upload`](Self::upload) of bytes `base..base + len` of `from`.
    pub(super) fn upload_range(
        &self,
        key: &str,
        from: &dyn VfsFile,
        base: u64,
        len: u64,
    ) -> io::Result<()> {
        let part = self.objects.config().part_size.max(1);
        if len <= part as u64 {
            // Within one part, which fits in memory by the configuration's own bound.
            let mut buf = vec![0u8; len as usize];
            from.read_exact_at(&mut buf, base)?;
            return self.objects.put(key, buf).map_err(io_error);
        }
        let mut writer = self.objects.writer(key).map_err(io_error)?;
        let mut buf = vec![0u8; part];
        let mut at = 0u64;
        while at < len {
            // `part` fits in usize, so does anything smaller.
            let n = (len - at).min(part as u64) as usize;
            // A failed read drops the writer, which aborts the upload.
            from.read_exact_at(&mut buf[..n], base + at)?;
            writer.write(&buf[..n]).map_err(io_error)?;
            at += n as u64;
        }
        writer.finish().map_err(io_error)?;
        Ok(())
    }
}

/// The object store's failure as the `io::Error` kind the engine acts on; the message is
/// the `ObjectsError`'s (endpoint, operation, key, the store's words).
pub(super) fn io_error(e: ObjectsError) -> io::Error {
    let kind = match &e {
        ObjectsError::Unreachable { .. } => io::ErrorKind::NotConnected,
        ObjectsError::NotFound { .. } => io::ErrorKind::NotFound,
        ObjectsError::Denied { .. } => io::ErrorKind::PermissionDenied,
        ObjectsError::Other { .. } => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}
