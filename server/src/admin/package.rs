//! `berth package …` and `berth search`: the package API (`GET /api/v1/packages/…`,
//! `/api/v1/search`) from the command line, for scripts (`--json`) and people (tables and
//! key/value blocks). They read what anyone allowed to pull may read, so without a token
//! they go on anonymously (public registries). A download streams to `FILE.part` and is
//! renamed when whole; a `FILE.part` left by one that broke off is resumed with `Range`,
//! guarded by `If-Range` with the ETag kept beside it, so a changed archive starts over
//! instead of joining two different files.

use super::client;
use super::input::PackageRef;
use super::session::{emit, AdminError, Out, Session};
use super::table::{fields, printable, rfc3339, Table};
use crate::cli::{ApiArgs, PackageCommand};
use crate::package::short_digest;
use berth_core::http::percent::percent_encode;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

const PREFIX: &str = "/api/v1/packages";

/// Entries asked for per page of a directory.
const FILES_PAGE: usize = 1000;

pub fn execute(
    cmd: PackageCommand,
    out: &mut Out,
    env: &Option<OsString>,
) -> Result<(), AdminError> {
    match cmd {
        PackageCommand::List { registry, api } => {
            let s = Session::open_reader(&api, env)?;
            let v = s
                .call("GET", &format!("{PREFIX}/{registry}"), None)
                .map_err(|e| not_found(e, &s, &format!("{registry}: no such registry")))?;
            let images = v
                .get("images")
                .and_then(Value::as_array)
                .ok_or_else(|| AdminError::Unexpected("expected a list of images".into()))?;
            emit(out, &s, &v, || {
                let mut t =
                    Table::new(&["IMAGE", "TAGS", "VERSIONS", "PUSHED", "SIZE", "DOWNLOADS"]);
                for i in images {
                    t.row(vec![
                        text(i, "name"),
                        list(i, "latest_tags"),
                        text(i, "versions"),
                        time(i, "pushed_at"),
                        size(i, "size"),
                        text(i, "downloads"),
                    ]);
                }
                if t.is_empty() {
                    format!("no images in {registry}\n")
                } else {
                    t.render()
                }
            })
        }
        PackageCommand::Show {
            reference,
            platform,
            api,
        } => {
            let s = Session::open_reader(&api, env)?;
            let v = details(&s, &reference, platform.as_deref())?;
            emit(out, &s, &v, || show(&v))
        }
        PackageCommand::Files {
            reference,
            path,
            recursive,
            platform,
            api,
        } => {
            let s = Session::open_reader(&api, env)?;
            let dir = path.unwrap_or_else(|| "/".into());
            let mut entries = Vec::new();
            let mut pending = vec![dir.clone()];
            while let Some(d) = pending.pop() {
                let found = directory(&s, &reference, platform.as_deref(), &d)?;
                if recursive {
                    let dirs = found.iter().filter(|e| e["type"] == "dir");
                    pending.extend(dirs.map(|e| text(e, "path")));
                }
                entries.extend(found);
            }
            if recursive {
                // In path order, so the listing reads as a walk of the tree.
                entries.sort_by_cached_key(|e| text(e, "path"));
            }
            let v = serde_json::json!({ "path": dir, "entries": entries });
            emit(out, &s, &v, || files_table(&entries))
        }
        PackageCommand::Download {
            reference,
            platform,
            output,
            api,
        } => {
            let s = Session::open_reader(&api, env)?;
            download(&s, &reference, platform.as_deref(), &output, out)
        }
    }
}

