//! The catalog (spec digest §8.1, an extension): one page of repository names.

use super::ask;
use super::next::{Await, Cx, Next};
use super::respond;
use crate::need::Page;

/// GET of `/v2/_catalog`.
pub(super) fn list(n: Option<usize>, last: Option<String>, cx: &Cx<'_>) -> Next {
    let eff = cx.page_n(n);
    let listing = Listing {
        n: eff,
        zero: n == Some(0),
    };
    Next::ask(ask::catalog(eff, last), listing)
}

/// `zero`: the client asked for `n=0`, whose answer links to no next page.
struct Listing {
    n: usize,
    zero: bool,
}

impl Await for Listing {
    type Reply = Page;

    fn resume(self, page: Page, _: &Cx<'_>) -> Next {
        let link = (!self.zero).then(|| format!("/v2/_catalog?n={}&last=", self.n));
        respond::list(None, "repositories", page, link).into()
    }
}
