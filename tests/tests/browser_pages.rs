//! The image and version pages in a real browser (headless chromium), against the real
//! binary: an image of two real layers (the second changes and removes what the first
//! added) carrying a hostile description, label and file name, an SBOM that refers to it,
//! and a two-platform index, all pushed with skopeo; then a signed-in viewer walks the
//! organisation, the registry, the image, each tab of the version, a directory in
//! Contents, the index's platforms and the Download links, at a laptop's and a phone's
//! width, with a screenshot of every page under `target/screenshots/`. Anonymous and
//! other organisations' viewers get the not-found page.

use berth_tests::Expect as _;
use std::time::Duration;

use berth_tests::browser::{Browser, LAPTOP, PHONE};
use berth_tests::content::{self, fields, gzip_tar, Blob, Image, TarEntry, OCI_CONFIG};
use berth_tests::layout::Layout;
use berth_tests::{wait, Registry};
use serde_json::{json, Value};

const HOSTILE: &str = "<script>alert(1)</script>";
/// A path, not a name: its `/` makes a directory `<script>x<` holding `script>.txt`.
const HOSTILE_PATH: &str = "<script>x</script>.txt";
const HOSTILE_FILE: &str = "<img src=x onerror=alert(4)>.txt";
const APP: &str = "e2e/tests/tools/app";
const MULTI: &str = "e2e/tests/multi";

/// A tar entry: path, kind, mode, body or link target.
enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, u32, &'a [u8]),
    Link(&'a str, &'a str),
}

/// A gzip layer of `entries` and its DiffID, owned by 1000:100.
fn layer(entries: &[Entry<'_>]) -> (Blob, String) {
    let owned: Vec<(String, TarEntry)> = entries
        .iter()
        .map(|e| match e {
            Entry::Dir(p) => (p.to_string(), TarEntry::Dir),
            Entry::File(p, mode, body) => (p.to_string(), TarEntry::File(body.to_vec(), *mode)),
            Entry::Link(p, target) => (p.to_string(), TarEntry::Symlink(target.to_string())),
        })
        .collect();
    gzip_tar(&owned, 1000, 100)
}

/// The image of `tools/app:1.0`: a base layer, and one that changes `usr/bin/tool`, adds
/// `app/main` and removes `usr/share/doc` with what it holds (a whiteout).
fn app_image() -> Image {
    let (base, base_id) = layer(&[
        Entry::Dir("etc/"),
        Entry::File(
            "etc/os-release",
            0o644,
            b"ID=berthos\nNAME=\"Berth OS\"\nVERSION_ID=7.1\n",
        ),
        Entry::Dir("usr/"),
        Entry::Dir("usr/bin/"),
        Entry::File("usr/bin/tool", 0o755, &[7u8; 3000]),
        Entry::Link("usr/bin/tool-link", "tool"),
        Entry::Dir("usr/share/"),
        Entry::Dir("usr/share/doc/"),
        Entry::File("usr/share/doc/README", 0o644, b"read me\n"),
        Entry::Dir("docs/"),
        Entry::File(&format!("docs/{HOSTILE_PATH}"), 0o644, b"hostile path\n"),
        Entry::File(&format!("docs/{HOSTILE_FILE}"), 0o644, b"hostile name\n"),
    ]);
    let (top, top_id) = layer(&[
        Entry::File("usr/bin/tool", 0o4755, &[8u8; 5000]),
        Entry::Dir("app/"),
        Entry::File("app/main", 0o755, b"#!/bin/sh\n"),
        Entry::File("usr/share/.wh.doc", 0o644, b""),
    ]);
    let config = Blob::json(
        OCI_CONFIG,
        &json!({
            "created": "2026-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/app/main"], "Labels": {
                "org.opencontainers.image.description": HOSTILE,
                "org.opencontainers.image.url": "javascript:alert(2)",
                "org.opencontainers.image.licenses": "MIT",
                "com.example.hostile": "<img src=x onerror=alert(3)>",
            }},
            "rootfs": {"type": "layers", "diff_ids": [base_id, top_id]},
        }),
    );
    let manifest = content::manifest(
        &config.desc(),
        &[base.desc(), top.desc()],
        fields([(
            "annotations",
            json!({
                "org.opencontainers.image.source": "https://example.com/berth/app",
                "org.opencontainers.image.title": "The app",
                "com.example.annotation": HOSTILE,
            }),
        )]),
    );
    Image {
        config,
        layers: vec![base, top],
        manifest,
        architecture: "amd64".into(),
    }
}

