//! One HTTP/1.1 connection: `handle_input` in, `poll_output` out. Owns the receive buffer,
//! the phase machine and the timers; hands heads to `http::head`, bodies to `http::body`,
//! requests to `endpoint` (the OCI endpoints), and applies the `Next` each endpoint step
//! returns. Parses nothing itself, and decides no response an endpoint gives.
//!
//! Drive contract (see the crate docs): after every `handle_input`, drain `poll_output`
//! until `None`; read only while `wants_read()`; deliver `Input::Timeout` once `deadline()`
//! passes. Exactly one `Need` is outstanding at a time; while it is, the connection is
//! `Parked`: it neither reads nor arms timers, and pipelined requests wait in the buffer.

use crate::endpoint::respond::{self, RespBody, Response};
use crate::endpoint::{self, uploads, AfterGather, Body, Cx, Next, Pending, Upload};
use crate::http::body::{BodyDecoder, Step};
use crate::http::head::{self, Framing, Head, HeadError, HeadScan};
use crate::http::response;
use crate::limits::Limits;
use crate::need::{BlobHandle, Need, NeedId, Reply, WebPiece};
use crate::oci::route::{is_registry_path, Route};
use crate::oci::{RepoName, UploadId};
use crate::timer::{Timer, TimerTable};
use bytes::Bytes;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

/// Something that happened to the connection.
#[derive(Debug)]
pub enum Input {
    /// `n` bytes were read into the slice last returned by `recv_buf()`.
    Recv { now: Instant, n: usize },
    /// The peer closed its sending side.
    Eof { now: Instant },
    /// The answer to the need `id`.
    Reply {
        now: Instant,
        id: NeedId,
        reply: Reply,
    },
    /// `deadline()` has passed.
    Timeout(Instant),
}

/// Something the connection wants done. Drain with `poll_output()` until `None` after
/// every `handle_input`.
#[derive(Debug)]
pub enum Output<'c> {
    /// Write these bytes to the socket, in order with everything else.
    Transmit(Bytes),
    /// Write `range` (relative to the blob's first byte) of the blob at `blob`, after
    /// everything transmitted before it.
    SendBlob { blob: BlobHandle, range: Range<u64> },
    /// Answer with exactly one `Input::Reply { id, .. }`. While a need is outstanding the
    /// connection produces no other output and `wants_read()` is false.
    Need(NeedId, Need<'c>),
    /// One request has been fully answered: for the access log and metrics.
    Done(RequestRecord),
    /// Flush what was queued, then close the socket.
    Close,
}

/// A finished request, for the access log and metrics. Never carries header values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    pub method: String,
    /// Request target path (no query string).
    pub path: String,
    /// Low-cardinality route name for metrics, e.g. `blob_get`, `manifest_put`, `web`.
    pub route: &'static str,
    pub status: u16,
    /// Body bytes received.
    pub bytes_in: u64,
    /// Body bytes sent (including blob bytes handed out with `SendBlob`).
    pub bytes_out: u64,
    pub started: Instant,
    pub finished: Instant,
}

/// The server drove the connection wrongly. Never caused by peer data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Misuse {
    #[error("reply for {0:?}, which is not the outstanding need")]
    UnexpectedReply(NeedId),
    #[error("input after the connection closed")]
    Closed,
    #[error("recv of {0} bytes exceeds the buffer handed out")]
    RecvOverflow(usize),
}

/// Initial receive buffer; it doubles while reads fill it, up to `MAX_RECV`.
const INITIAL_RECV: usize = 8 * 1024;
/// Upper bound of the receive buffer (heads larger than this are refused earlier unless
/// `header_bytes` is configured higher, in which case the buffer follows it). An upload's
/// bytes reach the store in writes of up to this size: 1 MiB writes fill the page cache in
/// larger folios than 256 KiB ones, for about 8% less network-thread time per pushed byte.
/// The buffer shrinks back between requests, so idle connections keep only `INITIAL_RECV`.
pub const MAX_RECV: usize = 1024 * 1024;
/// Bodies at most this large are copied into the response head's buffer (one write).
const INLINE_BODY: usize = 64 * 1024;

