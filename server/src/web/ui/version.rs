//! `/{org}/{registry}/{image}:{tag}` and `…@sha256:…`: a version's page, drawn from
//! `package::view`'s details. Tabs are links (`?tab=installation|contents|details`), so
//! each is a page of its own without script; a multi-platform index offers its platforms
//! as links (`?platform=os/arch`), and Contents and the Download are those of the platform
//! chosen. Beside the tabs: the Download, "About this version" and the Details panel.
//! Every value an image carries (annotations, labels, names) is text, escaped by maud;
//! only `http(s)` addresses become links.

use super::contents;
use super::here::Here;
use super::human;
use super::image::{crumbs, state};
use super::orgs;
use super::respond::html;
use super::shell::view_failed;
use super::shell::{command, page, problem};
use super::site::{Site, Viewer};
use crate::package::path::VersionRef;
use crate::package::view::Details;
use crate::web::form;
use berth_core::{WebRequest, WebResponse};
use berth_engine::StoreError;
use maud::{html, Markup};

/// The config media type of a Helm chart, whose page says how Helm pulls it.
const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";

/// The tabs, in the order they are shown; the first is the default.
const TABS: [(&str, &str); 3] = [
    ("installation", "Installation"),
    ("contents", "Contents"),
    ("details", "Details"),
];

/// A version's page; not found for a viewer that may not pull it.
pub fn page_of(
    site: &Site<'_>,
    req: &WebRequest,
    v: &Viewer,
    repo: &str,
    version: &VersionRef,
) -> Result<WebResponse, StoreError> {
    let q = form::pairs(&req.query);
    let platform = form::first(&q, "platform").filter(|s| !s.is_empty());
    let tab = form::first(&q, "tab").filter(|s| !s.is_empty());
    let tab = match tab {
        None => TABS[0].0,
        Some(t) => match TABS.iter().find(|(k, _)| *k == t) {
            Some((k, _)) => k,
            None => {
                return Ok(problem(
                    v,
                    400,
                    "No such tab",
                    &format!("There is no tab `{t}`: use installation, contents or details."),
                ))
            }
        },
    };
    let pk = site.packages(v);
    let d = match pk.details(repo, version, platform) {
        Ok(d) => d,
        Err(e) => return view_failed(v, e),
    };
    // The index's own details, for its platform selector while one platform is shown.
    let index = match platform {
        Some(_) => match pk.details(repo, version, None) {
            Ok(i) => Some(i),
            Err(e) => return view_failed(v, e),
        },
        None => None,
    };
    let platforms: Vec<String> = index
        .as_ref()
        .unwrap_or(&d)
        .platforms
        .iter()
        .map(|p| p.platform.clone())
        .collect();
    let here = Here {
        repo,
        version,
        platform,
        tab,
    };
    let host = site.auth.public_host(req.header("host"));
    let (status, body) = match tab {
        "contents" => contents::tab(site, v, &here, &d, &q)?,
        "details" => (200, details_tab(&here, &d)),
        _ => (200, installation(host, &here, &d)),
    };
    let shown = match platform {
        Some(p) => format!("{}{} ({p})", d.name, version.suffix()),
        None => format!("{}{}", d.name, version.suffix()),
    };
    Ok(html(
        status,
        page(
            v,
            &format!("{}{}", d.repository, version.suffix()),
            html! {
                (crumbs(repo, Some(&label(version))))
                h1.version-title {
                    (d.name) span.muted title=(version.suffix()) { (label(version)) }
                    " " span.badge { (d.kind) }
                    " " span.badge { (orgs::visibility(d.visibility)) }
                    " " (state(d.state))
                }
                @if let Some(t) = &d.title { p.lead { (t) } }
                (banner(&d))
                @if !platforms.is_empty() { (selector(&here, &platforms)) }
                div.version {
                    div.primary {
                        nav.tabs aria-label="Version" {
                            @for (key, label) in TABS {
                                @if key == tab {
                                    a href=(here.link(key, platform, &[])) aria-current="page" { (label) }
                                } @else {
                                    a href=(here.link(key, platform, &[])) { (label) }
                                }
                            }
                        }
                        section.tab aria-label=(shown) { (body) }
                    }
                    aside.side { (side(&here, &d, &platforms)) }
                }
            },
        ),
    ))
}

