//! One connection to a server: requests written, responses read through the one reader.

use crate::error::Error;
use crate::reader::{Framing, Reader};
use crate::response::{header, Response, Sink};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Bodies up to this size leave in the same write as the head: one segment, one wakeup on
/// the server.
const COALESCE_BODY: u64 = 64 << 10;

/// How a connection behaves; the defaults suit a test or a CLI on a LAN.
#[derive(Clone, Debug)]
pub struct Options {
    /// For the TCP handshake: a black-holed address fails while someone still waits.
    pub connect_timeout: Duration,
    /// For each read: a server silent this long is stuck.
    pub read_timeout: Duration,
    /// For each write.
    pub write_timeout: Duration,
    /// Largest body [`Sink::Keep`] collects: bounds memory against a misbehaving server.
    pub max_body: u64,
    /// Read buffer: larger costs fewer syscalls on a large body.
    pub buffer: usize,
    /// Keep-alive as clients do it: a connection the server closes is reopened for the next
    /// request, and a request that finds a kept-alive connection closed is sent again once.
    /// Off, the connection is one socket for its whole life, whatever the server says, as a
    /// test that writes raw bytes and watches the socket needs.
    pub reconnect: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            max_body: 1 << 30,
            buffer: 256 << 10,
            reconnect: true,
        }
    }
}

/// A connection to one server, opened when first needed.
pub struct HttpConn {
    addrs: Vec<SocketAddr>,
    /// What goes in the `Host` header.
    host: String,
    opts: Options,
    reader: Option<Reader<TcpStream>>,
    /// Responses read on the current socket: a request on a socket that served none is not
    /// sent again when it fails.
    served: u64,
    /// How many times a socket was opened.
    pub connects: u64,
}

/// A response whose body is read as it arrives (a Download larger than memory).
pub struct Streaming {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body, ending where its framing says; a body cut short ends early (compare the
    /// bytes read with what `Content-Length` promised). A chunked body is read whole first.
    pub body: Box<dyn Read + Send>,
}

impl Streaming {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

impl HttpConn {
    /// A connection to the first of `addrs` that accepts, opened by the first request.
    pub fn new(addrs: Vec<SocketAddr>, host: impl Into<String>, opts: Options) -> HttpConn {
        HttpConn {
            addrs,
            host: host.into(),
            opts,
            reader: None,
            served: 0,
            connects: 0,
        }
    }

    /// A connection opened now, so that connecting stays outside any timed section.
    pub fn connect(
        addr: SocketAddr,
        host: impl Into<String>,
        opts: Options,
    ) -> Result<HttpConn, Error> {
        let mut c = HttpConn::new(vec![addr], host, opts);
        c.reader()?;
        Ok(c)
    }

    /// The `Host` header's value.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The open socket (opening it if needed), for writing or reading raw bytes.
    pub fn socket(&mut self) -> Result<&mut TcpStream, Error> {
        Ok(self.reader()?.get_mut())
    }

    /// Bytes received past the responses read so far.
    pub fn buffered(&self) -> usize {
        self.reader.as_ref().map_or(0, Reader::buffered)
    }

    /// Waits up to `wait` for each read from now on (a call that does long work).
    pub fn set_read_timeout(&mut self, wait: Duration) -> Result<(), Error> {
        self.opts.read_timeout = wait;
        if let Some(r) = &self.reader {
            r.get_ref().set_read_timeout(Some(wait))?;
        }
        Ok(())
    }

    /// Closes the socket; the next request opens another.
    pub fn close(&mut self) {
        self.reader = None;
        self.served = 0;
    }

    fn reader(&mut self) -> Result<&mut Reader<TcpStream>, Error> {
        if self.reader.is_none() {
            let s = self.open_socket()?;
            self.connects += 1;
            self.served = 0;
            self.reader = Some(Reader::new(s, self.opts.buffer, self.opts.max_body));
        }
        // Invariant: set just above when it was `None`.
        Ok(self.reader.as_mut().expect("socket opened above"))
    }