/// What the connection is doing; each variant owns the data valid only in it.
enum Phase {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Reading a request body.
    Body(BodyTask),
    /// One need outstanding; `Pending` is the step its reply continues.
    Parked { id: NeedId, pending: Pending },
    /// A close is queued; input is ignored (sticky).
    Closing,
}

/// What to do with the bytes of a request body.
enum BodyTask {
    /// Upload data: each run leaves as `Need::AppendUpload` at the upload's offset.
    Upload(Upload),
    /// Collected into one buffer of at most `limit` bytes (manifests, web requests).
    /// `framing` counts chunked framing bytes, bounded too: tiny chunks with long
    /// extensions must not make a small body cost unbounded reading.
    Gather {
        data: Vec<u8>,
        limit: usize,
        framing: usize,
        then: AfterGather,
    },
    /// The rest of a body already answered: dropped, at most `budget` more bytes; then
    /// the next request, or the close the answer announced (`close`).
    Discard {
        dec: BodyDecoder,
        budget: u64,
        close: bool,
    },
}

/// Per-request bookkeeping, valid from the head to `Output::Done`.
struct ReqCtx {
    pub method: String,
    pub path: String,
    pub route: &'static str,
    pub started: Instant,
    pub bytes_in: u64,
    pub keep_alive: bool,
    pub minor: u8,
    pub head_only: bool,
    /// Body decoder while body bytes remain unread; `None` when there is none left.
    pub body: Option<BodyDecoder>,
    pub expect_continue: bool,
    pub continue_sent: bool,
}

/// An output waiting in the queue. Upload bytes are kept as a range of the buffer and
/// borrowed only when polled.
enum Queued {
    Transmit(Bytes),
    SendBlob {
        blob: BlobHandle,
        range: Range<u64>,
    },
    Need(NeedId, Need<'static>),
    Append {
        id: NeedId,
        repo: RepoName,
        upload: UploadId,
        offset: u64,
        range: Range<usize>,
    },
    Done(RequestRecord),
    Close,
}

/// One HTTP/1.1 connection's protocol state.
pub struct Connection {
    limits: Arc<Limits>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_recv: usize,
    /// The last `recv_buf()` was filled completely: grow before the next read.
    grow: bool,
    phase: Phase,
    out: VecDeque<Queued>,
    timers: TimerTable,
    scan: HeadScan,
    next_id: u64,
    eof: bool,
    closed: bool,
    req: Option<ReqCtx>,
    /// The `Date` header value for responses (RFC 9110 §6.6.1), as the driver last set it.
    date: Option<String>,
}

impl Connection {
    pub fn new(limits: Arc<Limits>, now: Instant) -> Connection {
        let max_recv = MAX_RECV.max(limits.header_bytes.saturating_add(1));
        let mut timers = TimerTable::default();
        timers.set(Timer::Idle, now + limits.idle_timeout);
        Connection {
            limits,
            buf: vec![0; INITIAL_RECV],
            start: 0,
            end: 0,
            max_recv,
            grow: false,
            phase: Phase::Head,
            out: VecDeque::new(),
            timers,
            scan: HeadScan::default(),
            next_id: 0,
            eof: false,
            closed: false,
            req: None,
            date: None,
        }
    }

