//! A one-connection-per-response HTTP server for tests: it answers each accepted connection
//! with the next canned bytes (written in pieces, to split heads and chunks) and hands back
//! the requests it read.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

pub struct Canned {
    pub url: String,
    handle: JoinHandle<Vec<String>>,
}

impl Canned {
    /// Serves `responses` in order, one per connection.
    pub fn start(responses: Vec<Vec<u8>>) -> Canned {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for resp in responses {
                let (mut s, _) = listener.accept().unwrap();
                seen.push(read_request(&mut s));
                for piece in resp.chunks(7) {
                    s.write_all(piece).unwrap();
                    s.flush().unwrap();
                }
            }
            seen
        });
        Canned { url, handle }
    }

    /// The requests received, head and body as text.
    pub fn requests(self) -> Vec<String> {
        self.handle.join().unwrap()
    }
}

fn read_request(s: &mut impl Read) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "client closed before the request head ended");
        buf.extend_from_slice(&b[..n]);
    };
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    while buf.len() < end + len {
        let n = s.read(&mut b).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&b[..n]);
    }
    String::from_utf8(buf).unwrap()
}

/// A `Content-Length` response with a JSON body.
pub fn json(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
