//! Requests built byte for byte, sent and answered through the workspace's HTTP/1.1 client
//! (`berth-client`).
//!
//! Tests need to send exactly the bytes a real client (or a hostile one) sends — explicit
//! `Content-Length`, `Content-Range`, `Transfer-Encoding: chunked`, odd framing — so a
//! [`Request`] is written here and goes out as it is; what comes back is read by the shared
//! client, headers verbatim, and checked with [`Expect`].

pub use berth_client::{Error as ReadError, Response};
use berth_client::{HttpConn, Options, Sink};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Default per-read timeout: long enough for a few MiB on a loaded 2-core CI machine.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// What a request carries after its head.
#[derive(Clone, Debug)]
pub enum Body {
    /// No body and no framing header (GET, HEAD, DELETE).
    None,
    /// `Content-Length` framing (added unless a test set its own header).
    Bytes(Vec<u8>),
    /// `Transfer-Encoding: chunked`, one HTTP chunk per element.
    Chunked(Vec<Vec<u8>>),
}

/// One request, built explicitly.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Request {
        let body = match method {
            "POST" | "PUT" | "PATCH" => Body::Bytes(Vec::new()),
            _ => Body::None,
        };
        Request {
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body,
        }
    }
    pub fn get(path: &str) -> Request {
        Request::new("GET", path)
    }
    pub fn head(path: &str) -> Request {
        Request::new("HEAD", path)
    }
    pub fn post(path: &str) -> Request {
        Request::new("POST", path)
    }
    pub fn put(path: &str) -> Request {
        Request::new("PUT", path)
    }
    pub fn patch(path: &str) -> Request {
        Request::new("PATCH", path)
    }
    pub fn delete(path: &str) -> Request {
        Request::new("DELETE", path)
    }

    /// Adds a header (in order; duplicates allowed).
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// A `Content-Length`-framed body.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Request {
        self.body = Body::Bytes(bytes.into());
        self
    }

    /// A `Transfer-Encoding: chunked` body made of these chunks.
    pub fn chunked(mut self, chunks: Vec<Vec<u8>>) -> Request {
        self.body = Body::Chunked(chunks);
        self
    }

    /// `Content-Type: application/octet-stream`, as blob uploads carry.
    pub fn octets(self) -> Request {
        self.header("Content-Type", "application/octet-stream")
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }

    /// The exact bytes sent on the wire.
    pub fn to_bytes(&self, host: &str) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(format!("{} {} HTTP/1.1\r\n", self.method, self.path).as_bytes());
        if !self.has_header("Host") {
            out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
        }
        for (k, v) in &self.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        match &self.body {
            Body::None => out.extend_from_slice(b"\r\n"),
            Body::Bytes(b) => {
                if !self.has_header("Content-Length") && !self.has_header("Transfer-Encoding") {
                    out.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(b);
            }
            Body::Chunked(chunks) => {
                if !self.has_header("Transfer-Encoding") {
                    out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                }
                out.extend_from_slice(b"\r\n");
                for c in chunks.iter().filter(|c| !c.is_empty()) {
                    out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
        }
        out
    }
}

/// What tests check of a response; each failure panics with the whole response.
pub trait Expect: Sized {
    /// A header that must be present.
    fn must_header(&self, name: &str) -> &str;
    /// The body as JSON.
    fn json(&self) -> serde_json::Value;
    /// The `code`s of a spec-shaped error body (§2.3); panics if the body is not one.
    fn error_codes(&self) -> Vec<String>;
    /// `Location` reduced to path and query (it may be absolute or relative, §2.1).
    fn location(&self) -> String;
    /// Asserts the status.
    fn expect(self, status: u16) -> Self;
    /// Asserts the status is one of `allowed`.
    fn expect_one_of(self, allowed: &[u16]) -> Self;
}

impl Expect for Response {
    fn must_header(&self, name: &str) -> &str {
        match self.header(name) {
            Some(v) => v,
            None => panic!("response lacks {name}:\n{self:?}"),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}):\n{self:?}"))
    }

    fn error_codes(&self) -> Vec<String> {
        let v = self.json();
        let errors = v["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("error body without an `errors` array:\n{self:?}"));
        errors
            .iter()
            .map(|e| {
                let code = e["code"]
                    .as_str()
                    .unwrap_or_else(|| panic!("error without a string `code`:\n{self:?}"));
                assert!(
                    !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                    "error code {code:?} is not upper-case letters and `_`"
                );
                code.to_string()
            })
            .collect()
    }

    fn location(&self) -> String {
        path_of(self.must_header("Location"))
    }

    #[track_caller]
    fn expect(self, status: u16) -> Response {
        assert_eq!(self.status, status, "unexpected status:\n{self:?}");
        self
    }

    #[track_caller]
    fn expect_one_of(self, allowed: &[u16]) -> Response {
        assert!(
            allowed.contains(&self.status),
            "status {} not in {allowed:?}:\n{self:?}",
            self.status
        );
        self
    }
}

/// Reduces an absolute or relative URL to its path and query.
pub fn path_of(url: &str) -> String {
    if let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    {
        match rest.find('/') {
            Some(i) => rest[i..].to_string(),
            None => "/".to_string(),
        }
    } else {
        url.to_string()
    }
}

/// Appends a query parameter to a (possibly already queried) URL, as clients must (§2.1).
pub fn with_query(url: &str, param: &str) -> String {
    if url.contains('?') {
        format!("{url}&{param}")
    } else {
        format!("{url}?{param}")
    }
}

/// One TCP connection that stays the same socket whatever the server says, for tests that
/// write raw bytes and watch what happens to it.
pub struct Conn {
    conn: HttpConn,
}

impl Conn {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn, ReadError> {
        let opts = Options {
            connect_timeout: Duration::from_secs(5),
            read_timeout: timeout,
            write_timeout: timeout,
            max_body: u64::MAX,
            reconnect: false,
            ..Options::default()
        };
        Ok(Conn {
            conn: HttpConn::connect(addr, addr.to_string(), opts)?,
        })
    }

    /// The socket, for tests that write raw bytes.
    pub fn stream(&mut self) -> &mut TcpStream {
        // Invariant: opened by `connect`, and never dropped without `reconnect`.
        self.conn.socket().expect("the connection's socket")
    }

    pub fn send(&mut self, req: &Request) -> Result<Response, ReadError> {
        let bytes = req.to_bytes(self.conn.host());
        self.conn
            .exchange(&bytes, &[], req.method == "HEAD", Sink::Keep)
    }

    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        io::Write::write_all(self.stream(), bytes)
    }

    pub fn read(&mut self, head: bool) -> Result<Response, ReadError> {
        self.conn.read_response(head, Sink::Keep)
    }
}

