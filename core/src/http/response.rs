//! Response heads written straight into one buffer: status line, the headers every Berth
//! response carries, then the caller's headers, `Content-Length` and the blank line.

use std::io::Write as _;

/// Sent on every response (spec digest §2.1): clients use it to recognise a v2 registry.
pub const API_VERSION: &[u8] = b"Docker-Distribution-API-Version: registry/2.0\r\n";

/// The reason phrase for a status; clients ignore it, humans read it.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

/// The interim response that lets a client waiting on `Expect: 100-continue` send its body.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A response under construction. Headers go straight into the output buffer.
pub struct ResponseHead {
    buf: Vec<u8>,
    status: u16,
}

impl ResponseHead {
    pub fn new(status: u16) -> ResponseHead {
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(b"HTTP/1.1 ");
        // Writes into a Vec cannot fail.
        let _ = write!(buf, "{} {}\r\n", status, reason(status));
        buf.extend_from_slice(API_VERSION);
        ResponseHead { buf, status }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        // A value must never break the head: drop line breaks a stored string might hold.
        for &b in value.as_bytes() {
            if b != b'\r' && b != b'\n' {
                self.buf.push(b);
            }
        }
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    pub fn header_fmt(&mut self, name: &str, value: std::fmt::Arguments<'_>) -> &mut Self {
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        let _ = self.buf.write_fmt(value);
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Ends the head. `length` is the entity length (also for HEAD, where no body follows);
    /// a 204 carries none (RFC 9110 §8.6). `close` adds `Connection: close`, `keep_alive_10`
    /// confirms keep-alive to an HTTP/1.0 client.
    pub fn finish(mut self, length: u64, close: bool, keep_alive_10: bool) -> Vec<u8> {
        if self.status != 204 && self.status != 304 {
            let _ = write!(self.buf, "Content-Length: {length}\r\n");
        }
        if close {
            self.buf.extend_from_slice(b"Connection: close\r\n");
        } else if keep_alive_10 {
            self.buf.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        self.buf.extend_from_slice(b"\r\n");
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_has_api_version_and_content_length() {
        let mut r = ResponseHead::new(200);
        r.header("Content-Type", "application/json");
        let out = r.finish(2, false, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nDocker-Distribution-API-Version: registry/2.0\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n"
        );
    }

    #[test]
    fn no_content_has_no_length_and_header_values_cannot_inject_lines() {
        let mut r = ResponseHead::new(204);
        r.header("Location", "/a\r\nX-Evil: 1");
        let out = String::from_utf8(r.finish(0, true, false)).unwrap();
        assert!(!out.contains("Content-Length"));
        assert!(out.contains("Location: /aX-Evil: 1\r\n"));
        assert!(out.ends_with("Connection: close\r\n\r\n"));
    }
}
