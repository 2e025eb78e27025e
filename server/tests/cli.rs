//! The management commands end to end: the real `berth` binary serves on a loopback port
//! with a temporary data directory, and the same binary, run as `berth org|registry|token|
//! audit`, drives it. Asserts human output, `--json` shapes, error lines and exit codes.

// Tests wait for the server process: the server's clock rule is not theirs.
#![allow(clippy::disallowed_methods)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    url: String,
    data: PathBuf,
    /// Taken by `stop`, which keeps the directory for a later `start_on`.
    dir: Option<tempfile::TempDir>,
}

impl Server {
    fn start() -> Server {
        Server::start_on(tempfile::tempdir().unwrap(), true)
    }

    /// Serves `dir/data`; `first` when the store is new (the server then writes the admin
    /// token before it is ready).
    fn start_on(dir: tempfile::TempDir, first: bool) -> Server {
        let data = dir.path().join("data");
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .env("BERTH_LOG", "warn")
            .env_remove("BERTH_CONFIG")
            .env_remove("BERTH_LISTEN")
            .env_remove("BERTH_DATA")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn berth serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (mut url, mut admin) = (None, false);
        while url.is_none() || (first && !admin) {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "berth serve exited");
            if let Some(rest) = line.strip_prefix("berth: listening on ") {
                url = Some(rest.split(',').next().unwrap().to_string());
            }
            admin |= line.starts_with("berth: admin token written to ");
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Server {
            child,
            url: url.unwrap(),
            data,
            dir: Some(dir),
        }
    }

    /// Kills the server, keeping its data directory.
    fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dir.take().unwrap()
    }

    fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// `berth ARGS` against this server, with the admin token from the data directory.
    fn berth(&self, args: &[&str]) -> Run {
        run(args, &[("BERTH_SERVER", &self.url)], Some(&self.data))
    }

    /// `berth ARGS` against this server, with `token` in BERTH_TOKEN.
    fn berth_as(&self, token: &str, args: &[&str]) -> Run {
        run(
            args,
            &[("BERTH_SERVER", &self.url), ("BERTH_TOKEN", token)],
            Some(&self.data),
        )
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let r = self.berth(&a);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", r.stdout))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> String {
        assert_eq!(self.code, 0, "stderr: {}", self.stderr);
        assert_eq!(self.stderr, "");
        self.stdout
    }

    /// Exit 1 with one line on stderr, returned without the `berth: ` prefix.
    fn fails(self) -> String {
        assert_eq!(self.code, 1, "{self:?}");
        assert_eq!(self.stdout, "", "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "{self:?}");
        self.stderr
            .trim_end()
            .strip_prefix("berth: ")
            .unwrap_or_else(|| panic!("{self:?}"))
            .to_string()
    }
}

fn run(args: &[&str], env: &[(&str, &str)], data: Option<&Path>) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.args(args)
        .env_remove("BERTH_TOKEN")
        .env_remove("BERTH_SERVER")
        .env_remove("BERTH_DATA")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    if let Some(d) = data {
        c.env("BERTH_DATA", d);
    }
    let out = c.output().expect("run berth");
    Run {
        code: out.status.code().expect("berth exited by a signal"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// An address nothing listens on.
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
        && s.starts_with("20")
}

/// Pushes one blob into `repo` with a monolithic upload, authenticated by `token`.
fn push_blob(url: &str, token: &str, repo: &str, data: &[u8]) -> u16 {
    let digest = berth_client::oci::sha256_digest(data);
    let addr = url.trim_start_matches("http://").parse().unwrap();
    let mut c = berth_client::HttpConn::new(vec![addr], "x", Default::default());
    let bearer = format!("Bearer {token}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/octet-stream"),
    ];
    let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
    c.request("POST", &path, &headers, &[data], berth_client::Sink::Keep)
        .unwrap()
        .status
}

