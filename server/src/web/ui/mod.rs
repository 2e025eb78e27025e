//! The web pages: server-rendered HTML (maud templates, escaped by default), a stylesheet
//! and a little script from `/static/`, sign-in with a token into a server-side session,
//! and the pages people browse. [`answer`] is the one router; a page is a function from
//! the [`Site`], the [`Viewer`] and its path parts to a response, drawn inside
//! [`shell::page`]. Access is the registry's own: a page shows only what the viewer may
//! pull, and what it may not is the same 404 page as what does not exist. Pages run on
//! workers (they read the store); the assets are answered inline.

pub mod assets;
mod contents;
mod here;
mod human;
mod image;
mod orgs;
mod registry;
pub mod respond;
mod search;
pub mod sessions;
pub mod shell;
mod signin;
pub mod site;
mod version;

use crate::auth::policy::Principal;
use crate::auth::{AuthError, Ctx};
use crate::package::path::{self, PackagePath};
use crate::proxies::forwarded_for;
use berth_core::http::percent::percent_decode;
use berth_core::{WebRequest, WebResponse};
use berth_engine::StoreError;
use respond::{cookie, cookie_value};
use shell::store_failed;
pub use site::{Site, Viewer, RESERVED};
use std::sync::Arc;

/// Answers a web request no other part of the server claims.
pub fn answer(site: &Site<'_>, req: &WebRequest, ctx: &Ctx) -> WebResponse {
    let ctx = &site
        .auth
        .for_request(ctx, forwarded_for(&req.headers).as_deref());
    let (viewer, stale) = match viewer(site, req, ctx) {
        Ok(v) => v,
        Err(e) => return store_failed(&Viewer::ANONYMOUS, &e),
    };
    let mut r = route(site, req, ctx, &viewer);
    if stale && !r.headers.iter().any(|(k, _)| k == "Set-Cookie") {
        r.headers
            .push(cookie(sessions::COOKIE, "", site.secure(), Some(0)));
    }
    r
}

fn route(site: &Site<'_>, req: &WebRequest, ctx: &Ctx, v: &Viewer) -> WebResponse {
    let get = req.method == "GET" || req.method == "HEAD";
    match req.path.as_str() {
        "/signin" => return signin::answer(site, req, ctx, v),
        "/signout" => return signin::sign_out(site, req, v),
        _ => {}
    }
    let path = req.path.strip_prefix('/').unwrap_or(&req.path);
    let path = path.strip_suffix('/').unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    let page = match parts[..] {
        [""] => orgs::home as Page,
        ["search"] => search::page_of,
        [_] => orgs::org,
        [_, _] => registry::page_of,
        _ => package_page,
    };
    if !get {
        let mut r = shell::problem(v, 405, "Method not allowed", "This page is read with GET.");
        r.headers.push(respond::header("Allow", "GET, HEAD"));
        return r;
    }
    page(site, req, v, &parts).unwrap_or_else(|e| store_failed(v, &e))
}

/// An image's or a version's page: `package::path` tells an image's name (any number of
/// `/` components) from a version (`:tag`, `@digest`). What follows a version
/// (`…/download`) is not a page: the Download route answers it.
fn package_page(
    site: &Site<'_>,
    req: &WebRequest,
    v: &Viewer,
    parts: &[&str],
) -> Result<WebResponse, StoreError> {
    let at = match path::parse(&percent_decode(&parts.join("/"), false)) {
        Ok(at) => at,
        Err(why) => return Ok(shell::problem(v, 400, "Not an image or version", &why)),
    };
    match at {
        PackagePath::Image { repo } => image::page_of(site, v, &repo),
        PackagePath::Version {
            repo,
            version,
            what: None,
        } => version::page_of(site, req, v, &repo, &version),
        PackagePath::Version {
            repo,
            version,
            what: Some(w),
        } if w == "download" => Ok(download(site, req, v, &repo, &version)),
        _ => Ok(shell::not_found(v)),
    }
}

/// The Download button: the same archive as the API's, with the viewer's access; what
/// keeps a version from having one is a page saying so.
fn download(
    site: &Site<'_>,
    req: &WebRequest,
    v: &Viewer,
    repo: &str,
    version: &path::VersionRef,
) -> WebResponse {
    let env = crate::package::reply::Env {
        e: site.engine,
        auth: site.auth,
        host: site.host,
        downloads: site.downloads,
    };
    let q = crate::web::form::pairs(&req.query);
    let platform = crate::web::form::first(&q, "platform").filter(|p| !p.is_empty());
    match crate::package::download::send(&env, &v.principal, repo, version, platform, req) {
        Ok(r) => r,
        Err((404, _, _)) => shell::not_found(v),
        Err((status, _, why)) => shell::problem(v, status, "No Download", &why),
    }
}

/// A page: the site, the request, the viewer and the path's parts.
type Page = fn(&Site<'_>, &WebRequest, &Viewer, &[&str]) -> Result<WebResponse, StoreError>;

/// The viewer of a request, and whether it presented a session cookie that no longer
/// names a live session (then cleared). A session whose token no longer authenticates
/// (revoked, expired) ends here.
fn viewer(site: &Site<'_>, req: &WebRequest, ctx: &Ctx) -> Result<(Viewer, bool), StoreError> {
    let Some(id) = cookie_value(&req.headers, sessions::COOKIE) else {
        return Ok((Viewer::ANONYMOUS, false));
    };
    let Some(open) = site.sessions.get(id, ctx.now) else {
        return Ok((Viewer::ANONYMOUS, true));
    };
    match site.auth.token(site.engine, &open.secret, ctx) {
        Ok(rec) => Ok((
            Viewer {
                principal: Principal::Token(Arc::new(rec)),
                session: Some(open.id),
                csrf: Some(open.csrf),
            },
            false,
        )),
        Err(AuthError::Invalid(why)) => {
            tracing::info!(
                reason = why,
                "web session ended: its token no longer authenticates"
            );
            site.sessions.end(id);
            Ok((Viewer::ANONYMOUS, true))
        }
        Err(AuthError::Store(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests;
