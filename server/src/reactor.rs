//! The event loops: one mio `Poll` per core, each accepting from the shared listener and
//! driving its own connections. The loops read the clock, once per event, and pass the
//! reading down (`now`, and the wall clock's second and HTTP date); the connections, the
//! needs and the core get time as an argument. A request's duration is taken here too, when
//! the connection hands back the requests it finished.
//!
//! Readiness (mio:src/poll.rs, "Draining readiness"): each socket is registered once,
//! edge-triggered, for both directions. The connection reads until `WouldBlock` whenever the
//! core wants bytes and writes until `WouldBlock` whenever output is queued; readiness it does
//! not act on costs one spurious wake-up and no `epoll_ctl` per request. An edge missed while
//! a connection was parked on a worker is made up for by driving it as soon as the answer
//! arrives.

// The event loops read the clock and pass it down (see .clippy.toml).
#![allow(clippy::disallowed_methods)]

use crate::clock::Wall;
use crate::config::Config;
use crate::conn::{Conn, Step};
use crate::dispatch::Store;
use crate::logging;
use crate::metrics::Metrics;
use crate::peers::{Peers, Slot};
use crate::readers;
use crate::shared::Shared;
use crate::workers::{self, Completion, Mailbox, Origin};
use berth_core::Connection;
use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::BTreeSet;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Wait before retrying `accept` after it failed for want of descriptors or memory.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);

/// One event loop.
struct Reactor {
    idx: usize,
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    next_gen: u64,
    /// (deadline, token): the earliest first. A connection's entry is its `timer` field.
    timers: BTreeSet<(Instant, usize)>,
    /// Connections whose last flush stopped at its budget.
    again: Vec<usize>,
    inbox: Receiver<Completion>,
    /// Connections whose blob bytes a reader has loaded.
    loaded: Receiver<Origin>,
    /// Connections another reactor accepted and handed to this one (already counted).
    sockets: Receiver<(mio::net::TcpStream, Option<Slot>)>,
    sh: Arc<Shared>,
    /// When shutting down: the end of the grace period.
    draining: Option<Instant>,
    /// When to call `accept` again after it failed (see `accept`).
    accept_retry: Option<Instant>,
    /// The wall clock at the last reading.
    wall: Wall,
}