/// What `publish` pushed.
struct Pushed {
    reg: Registry,
    app: Image,
    sbom: Blob,
    arm: Image,
}

/// Pushes `tools/app:1.0`, its SBOM (`:sbom`) and `multi:2.0` (amd64 and arm64) with
/// skopeo, and waits until the indexer has read them all.
fn publish() -> Pushed {
    let reg = Registry::start();
    let app = app_image();
    let (sbom, sbom_layer) = content::artifact(
        "application/spdx+json",
        &app.manifest.desc(),
        ("org.example.kind", "sbom"),
    );
    let amd = Image::random_for("amd64", 1, 2000);
    let arm = Image::random_for("arm64", 1, 2000);
    let idx = content::index(&[amd.index_entry(), arm.index_entry()], fields([]));
    let src = reg.scratch("src");
    let mut l = Layout::create(&src);
    l.add_image(&app, Some("app"));
    l.add_blob(&content::empty_json());
    l.add_blob(&sbom_layer);
    l.add_manifest(&sbom, Some("sbom"));
    l.add_index(&idx, &[&amd, &arm], Some("multi"));
    l.write_index();
    let host = reg.host();
    for (from, to, extra) in [
        ("app", format!("{APP}:1.0"), &[][..]),
        ("sbom", format!("{APP}:sbom"), &[][..]),
        ("multi", format!("{MULTI}:2.0"), &["--all"][..]),
    ] {
        reg.skopeo_copy(
            &format!("oci:{}:{from}", src.display()),
            &format!("docker://{host}/{to}"),
            extra,
        );
    }
    let mut c = reg.client();
    for path in [
        format!("{APP}:1.0"),
        format!("{MULTI}:2.0?platform=linux/amd64"),
        format!("{MULTI}:2.0?platform=linux/arm64"),
    ] {
        let done = wait::until(Duration::from_secs(60), || {
            let r = c.get(&format!("/api/v1/packages/{path}"));
            let v: Value = r.json();
            (v["state"] == "indexed" && v["checksums"].is_object()).then_some(v)
        });
        assert!(done.is_some(), "{path} not indexed:\n{}", reg.log());
    }
    Pushed {
        reg,
        app,
        sbom,
        arm,
    }
}

/// Signs in through the form with `token`.
fn sign_in(b: &Browser, url: &str, token: &str) {
    b.goto(&format!("{url}/signin"));
    b.find("input[name=token]").send_keys(token);
    b.find("form.panel button[type=submit]").click();
    b.wait_for("main h1", Duration::from_secs(30));
}

/// The `href` attribute as written in the page.
fn href(b: &Browser, css: &str) -> String {
    let v = b.execute(
        "const e = document.querySelector(arguments[0]); return e ? e.getAttribute('href') : null;",
        json!([css]),
    );
    v.as_str()
        .unwrap_or_else(|| panic!("no `{css}` with an href on {}", b.current_url()))
        .to_string()
}

/// Takes the page's screenshot and checks nothing went wrong in its console.
#[track_caller]
fn shot(b: &Browser, name: &str) {
    b.screenshot(name);
    assert_eq!(
        b.console_errors(),
        Vec::<String>::new(),
        "console errors on {}",
        b.current_url()
    );
}

/// The hostile strings are text: escaped in the DOM, never elements.
#[track_caller]
fn assert_inert(b: &Browser) {
    let src = b.page_source();
    assert!(
        !src.contains("<script>alert") && !src.contains("<script>x") && !src.contains("<img"),
        "a hostile string became markup on {}",
        b.current_url()
    );
    let scripts = b.execute(
        "return Array.from(document.scripts).map(s => s.getAttribute('src'));",
        json!([]),
    );
    for s in scripts.as_array().unwrap() {
        assert!(
            s.as_str().is_some_and(|s| s.starts_with("/static/")),
            "a script that is not the site's own: {scripts}"
        );
    }
}