/// A client that keeps its connection alive between requests, as real clients do: a
/// connection the server closed is reopened, and a request that finds a kept-alive one
/// closed while idle is sent again once.
pub struct Client {
    addr: SocketAddr,
    conn: HttpConn,
    auth: Option<String>,
}

fn keep_alive(addr: SocketAddr, timeout: Duration) -> HttpConn {
    let opts = Options {
        connect_timeout: Duration::from_secs(5),
        read_timeout: timeout,
        write_timeout: timeout,
        max_body: u64::MAX,
        ..Options::default()
    };
    HttpConn::new(vec![addr], addr.to_string(), opts)
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            conn: keep_alive(addr, READ_TIMEOUT),
            auth: None,
        }
    }

    /// A longer (or shorter) per-read timeout than the default, for peers that answer only
    /// when slow work is done (a WebDriver answers a navigation once the page has loaded).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.conn = keep_alive(self.addr, timeout);
        self
    }

    /// Sends `Authorization: <value>` on every request that does not carry its own, as real
    /// clients do once logged in.
    pub fn with_auth(mut self, value: &str) -> Client {
        self.auth = Some(value.to_string());
        self
    }

    /// The `Authorization` value this client adds, if any.
    pub fn auth(&self) -> Option<&str> {
        self.auth.as_deref()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `req`, panicking with context on a transport failure.
    #[track_caller]
    pub fn send(&mut self, req: Request) -> Response {
        match self.try_send(&req) {
            Ok(r) => r,
            Err(e) => panic!("{} {} failed: {e}", req.method, req.path),
        }
    }

    /// Sends `req` on the kept-alive connection, or a new one.
    pub fn try_send(&mut self, req: &Request) -> Result<Response, ReadError> {
        let with_auth;
        let req = match &self.auth {
            Some(a) if !req.has_header("Authorization") => {
                with_auth = req.clone().header("Authorization", a);
                &with_auth
            }
            _ => req,
        };
        let bytes = req.to_bytes(self.conn.host());
        self.conn
            .exchange(&bytes, &[], req.method == "HEAD", Sink::Keep)
    }

    /// Runs an OCI push step of `berth_client::oci` on this client's connection with its
    /// `Authorization`, panicking with the step that failed and the answer it got.
    #[track_caller]
    pub fn oci<T>(
        &mut self,
        step: impl FnOnce(&mut HttpConn, &[(&str, &str)]) -> Result<T, berth_client::oci::PushError>,
    ) -> T {
        let auth = self.auth.clone();
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        match step(&mut self.conn, &headers) {
            Ok(t) => t,
            Err(e) => match e.response() {
                Some(r) => panic!("{e}\n{r:?}"),
                None => panic!("{e}"),
            },
        }
    }

    /// GET; on a manifest path it sends the `Accept` list every real client sends
    /// (content negotiation is not what these calls test; `send` stays raw).
    pub fn get(&mut self, path: &str) -> Response {
        self.send(with_manifest_accept(Request::get(path)))
    }
    /// HEAD, with `Accept` on manifest paths as `get`.
    pub fn head(&mut self, path: &str) -> Response {
        self.send(with_manifest_accept(Request::head(path)))
    }
    pub fn delete(&mut self, path: &str) -> Response {
        self.send(Request::delete(path))
    }
}

/// The manifest types docker, containerd and containers/image all accept.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

fn with_manifest_accept(req: Request) -> Request {
    if req.path.contains("/manifests/") {
        req.header("Accept", MANIFEST_ACCEPT)
    } else {
        req
    }
}
