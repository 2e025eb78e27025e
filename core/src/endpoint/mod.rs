//! The OCI endpoints (spec digest §3-§8) and the web pass-through, one file per part of the
//! protocol. A routed request is first authorized (§9, `Need::Authorize`), then becomes
//! needs, and the storage layer's replies become the exact responses the spec requires.
//!
//! Every step is a function of the request, the reply it waited for and what the
//! connection lets it see (`Cx`), and returns what the connection does next (`Next`):
//! respond, park on a need, or read the body. Nothing here reaches into the connection,
//! so the framing, buffer and timers (`connection.rs`) and the protocol (here) change
//! apart. This file is where the connection comes in: a new head, a gathered body, a body
//! that broke or grew too large.

mod ask;
mod blobs;
mod catalog;
mod delete;
mod manifests;
mod next;
mod read;
mod referrers;
pub(crate) mod respond;
mod tags;
pub(crate) mod uploads;
mod web;

pub use manifests::hash;
pub(crate) use next::{Cx, Next, Pending};
pub(crate) use read::{AfterGather, Body, Upload};

use crate::http::head::Head;
use crate::http::response::ResponseHead;
use crate::limits::Limits;
use crate::need::{Auth, AuthRequest, Refusal, WebRequest};
use crate::oci::error::{message_body, ErrorCode, ErrorEntry};
use crate::oci::route::{Op, Route, RouteError};
use bytes::Bytes;
use next::Await;
use respond::{RespBody, Response};

/// A request head is in, routed.
pub(crate) fn start(h: Head, route: Result<Route, RouteError>, cx: &Cx<'_>) -> Next {
    match route {
        Err(e) => route_error(e).into(),
        Ok(Route::Web) => web::start(h, cx),
        Ok(Route::Oci(op)) => authorize(op, h),
    }
}

fn route_error(e: RouteError) -> Response {
    match e {
        RouteError::NotFound => {
            respond::error(ErrorCode::Unsupported, Some("no such endpoint".into()), 404)
        }
        RouteError::Method(allow) => {
            let mut r = ResponseHead::new(ErrorCode::Unsupported.status());
            r.header("Allow", allow);
            let e = ErrorEntry {
                code: ErrorCode::Unsupported,
                detail: Some("method not allowed here".into()),
            };
            respond::errors_in(r, &[e])
        }
        RouteError::Oci(code, detail) => respond::code(code, Some(detail)),
    }
}

/// Asks whether the caller may do `op`, before any other need and before the body is
/// touched (no `100 Continue` either): spec digest §9.1, a 401 has no side effects.
fn authorize(op: Op, mut h: Head) -> Next {
    let (required, optional) = op.access();
    let req = AuthRequest {
        credentials: h.authorization.take().map(|s| s.into_inner()),
        host: h.host.take(),
        forwarded_for: h.forwarded_for.take(),
        required,
        optional,
    };
    Next::ask(ask::authorize(req), Authorizing { op, head: h })
}

/// A routed request waiting for `Need::Authorize`: everything needed to serve it once
/// granted.
struct Authorizing {
    op: Op,
    head: Head,
}

impl Await for Authorizing {
    type Reply = Auth;

    fn resume(self, auth: Auth, cx: &Cx<'_>) -> Next {
        match auth {
            Auth::Granted { optional } => op(self.op, self.head, optional, cx),
            Auth::Refused(r) => refuse(r).into(),
        }
    }
}

/// Answers a refused request with the server's status, error and headers. An unread
/// body is discarded or the connection closed, as for every early answer.
fn refuse(r: Refusal) -> Response {
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
    Response::new(head, RespBody::Bytes(body.into()))
}

/// Serves an authorized operation. `optional` says whether the optional access (the
/// source of a mount) was granted too.
fn op(op: Op, h: Head, optional: bool, cx: &Cx<'_>) -> Next {
    match op {
        Op::Ping => {
            let mut r = ResponseHead::new(200);
            r.header("Content-Type", "application/json");
            Response::new(r, RespBody::Bytes(Bytes::from_static(b"{}"))).into()
        }
        Op::Catalog { n, last } => catalog::list(n, last, cx),
        Op::BlobGet { name, digest, .. } => blobs::get(name, digest, h.range),
        Op::BlobDelete { name, digest } => blobs::delete(name, digest),
        Op::UploadStart {
            name,
            digest,
            mount,
            from,
        } => uploads::start(name, digest, mount, from, optional, &h, cx),
        Op::UploadStatus { name, upload } => uploads::status(name, upload),
        Op::UploadPatch { name, upload } => uploads::patch(name, upload, &h),
        Op::UploadPut {
            name,
            upload,
            digest,
        } => uploads::put(name, upload, digest, &h),
        Op::UploadCancel { name, upload } => uploads::cancel(name, upload),
        Op::ManifestGet {
            name,
            reference,
            head,
        } => manifests::get(name, reference, head, h.if_none_match),
        Op::ManifestPut {
            name,
            reference,
            tags,
        } => manifests::put(name, reference, tags, h, cx),
        Op::ManifestDelete { name, reference } => manifests::delete(name, reference),
        Op::TagsList { name, n, last } => tags::list(name, n, last, cx),
        Op::Referrers {
            name,
            digest,
            artifact_type,
        } => referrers::list(name, digest, artifact_type),
    }
}

/// A gathered body is in whole.
pub(crate) fn gathered(then: AfterGather, data: Vec<u8>) -> Next {
    match then {
        AfterGather::Manifest {
            name,
            reference,
            tags,
            content_type,
        } => manifests::store(name, reference, tags, content_type, data),
        AfterGather::StartPlain { name } => uploads::open_plain(name),
        AfterGather::Web {
            method,
            path,
            query,
            headers,
        } => web::forward(WebRequest {
            method,
            path,
            query,
            headers,
            body: data.into(),
        }),
    }
}

/// A gathered body outgrew its limit: 413 (the rest is discarded or the connection closes).
pub(crate) fn gather_too_large(then: &AfterGather, limits: &Limits) -> Response {
    match then {
        AfterGather::Manifest { .. } => manifests::too_large(limits),
        AfterGather::StartPlain { .. } => uploads::plain_body_too_large(),
        AfterGather::Web { .. } => web::too_large(),
    }
}
