//! The typed questions the core asks the storage layer (`Need`) and the answers it gets
//! back (`Reply`). This file is the contract between `berth-core` and the server: the
//! server answers every `Need` with exactly one `Reply` of the variant documented on it.
//!
//! Storage nouns only: no status codes here. The core turns replies into responses.

use crate::oci::{Digest, Reference, RepoName, Tag, UploadId};
use bytes::Bytes;
use std::fmt;
use std::ops::Range;

/// Identifies one outstanding need of one connection; echoed back in `Input::Reply`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NeedId(pub u64);

impl fmt::Debug for NeedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NeedId({})", self.0)
    }
}

/// Where a blob's bytes live. Opaque to the core: minted by the server from a storage
/// location and handed back unchanged in `Output::SendBlob`. The core only adds a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlobHandle {
    /// Which file holds the bytes (the server's pack number).
    pub file: u64,
    /// Offset of the blob's first byte in that file.
    pub offset: u64,
}

/// A blob present in a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    pub size: u64,
    pub handle: BlobHandle,
}

/// The state of an open upload session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadInfo {
    pub id: UploadId,
    /// Bytes received so far (`L`); the next byte goes at this offset.
    pub offset: u64,
}

/// A stored manifest as pushed: exact bytes and the media type recorded at push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestInfo {
    pub digest: Digest,
    pub media_type: String,
    pub body: Bytes,
}

/// What the referrers API lists for one manifest whose `subject` names a digest
/// (spec digest §7.2). Computed by the core when the manifest is pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Referrer {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub artifact_type: Option<String>,
    /// The referrer's top-level `annotations` object, as raw JSON text, if it had one.
    pub annotations: Option<String>,
}

/// A manifest the core has validated and wants stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewManifest {
    /// Digest of `body` (algorithm of the URL digest, else sha256).
    pub digest: Digest,
    pub media_type: String,
    pub body: Bytes,
    /// Tags to point at this manifest (the path tag and/or `?tag=` parameters).
    pub tags: Vec<Tag>,
    /// Blobs (config, layers) this manifest references and the store must hold in the
    /// repository. Layers with `urls` or non-distributable types are left out.
    pub blobs: Vec<Digest>,
    /// Those layers: the store need not hold them, but references the ones it does.
    pub external: Vec<Digest>,
    /// Manifests (index entries) this manifest references.
    pub manifests: Vec<Digest>,
    /// The `subject` and this manifest's referrer entry, if it has a subject.
    pub subject: Option<(Digest, Referrer)>,
}

/// A page of names (tags or repositories), sorted byte-wise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<String>,
    /// Whether more items follow the last one in this page.
    pub more: bool,
}

/// One non-registry HTTP request (web pages, JSON API, `/metrics`, token endpoint).
/// `Debug` leaves out credential header values and the body (a token request's form holds
/// a password): a logged need must not leak a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WebRequest {
    pub method: String,
    /// Path without the query string, percent-decoding not applied.
    pub path: String,
    /// The raw query string (without `?`), empty if none.
    pub query: String,
    /// Header names lower-cased, values as sent (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl fmt::Debug for WebRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let secret = ["authorization", "proxy-authorization", "cookie"]
                    .iter()
                    .any(|s| k.eq_ignore_ascii_case(s));
                (k.as_str(), if secret { "<redacted>" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("WebRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("headers", &headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl WebRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The server's answer to a `WebRequest`; the core adds framing headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebResponse {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: WebBody,
}

/// A web response's body: in memory, or pieces some of which stream from stored blobs, so
/// a body far larger than memory (an image Download) goes out without a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebBody {
    Bytes(Bytes),
    /// Sent in order; `Content-Length` is the sum of their lengths.
    Pieces(Vec<WebPiece>),
}

/// One piece of a pieced web body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebPiece {
    Bytes(Bytes),
    /// `range` (relative to the blob's first byte) of the blob at `blob`, sent the way a
    /// blob GET is: `Output::SendBlob`.
    Blob {
        blob: BlobHandle,
        range: Range<u64>,
    },
}

