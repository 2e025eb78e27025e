//! `/{org}/{registry}/{image}`: an image's versions as `package::view` sees them, newest
//! push first: tags (or the bare digest of an untagged one), kind, pushed date, size,
//! platforms, downloads and whether the index has read it yet.

use super::human;
use super::respond::html;
use super::shell::page;
use super::shell::view_failed;
use super::site::{Site, Viewer};
use berth_core::WebResponse;
use berth_engine::StoreError;
use maud::{html, Markup};

/// `/{org}/{registry}/{image}`; not found for a viewer that may not pull it.
pub fn page_of(site: &Site<'_>, v: &Viewer, repo: &str) -> Result<WebResponse, StoreError> {
    let versions = match site.packages(v).versions(repo) {
        Ok(x) => x,
        Err(e) => return view_failed(v, e),
    };
    let (registry, name) = split(repo);
    Ok(html(
        200,
        page(
            v,
            repo,
            html! {
                (crumbs(repo, None))
                h1 { (name) }
                p.lead { "An image in " a href={ "/" (registry) } { (registry) } ": "
                    (versions.len()) @if versions.len() == 1 { " version" } @else { " versions" } "." }
                h2 { "Versions" }
                div.table {
                    table {
                        thead { tr {
                            th { "Version" } th { "Kind" } th { "Pushed" } th.num { "Size" }
                            th { "Platforms" } th.num { "Downloads" } th { "State" }
                        } }
                        tbody {
                            @for ver in &versions {
                                tr {
                                    td {
                                        @if ver.tags.is_empty() {
                                            a href={ "/" (repo) "@" (ver.digest) } { (human::digest(&ver.digest)) }
                                            " " span.muted { "untagged" }
                                        } @else {
                                            @for t in &ver.tags {
                                                a.tag href={ "/" (repo) ":" (t) } { (t) } " "
                                            }
                                            br; (human::digest(&ver.digest))
                                        }
                                    }
                                    td { (ver.kind.as_deref().unwrap_or("—")) }
                                    td { (human::date(ver.pushed_at)) }
                                    td.num { (human::size(ver.size)) }
                                    td {
                                        @for p in &ver.platforms { code { (p) } " " }
                                        @if ver.platforms.is_empty() { span.muted { "—" } }
                                    }
                                    td.num { (ver.downloads) }
                                    td { (state(ver.state)) }
                                }
                            }
                        }
                    }
                }
            },
        ),
    ))
}

/// `org/registry` and the image's own name within it.
pub fn split(repo: &str) -> (String, &str) {
    let mut parts = repo.splitn(3, '/');
    let org = parts.next().unwrap_or("");
    let reg = parts.next().unwrap_or("");
    (format!("{org}/{reg}"), parts.next().unwrap_or(""))
}

/// The trail from the organisation down to the image (and a version of it).
pub fn crumbs(repo: &str, version: Option<&str>) -> Markup {
    let mut parts = repo.splitn(3, '/');
    let org = parts.next().unwrap_or("");
    let reg = parts.next().unwrap_or("");
    let name = parts.next().unwrap_or("");
    html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href={ "/" (org) } { (org) } " / "
            a href={ "/" (org) "/" (reg) } { (reg) } " / "
            @match version {
                Some(ver) => { a href={ "/" (repo) } { (name) } span.muted { (ver) } }
                None => { span.muted { (name) } }
            }
        }
    }
}

/// A version's index state as a badge.
pub fn state(s: &str) -> Markup {
    let (class, text) = match s {
        "indexed" => ("badge ok", "indexed"),
        "partial" => ("badge warn", "partly read"),
        _ => ("badge", "indexing…"),
    };
    html! { span class=(class) { (text) } }
}
