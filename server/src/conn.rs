//! One client connection: the socket, its `core::Connection`, and the bounded queue of output
//! waiting for the socket. `on_ready` is the one drive function (docs/architecture.md, "server/"): read
//! while the core wants bytes and the queue is below its high-water mark, drain the core's
//! output after every input, flush.

use crate::auth::Ctx;
use crate::clock::Wall;
use crate::dispatch::{Route, Session};
use crate::peers::Slot;
use crate::readers::ReadFor;
use crate::send::{Flushed, SocketSink, WriteQueue};
use crate::shared::Shared;
use crate::workers::{Job, Origin};
use berth_core::{Connection, Input, NeedId, Output, Reply, RequestRecord};
use mio::net::TcpStream;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Queued output above which the connection stops reading: pipelined requests wait in the
/// socket, not in our memory.
const HIGH_WATER: u64 = 256 * 1024;
/// Bytes one flush may send before yielding to other connections on the same reactor.
const FLUSH_BUDGET: u64 = 16 << 20;

/// What the reactor should do with the connection after driving it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Alive,
    Close,
}

pub struct Conn {
    /// This connection's place under its address's cap, given back when it is dropped.
    _slot: Option<Slot>,
    pub sock: TcpStream,
    pub proto: Connection,
    out: WriteQueue,
    pub origin: Origin,
    /// The need a worker is answering, and since when; nothing else happens until it
    /// comes back.
    parked: Option<(NeedId, Instant)>,
    /// The core returned `Output::Close`: flush, then close.
    closing: bool,
    /// The peer closed its sending side (we read the 0).
    eof: bool,
    /// An event said the peer's FIN (or an error) is pending: read until 0 or an error.
    pub peer_fin: bool,
    /// The socket failed or the core was misdriven: close now.
    dead: bool,
    /// Bytes received since the last finished request: zero means idle between requests.
    since_done: u64,
    /// The deadline registered in the reactor's timer set.
    pub timer: Option<Instant>,
    /// Since when queued output has waited on a socket that takes nothing: a client that
    /// stopped reading is dropped `send_timeout` later.
    stalled_since: Option<Instant>,
    /// The last flush stopped at its budget: the reactor must drive us again without
    /// waiting for an event.
    pub again: bool,
    /// The client's address (failed-authentication lockout) and whom the last
    /// `Need::Authorize` granted.
    session: Session,
    /// Requests answered since the reactor last looked: it times, counts and logs them.
    pub finished: Vec<RequestRecord>,
}

impl Conn {
    pub fn new(
        sock: TcpStream,
        proto: Connection,
        origin: Origin,
        peer: Option<std::net::IpAddr>,
        slot: Option<Slot>,
        now: Instant,
    ) -> Conn {
        Conn {
            _slot: slot,
            sock,
            proto,
            out: WriteQueue::default(),
            origin,
            parked: None,
            closing: false,
            eof: false,
            peer_fin: false,
            dead: false,
            since_done: 0,
            timer: None,
            stalled_since: None,
            again: false,
            session: Session {
                ctx: Ctx { now, unix: 0, peer },
                caller: None,
                auth_cache: Default::default(),
            },
            finished: Vec::new(),
        }
    }

    /// Between requests with nothing to send and nothing in flight: safe to close at shutdown.
    pub fn is_idle(&self) -> bool {
        self.parked.is_none() && self.out.is_empty() && self.since_done == 0
    }

    pub fn is_parked(&self) -> bool {
        self.parked.is_some()
    }

    fn may_read(&mut self) -> bool {
        !self.eof
            && !self.dead
            && !self.closing
            && self.parked.is_none()
            && self.out.len() < HIGH_WATER
            && self.proto.wants_read()
    }

    /// Reads, drains and flushes until the socket would block or the connection must wait.
    pub fn on_ready(&mut self, sh: &Shared, now: Instant) -> Step {
        self.again = false;
        loop {
            let mut would_block = false;
            while self.may_read() {
                let buf = self.proto.recv_buf();
                let room = buf.len();
                if room == 0 {
                    break;
                }
                match (&self.sock).read(buf) {
                    Ok(0) => {
                        self.eof = true;
                        self.input(sh, Input::Eof { now }, now);
                    }
                    Ok(n) => {
                        self.since_done += n as u64;
                        sh.shard(self.origin.reactor).bytes_in(n as u64);
                        self.input(sh, Input::Recv { now, n }, now);
                        // A short read emptied the socket's queue: whatever arrives next
                        // raises a fresh edge, so the read that would only say WouldBlock is
                        // skipped. Not once the peer's FIN was announced: an edge that
                        // already fired will not report it again.
                        if n < room && !self.peer_fin {
                            would_block = true;
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        would_block = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => self.dead = true,
                }
            }
            if self.dead {
                return Step::Close;
            }
            let mut sink = SocketSink(self.sock.as_raw_fd());
            let reader = ReadFor {
                jobs: &sh.reads,
                origin: self.origin,
            };
            match self.out.flush(&mut sink, &reader, FLUSH_BUDGET) {
                Ok((how, sent)) => {
                    sh.shard(self.origin.reactor).bytes_out(sent);
                    if how == Flushed::Budget {
                        self.again = true;
                    }
                    // Waiting on the disk (`Loading`) counts as a stall too, so a read that
                    // never ends cannot hold the connection forever.
                    self.stalled_since = match how {
                        Flushed::Drained => None,
                        _ if sent > 0 => Some(now),
                        _ => self.stalled_since.or(Some(now)),
                    };
                }
                Err(e) if crate::send::is_pack_read(&e) => {
                    sh.metrics.pack_read_errors.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "a blob could not be read from its pack; its response is cut short and the connection closed");
                    return Step::Close;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "write failed; closing connection");
                    return Step::Close;
                }
            }
            // Flushing may have made room to read what the high-water mark held back.
            if would_block || self.again || !self.may_read() {
                break;
            }
        }
        if self.out.is_empty() && (self.closing || self.proto.is_closed()) {
            return Step::Close;
        }
        // The peer is gone and nothing is owed: the core has had its Eof.
        if self.eof && self.parked.is_none() && self.out.is_empty() {
            return Step::Close;
        }
        Step::Alive
    }