impl WebPiece {
    pub fn len(&self) -> u64 {
        match self {
            WebPiece::Bytes(b) => b.len() as u64,
            WebPiece::Blob { range, .. } => range.end.saturating_sub(range.start),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The bytes `pieces` hold together.
pub fn pieces_len(pieces: &[WebPiece]) -> u64 {
    pieces.iter().fold(0u64, |n, p| n.saturating_add(p.len()))
}

impl WebBody {
    /// The body's length in bytes: what `Content-Length` says.
    pub fn len(&self) -> u64 {
        match self {
            WebBody::Bytes(b) => b.len() as u64,
            WebBody::Pieces(ps) => pieces_len(ps),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of an in-memory body; `None` for pieces (their blob bytes are not here).
    pub fn bytes(&self) -> Option<&Bytes> {
        match self {
            WebBody::Bytes(b) => Some(b),
            WebBody::Pieces(_) => None,
        }
    }
}

impl From<Bytes> for WebBody {
    fn from(b: Bytes) -> WebBody {
        WebBody::Bytes(b)
    }
}

impl From<String> for WebBody {
    fn from(s: String) -> WebBody {
        WebBody::Bytes(s.into())
    }
}

impl From<Vec<u8>> for WebBody {
    fn from(v: Vec<u8>) -> WebBody {
        WebBody::Bytes(v.into())
    }
}

impl From<&'static str> for WebBody {
    fn from(s: &'static str) -> WebBody {
        WebBody::Bytes(Bytes::from_static(s.as_bytes()))
    }
}

impl From<Vec<WebPiece>> for WebBody {
    fn from(ps: Vec<WebPiece>) -> WebBody {
        WebBody::Pieces(ps)
    }
}

/// A question for the storage layer. Answered by exactly one `Input::Reply` carrying the
/// `Reply` variant named on each case, or `Reply::Failed` when storage itself failed.
#[derive(Debug, PartialEq, Eq)]
pub enum Need<'c> {
    /// Is `digest` linked into `repo`? → `Reply::Blob`.
    StatBlob { repo: RepoName, digest: Digest },
    /// Unlink `digest` from `repo`. → `Reply::Deleted`.
    DeleteBlob { repo: RepoName, digest: Digest },
    /// Open a new upload session in `repo`. → `Reply::Upload(Some(_))`.
    StartUpload { repo: RepoName },
    /// State of an upload session. → `Reply::Upload` (`None` if unknown or not `repo`'s).
    UploadStatus { repo: RepoName, upload: UploadId },
    /// Append `bytes` at `offset` (always the session's current length, which the core
    /// learned from an earlier reply). `bytes` borrows the connection's receive buffer.
    /// → `Reply::Upload` with the new length (`None` if the session vanished).
    AppendUpload {
        repo: RepoName,
        upload: UploadId,
        offset: u64,
        bytes: &'c [u8],
    },
    /// Make the session's bytes so far, and the session itself, durable: a PATCH's 202 says
    /// the bytes were received, and a crash after it must not lose them. → `Reply::Upload`
    /// with the durable length (`None` if the session vanished).
    SyncUpload { repo: RepoName, upload: UploadId },
    /// Close the session, verify the whole content hashes to `digest`, make it durable and
    /// link it into `repo`. → `Reply::Finished`.
    FinishUpload {
        repo: RepoName,
        upload: UploadId,
        digest: Digest,
    },
    /// Drop an upload session and its bytes. → `Reply::Deleted`.
    CancelUpload { repo: RepoName, upload: UploadId },
    /// Link `digest` into `repo` from `from` (or, with `from: None`, from anywhere the store
    /// allows); if that is not possible, open an upload session instead. → `Reply::Mount`.
    MountBlob {
        repo: RepoName,
        digest: Digest,
        from: Option<RepoName>,
    },
    /// → `Reply::Manifest` (`None`: no such manifest or tag in `repo`).
    GetManifest {
        repo: RepoName,
        reference: Reference,
        /// A GET, whose body the client takes (a pull: the server counts it as a
        /// download of the version), not a HEAD.
        pull: bool,
    },
    /// Store a validated manifest durably. → `Reply::ManifestPut`.
    PutManifest {
        repo: RepoName,
        /// Boxed: a manifest is several times the size of every other need.
        manifest: Box<NewManifest>,
    },
    /// Delete a tag (tag reference) or a manifest and every tag pointing to it (digest).
    /// → `Reply::Deleted`.
    DeleteManifest {
        repo: RepoName,
        reference: Reference,
    },
    /// Tags of `repo` after `last`, at most `n`. → `Reply::Tags` (`None`: unknown repo).
    ListTags {
        repo: RepoName,
        n: usize,
        last: Option<String>,
    },
    /// Manifests in `repo` whose subject is `subject`. → `Reply::Referrers`.
    Referrers { repo: RepoName, subject: Digest },
    /// Repository names after `last`, at most `n`. → `Reply::Catalog`.
    Catalog { n: usize, last: Option<String> },
    /// A request outside `/v2/`. → `Reply::Web`.
    Web(WebRequest),
    /// May the caller do this? Asked once per `/v2/` request, after its head and before any
    /// other need or any side effect (spec digest §9.1: a 401 has no side effects).
    /// → `Reply::Auth`. The server remembers who was granted for the needs that follow on
    /// this connection until the next `Authorize`.
    Authorize(AuthRequest),
}

/// Actions on a repository (spec digest §9.3, §9.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Actions {
    pub pull: bool,
    pub push: bool,
    pub delete: bool,
}

impl Actions {
    pub const PULL: Actions = Actions {
        pull: true,
        push: false,
        delete: false,
    };
    pub const PULL_PUSH: Actions = Actions {
        pull: true,
        push: true,
        delete: false,
    };
    pub const DELETE: Actions = Actions {
        pull: false,
        push: false,
        delete: true,
    };

    /// Whether every action in `other` is also in `self`.
    pub fn covers(self, other: Actions) -> bool {
        (self.pull || !other.pull) && (self.push || !other.push) && (self.delete || !other.delete)
    }
}

/// What a request touches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `GET /v2/`: any valid credential (the login check, spec digest §9.4).
    Ping,
    /// `GET /v2/_catalog` (`registry:catalog:*`).
    Catalog,
    Repository(RepoName),
}

/// One resource and the actions wanted on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub resource: Resource,
    pub actions: Actions,
}