#[test]
fn every_management_command_works_against_a_running_server() {
    let srv = Server::start();
    let admin = srv.admin_token();
    let mut seen = String::new();

    let out = srv.berth(&["org", "create", "acme"]).ok();
    assert_eq!(out, "created organisation acme\n");
    let out = srv.berth(&["org", "list"]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], "ORG   CREATED");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], "acme");
    assert!(is_rfc3339(row[1]), "{out}");
    seen += &out;

    let out = srv
        .berth(&[
            "registry",
            "create",
            "acme",
            "Web Services",
            "--description",
            "the web",
        ])
        .ok();
    assert_eq!(out, "created private registry acme/web-services\n");
    let out = srv
        .berth(&["registry", "create", "acme", "api", "--public"])
        .ok();
    assert_eq!(out, "created public registry acme/api\n");
    let out = srv.berth(&["registry", "list", "acme"]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("REGISTRY      NAME          VISIBILITY  CREATED"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("api           api           public      20"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("web-services  Web Services  private     20"),
        "{out}"
    );
    assert!(lines[2].ends_with("  the web"), "{out}");

    let out = srv.berth(&["registry", "show", "acme/web-services"]).ok();
    assert!(out.starts_with("registry:    acme/web-services\nname:        Web Services\nvisibility:  private\ndescription: the web\ncreated:     20"), "{out}");
    let out = srv
        .berth(&[
            "registry",
            "set",
            "acme/web-services",
            "--public",
            "--description",
            "new",
        ])
        .ok();
    assert!(
        out.starts_with("updated registry acme/web-services\n"),
        "{out}"
    );
    assert!(
        out.contains("visibility:  public\ndescription: new\n"),
        "{out}"
    );
    let out = srv
        .berth(&["registry", "set", "acme/web-services", "--private"])
        .ok();
    assert!(
        out.contains("visibility:  private\ndescription: new\n"),
        "{out}"
    );

    // Organisation token: the secret is the last line, alone.
    let out = srv
        .berth(&[
            "token",
            "create",
            "acme",
            "--scopes",
            "read_packages,write_packages",
            "--registry",
            "web-services",
            "--expires-in",
            "30d",
            "--description",
            "ci",
        ])
        .ok();
    let pat = out.lines().last().unwrap().to_string();
    assert!(
        pat.starts_with("berth_pat_") && pat.len() == "berth_pat_".len() + 40,
        "{out}"
    );
    assert!(
        out.starts_with("created organisation token for acme: tok_"),
        "{out}"
    );
    assert!(
        out.contains("scopes:     read_packages,write_packages\n"),
        "{out}"
    );
    assert!(out.contains("registries: web-services\n"), "{out}");
    let expires = out
        .lines()
        .find_map(|l| l.strip_prefix("expires:    "))
        .unwrap();
    assert!(is_rfc3339(expires), "{out}");

    let out = srv
        .berth(&[
            "token",
            "create-registry",
            "acme/api",
            "--expires-in",
            "12h",
            "--description",
            "pull",
        ])
        .ok();
    let rt = out.lines().last().unwrap().to_string();
    assert!(rt.starts_with("berth_rt_"), "{out}");
    assert!(
        out.starts_with("created read-only registry token for acme/api: tok_"),
        "{out}"
    );
    assert!(out.contains("scopes:     read_packages\n"), "{out}");

    let out = srv.berth(&["token", "list", "acme"]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("ID  ") || lines[0].starts_with("ID "),
        "{out}"
    );
    for h in [
        "KIND",
        "SCOPES",
        "REGISTRIES",
        "STATUS",
        "CREATED",
        "EXPIRES",
        "LAST USED",
        "DESCRIPTION",
    ] {
        assert!(lines[0].contains(h), "{out}");
    }
    let org_row = lines.iter().find(|l| l.contains(" org ")).unwrap();
    assert!(
        org_row.contains("read_packages,write_packages  web-services  active"),
        "{out}"
    );
    assert!(org_row.ends_with("never      ci"), "{out}");
    assert!(!out.contains("berth_"), "token list shows a secret: {out}");
    seen += &out;

    // The new organisation token works for its own organisation, then stops when revoked.
    let out = srv.berth_as(&pat, &["registry", "list", "acme"]).ok();
    assert!(out.contains("web-services"), "{out}");
    let id = org_row.split_whitespace().next().unwrap().to_string();
    let out = srv.berth(&["token", "revoke", &id]).ok();
    assert_eq!(out, format!("revoked token {id}\n"));
    let out = srv.berth(&["token", "list", "acme"]).ok();
    assert!(
        out.lines()
            .any(|l| l.starts_with(&id) && l.contains(" revoked ")),
        "{out}"
    );
    let e = srv.berth_as(&pat, &["registry", "list", "acme"]).fails();
    assert!(e.starts_with("the token was refused"), "{e}");
    let file = srv.data.join("admin-token");
    assert!(
        e.ends_with(&format!("set BERTH_TOKEN or check {}", file.display())),
        "{e}"
    );

    let out = srv.berth(&["audit", "acme"]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["TIME", "ACTOR", "ACTION", "TARGET", "DETAIL"]
    );
    let actions: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "token.revoke",
            "token.create",
            "token.create",
            "registry.update",
            "registry.update",
            "registry.create",
            "registry.create",
            "org.create"
        ],
        "{out}"
    );
    assert!(
        lines[1..]
            .iter()
            .all(|l| is_rfc3339(l.split_whitespace().next().unwrap())),
        "{out}"
    );
    let out = srv.berth(&["audit", "acme", "--limit", "2"]).ok();
    assert_eq!(out.lines().count(), 3, "{out}");
    seen += &out;

    // Deleting a registry revokes its registry token: a registry created again under the
    // same slug is not opened to it.
    let rt_id = srv
        .berth(&["token", "list", "acme"])
        .ok()
        .lines()
        .find(|l| l.contains(" registry "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let out = srv.berth(&["registry", "delete", "acme/api"]).ok();
    assert_eq!(
        out,
        format!("deleted registry acme/api; revoked the tokens that named it: {rt_id}\n")
    );
    let out = srv.berth(&["audit", "acme", "--limit", "1"]).ok();
    assert!(out.contains("token.revoke"), "{out}");
    assert!(out.contains("registry acme/api deleted"), "{out}");
    let out = srv.berth(&["token", "list", "acme"]).ok();
    assert!(
        out.lines()
            .any(|l| l.starts_with(&rt_id) && l.contains(" revoked ")),
        "{out}"
    );
    let out = srv.berth(&["registry", "list", "acme"]).ok();
    assert!(!out.contains("api "), "{out}");
    seen += &out;

    assert!(!seen.contains(&admin), "the admin token was printed");
    assert!(
        !seen.contains(&rt),
        "a secret was printed after its creation"
    );
}

#[test]
fn json_output_is_the_api_answer() {
    let srv = Server::start();
    let v = srv.json(&["org", "create", "acme"]);
    assert_eq!(v["slug"], "acme");
    assert!(v["created"].is_u64());
    let v = srv.json(&["org", "list"]);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["slug"], "acme");

    let v = srv.json(&[
        "registry",
        "create",
        "acme",
        "Web",
        "--public",
        "--description",
        "d",
    ]);
    assert_eq!(
        (
            &v["org"],
            &v["slug"],
            &v["name"],
            &v["public"],
            &v["description"]
        ),
        (
            &"acme".into(),
            &"web".into(),
            &"Web".into(),
            &true.into(),
            &"d".into()
        )
    );
    let v = srv.json(&["registry", "list", "acme"]);
    assert_eq!(v[0]["slug"], "web");
    let v = srv.json(&["registry", "show", "acme/web"]);
    assert_eq!(v["visibility"], "public");
    let v = srv.json(&["registry", "set", "acme/web", "--private"]);
    assert_eq!(v["public"], false);

    let v = srv.json(&[
        "token",
        "create",
        "acme",
        "--scopes",
        "write_packages",
        "--expires-in",
        "90m",
    ]);
    let secret = v["token"].as_str().unwrap();
    assert!(secret.starts_with("berth_pat_"));
    assert_eq!(
        v["scopes"],
        serde_json::json!(["read_packages", "write_packages"])
    );
    assert_eq!(v["registries"], serde_json::json!([]));
    assert_eq!(
        v["expires"].as_u64().unwrap() - v["created"].as_u64().unwrap(),
        5400
    );
    let id = v["id"].as_str().unwrap().to_string();
    let v = srv.json(&[
        "token",
        "create-registry",
        "acme/web",
        "--expires-in",
        "3600s",
    ]);
    assert_eq!(
        (&v["kind"], &v["registries"]),
        (&"registry".into(), &serde_json::json!(["web"]))
    );
    assert!(v["token"].as_str().unwrap().starts_with("berth_rt_"));

    let v = srv.json(&["token", "list", "acme"]);
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for t in list {
        assert!(t.get("token").is_none() && t.get("hash").is_none(), "{t}");
        assert!(t["id"].as_str().unwrap().starts_with("tok_"));
    }
    let v = srv.json(&["token", "revoke", &id]);
    assert_eq!(v["id"], id.as_str());
    assert!(v["revoked"].is_u64());

    let v = srv.json(&["audit", "acme", "--limit", "3"]);
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["action"], "token.revoke");
    assert!(list[0]["seq"].as_u64() > list[1]["seq"].as_u64());
    let v = srv.json(&["registry", "delete", "acme/web"]);
    assert_eq!(v["slug"], "web");
}

