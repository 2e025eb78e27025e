//! A minimal keep-alive HTTP/1.1 client over one blocking `TcpStream`: enough to drive a
//! registry, no more. Requests carry `Content-Length` bodies given as slices (so a large blob
//! is written straight from its buffer); responses are framed by `Content-Length`, chunked
//! transfer coding or connection close, and their bodies are either kept or counted and
//! dropped. A connection the server closes is reopened on the next request.

use crate::target::Target;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Read buffer per connection. Large enough that pulling a big blob costs few syscalls.
const BUF_BYTES: usize = 1 << 20;
/// Longest response head we accept; a registry's heads are a few hundred bytes.
const MAX_HEAD_BYTES: usize = 64 << 10;
const MAX_HEADERS: usize = 64;
/// No single socket operation may stall the run for longer than this.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub enum ClientError {
    Io(io::Error),
    /// The server sent something this client cannot frame.
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "i/o: {e}"),
            ClientError::Protocol(m) => write!(f, "protocol: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// What to do with a response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// Collect it into `Response::body`.
    Keep,
    /// Count it in `Response::body_len` and drop it.
    Discard,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, with `Sink::Keep`; empty with `Sink::Discard`.
    pub body: Vec<u8>,
    /// Body bytes received, whichever the sink.
    pub body_len: u64,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed response head.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    /// The server will close the connection after this response.
    close: bool,
}

/// How the body of the response being read is delimited.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// One keep-alive connection to a target.
pub struct HttpConn {
    target: Target,
    stream: Option<TcpStream>,
    buf: Box<[u8]>,
    /// Unconsumed received bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// How many times the connection was (re)opened; 1 after the first request.
    pub connects: u64,
}