/// `berth search ORG [NAME] [--path PATH]`.
pub fn search(
    org: &str,
    name: Option<&str>,
    path: Option<&str>,
    api: &ApiArgs,
    out: &mut Out,
    env: &Option<OsString>,
) -> Result<(), AdminError> {
    let name = name.filter(|n| !n.trim().is_empty());
    let path = path.filter(|p| !p.trim().is_empty());
    if name.is_none() && path.is_none() {
        return Err(AdminError::Failed(format!(
            "nothing to search for: give part of an image's name (berth search {org} NAME) or a file inside the images (berth search {org} --path /usr/bin/curl)"
        )));
    }
    let s = Session::open_reader(api, env)?;
    let mut q = format!("/api/v1/search?org={}", percent_encode(org));
    if let Some(n) = name {
        q.push_str(&format!("&q={}", percent_encode(n)));
    }
    if let Some(p) = path {
        q.push_str(&format!("&path={}", percent_encode(p)));
    }
    let v = s
        .call("GET", &q, None)
        .map_err(|e| not_found(e, &s, &format!("{org}: no such organisation")))?;
    let results = v
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| AdminError::Unexpected("expected a list of results".into()))?;
    emit(out, &s, &v, || {
        let mut t = if path.is_some() {
            Table::new(&["IMAGE", "TAGS", "DIGEST", "PATHS"])
        } else {
            Table::new(&["IMAGE", "TAGS", "DIGEST"])
        };
        for r in results {
            t.row(vec![
                text(r, "repository"),
                list(r, "tags"),
                short_digest(&text(r, "digest")),
                list(r, "paths"),
            ]);
        }
        if t.is_empty() {
            "no images found\n".to_string()
        } else {
            t.render()
        }
    })
}

/// A 404 as the operator should read it: what was asked for may not exist, or may be
/// private; without a token, say how to present one.
fn not_found(e: AdminError, s: &Session, what: &str) -> AdminError {
    match e {
        AdminError::Api { status: 404, .. } if s.token.is_none() => AdminError::Failed(format!(
            "{what} (or you may not see it): for a private registry, set BERTH_TOKEN to a token that may pull from it"
        )),
        AdminError::Api { status: 404, .. } => {
            AdminError::Failed(format!("{what} (or you may not see it)"))
        }
        other => other,
    }
}

/// A 404 about a version: an unknown (or hidden) image or version reads as [`NOT_FOUND`];
/// the API's other 404s (a directory, a platform, still indexing) say what they are.
fn version_not_found(e: AdminError, s: &Session, r: &PackageRef) -> AdminError {
    let about_the_version = |m: &str| {
        [
            "no image ",
            "no version ",
            "no registry ",
            "no organisation ",
        ]
        .iter()
        .any(|p| m.starts_with(p))
    };
    match e {
        AdminError::Api {
            status: 404,
            ref message,
        } if about_the_version(message) => {
            not_found(e, s, &format!("{r}: no such image or version"))
        }
        e => e,
    }
}

fn version_path(r: &PackageRef, what: &str, platform: Option<&str>) -> String {
    let mut p = format!("{PREFIX}/{}{}{what}", r.repo, r.version.suffix());
    if let Some(pl) = platform {
        p.push_str(&format!("?platform={}", percent_encode(pl)));
    }
    p
}

fn details(s: &Session, r: &PackageRef, platform: Option<&str>) -> Result<Value, AdminError> {
    s.call("GET", &version_path(r, "", platform), None)
        .map_err(|e| version_not_found(e, s, r))
}

/// Every entry of directory `dir`, page after page.
fn directory(
    s: &Session,
    r: &PackageRef,
    platform: Option<&str>,
    dir: &str,
) -> Result<Vec<Value>, AdminError> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut p = version_path(r, "/files", platform);
        p.push(if platform.is_some() { '&' } else { '?' });
        p.push_str(&format!("path={}&limit={FILES_PAGE}", percent_encode(dir)));
        if let Some(a) = &after {
            p.push_str(&format!("&after={}", percent_encode(a)));
        }
        let v = s
            .call("GET", &p, None)
            .map_err(|e| version_not_found(e, s, r))?;
        let page = v
            .get("entries")
            .and_then(Value::as_array)
            .ok_or_else(|| AdminError::Unexpected("expected a list of entries".into()))?;
        all.extend(page.iter().cloned());
        match v.get("next_after").and_then(Value::as_str) {
            Some(n) if !page.is_empty() => after = Some(n.to_owned()),
            _ => return Ok(all),
        }
    }
}

fn files_table(entries: &[Value]) -> String {
    let mut t = Table::new(&["TYPE", "MODE", "OWNER", "SIZE", "MODIFIED", "PATH"]);
    for e in entries {
        let mut path = text(e, "path");
        if let Some(l) = e.get("link").and_then(Value::as_str) {
            path.push_str(" -> ");
            path.push_str(l);
        }
        t.row(vec![
            text(e, "type"),
            text(e, "mode"),
            format!("{}:{}", text(e, "uid"), text(e, "gid")),
            text(e, "size"),
            time(e, "mtime"),
            path,
        ]);
    }
    if t.is_empty() {
        "no files\n".into()
    } else {
        t.render()
    }
}

