//! What every management command works with: the server's address and the token, loaded
//! once ([`Session`]), the requests made through them, and the one error type
//! ([`AdminError`]) whose message says what went wrong and what to do. The command files
//! (`commands.rs`, `package.rs`) import it from here; `mod.rs` only runs them.

use super::{client, table};
use crate::cli::ApiArgs;
use std::path::{Path, PathBuf};

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
pub use crate::secret::Secret;

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
    Ok((Secret::new(t.to_string()), source))
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

/// What a command prints, gathered before it is written.
pub type Out = Vec<u8>;

/// Prints the JSON as the API sent it (`--json`; nothing for an answer without a body), or
/// the human text.
pub fn emit(
    out: &mut Out,
    s: &Session,
    v: &serde_json::Value,
    human: impl FnOnce() -> String,
) -> Result<(), AdminError> {
    if s.json {
        if !v.is_null() {
            // Serialising a `Value` cannot fail: its map keys are strings.
            let text = serde_json::to_string_pretty(v).unwrap_or_default();
            out.extend_from_slice(text.as_bytes());
            out.push(b'\n');
        }
    } else {
        out.extend_from_slice(human().as_bytes());
    }
    Ok(())
}