/// `:tag`, or `@sha256:` and the digest's first 12 hex digits (the whole one is under
/// Details).
fn label(version: &VersionRef) -> String {
    match version {
        VersionRef::Tag(t) => format!(":{t}"),
        VersionRef::Digest(d) => format!("@{}", crate::package::short_digest(d)),
    }
}

/// What the page cannot show yet, or not whole.
fn banner(d: &Details) -> Markup {
    html! {
        @match d.state {
            "indexing" => {
                p.notice role="status" {
                    "This image is still being indexed: its files, size and checksums show "
                    "here once it is done. Reload the page in a moment."
                }
            }
            "partial" => {
                p.notice.warn role="status" {
                    "A layer of this image could not be read whole: its files are shown as "
                    "far as they could be read. The Contents tab says which layer and why."
                }
            }
            _ => {}
        }
    }
}

/// The platforms of an index, as links; the one shown is marked.
fn selector(here: &Here<'_>, platforms: &[String]) -> Markup {
    html! {
        nav.platforms aria-label="Platform" {
            span.muted { "Platform:" }
            @if here.platform.is_none() {
                a.pill href=(here.link(here.tab, None, &[])) aria-current="page" { "all (index)" }
            } @else {
                a.pill href=(here.link(here.tab, None, &[])) { "all (index)" }
            }
            @for p in platforms {
                @if here.platform == Some(p.as_str()) {
                    a.pill href=(here.link(here.tab, Some(p), &[])) aria-current="page" { (p) }
                } @else {
                    a.pill href=(here.link(here.tab, Some(p), &[])) { (p) }
                }
            }
        }
    }
}

/// The commands that fetch this version, with copy buttons.
fn installation(host: &str, here: &Here<'_>, d: &Details) -> Markup {
    let private = d.visibility != "public";
    let reference = format!("{host}/{}{}", here.repo, here.version.suffix());
    let helm = d
        .config
        .as_ref()
        .is_some_and(|c| c.media_type == HELM_CONFIG);
    let plat = here
        .platform
        .map(|p| format!("--platform {p} "))
        .unwrap_or_default();
    let skopeo_plat = here
        .platform
        .map(|p| {
            let mut it = p.split('/');
            let os = it.next().unwrap_or("linux");
            let arch = it.next().unwrap_or("");
            match it.next() {
                Some(var) => {
                    format!("--override-os {os} --override-arch {arch} --override-variant {var} ")
                }
                None => format!("--override-os {os} --override-arch {arch} "),
            }
        })
        .unwrap_or_default();
    let creds = if private {
        "--src-creds berth:<read token> "
    } else {
        ""
    };
    let file = here.repo.rsplit('/').next().unwrap_or("image").to_owned();
    html! {
        @if private {
            p { "This registry is private: sign in with a token that may read it ("
                code { "berth token create " (d.registry.split('/').next().unwrap_or("")) " --scopes read_packages" } ")." }
        }
        @if d.kind == "artifact" {
            @if helm {
                h3 { "Helm" }
                @if private { (command(&format!("helm registry login {host} -u berth -p <read token>"))) }
                @match here.version {
                    VersionRef::Tag(t) => {
                        (command(&format!("helm pull oci://{host}/{} --version {t}", here.repo)))
                    }
                    VersionRef::Digest(_) => {
                        (command(&format!("helm pull oci://{reference}")))
                    }
                }
            }
            h3 { "ORAS" }
            @if private { (command(&format!("oras login {host} -u berth -p <read token>"))) }
            (command(&format!("oras pull {reference}")))
            h3 { "skopeo" }
            (command(&format!("skopeo copy {creds}docker://{reference} oci:{file}")))
        } @else {
            h3 { "Docker" }
            @if private { (command(&format!("docker login {host} -u berth -p <read token>"))) }
            (command(&format!("docker pull {plat}{reference}")))
            h3 { "Podman" }
            @if private { (command(&format!("podman login {host} -u berth -p <read token>"))) }
            (command(&format!("podman pull {plat}{reference}")))
            h3 { "skopeo" }
            (command(&format!("skopeo copy {skopeo_plat}{creds}docker://{reference} oci-archive:{file}.tar")))
        }
    }
}