/// The details as a key/value block: every field, dates in RFC 3339, sizes readable.
fn show(v: &Value) -> String {
    let mut f: Vec<(&str, String)> = vec![
        ("name", text(v, "name")),
        ("version", text(v, "version")),
        ("registry", text(v, "registry")),
        ("repository", text(v, "repository")),
        ("visibility", text(v, "visibility")),
        ("kind", text(v, "kind")),
        ("digest", text(v, "digest")),
        ("media type", text(v, "media_type")),
        ("tags", list(v, "tags")),
        ("state", text(v, "state")),
        ("pushed", time(v, "pushed_at")),
        ("indexed", time(v, "indexed_at")),
    ];
    let mut opt = |k: &'static str, key: &str| {
        if let Some(x) = v.get(key).filter(|x| !x.is_null()) {
            f.push((k, value_text(x)));
        }
    };
    opt("artifact type", "artifact_type");
    opt("platform", "platform");
    opt("index", "index_digest");
    if let Some(ps) = v
        .get("platforms")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
    {
        let names: Vec<String> = ps.iter().map(|p| text(p, "platform")).collect();
        f.push(("platforms", names.join(", ")));
    }
    f.push(("total files", text(v, "total_files")));
    f.push(("size", size(v, "size")));
    f.push(("downloads", text(v, "downloads")));
    if let Some(d) = v.get("distribution").filter(|d| !d.is_null()) {
        let name = [text(d, "name"), text(d, "version")]
            .into_iter()
            .filter(|s| s != "-")
            .collect::<Vec<_>>()
            .join(" ");
        f.push(("distribution", name));
    }
    for (k, key) in [
        ("title", "title"),
        ("description", "description"),
        ("homepage", "homepage"),
        ("source", "source"),
        ("licenses", "licenses"),
        ("software version", "software_version"),
        ("created", "created"),
        ("user", "user"),
        ("workdir", "workdir"),
        ("subject", "subject"),
    ] {
        if let Some(x) = v.get(key).filter(|x| !x.is_null()) {
            f.push((k, value_text(x)));
        }
    }
    for (k, key) in [("command", "command"), ("env", "env"), ("ports", "ports")] {
        if v.get(key)
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            f.push((k, list(v, key)));
        }
    }
    let deps = v.get("dependencies").and_then(Value::as_array);
    f.push(("dependencies", deps.map_or(0, Vec::len).to_string()));
    for d in deps.into_iter().flatten() {
        let mut line = text(d, "name");
        if let Some(p) = d.get("platform").and_then(Value::as_str) {
            line.push_str(&format!(" ({p})"));
        }
        f.push(("  dependency", line));
    }
    match v.get("checksums").filter(|c| !c.is_null()) {
        Some(c) => {
            for k in ["md5", "sha1", "sha256", "sha512"] {
                f.push((k, text(c, k)));
            }
        }
        None => f.push(("checksums", text(v, "checksums_missing"))),
    }
    let blob = |b: &Value| {
        format!(
            "{} ({}, {})",
            text(b, "digest"),
            human(b.get("size").and_then(Value::as_u64)),
            text(b, "media_type")
        )
    };
    if let Some(m) = v.get("manifest").filter(|m| !m.is_null()) {
        f.push(("manifest", blob(m)));
    }
    if let Some(c) = v.get("config").filter(|c| !c.is_null()) {
        f.push(("config", blob(c)));
    }
    for l in v
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        f.push(("layer", blob(l)));
    }
    for (k, key) in [("annotation", "annotations"), ("label", "labels")] {
        for (name, val) in v.get(key).and_then(Value::as_object).into_iter().flatten() {
            f.push((k, format!("{name}={}", value_text(val))));
        }
    }
    for r in v
        .get("referrers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let what = r
            .get("artifact_type")
            .and_then(Value::as_str)
            .unwrap_or_else(|| r.get("media_type").and_then(Value::as_str).unwrap_or("-"));
        f.push(("referrer", format!("{} ({what})", text(r, "digest"))));
    }
    fields(&f)
}

