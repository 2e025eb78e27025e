//! A recording proxy: clients talk to it as to the registry, it passes every byte through
//! and keeps what each client connection sent, so that real clients' sessions (docker,
//! podman, skopeo, containerd) can be replayed through the protocol core (the fuzz corpus
//! and `core/tests/recorded_sessions.rs`).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// What one client connection sent, in order.
pub type Session = Vec<u8>;

/// A proxy in front of one registry on a loopback port of its own.
pub struct Recorder {
    addr: SocketAddr,
    sessions: Arc<Mutex<Vec<Session>>>,
}

impl Recorder {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the recorder");
        let addr = listener.local_addr().expect("recorder address");
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let kept = sessions.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let kept = kept.clone();
                thread::spawn(move || {
                    if let Some(s) = relay(client, upstream) {
                        kept.lock().unwrap_or_else(|p| p.into_inner()).push(s);
                    }
                });
            }
        });
        Recorder { addr, sessions }
    }

    /// Where clients connect (`host:port`).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The sessions that have ended so far, in the order they ended.
    pub fn sessions(&self) -> Vec<Session> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Relays one connection both ways until both sides are done; what the client sent.
fn relay(client: TcpStream, upstream: SocketAddr) -> Option<Session> {
    let server = TcpStream::connect(upstream).ok()?;
    let (mut c_read, mut s_write) = (client.try_clone().ok()?, server.try_clone().ok()?);
    let (mut s_read, mut c_write) = (server, client);
    let back = thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Write);
    });
    let mut sent = Vec::new();
    let mut buf = [0u8; 64 << 10];
    loop {
        match c_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                sent.extend_from_slice(&buf[..n]);
                if s_write.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = s_write.shutdown(Shutdown::Write);
    let _ = back.join();
    Some(sent)
}
