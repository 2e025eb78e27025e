//! Where a version page's links point (this version, a platform, a tab): the version page
//! and its Contents tab both draw links from it.

use crate::package::path::VersionRef;
use berth_core::http::percent::percent_encode;

/// Where a link on the page points: this version, its platform, a tab.
pub struct Here<'a> {
    pub repo: &'a str,
    pub version: &'a VersionRef,
    pub platform: Option<&'a str>,
    pub tab: &'a str,
}

impl Here<'_> {
    /// `/{repo}:{tag}`.
    pub fn base(&self) -> String {
        format!("/{}{}", self.repo, self.version.suffix())
    }

    /// This version on `tab` of `platform`, with any `extra` query pairs.
    pub fn link(&self, tab: &str, platform: Option<&str>, extra: &[(&str, &str)]) -> String {
        let mut q = vec![("tab", tab)];
        if let Some(p) = platform {
            q.push(("platform", p));
        }
        q.extend_from_slice(extra);
        let query: Vec<String> = q
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        format!("{}?{}", self.base(), query.join("&"))
    }

    /// The Download of this version (of `platform`, for an index).
    pub fn download(&self, platform: Option<&str>) -> String {
        match platform {
            Some(p) => format!("{}/download?platform={}", self.base(), percent_encode(p)),
            None => format!("{}/download", self.base()),
        }
    }
}