#[test]
fn a_signed_in_viewer_browses_an_image_its_versions_tabs_and_platforms() {
    let p = publish();
    let reg = &p.reg;
    let url = reg.url();
    let host = reg.host();
    let read = reg
        .admin()
        .create_token("e2e", &["read_packages"], &[], None)
        .token;
    let b = Browser::start_at(LAPTOP);
    sign_in(&b, &url, &read);
    assert_eq!(b.current_url(), format!("{url}/e2e"));

    for (size, label) in [(LAPTOP, "laptop"), (PHONE, "phone")] {
        if size == PHONE {
            b.set_phone_size(size.0, size.1);
        }
        // The organisation and the registry, its images newest first with their figures.
        b.goto(&format!("{url}/e2e"));
        assert_eq!(href(&b, "main table a"), "/e2e/tests");
        shot(&b, &format!("{label}-org"));
        b.find("main table a").click();
        let rows = b.find_all("main table tbody tr");
        let texts: Vec<String> = rows.iter().map(|r| r.text()).collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(texts[0].starts_with("multi"), "newest first: {texts:?}");
        let app_row = &texts[1];
        assert!(
            app_row.starts_with("tools/app")
                && app_row.contains("1.0")
                && !app_row.contains("sbom"),
            "the newest image's tags, not its SBOM's: {app_row}"
        );
        assert!(app_row.contains(" UTC"), "a push date: {app_row}");
        assert_eq!(
            rows[1].find_all("td.num span[title$=' bytes']").len(),
            1,
            "a size: {app_row}"
        );
        shot(&b, &format!("{label}-registry"));

        // The image: its versions, tagged and not.
        b.find(&format!("main table a[href='/{APP}']")).click();
        assert_eq!(b.find("main h1").text(), "tools/app");
        let versions = b.find("main table").text();
        assert!(
            versions.contains("1.0") && versions.contains("sbom"),
            "{versions}"
        );
        assert!(versions.contains("artifact") && versions.contains("indexed"));
        shot(&b, &format!("{label}-image"));

        // The version: Installation first, with the private registry's login.
        b.find(&format!("main table a[href='/{APP}:1.0']")).click();
        let main = b.find("main").text();
        for cmd in [
            format!("docker login {host} -u berth -p <read token>"),
            format!("docker pull {host}/{APP}:1.0"),
            format!("podman pull {host}/{APP}:1.0"),
            format!("skopeo copy --src-creds berth:<read token> docker://{host}/{APP}:1.0 oci-archive:app.tar"),
        ] {
            assert!(main.contains(&cmd), "no `{cmd}` in {main}");
        }
        assert_eq!(href(&b, "a.download"), format!("/{APP}:1.0/download"));
        let side = b.find("aside").text();
        for want in [
            HOSTILE,
            "Private",
            "Berth OS 7.1",
            "https://example.com/berth/app",
            "javascript:alert(2)",
            "MIT",
            "<img src=x onerror=alert(3)>",
            "com.example.annotation",
        ] {
            assert!(side.contains(want), "no {want:?} in the side panel: {side}");
        }
        assert_eq!(
            b.find_all("aside a[href^='javascript']").len(),
            0,
            "a javascript: address became a link"
        );
        assert_inert(&b);
        shot(&b, &format!("{label}-version-installation"));
        if size == PHONE {
            b.execute(
                "document.querySelector('aside').scrollIntoView();",
                json!([]),
            );
            shot(&b, &format!("{label}-version-side-panel"));
        }

        // Contents: the root, a directory deeper, the layers' changes.
        b.find("nav.tabs a[href*='tab=contents']").click();
        assert!(b
            .current_url()
            .ends_with(&format!("/{APP}:1.0?tab=contents")));
        let names: Vec<String> = b
            .find_all("table.files td.name")
            .iter()
            .map(|e| e.text())
            .collect();
        assert_eq!(names, ["app/", "docs/", "etc/", "usr/"], "the merged root");
        let layers = b.find("table.layers").text();
        assert!(layers.contains("read"), "{layers}");
        shot(&b, &format!("{label}-version-contents"));
        b.find("table.files a[href*='path=/usr']").click();
        b.find("table.files a[href*='path=/usr/bin']").click();
        assert!(b.current_url().contains("path=/usr/bin"));
        let rows: Vec<String> = b
            .find_all("table.files tbody tr")
            .iter()
            .map(|r| r.text())
            .collect();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert!(
            rows[0].starts_with("tool") && rows[0].contains("-rwsr-xr-x"),
            "{rows:?}"
        );
        assert!(
            rows[0].contains("1000:100") && rows[0].contains("4.9 KiB"),
            "{rows:?}"
        );
        assert!(rows[1].contains("tool-link") && rows[1].contains("lrwxrwxrwx"));
        assert!(
            rows[1].trim_end().ends_with("tool"),
            "link target: {rows:?}"
        );
        assert_eq!(b.find("nav.crumbs.path").text(), "/ usr / bin /");
        shot(&b, &format!("{label}-version-contents-usr-bin"));
        b.find("nav.crumbs.path a[href*='path=/usr']:not([href*='bin'])")
            .click();
        let names: Vec<String> = b
            .find_all("table.files td.name")
            .iter()
            .map(|e| e.text())
            .collect();
        assert_eq!(names, ["bin/", "share/"], "{names:?}");
        b.find("nav.crumbs.path a[href*='path=/']").click();
        b.find("table.files a[href*='path=/docs']").click();
        let names: Vec<String> = b
            .find_all("table.files td.name")
            .iter()
            .map(|e| e.text())
            .collect();
        assert_eq!(names, [HOSTILE_FILE, "<script>x</"], "{names:?}");
        assert_inert(&b);
        shot(&b, &format!("{label}-version-contents-hostile-names"));
        b.find("table.files td.name a[href*=script]").click();
        assert!(b.current_url().contains("path=/docs/%3Cscript%3Ex%3C"));
        assert_eq!(b.find("table.files td.name").text(), "script>.txt");
        assert_eq!(b.find("nav.crumbs.path").text(), "/ docs / <script>x< /");
        assert_inert(&b);
        // The layers: the second added app/ and app/main, changed usr/bin/tool and
        // removed usr/share/doc with README.
        let second: Vec<String> = b
            .find_all("table.layers tbody tr:nth-child(2) td.num")
            .iter()
            .map(|e| e.text())
            .collect();
        assert_eq!(
            second[1..],
            ["2", "1", "2"],
            "added, changed, removed: {second:?}"
        );
        // And path by path.
        b.find("table.layers tbody tr:nth-child(2) td a").click();
        let changes = b.find("#layer-changes").text();
        for want in [
            "Added (2)",
            "/app/main",
            "Changed (1)",
            "/usr/bin/tool",
            "Removed (1)",
            "/usr/share/doc",
        ] {
            assert!(changes.contains(want), "{want}: {changes}");
        }
        shot(&b, &format!("{label}-version-layer-changes"));

        // Details: the Download's checksums, the blobs, the referrer.
        b.find("nav.tabs a[href*='tab=details']").click();
        let hashes = b.find("table.hashes").text();
        for (name, hex) in [
            ("MD5", 32),
            ("SHA-1", 40),
            ("SHA-256", 64),
            ("SHA-512", 128),
        ] {
            let line = hashes
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in {hashes}"));
            let value = line.split_whitespace().last().unwrap();
            assert!(
                value.len() == hex && value.bytes().all(|c| c.is_ascii_hexdigit()),
                "{line}"
            );
        }
        let blobs = b.find_all("main table").get(1).map(|t| t.text()).unwrap();
        for blob in p.app.blobs().chain([&p.app.manifest]) {
            assert!(
                blobs.contains(&blob.digest),
                "{} not in {blobs}",
                blob.digest
            );
        }
        assert_eq!(
            href(&b, &format!("main table a[href*='{}']", p.sbom.digest)),
            format!("/{APP}@{}", p.sbom.digest)
        );
        shot(&b, &format!("{label}-version-details"));

        // The SBOM: an artifact's page, referring back to the image.
        b.find(&format!("main table a[href*='{}']", p.sbom.digest))
            .click();
        assert!(b.find("main h1").text().contains("artifact"));
        assert!(b
            .find("main")
            .text()
            .contains(&format!("oras pull {host}/{APP}@{}", p.sbom.digest)));
        assert_eq!(
            b.find_all("a.download").len(),
            0,
            "an artifact has no Download"
        );
        b.find("nav.tabs a[href*='tab=details']").click();
        assert_eq!(
            href(&b, &format!("main a[href$='{}']", p.app.manifest.digest)),
            format!("/{APP}@{}", p.app.manifest.digest)
        );
        shot(&b, &format!("{label}-artifact"));

        // The index: its platforms, each with its own Contents and Download.
        b.goto(&format!("{url}/{MULTI}:2.0"));
        let pills: Vec<String> = b
            .find_all("nav.platforms a")
            .iter()
            .map(|a| a.text())
            .collect();
        assert_eq!(pills, ["all (index)", "linux/amd64", "linux/arm64"]);
        assert_eq!(
            href(&b, "aside a.download[href$='arm64']"),
            format!("/{MULTI}:2.0/download?platform=linux/arm64")
        );
        shot(&b, &format!("{label}-index"));
        b.find("nav.tabs a[href*='tab=contents']").click();
        b.find("main a[href*='platform=linux/arm64']").click();
        assert!(b
            .current_url()
            .contains("tab=contents&platform=linux/arm64"));
        assert_eq!(
            b.find("nav.platforms a[aria-current=page]").text(),
            "linux/arm64"
        );
        let names: Vec<String> = b
            .find_all("table.files td.name")
            .iter()
            .map(|e| e.text())
            .collect();
        assert_eq!(names, ["data/", "etc/"]);
        assert_eq!(
            href(&b, "a.download"),
            format!("/{MULTI}:2.0/download?platform=linux/arm64")
        );
        b.find("nav.tabs a[href*='tab=details']").click();
        assert!(b.find("main").text().contains(&p.arm.manifest.digest));
        shot(&b, &format!("{label}-index-arm64"));

        // Search by a file name anywhere: the versions holding it, each path linked to
        // its directory in Contents; a whole path the second layer whited out finds none.
        b.goto(&format!("{url}/search"));
        b.find("form.search-page input[name=path]")
            .send_keys("tool");
        b.find("form.search-page button").click();
        b.wait_for("main table", Duration::from_secs(30));
        let found = b.find("main table").text();
        assert!(found.contains("/usr/bin/tool"), "{found}");
        assert_eq!(
            href(&b, "main table a[href*='tab=contents']"),
            format!("/{APP}:1.0?tab=contents&path=/usr/bin")
        );
        shot(&b, &format!("{label}-search-path"));
        b.find("main table a[href*='tab=contents']").click();
        assert!(b.find("main").text().contains("tool-link"));
        b.goto(&format!("{url}/search?path=/usr/share/doc/README"));
        assert!(b.find("main").text().contains("Nothing found"));
        b.goto(&format!("{url}/search?q=app"));
        assert_eq!(href(&b, "main table a"), format!("/{APP}"));
        shot(&b, &format!("{label}-search-name"));
    }
}

