//! Request heads: find the end incrementally, enforce the limits, then parse once with
//! `httparse` into an owned `Head`.
//!
//! httparse warns against re-parsing a growing buffer: we scan for `\r\n\r\n` and remember
//! where the scan stopped, so a head split over many reads costs one pass over its bytes,
//! and `header_bytes` is enforced before the parser ever runs.

use crate::limits::Limits;

/// The request method, for the methods the registry routes; anything else is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

impl Method {
    fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

/// How the request body is framed (RFC 9112 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (no Content-Length, no Transfer-Encoding).
    None,
    Length(u64),
    Chunked,
}

/// A parsed request head, owning only what the core needs after the head bytes are gone.
#[derive(Clone, Debug)]
pub struct Head {
    pub method: Method,
    /// The method as sent (for records and web requests).
    pub method_str: String,
    /// Target path, without the query.
    pub path: String,
    /// Query string without `?`, empty if none.
    pub query: String,
    /// HTTP minor version: 0 or 1.
    pub minor: u8,
    pub framing: Framing,
    pub expect_continue: bool,
    /// Whether the connection stays open after this request (version default + `Connection`).
    pub keep_alive: bool,
    pub content_type: Option<String>,
    pub content_range: Option<String>,
    pub range: Option<String>,
    pub if_none_match: Option<String>,
    /// The `Authorization` value(s), for `Need::Authorize`. Several fields are joined with
    /// `, ` (RFC 9110 §5.3), which no scheme accepts: the server answers 401, not a guess.
    pub authorization: Option<Secret>,
    /// The first `Host` value: the server builds an absolute challenge `realm` from it.
    pub host: Option<String>,
    /// The `X-Forwarded-For` value(s), joined with `, ` (RFC 9110 §5.3): the server reads
    /// the client's address from it when the peer is a proxy it trusts.
    pub forwarded_for: Option<String>,
    /// All headers (lower-cased names, lossy values), kept only for requests outside `/v2/`.
    pub all_headers: Vec<(String, String)>,
}

impl Head {
    /// Declared body length, `None` for chunked bodies.
    pub fn content_length(&self) -> Option<u64> {
        match self.framing {
            Framing::None => Some(0),
            Framing::Length(n) => Some(n),
            Framing::Chunked => None,
        }
    }

    pub fn has_body(&self) -> bool {
        !matches!(self.framing, Framing::None | Framing::Length(0))
    }
}

/// A header value that must never reach a log or a `Debug` dump (credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value itself, for the one place that must see it (`Need::Authorize`).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a head was refused. Each is answered and the connection closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Head larger than `header_bytes` or more fields than `header_count`: 431.
    TooLarge,
    /// Unparsable, or framing that cannot be trusted (both Content-Length and chunked,
    /// conflicting lengths, unknown transfer coding): 400.
    Malformed,
    /// A version other than HTTP/1.0 or 1.1: 505.
    Version,
}

/// Incremental search for the end of a head.
#[derive(Clone, Debug, Default)]
pub struct HeadScan {
    /// Bytes of the current head already searched without finding the terminator.
    scanned: usize,
}

impl HeadScan {
    pub fn reset(&mut self) {
        self.scanned = 0;
    }

