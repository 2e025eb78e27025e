//! The management commands (`berth org|registry|token|audit`): a thin client of the running
//! server's management API (docs/auth.md, "Management API and audit log"). They never open the
//! store themselves, so they work against a remote server and never race the one running.
//! Errors are one line on stderr saying what went wrong and what to do, exit code 1.

pub mod client;
mod commands;
pub mod input;
mod package;
mod table;
#[cfg(test)]
mod testserver;

use crate::cli::{ApiArgs, Command};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Runs one command against a running server: `Org`, `Registry`, `Token`, `Audit`, `Gc`,
/// `Package`, `Search`.
pub fn run(cmd: Command) -> ExitCode {
    let mut out = Vec::new();
    let res = commands::execute(cmd, &mut out, &std::env::var_os("BERTH_TOKEN"));
    // Whatever was produced goes out even on error: nothing is printed twice, and a write
    // failure on a closed stdout is not worth a second error.
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_all(&out).and_then(|()| stdout.flush());
    match res {
        Ok(()) if written.is_ok() => ExitCode::SUCCESS,
        Ok(()) => {
            warn_out!("berth: cannot write the answer to standard output");
            ExitCode::FAILURE
        }
        Err(e) => {
            warn_out!("berth: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A management command that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Url(#[from] client::UrlError),
    #[error("no token: set BERTH_TOKEN, or pass --data DIR with the data directory of `berth serve` (cannot read {}: {err})", path.display())]
    NoToken { path: PathBuf, err: std::io::Error },
    #[error("the token in {0} is empty or not a single line of text: set BERTH_TOKEN to the token alone")]
    BadToken(TokenSource),
    #[error("cannot reach the Berth server at {url}: {err}; is `berth serve` running? pass --server URL")]
    Unreachable {
        url: String,
        err: client::ClientError,
    },
    #[error("the exchange with the Berth server at {url} failed: {err}; retry, or check --server URL points at a Berth server")]
    Exchange {
        url: String,
        err: client::ClientError,
    },
    #[error("the token was refused{}: set BERTH_TOKEN or check {}", detail(.message), .from.data_file())]
    Refused {
        from: TokenSource,
        message: Option<String>,
    },
    /// A failure whose message already says what went wrong and what to do.
    #[error("{0}")]
    Failed(String),
    /// The server's own error message, passed through.
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("the server answered HTTP {status} without an error message; check --server URL points at a Berth server with the management API")]
    Status { status: u16 },
    #[error("the server's answer is not what this berth expects ({0}); check --server URL points at a Berth server of the same version")]
    Unexpected(String),
}

fn detail(message: &Option<String>) -> String {
    match message {
        Some(m) => format!(" ({})", table::printable(m)),
        None => String::new(),
    }
}

/// Where the token came from, for messages (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Env {
        data: PathBuf,
    },
    File(PathBuf),
    /// None anywhere: the package commands go on anonymously (public registries).
    Anonymous {
        data: PathBuf,
    },
}

impl TokenSource {
    /// The admin-token file the operator should check.
    fn data_file(&self) -> String {
        match self {
            TokenSource::Env { data } | TokenSource::Anonymous { data } => {
                data.join("admin-token").display().to_string()
            }
            TokenSource::File(p) => p.display().to_string(),
        }
    }
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Env { .. } => f.write_str("BERTH_TOKEN"),
            TokenSource::Anonymous { .. } => f.write_str("no token"),
            TokenSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A token secret; `Debug` redacts it so no error or log line can carry it.
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The token: BERTH_TOKEN if set and non-empty, else `DATA/admin-token`. Surrounding
/// whitespace (the file's newline) is dropped; anything that could split a header is refused.
pub fn load_token(
    env: &Option<std::ffi::OsString>,
    data: &Path,
) -> Result<(Secret, TokenSource), AdminError> {
    let (raw, source) = match env.as_ref().filter(|v| !v.is_empty()) {
        Some(v) => (
            v.to_string_lossy().into_owned(),
            TokenSource::Env {
                data: data.to_path_buf(),
            },
        ),
        None => {
            let path = data.join("admin-token");
            match std::fs::read(&path) {
                Ok(b) => (
                    String::from_utf8_lossy(&b).into_owned(),
                    TokenSource::File(path),
                ),
                Err(err) => return Err(AdminError::NoToken { path, err }),
            }
        }
    };
    let t = raw.trim();
    if t.is_empty() || t.bytes().any(|b| b < 0x21 || b == 0x7f) {
        return Err(AdminError::BadToken(source));
    }
    Ok((Secret(t.to_string()), source))
}

/// The common arguments, once the token is loaded.
pub struct Session {
    pub endpoint: client::Endpoint,
    /// `None`: anonymous.
    pub token: Option<Secret>,
    pub source: TokenSource,
    pub json: bool,
}

impl Session {
    pub fn open(
        api: &ApiArgs,
        env_token: &Option<std::ffi::OsString>,
    ) -> Result<Session, AdminError> {
        let endpoint = client::Endpoint::parse(&api.server)?;
        let (token, source) = load_token(env_token, &api.data)?;
        Ok(Session {
            endpoint,
            token: Some(token),
            source,
            json: api.json,
        })
    }