#[test]
fn anonymous_and_other_organisations_viewers_get_the_not_found_page() {
    let p = publish();
    let reg = &p.reg;
    let url = reg.url();
    reg.admin().create_org("rival");
    let rival = reg
        .admin()
        .create_token("rival", &["read_packages"], &[], None)
        .token;
    let b = Browser::start_at(LAPTOP);
    let pages = [
        format!("{url}/e2e/tests"),
        format!("{url}/{APP}"),
        format!("{url}/{APP}:1.0"),
        format!("{url}/{APP}:1.0?tab=contents&path=/usr/bin"),
        format!("{url}/{APP}@{}?tab=details", p.app.manifest.digest),
        format!("{url}/{MULTI}:2.0?platform=linux/arm64"),
    ];
    for (who, label) in [(None, "anonymous"), (Some(&rival), "rival")] {
        if let Some(token) = who {
            sign_in(&b, &url, token);
        }
        for (i, page) in pages.iter().enumerate() {
            b.goto(page);
            assert_eq!(b.find("main h1").text(), "Not found", "{label} on {page}");
            assert!(!b.page_source().contains("tools/app"), "{label} on {page}");
            b.screenshot(&format!("{label}-not-found-{i}"));
            let errors = b.console_errors();
            assert!(
                errors.len() == 1 && errors[0].contains("404"),
                "{label} on {page}: {errors:?}"
            );
        }
    }
}
