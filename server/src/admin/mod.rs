//! The management commands (`berth org|registry|token|audit`): a thin client of the running
//! server's management API (AUTH-DESIGN.md, "Management API" and "CLI"). They never open the
//! store themselves, so they work against a remote server and never race the one running.
//! Errors are one line on stderr saying what went wrong and what to do, exit code 1.

pub mod client;
mod commands;
pub mod input;
mod table;

use crate::cli::{ApiArgs, Command};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Runs one management command; `cmd` is one of `Org`, `Registry`, `Token`, `Audit`.
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
    Env { data: PathBuf },
    File(PathBuf),
}

impl TokenSource {
    /// The admin-token file the operator should check.
    fn data_file(&self) -> String {
        match self {
            TokenSource::Env { data } => data.join("admin-token").display().to_string(),
            TokenSource::File(p) => p.display().to_string(),
        }
    }
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Env { .. } => f.write_str("BERTH_TOKEN"),
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
    pub token: Secret,
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
            token,
            source,
            json: api.json,
        })
    }

    /// One API call: JSON in, JSON out (`Null` for an empty body), errors mapped to what the
    /// operator should do.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, AdminError> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let resp = client::request(
            &self.endpoint,
            method,
            path,
            Some(self.token.expose()),
            bytes.as_deref(),
        )
        .map_err(|err| match err {
            client::ClientError::Connect(_) => AdminError::Unreachable {
                url: self.endpoint.url().to_string(),
                err,
            },
            _ => AdminError::Exchange {
                url: self.endpoint.url().to_string(),
                err,
            },
        })?;
        let parsed: Option<serde_json::Value> = if resp.body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            serde_json::from_slice(&resp.body).ok()
        };
        if (200..300).contains(&resp.status) {
            return match parsed {
                Some(v) => Ok(v),
                None if resp.body.iter().all(u8::is_ascii_whitespace) => {
                    Ok(serde_json::Value::Null)
                }
                None => Err(AdminError::Unexpected(format!(
                    "HTTP {} with a body that is not JSON",
                    resp.status
                ))),
            };
        }
        let message = parsed.as_ref().and_then(error_message);
        match (resp.status, message) {
            (401, message) => Err(AdminError::Refused {
                from: self.source.clone(),
                message,
            }),
            (status, Some(message)) => Err(AdminError::Api { status, message }),
            (status, None) => Err(AdminError::Status { status }),
        }
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