    /// Sets the `Date` every response from now on carries: the current time as an HTTP
    /// date (`Sun, 06 Nov 1994 08:49:37 GMT`). The core has no wall clock; a driver that
    /// never calls this sends no `Date`.
    pub fn set_date(&mut self, http_date: &str) {
        if self.date.as_deref() != Some(http_date) {
            self.date = Some(http_date.to_owned());
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Spare space to read socket bytes into; report how many with `Input::Recv`.
    /// Empty when `wants_read()` is false.
    pub fn recv_buf(&mut self) -> &mut [u8] {
        if !self.wants_read() {
            return &mut [];
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if (self.grow || self.end == self.buf.len()) && self.buf.len() < self.max_recv {
            let n = (self.buf.len() * 2).min(self.max_recv);
            self.buf.resize(n, 0);
        }
        self.grow = false;
        &mut self.buf[self.end..]
    }

    pub fn handle_input(&mut self, input: Input) -> Result<(), Misuse> {
        if self.closed {
            return Err(Misuse::Closed);
        }
        match input {
            Input::Recv { now, n } => {
                if n > self.buf.len() - self.end || (n > 0 && !self.wants_read()) {
                    return Err(Misuse::RecvOverflow(n));
                }
                if matches!(self.phase, Phase::Closing) {
                    return Ok(());
                }
                self.grow = n > 0 && self.end + n == self.buf.len();
                self.end += n;
                self.advance(now);
            }
            Input::Eof { now } => {
                self.eof = true;
                if !matches!(self.phase, Phase::Closing) {
                    self.advance(now);
                }
            }
            Input::Reply { now, id, reply } => {
                match std::mem::replace(&mut self.phase, Phase::Head) {
                    Phase::Parked { id: want, pending } if want == id => {
                        let next = pending.resume(reply, &self.cx());
                        self.apply(next, now);
                        self.advance(now);
                    }
                    other => {
                        self.phase = other;
                        return Err(Misuse::UnexpectedReply(id));
                    }
                }
            }
            Input::Timeout(now) => {
                if matches!(self.phase, Phase::Closing) {
                    return Ok(());
                }
                if let Some(t) = self.timers.expired(now) {
                    // Idle: the peer is gone quiet between requests. Header/body: a slow or
                    // stalled peer. Either way nothing useful can be said; close.
                    let _ = t;
                    self.close();
                }
            }
        }
        Ok(())
    }

    pub fn poll_output(&mut self) -> Option<Output<'_>> {
        let q = self.out.pop_front()?;
        Some(match q {
            Queued::Transmit(b) => Output::Transmit(b),
            Queued::SendBlob { blob, range } => Output::SendBlob { blob, range },
            Queued::Need(id, n) => Output::Need(id, n),
            Queued::Append {
                id,
                repo,
                upload,
                offset,
                range,
            } => Output::Need(
                id,
                Need::AppendUpload {
                    repo,
                    upload,
                    offset,
                    bytes: &self.buf[range],
                },
            ),
            Queued::Done(r) => Output::Done(r),
            Queued::Close => {
                self.closed = true;
                Output::Close
            }
        })
    }

    /// The earliest instant at which `Input::Timeout` must be delivered, if any.
    pub fn deadline(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        self.timers.next()
    }

    /// Whether the connection wants more bytes from the socket now.
    pub fn wants_read(&self) -> bool {
        !self.closed
            && !self.eof
            && matches!(self.phase, Phase::Head | Phase::Body(_))
            && (self.start > 0 || self.end < self.buf.len() || self.buf.len() < self.max_recv)
    }

    /// Whether the connection has closed (after `Output::Close` was returned).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether a need is outstanding.
    pub fn is_parked(&self) -> bool {
        matches!(self.phase, Phase::Parked { .. })
    }

    // ---- internal machinery ----

    /// What an endpoint step may see of the connection.
    fn cx(&self) -> Cx<'_> {
        let unread = self.req.as_ref().and_then(|r| r.body.as_ref());
        Cx {
            limits: &self.limits,
            unread: unread.map(BodyDecoder::remaining),
        }
    }

    /// Does what an endpoint step said to.
    fn apply(&mut self, next: Next, now: Instant) {
        match next {
            Next::Respond(r) => self.respond(r, now),
            Next::Fail(r) => {
                if let Some(req) = self.req.as_mut() {
                    req.keep_alive = false;
                }
                self.respond(r, now);
            }
            Next::Park(need, pending) => self.park(need, pending),
            Next::Read(Body::Upload(u)) => self.read_body(BodyTask::Upload(u)),
            Next::Read(Body::Gather(g)) => self.read_body(BodyTask::Gather {
                data: Vec::with_capacity(g.cap),
                limit: g.limit,
                framing: 0,
                then: g.then,
            }),
            Next::Appended(n, u) => self.appended(n, u, now),
        }
    }

    fn close(&mut self) {
        self.timers.stop_all();
        self.phase = Phase::Closing;
        self.out.push_back(Queued::Close);
    }

    /// Makes progress until input is needed or a need is outstanding.
    fn advance(&mut self, now: Instant) {
        loop {
            let progressed = match &self.phase {
                Phase::Head => self.advance_head(now),
                Phase::Body(_) => self.advance_body(now),
                Phase::Parked { .. } | Phase::Closing => false,
            };
            if !progressed {
                break;
            }
        }
    }

    fn advance_head(&mut self, now: Instant) -> bool {
        // Stray line breaks between requests are ignored (RFC 9112 §2.2).
        while self.start < self.end && matches!(self.buf[self.start], b'\r' | b'\n') {
            self.start += 1;
        }
        if self.start == self.end {
            if self.eof {
                self.close();
                return false;
            }
            // Between requests an empty buffer that grew for a body shrinks back, so idle
            // keep-alive connections hold little memory.
            if self.buf.len() > INITIAL_RECV {
                self.buf = vec![0; INITIAL_RECV];
                self.start = 0;
                self.end = 0;
            }
            if !self.timers.is_set(Timer::Header) && !self.timers.is_set(Timer::Idle) {
                self.timers.set(Timer::Idle, now + self.limits.idle_timeout);
            }
            return false;
        }
        if !self.timers.is_set(Timer::Header) {
            self.timers.stop(Timer::Idle);
            self.timers
                .set(Timer::Header, now + self.limits.header_timeout);
        }
        let len = match self
            .scan
            .find_end(&self.buf[self.start..self.end], &self.limits)
        {
            Ok(Some(len)) => len,
            Ok(None) => {
                if self.eof {
                    self.close();
                }
                return false;
            }
            Err(e) => {
                self.refuse_head(e, now);
                return false;
            }
        };
        let parsed = head::parse(&self.buf[self.start..self.start + len], &self.limits, |p| {
            !is_registry_path(p)
        });
        self.start += len;
        self.scan.reset();
        self.timers.stop(Timer::Header);
        match parsed {
            Ok(h) => {
                self.begin_request(h, now);
                true
            }
            Err(e) => {
                self.refuse_head(e, now);
                false
            }
        }
    }

    /// Answers a head we cannot serve and closes: its framing cannot be trusted.
    fn refuse_head(&mut self, e: HeadError, now: Instant) {
        let status = match e {
            HeadError::TooLarge => 431,
            HeadError::Malformed => 400,
            HeadError::Version => 505,
        };
        self.req = Some(ReqCtx {
            method: String::new(),
            path: String::new(),
            route: "bad_request",
            started: now,
            bytes_in: 0,
            keep_alive: false,
            minor: 1,
            head_only: false,
            body: None,
            expect_continue: false,
            continue_sent: false,
        });
        let body: &'static [u8] = match e {
            HeadError::TooLarge => b"request head too large\n",
            HeadError::Malformed => b"malformed request\n",
            HeadError::Version => b"HTTP version not supported\n",
        };
        self.respond(Response::text(status, Bytes::from_static(body)), now);
    }

