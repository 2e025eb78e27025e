//! `/{org}/{registry}`: the registry's images as `package::view` sees them (the newest
//! version's tags, the last push, the newest version's size once indexed, every version's
//! downloads), newest push first, a page at a time by `?after=IMAGE`, and the commands
//! that publish an image to it.

use super::human;
use super::orgs::visibility;
use super::respond::html;
use super::shell::view_failed;
use super::shell::{command, not_found, page};
use super::site::{Site, Viewer};
use crate::web::form;
use berth_core::http::percent::percent_encode;
use berth_core::{WebRequest, WebResponse};
use berth_engine::{is_slug, StoreError};
use maud::html;

/// Tags shown per image.
const TAGS_SHOWN: usize = 3;

/// `/{org}/{registry}`; not found for a viewer that may not pull from it.
pub fn page_of(
    site: &Site<'_>,
    req: &WebRequest,
    v: &Viewer,
    parts: &[&str],
) -> Result<WebResponse, StoreError> {
    let (org, slug) = (parts[0], parts[1]);
    if !is_slug(org) || !is_slug(slug) {
        return Ok(not_found(v));
    }
    let query = form::pairs(&req.query);
    let after = form::first(&query, "after").filter(|a| !a.is_empty());
    let (reg, rows, more) =
        match site
            .packages(v)
            .images_page(org, slug, after, site.settings.page_size)
        {
            Ok(x) => x,
            Err(e) => return view_failed(v, e),
        };
    let host = site.auth.public_host(req.header("host"));
    let target = format!("{host}/{org}/{slug}/IMAGE:TAG");
    let title = format!("{org}/{slug}");
    Ok(html(
        200,
        page(
            v,
            &title,
            html! {
                p.muted { a href={ "/" (org) } { (org) } " / " }
                h1 { (reg.name) " " span.badge { (visibility(crate::package::view::visibility(&reg))) } }
                @if !reg.description.is_empty() { p.lead { (reg.description) } }
                h2 { "Images" }
                @if rows.is_empty() {
                    p.muted {
                        @if after.is_some() { "No more images." }
                        @else { "No images yet: publish one with the commands below." }
                    }
                } @else {
                    div.table {
                        table {
                            thead { tr {
                                th { "Image" } th { "Tags" } th { "Last pushed" }
                                th.num { "Size" } th.num { "Downloads" }
                            } }
                            tbody {
                                @for i in &rows {
                                    tr {
                                        td { a href={ "/" (i.repository) } { (i.name) } }
                                        td {
                                            @for t in i.latest_tags.iter().take(TAGS_SHOWN) { code { (t) } " " }
                                            @if i.latest_tags.len() > TAGS_SHOWN { "…" }
                                            @if i.latest_tags.is_empty() { span.muted { "untagged" } }
                                        }
                                        td { (human::date(i.pushed_at)) }
                                        td.num { (human::size(i.size)) }
                                        td.num { (i.downloads) }
                                    }
                                }
                            }
                        }
                    }
                }
                nav.pager {
                    @if after.is_some() { a href={ "/" (org) "/" (slug) } { "First page" } " " }
                    @if let (true, Some(last)) = (more, rows.last()) {
                        a.button href={ "/" (org) "/" (slug) "?after=" (percent_encode(&last.name)) } { "Next page →" }
                    }
                }
                section.panel {
                    h2 { "Publish an image" }
                    p { "Sign in with a token that may write to this registry ("
                        code { "berth token create " (org) " --scopes write_packages" }
                        "), tag your image with this registry's name and push it:" }
                    (command(&format!("docker login {host} -u berth -p <write token>")))
                    (command(&format!("docker tag IMAGE {target}")))
                    (command(&format!("docker push {target}")))
                }
            },
        ),
    ))
}