/// The question behind `Need::Authorize`.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// The `Authorization` header value, if any. A secret: never logged (see `Debug`).
    pub credentials: Option<String>,
    /// The `Host` header, for building an absolute `realm` in a challenge.
    pub host: Option<String>,
    /// The `X-Forwarded-For` fields, joined: who the client is when a trusted proxy sent it.
    pub forwarded_for: Option<String>,
    /// What the request cannot proceed without.
    pub required: Access,
    /// What the request would like in addition (the `from` repository of a mount); a
    /// refusal here does not refuse the request (spec digest §5.8: 202 fallback).
    pub optional: Option<Access>,
}

impl fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRequest")
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("host", &self.host)
            .field("forwarded_for", &self.forwarded_for)
            .field("required", &self.required)
            .field("optional", &self.optional)
            .finish()
    }
}

/// The answer to `Need::Authorize`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Proceed. `optional` says whether the optional access was granted too.
    Granted { optional: bool },
    /// Answer with this error instead; nothing else happens for this request.
    Refused(Refusal),
}

/// A refused request: the core writes it as the spec's error response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 401 (with a challenge), 403 `DENIED`, 404 (`NAME_UNKNOWN`: what the caller may not
    /// see is indistinguishable from what does not exist), 429 (`TOOMANYREQUESTS`).
    pub status: u16,
    pub code: crate::oci::ErrorCode,
    pub message: String,
    /// The `WWW-Authenticate` value for a 401.
    pub www_authenticate: Option<String>,
    /// Seconds, for `Retry-After` on a 429.
    pub retry_after: Option<u64>,
}

/// Outcome of closing an upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Durable and linked: only ever built from the engine's `Durable<_>`.
    Committed(BlobInfo),
    /// The content hashes to something else; the session is discarded.
    DigestMismatch,
    /// No such session in this repository.
    UploadUnknown,
    /// The content exceeds the configured maximum upload size; the session is discarded.
    TooLarge,
}

/// Outcome of a cross-repository mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mount {
    Mounted(BlobInfo),
    /// Not mountable: an upload session was opened instead (202 fallback).
    Started(UploadInfo),
}

/// Outcome of storing a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestPut {
    /// Durable.
    Stored,
    /// These referenced blobs or manifests are not in the repository; nothing was stored.
    Missing(Vec<Digest>),
}

/// Outcome of a delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    Done,
    /// Nothing by that name (blob, manifest, tag or upload) in an existing repository.
    NotFound,
    /// The repository does not exist.
    NameUnknown,
}

/// The storage layer's answer to a `Need`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Blob(Option<BlobInfo>),
    Upload(Option<UploadInfo>),
    Finished(Finish),
    Mount(Mount),
    Manifest(Option<ManifestInfo>),
    ManifestPut(ManifestPut),
    Deleted(Deleted),
    Tags(Option<Page>),
    Catalog(Page),
    Referrers(Vec<Referrer>),
    Web(WebResponse),
    Auth(Auth),
    /// An append wrote nothing, through no fault of the store.
    AppendRefused(AppendRefused),
    /// Storage failed (I/O, corruption); the core answers 500 and keeps the connection.
    Failed(String),
    /// The store has no room for the write: 507 with this message (which says so and what
    /// to do, and names nothing inside the store); the connection lives.
    StoreFull(String),
    /// A service the store runs on (its database, its object store) cannot be reached for
    /// now: 503 with `Retry-After` and this message; nothing was changed, and the
    /// connection lives.
    Unavailable(String),
}

/// Seconds a client is asked to wait (`Retry-After`) before retrying a request answered
/// [`Reply::Unavailable`]: a database restarting or failing over is back within seconds.
pub const RETRY_UNAVAILABLE_SECS: u32 = 2;

/// Why `Need::AppendUpload` wrote nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendRefused {
    /// The session no longer ends at the offset asked for: another request appended to it
    /// meanwhile. It holds `have` bytes.
    OutOfOrder { have: u64 },
    /// The bytes would take the session past the maximum upload size.
    TooLarge,
}
