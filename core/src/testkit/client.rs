//! A scripted HTTP client for tests: builds raw requests and parses raw responses.

use std::fmt::Write as _;

/// A request to serialise onto the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send the body with chunked transfer coding in pieces of this size.
    pub chunked: Option<usize>,
    /// Send `Content-Length` even for an empty body.
    pub force_length: bool,
}

impl Request {
    pub fn new(method: &str, target: impl Into<String>) -> Request {
        Request {
            method: method.into(),
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
            chunked: None,
            force_length: matches!(method, "POST" | "PUT" | "PATCH"),
        }
    }

    pub fn get(target: impl Into<String>) -> Request {
        Request::new("GET", target)
    }

    pub fn head(target: impl Into<String>) -> Request {
        Request::new("HEAD", target)
    }

    pub fn put(target: impl Into<String>) -> Request {
        Request::new("PUT", target)
    }

    pub fn post(target: impl Into<String>) -> Request {
        Request::new("POST", target)
    }

    pub fn patch(target: impl Into<String>) -> Request {
        Request::new("PATCH", target)
    }

    pub fn delete(target: impl Into<String>) -> Request {
        Request::new("DELETE", target)
    }

    pub fn header(mut self, k: &str, v: &str) -> Request {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Request {
        self.body = b.into();
        self
    }

    pub fn chunked(mut self, piece: usize) -> Request {
        self.chunked = Some(piece.max(1));
        self
    }

    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!(
            "{} {} HTTP/1.1\r\nHost: registry.test\r\n",
            self.method, self.target
        );
        for (k, v) in &self.headers {
            let _ = write!(s, "{k}: {v}\r\n");
        }
        let mut out;
        match self.chunked {
            Some(k) => {
                s.push_str("Transfer-Encoding: chunked\r\n\r\n");
                out = s.into_bytes();
                for c in self.body.chunks(k) {
                    out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            None => {
                if !self.body.is_empty() || self.force_length {
                    let _ = write!(s, "Content-Length: {}\r\n", self.body.len());
                }
                s.push_str("\r\n");
                out = s.into_bytes();
                out.extend_from_slice(&self.body);
            }
        }
        out
    }
}

/// A parsed response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The error codes of an error body, in order.
    pub fn error_codes(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["code"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Parses complete responses from `wire`. `heads[i]` says whether the i-th response
/// answers a HEAD. Interim `100 Continue` responses are skipped. Returns the responses and
/// the bytes consumed; an unparsable response ends the parse (test code asserts on it).
pub fn parse_responses(wire: &[u8], heads: &[bool]) -> (Vec<Response>, usize) {
    let mut out = Vec::new();
    let mut off = 0;
    loop {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut hs);
        let n = match r.parse(&wire[off..]) {
            Ok(httparse::Status::Complete(n)) => n,
            _ => break,
        };
        let status = r.code.unwrap_or(0);
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        if status == 100 {
            off += n;
            continue;
        }
        let is_head = heads.get(out.len()).copied().unwrap_or(false);
        let len = if is_head || status == 204 || status == 304 {
            0
        } else {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(0)
        };
        if wire.len() < off + n + len {
            break;
        }
        out.push(Response {
            status,
            headers,
            body: wire[off + n..off + n + len].to_vec(),
        });
        off += n + len;
    }
    (out, off)
}
