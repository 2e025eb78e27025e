//! The referrers API (spec digest §7.2): the manifests whose `subject` is a digest, as an
//! image index, optionally filtered by `artifactType`.

use super::ask;
use super::next::{Await, Cx, Next};
use super::respond::{RespBody, Response};
use crate::http::response::ResponseHead;
use crate::need::Referrer;
use crate::oci::manifest::OCI_INDEX;
use crate::oci::referrers::index;
use crate::oci::{Digest, RepoName};

/// GET of `/v2/<name>/referrers/<digest>` (end-12a, end-12b).
pub(super) fn list(name: RepoName, digest: Digest, artifact_type: Option<String>) -> Next {
    Next::ask(ask::referrers(name, digest), Listing { artifact_type })
}

struct Listing {
    artifact_type: Option<String>,
}

impl Await for Listing {
    type Reply = Vec<Referrer>;

    fn resume(self, list: Vec<Referrer>, _: &Cx<'_>) -> Next {
        let body = index(&list, self.artifact_type.as_deref());
        let mut r = ResponseHead::new(200);
        r.header("Content-Type", OCI_INDEX);
        if self.artifact_type.is_some() {
            r.header("OCI-Filters-Applied", "artifactType");
        }
        Response::new(r, RespBody::Bytes(body.into())).into()
    }
}