    fn begin_request(&mut self, mut h: Head, now: Instant) {
        let route = crate::oci::route::route(h.method, &h.path, &h.query);
        // Only web requests need the method and path again (for `WebRequest`).
        let (method, path) = if matches!(route, Ok(Route::Web)) {
            (h.method_str.clone(), h.path.clone())
        } else {
            (
                std::mem::take(&mut h.method_str),
                std::mem::take(&mut h.path),
            )
        };
        let body = match h.framing {
            Framing::None | Framing::Length(0) => None,
            Framing::Length(n) => Some(BodyDecoder::length(n)),
            Framing::Chunked => Some(BodyDecoder::chunked()),
        };
        self.req = Some(ReqCtx {
            method,
            path,
            route: match &route {
                Ok(Route::Oci(op)) => op.route_name(),
                Ok(Route::Web) => "web",
                Err(_) => "invalid",
            },
            started: now,
            bytes_in: 0,
            keep_alive: h.keep_alive,
            minor: h.minor,
            head_only: h.method == head::Method::Head,
            body,
            expect_continue: h.expect_continue,
            continue_sent: false,
        });
        let next = endpoint::start(h, route, &self.cx());
        self.apply(next, now);
    }

    fn advance_body(&mut self, now: Instant) -> bool {
        let Phase::Body(mut task) = std::mem::replace(&mut self.phase, Phase::Head) else {
            return false;
        };
        let input = &self.buf[self.start..self.end];
        let step = match &mut task {
            BodyTask::Discard { dec, .. } => dec.step(input),
            _ => match self.req.as_mut().and_then(|r| r.body.as_mut()) {
                Some(d) => d.step(input),
                // No body at all: the task ends at once.
                None => Ok(Step::End(0)),
            },
        };
        let step = match step {
            Ok(s) => s,
            Err(e) => {
                self.body_error(task, e.0, now);
                return false;
            }
        };
        match step {
            Step::NeedMore => {
                self.phase = Phase::Body(task);
                if self.eof {
                    // The peer stopped mid-body: nothing can complete this request.
                    self.close();
                } else if !self.timers.is_set(Timer::Body) {
                    self.timers.set(Timer::Body, now + self.limits.body_timeout);
                }
                false
            }
            Step::Framing(n) => {
                self.start += n;
                self.timers.set(Timer::Body, now + self.limits.body_timeout);
                match task {
                    BodyTask::Discard { budget, .. } if n as u64 > budget => {
                        self.close();
                        return false;
                    }
                    BodyTask::Discard { dec, budget, close } => {
                        self.phase = Phase::Body(BodyTask::Discard {
                            dec,
                            budget: budget - n as u64,
                            close,
                        });
                    }
                    BodyTask::Gather {
                        data,
                        limit,
                        framing,
                        then,
                    } => {
                        let framing = framing + n;
                        let announced = self
                            .req
                            .as_ref()
                            .and_then(|r| r.body.as_ref())
                            .map_or(0, BodyDecoder::announced);
                        let fits = (data.len() as u64).saturating_add(announced) <= limit as u64;
                        if framing > limit / 2 + 4096 || !fits {
                            self.respond(endpoint::gather_too_large(&then, &self.limits), now);
                            return false;
                        }
                        self.phase = Phase::Body(BodyTask::Gather {
                            data,
                            limit,
                            framing,
                            then,
                        });
                    }
                    upload => self.phase = Phase::Body(upload),
                }
                true
            }
            Step::Data(n) => {
                self.timers.set(Timer::Body, now + self.limits.body_timeout);
                self.body_data(task, n, now);
                true
            }
            Step::End(n) => {
                self.start += n;
                self.timers.stop(Timer::Body);
                match task {
                    BodyTask::Discard { close: true, .. } => self.close(),
                    BodyTask::Discard { .. } => {
                        self.phase = Phase::Head;
                        self.after_response();
                    }
                    BodyTask::Upload(u) => {
                        self.body_read();
                        self.apply(uploads::streamed(u), now);
                    }
                    BodyTask::Gather { data, then, .. } => {
                        self.body_read();
                        self.apply(endpoint::gathered(then, data), now);
                    }
                }
                true
            }
        }
    }

