//! The client against byte strings and against scripted loopback servers.

use berth_client::{read_response, Error, HttpConn, Options, Reader, Sink};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;

/// A source that hands out one byte per read, so every head, line and chunk is split.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.split_first(), out.first_mut()) {
            (Some((b, rest)), Some(o)) => {
                *o = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

fn parse(raw: &[u8]) -> Result<berth_client::Response, Error> {
    read_response(raw, false)
}

#[test]
fn malformed_or_truncated_responses_are_errors_not_panics() {
    let rows: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 99 OK\r\n\r\n",
        b"HTTP/1.1 700 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
    ];
    for raw in rows {
        let got = parse(raw);
        assert!(
            matches!(got, Err(Error::Malformed(_))),
            "{:?} -> {got:?}",
            String::from_utf8_lossy(raw)
        );
    }
    assert!(matches!(parse(b""), Err(Error::Closed)));
    let e = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort").unwrap_err();
    assert_eq!(
        e.to_string(),
        "the answer is not a valid HTTP response (the connection ended before the whole body arrived)"
    );
}

#[test]
fn a_kept_body_over_the_limit_is_refused_and_a_discarded_one_counted() {
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world";
    let mut r = Reader::new(&raw[..], 0, 10);
    assert!(matches!(
        r.read_response(false, Sink::Keep),
        Err(Error::Malformed(_))
    ));
    let mut r = Reader::new(&raw[..], 0, 10);
    let resp = r.read_response(false, Sink::Discard).unwrap();
    assert_eq!((resp.body.len(), resp.body_len), (0, 11));
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n";
    let mut r = Reader::new(&chunked[..], 0, 10);
    assert!(matches!(
        r.read_response(false, Sink::Keep),
        Err(Error::Malformed(_))
    ));
}

#[test]
fn chunked_bodies_decode_across_split_reads_and_pipelined_responses_follow() {
    let raw = b"HTTP/1.1 100 Continue\r\n\r\n\
                HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                4;ext=1\r\n[{\"a\r\n6\r\n\":1},{\r\n7\r\n\"a\":2}]\r\n0\r\nX-Trailer: y\r\n\r\n\
                HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}\
                HTTP/1.0 200 OK\r\n\r\n{\"x\":1}";
    let mut r = Reader::new(Trickle(raw), 0, 1 << 20);
    let a = r.read_response(false, Sink::Keep).unwrap();
    assert_eq!((a.status, a.reason.as_str()), (200, "OK"));
    assert_eq!(a.text(), r#"[{"a":1},{"a":2}]"#);
    let b = r.read_response(false, Sink::Keep).unwrap();
    assert_eq!(
        (b.status, &b.body[..], b.header("Content-Length")),
        (404, &b"{}"[..], Some("2"))
    );
    let c = r.read_response(false, Sink::Keep).unwrap();
    assert_eq!(c.body, b"{\"x\":1}");
    assert!(matches!(
        r.read_response(false, Sink::Keep),
        Err(Error::Closed)
    ));
}

#[test]
fn bodiless_statuses_and_head_do_not_wait_for_a_body() {
    let r = parse(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n").unwrap();
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = read_response(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"[..], true).unwrap();
    assert_eq!(
        (r.status, r.body.len(), r.header("content-length")),
        (200, 0, Some("5"))
    );
}

/// A server that accepts connections in order, reads each request's head (and
/// `Content-Length` body), and answers with the scripted bytes for it; a connection's
/// script ends by closing it. Returns the request lines it saw.
fn scripted(conns: Vec<Vec<&'static [u8]>>) -> (SocketAddr, thread::JoinHandle<Vec<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
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
                for piece in answer.chunks(7) {
                    s.write_all(piece).unwrap();
                }
            }
        }
        seen
    });
    (addr, h)
}

fn conn(addr: SocketAddr) -> HttpConn {
    HttpConn::connect(addr, addr.to_string(), Options::default()).unwrap()
}

#[test]
fn two_requests_share_one_keep_alive_connection() {
    let (addr, h) = scripted(vec![vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}",
    ]]);
    let mut c = conn(addr);
    let r = c.request("GET", "/a", &[], &[], Sink::Keep).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    let r = c
        .request("PUT", "/b", &[("X-A", "1")], &[b"xy", b"z"], Sink::Keep)
        .unwrap();
    assert_eq!((r.status, r.body.as_slice()), (404, &b"{}"[..]));
    assert_eq!(c.connects, 1);
    assert_eq!(
        h.join().unwrap(),
        vec!["GET /a HTTP/1.1", "PUT /b HTTP/1.1"]
    );
}

