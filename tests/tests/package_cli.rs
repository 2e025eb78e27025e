//! `berth package …` against the real server, over an image made from this machine's own
//! files: a rootfs layer of a few binaries from /usr/bin, /etc/os-release (a symlink to
//! ../usr/lib/os-release, as on Debian) and shared libraries, and a layer that deletes one
//! file (a whiteout) and changes another, pushed with skopeo. What `package files` lists is
//! what `tar -t` of the merged layers says; the Download hashes to the checksums `package
//! show` reports, is the same bytes twice, resumes by range, and loads in docker, podman and
//! skopeo with the pushed config; pulls and Downloads count, HEADs do not.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use berth_tests::binary::berth_bin;
use berth_tests::clients::{Dockerd, Podman};
use berth_tests::content::{self, gzip_tar, manifest, Blob, Image, TarEntry, OCI_CONFIG};
use berth_tests::layout::Layout;
use berth_tests::registry::{repo, Registry};
use berth_tests::tool::Cmd;
use berth_tests::wait;
use serde_json::{json, Map, Value};

/// `berth ARGS --server URL` with the registry's write token.
fn berth(reg: &Registry, args: &[&str]) -> Cmd {
    Cmd::new(&berth_bin())
        .args(args)
        .args(["--server", &reg.url()])
        .env("BERTH_TOKEN", reg.token())
        .limit(Duration::from_secs(120))
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

fn json_of(reg: &Registry, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = berth(reg, &a).run();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `package show --json` once the indexer is done with the version.
fn indexed(reg: &Registry, args: &[&str]) -> Value {
    let mut a = vec!["package", "show"];
    a.extend_from_slice(args);
    wait::until(Duration::from_secs(60), || {
        let v = json_of(reg, &a);
        (v["state"] != "indexing" && v["checksums_missing"] != "computing").then_some(v)
    })
    .unwrap_or_else(|| panic!("{args:?} still indexing after 60 s"))
}

/// `path` on this machine as layer entries (a symlink with its target beside it), under
/// the same path in the image.
fn from_host(path: &str, out: &mut Vec<(String, TarEntry)>) {
    use std::os::unix::fs::PermissionsExt as _;
    let p = Path::new(path);
    let meta = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{path}: {e}"));
    let name = path.trim_start_matches('/').to_owned();
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(p).unwrap();
        out.push((name, TarEntry::Symlink(target.display().to_string())));
        let resolved = p.parent().unwrap().join(&target);
        let resolved = std::fs::canonicalize(resolved).unwrap();
        from_host(resolved.to_str().unwrap(), out);
    } else {
        let mode = meta.permissions().mode() & 0o7777;
        out.push((name, TarEntry::File(std::fs::read(p).unwrap(), mode)));
    }
}

/// Five small binaries of /usr/bin, /etc/os-release and two shared libraries.
fn rootfs() -> (Vec<(String, TarEntry)>, Vec<String>) {
    let bins: Vec<String> = [
        "true", "false", "basename", "dirname", "env", "sleep", "yes", "whoami", "nproc",
    ]
    .iter()
    .map(|b| format!("/usr/bin/{b}"))
    .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.len() < 200_000))
    .take(5)
    .collect();
    assert_eq!(bins.len(), 5, "five small binaries in /usr/bin: {bins:?}");
    let libdir = std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-linux-gnu"))
        .expect("a multiarch library folder in /usr/lib");
    let libs: Vec<String> = ["libz.so.1", "libacl.so.1", "libattr.so.1", "libcap.so.2"]
        .iter()
        .map(|l| libdir.join(l).display().to_string())
        .filter(|p| Path::new(p).exists())
        .take(2)
        .collect();
    assert_eq!(
        libs.len(),
        2,
        "two shared libraries in {}",
        libdir.display()
    );
    let mut files = Vec::new();
    for p in bins
        .iter()
        .chain(&libs)
        .map(String::as_str)
        .chain(["/etc/os-release"])
    {
        from_host(p, &mut files);
    }
    // The parent folders, as a real rootfs has them, first.
    let mut dirs = std::collections::BTreeSet::new();
    for (path, _) in &files {
        let mut acc = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            acc.push_str(part);
            acc.push('/');
            dirs.insert(acc.clone());
        }
    }
    let mut entries: Vec<(String, TarEntry)> =
        dirs.into_iter().map(|d| (d, TarEntry::Dir)).collect();
    entries.extend(files);
    (entries, bins)
}

