//! The page shell every page is drawn in: header (product, search, who is signed in),
//! main content, footer; and the pieces several pages share (code boxes with a copy
//! button, the not-found page).

use super::assets;
use super::respond::html;
use super::site::Viewer;
use crate::auth::policy::Principal;
use crate::package::view::ViewError;
use berth_core::WebResponse;
use berth_engine::StoreError;
use berth_engine::TokenKind;
use maud::{html, Markup, DOCTYPE};

/// A whole page titled `title` around `content`.
pub fn page(v: &Viewer, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Berth" }
                link rel="stylesheet" href=(assets::url("/static/berth.css"));
                script src=(assets::url("/static/berth.js")) defer {}
            }
            body {
                header.top {
                    div.wrap {
                        a.brand href="/" { "Berth" }
                        form.search action="/search" method="get" role="search" {
                            input type="search" name="q" placeholder="Search images"
                                aria-label="Search images";
                            button type="submit" { "Search" }
                        }
                        (who(v))
                    }
                }
                main.wrap { (content) }
                footer.wrap {
                    "Berth " (env!("CARGO_PKG_VERSION")) " · a self-hosted OCI container registry"
                }
            }
        }
    }
}

/// Who is signed in, with a sign-out button; or a "Sign in" link.
fn who(v: &Viewer) -> Markup {
    let name = match &v.principal {
        Principal::Anonymous => None,
        Principal::Token(t) => Some(match (t.kind, t.org.as_deref()) {
            (TokenKind::Admin, _) | (_, None) => "admin".to_string(),
            (_, Some(org)) if t.description.is_empty() => format!("{org} · {}", t.id),
            (_, Some(org)) => format!("{org} · {}", t.description),
        }),
    };
    html! {
        nav.who aria-label="Account" {
            @match (name, &v.csrf) {
                (Some(name), Some(csrf)) => {
                    span { "Signed in as " strong { (name) } }
                    form method="post" action="/signout" {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" { "Sign out" }
                    }
                }
                _ => { a.button href="/signin" { "Sign in" } }
            }
        }
    }
}

/// A command in a code box, with a copy button that `berth.js` shows.
pub fn command(text: &str) -> Markup {
    html! {
        div.code {
            pre { code { (text) } }
            button.copy type="button" data-copy=(text) hidden { "Copy" }
        }
    }
}

/// The 404 page: what does not exist and what the viewer may not see look alike.
pub fn not_found(v: &Viewer) -> WebResponse {
    html(
        404,
        page(
            v,
            "Not found",
            html! {
                h1 { "Not found" }
                p.lead {
                    "There is nothing here, or nothing you may see. "
                    @if v.csrf.is_none() {
                        "If it is private, " a href="/signin" { "sign in" } " with a token that may read it."
                    }
                }
            },
        ),
    )
}

/// A page saying what went wrong, with `status`.
pub fn problem(v: &Viewer, status: u16, title: &str, message: &str) -> WebResponse {
    html(
        status,
        page(
            v,
            title,
            html! {
                h1 { (title) }
                p.lead.error { (message) }
            },
        ),
    )
}

/// A view that could not be made as a page: not found (or not the viewer's) is the 404
/// page, a request that makes no sense says why.
pub fn view_failed(v: &Viewer, e: ViewError) -> Result<WebResponse, StoreError> {
    match e {
        ViewError::NotFound(_) => Ok(not_found(v)),
        ViewError::Bad(why) => Ok(problem(v, 400, "Bad request", &why)),
        ViewError::Store(e) => Err(e),
    }
}

/// A 500 page naming a request id; the cause goes to the log.
pub fn failed(v: &Viewer, e: &dyn std::fmt::Display) -> WebResponse {
    problem(v, 500, "Something went wrong", &crate::failure::internal(e))
}

/// The page for a request the store failed: 503 (try again shortly) when its database or
/// object store cannot be reached, 507 when it is full, else 500 naming a request id; the
/// cause goes to the log.
pub fn store_failed(v: &Viewer, e: &StoreError) -> WebResponse {
    let (status, _, message) = crate::failure::store_status(e);
    let title = match status {
        503 => "Temporarily unavailable",
        _ => "Something went wrong",
    };
    let mut r = problem(v, status, title, &message);
    if status == 503 {
        r.headers.push((
            "Retry-After".into(),
            crate::failure::RETRY_AFTER_SECS.to_string(),
        ));
    }
    r
}
