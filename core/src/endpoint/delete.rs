//! The answer to a DELETE of a blob (end-10) or of a manifest or tag (end-9): 202 when
//! done, else the code for what is missing.

use super::next::{Await, Cx, Next};
use super::respond::{self, Response};
use crate::http::response::ResponseHead;
use crate::need::Deleted;
use crate::oci::error::ErrorCode;

/// `missing`: the code when the repository has no such blob or manifest.
pub(super) struct Deleting {
    pub missing: ErrorCode,
}

impl Await for Deleting {
    type Reply = Deleted;

    fn resume(self, d: Deleted, _: &Cx<'_>) -> Next {
        match d {
            Deleted::Done => Response::empty(ResponseHead::new(202)),
            Deleted::NotFound => respond::code(self.missing, None),
            Deleted::NameUnknown => respond::code(ErrorCode::NameUnknown, None),
        }
        .into()
    }
}