    /// A worker answered the parked need: deliver it and drive the connection at once.
    pub fn resume(&mut self, sh: &Shared, id: NeedId, reply: Reply, now: Instant) -> Step {
        let Some((_, since)) = self.parked.take().filter(|(want, _)| *want == id) else {
            tracing::error!(
                ?id,
                "completion for a need this connection is not parked on"
            );
            return Step::Close;
        };
        sh.shard(self.origin.reactor)
            .job_done(now.saturating_duration_since(since));
        self.input(sh, Input::Reply { now, id, reply }, now);
        self.on_ready(sh, now)
    }

    /// The earliest of the core's deadline and the send-stall deadline.
    pub fn deadline(&self, send_timeout: Duration) -> Option<Instant> {
        let stall = self.stalled_since.map(|t| t + send_timeout);
        match (self.proto.deadline(), stall) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A deadline passed: the client stopped reading, or the core's own.
    pub fn on_timeout(&mut self, sh: &Shared, now: Instant) -> Step {
        if self
            .stalled_since
            .is_some_and(|t| t + sh.send_timeout <= now)
        {
            tracing::debug!("response made no progress within send_timeout (client not reading, or the disk not answering); closing");
            return Step::Close;
        }
        if self.proto.deadline().is_some_and(|d| d <= now) {
            self.input(sh, Input::Timeout(now), now);
        }
        self.on_ready(sh, now)
    }

    /// The wall clock as the reactor read it, for the `Date` header and the needs (token
    /// expiry, audit times) of what follows.
    pub fn set_wall(&mut self, wall: &Wall) {
        self.proto.set_date(wall.date());
        self.session.ctx.unix = wall.unix();
    }

    /// One `handle_input`, then drain every output it caused.
    fn input(&mut self, sh: &Shared, input: Input, now: Instant) {
        if let Err(m) = self.proto.handle_input(input) {
            tracing::error!(error = %m, "core connection misdriven; closing");
            self.dead = true;
            return;
        }
        self.drain(sh, now);
    }

    /// `poll_output` until `None`, answering inline needs as they come (each answer is
    /// another input, drained in the same loop).
    fn drain(&mut self, sh: &Shared, now: Instant) {
        loop {
            let (id, reply) = match self.proto.poll_output() {
                None => return,
                Some(Output::Transmit(b)) => {
                    self.out.push_bytes(b);
                    continue;
                }
                Some(Output::SendBlob { blob, range }) => {
                    match sh.store.pack_file(blob.file) {
                        Ok(f) => self.out.push_file(
                            f,
                            blob.offset.saturating_add(range.start),
                            blob.offset.saturating_add(range.end),
                        ),
                        Err(e) => {
                            // Headers promising the body are queued: closing after them
                            // tells the client the body is short, which it is. Nothing
                            // after them may go out in the blob's place.
                            tracing::error!(error = %e, pack = blob.file, "cannot open pack; closing");
                            self.out.cut_short();
                            self.closing = true;
                        }
                    }
                    continue;
                }
                Some(Output::Done(rec)) => {
                    self.since_done = 0;
                    self.finished.push(rec);
                    continue;
                }
                Some(Output::Close) => {
                    self.closing = true;
                    continue;
                }
                // A pipelined request after a response cut short: never answered (its
                // answer could not be sent), never acted on.
                Some(Output::Need(..)) if self.out.is_cut() => return,
                Some(Output::Need(id, need)) => match route(sh, &mut self.session, need, now) {
                    Route::Now(reply) => (id, reply),
                    Route::Later(work) => {
                        self.parked = Some((id, now));
                        sh.metrics.jobs_in_flight.fetch_add(1, Relaxed);
                        let job = Job {
                            origin: self.origin,
                            id,
                            work,
                        };
                        if sh.jobs.send(job).is_err() {
                            // Only after shutdown has dropped the pool.
                            sh.metrics.jobs_in_flight.fetch_sub(1, Relaxed);
                            self.parked = None;
                            self.dead = true;
                            return;
                        }
                        continue;
                    }
                },
            };
            if let Err(m) = self.proto.handle_input(Input::Reply { now, id, reply }) {
                tracing::error!(error = %m, "core connection misdriven; closing");
                self.dead = true;
                return;
            }
        }
    }
}

/// Answers or parks one need for the request `session` belongs to (a free function: the
/// need borrows the core connection, the session is a disjoint field).
fn route(sh: &Shared, session: &mut Session, need: berth_core::Need<'_>, now: Instant) -> Route {
    session.ctx.now = now;
    sh.store.route(need, session)
}
