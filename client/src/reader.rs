//! Reading responses: the status line and headers (parsed by `httparse`), how the body is
//! framed, and the body itself, from any byte source through one buffer. Everything read is
//! bounded: a head, a chunk line, a kept body.

use crate::error::Error;
use crate::response::{has_token, header, Response, Sink};
use std::io::{self, Read};

/// Longest response head: a registry's heads are a few hundred bytes.
pub(crate) const MAX_HEAD: usize = 64 << 10;
/// Most header lines in one response.
const MAX_HEADERS: usize = 100;
/// Longest chunk-size or trailer line.
const MAX_LINE: usize = 4096;
const CUT_LENGTH: &str = "the connection ended before the whole body arrived";
const CUT_CHUNKED: &str = "the connection ended inside a chunked body";

/// How the body of the response being read is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A response head and what follows from it.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    /// The connection ends after this response (`Connection: close`, HTTP/1.0, or a body
    /// that runs to the end of the connection).
    pub close: bool,
    pub framing: Framing,
}

/// Responses read from `R` through a buffer that bytes past one response stay in, for the
/// next (keep-alive, pipelining).
pub struct Reader<R> {
    inner: R,
    buf: Box<[u8]>,
    /// Unconsumed received bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    max_body: u64,
}

/// Reads one response from `r` (`head_request`: it answers a HEAD, so no body follows),
/// keeping its body up to 1 GiB.
pub fn read_response(r: impl Read, head_request: bool) -> Result<Response, Error> {
    Reader::new(r, MAX_HEAD * 2, 1 << 30).read_response(head_request, Sink::Keep)
}

