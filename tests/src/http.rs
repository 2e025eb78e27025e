//! A small raw HTTP/1.1 client over `std::net::TcpStream`.
//!
//! Deliberately not a client library: tests need to send exactly the bytes a real client (or
//! a hostile one) sends — explicit `Content-Length`, `Content-Range`, `Transfer-Encoding:
//! chunked`, odd framing — and to see exactly what came back, headers verbatim.

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
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

/// A parsed response.
#[derive(Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "HTTP/1.1 {} {}", self.status, self.reason)?;
        for (k, v) in &self.headers {
            writeln!(f, "{k}: {v}")?;
        }
        let shown = &self.body[..self.body.len().min(2048)];
        writeln!(f)?;
        write!(f, "{}", String::from_utf8_lossy(shown))?;
        if self.body.len() > shown.len() {
            write!(f, "... ({} bytes)", self.body.len())?;
        }
        Ok(())
    }
}

impl Response {
    /// The first value of a header, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A header that must be present (panics with the whole response otherwise).
    pub fn must_header(&self, name: &str) -> &str {
        match self.header(name) {
            Some(v) => v,
            None => panic!("response lacks {name}:\n{self:?}"),
        }
    }

    /// The body as JSON (panics with the response otherwise).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}):\n{self:?}"))
    }

    /// The `code`s of a spec-shaped error body (§2.3); panics if the body is not one.
    pub fn error_codes(&self) -> Vec<String> {
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

    /// `Location` reduced to path and query (it may be absolute or relative, §2.1).
    pub fn location(&self) -> String {
        path_of(self.must_header("Location"))
    }

    /// Asserts the status, printing the whole response otherwise.
    #[track_caller]
    pub fn expect(self, status: u16) -> Response {
        assert_eq!(self.status, status, "unexpected status:\n{self:?}");
        self
    }

    /// Asserts the status is one of `allowed`.
    #[track_caller]
    pub fn expect_one_of(self, allowed: &[u16]) -> Response {
        assert!(
            allowed.contains(&self.status),
            "status {} not in {allowed:?}:\n{self:?}",
            self.status
        );
        self
    }

    /// Whether the server said it will close the connection.
    pub fn closes(&self) -> bool {
        self.header("Connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
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

/// Why reading a response failed.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed before sending any byte of a status line.
    ClosedBeforeResponse,
    Io(io::Error),
    Malformed(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::ClosedBeforeResponse => write!(f, "connection closed before a response"),
            ReadError::Io(e) => write!(f, "i/o error: {e}"),
            ReadError::Malformed(m) => write!(f, "malformed response: {m}"),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads one response from `r`. `head` says the request was HEAD (no body follows).
pub fn read_response(r: &mut impl BufRead, head: bool) -> Result<Response, ReadError> {
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line)?;
        if n == 0 {
            return Err(ReadError::ClosedBeforeResponse);
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(ReadError::Malformed(format!("status line {line:?}")));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ReadError::Malformed(format!("status line {line:?}")))?;
        let reason = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Err(ReadError::Malformed("eof in headers".into()));
            }
            let h = h.trim_end_matches(['\r', '\n']);
            if h.is_empty() {
                break;
            }
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| ReadError::Malformed(format!("header line {h:?}")))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        if (100..200).contains(&status) {
            continue; // interim (100 Continue); the real response follows
        }
        let mut resp = Response {
            status,
            reason,
            headers,
            body: Vec::new(),
        };
        if head || status == 204 || status == 304 {
            return Ok(resp);
        }
        let chunked = resp
            .header("Transfer-Encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            resp.body = read_chunked(r)?;
        } else if let Some(len) = resp.header("Content-Length") {
            let len: usize = len
                .parse()
                .map_err(|_| ReadError::Malformed(format!("Content-Length {len:?}")))?;
            let mut body = vec![0; len];
            r.read_exact(&mut body)?;
            resp.body = body;
        } else {
            r.read_to_end(&mut resp.body)?;
        }
        return Ok(resp);
    }
}

fn read_chunked(r: &mut impl BufRead) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let size_str = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|_| ReadError::Malformed(format!("chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let mut t = String::new();
                if r.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
    }
}

/// One TCP connection.
pub struct Conn {
    pub reader: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(s),
            host: addr.to_string(),
        })
    }

    /// The socket, for tests that write raw bytes.
    pub fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    pub fn send(&mut self, req: &Request) -> Result<Response, ReadError> {
        let bytes = req.to_bytes(&self.host);
        self.reader.get_mut().write_all(&bytes)?;
        read_response(&mut self.reader, req.method == "HEAD")
    }

    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    pub fn read(&mut self, head: bool) -> Result<Response, ReadError> {
        read_response(&mut self.reader, head)
    }
}

/// A client that keeps its connection alive between requests, as real clients do.
pub struct Client {
    addr: SocketAddr,
    conn: Option<Conn>,
    timeout: Duration,
    auth: Option<String>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            conn: None,
            timeout: READ_TIMEOUT,
            auth: None,
        }
    }

    /// A longer (or shorter) per-read timeout than the default, for peers that answer only
    /// when slow work is done (a WebDriver answers a navigation once the page has loaded).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
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

    /// Sends `req` on the kept-alive connection, or a new one. A reused connection that the
    /// server closed while idle is retried once on a fresh one (what every real client does);
    /// any other failure is returned.
    pub fn try_send(&mut self, req: &Request) -> Result<Response, ReadError> {
        let with_auth;
        let req = match &self.auth {
            Some(a) if !req.has_header("Authorization") => {
                with_auth = req.clone().header("Authorization", a);
                &with_auth
            }
            _ => req,
        };
        let reused = self.conn.is_some();
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => Conn::connect(self.addr, self.timeout)?,
        };
        let result = match conn.send(req) {
            Err(ReadError::ClosedBeforeResponse) if reused => {
                conn = Conn::connect(self.addr, self.timeout)?;
                conn.send(req)
            }
            Err(ReadError::Io(e))
                if reused
                    && matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ) =>
            {
                conn = Conn::connect(self.addr, self.timeout)?;
                conn.send(req)
            }
            other => other,
        };
        if let Ok(resp) = &result {
            let framed = resp.header("Content-Length").is_some()
                || resp.header("Transfer-Encoding").is_some()
                || req.method == "HEAD"
                || resp.status == 204
                || resp.status == 304;
            if framed && !resp.closes() {
                self.conn = Some(conn);
            }
        }
        result
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