#[test]
fn failures_are_one_line_on_stderr_with_exit_1() {
    let srv = Server::start();
    srv.berth(&["org", "create", "acme"]).ok();

    let e = srv.berth(&["org", "create", "acme"]).fails();
    assert_eq!(e, "the organisation already exists; choose another slug");
    let e = srv.berth(&["registry", "show", "acme/nope"]).fails();
    assert!(e.contains("acme/nope"), "{e}");
    let e = srv.berth(&["registry", "list", "nope"]).fails();
    assert!(e.contains("organisation"), "{e}");
    let e = srv
        .berth(&["token", "revoke", "tok_0000000000000000"])
        .fails();
    assert!(e.contains("tok_0000000000000000"), "{e}");

    // A wrong token, named by where it came from.
    let e = srv.berth_as("berth_adm_wrong", &["org", "list"]).fails();
    assert!(e.starts_with("the token was refused"), "{e}");
    assert!(e.contains("set BERTH_TOKEN or check"), "{e}");
    assert!(!e.contains("berth_adm_wrong"), "{e}");

    // An organisation token may read its organisation but not create others.
    let pat = srv
        .berth(&["token", "create", "acme", "--scopes", "read_packages"])
        .ok()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let out = srv.berth_as(&pat, &["org", "list"]).ok();
    assert!(out.lines().nth(1).unwrap().starts_with("acme "), "{out}");
    let e = srv.berth_as(&pat, &["org", "create", "other"]).fails();
    assert_eq!(e, "only the admin token may create organisations");

    // A registry that holds a blob cannot be deleted.
    srv.berth(&["registry", "create", "acme", "web"]).ok();
    assert_eq!(
        push_blob(&srv.url, &srv.admin_token(), "acme/web/app", b"layer"),
        201
    );
    let e = srv.berth(&["registry", "delete", "acme/web"]).fails();
    assert!(e.contains("still holds images"), "{e}");

    // No server there.
    let url = dead_url();
    let r = run(
        &["org", "list", "--server", &url],
        &[("BERTH_TOKEN", "berth_adm_x")],
        None,
    );
    let e = r.fails();
    assert!(
        e.starts_with(&format!("cannot reach the Berth server at {url}: ")),
        "{e}"
    );
    assert!(
        e.ends_with("is `berth serve` running? pass --server URL"),
        "{e}"
    );

    // No token anywhere.
    let empty = tempfile::tempdir().unwrap();
    let e = run(
        &["org", "list", "--server", &srv.url],
        &[],
        Some(empty.path()),
    )
    .fails();
    assert!(e.starts_with("no token: set BERTH_TOKEN"), "{e}");
    assert!(e.contains("admin-token"), "{e}");

    let e = run(
        &["org", "list", "--server", "https://x"],
        &[("BERTH_TOKEN", "t")],
        None,
    )
    .fails();
    assert!(e.contains("--server http://HOST:PORT"), "{e}");
}

