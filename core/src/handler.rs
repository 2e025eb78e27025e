//! The OCI endpoints (spec digest §3-§8): a routed request is first authorized (§9,
//! `Need::Authorize`), then becomes needs, and the storage layer's replies become the exact
//! responses the spec requires. Everything here is a method on `Connection` because each
//! step either parks on a need, reads a body, or responds; the framing and buffer handling
//! live in `connection.rs`.

use crate::connection::{BodyTask, Connection, RespBody};
use crate::http::head::{Framing, Head};
use crate::http::response::ResponseHead;
use crate::need::{
    AppendRefused, Auth, AuthRequest, Deleted, Finish, ManifestPut, Mount, Need, NewManifest, Page,
    Referrer, Refusal, Reply, UploadInfo, WebBody, WebRequest,
};
use crate::oci::error::{json_string, message_body, ErrorCode, ErrorEntry};
use crate::oci::manifest;
use crate::oci::range::{self, ContentRange, RangeAnswer};
use crate::oci::referrers;
use crate::oci::route::{Op, Route, RouteError};
use crate::oci::{Algorithm, Digest, Reference, RepoName, Tag, UploadId};
use bytes::Bytes;
use sha2::Digest as _;
use std::time::Instant;

/// What to do once an upload body has been appended in full.
pub(crate) enum AfterUpload {
    /// PATCH (end-5): once the store made the bytes durable (`Need::SyncUpload`), answer
    /// 202 with the range it reports.
    Patch { name: RepoName },
    /// PUT (end-6) or single POST (end-4b): close the session against `digest`.
    /// `started_here`: the session was opened by this request (single POST), so a body that
    /// cannot be read ends it too instead of leaving it behind for nobody.
    Finish {
        name: RepoName,
        digest: Digest,
        started_here: bool,
    },
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

/// A routed request waiting for `Need::Authorize`: everything needed to serve it once granted.
pub(crate) struct Authorizing {
    op: Op,
    head: Head,
}

/// What the reply to the outstanding need means.
pub(crate) enum Pending {
    /// Boxed: a request head is large and parks here once per request.
    Authorize(Box<Authorizing>),
    Catalog {
        n: usize,
        zero: bool,
    },
    Blob {
        digest: Digest,
        range: Option<String>,
    },
    BlobDelete,
    StartPlain {
        name: RepoName,
    },
    StartForBody {
        name: RepoName,
        digest: Digest,
    },
    Mount {
        name: RepoName,
        digest: Digest,
    },
    Status {
        name: RepoName,
    },
    PatchCheck {
        name: RepoName,
        upload: UploadId,
        range: Option<ContentRange>,
    },
    PutCheck {
        name: RepoName,
        upload: UploadId,
        digest: Digest,
        range: Option<ContentRange>,
    },
    Append {
        repo: RepoName,
        upload: UploadId,
        n: usize,
        then: AfterUpload,
    },
    /// A PATCH's bytes are all appended; its 202 waits for them to be durable.
    Synced {
        name: RepoName,
        upload: UploadId,
    },
    Finish {
        name: RepoName,
        digest: Digest,
    },
    Cancel,
    /// A single POST's body broke off: its session is being ended; then 400.
    Abandoned {
        why: &'static str,
    },
    ManifestGet {
        if_none_match: Option<String>,
    },
    ManifestPut {
        name: RepoName,
        digest: Digest,
        tag_params: Vec<Tag>,
        subject: Option<Digest>,
    },
    ManifestDelete,
    Tags {
        name: RepoName,
        n: usize,
        zero: bool,
    },
    Referrers {
        artifact_type: Option<String>,
    },
    Web,
}

impl Connection {
    pub(crate) fn dispatch(&mut self, h: Head, route: Result<Route, RouteError>, now: Instant) {
        let route = match route {
            Ok(r) => r,
            Err(e) => {
                self.set_route("invalid");
                self.route_error(e, now);
                return;
            }
        };
        match route {
            Route::Web => self.web(h, now),
            Route::Oci(op) => {
                self.set_route(op.route_name());
                self.authorize(op, h);
            }
        }
    }

    /// Asks whether the caller may do `op`, before any other need and before the body is
    /// touched (no `100 Continue` either): spec digest §9.1, a 401 has no side effects.
    fn authorize(&mut self, op: Op, mut h: Head) {
        let (required, optional) = op.access();
        let req = AuthRequest {
            credentials: h.authorization.take().map(|s| s.into_inner()),
            host: h.host.take(),
            forwarded_for: h.forwarded_for.take(),
            required,
            optional,
        };
        self.park(
            Need::Authorize(req),
            Pending::Authorize(Box::new(Authorizing { op, head: h })),
        );
    }

