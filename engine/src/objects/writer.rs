//! Writing an object too large to hold, as an S3 multipart upload.
//!
//! Why multipart: a blob arrives as a client pushes it, possibly gigabytes, and a node
//! must not hold it whole; and S3 shows an object only once its upload is completed, so a
//! crash or an abandoned push never leaves half an object readable. The writer buffers
//! one part, sends full parts in the background (a bounded number at once, so memory
//! stays at `(parts_in_flight + 1) × part_size`), and only `finish` makes the object
//! exist. A writer dropped unfinished aborts its upload, so the store frees the parts.

use object_store::{MultipartUpload, ObjectStoreExt, WriteMultipart};

use super::client::Objects;
use super::error::ObjectsError;

impl Objects {
    /// Starts a multipart upload to `key`: see [`ObjectWriter`].
    pub fn writer(&self, key: &str) -> Result<ObjectWriter, ObjectsError> {
        let op = self.op("PUT", key);
        let path = self.path(&op)?;
        let upload = self
            .block_on(self.store().put_multipart(&path))
            .map_err(|e| op.error(e))?;
        Ok(ObjectWriter::new(self.clone(), key.to_string(), upload))
    }
}

/// A multipart upload in progress. `write` as the bytes come, then `finish`; dropping it
/// (or `abort`) discards the upload.
pub struct ObjectWriter {
    objects: Objects,
    key: String,
    /// `None` once finished, aborted or failed.
    upload: Option<WriteMultipart>,
    len: u64,
}

impl ObjectWriter {
    fn new(objects: Objects, key: String, upload: Box<dyn MultipartUpload>) -> ObjectWriter {
        let part_size = objects.config().part_size;
        ObjectWriter {
            objects,
            key,
            upload: Some(WriteMultipart::new_with_chunk_size(upload, part_size)),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `bytes`. Waits while `parts_in_flight` parts are being sent. A failed part
    /// (after the client's retries) aborts the upload and fails this and every later call.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ObjectsError> {
        let config = self.objects.config();
        let (part_size, in_flight) = (config.part_size, config.parts_in_flight);
        for piece in bytes.chunks(part_size) {
            let Some(upload) = self.upload.as_mut() else {
                return Err(self.ended());
            };
            // Room for one more part first: a piece no larger than a part completes at
            // most one, so at most `in_flight` are ever out.
            if let Err(e) = self.objects.block_on(upload.wait_for_capacity(in_flight)) {
                let e = self.objects.op("PUT", &self.key).error(e);
                self.abort_quietly();
                return Err(e);
            }
            // Sending a completed part spawns a task: it needs the runtime's context.
            let _in_runtime = self.objects.runtime().enter();
            upload.write(piece);
            self.len += piece.len() as u64;
        }
        Ok(())
    }

    /// Sends what is buffered, waits for every part and completes the upload: from then
    /// on the object is visible, with exactly the bytes written. Returns its length. On
    /// failure the upload is aborted and nothing is visible.
    pub fn finish(mut self) -> Result<u64, ObjectsError> {
        let Some(upload) = self.upload.take() else {
            return Err(self.ended());
        };
        let op = self.objects.op("PUT", &self.key);
        match self.objects.block_on(upload.finish()) {
            Ok(_) => Ok(self.len),
            Err(e) => Err(op.error(e)),
        }
    }

    /// Discards the upload and the parts already sent.
    pub fn abort(mut self) -> Result<(), ObjectsError> {
        let Some(upload) = self.upload.take() else {
            return Ok(());
        };
        let op = self.objects.op("ABORT", &self.key);
        self.objects
            .block_on(upload.abort())
            .map_err(|e| op.error(e))
    }

    fn abort_quietly(&mut self) {
        if let Some(upload) = self.upload.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Dropped inside some runtime, where blocking panics: let ours abort it.
                self.objects.runtime().spawn(upload.abort());
            } else {
                // Best effort: an upload left behind costs space until the bucket's
                // lifecycle rule (or a sweep of incomplete uploads) removes it.
                let _ = self.objects.block_on(upload.abort());
            }
        }
    }

    fn ended(&self) -> ObjectsError {
        self.objects
            .op("PUT", &self.key)
            .other("the upload already ended (finished, aborted, or a part failed)")
    }
}

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("key", &self.key)
            .field("len", &self.len)
            .field("open", &self.upload.is_some())
            .finish()
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        self.abort_quietly();
    }
}

impl std::io::Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        ObjectWriter::write(self, buf).map_err(std::io::Error::other)?;
        Ok(buf.len())
    }

    /// Parts go out as they fill; there is nothing to flush short of `finish`.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
