//! One error type per operation (the store's wrapping [`StoreError`] sits under each).

use crate::keys::BlobKey;
use crate::schema::Corrupt;
use std::sync::Arc;

/// The disk, the metadata database or the store's own invariants failed; not the caller's
/// fault. The server answers 5xx. The text says what failed and where (paths, pack ids): it
/// is for the log, not for clients, who get a request id that the log line also carries
/// (except for a full store: [`StoreError::full_message`] is meant for them).
///
/// Cheap to clone (a failed batch hands one error to every caller in it), so the causes are
/// shared.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed: `what` names it and the file.
    #[error("storage error: {what}: {source}")]
    Io {
        /// What was being done, to which file.
        what: String,
        /// The operating system's error.
        source: Arc<std::io::Error>,
    },
    /// The metadata database failed.
    #[error("storage error: metadata database: {0}")]
    Db(#[source] Arc<redb::Error>),
    /// A metadata row could not be decoded: the database is damaged, or written by a newer
    /// Berth.
    #[error("storage error: metadata holds an undecodable {0} (run `berth check`)")]
    Corrupt(&'static str),
    /// An upload was refused to keep the free-space reserve.
    #[error("storage error: {detail}")]
    Reserve {
        /// What was free and what was asked, for the log.
        detail: String,
        /// What the client is told.
        public: String,
    },
    /// A service the store runs on (the metadata database, the object store) cannot be
    /// reached or is restarting: nothing was changed, and the same request may succeed in a
    /// moment. The server answers 503 with `Retry-After`.
    #[error("storage error: {0}")]
    Unavailable(String),
    /// Anything else: the store's own invariants, a store that is closing or open
    /// elsewhere.
    #[error("storage error: {0}")]
    Other(String),
}

impl StoreError {
    /// A failure described by `detail`.
    pub fn new(detail: impl Into<String>) -> StoreError {
        StoreError::Other(detail.into())
    }

    /// The store keeps room below uploads; `public` says so without naming anything inside.
    pub(crate) fn full(detail: impl Into<String>, public: impl Into<String>) -> StoreError {
        StoreError::Reserve {
            detail: detail.into(),
            public: public.into(),
        }
    }

    pub(crate) fn io(what: impl std::fmt::Display, e: std::io::Error) -> StoreError {
        // A file system over the network (the object store behind `vfs`) says it cannot be
        // reached this way: the request may be retried, and is answered 503.
        if e.kind() == std::io::ErrorKind::NotConnected {
            return StoreError::Unavailable(format!("{what}: {e}"));
        }
        StoreError::Io {
            what: what.to_string(),
            source: Arc::new(e),
        }
    }

    /// What failed and where, for the log.
    pub fn detail(&self) -> String {
        self.to_string()
    }

    /// The operating system's error underneath, if a file or the database's file failed.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Db(e) => match &**e {
                redb::Error::Io(io) => Some(io),
                _ => None,
            },
            _ => None,
        }
    }

    /// If the write failed for lack of space, a message for the client (no paths, no ids).
    pub fn full_message(&self) -> Option<&str> {
        match self {
            StoreError::Reserve { public, .. } => Some(public),
            _ if self.io_error().is_some_and(is_no_space) => Some(NO_SPACE),
            _ => None,
        }
    }
}

/// What a client is told when a write meets a full disk.
const NO_SPACE: &str =
    "the store is full: the disk has no space left; delete images and run berth gc";

/// ENOSPC or EDQUOT: the filesystem (or the user's quota) has no room.
fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

impl From<Corrupt> for StoreError {
    fn from(c: Corrupt) -> StoreError {
        StoreError::Corrupt(c.0)
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                StoreError::Db(Arc::new(redb::Error::from(e)))
            }
        }
    )*};
}
from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Why `finish_upload` stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    /// No live session with that id in that repository.
    #[error("no such upload session")]
    Unknown,
    /// The bytes hash to something else; the session was discarded.
    #[error("content does not match the expected digest")]
    DigestMismatch,
    /// Past `max_upload_bytes`; the session was discarded.
    #[error("blob exceeds the maximum upload size")]
    TooLarge,
    /// The store failed; the session was discarded.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why `append_upload` appended nothing. The session stays usable (spec §5.4 rule 3).
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// No live session with that id in that repository.
    #[error("no such upload session")]
    Unknown,
    /// The append does not start where the session ends.
    #[error("append at offset {got}, but the session holds {have} bytes")]
    Offset {
        /// The offset asked for.
        got: u64,
        /// The session's length.
        have: u64,
    },
    /// The append would pass `max_upload_bytes`.
    #[error("blob exceeds the maximum upload size")]
    TooLarge,
    /// The store failed; the session's length is what `upload_status` says.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why `put_manifest` stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum PutManifestError {
    /// These blobs are not linked in, or these child manifests not stored in, the
    /// repository (one `MANIFEST_BLOB_UNKNOWN` each, spec §6.4 step 6).
    #[error("referenced content missing from the repository")]
    Missing(Vec<BlobKey>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
