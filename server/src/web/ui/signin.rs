//! Signing in with an access token and out again. The sign-in form is guarded by a
//! double-submit cookie (`berth_csrf`, set with the form, echoed in a hidden field: another
//! site can neither read it nor set it on this one), since no session exists yet; signing
//! out by the session's own CSRF token. A wrong token counts as a failed authentication,
//! throttled per client like the API's.

use super::respond::{cookie, cookie_value, header, html, redirect};
use super::sessions::{self, csrf_ok, random_id};
use super::shell::{failed, store_failed};
use super::shell::{page, problem};
use super::site::{Site, Viewer};
use crate::auth::{ratelimit, AuthError, Ctx};
use crate::secret::Secret;
use crate::web::form;
use berth_core::{WebRequest, WebResponse};
use maud::html;

/// The sign-in form's double-submit cookie.
const FORM_COOKIE: &str = "berth_csrf";

/// `GET /signin` (the form) and `POST /signin` (signing in).
pub fn answer(site: &Site<'_>, req: &WebRequest, ctx: &Ctx, v: &Viewer) -> WebResponse {
    match req.method.as_str() {
        "GET" | "HEAD" => {
            let (value, set) = match cookie_value(&req.headers, FORM_COOKIE) {
                Some(c) if is_form_token(c) => (c.to_string(), false),
                _ => match random_id() {
                    Ok(c) => (c, true),
                    Err(e) => return failed(v, &e),
                },
            };
            let mut r = form_page(v, 200, &value, None);
            if set {
                r.headers
                    .push(cookie(FORM_COOKIE, &value, site.secure(), None));
            }
            r
        }
        "POST" => sign_in(site, req, ctx, v),
        _ => not_allowed(v, "GET, HEAD, POST"),
    }
}

fn sign_in(site: &Site<'_>, req: &WebRequest, ctx: &Ctx, v: &Viewer) -> WebResponse {
    let Ok(text) = std::str::from_utf8(&req.body) else {
        return problem(v, 400, "Bad request", "The form was not UTF-8.");
    };
    let pairs = form::pairs(text);
    let expected = cookie_value(&req.headers, FORM_COOKIE).unwrap_or("");
    if !is_form_token(expected) || !csrf_ok(expected, form::first(&pairs, "csrf")) {
        return refused(v);
    }
    let token = form::first(&pairs, "token").unwrap_or("").trim();
    if token.is_empty() {
        return form_page(v, 400, expected, Some("Enter an access token."));
    }
    let secret = Secret::new(token);
    let rec = match site.auth.token(site.engine, &secret, ctx) {
        Ok(rec) => rec,
        Err(AuthError::Invalid(why)) => {
            if let Some(wait) = site.auth.failed(ctx, why) {
                let mut r = problem(v, 429, "Too many attempts", &ratelimit::throttled(wait));
                r.headers.push(header("Retry-After", &wait.to_string()));
                return r;
            }
            let msg = format!("That token was not accepted: {why}.");
            return form_page(v, 401, expected, Some(&msg));
        }
        Err(AuthError::Store(e)) => return store_failed(v, &e),
    };
    if let Some(old) = &v.session {
        site.sessions.end(old);
    }
    let open = match site.sessions.open(secret, ctx.now) {
        Ok(o) => o,
        Err(e) => return failed(v, &e),
    };
    tracing::info!(token = %rec.id, "web session opened");
    let to = match &rec.org {
        Some(org) => format!("/{org}"),
        None => "/".to_string(),
    };
    let mut r = redirect(&to);
    r.headers
        .push(cookie(sessions::COOKIE, &open.id, site.secure(), None));
    r
}

/// `POST /signout`: ends the session (its CSRF token required) and clears the cookie.
pub fn sign_out(site: &Site<'_>, req: &WebRequest, v: &Viewer) -> WebResponse {
    if req.method != "POST" {
        return not_allowed(v, "POST");
    }
    if let (Some(id), Some(csrf)) = (&v.session, &v.csrf) {
        let sent = std::str::from_utf8(&req.body).ok().map(form::pairs);
        let sent = sent.as_deref().and_then(|p| form::first(p, "csrf"));
        if !csrf_ok(csrf, sent) {
            return refused(v);
        }
        site.sessions.end(id);
    }
    let mut r = redirect("/");
    r.headers
        .push(cookie(sessions::COOKIE, "", site.secure(), Some(0)));
    r
}

/// A form token this server could have made: 64 hex digits.
fn is_form_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn refused(v: &Viewer) -> WebResponse {
    problem(
        v,
        403,
        "Form expired",
        "The form was not sent from this site's own page, or it is out of date. Go back, reload the page and try again.",
    )
}

fn not_allowed(v: &Viewer, allow: &str) -> WebResponse {
    let mut r = problem(
        v,
        405,
        "Method not allowed",
        "This page does not take that method.",
    );
    r.headers.push(header("Allow", allow));
    r
}

fn form_page(v: &Viewer, status: u16, csrf: &str, error: Option<&str>) -> WebResponse {
    html(
        status,
        page(
            v,
            "Sign in",
            html! {
                div.signin {
                    h1 { "Sign in" }
                    p.lead {
                        "Sign in with an access token to see your organisation's private registries. "
                        "An administrator creates one with "
                        code { "berth token create ORG --scopes read_packages" } "."
                    }
                    @if let Some(e) = error {
                        p.error role="alert" { (e) }
                    }
                    form.panel method="post" action="/signin" {
                        input type="hidden" name="csrf" value=(csrf);
                        div.field {
                            label for="token" { "Access token" }
                            input #token type="password" name="token" required
                                autocomplete="current-password" placeholder="berth_pat_…";
                        }
                        button.primary type="submit" { "Sign in" }
                    }
                }
            },
        ),
    )
}
