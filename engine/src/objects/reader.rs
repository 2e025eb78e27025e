//! Reading from the store a piece at a time (an object's bytes as they arrive, a listing a
//! page at a time), so neither a 256 MiB blob nor a bucket of millions of keys is ever
//! held whole.
//!
//! Both wrap a stream of the client's runtime and wait for its next item on the caller's
//! thread; the store only sends as fast as the caller reads (TCP flow control), so memory
//! stays at about one chunk or one page.

use std::io;
use std::ops::Range;
use std::time::SystemTime;

use bytes::{Buf, Bytes};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use object_store::{GetOptions, GetRange, ObjectStore};

use super::client::Objects;
use super::error::ObjectsError;

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's key.
    pub key: String,
    /// Its length in bytes.
    pub len: u64,
    /// When it was last written, as the store says.
    pub last_modified: SystemTime,
}

impl Objects {
    /// A stream of the object's bytes (`range`, or all of it), chunk by chunk as they
    /// arrive: for sending a large blob on without holding it. See [`ObjectReader`].
    pub fn reader(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<ObjectReader, ObjectsError> {
        let op = self.op("GET", key);
        let path = self.path(&op)?;
        if range.as_ref().is_some_and(|r| r.is_empty()) {
            return Ok(ObjectReader::empty(self.clone(), key.to_string()));
        }
        let options = GetOptions::new().with_range(range.clone().map(GetRange::Bounded));
        let got = self
            .block_on(self.streaming().get_opts(&path, options))
            .map_err(|e| op.error(e))?;
        if let Some(r) = &range {
            if got.range != *r {
                return Err(op.other(format!(
                    "asked for bytes {}..{}, the store sends {}..{}: the range goes past the \
                     object's end ({} bytes)",
                    r.start, r.end, got.range.start, got.range.end, got.meta.size
                )));
            }
        }
        let len = got.range.end - got.range.start;
        Ok(ObjectReader::new(
            self.clone(),
            key.to_string(),
            got.into_stream(),
            len,
        ))
    }

    /// Every object under `prefix`, a folder (`blobs/sha256` lists `blobs/sha256/...`, not
    /// `blobs/sha256x`; `""` lists the bucket), in key order, fetched a page at a time as
    /// the iterator is read.
    pub fn list(&self, prefix: &str) -> Result<ObjectList, ObjectsError> {
        let folder = prefix.trim_end_matches('/');
        let op = self.op("LIST", folder);
        let path = if folder.is_empty() {
            None
        } else {
            Some(self.path(&op)?)
        };
        let stream = self.store().list(path.as_ref());
        Ok(ObjectList::new(self.clone(), folder.to_string(), stream))
    }
}

/// An object's bytes (or a range of them), in the chunks the store sends. Also an
/// [`io::Read`], whose errors carry the [`ObjectsError`] (`io::Error::get_ref`).
pub struct ObjectReader {
    objects: Objects,
    key: String,
    stream: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    /// Of the chunk being read through `io::Read`.
    pending: Bytes,
    /// Bytes still to come: a stream that ends before is an error, not a short object.
    remaining: u64,
    len: u64,
}

impl ObjectReader {
    fn new(
        objects: Objects,
        key: String,
        stream: BoxStream<'static, object_store::Result<Bytes>>,
        len: u64,
    ) -> ObjectReader {
        ObjectReader {
            objects,
            key,
            stream: Some(stream),
            pending: Bytes::new(),
            remaining: len,
            len,
        }
    }

    fn empty(objects: Objects, key: String) -> ObjectReader {
        ObjectReader {
            objects,
            key,
            stream: None,
            pending: Bytes::new(),
            remaining: 0,
            len: 0,
        }
    }

    /// How many bytes the whole read yields.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it yields nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The next chunk, `None` at the end. A connection lost midway, or a stream that ends
    /// short of the length, is an error: the caller must not take a prefix for the object.
    pub fn next_chunk(&mut self) -> Result<Option<Bytes>, ObjectsError> {
        if !self.pending.is_empty() {
            return Ok(Some(std::mem::take(&mut self.pending)));
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(None);
        };
        let next = self.objects.block_on(stream.next());
        let op = self.objects.op("GET", &self.key);
        match next {
            Some(Ok(chunk)) => {
                let n = chunk.len() as u64;
                if n > self.remaining {
                    self.stream = None;
                    return Err(op.other(format!(
                        "the store sent {} bytes more than the {} asked for",
                        n - self.remaining,
                        self.len
                    )));
                }
                self.remaining -= n;
                Ok(Some(chunk))
            }
            Some(Err(e)) => {
                self.stream = None;
                Err(op.error(e))
            }
            None => {
                self.stream = None;
                if self.remaining > 0 {
                    return Err(ObjectsError::Unreachable {
                        endpoint: op.endpoint.to_string(),
                        op: op.op,
                        key: self.key.clone(),
                        reason: format!(
                            "the response ended {} bytes short of {}",
                            self.remaining, self.len
                        ),
                    });
                }
                Ok(None)
            }
        }
    }
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("key", &self.key)
            .field("len", &self.len)
            .field("remaining", &(self.remaining + self.pending.len() as u64))
            .finish()
    }
}

impl io::Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pending.is_empty() {
            match self.next_chunk() {
                Ok(Some(chunk)) => self.pending = chunk,
                Ok(None) => return Ok(0),
                Err(e) => {
                    let kind = if e.is_unreachable() {
                        io::ErrorKind::TimedOut
                    } else {
                        io::ErrorKind::Other
                    };
                    return Err(io::Error::new(kind, e));
                }
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.advance(n);
        Ok(n)
    }
}

/// The objects under a prefix, fetched a page at a time as it is iterated. It ends after
/// the first error (which it yields).
pub struct ObjectList {
    objects: Objects,
    prefix: String,
    stream: Option<BoxStream<'static, object_store::Result<object_store::ObjectMeta>>>,
}

impl ObjectList {
    fn new(
        objects: Objects,
        prefix: String,
        stream: BoxStream<'static, object_store::Result<object_store::ObjectMeta>>,
    ) -> ObjectList {
        ObjectList {
            objects,
            prefix,
            stream: Some(stream),
        }
    }
}

impl std::fmt::Debug for ObjectList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectList")
            .field("prefix", &self.prefix)
            .field("done", &self.stream.is_none())
            .finish()
    }
}

impl Iterator for ObjectList {
    type Item = Result<ObjectInfo, ObjectsError>;

    fn next(&mut self) -> Option<Self::Item> {
        let stream = self.stream.as_mut()?;
        let next = self.objects.block_on(stream.next());
        match next {
            None => {
                self.stream = None;
                None
            }
            Some(Ok(meta)) => Some(Ok(ObjectInfo {
                key: meta.location.to_string(),
                len: meta.size,
                last_modified: SystemTime::from(meta.last_modified),
            })),
            Some(Err(e)) => {
                self.stream = None;
                Some(Err(self.objects.op("LIST", &self.prefix).error(e)))
            }
        }
    }
}
