//! `/search`: images by name (`q`) and versions by a path inside them (`path`: a whole path
//! such as `/usr/bin/curl`, or a file name anywhere such as `libssl.so.3`), in one
//! organisation (`org`) or every one the viewer may see; only what the viewer may pull.

use super::respond::html;
use super::shell::page;
use super::shell::view_failed;
use super::site::{Site, Viewer};
use crate::package::view::SearchHit;
use crate::web::form;
use berth_core::http::percent::percent_encode;
use berth_core::{WebRequest, WebResponse};
use berth_engine::StoreError;
use maud::{html, Markup};

/// Results shown on one page.
const SHOWN: usize = 50;

/// `/search?q=&path=&org=`.
pub fn page_of(
    site: &Site<'_>,
    req: &WebRequest,
    v: &Viewer,
    _parts: &[&str],
) -> Result<WebResponse, StoreError> {
    let q = form::pairs(&req.query);
    let get = |k: &str| {
        form::first(&q, k)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (name, path) = (get("q"), get("path"));
    // The signed-in organisation by default; `org=` (empty: all) says otherwise.
    let org = match form::first(&q, "org") {
        Some(o) => Some(o.trim().to_owned()).filter(|o| !o.is_empty()),
        None => v.principal.org().map(str::to_owned),
    };
    let asked = name.is_some() || path.is_some();
    let hits = if asked {
        match site
            .packages(v)
            .search(org.as_deref(), name.as_deref(), path.as_deref(), SHOWN)
        {
            Ok(h) => Some(h),
            Err(e) => return view_failed(v, e),
        }
    } else {
        None
    };
    Ok(html(
        200,
        page(
            v,
            "Search",
            html! {
                h1 { "Search" }
                form.search-page action="/search" method="get" role="search" {
                    label { "Image name"
                        input type="search" name="q" value=[name.as_deref()] placeholder="app";
                    }
                    label { "Path inside images"
                        input type="search" name="path" value=[path.as_deref()]
                            placeholder="/usr/bin/curl or libssl.so.3";
                    }
                    label { "Organisation"
                        input type="text" name="org" value=[org.as_deref()] placeholder="all";
                    }
                    button.primary type="submit" { "Search" }
                }
                @match &hits {
                    None => p.lead { "Find images by name, or the versions that hold a file: a whole path (" code { "/usr/bin/curl" } ") or a file name anywhere (" code { "libssl.so.3" } ")." },
                    Some(h) if h.is_empty() => p.lead { "Nothing found" @if let Some(o) = &org { " in " strong { (o) } } "." },
                    Some(h) => (results(h, path.is_some())),
                }
            },
        ),
    ))
}

fn results(hits: &[SearchHit], by_path: bool) -> Markup {
    html! {
        p.lead { (hits.len()) @if hits.len() == SHOWN { "+" } @if hits.len() == 1 { " result" } @else { " results" } "." }
        div.table {
            table {
                thead { tr {
                    th { "Image" } th { "Version" }
                    @if by_path { th { "Paths" } }
                } }
                tbody {
                    @for h in hits {
                        @let version = match h.tags.first() {
                            Some(t) => format!("{}:{t}", h.repository),
                            None => format!("{}@{}", h.repository, h.digest),
                        };
                        tr {
                            td { a href={ "/" (h.repository) } { (h.name) } br; span.muted { (h.registry) } }
                            td {
                                a href={ "/" (version) } {
                                    @match h.tags.first() { Some(t) => code { (t) }, None => code { (super::human::digest(&h.digest)) } }
                                }
                            }
                            @if by_path {
                                td {
                                    @for p in &h.paths {
                                        @let dir = p.rsplit_once('/').map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
                                        a href={ "/" (version) "?tab=contents&path=" (percent_encode(dir)) } { code { (p) } }
                                        br;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