/// Runs the server until SIGINT/SIGTERM, then drains and returns.
pub fn serve(
    cfg: &Config,
    listener: std::net::TcpListener,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
) -> io::Result<ServeEnd> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;

    // Before any thread starts, so every thread inherits the handlers.
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    listener.set_nonblocking(true)?;

    let mut polls = Vec::new();
    let mut mailboxes = Vec::new();
    let mut inboxes = Vec::new();
    for _ in 0..cfg.threads {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let (sockets, sockets_rx) = crossbeam_channel::unbounded();
        let (loaded, loaded_rx) = crossbeam_channel::unbounded();
        mailboxes.push(Mailbox {
            tx,
            sockets,
            loaded,
            waker,
        });
        inboxes.push((rx, sockets_rx, loaded_rx));
        polls.push(poll);
    }
    let mailboxes = Arc::new(mailboxes);
    let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded();
    let pool = workers::start_pool(
        cfg.workers,
        jobs_rx,
        store.clone(),
        mailboxes.clone(),
        metrics.clone(),
    )?;
    let (reads_tx, reads_rx) = crossbeam_channel::unbounded();
    let readers = readers::start(cfg.readers, reads_rx, mailboxes.clone(), metrics.clone())?;
    let sh = Arc::new(Shared {
        mailboxes: mailboxes.clone(),
        store,
        metrics,
        jobs: jobs_tx,
        reads: reads_tx,
        limits: Arc::new(cfg.limits.clone()),
        access_log: cfg.access_log,
        grace: cfg.shutdown_grace,
        send_timeout: cfg.send_timeout,
        shutdown: AtomicBool::new(false),
        failed: AtomicBool::new(false),
        peers: cfg.max_connections_per_ip.map(Peers::new),
    });

    let mut threads = Vec::new();
    for (idx, (poll, (inbox, sockets, loaded))) in polls.into_iter().zip(inboxes).enumerate() {
        let l = listener.try_clone()?;
        let mut r = Reactor {
            idx,
            poll,
            listener: Some(TcpListener::from_std(l)),
            conns: Vec::new(),
            free: Vec::new(),
            next_gen: 0,
            timers: BTreeSet::new(),
            again: Vec::new(),
            inbox,
            loaded,
            sockets,
            sh: sh.clone(),
            draining: None,
            accept_retry: None,
            wall: Wall::new(SystemTime::now()),
        };
        if let Some(l) = r.listener.as_mut() {
            r.poll
                .registry()
                .register(l, LISTENER, Interest::READABLE)?;
        }
        let t = std::thread::Builder::new()
            .name(format!("berth-reactor-{idx}"))
            .spawn(move || {
                // A panic here is a bug; a process with a dead event loop would half-serve,
                // so either way the whole server shuts down and exits non-zero.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.run()));
                let why = match outcome {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "panic".to_string(),
                };
                tracing::error!(reactor = r.idx, error = %why, "event loop failed; shutting down");
                logging::flush();
                r.sh.failed.store(true, SeqCst);
                // Let the signal thread run the ordinary shutdown.
                let _ = signal_hook::low_level::raise(SIGTERM);
            })?;
        threads.push(t);
    }
    drop(listener);

    let first = signals.forever().next();
    let name = match first {
        Some(SIGINT) => "SIGINT",
        _ => "SIGTERM",
    };
    if !sh.failed.load(SeqCst) {
        say!(
            "berth: {name} received; finishing requests in flight (up to {:?}), then exiting",
            cfg.shutdown_grace
        );
    }
    // A second signal means "now": the store is crash-safe, so exiting is safe.
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            warn_out!("berth: second signal; exiting without waiting");
            std::process::exit(130);
        }
    });
    sh.shutdown.store(true, SeqCst);
    for mb in mailboxes.iter() {
        mb.wake();
    }
    for t in threads {
        if t.join().is_err() {
            sh.failed.store(true, SeqCst);
        }
    }
    let failed = sh.failed.load(SeqCst);
    // The last job and read senders go with `sh`: workers and readers finish what they
    // hold and stop.
    drop(sh);
    pool.join();
    readers.join();
    Ok(if failed {
        ServeEnd::Failed
    } else {
        ServeEnd::Clean
    })
}

/// How `serve` ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeEnd {
    Clean,
    Failed,
}