    /// [`open`](Self::open) for what anyone may read (public registries' packages): with no
    /// token anywhere, anonymous rather than an error.
    pub fn open_reader(
        api: &ApiArgs,
        env_token: &Option<std::ffi::OsString>,
    ) -> Result<Session, AdminError> {
        match Session::open(api, env_token) {
            Err(AdminError::NoToken { .. }) => Ok(Session {
                endpoint: client::Endpoint::parse(&api.server)?,
                token: None,
                source: TokenSource::Anonymous {
                    data: api.data.clone(),
                },
                json: api.json,
            }),
            other => other,
        }
    }

    /// The token to present, if any.
    pub fn bearer(&self) -> Option<&str> {
        self.token.as_ref().map(Secret::expose)
    }

    /// A transport failure as the operator should read it.
    pub fn transport(&self, err: client::ClientError) -> AdminError {
        let url = self.endpoint.url().to_string();
        match err {
            client::ClientError::Connect(_) => AdminError::Unreachable { url, err },
            _ => AdminError::Exchange { url, err },
        }
    }

    /// An answer outside 2xx as an error: the server's message, a refused token.
    pub fn refusal(&self, status: u16, body: &[u8]) -> AdminError {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let message = parsed.as_ref().and_then(error_message);
        match (status, message) {
            (401, message) => AdminError::Refused {
                from: self.source.clone(),
                message,
            },
            (status, Some(message)) => AdminError::Api { status, message },
            (status, None) => AdminError::Status { status },
        }
    }

    /// One API call: JSON in, JSON out (`Null` for an empty body), errors mapped to what the
    /// operator should do.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, AdminError> {
        self.call_waiting(method, path, body, client::IO_TIMEOUT)
    }

    /// [`call`](Self::call), waiting up to `wait` for the answer.
    pub fn call_waiting(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        wait: std::time::Duration,
    ) -> Result<serde_json::Value, AdminError> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let resp = client::request(
            &self.endpoint,
            method,
            path,
            self.bearer(),
            bytes.as_deref(),
            wait,
        )
        .map_err(|err| self.transport(err))?;
        if (200..300).contains(&resp.status) {
            if resp.body.iter().all(u8::is_ascii_whitespace) {
                return Ok(serde_json::Value::Null);
            }
            return serde_json::from_slice(&resp.body).map_err(|_| {
                AdminError::Unexpected(format!("HTTP {} with a body that is not JSON", resp.status))
            });
        }
        Err(self.refusal(resp.status, &resp.body))
    }
}

