//! A minimal blocking HTTP/1.1 client for the management API: one request per connection
//! (`Connection: close`), `http://` only, JSON in and out. Shipped code may not use an HTTP
//! client library, and the CLI needs no more than this.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long to wait for the TCP handshake: a registry on the LAN answers in milliseconds;
/// a black-holed address should fail while the operator still looks at the terminal.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per read/write: management calls are small; a server silent this long is stuck.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response head: the management API sends a handful of short headers.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body: an audit page or token list is far smaller; this bounds memory
/// against a misbehaving peer at the other end of `--server`.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Where the server is, parsed from `--server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host as written (brackets kept for IPv6), used in the `Host` header.
    host: String,
    port: u16,
    /// Path prefix without a trailing `/`, for a server behind a prefixing proxy.
    prefix: String,
    /// The URL as the operator gave it, for messages.
    url: String,
}

/// `--server` is not a usable URL.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid server URL '{url}': {why}; pass --server http://HOST:PORT")]
pub struct UrlError {
    url: String,
    why: &'static str,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, UrlError> {
        let bad = |why| UrlError {
            url: url.to_string(),
            why,
        };
        let rest = match url.strip_prefix("http://") {
            Some(r) => r,
            None if url.starts_with("https://") => {
                return Err(bad(
                    "https is not supported by the CLI; use the server's plain http address",
                ))
            }
            None => return Err(bad("it must start with http://")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(bad("it must not have a query or fragment"));
        }
        if authority.contains('@') {
            return Err(bad("credentials do not go in the URL; set BERTH_TOKEN"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| bad("unclosed '[' in the host"))?;
            let host = &authority[..end + 2];
            match &v6[end + 1..] {
                "" => (host, None),
                p => match p.strip_prefix(':') {
                    Some(p) => (host, Some(p)),
                    None => return Err(bad("unexpected text after the IPv6 address")),
                },
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.bytes().any(|b| b.is_ascii_whitespace() || b < 0x20) {
            return Err(bad("it has no host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad(
                "the path must not contain spaces or control characters",
            ));
        }
        Ok(Endpoint {
            host: host.to_string(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
            url: url.to_string(),
        })
    }

    /// The URL as given, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn addrs(&self) -> io::Result<Vec<SocketAddr>> {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        Ok((bare, self.port).to_socket_addrs()?.collect())
    }
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing accepted the connection: the server is not running there, or not reachable.
    #[error("{0}")]
    Connect(io::Error),
    /// The connection broke or timed out mid-exchange.
    #[error("{0}")]
    Io(io::Error),
    /// The peer answered something that is not HTTP/1.x as this client reads it.
    #[error("the answer is not a valid HTTP response ({0})")]
    Malformed(&'static str),
}

/// One request, waiting up to `wait` for the answer ([`IO_TIMEOUT`] unless the call does
/// long work). `bearer` goes in `Authorization`; it must be a single line (the caller
/// checks where it came from, see `admin::load_token`).
pub fn request(
    ep: &Endpoint,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&[u8]>,
    wait: Duration,
) -> Result<Response, ClientError> {
    let mut stream = send(ep, method, path, bearer, &[], body, wait)?;
    read_response(&mut stream, method == "HEAD")
}

/// A response whose body is read as it arrives: a Download is larger than memory.
pub struct Streaming {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body, ending where its framing says (a short body ends early: compare the bytes
    /// read with what `Content-Length` promised).
    pub body: Box<dyn Read>,
}

impl Streaming {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A GET with `headers` (single-line values: `Range`, `If-Range`), answered as a
/// [`Streaming`] response. A chunked body (the server's errors are not) is read whole.
pub fn open(
    ep: &Endpoint,
    path: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<Streaming, ClientError> {
    let mut stream = send(ep, "GET", path, bearer, headers, None, IO_TIMEOUT)?;
    let (head, rest) = read_head(&mut stream)?;
    let body: Box<dyn Read> = if head.status == 204 || head.status == 304 {
        Box::new(io::empty())
    } else if head.chunked {
        Box::new(io::Cursor::new(read_chunked(&mut stream, rest)?))
    } else {
        let whole = io::Cursor::new(rest).chain(stream);
        match head.length {
            Some(n) => Box::new(whole.take(n as u64)),
            None => Box::new(whole),
        }
    };
    Ok(Streaming {
        status: head.status,
        headers: head.headers,
        body,
    })
}

fn send(
    ep: &Endpoint,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    wait: Duration,
) -> Result<TcpStream, ClientError> {
    let mut stream = connect(ep)?;
    stream
        .set_read_timeout(Some(wait))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(ClientError::Io)?;
    let mut head = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}{}\r\nUser-Agent: berth-cli/{}\r\nAccept: application/json\r\nConnection: close\r\n",
        ep.prefix,
        ep.host,
        if ep.port == 80 { String::new() } else { format!(":{}", ep.port) },
        env!("CARGO_PKG_VERSION"),
    );
    if let Some(t) = bearer {
        head.push_str("Authorization: Bearer ");
        head.push_str(t);
        head.push_str("\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str("Content-Type: application/json\r\n");
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out).map_err(ClientError::Io)?;
    stream.flush().map_err(ClientError::Io)?;
    Ok(stream)
}

fn connect(ep: &Endpoint) -> Result<TcpStream, ClientError> {
    let addrs = ep.addrs().map_err(ClientError::Connect)?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(ClientError::Connect(last))
}

/// A response's status line and headers, and how its body is framed.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    chunked: bool,
    length: Option<usize>,
}

/// Reads a response head from `r`; returns it with the bytes read past it.
fn read_head(r: &mut impl Read) -> Result<(Head, Vec<u8>), ClientError> {
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(ClientError::Malformed("response head too large"));
        }
        if fill(r, &mut buf)? == 0 {
            return Err(ClientError::Malformed(if buf.is_empty() {
                "the server closed the connection without answering"
            } else {
                "the connection ended inside the response head"
            }));
        }
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| ClientError::Malformed("response head is not text"))?;
    let mut lines = head.split("\r\n");
    let status = parse_status(lines.next().unwrap_or_default())?;
    let mut chunked = false;
    let mut length: Option<usize> = None;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or(ClientError::Malformed("header line without ':'"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<usize>()
                .map_err(|_| ClientError::Malformed("bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(ClientError::Malformed("conflicting Content-Length headers"));
            }
            length = Some(n);
        }
        headers.push((name.trim().to_string(), value.to_string()));
    }
    let rest = buf.split_off(head_end + 4);
    Ok((
        Head {
            status,
            headers,
            chunked,
            length,
        },
        rest,
    ))
}

/// Reads one response from `r`: status line, headers, then a body framed by chunked
/// encoding, `Content-Length`, or the end of the connection.
pub fn read_response(r: &mut impl Read, head_only: bool) -> Result<Response, ClientError> {
    let (head, rest) = read_head(r)?;
    let status = head.status;
    let no_body = head_only || status == 204 || status == 304 || (100..200).contains(&status);
    let body = if no_body {
        Vec::new()
    } else if head.chunked {
        read_chunked(r, rest)?
    } else if let Some(n) = head.length {
        if n > MAX_BODY {
            return Err(ClientError::Malformed("response body too large"));
        }
        read_exact_len(r, rest, n)?
    } else {
        read_to_end(r, rest)?
    };
    Ok(Response { status, body })
}

fn parse_status(line: &str) -> Result<u16, ClientError> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(ClientError::Malformed("no HTTP/1.x status line"));
    }
    parts
        .next()
        .filter(|c| c.len() == 3)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (100..600).contains(c))
        .ok_or(ClientError::Malformed("bad status code"))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Appends what one `read` returns; 0 means end of stream.
fn fill(r: &mut impl Read, buf: &mut Vec<u8>) -> Result<usize, ClientError> {
    let mut chunk = [0u8; 8192];
    loop {
        match r.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ClientError::Io(e)),
        }
    }
}