impl Reactor {
    fn run(&mut self) -> io::Result<()> {
        logging::batch_this_thread();
        let mut events = Events::with_capacity(1024);
        let res = loop {
            let timeout = self.poll_timeout(Instant::now());
            logging::flush();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break Err(e);
            }
            for ev in events.iter() {
                // Read per event, not per batch: a batch may hold many appends, and each
                // request's duration and next deadline should start from its own moment.
                let now = self.tick();
                match ev.token() {
                    LISTENER => self.accept(now),
                    WAKER => {}
                    Token(t) => {
                        let fin = ev.is_read_closed() || ev.is_error();
                        self.drive(t, now, |c, sh| {
                            c.peer_fin |= fin;
                            c.on_ready(sh, now)
                        })
                    }
                }
            }
            let now = self.tick();
            self.completions(now);
            self.loaded(now);
            self.adopt(now);
            for t in std::mem::take(&mut self.again) {
                if self.conn(t).is_some_and(|c| c.again) {
                    self.drive(t, now, |c, sh| c.on_ready(sh, now));
                }
            }
            self.expire(now);
            if self.accept_retry.is_some_and(|at| at <= now) {
                self.accept_retry = None;
                self.accept(now);
            }
            if self.sh.shutdown.load(SeqCst) && self.drain_for_shutdown(now) {
                break Ok(());
            }
        };
        for t in 0..self.conns.len() {
            self.close(t);
        }
        logging::flush();
        res
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        [
            self.timers.first().map(|(at, _)| *at),
            self.draining,
            self.accept_retry,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at.saturating_duration_since(now))
    }

    fn conn(&mut self, t: usize) -> Option<&mut Conn> {
        self.conns.get_mut(t).and_then(Option::as_mut)
    }

    fn accept(&mut self, now: Instant) {
        loop {
            let Some(l) = self.listener.as_ref() else {
                return;
            };
            match l.accept() {
                Ok((sock, peer)) => {
                    let slot = match &self.sh.peers {
                        None => None,
                        Some(p) => match p.admit(peer.ip()) {
                            Some(s) => Some(s),
                            None => {
                                // Dropped unread: closed at once, nothing spent on it.
                                self.sh.metrics.connections_refused.fetch_add(1, Relaxed);
                                tracing::debug!(peer = %peer.ip(), "too many connections from this address; closing");
                                continue;
                            }
                        },
                    };
                    // Responses are written whole; Nagle would only delay the last segment.
                    // The peer address is read back from the socket where it is adopted.
                    let _ = sock.set_nodelay(true);
                    self.place(sock, slot, now);
                }
                // Another reactor won the race for this connection, or none is left.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // Out of descriptors or memory. The pending connections stay queued in
                    // the kernel, but no new edge comes for them until another arrives:
                    // try again shortly (not at once: that would spin), when closes may
                    // have freed descriptors.
                    if berth_engine::is_exhaustion(&e) {
                        self.sh.store.opening_failed("accept a connection", &e);
                    } else {
                        tracing::warn!(error = %e, "accept failed; retrying shortly");
                    }
                    self.accept_retry = Some(now + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    /// Keeps an accepted connection, or hands it to the reactor with the fewest when this
    /// one has clearly more: every reactor wakes for every connection and the first to
    /// call `accept` wins, which left to itself piles connections on one core.
    fn place(&mut self, sock: mio::net::TcpStream, slot: Option<Slot>, now: Instant) {
        let shards = self.sh.metrics.shards();
        let mine = self.sh.shard(self.idx).open_now();
        let least = (0..self.sh.mailboxes.len().min(shards.len()))
            .min_by_key(|&i| (shards[i].open_now(), i != self.idx))
            .unwrap_or(self.idx);
        if least != self.idx && mine > shards[least].open_now() + 1 {
            // Counted now, so a burst of accepts spreads instead of all going to `least`.
            shards[least].opened();
            let mb = &self.sh.mailboxes[least];
            match mb.sockets.send((sock, slot)) {
                Ok(()) => {
                    mb.wake();
                    return;
                }
                Err(back) => {
                    shards[least].closed();
                    let (sock, slot) = back.0;
                    self.add(sock, slot, now, false);
                    return;
                }
            }
        }
        self.add(sock, slot, now, false);
    }

    /// Connections handed over by other reactors.
    fn adopt(&mut self, now: Instant) {
        while let Ok((sock, slot)) = self.sockets.try_recv() {
            self.add(sock, slot, now, true);
        }
    }

    /// Registers a connection; `counted` when the hand-over already counted it here.
    fn add(
        &mut self,
        mut sock: mio::net::TcpStream,
        slot: Option<Slot>,
        now: Instant,
        counted: bool,
    ) {
        let t = match self.free.pop() {
            Some(t) => t,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            Token(t),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            tracing::warn!(error = %e, "cannot register connection");
            self.free.push(t);
            if counted {
                self.sh.shard(self.idx).closed();
            }
            return;
        }
        self.next_gen += 1;
        let origin = Origin {
            reactor: self.idx,
            token: t,
            gen: self.next_gen,
        };
        let proto = Connection::new(self.sh.limits.clone(), now);
        let peer = sock.peer_addr().ok().map(|a| a.ip());
        let mut c = Conn::new(sock, proto, origin, peer, slot, now);
        if !counted {
            self.sh.shard(self.idx).opened();
        }
        // A handed-over socket's readiness edge went to the other reactor's poll.
        c.set_wall(&self.wall);
        let step = c.on_ready(&self.sh, now);
        finished(&self.sh, &mut c);
        self.conns[t] = Some(c);
        self.settle(t, step);
    }

    /// Runs `f` on connection `t` and files the outcome: close, timer, flush-again.
    fn drive(&mut self, t: usize, _now: Instant, f: impl FnOnce(&mut Conn, &Shared) -> Step) {
        let Some(c) = self.conns.get_mut(t).and_then(Option::as_mut) else {
            return;
        };
        c.set_wall(&self.wall);
        let step = f(c, &self.sh);
        finished(&self.sh, c);
        self.settle(t, step);
    }

    /// Reads the clock: the instant returned, the wall clock kept for the connections.
    fn tick(&mut self) -> Instant {
        self.wall.set(SystemTime::now());
        Instant::now()
    }

    fn settle(&mut self, t: usize, step: Step) {
        if step == Step::Close {
            self.close(t);
            return;
        }
        let Some(c) = self.conns.get_mut(t).and_then(Option::as_mut) else {
            return;
        };
        let want = c.deadline(self.sh.send_timeout);
        if want != c.timer {
            if let Some(old) = c.timer {
                self.timers.remove(&(old, t));
            }
            if let Some(new) = want {
                self.timers.insert((new, t));
            }
            c.timer = want;
        }
        if c.again {
            self.again.push(t);
        }
    }

    fn close(&mut self, t: usize) {
        let Some(mut c) = self.conns.get_mut(t).and_then(Option::take) else {
            return;
        };
        if let Some(at) = c.timer {
            self.timers.remove(&(at, t));
        }
        let _ = self.poll.registry().deregister(&mut c.sock);
        self.sh.shard(self.idx).closed();
        self.free.push(t);
    }

    /// Answers from workers: deliver each to its connection if it is still the same one.
    fn completions(&mut self, now: Instant) {
        while let Ok(done) = self.inbox.try_recv() {
            let t = done.origin.token;
            if self.conn(t).is_some_and(|c| c.origin == done.origin) {
                let (id, reply) = (done.id, done.reply);
                self.drive(t, now, move |c, sh| c.resume(sh, id, reply, now));
            }
        }
    }

    /// Connections whose blob bytes are now in memory: flush them again.
    fn loaded(&mut self, now: Instant) {
        while let Ok(origin) = self.loaded.try_recv() {
            let t = origin.token;
            if self.conn(t).is_some_and(|c| c.origin == origin) {
                self.drive(t, now, |c, sh| c.on_ready(sh, now));
            }
        }
    }

    /// Delivers `Input::Timeout` to every connection whose deadline has passed.
    fn expire(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(&(at, t)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some(c) = self.conn(t) {
                c.timer = None;
            }
            due.push(t);
        }
        for t in due {
            self.drive(t, now, |c, sh| {
                let step = c.on_timeout(sh, now);
                // A deadline still in the past after its timeout would spin this loop.
                if step == Step::Alive && c.deadline(sh.send_timeout).is_some_and(|d| d <= now) {
                    tracing::error!("connection deadline did not advance after a timeout; closing");
                    return Step::Close;
                }
                step
            });
        }
    }

    /// Shutdown: stop accepting, close idle connections, give the rest until the grace
    /// period ends. True when the loop may exit.
    fn drain_for_shutdown(&mut self, now: Instant) -> bool {
        let deadline = *self.draining.get_or_insert_with(|| {
            if let Some(mut l) = self.listener.take() {
                let _ = self.poll.registry().deregister(&mut l);
            }
            now + self.sh.grace
        });
        for t in 0..self.conns.len() {
            if self.conns[t].as_ref().is_some_and(|c| c.is_idle()) {
                self.close(t);
            }
        }
        let open = self.conns.iter().flatten().count();
        if open > 0 && now >= deadline {
            let parked = self
                .conns
                .iter()
                .flatten()
                .filter(|c| c.is_parked())
                .count();
            tracing::warn!(
                reactor = self.idx,
                open,
                parked,
                "grace period over; closing connections still busy"
            );
            return true;
        }
        open == 0
    }
}

/// Counts and logs the requests `c` finished since it was last driven. A request's duration
/// runs from the event that began it to now, read again here: many requests end within one
/// event, and timed by that event's reading they would all take 0.
fn finished(sh: &Shared, c: &mut Conn) {
    if c.finished.is_empty() {
        return;
    }
    let end = Instant::now();
    for rec in c.finished.drain(..) {
        let took = end.saturating_duration_since(rec.started);
        sh.shard(c.origin.reactor)
            .request(rec.route, rec.status, took);
        if sh.access_log {
            logging::access(&rec, took);
        }
    }
}
