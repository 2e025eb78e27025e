//! Web responses whose body is pieces: in-memory bytes and ranges of stored blobs, sent in
//! order after one head whose `Content-Length` is their sum.

use berth_core::oci::RepoName;
use berth_core::testkit::{epoch, parse_responses, Harness, Request};
use berth_core::{
    BlobHandle, Connection, Input, Limits, Need, Output, Reply, WebPiece, WebResponse,
};
use bytes::Bytes;
use std::ops::Range;
use std::sync::Arc;

fn repo() -> RepoName {
    RepoName::parse("org/app").unwrap()
}

fn bytes(s: &'static str) -> WebPiece {
    WebPiece::Bytes(Bytes::from_static(s.as_bytes()))
}

fn blob(handle: BlobHandle, range: Range<u64>) -> WebPiece {
    WebPiece::Blob {
        blob: handle,
        range,
    }
}

fn pieced(pieces: Vec<WebPiece>) -> Reply {
    Reply::Web(WebResponse {
        status: 200,
        content_type: "application/x-tar".into(),
        headers: vec![("Accept-Ranges".into(), "bytes".into())],
        body: pieces.into(),
    })
}

/// A harness whose web requests to `/download` are answered with `pieces`; other web
/// requests go to the model store.
fn serving(pieces: impl Fn(&mut Harness) -> Vec<WebPiece>) -> Harness {
    let mut h = Harness::new();
    let ps = pieces(&mut h);
    h.intercept = Some(Box::new(move |need| match need {
        Need::Web(req) if req.path == "/download" => Some(pieced(ps.clone())),
        _ => None,
    }));
    h
}

/// What reached the socket after the head: runs of bytes (adjacent ones merged) and blob
/// ranges, in order.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    Text(Vec<u8>),
    Blob(BlobHandle, Range<u64>),
}

#[test]
fn a_pieced_body_goes_out_in_order_after_a_head_with_its_length_and_skips_empty_pieces() {
    let a = BlobHandle {
        file: 3,
        offset: 100,
    };
    let b = BlobHandle { file: 4, offset: 0 };
    let now = epoch();
    let mut conn = Connection::new(Arc::new(Limits::default()), now);
    let req = b"GET /download HTTP/1.1\r\nHost: x\r\n\r\n";
    conn.recv_buf()[..req.len()].copy_from_slice(req);
    conn.handle_input(Input::Recv { now, n: req.len() })
        .unwrap();
    let Some(Output::Need(id, Need::Web(_))) = conn.poll_output() else {
        panic!("a web need first");
    };
    assert!(conn.poll_output().is_none());
    let reply = pieced(vec![
        bytes("<"),
        blob(a, 0..3),
        bytes(""),
        blob(b, 5..5),
        blob(b, 1..4),
        bytes(">"),
    ]);
    conn.handle_input(Input::Reply { now, id, reply }).unwrap();
    let mut sent: Vec<Sent> = Vec::new();
    let mut record = None;
    while let Some(out) = conn.poll_output() {
        match out {
            Output::Transmit(t) => {
                assert!(!t.is_empty(), "an empty transmit");
                match sent.last_mut() {
                    Some(Sent::Text(prev)) => prev.extend_from_slice(&t),
                    _ => sent.push(Sent::Text(t.to_vec())),
                }
            }
            Output::SendBlob { blob, range } => sent.push(Sent::Blob(blob, range)),
            Output::Done(r) => record = Some(r),
            other => panic!("unexpected {other:?}"),
        }
    }
    let Some(Sent::Text(first)) = sent.first_mut() else {
        panic!("the head first: {sent:?}");
    };
    let head_end = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8(first.drain(..head_end).collect()).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nContent-Length: 8\r\n"), "{head}");
    assert!(head.contains("\r\nAccept-Ranges: bytes\r\n"), "{head}");
    assert_eq!(
        sent,
        [
            Sent::Text(b"<".to_vec()),
            Sent::Blob(a, 0..3),
            Sent::Blob(b, 1..4),
            Sent::Text(b">".to_vec()),
        ]
    );
    let record = record.expect("the request is recorded");
    assert_eq!(
        (record.route, record.status, record.bytes_out),
        ("web", 200, 8)
    );
    // Kept alive: ready for the next request.
    assert!(!conn.is_closed() && conn.wants_read());
}

#[test]
fn a_pieced_response_keeps_the_connection_for_pipelined_requests() {
    let mut h = serving(|h| {
        let d = h.store.insert_blob(&repo(), b"0123456789");
        let handle = h.store.handle_of(&d);
        vec![
            bytes("tar:"),
            blob(handle, 2..6),
            WebPiece::Bytes(Bytes::from(vec![b'.'; 70 * 1024])),
            blob(handle, 0..0),
            blob(handle, 9..10),
        ]
    });
    h.piece = 7;
    let mut want = b"tar:2345".to_vec();
    want.extend_from_slice(&[b'.'; 70 * 1024]);
    want.push(b'9');
    let reqs = [
        Request::get("/download"),
        Request::get("/v2/"),
        Request::get("/download"),
        Request::get("/other"),
    ];
    let mut stream = Vec::new();
    for r in &reqs {
        stream.extend_from_slice(&r.to_bytes());
    }
    let rs = h.send_raw(&stream, &[false; 4]);
    let got: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(got, [200, 200, 200, 200]);
    for r in [&rs[0], &rs[2]] {
        assert_eq!(
            r.header("Content-Length"),
            Some(want.len().to_string().as_str())
        );
        assert_eq!(r.header("Content-Type"), Some("application/x-tar"));
        assert!(r.body == want, "the pieces' bytes in order");
    }
    assert_eq!(rs[3].body, b"GET /other 0");
    let out: Vec<u64> = h.records.iter().map(|r| r.bytes_out).collect();
    assert_eq!(out[0], want.len() as u64);
    assert_eq!(out[2], want.len() as u64);
    assert!(!h.closed);
}

#[test]
fn a_head_of_a_pieced_response_sends_the_head_alone() {
    let mut h = serving(|h| {
        let d = h.store.insert_blob(&repo(), b"0123456789");
        let handle = h.store.handle_of(&d);
        vec![bytes("ab"), blob(handle, 0..10)]
    });
    let r = h.send(&Request::head("/download"));
    assert_eq!((r.status, r.header("Content-Length")), (200, Some("12")));
    assert!(r.body.is_empty());
    assert_eq!(h.records[0].bytes_out, 0);
    // Nothing but the head went out: the next response parses right after it.
    let r = h.send(&Request::get("/download"));
    assert_eq!((r.status, &r.body[..]), (200, &b"ab0123456789"[..]));
    let (rs, used) = parse_responses(&h.wire, &h.heads);
    assert_eq!((rs.len(), used), (2, h.wire.len()));
    assert!(!h.closed);
}