fn read_exact_len(r: &mut impl Read, mut buf: Vec<u8>, n: usize) -> Result<Vec<u8>, ClientError> {
    while buf.len() < n {
        if fill(r, &mut buf)? == 0 {
            return Err(ClientError::Malformed(
                "the connection ended before the whole body arrived",
            ));
        }
    }
    buf.truncate(n);
    Ok(buf)
}

fn read_to_end(r: &mut impl Read, mut buf: Vec<u8>) -> Result<Vec<u8>, ClientError> {
    while fill(r, &mut buf)? != 0 {
        if buf.len() > MAX_BODY {
            return Err(ClientError::Malformed("response body too large"));
        }
    }
    Ok(buf)
}

/// Decodes a chunked body; `pending` holds bytes already read past the head. Trailers are
/// read and ignored.
fn read_chunked(r: &mut impl Read, mut pending: Vec<u8>) -> Result<Vec<u8>, ClientError> {
    let mut body = Vec::new();
    let mut pos = 0;
    // Returns the line starting at `pos` (without CRLF), reading more as needed.
    fn line(
        r: &mut impl Read,
        pending: &mut Vec<u8>,
        pos: &mut usize,
    ) -> Result<String, ClientError> {
        loop {
            if let Some(i) = find(&pending[*pos..], b"\r\n") {
                let l = String::from_utf8_lossy(&pending[*pos..*pos + i]).into_owned();
                *pos += i + 2;
                return Ok(l);
            }
            if pending.len() - *pos > MAX_HEAD {
                return Err(ClientError::Malformed("chunk header too long"));
            }
            if fill(r, pending)? == 0 {
                return Err(ClientError::Malformed(
                    "the connection ended inside a chunked body",
                ));
            }
        }
    }
    loop {
        let size_line = line(r, &mut pending, &mut pos)?;
        let hex = size_line.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(hex, 16).map_err(|_| ClientError::Malformed("bad chunk size"))?;
        if size == 0 {
            // Trailers until the empty line.
            while !line(r, &mut pending, &mut pos)?.is_empty() {}
            return Ok(body);
        }
        if body.len().saturating_add(size) > MAX_BODY {
            return Err(ClientError::Malformed("response body too large"));
        }
        while pending.len() < pos.saturating_add(size).saturating_add(2) {
            if fill(r, &mut pending)? == 0 {
                return Err(ClientError::Malformed(
                    "the connection ended inside a chunked body",
                ));
            }
        }
        body.extend_from_slice(&pending[pos..pos + size]);
        if &pending[pos + size..pos + size + 2] != b"\r\n" {
            return Err(ClientError::Malformed("chunk not followed by CRLF"));
        }
        pos += size + 2;
        // Keep memory bounded by what is still unread.
        pending.drain(..pos);
        pos = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::testserver::{json, Canned};

    fn ep(url: &str) -> Endpoint {
        Endpoint::parse(url).unwrap()
    }

    #[test]
    fn server_urls_parse_into_host_port_and_prefix() {
        type Parts<'a> = Option<(&'a str, u16, &'a str)>;
        let rows: &[(&str, Parts)] = &[
            ("http://127.0.0.1:5000", Some(("127.0.0.1", 5000, ""))),
            ("http://127.0.0.1:5000/", Some(("127.0.0.1", 5000, ""))),
            (
                "http://registry.example",
                Some(("registry.example", 80, "")),
            ),
            ("http://h:8080/berth/", Some(("h", 8080, "/berth"))),
            ("http://[::1]:5000", Some(("[::1]", 5000, ""))),
            ("http://[::1]", Some(("[::1]", 80, ""))),
            ("https://h", None),
            ("h:5000", None),
            ("http://", None),
            ("http://:5000", None),
            ("http://h:0", None),
            ("http://h:65536", None),
            ("http://h:port", None),
            ("http://u:p@h", None),
            ("http://h/x?y", None),
            ("http://[::1", None),
            ("http://[::1]x", None),
            ("http://h/a b", None),
        ];
        for (url, want) in rows {
            let got = Endpoint::parse(url)
                .ok()
                .map(|e| (e.host.clone(), e.port, e.prefix.clone()));
            let want = want.map(|(h, p, x)| (h.to_string(), p, x.to_string()));
            assert_eq!(got, want, "{url}");
        }
        let e = Endpoint::parse("https://h").unwrap_err().to_string();
        assert!(e.contains("--server http://HOST:PORT"), "{e}");
    }

    #[test]
    fn request_sends_method_path_token_and_json_body_and_reads_content_length() {
        let srv = Canned::start(vec![json(201, r#"{"slug":"acme"}"#)]);
        let r = request(
            &ep(&srv.url),
            "POST",
            "/api/v1/orgs",
            Some("berth_adm_secret"),
            Some(br#"{"slug":"acme"}"#),
            IO_TIMEOUT,
        )
        .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.body, br#"{"slug":"acme"}"#);
        let req = &srv.requests()[0];
        assert!(req.starts_with("POST /api/v1/orgs HTTP/1.1\r\n"), "{req}");
        assert!(
            req.contains("\r\nAuthorization: Bearer berth_adm_secret\r\n"),
            "{req}"
        );
        assert!(
            req.contains("\r\nContent-Type: application/json\r\n"),
            "{req}"
        );
        assert!(req.contains("\r\nContent-Length: 15\r\n"), "{req}");
        assert!(req.contains("\r\nConnection: close\r\n"), "{req}");
        assert!(req.contains("\r\nHost: 127.0.0.1:"), "{req}");
        assert!(req.ends_with("\r\n\r\n{\"slug\":\"acme\"}"), "{req}");
    }

    #[test]
    fn request_prepends_the_url_path_prefix() {
        let srv = Canned::start(vec![json(200, "[]")]);
        let url = format!("{}/berth/", srv.url);
        request(&ep(&url), "GET", "/api/v1/orgs", None, None, IO_TIMEOUT).unwrap();
        let req = &srv.requests()[0];
        assert!(
            req.starts_with("GET /berth/api/v1/orgs HTTP/1.1\r\n"),
            "{req}"
        );
        assert!(!req.contains("Authorization"), "{req}");
        assert!(!req.contains("Content-Length"), "{req}");
    }

    #[test]
    fn chunked_responses_are_decoded_across_split_reads() {
        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                     4;ext=1\r\n[{\"a\r\n\
                     6\r\n\":1},{\r\n\
                     7\r\n\"a\":2}]\r\n\
                     0\r\nX-Trailer: y\r\n\r\n"
            .to_vec();
        let srv = Canned::start(vec![resp]);
        let r = request(&ep(&srv.url), "GET", "/x", None, None, IO_TIMEOUT).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(String::from_utf8(r.body).unwrap(), r#"[{"a":1},{"a":2}]"#);
    }

    #[test]
    fn body_without_length_runs_to_the_end_of_the_connection() {
        let srv = Canned::start(vec![b"HTTP/1.0 200 OK\r\n\r\n{\"x\":1}".to_vec()]);
        let r = request(&ep(&srv.url), "GET", "/x", None, None, IO_TIMEOUT).unwrap();
        assert_eq!(r.body, b"{\"x\":1}");
    }

    #[test]
    fn connection_refused_is_a_connect_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        match request(&ep(&url), "GET", "/", None, None, IO_TIMEOUT) {
            Err(ClientError::Connect(e)) => {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused)
            }
            other => panic!("{other:?}"),
        }
    }

    fn parse(raw: &[u8]) -> Result<Response, ClientError> {
        read_response(&mut &raw[..], false)
    }

    #[test]
    fn malformed_or_truncated_responses_are_errors_not_panics() {
        let rows: &[&[u8]] = &[
            b"",
            b"HTTP/1.1 200 OK\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 99 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
        ];
        for raw in rows {
            assert!(
                matches!(parse(raw), Err(ClientError::Malformed(_))),
                "{:?} -> {:?}",
                String::from_utf8_lossy(raw),
                parse(raw)
            );
        }
    }

    #[test]
    fn bodiless_statuses_and_head_do_not_wait_for_a_body() {
        let r = parse(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        let r = read_response(
            &mut &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"[..],
            true,
        )
        .unwrap();
        assert_eq!((r.status, r.body.len()), (200, 0));
    }

    #[test]
    fn content_length_body_stops_at_its_length() {
        let r = parse(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}extra").unwrap();
        assert_eq!((r.status, &r.body[..]), (404, &b"{}"[..]));
    }
}