/// Downloads the version's archive to `output` through `output.part`, resuming it.
fn download(
    s: &Session,
    r: &PackageRef,
    platform: Option<&str>,
    output: &Path,
    out: &mut Out,
) -> Result<(), AdminError> {
    let part = sibling(output, ".part");
    let tag_file = sibling(output, ".part.etag");
    let file_err = |what: &str, p: &Path, e: std::io::Error| {
        AdminError::Failed(format!("cannot {what} {}: {e}", p.display()))
    };
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let etag = std::fs::read_to_string(&tag_file).ok();
    let mut headers = Vec::new();
    let range;
    if let (true, Some(t)) = (have > 0, etag.as_deref().map(str::trim)) {
        range = format!("bytes={have}-");
        headers.push(("Range", range.as_str()));
        headers.push(("If-Range", t));
    }
    let path = version_path(r, "/download", platform);
    let mut resp =
        client::open(&s.endpoint, &path, s.bearer(), &headers).map_err(|e| s.transport(e))?;
    let (append_at, total) = match resp.status {
        200 => (
            0,
            resp.header("content-length")
                .and_then(|l| l.parse::<u64>().ok()),
        ),
        206 => {
            let cr = resp.header("content-range").unwrap_or_default();
            match parse_content_range(cr) {
                Some((start, total)) if start == have => (have, Some(total)),
                _ => {
                    return Err(AdminError::Unexpected(format!(
                    "a resumed download answered `Content-Range: {cr}` for a part of {have} bytes"
                )))
                }
            }
        }
        416 if have > 0 => {
            // The part is as long as the archive or longer: start over.
            remove(&part);
            remove(&tag_file);
            return download(s, r, platform, output, out);
        }
        status => {
            let mut body = Vec::new();
            resp.body
                .by_ref()
                .take(1 << 20)
                .read_to_end(&mut body)
                .map_err(|e| s.transport(client::ClientError::Io(e)))?;
            return Err(version_not_found(s.refusal(status, &body), s, r));
        }
    };
    let mut hash = Sha256::new();
    let mut file = if append_at > 0 {
        // Hash what is already there, then continue after it.
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(&part)
            .map_err(|e| file_err("open", &part, e))?;
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = f.read(&mut buf).map_err(|e| file_err("read", &part, e))?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
        }
        f
    } else {
        let f = std::fs::File::create(&part).map_err(|e| file_err("create", &part, e))?;
        match resp.header("etag") {
            Some(t) => std::fs::write(&tag_file, t).map_err(|e| file_err("write", &tag_file, e))?,
            None => remove(&tag_file),
        }
        f
    };
    let mut written = append_at;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match resp.body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(AdminError::Failed(format!(
                    "the download broke off after {written} bytes ({e}); run the same command again to resume it"
                )))
            }
        };
        file.write_all(&buf[..n])
            .map_err(|e| file_err("write", &part, e))?;
        hash.update(&buf[..n]);
        written += n as u64;
    }
    file.sync_all().map_err(|e| file_err("write", &part, e))?;
    if let Some(t) = total.filter(|t| *t != written) {
        return Err(AdminError::Failed(format!(
            "the download broke off after {written} of {t} bytes; run the same command again to resume it"
        )));
    }
    let sum = hex::encode(hash.finalize());
    // The server's own hash of the archive, when it has made one: a mismatch is not a file
    // to keep.
    if let Ok(v) = details(s, r, platform) {
        if let Some(want) = v["checksums"]["sha256"].as_str().filter(|w| *w != sum) {
            remove(&part);
            remove(&tag_file);
            return Err(AdminError::Failed(format!(
                "the downloaded archive's SHA-256 is {sum}, but the server's is {want}; nothing was kept: download it again"
            )));
        }
    }
    std::fs::rename(&part, output).map_err(|e| file_err("rename the download to", output, e))?;
    remove(&tag_file);
    out.extend_from_slice(
        format!(
            "downloaded {r}{} to {}\nsize:   {written} ({})\nsha256: {sum}\n",
            platform.map(|p| format!(" ({p})")).unwrap_or_default(),
            printable(&output.display().to_string()),
            berth_core::limits::human_bytes(written),
        )
        .as_bytes(),
    );
    Ok(())
}

/// `FILE` with `suffix` appended to its name.
fn sibling(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn remove(p: &Path) {
    // Gone already is as good.
    let _ = std::fs::remove_file(p);
}

/// `bytes START-END/TOTAL` → (START, TOTAL).
fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.parse().ok()?, total.parse().ok()?))
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).map_or_else(|| "-".into(), value_text)
}