/// Checksums of the Download, and the digest and size of every blob the version names.
fn details_tab(here: &Here<'_>, d: &Details) -> Markup {
    html! {
        @if d.kind != "artifact" { h2 { "Download checksums" } }
        @match (&d.checksums, d.checksums_missing.as_deref()) {
            (Some(c), _) => {
                p.muted { "Of the Download file (" (human::size(Some(c.size))) "), the same bytes every time." }
                div.table { table.hashes { tbody {
                    tr { th { "MD5" } td { code { (c.md5) } } }
                    tr { th { "SHA-1" } td { code { (c.sha1) } } }
                    tr { th { "SHA-256" } td { code { (c.sha256) } } }
                    tr { th { "SHA-512" } td { code { (c.sha512) } } }
                } } }
            }
            (None, Some("indexing")) | (None, None) => {
                p.notice role="status" { "This image is still being indexed: its checksums show here once they are computed." }
            }
            (None, Some("computing")) => {
                p.notice role="status" { "The Download's checksums are being computed: they show here in a moment." }
            }
            (None, Some(_)) if d.kind == "artifact" => {}
            (None, Some(why)) => { p.muted { "No checksums: " (why) "." } }
        }
        h2 { "Blobs" }
        div.table { table.blobs {
            thead { tr { th { "What" } th { "Digest and media type" } th.num { "Size" } } }
            tbody {
                (blob_row("Manifest", &d.manifest.digest, &d.manifest.media_type, d.manifest.size))
                @if let Some(c) = &d.config {
                    (blob_row("Config", &c.digest, &c.media_type, c.size))
                }
                @for (i, l) in d.layers.iter().enumerate() {
                    (blob_row(&format!("Layer {}", i + 1), &l.digest, &l.media_type, l.size))
                }
            }
        } }
        @if !d.platforms.is_empty() {
            h2 { "Platform images" }
            div.table { table {
                thead { tr { th { "Platform" } th { "Digest" } th.num { "Size" } } }
                tbody {
                    @for p in &d.platforms {
                        tr {
                            td { a href=(here.link("details", Some(&p.platform), &[])) { (p.platform) } }
                            td { code { (p.digest) } }
                            td.num { (human::size(Some(p.size))) }
                        }
                    }
                }
            } }
        }
        @if let Some(s) = &d.subject {
            h2 { "Refers to" }
            p { a href={ "/" (here.repo) "@" (s) } { code { (s) } } }
        }
        h2 { "Referrers" }
        @if d.referrers.is_empty() {
            p.muted { "No signatures, SBOMs or other artifacts refer to this version." }
        } @else {
            div.table { table {
                thead { tr { th { "Artifact" } th { "Type" } th.num { "Size" } } }
                tbody {
                    @for r in &d.referrers {
                        tr {
                            td { a href={ "/" (here.repo) "@" (r.digest) } { (human::digest(&r.digest)) } }
                            td { code { (r.artifact_type.as_deref().unwrap_or(&r.media_type)) } }
                            td.num { (human::size(Some(r.size))) }
                        }
                    }
                }
            } }
        }
    }
}

fn blob_row(what: &str, digest: &str, media_type: &str, size: u64) -> Markup {
    html! {
        tr {
            td { (what) }
            td { code { (digest) } br; span.muted.small { (media_type) } }
            td.num { (human::size(Some(size))) }
        }
    }
}

