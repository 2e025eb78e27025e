//! Blob uploads (spec digest §5): opening a session (plain POST, single POST with its
//! body, cross-repository mount), its status, chunks (PATCH), the closing PUT, cancel, and
//! the answers to the appends the connection streams a body through.

use super::ask::{self, Appended, Ignored};
use super::next::{Await, Cx, Next, Pending};
use super::read::{AfterGather, AfterUpload, Body, Gather, Upload};
use super::respond::{self, Response};
use crate::http::head::{Framing, Head};
use crate::http::response::ResponseHead;
use crate::need::{AppendRefused, Deleted, Finish, Mount, UploadInfo};
use crate::oci::error::{ErrorCode, ErrorEntry};
use crate::oci::range::ContentRange;
use crate::oci::{Digest, RepoName, UploadId};

/// POST (end-4a, end-4b with `digest`, end-11 with `mount`). `optional`: the source of a
/// mount may be read.
pub(super) fn start(
    name: RepoName,
    digest: Option<Digest>,
    mount: Option<Digest>,
    from: Option<RepoName>,
    optional: bool,
    h: &Head,
    cx: &Cx<'_>,
) -> Next {
    if mount.is_some() && from.is_some() && !optional {
        // spec digest §5.8: `from` unreadable behaves like a plain POST (202).
        start_plain(name, cx)
    } else if let Some(m) = mount {
        let ask = ask::mount_blob(name.clone(), m.clone(), from);
        Next::ask(ask, Mounting { name, digest: m })
    } else if let Some(digest) = digest {
        if over_upload_limit(cx, 0, h.content_length()) {
            return too_large().into();
        }
        Next::ask(ask::start_upload(name.clone()), Single { name, digest })
    } else {
        start_plain(name, cx)
    }
}

/// A plain POST (end-4a) opens its session at once, or once its body (which no client
/// should send, and which means nothing) has been read whole.
fn start_plain(name: RepoName, cx: &Cx<'_>) -> Next {
    if cx.body_pending() {
        let limit = usize::try_from(cx.limits.discard_bytes).unwrap_or(usize::MAX);
        Next::Read(Body::Gather(Gather {
            limit,
            cap: 0,
            then: AfterGather::StartPlain { name },
        }))
    } else {
        open_plain(name)
    }
}

/// Opens a plain POST's session; its 202 tells the client where to send the bytes.
pub(super) fn open_plain(name: RepoName) -> Next {
    let ask = ask::start_upload(name.clone());
    Next::ask(
        ask,
        Located {
            name,
            status: 202,
            id: None,
            missing: cannot_start,
        },
    )
}

/// 413 for a plain POST whose body outgrew `discard_bytes`.
pub(super) fn plain_body_too_large() -> Response {
    respond::error(
        ErrorCode::SizeInvalid,
        Some("a POST that opens an upload session carries no body; send the blob with ?digest= or in PATCHes".into()),
        413,
    )
}

/// A session's answer once storage says where it stands: `status` with the session's
/// headers, or `missing()` when there is no such session.
struct Located {
    name: RepoName,
    status: u16,
    /// The session the request named (a PATCH's 202); `None` takes the reply's.
    id: Option<UploadId>,
    missing: fn() -> Next,
}

impl Await for Located {
    type Reply = Option<UploadInfo>;

    fn resume(self, u: Option<UploadInfo>, _: &Cx<'_>) -> Next {
        let Some(u) = u else {
            return (self.missing)();
        };
        let id = self.id.as_ref().unwrap_or(&u.id);
        Response::empty(upload_head(self.status, &self.name, id, u.offset)).into()
    }
}

/// A single POST's session is open: its body goes in, then the session closes.
struct Single {
    name: RepoName,
    digest: Digest,
}

impl Await for Single {
    type Reply = Option<UploadInfo>;

    fn resume(self, u: Option<UploadInfo>, cx: &Cx<'_>) -> Next {
        let Some(u) = u else {
            return cannot_start();
        };
        if cx.body_pending() {
            Next::Read(Body::Upload(Upload {
                repo: self.name,
                upload: u.id,
                offset: u.offset,
                then: AfterUpload::Finish {
                    digest: self.digest,
                    started_here: true,
                },
            }))
        } else {
            finish(self.name, u.id, self.digest)
        }
    }
}

fn cannot_start() -> Next {
    respond::code(
        ErrorCode::NameUnknown,
        Some("cannot start an upload here".into()),
    )
    .into()
}

struct Mounting {
    name: RepoName,
    digest: Digest,
}

impl Await for Mounting {
    type Reply = Mount;

    fn resume(self, m: Mount, _: &Cx<'_>) -> Next {
        match m {
            Mount::Mounted(_) => Response::empty(blob_created(&self.name, &self.digest)),
            Mount::Started(u) => Response::empty(upload_head(202, &self.name, &u.id, u.offset)),
        }
        .into()
    }
}