    /// Looks for `\r\n\r\n` in `buf` (which starts at the head's first byte). Returns the
    /// head length including the terminator, `Ok(None)` if more bytes are needed.
    pub fn find_end(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, HeadError> {
        // Resume 3 bytes back: the terminator may straddle the previous end.
        let from = self.scanned.saturating_sub(3);
        let window_end = buf.len().min(limits.header_bytes.saturating_add(4));
        let found = find_crlfcrlf(&buf[from.min(window_end)..window_end])
            .map_err(|BareLf| HeadError::Malformed)?;
        if let Some(i) = found {
            let len = from + i + 4;
            if len > limits.header_bytes {
                return Err(HeadError::TooLarge);
            }
            self.scanned = 0;
            return Ok(Some(len));
        }
        self.scanned = window_end;
        if buf.len() >= limits.header_bytes {
            return Err(HeadError::TooLarge);
        }
        if !method_prefix_is_plausible(buf) {
            return Err(HeadError::Malformed);
        }
        Ok(None)
    }
}

/// Longest method we wait for before its space; real ones are at most 7 bytes.
const MAX_METHOD_LEN: usize = 32;

/// Whether `buf` can still become a request line: optional leading empty lines (RFC 9112
/// §2.2), then token characters up to the first space. Judged before the head is complete so
/// that a TLS ClientHello or other non-HTTP bytes are refused at once instead of waiting for
/// a terminator that never comes until the header timeout.
fn method_prefix_is_plausible(buf: &[u8]) -> bool {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    let method_len = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    method_len <= MAX_METHOD_LEN && line[..method_len].iter().all(|&b| is_tchar(b))
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A line feed without the carriage return before it, in a head. RFC 9112 §2.2 lets a
/// recipient accept one, but peers that disagree on where a line ends are how requests get
/// smuggled; a clear 400 at once also beats waiting for a `\r\n\r\n` that never comes.
struct BareLf;

/// The offset of the first `\r\n\r\n` in `b`, if any.
fn find_crlfcrlf(b: &[u8]) -> Result<Option<usize>, BareLf> {
    // From 1: a line feed at 0 was judged in an earlier scan (scans overlap by 3 bytes), or
    // is the buffer's first byte, which never is one: empty lines before a request line
    // are skipped before the scan (RFC 9112 §2.2).
    let mut from = 1;
    // Jump between '\n's: the terminator's second byte is always one.
    while let Some(p) = b
        .get(from..)
        .and_then(|r| r.iter().position(|&c| c == b'\n'))
    {
        let nl = from + p;
        if b[nl - 1] != b'\r' {
            return Err(BareLf);
        }
        if nl + 3 <= b.len() && &b[nl + 1..nl + 3] == b"\r\n" {
            return Ok(Some(nl - 1));
        }
        from = nl + 1;
    }
    Ok(None)
}

/// Stack room for this many header fields; larger configured limits fall back to the heap.
const STACK_HEADERS: usize = 64;

/// Parses a complete head (`bytes` ends with `\r\n\r\n`). `keep_all` keeps every header for
/// requests the server answers (`Need::Web`).
pub fn parse(
    bytes: &[u8],
    limits: &Limits,
    keep_all: impl Fn(&str) -> bool,
) -> Result<Head, HeadError> {
    // Every field ends with one line break; count them before giving httparse the slots.
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    let fields = lines.saturating_sub(2);
    if fields > limits.header_count {
        return Err(HeadError::TooLarge);
    }
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut heap;
    let slots: &mut [httparse::Header<'_>] = if fields < STACK_HEADERS {
        &mut stack
    } else {
        heap = vec![httparse::EMPTY_HEADER; fields + 1];
        &mut heap
    };
    let mut req = httparse::Request::new(slots);
    match req.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => return Err(HeadError::Version),
        Err(_) => return Err(HeadError::Malformed),
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed);
    };
    if minor > 1 {
        return Err(HeadError::Version);
    }
    if !target.starts_with('/') {
        // Absolute-form and asterisk-form are for proxies and OPTIONS *; not served here.
        return Err(HeadError::Malformed);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let mut head = Head {
        method: Method::parse(method),
        method_str: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        minor,
        framing: Framing::None,
        expect_continue: false,
        keep_alive: minor == 1,
        content_type: None,
        content_range: None,
        range: None,
        if_none_match: None,
        authorization: None,
        host: None,
        forwarded_for: None,
        all_headers: Vec::new(),
    };
    let keep = keep_all(path);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        let v = h.value;
        let name = h.name;
        if keep {
            head.all_headers.push((
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(v).into_owned(),
            ));
        }
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(v).ok_or(HeadError::Malformed)?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Malformed);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only "chunked" (alone, last) is understood; anything else cannot be framed.
            for coding in v.split(|&b| b == b',') {
                let c = trim(coding);
                if c.is_empty() {
                    continue;
                }
                if c.eq_ignore_ascii_case(b"chunked") && !chunked {
                    chunked = true;
                } else {
                    return Err(HeadError::Malformed);
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for opt in v.split(|&b| b == b',') {
                let o = trim(opt);
                if o.eq_ignore_ascii_case(b"close") {
                    head.keep_alive = false;
                } else if o.eq_ignore_ascii_case(b"keep-alive") && minor == 0 {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if trim(v).eq_ignore_ascii_case(b"100-continue") {
                head.expect_continue = minor == 1;
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(String::from_utf8_lossy(v).into_owned());
        } else if name.eq_ignore_ascii_case("content-range") {
            head.content_range = Some(String::from_utf8_lossy(v).into_owned());
        } else if name.eq_ignore_ascii_case("range") {
            head.range = Some(String::from_utf8_lossy(v).into_owned());
        } else if name.eq_ignore_ascii_case("if-none-match") {
            head.if_none_match = Some(String::from_utf8_lossy(v).into_owned());
        } else if name.eq_ignore_ascii_case("authorization") {
            let v = String::from_utf8_lossy(v);
            head.authorization = Some(Secret(match head.authorization.take() {
                Some(Secret(mut first)) => {
                    first.push_str(", ");
                    first.push_str(&v);
                    first
                }
                None => v.into_owned(),
            }));
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            let v = String::from_utf8_lossy(v);
            head.forwarded_for = Some(match head.forwarded_for.take() {
                Some(first) => format!("{first}, {v}"),
                None => v.into_owned(),
            });
        } else if name.eq_ignore_ascii_case("host") {
            // RFC 9112 §3.2: more than one Host is a 400.
            if head.host.is_some() {
                return Err(HeadError::Malformed);
            }
            head.host = Some(String::from_utf8_lossy(v).into_owned());
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400.
    if minor == 1 && head.host.is_none() {
        return Err(HeadError::Malformed);
    }
    head.framing = match (length, chunked) {
        // RFC 9112 §6.3: both present is a smuggling vector; refuse it.
        (Some(_), true) => return Err(HeadError::Malformed),
        (None, true) => Framing::Chunked,
        (Some(n), false) => Framing::Length(n),
        (None, false) => Framing::None,
    };
    Ok(head)
}

fn parse_length(v: &[u8]) -> Option<u64> {
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &v[s..e]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits::default()
    }

    #[test]
    fn head_end_is_found_across_every_split() {
        let req = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\nNEXT";
        for split in 0..req.len() {
            let mut scan = HeadScan::default();
            let first = scan.find_end(&req[..split], &lim()).unwrap();
            let got = match first {
                Some(n) => n,
                None => scan.find_end(req, &lim()).unwrap().unwrap(),
            };
            assert_eq!(got, req.len() - 4, "split {split}");
        }
    }

    #[test]
    fn non_http_bytes_are_refused_before_the_head_completes() {
        let mut scan = HeadScan::default();
        // The first bytes of a TLS ClientHello.
        let tls = [0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01];
        assert_eq!(scan.find_end(&tls, &lim()), Err(HeadError::Malformed));
        let mut scan = HeadScan::default();
        assert_eq!(scan.find_end(b"\r\nGE", &lim()), Ok(None));
        let mut scan = HeadScan::default();
        assert_eq!(scan.find_end(b"GET /v2/ HT", &lim()), Ok(None));
        let mut scan = HeadScan::default();
        assert_eq!(
            scan.find_end(&[b'A'; MAX_METHOD_LEN + 1], &lim()),
            Err(HeadError::Malformed)
        );
    }

    #[test]
    fn oversized_head_is_refused_before_parsing() {
        let l = Limits {
            header_bytes: 32,
            ..Limits::default()
        };
        let mut scan = HeadScan::default();
        let req = b"GET /v2/ HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        assert_eq!(scan.find_end(req, &l), Err(HeadError::TooLarge));
    }

    #[test]
    fn too_many_fields_is_too_large() {
        let l = Limits {
            header_count: 2,
            ..Limits::default()
        };
        let req = b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
        assert_eq!(parse(req, &l, |_| false).unwrap_err(), HeadError::TooLarge);
    }

    #[test]
    fn content_length_and_chunked_together_are_malformed() {
        let req = b"PUT / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            parse(req, &lim(), |_| false).unwrap_err(),
            HeadError::Malformed
        );
    }

    #[test]
    fn every_forwarded_for_field_is_kept_in_order() {
        let h = parse(
            b"GET /v2/ HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 198.51.100.1\r\nx-forwarded-for: 203.0.113.5, 10.0.0.1\r\n\r\n",
            &lim(),
            |_| false,
        )
        .unwrap();
        assert_eq!(
            h.forwarded_for.as_deref(),
            Some("198.51.100.1, 203.0.113.5, 10.0.0.1")
        );
        let h = parse(b"GET /v2/ HTTP/1.1\r\nHost: h\r\n\r\n", &lim(), |_| false).unwrap();
        assert_eq!(h.forwarded_for, None);
    }

    #[test]
    fn framing_and_connection_options_are_read() {
        let h = parse(
            b"PATCH /a?b=c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            &lim(),
            |_| false,
        )
        .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.expect_continue);
        assert!(!h.keep_alive);
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/a", "b=c"));
        let h = parse(b"GET / HTTP/1.0\r\n\r\n", &lim(), |_| false).unwrap();
        assert!(!h.keep_alive);
        let h = parse(
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            &lim(),
            |_| false,
        )
        .unwrap();
        assert!(h.keep_alive);
    }

    /// RFC 9112 §3.2: HTTP/1.1 needs exactly one Host; HTTP/1.0 may go without.
    #[test]
    fn host_is_required_once_in_http_1_1() {
        let p = |r: &[u8]| parse(r, &lim(), |_| false).map(|h| h.host);
        assert_eq!(
            p(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(Some("a".into()))
        );
        assert_eq!(p(b"GET / HTTP/1.1\r\n\r\n"), Err(HeadError::Malformed));
        assert_eq!(
            p(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(HeadError::Malformed)
        );
        assert_eq!(p(b"GET / HTTP/1.0\r\n\r\n"), Ok(None));
    }

    /// A head with a bare line feed is refused as soon as it is seen, whatever the split.
    #[test]
    fn a_bare_line_feed_is_refused_at_once() {
        let req = b"GET /v2/ HTTP/1.1\nHost: x\n";
        for cut in 1..=req.len() {
            let mut scan = HeadScan::default();
            let first = scan.find_end(&req[..cut], &lim());
            let r = first.and_then(|_| scan.find_end(req, &lim()));
            assert_eq!(r, Err(HeadError::Malformed), "cut {cut}");
        }
        let mut scan = HeadScan::default();
        assert_eq!(
            scan.find_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &lim()),
            Ok(Some(27))
        );
    }

    #[test]
    fn bad_content_length_is_malformed() {
        for v in ["-1", "abc", "1 2", "99999999999999999999", ""] {
            let req = format!("PUT / HTTP/1.1\r\nContent-Length: {v}\r\n\r\n");
            assert_eq!(
                parse(req.as_bytes(), &lim(), |_| false).unwrap_err(),
                HeadError::Malformed,
                "{v}"
            );
        }
    }
}
