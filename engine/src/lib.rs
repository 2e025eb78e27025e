//! `berth-engine`: the content-addressed store.
//!
//! SKELETON: the public surface below is the contract the server calls. Bodies are to be
//! written; see the engine brief. Signatures may gain things; keep them source-compatible.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// Hash algorithms the store verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    Sha256,
    Sha512,
}

/// A blob's (or manifest's) identity: algorithm and raw hash bytes (32 or 64 bytes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey {
    pub alg: Alg,
    pub hash: Vec<u8>,
}

/// Which pack file holds a blob and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlobLoc {
    pub pack: u64,
    pub offset: u64,
    pub len: u64,
}

/// Proof that what it carries is on disk and committed. Minted only by the engine's
/// commit path.
#[must_use]
#[derive(Debug)]
pub struct Durable<T>(T);

impl<T> Durable<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Tunables; every one has a default.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Blobs up to this size are copied into shared packs; larger uploads become packs of
    /// their own without a copy.
    pub small_blob_bytes: u64,
    /// Maximum size of one uploaded blob; `None` for unbounded.
    pub max_upload_bytes: Option<u64>,
    /// Upload sessions untouched for this long are removed (seconds).
    pub upload_expiry_secs: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            small_blob_bytes: 1 << 20,
            max_upload_bytes: None,
            upload_expiry_secs: 24 * 3600,
        }
    }
}

/// State of an upload session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadStatus {
    /// `[A-Za-z0-9_-]`, at most 64 bytes.
    pub id: String,
    /// Bytes received so far.
    pub len: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("no such upload session")]
    Unknown,
    #[error("content does not match the expected digest")]
    DigestMismatch,
    #[error("blob exceeds the maximum upload size")]
    TooLarge,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("no such upload session")]
    Unknown,
    #[error("append at offset {got}, but the session holds {have} bytes")]
    Offset { got: u64, have: u64 },
    #[error("blob exceeds the maximum upload size")]
    TooLarge,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A manifest to store. The server has validated it.
#[derive(Clone, Debug)]
pub struct NewManifest {
    pub key: BlobKey,
    pub media_type: String,
    pub body: Vec<u8>,
    pub tags: Vec<String>,
    /// Blobs that must be linked into the repository (config, layers).
    pub blobs: Vec<BlobKey>,
    /// Manifests that must be in the repository (index children).
    pub manifests: Vec<BlobKey>,
    pub subject: Option<(BlobKey, ReferrerRec)>,
}

/// A referrer entry as stored; the server converts to/from the core's `Referrer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferrerRec {
    pub media_type: String,
    pub key: BlobKey,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PutManifestError {
    #[error("referenced content missing from the repository")]
    Missing(Vec<BlobKey>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stored manifest.
#[derive(Clone, Debug)]
pub struct StoredManifest {
    pub key: BlobKey,
    pub media_type: String,
    pub body: Vec<u8>,
}

/// How a manifest is named in a lookup or delete.
#[derive(Clone, Debug)]
pub enum ManifestRef<'a> {
    Tag(&'a str),
    Key(&'a BlobKey),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    RepoUnknown,
}

/// Counters for `/metrics`.
#[derive(Clone, Debug, Default)]
pub struct StoreStats {
    pub blobs: u64,
    pub blob_bytes: u64,
    pub pack_bytes: u64,
    pub manifests: u64,
    pub repositories: u64,
    pub uploads_open: u64,
}

/// The result of `Engine::check`.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    pub problems: Vec<String>,
    pub repaired: Vec<String>,
}

/// The store. `Send + Sync`; share it in an `Arc`.
pub struct Engine {}

#[derive(Debug, thiserror::Error)]
#[error("storage error: {0}")]
pub struct StoreError(pub String);

#[allow(unused_variables)]
impl Engine {
    /// Opens (creating if needed) the store in `dir`, repairing what a crash left.
    pub fn open(dir: &Path, opts: EngineOptions) -> Result<Engine, StoreError> {
        Ok(Engine {})
    }
    pub fn check(&self) -> Result<CheckReport, StoreError> {
        Ok(CheckReport::default())
    }
    pub fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    // blobs
    pub fn stat_blob(&self, repo: &str, key: &BlobKey) -> Result<Option<BlobLoc>, StoreError> {
        Ok(None)
    }
    /// Links `key` into `repo` if present in `from` (or anywhere, when `from` is None).
    pub fn mount_blob(
        &self,
        repo: &str,
        key: &BlobKey,
        from: Option<&str>,
    ) -> Result<Option<Durable<BlobLoc>>, StoreError> {
        Ok(None)
    }
    pub fn unlink_blob(&self, repo: &str, key: &BlobKey) -> Result<DeleteOutcome, StoreError> {
        Ok(DeleteOutcome::NotFound)
    }
    /// The open pack file, for `sendfile`/`pread`.
    pub fn pack_file(&self, pack: u64) -> Result<Arc<File>, StoreError> {
        Err(StoreError("unimplemented".into()))
    }
    /// Reads a whole blob (for the indexer, manifests of blobs, tests).
    pub fn read_blob(&self, loc: BlobLoc) -> Result<Vec<u8>, StoreError> {
        Err(StoreError("unimplemented".into()))
    }

    // uploads
    pub fn start_upload(&self, repo: &str) -> Result<UploadStatus, StoreError> {
        Err(StoreError("unimplemented".into()))
    }
    pub fn upload_status(&self, repo: &str, id: &str) -> Result<Option<UploadStatus>, StoreError> {
        Ok(None)
    }
    pub fn append_upload(
        &self,
        repo: &str,
        id: &str,
        offset: u64,
        bytes: &[u8],
    ) -> Result<u64, AppendError> {
        Err(AppendError::Unknown)
    }
    pub fn finish_upload(
        &self,
        repo: &str,
        id: &str,
        want: &BlobKey,
    ) -> Result<Durable<BlobLoc>, FinishError> {
        Err(FinishError::Unknown)
    }
    pub fn cancel_upload(&self, repo: &str, id: &str) -> Result<bool, StoreError> {
        Ok(false)
    }

    // manifests
    pub fn get_manifest(
        &self,
        repo: &str,
        r: ManifestRef<'_>,
    ) -> Result<Option<StoredManifest>, StoreError> {
        Ok(None)
    }
    pub fn put_manifest(
        &self,
        repo: &str,
        m: NewManifest,
    ) -> Result<Durable<()>, PutManifestError> {
        Err(PutManifestError::Store(StoreError("unimplemented".into())))
    }
    pub fn delete_manifest(
        &self,
        repo: &str,
        r: ManifestRef<'_>,
    ) -> Result<DeleteOutcome, StoreError> {
        Ok(DeleteOutcome::RepoUnknown)
    }
    /// `None` if the repository does not exist; else up to `n` tags after `last`, and
    /// whether more follow.
    pub fn list_tags(
        &self,
        repo: &str,
        last: Option<&str>,
        n: usize,
    ) -> Result<Option<(Vec<String>, bool)>, StoreError> {
        Ok(None)
    }
    pub fn referrers(&self, repo: &str, subject: &BlobKey) -> Result<Vec<ReferrerRec>, StoreError> {
        Ok(vec![])
    }
    pub fn catalog(&self, last: Option<&str>, n: usize) -> Result<(Vec<String>, bool), StoreError> {
        Ok((vec![], false))
    }
}
