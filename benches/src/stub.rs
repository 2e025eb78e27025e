//! A registry stub with no storage: it accepts uploads without hashing or keeping them and
//! serves blobs from one in-memory buffer. Run with the load generator, it shows what the
//! client, the loopback and the kernel cost on this machine, so a server's figure can be
//! read against it. Thread per connection, pulled bytes written from one buffer that stays
//! in cache: a close bound for a server that writes from maps of its files, not a strict one.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// Blob bodies are this buffer, repeated.
const FILL: usize = 1 << 20;
const MAX_HEAD: usize = 64 << 10;
/// Manifests are kept; their size is bounded like a registry's (spec §6.4, 4 MiB).
const MAX_MANIFEST: u64 = 4 << 20;

#[derive(Default)]
struct State {
    /// Digest → size of every blob "pushed".
    blobs: HashMap<String, u64>,
    /// Path → (content type, body).
    manifests: HashMap<String, (String, Vec<u8>)>,
    uploads: u64,
}

/// Serves `listener` until the process ends.
pub fn run(listener: TcpListener) -> io::Result<()> {
    let state = Arc::new(Mutex::new(State::default()));
    let fill: Arc<[u8]> = {
        let mut b = vec![0u8; FILL];
        crate::payload::fill_random(&mut b, 5);
        b.into()
    };
    for s in listener.incoming() {
        let s = s?;
        let (state, fill) = (state.clone(), fill.clone());
        thread::spawn(move || {
            // A connection error ends that connection only.
            let _ = serve(s, &state, &fill);
        });
    }
    Ok(())
}

struct Req {
    method: String,
    path: String,
    content_type: String,
    len: u64,
}

fn serve(mut s: TcpStream, state: &Mutex<State>, fill: &[u8]) -> io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut start, mut end) = (0usize, 0usize);
    loop {
        let (req, used) = loop {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Request::new(&mut hs);
            match r.parse(&buf[start..end]) {
                Ok(httparse::Status::Complete(n)) => {
                    let find = |name: &str| {
                        r.headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8_lossy(h.value).into_owned())
                    };
                    let len = find("content-length")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(0);
                    let req = Req {
                        method: r.method.unwrap_or("").to_string(),
                        path: r.path.unwrap_or("").to_string(),
                        content_type: find("content-type").unwrap_or_default(),
                        len,
                    };
                    break (req, n);
                }
                Ok(httparse::Status::Partial) if end - start < MAX_HEAD => {}
                _ => return reply(&mut s, 400, "", b""),
            }
            if end == buf.len() {
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
            }
            let n = s.read(&mut buf[end..])?;
            if n == 0 {
                return Ok(());
            }
            end += n;
        };
        start += used;
        // The body: kept for manifests, counted and dropped otherwise.
        let keep = req.method == "PUT" && req.path.contains("/manifests/");
        if keep && req.len > MAX_MANIFEST {
            return reply(&mut s, 413, "", b"");
        }
        let mut body = Vec::new();
        let mut left = req.len;
        while left > 0 {
            if start == end {
                start = 0;
                end = s.read(&mut buf)?;
                if end == 0 {
                    return Ok(());
                }
            }
            let take = (end - start).min(usize::try_from(left).unwrap_or(usize::MAX));
            if keep {
                body.extend_from_slice(&buf[start..start + take]);
            }
            start += take;
            left -= take as u64;
        }
        respond(&mut s, &req, body, state, fill)?;
    }
}

fn reply(s: &mut TcpStream, status: u16, extra: &str, body: &[u8]) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} -\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    if body.len() < 8192 {
        let mut w = head.into_bytes();
        w.extend_from_slice(body);
        s.write_all(&w)
    } else {
        s.write_all(head.as_bytes())?;
        s.write_all(body)
    }
}

fn respond(
    s: &mut TcpStream,
    req: &Req,
    body: Vec<u8>,
    state: &Mutex<State>,
    fill: &[u8],
) -> io::Result<()> {
    let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
    // A poisoned lock means another connection's thread panicked: a bug in this stub.
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    match req.method.as_str() {
        "GET" if path == "/v2/" || path == "/v2" => reply(s, 200, "", b"{}"),
        "POST" if path.ends_with("/blobs/uploads/") => {
            st.uploads += 1;
            let loc = format!("Location: {path}{}\r\nRange: 0-0\r\n", st.uploads);
            reply(s, 202, &loc, b"")
        }
        "PUT" if path.contains("/blobs/uploads/") => {
            match query.split('&').find_map(|kv| kv.strip_prefix("digest=")) {
                Some(d) => {
                    st.blobs.insert(d.to_string(), req.len);
                    reply(s, 201, &format!("Docker-Content-Digest: {d}\r\n"), b"")
                }
                None => reply(s, 400, "", b""),
            }
        }
        "GET" | "HEAD" if path.contains("/blobs/") => {
            let digest = path.rsplit('/').next().unwrap_or("");
            let Some(&size) = st.blobs.get(digest) else {
                return reply(s, 404, "", b"");
            };
            drop(st);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nDocker-Content-Digest: {digest}\r\nContent-Length: {size}\r\n\r\n"
            );
            s.write_all(head.as_bytes())?;
            if req.method == "HEAD" {
                return Ok(());
            }
            let mut left = size;
            while left > 0 {
                let n = fill.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                s.write_all(&fill[..n])?;
                left -= n as u64;
            }
            Ok(())
        }
        "PUT" if path.contains("/manifests/") => {
            st.manifests
                .insert(path.to_string(), (req.content_type.clone(), body));
            reply(s, 201, "", b"")
        }
        "GET" if path.contains("/manifests/") => match st.manifests.get(path) {
            Some((ct, m)) => {
                let (ct, m) = (ct.clone(), m.clone());
                drop(st);
                reply(s, 200, &format!("Content-Type: {ct}\r\n"), &m)
            }
            None => reply(s, 404, "", b""),
        },
        _ => reply(s, 405, "", b""),
    }
}
