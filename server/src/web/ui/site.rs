//! What every page reads: the [`Site`] (the store, the sessions, the settings) and the
//! [`Viewer`] (who is looking), and the top-level paths no organisation may take. The router
//! (`mod.rs`) and the pages import them from here, so no page reaches back into the router.

use super::sessions::Sessions;
use crate::auth::policy::Principal;
use crate::auth::Authority;
use crate::config::UiSettings;
use crate::package::downloads::Downloads;
use crate::package::view;
use berth_engine::Engine;

/// Top-level paths the server answers itself; an organisation may not take one as its
/// slug, or its page could never be reached.
pub const RESERVED: &[&str] = &[
    "api", "auth", "v2", "static", "signin", "signout", "search", "healthz", "metrics",
];

/// What the pages read and answer with.
pub struct Site<'a> {
    pub engine: &'a Engine,
    pub auth: &'a Authority,
    pub sessions: &'a Sessions,
    pub settings: &'a UiSettings,
    /// Pulls and Downloads not yet written, which the pages add to the stored counts.
    pub downloads: &'a Downloads,
    /// The host images are named by, for the dependencies a version lists.
    pub host: &'a str,
}

impl Site<'_> {
    /// Whether cookies get `Secure`: the configured public URL is https.
    pub fn secure(&self) -> bool {
        self.auth
            .settings
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    /// What `v` may see of the packages: every page's values come from here.
    pub fn packages<'s>(&'s self, v: &'s Viewer) -> view::Viewer<'s> {
        view::Viewer {
            e: self.engine,
            p: &v.principal,
            host: self.host,
            downloads: self.downloads,
        }
    }
}

/// Who is looking at a page.
pub struct Viewer {
    pub principal: Principal,
    /// The session's id, when signed in.
    pub session: Option<String>,
    /// The session's CSRF token, which its forms carry.
    pub csrf: Option<String>,
}

impl Viewer {
    pub const ANONYMOUS: Viewer = Viewer {
        principal: Principal::Anonymous,
        session: None,
        csrf: None,
    };
}