impl HttpConn {
    /// Opens the connection now, so that connecting stays outside any timed section.
    pub fn connect(target: &Target) -> Result<HttpConn, ClientError> {
        let mut c = HttpConn {
            target: target.clone(),
            stream: None,
            buf: vec![0u8; BUF_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            connects: 0,
        };
        c.ensure_open()?;
        Ok(c)
    }

    fn ensure_open(&mut self) -> Result<&mut TcpStream, ClientError> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.target.addr, IO_TIMEOUT)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            self.start = 0;
            self.end = 0;
            self.connects += 1;
            self.stream = Some(s);
        }
        // Invariant: set just above when it was `None`.
        Ok(self.stream.as_mut().expect("stream opened above"))
    }

    fn drop_stream(&mut self) {
        self.stream = None;
        self.start = 0;
        self.end = 0;
    }

    /// Builds a request head: request line, `Host`, `Content-Length` (when there is a body
    /// or the method carries one), the extra headers, blank line.
    pub fn head(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body_len: u64,
    ) -> Vec<u8> {
        let mut h = Vec::with_capacity(256);
        h.extend_from_slice(method.as_bytes());
        h.push(b' ');
        h.extend_from_slice(path.as_bytes());
        h.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        h.extend_from_slice(self.target.authority.as_bytes());
        h.extend_from_slice(b"\r\n");
        if body_len > 0 || matches!(method, "POST" | "PUT" | "PATCH") {
            h.extend_from_slice(format!("Content-Length: {body_len}\r\n").as_bytes());
        }
        for (n, v) in headers {
            h.extend_from_slice(n.as_bytes());
            h.extend_from_slice(b": ");
            h.extend_from_slice(v.as_bytes());
            h.extend_from_slice(b"\r\n");
        }
        h.extend_from_slice(b"\r\n");
        h
    }

    /// Sends one request whose body is the concatenation of `body` and reads its response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[&[u8]],
        sink: Sink,
    ) -> Result<Response, ClientError> {
        let len: u64 = body.iter().map(|p| p.len() as u64).sum();
        let mut head = self.head(method, path, headers, len);
        let result = (|| {
            let s = self.ensure_open()?;
            if len <= 64 << 10 {
                // Small requests leave in one write: one segment, one wakeup on the server.
                for p in body {
                    head.extend_from_slice(p);
                }
                s.write_all(&head)?;
            } else {
                s.write_all(&head)?;
                for p in body {
                    s.write_all(p)?;
                }
            }
            self.read_response(method == "HEAD", sink)
        })();
        if result.is_err() {
            self.drop_stream();
        }
        result
    }

    /// Writes already-built request bytes (for pipelining several heads in one write).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let r = self.ensure_open().and_then(|s| Ok(s.write_all(bytes)?));
        if r.is_err() {
            self.drop_stream();
        }
        r
    }

    /// Reads the next response on the connection. `head_request`: it answers a HEAD, so it
    /// has no body whatever its headers say.
    pub fn read_response(
        &mut self,
        head_request: bool,
        sink: Sink,
    ) -> Result<Response, ClientError> {
        let r = self.read_response_inner(head_request, sink);
        if r.is_err() {
            self.drop_stream();
        }
        r
    }

    fn read_response_inner(
        &mut self,
        head_request: bool,
        sink: Sink,
    ) -> Result<Response, ClientError> {
        loop {
            let Head {
                status,
                headers,
                close,
            } = self.read_head()?;
            if (100..200).contains(&status) {
                continue; // interim response (100 Continue): the real one follows
            }
            let framing = if head_request || status == 204 || status == 304 {
                Framing::None
            } else if headers.iter().any(|(n, v)| {
                n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked")
            }) {
                Framing::Chunked
            } else if let Some((_, v)) = headers.iter().find(|(n, _)| n == "content-length") {
                let n = v
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| ClientError::Protocol(format!("bad Content-Length {v:?}")))?;
                Framing::Length(n)
            } else {
                Framing::UntilClose
            };
            let mut resp = Response {
                status,
                headers,
                body: Vec::new(),
                body_len: 0,
            };
            let until_close = matches!(framing, Framing::UntilClose);
            match framing {
                Framing::None => {}
                Framing::Length(n) => self.read_body(n, sink, &mut resp, false)?,
                Framing::Chunked => self.read_chunked(sink, &mut resp)?,
                Framing::UntilClose => self.read_body(u64::MAX, sink, &mut resp, true)?,
            }
            if close || until_close {
                self.drop_stream();
            }
            return Ok(resp);
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    fn fill(&mut self) -> Result<usize, ClientError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let Some(s) = self.stream.as_mut() else {
            return Err(ClientError::Protocol("connection is closed".into()));
        };
        let n = s.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    fn read_head(&mut self) -> Result<Head, ClientError> {
        loop {
            if self.end > self.start {
                let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut r = httparse::Response::new(&mut hs);
                match r.parse(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = r.code.unwrap_or(0);
                        let http10 = r.version == Some(0);
                        let headers: Vec<(String, String)> = r
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_ascii_lowercase(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect();
                        let conn_hdr = headers
                            .iter()
                            .find(|(n, _)| n == "connection")
                            .map(|(_, v)| v.to_ascii_lowercase());
                        let close = match conn_hdr.as_deref() {
                            Some(v) if v.contains("close") => true,
                            Some(v) if v.contains("keep-alive") => false,
                            _ => http10,
                        };
                        self.start += n;
                        return Ok(Head {
                            status,
                            headers,
                            close,
                        });
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(e) => return Err(ClientError::Protocol(format!("bad response head: {e}"))),
                }
                if self.end - self.start > MAX_HEAD_BYTES {
                    return Err(ClientError::Protocol("response head too large".into()));
                }
            }
            if self.fill()? == 0 {
                return Err(ClientError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a response head",
                )));
            }
        }
    }

    /// Reads `n` body bytes (or to end of stream with `until_close`).
    fn read_body(
        &mut self,
        n: u64,
        sink: Sink,
        resp: &mut Response,
        until_close: bool,
    ) -> Result<(), ClientError> {
        let mut left = n;
        while left > 0 {
            if self.start == self.end {
                // Nothing buffered: read straight into the whole buffer.
                let want = self
                    .buf
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                let Some(s) = self.stream.as_mut() else {
                    return Err(ClientError::Protocol("connection is closed".into()));
                };
                let got = s.read(&mut self.buf[..want])?;
                if got == 0 {
                    if until_close {
                        return Ok(());
                    }
                    return Err(ClientError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("connection closed with {left} body bytes outstanding"),
                    )));
                }
                if sink == Sink::Keep {
                    resp.body.extend_from_slice(&self.buf[..got]);
                }
                resp.body_len += got as u64;
                left -= got as u64;
                continue;
            }
            let avail = self.end - self.start;
            let take = avail.min(usize::try_from(left).unwrap_or(usize::MAX));
            if sink == Sink::Keep {
                resp.body
                    .extend_from_slice(&self.buf[self.start..self.start + take]);
            }
            self.start += take;
            resp.body_len += take as u64;
            left -= take as u64;
        }
        Ok(())
    }

    /// Reads one CRLF-terminated line (chunk sizes, trailers) from the buffer.
    fn read_line(&mut self) -> Result<String, ClientError> {
        loop {
            if let Some(i) = self.buf[self.start..self.end]
                .windows(2)
                .position(|w| w == b"\r\n")
            {
                let line =
                    String::from_utf8_lossy(&self.buf[self.start..self.start + i]).into_owned();
                self.start += i + 2;
                return Ok(line);
            }
            if self.end - self.start > 4096 {
                return Err(ClientError::Protocol("chunk line too long".into()));
            }
            if self.fill()? == 0 {
                return Err(ClientError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunked body",
                )));
            }
        }
    }

    fn read_chunked(&mut self, sink: Sink, resp: &mut Response) -> Result<(), ClientError> {
        loop {
            let line = self.read_line()?;
            let size_hex = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_hex, 16)
                .map_err(|_| ClientError::Protocol(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailer section ends with an empty line.
                while !self.read_line()?.is_empty() {}
                return Ok(());
            }
            self.read_body(size, sink, resp, false)?;
            if !self.read_line()?.is_empty() {
                return Err(ClientError::Protocol("chunk not followed by CRLF".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A one-shot server: accepts connections in order, reads each request's head (and
    /// `Content-Length` body), and answers with the scripted bytes for that request.
    fn scripted_server(
        conns: Vec<Vec<&'static [u8]>>,
    ) -> (Target, thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = Target::parse(&format!("http://{}", l.local_addr().unwrap())).unwrap();
        let h = thread::spawn(move || {
            let mut seen = Vec::new();
            for answers in conns {
                let (mut s, _) = l.accept().unwrap();
                let mut pending: Vec<u8> = Vec::new();
                for answer in answers {
                    loop {
                        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8(pending[..i + 4].to_vec()).unwrap();
                            let cl = head
                                .lines()
                                .find_map(|l| l.strip_prefix("Content-Length: "))
                                .map(|v| v.trim().parse::<usize>().unwrap())
                                .unwrap_or(0);
                            if pending.len() >= i + 4 + cl {
                                pending.drain(..i + 4 + cl);
                                seen.push(head.lines().next().unwrap().to_string());
                                break;
                            }
                        }
                        let mut b = [0u8; 4096];
                        let n = s.read(&mut b).unwrap();
                        assert!(n > 0, "client closed early");
                        pending.extend_from_slice(&b[..n]);
                    }
                    s.write_all(answer).unwrap();
                }
            }
            seen
        });
        (target, h)
    }

    #[test]
    fn two_requests_share_one_keep_alive_connection() {
        let (t, h) = scripted_server(vec![vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}",
        ]]);
        let mut c = HttpConn::connect(&t).unwrap();
        let r = c.request("GET", "/a", &[], &[], Sink::Keep).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        let r = c
            .request("PUT", "/b", &[], &[b"xy", b"z"], Sink::Keep)
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"{}"[..]));
        assert_eq!(c.connects, 1);
        assert_eq!(
            h.join().unwrap(),
            vec!["GET /a HTTP/1.1", "PUT /b HTTP/1.1"]
        );
    }

    #[test]
    fn chunked_bodies_are_decoded_and_discarded_bodies_counted() {
        let (t, h) = scripted_server(vec![vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nwxyz",
        ]]);
        let mut c = HttpConn::connect(&t).unwrap();
        let r = c.request("GET", "/c", &[], &[], Sink::Keep).unwrap();
        assert_eq!(r.body, b"abcde");
        let r = c.request("GET", "/d", &[], &[], Sink::Discard).unwrap();
        assert_eq!((r.body.len(), r.body_len), (0, 4));
        h.join().unwrap();
    }

    #[test]
    fn a_connection_the_server_closes_is_reopened_for_the_next_request() {
        let (t, h) = scripted_server(vec![
            vec![b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nLocation: /u/1\r\nContent-Length: 0\r\n\r\n"],
            vec![b"HTTP/1.1 204 No Content\r\n\r\n"],
        ]);
        let mut c = HttpConn::connect(&t).unwrap();
        let r = c.request("POST", "/p", &[], &[], Sink::Keep).unwrap();
        assert_eq!((r.status, r.header("location")), (202, Some("/u/1")));
        let r = c.request("GET", "/q", &[], &[], Sink::Keep).unwrap();
        assert_eq!(r.status, 204);
        assert_eq!(c.connects, 2);
        h.join().unwrap();
    }

    #[test]
    fn a_body_cut_short_by_close_is_an_error() {
        let (t, h) = scripted_server(vec![vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        ]]);
        let mut c = HttpConn::connect(&t).unwrap();
        let e = c.request("GET", "/e", &[], &[], Sink::Discard).unwrap_err();
        assert!(
            matches!(e, ClientError::Io(ref io) if io.kind() == io::ErrorKind::UnexpectedEof),
            "{e}"
        );
        h.join().unwrap();
    }
}
