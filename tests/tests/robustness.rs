//! Hostile and broken clients: each one costs only its own connection, never the server or
//! another client; limits answer with the right status; failed uploads leave nothing behind.

use berth_tests::Expect as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use berth_tests::content::{self, Blob, Image, OCI_MANIFEST};
use berth_tests::digest::sha256_digest;
use berth_tests::http::{with_query, Conn};
use berth_tests::{Registry, Request};

const NAME: &str = "e2e/tests/robust/repo";

/// The status of the first response in `bytes`, if any.
fn first_status(bytes: &[u8]) -> Option<u16> {
    let mut r = berth_client::Reader::new(bytes, 0, 0);
    r.read_head(false).ok().map(|h| h.status)
}

#[test]
fn malformed_http_closes_only_that_connection() {
    let reg = Registry::start();
    // A client that stays connected (keep-alive) through all the abuse.
    let mut good = Conn::connect(reg.addr(), Duration::from_secs(10)).unwrap();
    let ping = Request::get("/v2/").header("Authorization", &reg.auth_header());
    good.send(&ping).unwrap();

    let long_header = format!(
        "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let many_headers = format!(
        "GET /v2/ HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "X-H: v\r\n".repeat(10_000)
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage request line", b"HELLO THERE\r\n\r\n".to_vec()),
        ("binary noise", content::random_bytes(512)),
        ("header without colon", b"GET /v2/ HTTP/1.1\r\nHost x\r\n\r\n".to_vec()),
        ("bad HTTP version", b"GET /v2/ HTTP/9.9\r\nHost: x\r\n\r\n".to_vec()),
        ("negative Content-Length", b"PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".to_vec()),
        ("two different Content-Lengths", b"PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec()),
        ("bad chunk size", format!("PATCH /v2/{NAME}/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n").into_bytes()),
        ("1 MiB header", long_header.into_bytes()),
        ("10 000 headers", many_headers.into_bytes()),
    ];
    for (what, bytes) in cases {
        let mut s = TcpStream::connect(reg.addr()).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(&bytes); // the server may close before reading it all
        let mut got = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                // A timeout means the server kept the connection open; a reset means closed.
                Err(e) => {
                    break !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                }
            }
        };
        if let Some(status) = first_status(&got) {
            assert!(
                (400..500).contains(&status) || status == 505,
                "{what}: answered {status}, want a 4xx (or 505):\n{}",
                String::from_utf8_lossy(&got)
            );
        }
        assert!(closed, "{what}: connection left open after malformed input");
        // The well-behaved client carries on, on its same connection.
        let r = good
            .send(&ping)
            .unwrap_or_else(|e| panic!("after {what}: good client failed: {e}"));
        assert_eq!(r.status, 200, "after {what}");
    }
    // And new connections still work.
    let mut c = reg.client();
    c.get("/v2/").expect(200);
}

/// skopeo, podman and docker try HTTPS first on an insecure registry and fall back to plain
/// HTTP only once the TLS attempt fails. A ClientHello can never start an HTTP request (its
/// first byte, 0x16, is not a token character), so the server must refuse it at once rather
/// than wait for a `CRLF CRLF` that never comes: otherwise every client command waits out
/// its TLS handshake timeout (10 s in Go) before falling back.
/// A complete, well-formed TLS ClientHello (one record), shaped like those of Go's
/// crypto/tls and curl: like theirs it contains `\n` bytes (the supported_groups extension
/// is type 0x000a) but no blank line.
fn client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03]; // legacy_version TLS 1.2
    body.extend_from_slice(&content::random_bytes(32)); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x04, 0x13, 0x01, 0xc0, 0x2f]); // two cipher suites
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let ext: Vec<u8> = [
        &[0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x1d][..], // supported_groups: x25519
        &[0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04][..],       // supported_versions: 1.3
        &[0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03][..], // signature_algorithms
    ]
    .concat();
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![0x01]; // ClientHello
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01]; // handshake record, TLS 1.0 for compatibility
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[test]
fn tls_client_hello_on_the_plain_port_is_refused_at_once() {
    let reg = Registry::start();
    let mut s = TcpStream::connect(reg.addr()).unwrap();
    s.write_all(&client_hello()).unwrap();
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => {
                break !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    };
    assert!(
        closed,
        "a TLS ClientHello was left waiting {:?} without an answer or a close \
         (clients then stall for their TLS handshake timeout before trying plain HTTP)",
        start.elapsed()
    );
    if let Some(status) = first_status(&got) {
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&got));
    }
}

