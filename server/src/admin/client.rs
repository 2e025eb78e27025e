//! The management API as the CLI reaches it: `--server` parsed into where to connect, and one
//! request per connection (`Connection: close`), JSON in and out, through the workspace's
//! HTTP/1.1 client (`berth-client`, which reads every response the tests and benches read too).

pub use berth_client::{Error as ClientError, Response, Streaming};
use berth_client::{HttpConn, Options, Sink};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// How long to wait for the TCP handshake: a registry on the LAN answers in milliseconds;
/// a black-holed address should fail while the operator still looks at the terminal.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per read/write: management calls are small; a server silent this long is stuck.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response body: an audit page or token list is far smaller; this bounds memory
/// against a misbehaving peer at the other end of `--server`.
const MAX_BODY: u64 = 64 << 20;

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

    /// `Host`: the port left out when it is HTTP's own.
    fn host_header(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `path` under the URL's prefix.
    fn path(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    fn addrs(&self) -> io::Result<Vec<SocketAddr>> {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        Ok((bare, self.port).to_socket_addrs()?.collect())
    }
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
    let mut conn = connection(ep, wait)?;
    let body = body.unwrap_or_default();
    let json = !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH");
    let headers = headers(bearer, &[], json);
    conn.request(
        method,
        &ep.path(path),
        &as_pairs(&headers),
        &[body],
        Sink::Keep,
    )
}

/// A GET with `headers` (single-line values: `Range`, `If-Range`), answered as a
/// [`Streaming`] response.
pub fn open(
    ep: &Endpoint,
    path: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<Streaming, ClientError> {
    let conn = connection(ep, IO_TIMEOUT)?;
    let extra: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let all = self::headers(bearer, &extra, false);
    conn.stream("GET", &ep.path(path), &as_pairs(&all))
}

/// The connection to `ep`, waiting up to `wait` for each read of the answer.
fn connection(ep: &Endpoint, wait: Duration) -> Result<HttpConn, ClientError> {
    let addrs = ep.addrs().map_err(ClientError::Connect)?;
    let opts = Options {
        connect_timeout: CONNECT_TIMEOUT,
        read_timeout: wait,
        write_timeout: IO_TIMEOUT,
        max_body: MAX_BODY,
        ..Options::default()
    };
    Ok(HttpConn::new(addrs, ep.host_header(), opts))
}

/// What every CLI request carries besides `Host`: who asks, for JSON, the token.
fn headers(
    bearer: Option<&str>,
    extra: &[(String, String)],
    json_body: bool,
) -> Vec<(String, String)> {
    let mut h = vec![
        (
            "User-Agent".to_string(),
            format!("berth-cli/{}", env!("CARGO_PKG_VERSION")),
        ),
        ("Accept".into(), "application/json".into()),
        ("Connection".into(), "close".into()),
    ];
    if let Some(t) = bearer {
        h.push(("Authorization".into(), format!("Bearer {t}")));
    }
    h.extend_from_slice(extra);
    if json_body {
        h.push(("Content-Type".into(), "application/json".into()));
    }
    h
}

fn as_pairs(h: &[(String, String)]) -> Vec<(&str, &str)> {
    h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
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
}
