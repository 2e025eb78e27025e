//! `/`: a landing page, the signed-in organisation (a redirect to its page), or for the
//! admin every organisation; and `/{org}`: the registries of an organisation the viewer
//! may see.

use super::human;
use super::respond::{html, redirect};
use super::shell::view_failed;
use super::shell::{not_found, page};
use super::site::{Site, Viewer, RESERVED};
use crate::auth::policy::Principal;
use crate::rfc3339;
use berth_core::{WebRequest, WebResponse};
use berth_engine::{is_slug, StoreError};
use maud::html;

/// `/`.
pub fn home(
    site: &Site<'_>,
    _req: &WebRequest,
    v: &Viewer,
    _parts: &[&str],
) -> Result<WebResponse, StoreError> {
    if let Some(org) = v.principal.org() {
        return Ok(redirect(&format!("/{org}")));
    }
    if !v.principal.is_admin() {
        return Ok(html(
            200,
            page(
                v,
                "Welcome",
                html! {
                    h1 { "Berth" }
                    p.lead {
                        "A container registry. Public registries are open to browse at "
                        code { "/ORGANISATION" } "; sign in with an access token to see "
                        "your organisation's private ones."
                    }
                    p { a.button.primary href="/signin" { "Sign in" } }
                },
            ),
        ));
    }
    let orgs = site.engine.list_orgs()?;
    Ok(html(
        200,
        page(
            v,
            "Organisations",
            html! {
                h1 { "Organisations" }
                @if orgs.is_empty() {
                    p.lead { "No organisations yet; create one with " code { "berth org create ORG" } "." }
                } @else {
                    div.table {
                        table {
                            thead { tr { th { "Organisation" } th { "Created" } } }
                            tbody {
                                @for o in &orgs {
                                    tr {
                                        td { a href={ "/" (o.slug) } { (o.slug) } }
                                        td { (rfc3339::seconds(o.created)) }
                                    }
                                }
                            }
                        }
                    }
                }
            },
        ),
    ))
}

/// `/{org}`: its registries the viewer may read. An organisation with none of those is
/// not found, unless the viewer belongs to it (or is the admin).
pub fn org(
    site: &Site<'_>,
    _req: &WebRequest,
    v: &Viewer,
    parts: &[&str],
) -> Result<WebResponse, StoreError> {
    let org = parts[0];
    if !is_slug(org) || RESERVED.contains(&org) {
        return Ok(not_found(v));
    }
    let rows = match site.packages(v).registries(org) {
        Ok(r) => r,
        Err(e) => return view_failed(v, e),
    };
    let signed_in = !matches!(v.principal, Principal::Anonymous);
    Ok(html(
        200,
        page(
            v,
            org,
            html! {
                h1 { (org) }
                p.lead { "Registries" @if !signed_in { " (public ones; sign in to see private ones)" } }
                form.search.panel action="/search" method="get" role="search" {
                    input type="hidden" name="org" value=(org);
                    input type="search" name="q" placeholder={ "Search images in " (org) }
                        aria-label={ "Search images in " (org) };
                    button type="submit" { "Search" }
                }
                @if rows.is_empty() {
                    p { "No registries yet; create one with "
                        code { "berth registry create " (org) " NAME" } "." }
                } @else {
                    div.table {
                        table {
                            thead { tr {
                                th { "Registry" } th { "Description" } th { "Visibility" }
                                th.num { "Images" } th.num { "Storage used" }
                            } }
                            tbody {
                                @for r in &rows {
                                    tr {
                                        td { a href={ "/" (org) "/" (r.slug) } { (r.name) } }
                                        td { (r.description) }
                                        td { span.badge { (visibility(r.visibility)) } }
                                        td.num { (r.images) }
                                        td.num { (human::size(Some(r.storage_bytes))) }
                                    }
                                }
                            }
                        }
                    }
                }
            },
        ),
    ))
}

/// A registry's visibility (`package::view`'s `public` / `private`) as a badge says it.
pub fn visibility(v: &str) -> &'static str {
    if v == "public" {
        "Public"
    } else {
        "Private"
    }
}