    fn body_data(&mut self, task: BodyTask, n: usize, now: Instant) {
        match task {
            BodyTask::Discard {
                mut dec,
                budget,
                close,
            } => {
                if n as u64 > budget {
                    self.close();
                    return;
                }
                dec.consumed_data(n);
                self.start += n;
                self.phase = Phase::Body(BodyTask::Discard {
                    dec,
                    budget: budget - n as u64,
                    close,
                });
            }
            BodyTask::Gather {
                mut data,
                limit,
                framing,
                then,
            } => {
                if data.len() + n > limit {
                    self.respond(endpoint::gather_too_large(&then, &self.limits), now);
                    return;
                }
                data.extend_from_slice(&self.buf[self.start..self.start + n]);
                self.consume_body(n);
                self.phase = Phase::Body(BodyTask::Gather {
                    data,
                    limit,
                    framing,
                    then,
                });
            }
            BodyTask::Upload(u) => {
                if let Some(max) = self.limits.upload_bytes {
                    if u.offset.saturating_add(n as u64) > max {
                        self.respond(uploads::too_large(), now);
                        return;
                    }
                }
                let id = self.mint_id();
                self.timers.stop_all();
                self.out.push_back(Queued::Append {
                    id,
                    repo: u.repo.clone(),
                    upload: u.upload.clone(),
                    offset: u.offset,
                    range: self.start..self.start + n,
                });
                self.phase = Phase::Parked {
                    id,
                    pending: uploads::appending(u, n),
                };
            }
        }
    }

