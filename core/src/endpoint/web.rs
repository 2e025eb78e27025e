//! Requests outside `/v2/` (web pages, the JSON APIs, `/metrics`, the token endpoint):
//! the body is gathered within `web_body_bytes`, the request handed to the server whole
//! (`Need::Web`), and its answer framed here.

use super::ask;
use super::next::{Await, Cx, Next};
use super::read::{AfterGather, Body, Gather};
use super::respond::{RespBody, Response};
use crate::http::head::{Framing, Head};
use crate::http::response::ResponseHead;
use crate::need::{WebBody, WebRequest, WebResponse};
use bytes::Bytes;

/// A web request's head is in: gather its body.
pub(super) fn start(h: Head, cx: &Cx<'_>) -> Next {
    let limit = cx.limits.web_body_bytes;
    if let Framing::Length(n) = h.framing {
        if n > limit as u64 {
            return too_large().into();
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
    Next::Read(Body::Gather(Gather { limit, cap, then }))
}

/// 413 for a web body over `web_body_bytes`.
pub(super) fn too_large() -> Response {
    Response::text(413, Bytes::from_static(b"request body too large\n"))
}

/// The whole request is in: hand it to the server.
pub(super) fn forward(req: WebRequest) -> Next {
    Next::ask(ask::web(req), Forwarded)
}

struct Forwarded;

impl Await for Forwarded {
    type Reply = WebResponse;

    fn resume(self, w: WebResponse, _: &Cx<'_>) -> Next {
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
        Response::new(r, body).into()
    }
}
