//! `/{org}/{registry}`: the registry's images (their tags as the store holds them; push
//! dates, sizes and downloads once the package index records them), a page at a time by
//! `?after=IMAGE`, and the commands that publish an image to it.

use super::orgs::visibility;
use super::respond::html;
use super::shell::{command, not_found, page};
use super::{query_value, Site, Viewer};
use crate::auth::policy::may_read;
use crate::web::form;
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
    let Some(reg) = site
        .engine
        .get_registry(org, slug)?
        .filter(|r| may_read(&v.principal, r))
    else {
        return Ok(not_found(v));
    };
    let prefix = format!("{org}/{slug}/");
    let query = form::pairs(&req.query);
    let after = form::first(&query, "after").filter(|a| !a.is_empty());
    let from = after.map(|a| format!("{prefix}{a}"));
    let (names, more) =
        site.engine
            .list_repos(&prefix, from.as_deref(), site.settings.page_size)?;
    let mut rows = Vec::with_capacity(names.len());
    for name in &names {
        let (tags, more_tags) = site
            .engine
            .list_tags(name, None, TAGS_SHOWN)?
            .unwrap_or_default();
        rows.push((&name[prefix.len()..], tags, more_tags));
    }
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
                h1 { (reg.name) " " span.badge { (visibility(reg.visibility)) } }
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
                                @for (image, tags, more_tags) in &rows {
                                    tr {
                                        td { a href={ "/" (org) "/" (slug) "/" (image) } { (image) } }
                                        td {
                                            @for t in tags { code { (t) } " " }
                                            @if *more_tags { "…" }
                                            @if tags.is_empty() { span.muted { "untagged" } }
                                        }
                                        td.muted { "—" }
                                        td.num.muted { "—" }
                                        td.num.muted { "—" }
                                    }
                                }
                            }
                        }
                    }
                }
                nav.pager {
                    @if after.is_some() { a href={ "/" (org) "/" (slug) } { "First page" } " " }
                    @if let (true, Some((last, _, _))) = (more, rows.last()) {
                        a.button href={ "/" (org) "/" (slug) "?after=" (query_value(last)) } { "Next page →" }
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