impl<R: Read> Reader<R> {
    /// A reader with a `buffer`-byte buffer (at least twice [`MAX_HEAD`]) that keeps bodies
    /// of at most `max_body` bytes.
    pub fn new(inner: R, buffer: usize, max_body: u64) -> Reader<R> {
        Reader {
            inner,
            buf: vec![0u8; buffer.max(MAX_HEAD * 2)].into_boxed_slice(),
            start: 0,
            end: 0,
            max_body,
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Bytes received and not yet part of a response read.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Reads the next response, passing over interim (1xx) ones.
    pub fn read_response(&mut self, head_request: bool, sink: Sink) -> Result<Response, Error> {
        self.read_response_closing(head_request, sink)
            .map(|(r, _)| r)
    }

    /// [`read_response`](Self::read_response), and whether the connection ends after it.
    pub(crate) fn read_response_closing(
        &mut self,
        head_request: bool,
        sink: Sink,
    ) -> Result<(Response, bool), Error> {
        let head = self.read_head(head_request)?;
        let mut resp = Response {
            status: head.status,
            reason: head.reason,
            headers: head.headers,
            body: Vec::new(),
            body_len: 0,
        };
        match head.framing {
            Framing::None => {}
            Framing::Length(n) => {
                if sink == Sink::Keep && n > self.max_body {
                    return Err(Error::malformed("response body too large"));
                }
                self.read_body(n, sink, &mut resp, Some(CUT_LENGTH))?;
            }
            Framing::Chunked => self.read_chunked(sink, &mut resp)?,
            Framing::UntilClose => self.read_body(u64::MAX, sink, &mut resp, None)?,
        }
        Ok((resp, head.close))
    }

    /// Reads a final response's head (interim ones are passed over) and decides its framing;
    /// the body is left unread, for a test that looks at the bytes themselves.
    pub fn read_head(&mut self, head_request: bool) -> Result<Head, Error> {
        loop {
            let head = self.read_one_head(head_request)?;
            if !(100..200).contains(&head.status) {
                return Ok(head);
            }
        }
    }

    fn read_one_head(&mut self, head_request: bool) -> Result<Head, Error> {
        loop {
            if self.end > self.start {
                let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut r = httparse::Response::new(&mut hs);
                match r.parse(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = r.code.unwrap_or(0);
                        if !(100..600).contains(&status) {
                            return Err(Error::malformed("bad status code"));
                        }
                        let http10 = r.version == Some(0);
                        let reason = r.reason.unwrap_or_default().to_string();
                        let headers: Vec<(String, String)> = r
                            .headers
                            .iter()
                            .map(|h| {
                                let v = String::from_utf8_lossy(h.value);
                                (h.name.to_string(), v.trim().to_string())
                            })
                            .collect();
                        self.start += n;
                        return head(status, reason, headers, http10, head_request);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(httparse::Error::Status) => {
                        return Err(Error::malformed(
                            if self.buf[self.start..].starts_with(b"HTTP/") {
                                "bad status code"
                            } else {
                                "no HTTP/1.x status line"
                            },
                        ))
                    }
                    Err(httparse::Error::Version) => {
                        return Err(Error::malformed("no HTTP/1.x status line"))
                    }
                    Err(e) => return Err(Error::malformed(format!("bad response head: {e}"))),
                }
                if self.end - self.start > MAX_HEAD {
                    return Err(Error::malformed("response head too large"));
                }
            }
            let had = self.end - self.start;
            if self.fill()? == 0 {
                return Err(if had == 0 {
                    Error::Closed
                } else {
                    Error::malformed("the connection ended inside the response head")
                });
            }
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at the end of the stream.
    fn fill(&mut self) -> Result<usize, Error> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = read_retrying(&mut self.inner, &mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Reads `n` body bytes; the end of the stream before them is an error saying `cut`, or
    /// with no `cut` the end of the body.
    fn read_body(
        &mut self,
        n: u64,
        sink: Sink,
        resp: &mut Response,
        cut: Option<&'static str>,
    ) -> Result<(), Error> {
        let mut left = n;
        while left > 0 {
            let got = if self.start == self.end {
                // Nothing buffered: read straight into the whole buffer.
                let want = self
                    .buf
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                let got = read_retrying(&mut self.inner, &mut self.buf[..want])?;
                if got == 0 {
                    return match cut {
                        Some(why) => Err(Error::malformed(why)),
                        None => Ok(()),
                    };
                }
                self.start = 0;
                self.end = got;
                got
            } else {
                (self.end - self.start).min(usize::try_from(left).unwrap_or(usize::MAX))
            };
            if sink == Sink::Keep {
                if resp.body.len() as u64 + got as u64 > self.max_body {
                    return Err(Error::malformed("response body too large"));
                }
                resp.body
                    .extend_from_slice(&self.buf[self.start..self.start + got]);
            }
            self.start += got;
            resp.body_len += got as u64;
            left -= got as u64;
        }
        Ok(())
    }

    /// Reads one CRLF-terminated line (chunk sizes, trailers).
    fn read_line(&mut self) -> Result<String, Error> {
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
            if self.end - self.start > MAX_LINE {
                return Err(Error::malformed("chunk line too long"));
            }
            if self.fill()? == 0 {
                return Err(Error::malformed(CUT_CHUNKED));
            }
        }
    }

    /// Decodes a chunked body; trailers are read and dropped.
    pub(crate) fn read_chunked(&mut self, sink: Sink, resp: &mut Response) -> Result<(), Error> {
        loop {
            let line = self.read_line()?;
            let hex = line.split(';').next().unwrap_or_default().trim();
            let size = u64::from_str_radix(hex, 16)
                .ok()
                .filter(|_| !hex.starts_with('+'))
                .ok_or_else(|| Error::malformed("bad chunk size"))?;
            if size == 0 {
                while !self.read_line()?.is_empty() {}
                return Ok(());
            }
            if sink == Sink::Keep && (resp.body.len() as u64).saturating_add(size) > self.max_body {
                return Err(Error::malformed("response body too large"));
            }
            self.read_body(size, sink, resp, Some(CUT_CHUNKED))?;
            if !self.read_line()?.is_empty() {
                return Err(Error::malformed("chunk not followed by CRLF"));
            }
        }
    }

    /// Reads body bytes into `out` from what is buffered, else from the source; 0 at its end.
    pub(crate) fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start < self.end {
            let n = out.len().min(self.end - self.start);
            out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
            self.start += n;
            return Ok(n);
        }
        self.inner.read(out)
    }
}

/// The head's status, headers and framing as RFC 9112 §6.3 orders them.
fn head(
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    http10: bool,
    head_request: bool,
) -> Result<Head, Error> {
    let connection = header(&headers, "connection").unwrap_or_default();
    let mut close = if http10 {
        !has_token(connection, "keep-alive")
    } else {
        has_token(connection, "close")
    };
    let framing = if head_request || status == 204 || status == 304 || (100..200).contains(&status)
    {
        Framing::None
    } else if let Some(te) = headers
        .iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
    {
        // Chunked must be the last coding; any other ends with the connection.
        if te
            .1
            .rsplit(',')
            .next()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"))
        {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        let mut length: Option<u64> = None;
        for (_, v) in headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            let n = v
                .parse::<u64>()
                .ok()
                .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| Error::malformed("bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::malformed("conflicting Content-Length headers"));
            }
            length = Some(n);
        }
        match length {
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    if framing == Framing::UntilClose {
        close = true;
    }
    Ok(Head {
        status,
        reason,
        headers,
        close,
        framing,
    })
}

fn read_retrying(r: &mut impl Read, out: &mut [u8]) -> Result<usize, Error> {
    loop {
        match r.read(out) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Io(e)),
        }
    }
}