fn list(v: &Value, key: &str) -> String {
    match v.get(key).and_then(Value::as_array) {
        Some(a) => a.iter().map(value_text).collect::<Vec<_>>().join(", "),
        None => String::new(),
    }
}

fn time(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_u64)
        .map_or_else(|| "-".into(), rfc3339)
}

fn human(b: Option<u64>) -> String {
    b.map_or_else(|| "-".into(), berth_core::limits::human_bytes)
}

fn size(v: &Value, key: &str) -> String {
    match v.get(key).and_then(Value::as_u64) {
        Some(b) => format!("{} ({b} bytes)", berth_core::limits::human_bytes(b)),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testserver::{json, Canned};
    use super::*;
    use clap::Parser as _;

    /// Runs `berth ARGS --server <canned>` with `token` as BERTH_TOKEN (and no admin-token
    /// file); returns stdout or the error line, and the requests the server saw.
    fn berth(
        args: &[&str],
        token: Option<&str>,
        responses: Vec<Vec<u8>>,
    ) -> (Result<String, String>, Vec<String>) {
        let srv = Canned::start(responses);
        let empty = tempfile::tempdir().unwrap();
        let mut argv = vec!["berth"];
        argv.extend_from_slice(args);
        let data = empty.path().to_str().unwrap();
        argv.extend_from_slice(&["--server", &srv.url, "--data", data]);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        let mut out = Vec::new();
        let res = super::super::commands::execute(cli.command, &mut out, &token.map(Into::into));
        let res = res
            .map(|()| String::from_utf8(out).unwrap())
            .map_err(|e| e.to_string());
        (res, srv.requests())
    }

    const DETAILS: &str = r#"{"name":"app","version":"1.0","repository":"acme/web/app","registry":"acme/web",
        "visibility":"public","digest":"sha256:aaaa","kind":"image","state":"indexed","pushed_at":951782400,
        "total_files":6,"dependencies":[],"size":3145728,"downloads":4,
        "distribution":{"name":"Debian GNU/Linux","version":"12"},"description":"<b>\u001b[31m",
        "checksums":{"md5":"m","sha1":"s1","sha256":"s256","sha512":"s512"},
        "layers":[{"digest":"sha256:l1","size":2048,"media_type":"application/vnd.oci.image.layer.v1.tar"}],
        "labels":{"team":"web"}}"#;

    #[test]
    fn show_prints_every_field_readably_or_the_apis_json() {
        let (r, reqs) = berth(
            &["package", "show", "acme/web/app:1.0"],
            None,
            vec![json(200, DETAILS)],
        );
        let out = r.unwrap();
        let lines: Vec<(String, String)> = out
            .lines()
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.to_owned(), v.trim().to_owned())
            })
            .collect();
        for (k, v) in [
            ("name", "app"),
            ("visibility", "public"),
            ("pushed", "2000-02-29T00:00:00Z"),
            ("size", "3 MiB (3145728 bytes)"),
            ("total files", "6"),
            ("downloads", "4"),
            ("distribution", "Debian GNU/Linux 12"),
            ("description", "<b>?[31m"),
            ("sha256", "s256"),
            ("md5", "m"),
            (
                "layer",
                "sha256:l1 (2 KiB, application/vnd.oci.image.layer.v1.tar)",
            ),
            ("label", "team=web"),
            ("dependencies", "0"),
        ] {
            assert!(
                lines.contains(&(k.to_owned(), v.to_owned())),
                "{k}: {v} in\n{out}"
            );
        }
        assert!(
            reqs[0].starts_with("GET /api/v1/packages/acme/web/app:1.0 HTTP/1.1"),
            "{}",
            reqs[0]
        );
        assert!(
            !reqs[0].contains("Authorization"),
            "anonymous without a token"
        );
        let (r, reqs) = berth(
            &[
                "package",
                "show",
                "acme/web/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "--platform",
                "linux/arm/v7",
                "--json",
            ],
            Some("berth_pat_x"),
            vec![json(200, DETAILS)],
        );
        let v: Value = serde_json::from_str(&r.unwrap()).unwrap();
        assert_eq!(v["checksums"]["sha512"], "s512");
        assert!(reqs[0].contains("@sha256:0000"), "{}", reqs[0]);
        assert!(
            reqs[0].contains("?platform=linux/arm/v7 HTTP/1.1"),
            "{}",
            reqs[0]
        );
        assert!(reqs[0].contains("Authorization: Bearer berth_pat_x\r\n"));
    }

    #[test]
    fn not_found_and_refused_say_what_to_do() {
        let nf = r#"{"error":{"code":"NOT_FOUND","message":"no version acme/web/app:2.0"}}"#;
        let (r, _) = berth(
            &["package", "show", "acme/web/app:2.0"],
            Some("t"),
            vec![json(404, nf)],
        );
        assert_eq!(
            r.unwrap_err(),
            "acme/web/app:2.0: no such image or version (or you may not see it)"
        );
        let (r, _) = berth(
            &[
                "package",
                "download",
                "acme/web/app:2.0",
                "-o",
                "/nonexistent/x.tar",
            ],
            None,
            vec![json(404, nf)],
        );
        let e = r.unwrap_err();
        assert!(
            e.contains("no such image or version (or you may not see it)")
                && e.contains("set BERTH_TOKEN"),
            "{e}"
        );
        let (r, _) = berth(
            &["package", "list", "acme/web"],
            Some("t"),
            vec![json(
                401,
                r#"{"error":{"code":"UNAUTHORIZED","message":"unknown token; check the token"}}"#,
            )],
        );
        assert!(r.unwrap_err().contains("set BERTH_TOKEN"));
        // The API's other 404s say what they are.
        let (r, _) = berth(
            &["package", "files", "acme/web/app:1.0", "/nope"],
            Some("t"),
            vec![json(
                404,
                r#"{"error":{"code":"NOT_FOUND","message":"no directory /nope in acme/web/app:1.0"}}"#,
            )],
        );
        assert_eq!(r.unwrap_err(), "no directory /nope in acme/web/app:1.0");
    }

    #[test]
    fn bad_references_are_usage_errors() {
        for args in [
            &["package", "show", "acme/web"][..],
            &["package", "show", "acme/web/app"],
            &["package", "show", "acme/web/App:1"],
            &["package", "download", "acme/web/app:1"],
            &["package", "files", "acme/web/app:1", "--platform", "linux"],
            &["package", "list", "acme"],
        ] {
            let mut v = vec!["berth"];
            v.extend_from_slice(args);
            assert!(crate::cli::Cli::try_parse_from(v).is_err(), "{args:?}");
        }
    }

    #[test]
    fn files_pages_through_a_directory_and_walks_the_tree() {
        let page1 = r#"{"path":"/","entries":[{"name":"bin","path":"/bin","type":"dir","size":0,"mode":"0755","uid":0,"gid":0,"mtime":0,"link":null}],"next_after":"bin"}"#;
        let page2 = r#"{"path":"/","entries":[{"name":"sh","path":"/sh","type":"symlink","size":0,"mode":"0777","uid":0,"gid":0,"mtime":0,"link":"bin/dash"}],"next_after":null}"#;
        let bin = r#"{"path":"/bin","entries":[{"name":"dash","path":"/bin/dash","type":"file","size":125560,"mode":"0755","uid":0,"gid":0,"mtime":951782400,"link":null}],"next_after":null}"#;
        let (r, reqs) = berth(
            &["package", "files", "acme/web/app:1.0", "--recursive"],
            Some("t"),
            vec![json(200, page1), json(200, page2), json(200, bin)],
        );
        let out = r.unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "TYPE     MODE  OWNER  SIZE    MODIFIED              PATH"
        );
        assert!(lines[1].ends_with("/bin"), "{out}");
        assert!(
            lines[2].contains("125560") && lines[2].ends_with("/bin/dash"),
            "{out}"
        );
        assert!(lines[3].ends_with("/sh -> bin/dash"), "{out}");
        assert!(
            reqs[0]
                .starts_with("GET /api/v1/packages/acme/web/app:1.0/files?path=/&limit=1000 HTTP"),
            "{}",
            reqs[0]
        );
        assert!(
            reqs[1].contains("path=/&limit=1000&after=bin HTTP"),
            "{}",
            reqs[1]
        );
        assert!(reqs[2].contains("path=/bin&limit=1000 HTTP"), "{}", reqs[2]);
    }

    #[test]
    fn search_needs_something_to_search_for_and_encodes_it() {
        let (r, reqs) = berth(&["search", "acme"], Some("t"), vec![]);
        let e = r.unwrap_err();
        assert!(
            e.contains("nothing to search for") && e.contains("--path"),
            "{e}"
        );
        assert!(reqs.is_empty(), "no request without a query");
        let answer = r#"{"results":[{"repository":"acme/web/app","registry":"acme/web","name":"app","digest":"sha256:0123456789abcdef","tags":["1.0","latest"],"paths":["/usr/lib/libssl.so.3"]}]}"#;
        let (r, reqs) = berth(
            &["search", "acme", "my app", "--path", "libssl.so.3"],
            Some("t"),
            vec![json(200, answer)],
        );
        let out = r.unwrap();
        assert_eq!(
            out,
            "IMAGE         TAGS         DIGEST               PATHS\n\
             acme/web/app  1.0, latest  sha256:0123456789ab  /usr/lib/libssl.so.3\n"
        );
        assert!(
            reqs[0].starts_with("GET /api/v1/search?org=acme&q=my%20app&path=libssl.so.3 HTTP/1.1"),
            "{}",
            reqs[0]
        );
    }

    #[test]
    fn download_resumes_its_part_with_range_and_if_range_and_checks_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.tar");
        std::fs::write(dir.path().join("app.tar.part"), b"abc").unwrap();
        std::fs::write(dir.path().join("app.tar.part.etag"), "\"dl-1\"").unwrap();
        let rest = b"HTTP/1.1 206 Partial\r\nContent-Range: bytes 3-5/6\r\nETag: \"dl-1\"\r\nContent-Length: 3\r\n\r\ndef".to_vec();
        let sum = hex::encode(Sha256::digest(b"abcdef"));
        let details = format!(r#"{{"checksums":{{"sha256":"{sum}"}}}}"#);
        let (r, reqs) = berth(
            &[
                "package",
                "download",
                "acme/web/app:1.0",
                "-o",
                file.to_str().unwrap(),
            ],
            Some("t"),
            vec![rest, json(200, &details)],
        );
        let out = r.unwrap();
        assert!(out.contains(&format!("sha256: {sum}")), "{out}");
        assert!(out.contains("size:   6 (6 B)"), "{out}");
        assert_eq!(std::fs::read(&file).unwrap(), b"abcdef");
        assert!(!dir.path().join("app.tar.part").exists());
        assert!(!dir.path().join("app.tar.part.etag").exists());
        assert!(reqs[0].starts_with("GET /api/v1/packages/acme/web/app:1.0/download HTTP/1.1"));
        assert!(
            reqs[0].contains("\r\nRange: bytes=3-\r\nIf-Range: \"dl-1\"\r\n"),
            "{}",
            reqs[0]
        );

        // A whole answer starts the file over; a hash other than the server's keeps nothing.
        std::fs::write(dir.path().join("app.tar.part"), b"zz").unwrap();
        let whole =
            b"HTTP/1.1 200 OK\r\nETag: \"dl-2\"\r\nContent-Length: 6\r\n\r\nabcdeX".to_vec();
        let (r, _) = berth(
            &[
                "package",
                "download",
                "acme/web/app:1.0",
                "-o",
                file.to_str().unwrap(),
            ],
            Some("t"),
            vec![whole, json(200, &details)],
        );
        assert!(r.unwrap_err().contains("SHA-256"));
        assert!(!dir.path().join("app.tar.part").exists());
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"abcdef",
            "the earlier file stays"
        );

        // A body cut short leaves the part for the next run.
        std::fs::remove_file(&file).unwrap();
        let short = b"HTTP/1.1 200 OK\r\nETag: \"dl-3\"\r\nContent-Length: 6\r\n\r\nabc".to_vec();
        let (r, _) = berth(
            &[
                "package",
                "download",
                "acme/web/app:1.0",
                "-o",
                file.to_str().unwrap(),
            ],
            Some("t"),
            vec![short],
        );
        assert!(r.unwrap_err().contains("run the same command again"));
        assert_eq!(
            std::fs::read(dir.path().join("app.tar.part")).unwrap(),
            b"abc"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("app.tar.part.etag")).unwrap(),
            "\"dl-3\""
        );
    }
}
