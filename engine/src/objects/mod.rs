//! Blob bytes in S3-compatible object storage, for the distributed mode: many stateless
//! nodes share one bucket instead of each keeping packs on its own disk.
//!
//! Everything that speaks S3 is the Apache Arrow project's `object_store` crate (signing,
//! retries, multipart uploads, presigned URLs): no signing of our own to get subtly wrong.
//! That crate is async; the engine and the server are not (their callers are plain worker
//! threads), so this module owns a small multi-thread tokio runtime of its own and offers
//! blocking methods: a caller's thread waits in `block_on` while the runtime's threads do
//! the I/O. Nothing here ever blocks on a runtime thread, and the event loops never call
//! it. A caller inside some other async runtime must not call these methods (tokio refuses
//! to block there and panics).
//!
//! Every request is bounded: a connect timeout, a whole-request timeout for requests of
//! bounded size, an inactivity timeout for streamed reads (whose length depends on how fast
//! the caller drains them), and a retry budget in count and time ([`ObjectsConfig`]). So an
//! unreachable store turns into [`ObjectsError::Unreachable`] within a known time instead
//! of a hung request; the server answers that with 503.
//!
//! Keys are `/`-separated paths (`blobs/sha256/ab/abcd...`): no empty segment, no `.` or
//! `..` segment.

mod client;
mod config;
mod error;
mod reader;
mod writer;

pub use client::Objects;
pub use config::{ConfigError, Credentials, ObjectsConfig, RetrySettings, Secret};
pub use error::ObjectsError;
pub use reader::{ObjectInfo, ObjectList, ObjectReader};
pub use writer::ObjectWriter;