/// What `tar -t` says each gzip layer holds, merged lowest first the way a runtime
/// applies them: `.wh.NAME` deletes NAME (and what is under it) from the layers below.
fn merged_tar_listing(dir: &Path, layers: &[&Blob]) -> std::collections::BTreeSet<String> {
    let mut merged = std::collections::BTreeSet::new();
    for (i, l) in layers.iter().enumerate() {
        let f = dir.join(format!("layer{i}.tar.gz"));
        std::fs::write(&f, &l.bytes).unwrap();
        let listing = Cmd::tool("tar").arg("-tzf").arg(&f).run();
        for line in listing.lines() {
            let p = line
                .trim_start_matches("./")
                .trim_end_matches('/')
                .to_owned();
            let (parent, name) = p.rsplit_once('/').unwrap_or(("", &p));
            match name.strip_prefix(".wh.") {
                Some(gone) => {
                    let gone = if parent.is_empty() {
                        gone.to_owned()
                    } else {
                        format!("{parent}/{gone}")
                    };
                    let under = format!("{gone}/");
                    merged.retain(|x: &String| *x != gone && !x.starts_with(&under));
                }
                None => {
                    merged.insert(p);
                }
            }
        }
    }
    merged
}

fn checksum(tool: &str, file: &Path) -> String {
    let out = Cmd::tool(tool).arg(file).run();
    out.split_whitespace().next().unwrap().to_owned()
}

fn downloads(reg: &Registry, reference: &str) -> u64 {
    json_of(reg, &["package", "show", reference])["downloads"]
        .as_u64()
        .unwrap()
}

/// The download count once it reads `want`, or what it reads after a while. One node
/// counts its own downloads at once; behind a front, another node's show up once it writes
/// them down (every 10 s, `package/downloads.rs`).
fn downloads_reaching(reg: &Registry, reference: &str, want: u64) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let n = downloads(reg, reference);
        if n == want || reg.nodes() == 1 || std::time::Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

fn curl_head(reg: &Registry, path: &str, accept: &str) -> String {
    Cmd::tool("curl")
        .args(["-sS", "-I", "-f", "-u"])
        .arg(format!("berth:{}", reg.token()))
        .args(["-H", &format!("Accept: {accept}")])
        .arg(format!("{}{path}", reg.url()))
        .run()
}

fn failing(cmd: Cmd) -> Output {
    let (display, out) = cmd.output();
    assert!(!out.status.success(), "`{display}` should have failed");
    out
}