    fn open_socket(&self) -> Result<TcpStream, Error> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no address");
        for a in &self.addrs {
            match TcpStream::connect_timeout(a, self.opts.connect_timeout) {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    s.set_read_timeout(Some(self.opts.read_timeout))?;
                    s.set_write_timeout(Some(self.opts.write_timeout))?;
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(Error::Connect(last))
    }

    /// After a failure or a response that ends the connection: a keep-alive client starts
    /// again on a new socket; a raw one keeps its socket for the test to look at.
    fn ended(&mut self) {
        if self.opts.reconnect {
            self.close();
        }
    }

    /// A request head: request line, `Host`, `Content-Length` (when there is a body or the
    /// method carries one), the extra headers, blank line.
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
        h.extend_from_slice(self.host.as_bytes());
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
    ) -> Result<Response, Error> {
        let len: u64 = body.iter().map(|p| p.len() as u64).sum();
        let mut wire = self.head(method, path, headers, len);
        let rest = if len <= COALESCE_BODY {
            for p in body {
                wire.extend_from_slice(p);
            }
            &[][..]
        } else {
            body
        };
        self.exchange(&wire, rest, method == "HEAD", sink)
    }

    /// Sends request bytes as they are (a test's exact or malformed request, several
    /// pipelined ones) with `rest` after them, and reads one response.
    pub fn exchange(
        &mut self,
        wire: &[u8],
        rest: &[&[u8]],
        head_request: bool,
        sink: Sink,
    ) -> Result<Response, Error> {
        let reused = self.reader.is_some() && self.served > 0;
        match self.send_and_read(wire, rest, head_request, sink) {
            Err(e) if reused && self.opts.reconnect && e.stale_connection() => {
                self.close();
                self.send_and_read(wire, rest, head_request, sink)
            }
            r => r,
        }
    }

    fn send_and_read(
        &mut self,
        wire: &[u8],
        rest: &[&[u8]],
        head_request: bool,
        sink: Sink,
    ) -> Result<Response, Error> {
        let sent = (|| {
            let s = self.socket()?;
            s.write_all(wire)?;
            for p in rest {
                s.write_all(p)?;
            }
            Ok(())
        })();
        if let Err(e) = sent {
            self.ended();
            return Err(e);
        }
        self.read_response(head_request, sink)
    }

    /// Writes bytes as they are and reads nothing (pipelining several requests in one
    /// write, or a request whose answer a test reads later).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let r = self
            .socket()
            .and_then(|s| s.write_all(bytes).map_err(Error::Io));
        if r.is_err() {
            self.ended();
        }
        r
    }

    /// Reads the next response on the connection. `head_request`: it answers a HEAD, so it
    /// has no body whatever its headers say.
    pub fn read_response(&mut self, head_request: bool, sink: Sink) -> Result<Response, Error> {
        let r = self.reader()?.read_response_closing(head_request, sink);
        match r {
            Ok((resp, close)) => {
                self.served += 1;
                if close {
                    self.ended();
                }
                Ok(resp)
            }
            Err(e) => {
                self.ended();
                Err(e)
            }
        }
    }

    /// Sends a bodiless request and answers with its head, the body left to read as it
    /// arrives; the connection goes with the body.
    pub fn stream(
        mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Streaming, Error> {
        let head = self.head(method, path, headers, 0);
        self.send_raw(&head)?;
        let mut reader = self.reader.take().ok_or(Error::Closed)?;
        let h = reader.read_head(method == "HEAD")?;
        let body: Box<dyn Read + Send> = match h.framing {
            Framing::None => Box::new(io::empty()),
            Framing::Chunked => {
                let mut whole = Response {
                    status: h.status,
                    reason: String::new(),
                    headers: Vec::new(),
                    body: Vec::new(),
                    body_len: 0,
                };
                reader.read_chunked(Sink::Keep, &mut whole)?;
                Box::new(io::Cursor::new(whole.body))
            }
            Framing::Length(n) => Box::new(BodyReader { reader, left: n }),
            Framing::UntilClose => Box::new(BodyReader {
                reader,
                left: u64::MAX,
            }),
        };
        Ok(Streaming {
            status: h.status,
            headers: h.headers,
            body,
        })
    }
}

/// The rest of a body on its connection.
struct BodyReader {
    reader: Reader<TcpStream>,
    left: u64,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = out
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.reader.read_some(&mut out[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}