    /// Answers a refused request with the server's status, error and headers. An unread
    /// body is discarded or the connection closed, as for every early answer (`respond`).
    fn refuse(&mut self, r: Refusal, now: Instant) {
        // A refusal is an error by definition; a status outside 4xx/5xx is the server's slip,
        // answered with the code's own status rather than a success without effect.
        let status = if (400..=599).contains(&r.status) {
            r.status
        } else {
            r.code.status()
        };
        let mut head = ResponseHead::new(status);
        head.header("Content-Type", "application/json");
        if let Some(c) = &r.www_authenticate {
            head.header("WWW-Authenticate", c);
        }
        if let Some(s) = r.retry_after {
            head.header_fmt("Retry-After", format_args!("{s}"));
        }
        let body = message_body(r.code, &r.message);
        self.respond(head, RespBody::Bytes(body.into()), now);
    }

    fn set_route(&mut self, name: &'static str) {
        if let Some(r) = self.req.as_mut() {
            r.route = name;
        }
    }

    fn route_error(&mut self, e: RouteError, now: Instant) {
        match e {
            RouteError::NotFound => self.respond_error(
                ErrorCode::Unsupported,
                Some("no such endpoint".into()),
                404,
                now,
            ),
            RouteError::Method(allow) => {
                let mut r = ResponseHead::new(ErrorCode::Unsupported.status());
                r.header("Allow", allow);
                let e = ErrorEntry {
                    code: ErrorCode::Unsupported,
                    detail: Some("method not allowed here".into()),
                };
                self.respond_errors_in(r, &[e], now)
            }
            RouteError::Oci(code, detail) => self.respond_code(code, Some(detail), now),
        }
    }

    fn page_n(&self, n: Option<usize>) -> usize {
        let cap = self.limits().page_size;
        n.map_or(cap, |n| n.min(cap))
    }