/// The Download, "About this version" and the Details panel.
fn side(here: &Here<'_>, d: &Details, platforms: &[String]) -> Markup {
    let dist = d.distribution.as_ref().map(|x| {
        let name = x.name.clone().or_else(|| x.id.clone()).unwrap_or_default();
        match &x.version {
            Some(ver) => format!("{name} {ver}"),
            None => name,
        }
    });
    html! {
        section.panel.download {
            h2 { "Download" }
            @match d.kind {
                "image" => {
                    a.button.primary.download href=(here.download(here.platform)) { "Download" }
                    p.muted.small { "One tar that " code { "docker load" } ", " code { "podman load" }
                        " and " code { "skopeo" } " read."
                        @if let Some(c) = &d.checksums { " " (human::size(Some(c.size))) "." } }
                }
                "index" => {
                    p.muted.small { "A Download holds one platform:" }
                    ul.downloads {
                        @for p in platforms {
                            li { a.download href=(here.download(Some(p))) { "Download " (p) } }
                        }
                    }
                }
                _ => { p.muted.small { "An artifact has no Download: fetch it with the commands under Installation." } }
            }
        }
        section.panel {
            h2 { "About this version" }
            @match &d.description {
                Some(text) => { p.description { (text) } }
                None => { p.muted title="the org.opencontainers.image.description annotation or label" { "No description." } }
            }
        }
        section.panel {
            h2 { "Details" }
            dl.facts {
                dt { "Name" } dd { (d.name) }
                dt { "Version" } dd { @if d.version.contains(':') { (human::digest(&d.version)) } @else { code { (d.version) } } }
                dt { "Registry" } dd { a href={ "/" (d.registry) } { (d.registry) } }
                dt { "Visibility" } dd { (orgs::visibility(d.visibility)) }
                @if let Some(p) = &d.platform { dt { "Platform" } dd { (p) } }
                dt { "Distribution" } dd { @match &dist { Some(x) => { (x) } None => { (human::unknown()) } } }
                @if let Some(x) = &d.software_version { dt { "Software version" } dd { (x) } }
                dt { "Homepage" } dd { (address(d.homepage.as_deref())) }
                dt { "Source" } dd { (address(d.source.as_deref())) }
                dt { "Licences" } dd { @match &d.licenses { Some(x) => { (x) } None => { (human::unknown()) } } }
                dt { "Pushed" } dd { (human::date(d.pushed_at)) }
                dt { "Total files" } dd { @match d.total_files { Some(n) => { (n) } None => { (human::unknown()) } } }
                dt { "Dependencies" } dd {
                    (d.dependencies.len())
                    @if !d.dependencies.is_empty() {
                        ul.deps {
                            @for dep in &d.dependencies {
                                li {
                                    @match &dep.link {
                                        Some(l) => { a href={ "/" (l) } { (dep.platform.as_deref().unwrap_or(&dep.name)) } }
                                        None => { code { (dep.name) } }
                                    }
                                }
                            }
                        }
                    }
                }
                dt { "Package size" } dd { (human::size(d.size)) }
                dt { "Downloads" } dd { (d.downloads) }
            }
            @if !d.annotations.is_empty() {
                h3 { "Annotations" }
                (pairs(d.annotations.iter()))
            }
            @if !d.labels.is_empty() {
                h3 { "Labels" }
                (pairs(d.labels.iter()))
            }
        }
    }
}

/// A link for an `http(s)` address; any other text (a `javascript:` one) stays text.
fn address(a: Option<&str>) -> Markup {
    html! {
        @match a {
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                a href=(u) rel="nofollow noopener" { (u) }
            }
            Some(u) => { (u) }
            None => { (human::unknown()) }
        }
    }
}

fn pairs<'a>(kv: impl Iterator<Item = (&'a String, &'a String)>) -> Markup {
    html! {
        dl.pairs {
            @for (k, v) in kv {
                dt { code { (k) } } dd { (v) }
            }
        }
    }
}
