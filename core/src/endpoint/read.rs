//! The request bodies an endpoint asks the connection to read, and what each is for once
//! read. The connection owns the bytes and the framing; these say where they go.

use crate::oci::{Digest, Reference, RepoName, Tag, UploadId};

/// A body to read.
pub(crate) enum Body {
    Upload(Upload),
    Gather(Gather),
}

/// Upload data: each run of bytes leaves as `Need::AppendUpload` at `offset`.
pub(crate) struct Upload {
    pub repo: RepoName,
    pub upload: UploadId,
    pub offset: u64,
    pub then: AfterUpload,
}

/// What to do once an upload body has been appended in full.
pub(crate) enum AfterUpload {
    /// PATCH (end-5): once the store made the bytes durable (`Need::SyncUpload`), answer
    /// 202 with the range it reports.
    Patch,
    /// PUT (end-6) or single POST (end-4b): close the session against `digest`.
    /// `started_here`: the session was opened by this request (single POST), so a body that
    /// cannot be read ends it too instead of leaving it behind for nobody.
    Finish { digest: Digest, started_here: bool },
}

/// Collected into one buffer of at most `limit` bytes (manifests, web requests), `cap` of
/// them reserved up front.
pub(crate) struct Gather {
    pub limit: usize,
    pub cap: usize,
    pub then: AfterGather,
}

/// What to do with a gathered body.
pub(crate) enum AfterGather {
    Manifest {
        name: RepoName,
        reference: Reference,
        tags: Vec<Tag>,
        content_type: Option<String>,
    },
    /// A plain POST (end-4a) that came with a body: read and dropped before the session
    /// is opened, so a body that breaks off opens none.
    StartPlain { name: RepoName },
    Web {
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
    },
}
