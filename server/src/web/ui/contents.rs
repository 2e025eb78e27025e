//! A version's Contents tab: one directory of its merged file system at a time
//! (`&path=/usr/bin`, `ui.page_size` entries a page by `&after=NAME`), with a breadcrumb
//! back up, so an image of 100,000 files is never one huge page; and what each layer
//! added, changed and removed, and which could not be read and why.

use super::here::Here;
use super::human;
use super::site::{Site, Viewer};
use crate::package::view::{Details, FileView, LayerChangesView, ViewError};
use crate::web::form;
use berth_engine::package::LayerState;
use berth_engine::StoreError;
use maud::{html, Markup};

/// The tab's status and body.
pub fn tab(
    site: &Site<'_>,
    v: &Viewer,
    here: &Here<'_>,
    d: &Details,
    q: &[(String, String)],
) -> Result<(u16, Markup), StoreError> {
    match d.kind {
        "index" => {
            return Ok((
                200,
                html! {
                    p { "A multi-platform index holds one file system per platform: choose one." }
                    ul {
                        @for p in &d.platforms {
                            li { a href=(here.link("contents", Some(&p.platform), &[])) { (p.platform) } }
                        }
                    }
                },
            ))
        }
        "artifact" => {
            return Ok((
                200,
                html! {
                    p { "An artifact has no file system. It holds these blobs:" }
                    (layers(d, None))
                },
            ))
        }
        _ => {}
    }
    if d.state == "indexing" {
        return Ok((
            200,
            html! {
                p.notice role="status" {
                    "This image is still being indexed: its files show here once it is done."
                }
                (layers(d, None))
            },
        ));
    }
    let dir = form::first(q, "path")
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    let after = form::first(q, "after").filter(|a| !a.is_empty());
    let files = site.packages(v).files(
        here.repo,
        here.version,
        here.platform,
        dir,
        after,
        site.settings.page_size,
    );
    let (status, listing) = match files {
        Ok(f) => (
            200,
            html! {
                (trail(here, &f.path))
                @if f.entries.is_empty() {
                    p.muted { @if after.is_some() { "No more entries." } @else { "This directory is empty." } }
                } @else {
                    div.table {
                        table.files {
                            thead { tr {
                                th { "Name" } th.num { "Size" } th { "Mode" } th { "Owner" } th { "Link target" }
                            } }
                            tbody { @for e in &f.entries { (row(here, e)) } }
                        }
                    }
                }
                nav.pager {
                    @if after.is_some() {
                        a href=(here.link("contents", here.platform, &[("path", &f.path)])) { "First page" } " "
                    }
                    @if let Some(next) = &f.next_after {
                        a.button href=(here.link("contents", here.platform, &[("path", &f.path), ("after", next)])) { "Next page →" }
                    }
                }
            },
        ),
        Err(ViewError::NotFound(why)) | Err(ViewError::Bad(why)) => (
            404,
            html! {
                (trail(here, "/"))
                p.error { (why) "." }
            },
        ),
        Err(ViewError::Store(e)) => return Err(e),
    };
    let changes = match form::first(q, "layer").map(str::parse::<usize>) {
        Some(Ok(i)) => {
            match site
                .packages(v)
                .layer_changes(here.repo, here.version, here.platform, i)
            {
                Ok(c) => Some(changes_of(&c)),
                Err(ViewError::Store(e)) => return Err(e),
                Err(ViewError::NotFound(why)) | Err(ViewError::Bad(why)) => {
                    Some(html! { p.error { (why) "." } })
                }
            }
        }
        Some(Err(_)) => Some(html! { p.error { "`layer` is a layer's number." } }),
        None => None,
    };
    Ok((
        status,
        html! {
            (listing)
            (layers(d, Some(here)))
            @if let Some(c) = changes { (c) }
        },
    ))
}

/// What one layer did, path by path (the first 1000 of each list).
fn changes_of(c: &LayerChangesView) -> Markup {
    let list = |title: &str, paths: &[String], total: u64| {
        html! {
            h3 { (title) " (" (total) ")" }
            @if paths.is_empty() { p.muted { "None." } } @else {
                ul.paths { @for p in paths { li { code { (p) } } } }
                @if total as usize > paths.len() { p.muted { "The first " (paths.len()) " of " (total) "." } }
            }
        }
    };
    html! {
        section.layer-changes id="layer-changes" {
            h2 { "Layer " (c.index + 1) " " span.muted { (human::digest(&c.digest)) } }
            @if !c.listed { p.muted { "This layer was not read: it has no changes to show." } }
            @else {
                (list("Added", &c.added, c.added_total))
                (list("Changed", &c.changed, c.changed_total))
                (list("Removed", &c.removed, c.removed_total))
                @if c.removed_entries > c.removed_total {
                    p.muted { (c.removed_entries) " entries removed in all, those under removed directories included." }
                }
            }
        }
    }
}