#[test]
fn stalled_half_request_does_not_block_other_clients() {
    let reg = Registry::start();
    let mut stalled = TcpStream::connect(reg.addr()).unwrap();
    stalled
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        .unwrap();
    let mut stalled_body = TcpStream::connect(reg.addr()).unwrap();
    stalled_body
        .write_all(format!("PUT /v2/{NAME}/manifests/t HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: {OCI_MANIFEST}\r\nContent-Length: 1000\r\n\r\n{{\"schema", reg.auth_header()).as_bytes())
        .unwrap();
    let mut c = reg.client();
    let img = Image::random(1, 2000);
    let start = Instant::now();
    c.push_image(NAME, &img, "ok");
    c.assert_manifest(NAME, "ok", &img.manifest);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "push took {:?} with stalled peers",
        start.elapsed()
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let reg = Registry::start();
    let mut c = reg.client();
    let b = Blob::new("application/octet-stream", content::random_bytes(3000));
    c.push_blob(NAME, &b);
    let mut conn = Conn::connect(reg.addr(), Duration::from_secs(10)).unwrap();
    let host = reg.host();
    let auth = reg.auth_header();
    let mut all = Vec::new();
    for req in [
        Request::get("/v2/"),
        Request::head(&format!("/v2/{NAME}/blobs/{}", b.digest)),
        Request::get(&format!("/v2/{NAME}/blobs/{}", b.digest)),
        Request::get(&format!("/v2/{NAME}/blobs/{}", sha256_digest(b"none"))),
    ] {
        all.extend(req.header("Authorization", &auth).to_bytes(&host));
    }
    conn.write_raw(&all).unwrap();
    assert_eq!(conn.read(false).unwrap().status, 200);
    let h = conn.read(true).unwrap();
    assert_eq!(h.status, 200);
    assert_eq!(h.header("Content-Length"), Some("3000"));
    let g = conn.read(false).unwrap();
    assert_eq!(g.status, 200);
    assert!(g.body == b.bytes);
    assert_eq!(conn.read(false).unwrap().status, 404);
}

/// A manifest over the 4 MiB limit → 413, and the connection or the server survives.
#[test]
fn oversized_manifest_is_413() {
    let reg = Registry::start();
    let body = vec![b' '; 4 * 1024 * 1024 + 1];
    let mut conn = Conn::connect(reg.addr(), Duration::from_secs(30)).unwrap();
    let req = Request::put(&format!("/v2/{NAME}/manifests/huge"))
        .header("Authorization", &reg.auth_header())
        .header("Content-Type", OCI_MANIFEST)
        .body(body);
    let bytes = req.to_bytes(&reg.host());
    // Write from another thread: the server may answer before reading the whole body.
    let mut writer = conn.stream().try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let _ = writer.write_all(&bytes);
    });
    let r = conn
        .read(false)
        .unwrap_or_else(|e| panic!("no response to an oversized manifest: {e}"));
    assert_eq!(r.status, 413, "{r:?}");
    drop(conn);
    let _ = t.join();
    let mut c = reg.client();
    c.get(&format!("/v2/{NAME}/manifests/huge")).expect(404);
    c.get("/v2/").expect(200);
}

#[test]
fn a_client_that_writes_its_whole_oversized_manifest_first_still_reads_the_413() {
    // Python's http.client and curl send the whole body, then read: the server must not
    // reset the connection under them, and the answer names the limit.
    let reg = Registry::start();
    let body = vec![b' '; 5 * 1024 * 1024];
    let req = Request::put(&format!("/v2/{NAME}/manifests/huge"))
        .header("Authorization", &reg.auth_header())
        .header("Content-Type", OCI_MANIFEST)
        .body(body);
    let mut s = TcpStream::connect(reg.addr()).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(&req.to_bytes(&reg.host()))
        .expect("the server reads a refused manifest's body instead of resetting the writer");
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .expect("the answer, then a clean close");
    let text = String::from_utf8_lossy(&got);
    assert_eq!(first_status(&got), Some(413), "{text}");
    assert!(text.contains("manifest larger than 4 MiB"), "{text}");
}

#[test]
fn unknown_upload_id_is_404_blob_upload_unknown() {
    let reg = Registry::start();
    let mut c = reg.client();
    let loc = format!(
        "/v2/{NAME}/blobs/uploads/{}",
        "0f0e0d0c-0b0a-4908-8706-050403020100"
    );
    let digest = sha256_digest(b"abc");
    for req in [
        Request::get(&loc),
        Request::patch(&loc).octets().body(b"abc".to_vec()),
        Request::put(&with_query(&loc, &format!("digest={digest}")))
            .octets()
            .body(b"abc".to_vec()),
        Request::delete(&loc),
    ] {
        let method = req.method.clone();
        let r = c.send(req);
        assert_eq!(r.status, 404, "{method} on an unknown upload:\n{r:?}");
        assert_eq!(
            r.error_codes()[0],
            "BLOB_UPLOAD_UNKNOWN",
            "{method}:\n{r:?}"
        );
    }
}

