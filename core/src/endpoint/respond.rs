//! Responses more than one endpoint gives: the OCI error bodies, the 400 for a broken
//! chunked body, deletes, and the paged name lists. Values only; the connection frames and
//! queues them.

use crate::http::response::ResponseHead;
use crate::need::{BlobHandle, Page, WebPiece};
use crate::oci::error::{error_body, json_string, message_body, ErrorCode, ErrorEntry};
use bytes::Bytes;
use std::ops::Range;

/// A response head and its body: how a request ends.
pub(crate) struct Response {
    pub head: ResponseHead,
    pub body: RespBody,
}

/// A response body.
pub(crate) enum RespBody {
    None,
    Bytes(Bytes),
    Blob {
        blob: BlobHandle,
        range: Range<u64>,
    },
    /// A web body of bytes and blob ranges, sent in order.
    Pieces(Vec<WebPiece>),
}

impl Response {
    pub(crate) fn new(head: ResponseHead, body: RespBody) -> Response {
        Response { head, body }
    }

    /// Headers only (201, 202, 204, and the upload session answers).
    pub(crate) fn empty(head: ResponseHead) -> Response {
        Response::new(head, RespBody::None)
    }

    /// A `text/plain` body, for answers outside the OCI error format.
    pub(crate) fn text(status: u16, body: Bytes) -> Response {
        let mut head = ResponseHead::new(status);
        head.header("Content-Type", "text/plain");
        Response::new(head, RespBody::Bytes(body))
    }

    /// A JSON body; `Content-Type` follows the headers `head` already has.
    pub(crate) fn json(head: ResponseHead, body: Vec<u8>) -> Response {
        let mut head = head;
        head.header("Content-Type", "application/json");
        Response::new(head, RespBody::Bytes(body.into()))
    }
}

/// An OCI error with the code's own status.
pub(crate) fn code(code: ErrorCode, detail: Option<String>) -> Response {
    error(code, detail, code.status())
}

/// An OCI error with `status` in place of the code's own.
pub(crate) fn error(code: ErrorCode, detail: Option<String>, status: u16) -> Response {
    errors_in(ResponseHead::new(status), &[ErrorEntry { code, detail }])
}

/// An OCI error body under `head`, which carries the status and any headers of its own
/// (`Allow`, `Range`, `Content-Range`).
pub(crate) fn errors_in(head: ResponseHead, entries: &[ErrorEntry]) -> Response {
    Response::json(head, error_body(entries))
}

/// An OCI error whose message is the caller's own (it names a limit or a cause).
pub(crate) fn message(status: u16, code: ErrorCode, message: &str) -> Response {
    Response::json(ResponseHead::new(status), message_body(code, message))
}

/// 503 UNAVAILABLE with `Retry-After`: the store's database or object store cannot be
/// reached for now.
pub(crate) fn unavailable(message: &str) -> Response {
    let mut head = ResponseHead::new(503);
    head.header_fmt(
        "Retry-After",
        format_args!("{}", crate::need::RETRY_UNAVAILABLE_SECS),
    );
    Response::json(head, message_body(ErrorCode::Unavailable, message))
}

/// 400 for a chunked body whose framing broke (the connection then closes).
pub(crate) fn malformed_body(why: &'static str) -> Response {
    let mut body = b"malformed chunked body: ".to_vec();
    body.extend_from_slice(why.as_bytes());
    body.push(b'\n');
    Response::text(400, body.into())
}

/// Tags list and catalog bodies with the `Link` header (spec digest §8.1).
pub(crate) fn list(name: Option<&str>, key: &str, page: Page, link: Option<String>) -> Response {
    let mut body = Vec::with_capacity(32 + page.items.iter().map(|i| i.len() + 3).sum::<usize>());
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
    Response::new(r, RespBody::Bytes(body.into()))
}