/// `/ usr / bin`, each part a link to its directory.
fn trail(here: &Here<'_>, path: &str) -> Markup {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    html! {
        nav.crumbs.path aria-label="Directory" {
            a href=(here.link("contents", here.platform, &[("path", "/")])) { code { "/" } }
            @for (i, p) in parts.iter().enumerate() {
                @let upto = format!("/{}", parts[..=i].join("/"));
                @if i + 1 == parts.len() {
                    " " code { (p) } " /"
                } @else {
                    " " a href=(here.link("contents", here.platform, &[("path", &upto)])) { code { (p) } } " /"
                }
            }
        }
    }
}

fn row(here: &Here<'_>, e: &FileView) -> Markup {
    html! {
        tr {
            td.name {
                @if e.kind == "dir" {
                    a href=(here.link("contents", here.platform, &[("path", &e.path)])) { (e.name) "/" }
                } @else {
                    (e.name)
                }
            }
            td.num { @if e.kind == "file" { (human::size(Some(e.size))) } @else { (human::unknown()) } }
            td { code title=(e.mode) { (mode(e.kind, &e.mode)) } }
            td { code { (e.uid) ":" (e.gid) } }
            td { @if let Some(l) = &e.link { code { (l) } } }
        }
    }
}

/// `drwxr-xr-x` from the entry's kind and octal permission bits.
fn mode(kind: &str, octal: &str) -> String {
    let bits = u32::from_str_radix(octal, 8).unwrap_or(0);
    let mut s = String::with_capacity(10);
    s.push(match kind {
        "dir" => 'd',
        "symlink" => 'l',
        "char" => 'c',
        "block" => 'b',
        "fifo" => 'p',
        _ => '-',
    });
    for (shift, special, set) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let b = bits >> shift;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(match (b & 1 != 0, bits & special != 0) {
            (true, true) => set,
            (false, true) => set.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// Each layer, lowest first: size, whether it was read, and what it did to those below;
/// with `here`, each links to the paths it changed.
fn layers(d: &Details, here: Option<&Here<'_>>) -> Markup {
    html! {
        h2 { "Layers" }
        div.table {
            table.layers {
                thead { tr {
                    th { "#" } th { "Digest" } th.num { "Size" } th { "State" }
                    th.num { "Added" } th.num { "Changed" } th.num { "Removed" }
                } }
                tbody {
                    @for (i, l) in d.layers.iter().enumerate() {
                        tr {
                            td {
                                @match here {
                                    Some(h) => a href={ (h.link("contents", h.platform, &[("layer", &i.to_string())])) "#layer-changes" } { (i + 1) },
                                    None => (i + 1),
                                }
                            }
                            td { (human::digest(&l.digest)) }
                            td.num { (human::size(Some(l.size))) }
                            td {
                                @match l.state {
                                    LayerState::Listed => { span.badge.ok { "read" } }
                                    LayerState::Partial => {
                                        span.badge.warn { "read in part" }
                                        @if let Some(why) = &l.error { br; span.error { (why) } }
                                    }
                                    LayerState::External => { span.badge { "external" } br; span.muted { "not held here: clients fetch it from elsewhere" } }
                                    LayerState::Missing => { span.badge { "not read" } @if d.state != "indexing" { br; span.muted { "the registry does not hold it" } } }
                                }
                            }
                            td.num { (l.added) }
                            td.num { (l.changed) }
                            td.num { (l.removed) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mode;

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode("dir", "0755"), "drwxr-xr-x");
        assert_eq!(mode("file", "0644"), "-rw-r--r--");
        assert_eq!(mode("file", "4755"), "-rwsr-xr-x");
        assert_eq!(mode("dir", "1777"), "drwxrwxrwt");
        assert_eq!(mode("symlink", "0777"), "lrwxrwxrwx");
        assert_eq!(mode("file", "2644"), "-rw-r-Sr--");
    }
}