/// An upload session belongs to its repository; using it under another name must fail.
#[test]
fn upload_session_cannot_be_used_from_another_repository() {
    let reg = Registry::start();
    let mut c = reg.client();
    let loc = c.start_upload("e2e/tests/robust/one");
    let id = loc
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let other = format!("/v2/e2e/tests/robust/two/blobs/uploads/{id}");
    let bytes = b"hello".to_vec();
    let r = c.send(
        Request::put(&with_query(
            &other,
            &format!("digest={}", sha256_digest(&bytes)),
        ))
        .octets()
        .body(bytes.clone()),
    );
    assert!(
        matches!(r.status, 400 | 404),
        "foreign repository close:\n{r:?}"
    );
    c.head(&format!(
        "/v2/e2e/tests/robust/two/blobs/{}",
        sha256_digest(&bytes)
    ))
    .expect(404);
}

/// A close whose digest does not match discards the session and stores nothing.
#[test]
fn digest_mismatch_discards_the_upload() {
    let reg = Registry::start();
    let mut c = reg.client();
    let bytes = content::random_bytes(10_000);
    let loc = c.start_upload(NAME);
    let loc = c
        .send(Request::patch(&loc).octets().body(bytes.clone()))
        .expect(202)
        .location();
    let wrong = sha256_digest(b"not these bytes");
    let r = c.send(
        Request::put(&with_query(&loc, &format!("digest={wrong}"))).header("Content-Length", "0"),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.error_codes().iter().any(|c| c == "DIGEST_INVALID"),
        "{r:?}"
    );
    c.head(&format!("/v2/{NAME}/blobs/{wrong}")).expect(404);
    c.head(&format!("/v2/{NAME}/blobs/{}", sha256_digest(&bytes)))
        .expect(404);
    let r = c.get(&loc).expect(404);
    assert_eq!(r.error_codes()[0], "BLOB_UPLOAD_UNKNOWN", "{r:?}");
    // A retried close on the discarded session is refused too, even with the right digest.
    let r = c.send(
        Request::put(&with_query(
            &loc,
            &format!("digest={}", sha256_digest(&bytes)),
        ))
        .header("Content-Length", "0"),
    );
    assert_eq!(r.status, 404, "{r:?}");
}