#[test]
fn package_cli_lists_shows_and_downloads_a_real_image_that_every_tool_loads() {
    let reg = Registry::start();
    let work = reg.scratch("work");
    let (base, bins) = rootfs();
    let (layer0, diff0) = gzip_tar(&base, 0, 0);
    let gone = bins[0].trim_start_matches('/').to_owned();
    let changed = bins[1].trim_start_matches('/').to_owned();
    let (parent, gone_name) = gone.rsplit_once('/').unwrap();
    let top = vec![
        (
            format!("{parent}/.wh.{gone_name}"),
            TarEntry::File(Vec::new(), 0o644),
        ),
        (
            changed.clone(),
            TarEntry::File(b"#!/bin/sh\necho changed\n".to_vec(), 0o755),
        ),
    ];
    let (layer1, diff1) = gzip_tar(&top, 0, 0);
    let config = Blob::json(
        OCI_CONFIG,
        &json!({
            "created": "2026-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/usr/bin/true"], "Env": ["PATH=/usr/bin"],
                       "Labels": {"org.opencontainers.image.description": "this machine's files"}},
            "rootfs": {"type": "layers", "diff_ids": [diff0, diff1]},
        }),
    );
    let m = manifest(&config.desc(), &[layer0.desc(), layer1.desc()], Map::new());
    let src = work.join("layout");
    let mut l = Layout::create(&src);
    l.add_image(
        &Image {
            config: config.clone(),
            layers: vec![layer0.clone(), layer1.clone()],
            manifest: m.clone(),
            architecture: "amd64".into(),
        },
        Some("1.0"),
    );
    l.write_index();
    let image = repo("files");
    let remote = format!("{}/{image}:1.0", reg.host());
    reg.skopeo_copy(
        &format!("oci:{}:1.0", src.display()),
        &format!("docker://{remote}"),
        &[],
    );
    let reference = format!("{image}:1.0");
    let shown = indexed(&reg, &[&reference]);
    assert_eq!(shown["state"], "indexed", "{shown}");
    assert_eq!(shown["digest"], m.digest.as_str());
    assert_eq!(shown["name"], "files");
    assert_eq!(shown["version"], "1.0");
    assert_eq!(shown["registry"], "e2e/tests");
    assert_eq!(shown["visibility"], "private");
    assert_eq!(shown["description"], "this machine's files");
    let os = std::fs::read_to_string("/etc/os-release").unwrap();
    let name = os
        .lines()
        .find_map(|l| l.strip_prefix("NAME="))
        .unwrap()
        .trim_matches('"');
    assert_eq!(shown["distribution"]["name"], name, "{shown}");
    for k in ["pushed_at", "total_files", "size", "downloads"] {
        assert!(shown[k].is_u64(), "{k}: {shown}");
    }
    for k in ["dependencies", "homepage", "licenses", "checksums"] {
        assert!(shown.get(k).is_some(), "{k}: {shown}");
    }
    let human = berth(&reg, &["package", "show", &reference]).run();
    assert!(human.contains("sha512:"), "{human}");
    assert!(
        human.contains("T") && human.contains("Z\n"),
        "RFC 3339 dates: {human}"
    );
    let listed = berth(&reg, &["package", "list", "e2e/tests"]).run();
    assert!(
        listed
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("files ")),
        "{listed}"
    );

    // Files: what tar -t of the merged layers says, the whited-out binary gone.
    let want = merged_tar_listing(&work, &[&layer0, &layer1]);
    assert!(!want.contains(&gone) && want.contains(&changed), "{want:?}");
    let files = json_of(&reg, &["package", "files", &reference, "--recursive"]);
    let got: std::collections::BTreeSet<String> = files["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["path"]
                .as_str()
                .unwrap()
                .trim_start_matches('/')
                .to_owned()
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(shown["total_files"], want.len() as u64);
    let etc = json_of(&reg, &["package", "files", &reference, "/etc"]);
    assert_eq!(etc["entries"][0]["type"], "symlink", "{etc}");
    assert_eq!(etc["entries"][0]["link"], "../usr/lib/os-release");

    // Search: by a whole path kept, not by the one whited out; by name.
    let kept = format!("/{changed}");
    let found = json_of(&reg, &["search", "e2e", "--path", &kept]);
    let hits = found["results"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{found}");
    assert_eq!(hits[0]["repository"], image.as_str());
    assert_eq!(hits[0]["paths"][0], kept.as_str());
    let found = json_of(&reg, &["search", "e2e", "--path", &format!("/{gone}")]);
    assert_eq!(found["results"], serde_json::json!([]), "{found}");
    let found = json_of(&reg, &["search", "e2e", "fil"]);
    assert_eq!(found["results"][0]["tags"][0], "1.0", "{found}");
    let human = berth(&reg, &["search", "e2e", "--path", &kept]).run();
    assert!(human.contains(&image) && human.contains(&kept), "{human}");

    // Downloads: the checksums the details show, the same bytes twice; a resume by range.
    let before = downloads(&reg, &reference);
    let first = work.join("first.tar");
    let out = berth(
        &reg,
        &["package", "download", &reference, "-o", path_str(&first)],
    )
    .run();
    let sums = &shown["checksums"];
    let sha = checksum("sha256sum", &first);
    assert!(out.contains(&format!("sha256: {sha}")), "{out}");
    assert_eq!(sha, sums["sha256"].as_str().unwrap());
    assert_eq!(checksum("md5sum", &first), sums["md5"].as_str().unwrap());
    assert_eq!(checksum("sha1sum", &first), sums["sha1"].as_str().unwrap());
    assert_eq!(
        checksum("sha512sum", &first),
        sums["sha512"].as_str().unwrap()
    );
    let second = work.join("second.tar");
    berth(
        &reg,
        &["package", "download", &reference, "-o", path_str(&second)],
    )
    .run();
    let bytes = std::fs::read(&first).unwrap();
    assert!(
        std::fs::read(&second).unwrap() == bytes,
        "two downloads differ"
    );
    assert_eq!(downloads_reaching(&reg, &reference, before + 2), before + 2);
    // A HEAD of the Download is not one; its ETag is what a resume sends as If-Range.
    let dl_path = format!("/api/v1/packages/{reference}/download");
    let head = curl_head(&reg, &dl_path, "*/*");
    let etag = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("etag:")
                .then(|| l[5..].trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no ETag: {head}"));
    let resumed = work.join("resumed.tar");
    let part = work.join("resumed.tar.part");
    std::fs::write(&part, &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(work.join("resumed.tar.part.etag"), &etag).unwrap();
    berth(
        &reg,
        &["package", "download", &reference, "-o", path_str(&resumed)],
    )
    .run();
    assert!(
        std::fs::read(&resumed).unwrap() == bytes,
        "the resumed download differs"
    );
    assert!(!part.exists());
    assert_eq!(
        downloads_reaching(&reg, &reference, before + 2),
        before + 2,
        "a resumed range and a HEAD do not count"
    );

    // docker load, podman load, skopeo docker-archive: and oci-archive: take it, with the
    // pushed config.
    let dockerd = Dockerd::start(&reg.scratch("docker"), &reg.host());
    let out = dockerd.docker().arg("load").arg("-i").arg(&first).run();
    assert!(out.contains(&remote), "docker load: {out}");
    assert_eq!(dockerd.image_id(&remote), config.digest);
    let podman = Podman::new(&reg.scratch("podman"));
    let out = podman.cmd().arg("load").arg("-i").arg(&first).run();
    assert!(out.contains(&remote), "podman load: {out}");
    let id = podman
        .cmd()
        .args(["image", "inspect", "--format", "{{.Id}}", &remote])
        .run();
    assert_eq!(format!("sha256:{}", id.trim()), config.digest);
    let pushed: Value = serde_json::from_slice(&config.bytes).unwrap();
    for transport in ["docker-archive", "oci-archive"] {
        let dir = work.join(transport);
        reg.skopeo_copy(
            &format!("{transport}:{}", first.display()),
            &format!("oci:{}:x", dir.display()),
            &[],
        );
        let blob = |digest: &str| -> Value {
            serde_json::from_slice(
                &std::fs::read(dir.join("blobs/sha256").join(&digest[7..])).unwrap(),
            )
            .unwrap()
        };
        let index: Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        let man = blob(index["manifests"][0]["digest"].as_str().unwrap());
        let cfg = blob(man["config"]["digest"].as_str().unwrap());
        assert_eq!(cfg["rootfs"], pushed["rootfs"], "{transport}");
        assert_eq!(cfg["config"]["Cmd"], pushed["config"]["Cmd"], "{transport}");
        assert_eq!(
            cfg["config"]["Labels"], pushed["config"]["Labels"],
            "{transport}"
        );
    }

    // Counting: a docker pull is one, a manifest HEAD none.
    let before = downloads(&reg, &reference);
    dockerd.login(&reg.host(), reg.token());
    dockerd.docker().args(["pull", &remote]).run();
    curl_head(
        &reg,
        &format!("/v2/{image}/manifests/1.0"),
        content::OCI_MANIFEST,
    );
    assert_eq!(downloads_reaching(&reg, &reference, before + 1), before + 1);
}

#[test]
fn package_cli_downloads_a_platform_of_an_index_and_says_which_there_are() {
    let reg = Registry::start();
    let amd = Image::random_for("amd64", 1, 20_000);
    let arm = Image::random_for("arm64", 1, 20_000);
    let idx = content::index(&[amd.index_entry(), arm.index_entry()], Map::new());
    let src = reg.scratch("src");
    let mut l = Layout::create(&src);
    l.add_index(&idx, &[&amd, &arm], Some("multi"));
    l.write_index();
    let image = repo("multi");
    reg.skopeo_copy(
        &format!("oci:{}:multi", src.display()),
        &format!("docker://{}/{image}:2.0", reg.host()),
        &["--all"],
    );
    let reference = format!("{image}:2.0");
    let arm_shown = indexed(&reg, &[&reference, "--platform", "linux/arm64"]);
    assert_eq!(arm_shown["digest"], arm.manifest.digest.as_str());

    let file = reg.scratch("dl").join("arm.tar");
    let out = berth(
        &reg,
        &[
            "package",
            "download",
            &reference,
            "--platform",
            "linux/arm64",
            "-o",
            path_str(&file),
        ],
    )
    .run();
    let sha = checksum("sha256sum", &file);
    assert!(out.contains(&sha), "{out}");
    assert_eq!(sha, arm_shown["checksums"]["sha256"].as_str().unwrap());

    let x = reg.scratch("dl").join("x.tar");
    let out = failing(berth(
        &reg,
        &["package", "download", &reference, "-o", path_str(&x)],
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("linux/amd64") && err.contains("linux/arm64"),
        "the platforms are named: {err}"
    );
    assert!(!x.exists());

    // Not there, or not for an anonymous caller: the same words, and how to present a token.
    let out = failing(
        Cmd::new(&berth_bin())
            .args([
                "package",
                "show",
                &reference,
                "--server",
                &reg.url(),
                "--data",
            ])
            .arg(reg.scratch("no-token"))
            .env("BERTH_TOKEN", ""),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no such image or version (or you may not see it)")
            && err.contains("BERTH_TOKEN"),
        "{err}"
    );
    let out = failing(berth(&reg, &["package", "show", &format!("{image}:nope")]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no such image or version (or you may not see it)"),
        "{err}"
    );
    let out = failing(berth(&reg, &["search", "e2e"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing to search for"), "{err}");
}