    /// Serves an authorized operation. `optional` says whether the optional access (the
    /// source of a mount) was granted too.
    fn op(&mut self, op: Op, h: Head, optional: bool, now: Instant) {
        match op {
            Op::Ping => {
                let mut r = ResponseHead::new(200);
                r.header("Content-Type", "application/json");
                self.respond(r, RespBody::Bytes(Bytes::from_static(b"{}")), now);
            }
            Op::Catalog { n, last } => {
                let eff = self.page_n(n);
                self.park(
                    Need::Catalog { n: eff, last },
                    Pending::Catalog {
                        n: eff,
                        zero: n == Some(0),
                    },
                );
            }
            Op::BlobGet { name, digest, .. } => {
                let need = Need::StatBlob {
                    repo: name,
                    digest: digest.clone(),
                };
                self.park(
                    need,
                    Pending::Blob {
                        digest,
                        range: h.range,
                    },
                );
            }
            Op::BlobDelete { name, digest } => {
                self.park(Need::DeleteBlob { repo: name, digest }, Pending::BlobDelete);
            }
            Op::UploadStart {
                name,
                digest,
                mount,
                from,
            } => {
                if mount.is_some() && from.is_some() && !optional {
                    // spec digest §5.8: `from` unreadable behaves like a plain POST (202).
                    self.start_plain(name);
                } else if let Some(m) = mount {
                    let need = Need::MountBlob {
                        repo: name.clone(),
                        digest: m.clone(),
                        from,
                    };
                    self.park(need, Pending::Mount { name, digest: m });
                } else if let Some(d) = digest {
                    if self.over_upload_limit(0, h.content_length()) {
                        return self.too_large(now);
                    }
                    self.park(
                        Need::StartUpload { repo: name.clone() },
                        Pending::StartForBody { name, digest: d },
                    );
                } else {
                    self.start_plain(name);
                }
            }
            Op::UploadStatus { name, upload } => {
                self.park(
                    Need::UploadStatus {
                        repo: name.clone(),
                        upload,
                    },
                    Pending::Status { name },
                );
            }
            Op::UploadPatch { name, upload } => {
                let Ok(range) = self.chunk_range(&h, now) else {
                    return;
                };
                let need = Need::UploadStatus {
                    repo: name.clone(),
                    upload: upload.clone(),
                };
                self.park(
                    need,
                    Pending::PatchCheck {
                        name,
                        upload,
                        range,
                    },
                );
            }
            Op::UploadPut {
                name,
                upload,
                digest,
            } => {
                if !h.has_body() {
                    let need = Need::FinishUpload {
                        repo: name.clone(),
                        upload,
                        digest: digest.clone(),
                    };
                    self.park(need, Pending::Finish { name, digest });
                    return;
                }
                let Ok(range) = self.chunk_range(&h, now) else {
                    return;
                };
                let need = Need::UploadStatus {
                    repo: name.clone(),
                    upload: upload.clone(),
                };
                self.park(
                    need,
                    Pending::PutCheck {
                        name,
                        upload,
                        digest,
                        range,
                    },
                );
            }
            Op::UploadCancel { name, upload } => {
                self.park(Need::CancelUpload { repo: name, upload }, Pending::Cancel);
            }
            Op::ManifestGet {
                name,
                reference,
                head,
            } => {
                self.park(
                    Need::GetManifest {
                        repo: name,
                        reference,
                        pull: !head,
                    },
                    Pending::ManifestGet {
                        if_none_match: h.if_none_match,
                    },
                );
            }
            Op::ManifestPut {
                name,
                reference,
                tags,
            } => {
                let limit = self.limits().manifest_bytes;
                if let Framing::Length(n) = h.framing {
                    if n > limit as u64 {
                        return self.manifest_too_large(now);
                    }
                }
                let cap = match h.framing {
                    Framing::Length(n) => n as usize,
                    _ => 4096,
                };
                let then = AfterGather::Manifest {
                    name,
                    reference,
                    tags,
                    content_type: h.content_type,
                };
                self.read_body(BodyTask::Gather {
                    data: Vec::with_capacity(cap),
                    limit,
                    framing: 0,
                    then,
                });
            }
            Op::ManifestDelete { name, reference } => {
                self.park(
                    Need::DeleteManifest {
                        repo: name,
                        reference,
                    },
                    Pending::ManifestDelete,
                );
            }
            Op::TagsList { name, n, last } => {
                let eff = self.page_n(n);
                let need = Need::ListTags {
                    repo: name.clone(),
                    n: eff,
                    last,
                };
                self.park(
                    need,
                    Pending::Tags {
                        name,
                        n: eff,
                        zero: n == Some(0),
                    },
                );
            }
            Op::Referrers {
                name,
                digest,
                artifact_type,
            } => {
                self.park(
                    Need::Referrers {
                        repo: name,
                        subject: digest,
                    },
                    Pending::Referrers { artifact_type },
                );
            }
        }
    }

    /// Parses an upload chunk's `Content-Range` and checks it against `Content-Length`
    /// (spec digest §5.4 rule 2). `Err` means a response was already sent.
    fn chunk_range(&mut self, h: &Head, now: Instant) -> Result<Option<ContentRange>, ()> {
        let Some(v) = &h.content_range else {
            return Ok(None);
        };
        let Some(cr) = ContentRange::parse(v) else {
            self.respond_code(
                ErrorCode::RangeInvalid,
                Some(format!("bad Content-Range {v}")),
                now,
            );
            return Err(());
        };
        if let Some(len) = h.content_length() {
            if len != cr.len() {
                let detail = format!("Content-Length {len} does not match Content-Range {v}");
                self.respond_code(ErrorCode::SizeInvalid, Some(detail), now);
                return Err(());
            }
        }
        // A chunked body's length is known only once it has been appended, too late to
        // refuse a chunk longer or shorter than its range without storing part of it. The
        // spec's chunked uploads send Content-Length, and no client sends both.
        if matches!(h.framing, Framing::Chunked) {
            let detail = format!(
                "a chunk with Content-Range {v} needs Content-Length, not Transfer-Encoding: chunked"
            );
            self.respond_code(ErrorCode::SizeInvalid, Some(detail), now);
            return Err(());
        }
        Ok(Some(cr))
    }

    fn over_upload_limit(&self, offset: u64, len: Option<u64>) -> bool {
        match (self.limits().upload_bytes, len) {
            (Some(max), Some(len)) => offset.saturating_add(len) > max,
            _ => false,
        }
    }

    fn too_large(&mut self, now: Instant) {
        self.respond_error(
            ErrorCode::SizeInvalid,
            Some("upload exceeds the size limit".into()),
            413,
            now,
        );
    }

