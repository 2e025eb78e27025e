//! A response as read, and what to do with its body.

use std::fmt;

/// What to do with a response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// Collect it into [`Response::body`] (up to [`Options::max_body`](crate::Options)).
    Keep,
    /// Count it in [`Response::body_len`] and drop it: a load generator pulling gigabytes.
    Discard,
}

/// A complete response.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// Names as the server wrote them, in order, repeats kept.
    pub headers: Vec<(String, String)>,
    /// The body with [`Sink::Keep`]; empty with [`Sink::Discard`].
    pub body: Vec<u8>,
    /// Body bytes received, whichever the sink.
    pub body_len: u64,
}

impl Response {
    /// The first value of a header, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every value of a header, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether the server said it closes the connection after this response.
    pub fn closes(&self) -> bool {
        self.headers_named("connection")
            .iter()
            .any(|v| has_token(v, "close"))
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Shows the response as it came (the body up to 2 KiB), so a failed assertion shows what
/// the server said.
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

pub(crate) fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether comma-separated `value` lists `token`, case-insensitively.
pub(crate) fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}