    /// The request's body has been read to its end.
    fn body_read(&mut self) {
        if let Some(r) = self.req.as_mut() {
            r.body = None;
        }
    }

    /// Marks `n` body data bytes at the buffer front as used by the request.
    fn consume_body(&mut self, n: usize) {
        if let Some(r) = self.req.as_mut() {
            if let Some(d) = r.body.as_mut() {
                d.consumed_data(n);
            }
            r.bytes_in += n as u64;
        }
        self.start += n;
    }

    fn body_error(&mut self, task: BodyTask, why: &'static str, now: Instant) {
        if let BodyTask::Discard { .. } = task {
            self.close();
            return;
        }
        // Framing is lost: answer and close, reading nothing more.
        if let Some(r) = self.req.as_mut() {
            r.keep_alive = false;
            r.body = None;
        }
        let next = match task {
            BodyTask::Upload(u) => uploads::broken(u, why),
            _ => respond::malformed_body(why).into(),
        };
        self.apply(next, now);
    }

    fn mint_id(&mut self) -> NeedId {
        self.next_id += 1;
        NeedId(self.next_id)
    }

    /// Emits a need and parks until its reply.
    fn park(&mut self, need: Need<'static>, pending: Pending) {
        let id = self.mint_id();
        self.timers.stop_all();
        self.out.push_back(Queued::Need(id, need));
        self.phase = Phase::Parked { id, pending };
    }

    /// Starts reading the request body into `task` (sending `100 Continue` if asked for).
    fn read_body(&mut self, task: BodyTask) {
        if let Some(r) = self.req.as_mut() {
            if r.expect_continue && !r.continue_sent && r.body.is_some() {
                r.continue_sent = true;
                self.out
                    .push_back(Queued::Transmit(Bytes::from_static(response::CONTINUE)));
            }
        }
        self.phase = Phase::Body(task);
    }