#[test]
fn bad_values_are_usage_errors_with_exit_2_before_any_request() {
    // The server URL is dead: a request would fail with exit 1, not 2.
    let url = dead_url();
    let rows: &[(&[&str], &str)] = &[
        (&["org", "create", "Acme"], "lower-case"),
        (&["registry", "create", "acme", "!!!"], "registry slug"),
        (&["registry", "show", "acme"], "ORG/REGISTRY"),
        (&["registry", "set", "acme/web"], "--public"),
        (
            &["registry", "set", "acme/web", "--public", "--private"],
            "cannot be used with",
        ),
        (
            &["token", "create", "acme", "--scopes", "admin"],
            "read_packages, write_packages",
        ),
        (&["token", "create", "acme"], "--scopes"),
        (
            &[
                "token",
                "create",
                "acme",
                "--scopes",
                "read_packages",
                "--expires-in",
                "30",
            ],
            "30d, 12h, 90m or 3600s",
        ),
        (
            &[
                "token",
                "create",
                "acme",
                "--scopes",
                "read_packages",
                "--registry",
                "Web",
            ],
            "registry slug",
        ),
        (
            &["token", "create-registry", "acme/web", "--expires-in", "1w"],
            "30d, 12h, 90m or 3600s",
        ),
        (&["token", "revoke", "berth_pat_abc"], "secret"),
        (&["audit", "acme", "--limit", "0"], "--limit"),
        (&["org"], "Usage"),
    ];
    for (args, want) in rows {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--server", &url]);
        let r = run(&a, &[("BERTH_TOKEN", "berth_adm_x")], None);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("cannot reach"), "{args:?}: {}", r.stderr);
    }
}

