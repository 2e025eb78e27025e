//! The tags list (spec digest §8.1): one page of a repository's tags.

use super::ask;
use super::next::{Await, Cx, Next};
use super::respond;
use crate::need::Page;
use crate::oci::error::ErrorCode;
use crate::oci::RepoName;

/// GET of the tags list (end-8a, end-8b).
pub(super) fn list(name: RepoName, n: Option<usize>, last: Option<String>, cx: &Cx<'_>) -> Next {
    let eff = cx.page_n(n);
    let listing = Listing {
        name: name.clone(),
        n: eff,
        zero: n == Some(0),
    };
    Next::ask(ask::list_tags(name, eff, last), listing)
}

/// `zero`: the client asked for `n=0`, whose answer links to no next page.
struct Listing {
    name: RepoName,
    n: usize,
    zero: bool,
}

impl Await for Listing {
    type Reply = Option<Page>;

    fn resume(self, page: Option<Page>, _: &Cx<'_>) -> Next {
        let Some(page) = page else {
            return respond::code(ErrorCode::NameUnknown, None).into();
        };
        let Listing { name, n, zero } = self;
        let link = (!zero).then(|| format!("/v2/{name}/tags/list?n={n}&last="));
        respond::list(Some(name.as_str()), "tags", page, link).into()
    }
}