    /// Finishes the current request with `r`, records it, and decides what happens to the
    /// connection next.
    fn respond(&mut self, r: Response, now: Instant) {
        let Response { head, body } = r;
        let Some(req) = self.req.take() else {
            // A response without a request is a bug in this module; never reachable by input.
            debug_assert!(false, "respond without a request");
            self.close();
            return;
        };
        // An unread body up to `discard_bytes` is read and dropped to keep the connection;
        // up to `linger_bytes`, read and dropped before closing, so a client that writes its
        // whole body before reading (Python's http.client, curl) sees this answer instead of
        // a reset; past that, or before a `100 Continue` it never got, the connection closes.
        let mut discard = None;
        let mut close = !req.keep_alive;
        let mut linger = false;
        if let Some(dec) = &req.body {
            let waiting_for_continue = req.expect_continue && !req.continue_sent;
            let within = |limit: u64| dec.remaining().is_none_or(|r| r <= limit);
            if waiting_for_continue {
                close = true;
            } else if !close && within(self.limits.discard_bytes) {
                discard = Some((dec.clone(), self.limits.discard_bytes));
            } else if within(self.limits.linger_bytes) {
                close = true;
                linger = true;
                discard = Some((dec.clone(), self.limits.linger_bytes));
            } else {
                close = true;
            }
        }
        let status = head.status();
        let len = match &body {
            RespBody::None => 0,
            RespBody::Bytes(b) => b.len() as u64,
            RespBody::Blob { range, .. } => range.end - range.start,
            RespBody::Pieces(ps) => crate::need::pieces_len(ps),
        };
        let keep_alive_10 = req.minor == 0 && !close;
        let mut head = head;
        if let Some(d) = &self.date {
            head.header("Date", d);
        }
        let mut wire = head.finish(len, close, keep_alive_10);
        let mut bytes_out = 0;
        if !req.head_only && status != 204 && status != 304 {
            bytes_out = len;
            match body {
                RespBody::None => self.out.push_back(Queued::Transmit(wire.into())),
                RespBody::Bytes(b) if b.len() <= INLINE_BODY => {
                    wire.extend_from_slice(&b);
                    self.out.push_back(Queued::Transmit(wire.into()));
                }
                RespBody::Bytes(b) => {
                    self.out.push_back(Queued::Transmit(wire.into()));
                    self.out.push_back(Queued::Transmit(b));
                }
                RespBody::Blob { blob, range } => {
                    self.out.push_back(Queued::Transmit(wire.into()));
                    if range.end > range.start {
                        self.out.push_back(Queued::SendBlob { blob, range });
                    }
                }
                RespBody::Pieces(ps) => self.queue_pieces(wire, ps),
            }
        } else {
            self.out.push_back(Queued::Transmit(wire.into()));
        }
        self.out.push_back(Queued::Done(RequestRecord {
            method: req.method,
            path: req.path,
            route: req.route,
            status,
            bytes_in: req.bytes_in,
            bytes_out,
            started: req.started,
            finished: now,
        }));
        if let Some((dec, budget)) = discard {
            self.timers.set(Timer::Body, now + self.limits.body_timeout);
            self.phase = Phase::Body(BodyTask::Discard {
                dec,
                budget,
                close: linger,
            });
        } else if close {
            self.close();
        } else {
            self.phase = Phase::Head;
            self.after_response();
        }
    }

    /// Queues `head` and then `pieces` in order. Small byte pieces join the bytes before
    /// them (a tar header and its padding need not each be a write); empty pieces go
    /// nowhere, so no output is an empty write.
    fn queue_pieces(&mut self, head: Vec<u8>, pieces: Vec<WebPiece>) {
        let mut run = head;
        for p in pieces.into_iter().filter(|p| !p.is_empty()) {
            let queued = match p {
                WebPiece::Bytes(b) if run.len() + b.len() <= INLINE_BODY => {
                    run.extend_from_slice(&b);
                    continue;
                }
                WebPiece::Bytes(b) => Queued::Transmit(b),
                WebPiece::Blob { blob, range } => Queued::SendBlob { blob, range },
            };
            if !run.is_empty() {
                self.out
                    .push_back(Queued::Transmit(std::mem::take(&mut run).into()));
            }
            self.out.push_back(queued);
        }
        if !run.is_empty() {
            self.out.push_back(Queued::Transmit(run.into()));
        }
    }

    fn after_response(&mut self) {
        self.timers.stop(Timer::Body);
        self.scan.reset();
    }

    /// Appended upload bytes were accepted: drop them from the buffer and read on.
    fn appended(&mut self, n: usize, u: Upload, now: Instant) {
        self.consume_body(n);
        self.timers.set(Timer::Body, now + self.limits.body_timeout);
        self.phase = Phase::Body(BodyTask::Upload(u));
    }
}