/// `{"error":{"code","message"}}` (the management API), or the registry API's
/// `{"errors":[{"code","message"}]}`, as one printable line.
fn error_message(v: &serde_json::Value) -> Option<String> {
    let e = v
        .get("error")
        .or_else(|| v.get("errors").and_then(|e| e.get(0)))?;
    let m = match e {
        serde_json::Value::String(s) => s.clone(),
        _ => e
            .get("message")
            .and_then(|m| m.as_str())
            .or_else(|| e.get("code").and_then(|c| c.as_str()))?
            .to_string(),
    };
    let m = table::printable(m.trim());
    (!m.is_empty()).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::testserver::{json, Canned};
    use super::*;
    use clap::Parser as _;
    use std::ffi::OsString;

    /// Runs `berth ARGS --server <canned>` with BERTH_TOKEN set; returns stdout or the error
    /// line, and the requests the server saw.
    fn berth(args: &[&str], responses: Vec<Vec<u8>>) -> (Result<String, String>, Vec<String>) {
        let srv = Canned::start(responses);
        let mut argv = vec!["berth"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--server", &srv.url]);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        let mut out = Vec::new();
        let res = commands::execute(cli.command, &mut out, &Some(OsString::from("berth_adm_x")));
        let res = res
            .map(|()| String::from_utf8(out).unwrap())
            .map_err(|e| e.to_string());
        (res, srv.requests())
    }

    fn body(req: &str) -> serde_json::Value {
        serde_json::from_str(&req[req.find("\r\n\r\n").unwrap() + 4..]).unwrap()
    }

    #[test]
    fn token_comes_from_the_environment_before_the_data_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin-token"), "berth_adm_file\n").unwrap();
        let env = Some(OsString::from("  berth_pat_env "));
        let (t, s) = load_token(&env, dir.path()).unwrap();
        assert_eq!(
            (t.expose(), s.to_string()),
            ("berth_pat_env", "BERTH_TOKEN".into())
        );
        for unset in [None, Some(OsString::new())] {
            let (t, s) = load_token(&unset, dir.path()).unwrap();
            assert_eq!(t.expose(), "berth_adm_file");
            assert_eq!(s, TokenSource::File(dir.path().join("admin-token")));
        }
        assert_eq!(format!("{t:?}"), "Secret(..)");
    }

    #[test]
    fn a_missing_or_multi_line_token_says_how_to_provide_one() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_token(&None, dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("set BERTH_TOKEN") && e.contains("admin-token"),
            "{e}"
        );
        std::fs::write(dir.path().join("admin-token"), "a\nb").unwrap();
        let e = load_token(&None, dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a single line"), "{e}");
        let e = load_token(&Some("x\r\nHost: evil".into()), dir.path()).unwrap_err();
        assert!(matches!(e, AdminError::BadToken(TokenSource::Env { .. })));
    }

    #[test]
    fn api_error_messages_are_passed_through() {
        let (r, _) = berth(
            &["org", "create", "acme"],
            vec![json(
                409,
                r#"{"error":{"code":"exists","message":"organisation acme already exists"}}"#,
            )],
        );
        assert_eq!(r.unwrap_err(), "organisation acme already exists");
    }

    #[test]
    fn a_refused_token_names_where_to_fix_it() {
        let (r, _) = berth(
            &["org", "list", "--data", "/srv/berth"],
            vec![json(
                401,
                r#"{"error":{"code":"unauthorized","message":"invalid token"}}"#,
            )],
        );
        assert_eq!(
            r.unwrap_err(),
            "the token was refused (invalid token): set BERTH_TOKEN or check /srv/berth/admin-token"
        );
    }

    #[test]
    fn an_error_without_json_reports_the_status() {
        let (r, _) = berth(
            &["org", "list"],
            vec![b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad".to_vec()],
        );
        assert!(r.unwrap_err().contains("HTTP 502"));
        let (r, _) = berth(
            &["org", "list"],
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad".to_vec()],
        );
        assert!(r.unwrap_err().contains("not JSON"));
    }

    #[test]
    fn org_list_prints_a_table_with_rfc3339_times() {
        let (r, reqs) = berth(
            &["org", "list"],
            vec![json(
                200,
                r#"[{"slug":"acme","created":0},{"slug":"b","created":951782400}]"#,
            )],
        );
        assert_eq!(
            r.unwrap(),
            "ORG   CREATED\nacme  1970-01-01T00:00:00Z\nb     2000-02-29T00:00:00Z\n"
        );
        assert!(reqs[0].starts_with("GET /api/v1/orgs HTTP/1.1"));
        assert!(reqs[0].contains("Authorization: Bearer berth_adm_x\r\n"));
    }

    #[test]
    fn json_flag_prints_the_api_answer() {
        let (r, _) = berth(
            &["org", "list", "--json"],
            vec![json(200, r#"[{"slug":"acme","created":0}]"#)],
        );
        let v: serde_json::Value = serde_json::from_str(&r.unwrap()).unwrap();
        assert_eq!(v, serde_json::json!([{"slug":"acme","created":0}]));
    }

    #[test]
    fn token_create_sends_scopes_registries_expiry_and_prints_the_secret_last() {
        let (r, reqs) = berth(
            &[
                "token",
                "create",
                "acme",
                "--scopes",
                "write_packages,read_packages",
                "--registry",
                "web",
                "--registry",
                "api",
                "--expires-in",
                "30d",
                "--description",
                "ci",
            ],
            vec![json(
                201,
                r#"{"id":"tok_0123456789abcdef","kind":"org","scopes":["read_packages","write_packages"],"registries":["web","api"],"expires":86400,"token":"berth_pat_SECRET"}"#,
            )],
        );
        let out = r.unwrap();
        assert!(
            out.starts_with("created organisation token for acme: tok_0123456789abcdef\n"),
            "{out}"
        );
        assert!(out.contains("registries: web,api\n"), "{out}");
        assert!(out.contains("expires:    1970-01-02T00:00:00Z\n"), "{out}");
        assert_eq!(out.lines().last(), Some("berth_pat_SECRET"));
        assert_eq!(out.matches("berth_pat_SECRET").count(), 1);
        assert!(reqs[0].starts_with("POST /api/v1/orgs/acme/tokens HTTP/1.1"));
        assert_eq!(
            body(&reqs[0]),
            serde_json::json!({"scopes":["read_packages","write_packages"],
                "registries":["web","api"],"expires_in":2_592_000,"description":"ci"})
        );
    }

    #[test]
    fn registry_set_patches_visibility_and_description() {
        let (r, reqs) = berth(
            &[
                "registry",
                "set",
                "acme/web",
                "--private",
                "--description",
                "d",
            ],
            vec![json(
                200,
                r#"{"org":"acme","slug":"web","name":"Web","description":"d","public":false,"created":0}"#,
            )],
        );
        let out = r.unwrap();
        assert!(out.contains("registry:    acme/web\n"), "{out}");
        assert!(out.contains("visibility:  private\n"), "{out}");
        assert!(reqs[0].starts_with("PATCH /api/v1/orgs/acme/registries/web HTTP/1.1"));
        assert_eq!(
            body(&reqs[0]),
            serde_json::json!({"public":false,"description":"d"})
        );
    }

    #[test]
    fn gc_posts_and_prints_what_was_reclaimed() {
        let report = r#"{"dry_run":true,"uploads_expired":0,"blobs_removed":2,"blob_bytes_removed":3145728,"blobs_moved":0,"bytes_moved":0,"packs_removed":2,"pack_bytes_removed":3145984}"#;
        let (r, reqs) = berth(&["gc", "--dry-run"], vec![json(200, report)]);
        let out = r.unwrap();
        assert!(out.starts_with("dry run: nothing was changed"), "{out}");
        assert!(out.contains("blobs removed:      2\n"), "{out}");
        assert!(
            out.contains("blob bytes removed: 3145728 (3 MiB)\n"),
            "{out}"
        );
        assert!(reqs[0].starts_with("POST /api/v1/gc?dry_run=true HTTP/1.1"));
        let (r, reqs) = berth(
            &["gc"],
            vec![json(
                409,
                r#"{"error":{"code":"CONFLICT","message":"a garbage collection is already running; wait for it to finish"}}"#,
            )],
        );
        assert!(r.unwrap_err().contains("already running"));
        assert!(reqs[0].starts_with("POST /api/v1/gc HTTP/1.1"));
    }

    #[test]
    fn audit_passes_the_limit_and_lists_newest_first_as_sent() {
        let (r, reqs) = berth(
            &["audit", "acme", "--limit", "2"],
            vec![json(
                200,
                r#"[{"seq":2,"time":60,"actor":"admin","action":"registry.create","target":"acme/web","detail":""},
                    {"seq":1,"time":0,"actor":"admin","action":"org.create","target":"acme","detail":""}]"#,
            )],
        );
        let out = r.unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "TIME                  ACTOR  ACTION           TARGET    DETAIL"
        );
        assert!(lines[1].contains("registry.create"), "{out}");
        assert!(lines[2].contains("org.create"), "{out}");
        assert!(reqs[0].starts_with("GET /api/v1/orgs/acme/audit?limit=2 HTTP/1.1"));
    }
}