    fn web(&mut self, h: Head, now: Instant) {
        let limit = self.limits().web_body_bytes;
        if let Framing::Length(n) = h.framing {
            if n > limit as u64 {
                let mut r = ResponseHead::new(413);
                r.header("Content-Type", "text/plain");
                return self.respond(
                    r,
                    RespBody::Bytes(Bytes::from_static(b"request body too large\n")),
                    now,
                );
            }
        }
        let cap = match h.framing {
            Framing::Length(n) => n as usize,
            _ => 0,
        };
        let then = AfterGather::Web {
            method: h.method_str,
            path: h.path,
            query: h.query,
            headers: h.all_headers,
        };
        self.read_body(BodyTask::Gather {
            data: Vec::with_capacity(cap),
            limit,
            framing: 0,
            then,
        });
    }

    /// A plain POST (end-4a) opens its session at once, or once its body (which no client
    /// should send, and which means nothing) has been read whole.
    fn start_plain(&mut self, name: RepoName) {
        if self.body_pending() {
            let limit = usize::try_from(self.limits().discard_bytes).unwrap_or(usize::MAX);
            self.read_body(BodyTask::Gather {
                data: Vec::new(),
                limit,
                framing: 0,
                then: AfterGather::StartPlain { name },
            });
        } else {
            self.park(
                Need::StartUpload { repo: name.clone() },
                Pending::StartPlain { name },
            );
        }
    }

    /// 413 for a manifest over `manifest_bytes`, its message naming the limit.
    fn manifest_too_large(&mut self, now: Instant) {
        let limit = self.limits().manifest_bytes;
        let message = format!(
            "manifest larger than {} (manifest_bytes)",
            crate::limits::human_bytes(limit as u64)
        );
        self.respond_message(413, ErrorCode::SizeInvalid, &message, now);
    }

    /// A gathered body exceeded its limit: 413 (the rest is discarded or the connection closes).
    pub(crate) fn gather_too_large(&mut self, then: AfterGather, now: Instant) {
        match then {
            AfterGather::Manifest { .. } => self.manifest_too_large(now),
            AfterGather::StartPlain { .. } => self.respond_error(
                ErrorCode::SizeInvalid,
                Some("a POST that opens an upload session carries no body; send the blob with ?digest= or in PATCHes".into()),
                413,
                now,
            ),
            AfterGather::Web { .. } => {
                let mut r = ResponseHead::new(413);
                r.header("Content-Type", "text/plain");
                self.respond(
                    r,
                    RespBody::Bytes(Bytes::from_static(b"request body too large\n")),
                    now,
                );
            }
        }
    }

    /// The whole body of a request has been read.
    pub(crate) fn body_end(&mut self, task: BodyTask, now: Instant) {
        match task {
            BodyTask::Upload {
                repo,
                upload,
                offset: _,
                then,
            } => match then {
                AfterUpload::Patch { name } => {
                    let need = Need::SyncUpload {
                        repo,
                        upload: upload.clone(),
                    };
                    self.park(need, Pending::Synced { name, upload });
                }
                AfterUpload::Finish { name, digest, .. } => {
                    let need = Need::FinishUpload {
                        repo,
                        upload,
                        digest: digest.clone(),
                    };
                    self.park(need, Pending::Finish { name, digest });
                }
            },
            BodyTask::Gather { data, then, .. } => match then {
                AfterGather::Manifest {
                    name,
                    reference,
                    tags,
                    content_type,
                } => {
                    self.manifest_put(name, reference, tags, content_type, data, now);
                }
                AfterGather::StartPlain { name } => {
                    self.park(
                        Need::StartUpload { repo: name.clone() },
                        Pending::StartPlain { name },
                    );
                }
                AfterGather::Web {
                    method,
                    path,
                    query,
                    headers,
                } => {
                    let req = WebRequest {
                        method,
                        path,
                        query,
                        headers,
                        body: data.into(),
                    };
                    self.park(Need::Web(req), Pending::Web);
                }
            },
            // Discard ends in `connection.rs`; reaching here would be a bookkeeping slip.
            BodyTask::Discard { .. } => {}
        }
    }