#[test]
fn a_connection_the_server_closes_is_reopened_for_the_next_request() {
    let (addr, h) = scripted(vec![
        vec![b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nLocation: /u/1\r\nContent-Length: 0\r\n\r\n"],
        vec![b"HTTP/1.1 204 No Content\r\n\r\n"],
    ]);
    let mut c = conn(addr);
    let r = c.request("POST", "/p", &[], &[], Sink::Keep).unwrap();
    assert_eq!(
        (r.status, r.header("location"), r.closes()),
        (202, Some("/u/1"), true)
    );
    let r = c.request("GET", "/q", &[], &[], Sink::Keep).unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(c.connects, 2);
    h.join().unwrap();
}

#[test]
fn a_kept_alive_connection_closed_while_idle_is_retried_once_on_a_new_one() {
    // The first connection answers once and closes without saying so, as an idle timeout does.
    let (addr, h) = scripted(vec![
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"],
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"],
    ]);
    let mut c = conn(addr);
    assert_eq!(
        c.request("GET", "/1", &[], &[], Sink::Keep).unwrap().body,
        b"a"
    );
    assert_eq!(
        c.request("GET", "/2", &[], &[], Sink::Keep).unwrap().body,
        b"b"
    );
    assert_eq!(c.connects, 2);
    assert_eq!(
        h.join().unwrap(),
        vec!["GET /1 HTTP/1.1", "GET /2 HTTP/1.1"]
    );
}

#[test]
fn without_reconnect_the_socket_outlives_a_closing_response() {
    let (addr, h) = scripted(vec![vec![
        b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    ]]);
    let opts = Options {
        reconnect: false,
        ..Options::default()
    };
    let mut c = HttpConn::connect(addr, "localhost", opts).unwrap();
    let r = c.request("GET", "/x", &[], &[], Sink::Keep).unwrap();
    assert!(r.closes());
    let mut b = [0u8; 1];
    assert_eq!(
        c.socket().unwrap().read(&mut b).unwrap(),
        0,
        "same socket, at its end"
    );
    assert!(matches!(
        c.read_response(false, Sink::Keep),
        Err(Error::Closed)
    ));
    assert_eq!(c.connects, 1);
    h.join().unwrap();
}

#[test]
fn a_streamed_body_ends_where_its_length_says_or_early_when_cut() {
    let (addr, h) = scripted(vec![
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA"],
        vec![b"HTTP/1.1 206 Partial\r\nContent-Length: 10\r\n\r\nshort"],
        vec![b"HTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"],
    ]);
    let new = || HttpConn::new(vec![addr], "h", Options::default());
    let mut s = new().stream("GET", "/d", &[("Range", "bytes=0-")]).unwrap();
    let mut body = Vec::new();
    s.body.read_to_end(&mut body).unwrap();
    assert_eq!(
        (s.status, s.header("content-length"), &body[..]),
        (200, Some("5"), &b"hello"[..])
    );
    let mut s = new().stream("GET", "/d", &[]).unwrap();
    body.clear();
    s.body.read_to_end(&mut body).unwrap();
    assert_eq!((s.status, &body[..]), (206, &b"short"[..]));
    let mut s = new().stream("GET", "/d", &[]).unwrap();
    body.clear();
    s.body.read_to_end(&mut body).unwrap();
    assert_eq!((s.status, &body[..]), (500, &b"{}"[..]));
    h.join().unwrap();
}

#[test]
fn a_refused_connection_is_a_connect_error() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let mut c = HttpConn::new(vec![addr], "h", Options::default());
    match c.request("GET", "/", &[], &[], Sink::Keep) {
        Err(Error::Connect(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_push_stops_at_the_answer_the_spec_does_not_allow() {
    use berth_client::oci::{push_blob, push_blob_in_chunks, sha256_digest, PushError};
    let (addr, h) = scripted(vec![vec![
        b"HTTP/1.1 202 Accepted\r\nLocation: http://h/v2/r/blobs/uploads/1?s=a\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 202 Accepted\r\nLocation: /v2/r/blobs/uploads/1?s=b\r\nRange: 0-1\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 202 Accepted\r\nLocation: /v2/r/blobs/uploads/1?s=c\r\nRange: 0-2\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 202 Accepted\r\nLocation: /v2/r/blobs/uploads/2\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nDocker-Content-Digest: sha256:other\r\nContent-Length: 0\r\n\r\n",
    ]]);
    let mut c = conn(addr);
    let auth = [("Authorization", "Bearer t")];
    // The second PATCH is answered with the Range of the first.
    match push_blob_in_chunks(&mut c, &auth, "r", b"abcd", 2) {
        Err(PushError::Refused { step, why, .. }) => {
            assert_eq!((step, why.as_str()), ("PATCH upload", "want Range 0-3"))
        }
        other => panic!("{other:?}"),
    }
    let d = sha256_digest(b"x");
    match push_blob(&mut c, &auth, "r", &d, &[b"x"]) {
        Err(PushError::Refused { why, response, .. }) => {
            assert!(why.contains("Docker-Content-Digest sha256:other"), "{why}");
            assert_eq!(response.status, 201);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.join().unwrap(),
        vec![
            "POST /v2/r/blobs/uploads/ HTTP/1.1",
            "PATCH /v2/r/blobs/uploads/1?s=a HTTP/1.1",
            "PATCH /v2/r/blobs/uploads/1?s=b HTTP/1.1",
            "POST /v2/r/blobs/uploads/ HTTP/1.1",
            format!("PUT /v2/r/blobs/uploads/2?digest={d} HTTP/1.1").as_str(),
        ]
    );
}