/// GET of a session (end-13).
pub(super) fn status(name: RepoName, upload: UploadId) -> Next {
    let ask = ask::upload_status(name.clone(), upload);
    Next::ask(
        ask,
        Located {
            name,
            status: 204,
            id: None,
            missing: unknown,
        },
    )
}

/// PATCH (end-5): the session's length is checked against the chunk before any byte is
/// read.
pub(super) fn patch(name: RepoName, upload: UploadId, h: &Head) -> Next {
    let range = match chunk_range(h) {
        Ok(r) => r,
        Err(r) => return r.into(),
    };
    let ask = ask::upload_status(name.clone(), upload.clone());
    Next::ask(
        ask,
        Chunk {
            name,
            upload,
            range,
            then: AfterUpload::Patch,
        },
    )
}

/// PUT (end-6): closes the session, after appending the body if it has one.
pub(super) fn put(name: RepoName, upload: UploadId, digest: Digest, h: &Head) -> Next {
    if !h.has_body() {
        return finish(name, upload, digest);
    }
    let range = match chunk_range(h) {
        Ok(r) => r,
        Err(r) => return r.into(),
    };
    let ask = ask::upload_status(name.clone(), upload.clone());
    let then = AfterUpload::Finish {
        digest,
        started_here: false,
    };
    Next::ask(
        ask,
        Chunk {
            name,
            upload,
            range,
            then,
        },
    )
}

/// A PATCH or PUT chunk waiting for the session's length.
struct Chunk {
    name: RepoName,
    upload: UploadId,
    range: Option<ContentRange>,
    then: AfterUpload,
}

impl Await for Chunk {
    type Reply = Option<UploadInfo>;

    fn resume(self, u: Option<UploadInfo>, cx: &Cx<'_>) -> Next {
        let Some(u) = u else {
            return unknown();
        };
        if let Err(r) = chunk_in_order(&self.name, &u, self.range, cx) {
            return r.into();
        }
        // A PATCH without a body appends nothing; a PUT's body was there when it parked.
        if matches!(self.then, AfterUpload::Patch) && !cx.body_pending() {
            let head = upload_head(202, &self.name, &self.upload, u.offset);
            return Response::empty(head).into();
        }
        Next::Read(Body::Upload(Upload {
            repo: self.name,
            upload: self.upload,
            offset: u.offset,
            then: self.then,
        }))
    }
}

/// DELETE of a session (end-14).
pub(super) fn cancel(name: RepoName, upload: UploadId) -> Next {
    Next::ask(ask::cancel_upload(name, upload), Cancelling)
}

struct Cancelling;

impl Await for Cancelling {
    type Reply = Deleted;

    fn resume(self, d: Deleted, _: &Cx<'_>) -> Next {
        match d {
            Deleted::Done => Response::empty(ResponseHead::new(204)).into(),
            _ => unknown(),
        }
    }
}

/// The state of `n` bytes of `upload` handed out in `Need::AppendUpload` (at its offset).
pub(crate) fn appending(upload: Upload, n: usize) -> Pending {
    Pending::new(Appending { upload, n })
}

struct Appending {
    upload: Upload,
    n: usize,
}

impl Await for Appending {
    type Reply = Appended;

    fn resume(self, reply: Appended, _: &Cx<'_>) -> Next {
        let Upload {
            repo, upload, then, ..
        } = self.upload;
        match reply {
            Ok(Some(u)) => Next::Appended(
                self.n,
                Upload {
                    repo,
                    upload,
                    offset: u.offset,
                    then,
                },
            ),
            Ok(None) => unknown(),
            Err(AppendRefused::OutOfOrder { have }) => {
                let why = format!(
                    "another request appended to this upload meanwhile; it holds {have} bytes"
                );
                out_of_order(&repo, &upload, have, why).into()
            }
            Err(AppendRefused::TooLarge) => too_large().into(),
        }
    }
}

/// The whole body of an upload request has been appended.
pub(crate) fn streamed(u: Upload) -> Next {
    match u.then {
        // The 202 waits for the bytes to be durable.
        AfterUpload::Patch => {
            let ask = ask::sync_upload(u.repo.clone(), u.upload.clone());
            Next::ask(
                ask,
                Located {
                    name: u.repo,
                    status: 202,
                    id: Some(u.upload),
                    missing: unknown,
                },
            )
        }
        AfterUpload::Finish { digest, .. } => finish(u.repo, u.upload, digest),
    }
}

/// An upload body's framing broke: 400, after ending the session if this request opened
/// it (it would be left to nobody).
pub(crate) fn broken(u: Upload, why: &'static str) -> Next {
    match u.then {
        AfterUpload::Finish {
            started_here: true, ..
        } => Next::ask(
            ask::cancel_upload(u.repo, u.upload).ignored(),
            Abandoned { why },
        ),
        _ => respond::malformed_body(why).into(),
    }
}

/// A single POST whose body broke off, its session being ended.
struct Abandoned {
    why: &'static str,
}