/// Two requests writing one upload session at once: the one whose bytes no longer start
/// where the session ends gets 416 RANGE_INVALID with the session's Range (not a 500), and
/// the other completes.
#[test]
fn two_writers_on_one_session_get_a_416_not_a_500() {
    let reg = Registry::start();
    let mut c = reg.client();
    let loc = c.start_upload(NAME);
    let path = berth_tests::http::path_of(&loc);
    let head = |n: usize| {
        format!(
            "PATCH {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Range: 0-{}\r\nContent-Length: {n}\r\n\r\n",
            reg.auth_header(),
            n - 1
        )
    };
    let mut a = Conn::connect(reg.addr(), Duration::from_secs(30)).unwrap();
    let mut b = Conn::connect(reg.addr(), Duration::from_secs(30)).unwrap();
    a.write_raw(head(20).as_bytes()).unwrap();
    b.write_raw(head(20).as_bytes()).unwrap();
    a.write_raw(&[b'a'; 10]).unwrap();
    // Once A's first bytes are in the session, B's start at the wrong place.
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.get(&loc).header("Range") != Some("0-9") {
        assert!(Instant::now() < deadline, "A's first bytes never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    b.write_raw(&[b'b'; 10]).unwrap();
    let rb = b.read(false).unwrap();
    assert_eq!(rb.status, 416, "{rb:?}");
    assert_eq!(rb.error_codes(), ["RANGE_INVALID"]);
    assert_eq!(rb.header("Range"), Some("0-9"));
    a.write_raw(&[b'a'; 10]).unwrap();
    let ra = a.read(false).unwrap();
    assert_eq!(
        (ra.status, ra.header("Range")),
        (202, Some("0-19")),
        "{ra:?}"
    );
    // The session holds A's bytes only, and finishes as them.
    let d = sha256_digest(&[b'a'; 20]);
    c.send(Request::put(&with_query(&loc, &format!("digest={d}"))).header("Content-Length", "0"))
        .expect(201);
}

/// A chunk whose Content-Length disagrees with its Content-Range is refused without appending.
#[test]
fn chunk_length_disagreeing_with_its_range_is_refused_and_not_appended() {
    let reg = Registry::start();
    let mut c = reg.client();
    let loc = c.start_upload(NAME);
    let r = c.send(
        Request::patch(&loc)
            .octets()
            .header("Content-Range", "0-99")
            .body(vec![7u8; 50]),
    );
    assert!(matches!(r.status, 400 | 416), "{r:?}");
    if r.closes() {
        c = reg.client();
    }
    let s = c.get(&loc).expect(204);
    let range = s.must_header("Range");
    assert!(
        range == "0-0" || range == "0--1" || range.starts_with("0-"),
        "{s:?}"
    );
    // Whatever the empty-session form, nothing of the refused chunk may count: a
    // 50-byte chunk at 0 must now be accepted as the first bytes.
    c.send(
        Request::patch(&loc)
            .octets()
            .header("Content-Range", "0-49")
            .body(vec![7u8; 50]),
    )
    .expect(202);
}

#[test]
fn invalid_repository_names_are_400_name_invalid() {
    let reg = Registry::start();
    let mut c = reg.client();
    for name in [
        "Upper/case",
        "trailing-/x",
        "a//b",
        "-lead/x",
        "a/b..c",
        "dots../x",
        "a/_b",
    ] {
        let r = c.send(
            Request::post(&format!("/v2/{name}/blobs/uploads/")).header("Content-Length", "0"),
        );
        assert_eq!(r.status, 400, "name {name:?}:\n{r:?}");
        assert_eq!(r.error_codes()[0], "NAME_INVALID", "name {name:?}:\n{r:?}");
        if r.closes() {
            c = reg.client();
        }
    }
    // Components called like route words are still names (routing from the right, §1.1).
    let b = Blob::new("application/octet-stream", content::random_bytes(100));
    c.push_blob("e2e/tests/blobs/manifests/tags", &b);
    c.assert_blob("e2e/tests/blobs/manifests/tags", &b);
}

#[test]
fn invalid_tags_are_refused() {
    let reg = Registry::start();
    let mut c = reg.client();
    let img = Image::random(1, 64);
    for b in img.blobs() {
        c.push_blob(NAME, b);
    }
    let long = "t".repeat(129);
    for tag in [".dot", "-dash", long.as_str()] {
        let r = c.send(
            Request::put(&format!("/v2/{NAME}/manifests/{tag}"))
                .header("Content-Type", OCI_MANIFEST)
                .body(img.manifest.bytes.clone()),
        );
        assert_eq!(r.status, 400, "tag {tag:?}:\n{r:?}");
    }
    c.put_manifest(NAME, &"t".repeat(128), &img.manifest);
}

/// Several clients pushing and pulling at once all get their own bytes back.
#[test]
fn concurrent_pushes_and_pulls_do_not_interfere() {
    let reg = Registry::start();
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let mut c = reg.client();
            std::thread::spawn(move || {
                let name = format!("e2e/tests/concurrent/app{i}");
                let img = Image::random(2, 200_000);
                c.push_image(&name, &img, "v1");
                c.push_image("e2e/tests/concurrent/shared", &img, &format!("t{i}"));
                c.assert_manifest(&name, "v1", &img.manifest);
                for b in img.blobs() {
                    c.assert_blob(&name, b);
                    c.assert_blob("e2e/tests/concurrent/shared", b);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let mut c = reg.client();
    let tags = c
        .get("/v2/e2e/tests/concurrent/shared/tags/list")
        .expect(200)
        .json();
    assert_eq!(tags["tags"].as_array().unwrap().len(), 6, "{tags}");
}

/// A client that disconnects mid-upload leaves the registry able to take the same blob.
#[test]
fn client_vanishing_mid_patch_leaves_the_session_recoverable_or_unknown() {
    let reg = Registry::start();
    let mut c = reg.client();
    let bytes = content::random_bytes(1 << 20);
    let digest = sha256_digest(&bytes);
    let loc = c.start_upload(NAME);
    {
        let mut conn = Conn::connect(reg.addr(), Duration::from_secs(10)).unwrap();
        let req = Request::patch(&loc)
            .header("Authorization", &reg.auth_header())
            .octets()
            .body(bytes.clone());
        let wire = req.to_bytes(&reg.host());
        conn.write_raw(&wire[..wire.len() / 2]).unwrap();
        // dropped: the connection closes halfway through the body
    }
    std::thread::sleep(Duration::from_millis(300));
    let s = c.get(&loc);
    assert!(
        matches!(s.status, 204 | 404),
        "status after a vanished client:\n{s:?}"
    );
    c.head(&format!("/v2/{NAME}/blobs/{digest}")).expect(404);
    // A fresh upload of the same blob works.
    let blob = Blob::new("application/octet-stream", bytes);
    c.push_blob(NAME, &blob);
    c.assert_blob(NAME, &blob);
}