    /// spec digest §6.4 steps 3-8.
    fn manifest_put(
        &mut self,
        name: RepoName,
        reference: Reference,
        tag_params: Vec<Tag>,
        content_type: Option<String>,
        data: Vec<u8>,
        now: Instant,
    ) {
        let parsed = match manifest::parse(&data, content_type.as_deref()) {
            Ok(p) => p,
            Err(manifest::Invalid(d)) => {
                return self.respond_code(ErrorCode::ManifestInvalid, Some(d), now)
            }
        };
        let alg = match &reference {
            Reference::Digest(d) => d.algorithm(),
            Reference::Tag(_) => Algorithm::Sha256,
        };
        let digest = hash(alg, &data);
        if let Reference::Digest(want) = &reference {
            if *want != digest {
                let detail = format!("manifest digest is {digest}, not {want}");
                return self.respond_code(ErrorCode::DigestInvalid, Some(detail), now);
            }
        }
        let mut tags = Vec::with_capacity(tag_params.len() + 1);
        if let Reference::Tag(t) = reference {
            tags.push(t);
        }
        for t in &tag_params {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        let media_type = parsed.kind.media_type().to_owned();
        let size = data.len() as u64;
        let subject = parsed.subject.clone().map(|s| {
            let r = Referrer {
                media_type: media_type.clone(),
                digest: digest.clone(),
                size,
                artifact_type: parsed.artifact_type.clone(),
                annotations: parsed.annotations.clone(),
            };
            (s, r)
        });
        let m = NewManifest {
            digest: digest.clone(),
            media_type,
            body: data.into(),
            tags,
            blobs: parsed.blobs,
            external: parsed.external,
            manifests: parsed.manifests,
            subject,
        };
        let pending = Pending::ManifestPut {
            name: name.clone(),
            digest,
            tag_params,
            subject: parsed.subject,
        };
        self.park(
            Need::PutManifest {
                repo: name,
                manifest: Box::new(m),
            },
            pending,
        );
    }

    pub(crate) fn on_reply(&mut self, pending: Pending, reply: Reply, now: Instant) {
        use Pending as P;
        if let P::Abandoned { why } = pending {
            // Whether or not the session could be ended, the answer is the body's fault.
            return self.malformed_body(why, now);
        }
        match reply {
            Reply::Failed(msg) => return self.respond_code(ErrorCode::Unknown, Some(msg), now),
            // DENIED: the spec's codes are a closed list, and this one is what a refusal is.
            Reply::StoreFull(msg) => {
                return self.respond_message(507, ErrorCode::Denied, &msg, now)
            }
            _ => {}
        }
        match (pending, reply) {
            (P::Authorize(a), Reply::Auth(Auth::Granted { optional })) => {
                let Authorizing { op, head } = *a;
                self.op(op, head, optional, now);
            }
            (P::Authorize(_), Reply::Auth(Auth::Refused(r))) => self.refuse(r, now),
            (P::Catalog { n, zero }, Reply::Catalog(page)) => {
                let link = (!zero).then(|| format!("/v2/_catalog?n={n}&last="));
                self.respond_list(None, "repositories", page, link, now);
            }
            (P::Blob { digest, range }, Reply::Blob(Some(info))) => {
                let ds = digest.to_string();
                let etag = format!("\"{ds}\"");
                let (status, sent) = match range::answer(range.as_deref(), info.size) {
                    RangeAnswer::Full => (200, 0..info.size),
                    RangeAnswer::Partial(rg) => (206, rg),
                    RangeAnswer::Unsatisfiable => {
                        let mut r = ResponseHead::new(416);
                        r.header_fmt("Content-Range", format_args!("bytes */{}", info.size));
                        let e = ErrorEntry {
                            code: ErrorCode::RangeInvalid,
                            detail: range,
                        };
                        return self.respond_errors_in(r, &[e], now);
                    }
                };
                let mut r = ResponseHead::new(status);
                r.header("Content-Type", "application/octet-stream")
                    .header("Docker-Content-Digest", &ds)
                    .header("ETag", &etag)
                    .header("Accept-Ranges", "bytes");
                if status == 206 {
                    r.header_fmt(
                        "Content-Range",
                        format_args!("bytes {}-{}/{}", sent.start, sent.end - 1, info.size),
                    );
                }
                self.respond(
                    r,
                    RespBody::Blob {
                        blob: info.handle,
                        range: sent,
                    },
                    now,
                );
            }
            (P::Blob { .. }, Reply::Blob(None)) => {
                self.respond_code(ErrorCode::BlobUnknown, None, now)
            }
            (P::BlobDelete, Reply::Deleted(d)) => self.deleted(d, 202, ErrorCode::BlobUnknown, now),
            (P::StartPlain { name }, Reply::Upload(Some(u))) => {
                self.respond(
                    upload_head(202, &name, &u.id, u.offset),
                    RespBody::None,
                    now,
                );
            }
            (P::StartPlain { .. } | P::StartForBody { .. }, Reply::Upload(None)) => self
                .respond_code(
                    ErrorCode::NameUnknown,
                    Some("cannot start an upload here".into()),
                    now,
                ),
            (P::StartForBody { name, digest }, Reply::Upload(Some(u))) => {
                if self.body_pending() {
                    let then = AfterUpload::Finish {
                        name: name.clone(),
                        digest,
                        started_here: true,
                    };
                    self.read_body(BodyTask::Upload {
                        repo: name,
                        upload: u.id,
                        offset: u.offset,
                        then,
                    });
                } else {
                    let need = Need::FinishUpload {
                        repo: name.clone(),
                        upload: u.id,
                        digest: digest.clone(),
                    };
                    self.park(need, Pending::Finish { name, digest });
                }
            }
            (P::Mount { name, digest }, Reply::Mount(Mount::Mounted(_))) => {
                self.respond(blob_created(&name, &digest), RespBody::None, now);
            }
            (P::Mount { name, .. }, Reply::Mount(Mount::Started(u))) => {
                self.respond(
                    upload_head(202, &name, &u.id, u.offset),
                    RespBody::None,
                    now,
                );
            }
            (P::Status { name }, Reply::Upload(Some(u))) => {
                self.respond(
                    upload_head(204, &name, &u.id, u.offset),
                    RespBody::None,
                    now,
                );
            }
            (
                P::Status { .. }
                | P::PatchCheck { .. }
                | P::PutCheck { .. }
                | P::Append { .. }
                | P::Synced { .. },
                Reply::Upload(None),
            ) => self.respond_code(ErrorCode::BlobUploadUnknown, None, now),
            (P::Synced { name, upload }, Reply::Upload(Some(u))) => {
                self.respond(
                    upload_head(202, &name, &upload, u.offset),
                    RespBody::None,
                    now,
                );
            }
            (
                P::PatchCheck {
                    name,
                    upload,
                    range,
                },
                Reply::Upload(Some(u)),
            ) => {
                if !self.chunk_in_order(&name, &u, range, now) {
                    return;
                }
                if self.body_pending() {
                    let then = AfterUpload::Patch { name: name.clone() };
                    self.read_body(BodyTask::Upload {
                        repo: name,
                        upload,
                        offset: u.offset,
                        then,
                    });
                } else {
                    self.respond(
                        upload_head(202, &name, &upload, u.offset),
                        RespBody::None,
                        now,
                    );
                }
            }
            (
                P::PutCheck {
                    name,
                    upload,
                    digest,
                    range,
                },
                Reply::Upload(Some(u)),
            ) => {
                if !self.chunk_in_order(&name, &u, range, now) {
                    return;
                }
                let then = AfterUpload::Finish {
                    name: name.clone(),
                    digest,
                    started_here: false,
                };
                self.read_body(BodyTask::Upload {
                    repo: name,
                    upload,
                    offset: u.offset,
                    then,
                });
            }
            (
                P::Append {
                    repo,
                    upload,
                    n,
                    then,
                },
                Reply::Upload(Some(u)),
            ) => {
                self.appended(
                    n,
                    BodyTask::Upload {
                        repo,
                        upload,
                        offset: u.offset,
                        then,
                    },
                    now,
                );
            }
            (P::Append { repo, upload, .. }, Reply::AppendRefused(r)) => match r {
                AppendRefused::OutOfOrder { have } => {
                    let why = format!(
                        "another request appended to this upload meanwhile; it holds {have} bytes"
                    );
                    self.out_of_order(&repo, &upload, have, why, now)
                }
                AppendRefused::TooLarge => self.too_large(now),
            },
            (P::Finish { name, digest }, Reply::Finished(f)) => match f {
                Finish::Committed(_) => {
                    self.respond(blob_created(&name, &digest), RespBody::None, now)
                }
                Finish::DigestMismatch => {
                    let detail = format!("uploaded content does not hash to {digest}");
                    self.respond_code(ErrorCode::DigestInvalid, Some(detail), now)
                }
                Finish::UploadUnknown => self.respond_code(ErrorCode::BlobUploadUnknown, None, now),
                Finish::TooLarge => self.too_large(now),
            },
            (P::Cancel, Reply::Deleted(d)) => match d {
                Deleted::Done => self.respond(ResponseHead::new(204), RespBody::None, now),
                _ => self.respond_code(ErrorCode::BlobUploadUnknown, None, now),
            },
            (P::ManifestGet { if_none_match }, Reply::Manifest(Some(m))) => {
                // spec digest §2.1: docker sends If-None-Match with the ETag it cached.
                let fresh = if_none_match.is_some_and(|v| etag_matches(&v, &m.digest));
                let mut r = ResponseHead::new(if fresh { 304 } else { 200 });
                r.header("Content-Type", &m.media_type)
                    .header_fmt("Docker-Content-Digest", format_args!("{}", m.digest))
                    .header_fmt("ETag", format_args!("\"{}\"", m.digest));
                self.respond(r, RespBody::Bytes(m.body), now);
            }
            (P::ManifestGet { .. }, Reply::Manifest(None)) => {
                self.respond_code(ErrorCode::ManifestUnknown, None, now)
            }
            (
                P::ManifestPut {
                    name,
                    digest,
                    tag_params,
                    subject,
                },
                Reply::ManifestPut(put),
            ) => match put {
                ManifestPut::Stored => {
                    let ds = digest.to_string();
                    let mut r = ResponseHead::new(201);
                    r.header_fmt("Location", format_args!("/v2/{name}/manifests/{ds}"))
                        .header("Docker-Content-Digest", &ds);
                    if let Some(s) = subject {
                        r.header("OCI-Subject", &s.to_string());
                    }
                    if !tag_params.is_empty() {
                        let list: Vec<&str> = tag_params.iter().map(Tag::as_str).collect();
                        r.header("OCI-Tag", &list.join(","));
                    }
                    self.respond(r, RespBody::None, now);
                }
                ManifestPut::Missing(list) => {
                    let entries: Vec<ErrorEntry> = list
                        .iter()
                        .map(|d| ErrorEntry {
                            code: ErrorCode::ManifestBlobUnknown,
                            detail: Some(d.to_string()),
                        })
                        .collect();
                    if entries.is_empty() {
                        self.respond_code(ErrorCode::ManifestBlobUnknown, None, now);
                    } else {
                        self.respond_errors(400, &entries, now);
                    }
                }
            },
            (P::ManifestDelete, Reply::Deleted(d)) => {
                self.deleted(d, 202, ErrorCode::ManifestUnknown, now)
            }
            (P::Tags { name, n, zero }, Reply::Tags(Some(page))) => {
                let link = (!zero).then(|| format!("/v2/{name}/tags/list?n={n}&last="));
                self.respond_list(Some(name.as_str()), "tags", page, link, now);
            }
            (P::Tags { .. }, Reply::Tags(None)) => {
                self.respond_code(ErrorCode::NameUnknown, None, now)
            }
            (P::Referrers { artifact_type }, Reply::Referrers(list)) => {
                let body = referrers::index(&list, artifact_type.as_deref());
                let mut r = ResponseHead::new(200);
                r.header("Content-Type", manifest::OCI_INDEX);
                if artifact_type.is_some() {
                    r.header("OCI-Filters-Applied", "artifactType");
                }
                self.respond(r, RespBody::Bytes(body.into()), now);
            }
            (P::Web, Reply::Web(w)) => {
                let mut r = ResponseHead::new(w.status);
                if !w.content_type.is_empty() {
                    r.header("Content-Type", &w.content_type);
                }
                for (k, v) in &w.headers {
                    // Framing is the core's to write, and so is Date (from the driver).
                    let ours = ["content-length", "connection", "transfer-encoding", "date"]
                        .iter()
                        .any(|f| k.eq_ignore_ascii_case(f));
                    if !ours {
                        r.header(k, v);
                    }
                }
                let body = match w.body {
                    WebBody::Bytes(b) => RespBody::Bytes(b),
                    WebBody::Pieces(ps) => RespBody::Pieces(ps),
                };
                self.respond(r, body, now);
            }
            (_, other) => {
                // The server answered with the wrong variant: its bug, not the peer's.
                // Fail this request visibly rather than guess.
                let detail = format!(
                    "storage answered with an unexpected reply: {}",
                    reply_name(&other)
                );
                if let Some(r) = self.req.as_mut() {
                    r.keep_alive = false;
                }
                self.respond_code(ErrorCode::Unknown, Some(detail), now);
            }
        }
    }

    /// spec digest §5.4 rule 3: a chunk must start at the session length; 416 keeps it.
    fn chunk_in_order(
        &mut self,
        name: &RepoName,
        u: &UploadInfo,
        range: Option<ContentRange>,
        now: Instant,
    ) -> bool {
        if let Some(cr) = range {
            if cr.start != u.offset {
                let why = format!(
                    "chunk starts at {}, session has {} bytes",
                    cr.start, u.offset
                );
                self.out_of_order(name, &u.id, u.offset, why, now);
                return false;
            }
        }
        let len = self
            .req
            .as_ref()
            .and_then(|r| r.body.as_ref())
            .and_then(|d| d.remaining());
        if self.over_upload_limit(u.offset, len) {
            self.too_large(now);
            return false;
        }
        true
    }

    /// 416 `RANGE_INVALID` for bytes that do not start where the session ends (spec §5.4),
    /// with the session's `Range` so the client can resume.
    fn out_of_order(
        &mut self,
        name: &RepoName,
        upload: &UploadId,
        have: u64,
        why: String,
        now: Instant,
    ) {
        let r = upload_head(416, name, upload, have);
        let e = ErrorEntry {
            code: ErrorCode::RangeInvalid,
            detail: Some(why),
        };
        self.respond_errors_in(r, &[e], now);
    }

    fn deleted(&mut self, d: Deleted, ok: u16, missing: ErrorCode, now: Instant) {
        match d {
            Deleted::Done => self.respond(ResponseHead::new(ok), RespBody::None, now),
            Deleted::NotFound => self.respond_code(missing, None, now),
            Deleted::NameUnknown => self.respond_code(ErrorCode::NameUnknown, None, now),
        }
    }

    /// Tags list and catalog bodies with the `Link` header (spec digest §8.1).
    fn respond_list(
        &mut self,
        name: Option<&str>,
        key: &str,
        page: Page,
        link: Option<String>,
        now: Instant,
    ) {
        let mut body =
            Vec::with_capacity(32 + page.items.iter().map(|i| i.len() + 3).sum::<usize>());
        body.push(b'{');
        if let Some(n) = name {
            body.extend_from_slice(b"\"name\":");
            json_string(&mut body, n);
            body.push(b',');
        }
        json_string(&mut body, key);
        body.extend_from_slice(b":[");
        for (i, it) in page.items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            json_string(&mut body, it);
        }
        body.extend_from_slice(b"]}");
        let mut r = ResponseHead::new(200);
        r.header("Content-Type", "application/json");
        if let (Some(prefix), true, Some(last)) = (link, page.more, page.items.last()) {
            r.header_fmt("Link", format_args!("<{prefix}{last}>; rel=\"next\""));
        }
        self.respond(r, RespBody::Bytes(body.into()), now);
    }
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

/// Digest of `data` with `alg` (no canonicalisation: the exact bytes, spec digest §1.3).
pub fn hash(alg: Algorithm, data: &[u8]) -> Digest {
    match alg {
        Algorithm::Sha256 => Digest::from_hash(alg, &sha2::Sha256::digest(data)),
        Algorithm::Sha512 => Digest::from_hash(alg, &sha2::Sha512::digest(data)),
    }
}

/// Whether an `If-None-Match` list names the digest's ETag (or is `*`).
fn etag_matches(v: &str, d: &Digest) -> bool {
    let want = d.to_string();
    v.split(',').map(str::trim).any(|t| {
        let t = t.strip_prefix("W/").unwrap_or(t);
        t == "*" || t.strip_prefix('"').and_then(|t| t.strip_suffix('"')) == Some(want.as_str())
    })
}

fn reply_name(r: &Reply) -> &'static str {
    match r {
        Reply::Blob(_) => "Blob",
        Reply::Upload(_) => "Upload",
        Reply::Finished(_) => "Finished",
        Reply::Mount(_) => "Mount",
        Reply::Manifest(_) => "Manifest",
        Reply::ManifestPut(_) => "ManifestPut",
        Reply::Deleted(_) => "Deleted",
        Reply::Tags(_) => "Tags",
        Reply::Catalog(_) => "Catalog",
        Reply::Referrers(_) => "Referrers",
        Reply::Web(_) => "Web",
        Reply::Auth(_) => "Auth",
        Reply::AppendRefused(_) => "AppendRefused",
        Reply::Failed(_) => "Failed",
        Reply::StoreFull(_) => "StoreFull",
    }
}