impl Await for Abandoned {
    type Reply = Ignored;

    fn resume(self, _: Ignored, _: &Cx<'_>) -> Next {
        // Whether or not the session could be ended, the answer is the body's fault.
        respond::malformed_body(self.why).into()
    }
}

fn finish(name: RepoName, upload: UploadId, digest: Digest) -> Next {
    let ask = ask::finish_upload(name.clone(), upload, digest.clone());
    Next::ask(ask, Finishing { name, digest })
}

struct Finishing {
    name: RepoName,
    digest: Digest,
}

impl Await for Finishing {
    type Reply = Finish;

    fn resume(self, f: Finish, _: &Cx<'_>) -> Next {
        match f {
            Finish::Committed(_) => Response::empty(blob_created(&self.name, &self.digest)),
            Finish::DigestMismatch => {
                let detail = format!("uploaded content does not hash to {}", self.digest);
                respond::code(ErrorCode::DigestInvalid, Some(detail))
            }
            Finish::UploadUnknown => return unknown(),
            Finish::TooLarge => too_large(),
        }
        .into()
    }
}

fn unknown() -> Next {
    respond::code(ErrorCode::BlobUploadUnknown, None).into()
}

/// Parses an upload chunk's `Content-Range` and checks it against `Content-Length`
/// (spec digest §5.4 rule 2). `Err` is the answer.
fn chunk_range(h: &Head) -> Result<Option<ContentRange>, Response> {
    let Some(v) = &h.content_range else {
        return Ok(None);
    };
    let Some(cr) = ContentRange::parse(v) else {
        let detail = format!("bad Content-Range {v}");
        return Err(respond::code(ErrorCode::RangeInvalid, Some(detail)));
    };
    if let Some(len) = h.content_length() {
        if len != cr.len() {
            let detail = format!("Content-Length {len} does not match Content-Range {v}");
            return Err(respond::code(ErrorCode::SizeInvalid, Some(detail)));
        }
    }
    // A chunked body's length is known only once it has been appended, too late to
    // refuse a chunk longer or shorter than its range without storing part of it. The
    // spec's chunked uploads send Content-Length, and no client sends both.
    if matches!(h.framing, Framing::Chunked) {
        let detail = format!(
            "a chunk with Content-Range {v} needs Content-Length, not Transfer-Encoding: chunked"
        );
        return Err(respond::code(ErrorCode::SizeInvalid, Some(detail)));
    }
    Ok(Some(cr))
}

/// spec digest §5.4 rule 3: a chunk must start at the session length; 416 keeps it.
fn chunk_in_order(
    name: &RepoName,
    u: &UploadInfo,
    range: Option<ContentRange>,
    cx: &Cx<'_>,
) -> Result<(), Response> {
    if let Some(cr) = range {
        if cr.start != u.offset {
            let why = format!(
                "chunk starts at {}, session has {} bytes",
                cr.start, u.offset
            );
            return Err(out_of_order(name, &u.id, u.offset, why));
        }
    }
    if over_upload_limit(cx, u.offset, cx.body_len()) {
        return Err(too_large());
    }
    Ok(())
}

fn over_upload_limit(cx: &Cx<'_>, offset: u64, len: Option<u64>) -> bool {
    match (cx.limits.upload_bytes, len) {
        (Some(max), Some(len)) => offset.saturating_add(len) > max,
        _ => false,
    }
}

/// 413 for an upload past `upload_bytes`.
pub(crate) fn too_large() -> Response {
    respond::error(
        ErrorCode::SizeInvalid,
        Some("upload exceeds the size limit".into()),
        413,
    )
}

/// 416 `RANGE_INVALID` for bytes that do not start where the session ends (spec §5.4),
/// with the session's `Range` so the client can resume.
fn out_of_order(name: &RepoName, upload: &UploadId, have: u64, why: String) -> Response {
    let r = upload_head(416, name, upload, have);
    let e = ErrorEntry {
        code: ErrorCode::RangeInvalid,
        detail: Some(why),
    };
    respond::errors_in(r, &[e])
}

/// Upload session headers (spec digest §5.2, §5.4 rule 5-7, §5.5).
fn upload_head(status: u16, name: &RepoName, id: &UploadId, len: u64) -> ResponseHead {
    let mut r = ResponseHead::new(status);
    r.header_fmt("Location", format_args!("/v2/{name}/blobs/uploads/{id}"))
        .header_fmt("Range", format_args!("0-{}", len.max(1) - 1))
        .header("Docker-Upload-UUID", id.as_str());
    r
}

/// 201 for a blob that is now in the repository (end-4b, end-6, end-11).
fn blob_created(name: &RepoName, digest: &Digest) -> ResponseHead {
    let ds = digest.to_string();
    let mut r = ResponseHead::new(201);
    r.header_fmt("Location", format_args!("/v2/{name}/blobs/{ds}"))
        .header("Docker-Content-Digest", &ds);
    r
}
