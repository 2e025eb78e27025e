//! A round-robin TCP front for several `berth serve` nodes: what a load balancer is to a
//! deployment, so that the tests' clients land on every node in turn.
//!
//! It forwards whole connections, not requests: each accepted connection goes to the next
//! backend, and a backend that refuses the connection (a node killed a moment ago) is
//! skipped for the next, so a client that retries after losing a node gets through. That
//! is the behaviour of a plain TCP balancer (haproxy in `mode tcp`, nginx `stream`), which
//! is what the distributed mode promises to work behind: no sticky sessions, no health
//! checks of its own. Threads and blocking sockets only; it carries test traffic.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a connect to one backend may take before the next is tried. Loopback refuses
/// at once when nothing listens; this only bounds a backend that hangs.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The front: a listener on a free loopback port and its accept thread. Dropping it stops
/// accepting and cuts every connection it still carries.
pub struct Front {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    /// The backends in their order of turns, each with the connections it was given.
    backends: Mutex<Vec<(SocketAddr, u64)>>,
    /// Where the next turn starts.
    next: Mutex<usize>,
    stop: AtomicBool,
    /// Both sockets of every connection being carried, to cut them when the front goes.
    live: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
    ids: AtomicU64,
    /// Connections accepted that no backend took.
    refused: AtomicU64,
}

impl Front {
    /// Listens on a free loopback port and forwards to `backends` in turn.
    pub fn start(backends: &[SocketAddr]) -> Front {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the front's port");
        let addr = listener.local_addr().expect("the front's address");
        let shared = Arc::new(Shared::default());
        lock(&shared.backends).extend(backends.iter().map(|a| (*a, 0)));
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("front-accept".into())
            .spawn(move || accept_loop(listener, s))
            .expect("spawn the front's accept thread");
        Front {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `127.0.0.1:PORT`, where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a backend at the end of the turns (a node started or restarted).
    pub fn add(&self, backend: SocketAddr) {
        let mut b = lock(&self.shared.backends);
        if !b.iter().any(|(a, _)| *a == backend) {
            b.push((backend, 0));
        }
    }

    /// Takes a backend out of the turns; connections it already carries go on.
    pub fn remove(&self, backend: SocketAddr) {
        lock(&self.shared.backends).retain(|(a, _)| *a != backend);
    }

    /// The backends in their order of turns.
    pub fn backends(&self) -> Vec<SocketAddr> {
        lock(&self.shared.backends)
            .iter()
            .map(|(a, _)| *a)
            .collect()
    }

    /// How many connections each backend was given so far (0 for one it never had).
    pub fn connections(&self, backend: SocketAddr) -> u64 {
        lock(&self.shared.backends)
            .iter()
            .find(|(a, _)| *a == backend)
            .map_or(0, |(_, n)| *n)
    }

    /// How many accepted connections were closed because no backend took them.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for (_, (a, b)) in lock(&self.shared.live).drain() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else {
            // A connection reset before it was accepted, or out of descriptors for a
            // moment: the next accept may well work.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let Some(backend) = connect_next(&shared) else {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            drop(client);
            continue;
        };
        carry(&shared, client, backend);
    }
}

/// Connects to the backend whose turn it is, or the one after it, and so on once round;
/// the turn after a connection is the backend after the one that took it, so a dead
/// backend's share spreads evenly over the others.
fn connect_next(shared: &Shared) -> Option<TcpStream> {
    let order: Vec<SocketAddr> = lock(&shared.backends).iter().map(|(a, _)| *a).collect();
    if order.is_empty() {
        return None;
    }
    let start = *lock(&shared.next) % order.len();
    for k in 0..order.len() {
        let i = (start + k) % order.len();
        if let Ok(s) = TcpStream::connect_timeout(&order[i], CONNECT_TIMEOUT) {
            *lock(&shared.next) = i + 1;
            if let Some(e) = lock(&shared.backends)
                .iter_mut()
                .find(|(a, _)| *a == order[i])
            {
                e.1 += 1;
            }
            return Some(s);
        }
    }
    None
}

/// Pumps bytes both ways on two threads; each direction passes the end of its stream on
/// as a half-close, so a client that closes its side still gets the whole answer.
fn carry(shared: &Arc<Shared>, client: TcpStream, backend: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = backend.set_nodelay(true);
    let id = shared.ids.fetch_add(1, Ordering::Relaxed);
    let (Ok(c2), Ok(b2), Ok(c3), Ok(b3)) = (
        client.try_clone(),
        backend.try_clone(),
        client.try_clone(),
        backend.try_clone(),
    ) else {
        return;
    };
    lock(&shared.live).insert(id, (c3, b3));
    let done = Arc::new(AtomicU64::new(0));
    for (from, to) in [(client, backend), (b2, c2)] {
        let owner = shared.clone();
        let done = done.clone();
        let spawned = std::thread::Builder::new()
            .name("front-pump".into())
            .spawn(move || {
                pump(from, to);
                // The second direction to finish forgets the connection.
                if done.fetch_add(1, Ordering::SeqCst) == 1 {
                    lock(&owner.live).remove(&id);
                }
            });
        if spawned.is_err() {
            if let Some((a, b)) = lock(&shared.live).remove(&id) {
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
            }
            return;
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    // The other side is gone: stop reading this one too.
                    let _ = from.shutdown(Shutdown::Read);
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                // A reset from this side: reset the other too, as a balancer would.
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
