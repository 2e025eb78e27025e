//! Blobs (spec digest §4, §8.2): GET and HEAD, whole or by `Range`, and DELETE.

use super::ask;
use super::delete::Deleting;
use super::next::{Await, Cx, Next};
use super::respond::{self, RespBody, Response};
use crate::http::response::ResponseHead;
use crate::need::BlobInfo;
use crate::oci::error::{ErrorCode, ErrorEntry};
use crate::oci::range::{self, RangeAnswer};
use crate::oci::{Digest, RepoName};

/// GET or HEAD of a blob (end-2); `range` is the request's `Range` header.
pub(super) fn get(name: RepoName, digest: Digest, range: Option<String>) -> Next {
    Next::ask(ask::stat_blob(name, digest.clone()), Get { digest, range })
}

struct Get {
    digest: Digest,
    range: Option<String>,
}

impl Await for Get {
    type Reply = Option<BlobInfo>;

    fn resume(self, info: Option<BlobInfo>, _: &Cx<'_>) -> Next {
        let Some(info) = info else {
            return respond::code(ErrorCode::BlobUnknown, None).into();
        };
        let ds = self.digest.to_string();
        let etag = format!("\"{ds}\"");
        let (status, sent) = match range::answer(self.range.as_deref(), info.size) {
            RangeAnswer::Full => (200, 0..info.size),
            RangeAnswer::Partial(rg) => (206, rg),
            RangeAnswer::Unsatisfiable => {
                let mut r = ResponseHead::new(416);
                r.header_fmt("Content-Range", format_args!("bytes */{}", info.size));
                let e = ErrorEntry {
                    code: ErrorCode::RangeInvalid,
                    detail: self.range,
                };
                return respond::errors_in(r, &[e]).into();
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
        let body = RespBody::Blob {
            blob: info.handle,
            range: sent,
        };
        Response::new(r, body).into()
    }
}

/// DELETE of a blob (end-10).
pub(super) fn delete(name: RepoName, digest: Digest) -> Next {
    Next::ask(
        ask::delete_blob(name, digest),
        Deleting {
            missing: ErrorCode::BlobUnknown,
        },
    )
}