/// An operator who lost DATA/admin-token stops the server and runs `berth reset-admin-token`:
/// every admin token is revoked and a new one written, and the store is otherwise untouched.
#[test]
fn reset_admin_token_replaces_a_lost_admin_token_offline() {
    let srv = Server::start();
    let old = srv.admin_token();
    srv.berth(&["org", "create", "acme"]).ok();
    let data = srv.data.clone();
    let data_arg = data.to_str().unwrap();
    // While the server runs it holds the data directory: refused, saying why.
    let r = run(&["reset-admin-token", "--data", data_arg], &[], None);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("in use by another berth"), "{r:?}");

    let dir = srv.stop();
    std::fs::remove_file(data.join("admin-token")).unwrap();
    let r = run(&["reset-admin-token", "--data", data_arg], &[], None);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("revoked admin token(s) tok_"), "{r:?}");
    assert!(r.stdout.contains("a new admin token is in "), "{r:?}");

    let srv = Server::start_on(dir, false);
    let new = srv.admin_token();
    assert!(new.starts_with("berth_adm_") && new != old, "{new}");
    let out = srv.berth(&["org", "list"]).ok();
    assert!(out.contains("acme"), "{out}");
    let e = srv.berth_as(&old, &["org", "list"]).fails();
    assert!(e.starts_with("the token was refused"), "{e}");
}
