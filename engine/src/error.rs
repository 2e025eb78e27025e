//! One error type per operation (the store's wrapping [`StoreError`] sits under each).

use crate::keys::BlobKey;
use crate::schema::Corrupt;

/// The disk, the metadata database or the store's own invariants failed; not the caller's
/// fault. The server answers 5xx. The message says what failed and where (paths, pack
/// ids): it is for the log, not for clients.
#[derive(Clone, Debug, thiserror::Error)]
#[error("storage error: {detail}")]
pub struct StoreError {
    detail: String,
    /// Set when the failure is a lack of space: what a client may be told.
    full: Option<String>,
}

impl StoreError {
    /// A failure described by `detail`.
    pub fn new(detail: impl Into<String>) -> StoreError {
        StoreError {
            detail: detail.into(),
            full: None,
        }
    }

    /// The store has no room for the write; `public` says so without naming anything inside.
    pub(crate) fn full(detail: impl Into<String>, public: impl Into<String>) -> StoreError {
        StoreError {
            detail: detail.into(),
            full: Some(public.into()),
        }
    }

    pub(crate) fn io(what: impl std::fmt::Display, e: std::io::Error) -> StoreError {
        let detail = format!("{what}: {e}");
        if is_no_space(&e) {
            StoreError::full(detail, NO_SPACE)
        } else {
            StoreError::new(detail)
        }
    }

    /// What failed and where, for the log.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// If the write failed for lack of space, a message for the client (no paths, no ids).
    pub fn full_message(&self) -> Option<&str> {
        self.full.as_deref()
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
        StoreError::new(format!(
            "metadata holds an undecodable {} (run `berth check`)",
            c.0
        ))
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                let detail = format!("metadata database: {e}");
                match redb::Error::from(e) {
                    redb::Error::Io(io) if is_no_space(&io) => StoreError::full(detail, NO_SPACE),
                    _ => StoreError::new(detail),
                }
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
