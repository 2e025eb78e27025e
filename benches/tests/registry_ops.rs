//! The load generator's requests against a small in-process registry that checks what it
//! receives the way spec §5.6 requires (the digest of the whole body), answers with
//! absolute `Location`s and chunked manifests as Distribution does, and serves blobs back.
//! Anonymous like Distribution in the comparison, or private like Berth: then every request,
//! `/v2/` included, needs the one `Authorization` value it was started with (spec §9.1).

use berth_benches::client::Sink;
use berth_benches::credentials::basic_authorization;
use berth_benches::payload::{sha256_digest, Payload};
use berth_benches::registry::{self, Extra, OpError, SmallImage, OCI_MANIFEST};
use berth_benches::target::Target;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

#[derive(Default)]
struct State {
    blobs: HashMap<String, Vec<u8>>,
    manifests: HashMap<String, Vec<u8>>,
    next_upload: u64,
}

fn spawn_registry() -> Target {
    spawn_registry_requiring(None)
}

/// A registry that answers 401 to any request whose `Authorization` is not `auth`.
fn spawn_registry_requiring(auth: Option<String>) -> Target {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let state = Arc::new(Mutex::new(State::default()));
    thread::spawn(move || {
        for s in l.incoming() {
            let (s, state, auth) = (s.unwrap(), state.clone(), auth.clone());
            thread::spawn(move || serve(s, addr.to_string(), state, auth));
        }
    });
    Target::parse(&format!("http://{addr}")).unwrap()
}

fn serve(mut s: TcpStream, authority: String, state: Arc<Mutex<State>>, auth: Option<String>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let (method, path, headers, used) = loop {
            let mut hs = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut hs);
            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                let headers: Vec<(String, String)> = req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                break (
                    req.method.unwrap().to_string(),
                    req.path.unwrap().to_string(),
                    headers,
                    n,
                );
            }
            let mut b = [0u8; 65536];
            match s.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&b[..n]),
            }
        };
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        while buf.len() < used + len {
            let mut b = vec![0u8; 1 << 20];
            let n = s.read(&mut b).unwrap();
            assert!(n > 0, "client closed mid-body");
            buf.extend_from_slice(&b[..n]);
        }
        let body: Vec<u8> = buf[used..used + len].to_vec();
        buf.drain(..used + len);
        let accept = headers
            .iter()
            .find(|(n, _)| n == "accept")
            .map(|(_, v)| v.clone());
        let presented = headers
            .iter()
            .find(|(n, _)| n == "authorization")
            .map(|(_, v)| v.as_str());
        let (status, extra, out, chunked) = match &auth {
            Some(want) if presented != Some(want.as_str()) => (
                401,
                "WWW-Authenticate: Basic realm=\"fake\"\r\n".to_string(),
                br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_vec(),
                false,
            ),
            _ => route(&method, &path, accept, body, &authority, &state),
        };
        let mut head = format!("HTTP/1.1 {status} X\r\n{extra}");
        if chunked {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            let mut wire = head.into_bytes();
            for piece in out.chunks(100) {
                wire.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                wire.extend_from_slice(piece);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            s.write_all(&wire).unwrap();
        } else {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", out.len()));
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(&out).unwrap();
        }
    }
}

fn route(
    method: &str,
    path: &str,
    accept: Option<String>,
    body: Vec<u8>,
    authority: &str,
    state: &Mutex<State>,
) -> (u16, String, Vec<u8>, bool) {
    let mut st = state.lock().unwrap();
    let (p, query) = path.split_once('?').unwrap_or((path, ""));
    match method {
        "GET" if p == "/v2/" => (200, String::new(), b"{}".to_vec(), false),
        "POST" if p.ends_with("/blobs/uploads/") => {
            st.next_upload += 1;
            let loc = format!(
                "http://{authority}{p}{}?_state=s{}",
                st.next_upload, st.next_upload
            );
            (202, format!("Location: {loc}\r\n"), vec![], false)
        }
        "PUT" if p.contains("/blobs/uploads/") => {
            assert!(
                query.starts_with("_state="),
                "the upload URL's own query is kept: {query}"
            );
            let want = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("digest="))
                .unwrap();
            if sha256_digest(&body) != want {
                return (
                    400,
                    String::new(),
                    br#"{"errors":[{"code":"DIGEST_INVALID"}]}"#.to_vec(),
                    false,
                );
            }
            st.blobs.insert(want.to_string(), body);
            (
                201,
                format!("Docker-Content-Digest: {want}\r\n"),
                vec![],
                false,
            )
        }
        "GET" if p.contains("/blobs/") => match st.blobs.get(p.rsplit('/').next().unwrap()) {
            Some(b) => (200, String::new(), b.clone(), false),
            None => (404, String::new(), vec![], false),
        },
        "PUT" if p.contains("/manifests/") => {
            st.manifests.insert(p.to_string(), body);
            (201, String::new(), vec![], false)
        }
        "GET" if p.contains("/manifests/") => {
            // Distribution hides OCI manifests from clients that do not accept them.
            match (st.manifests.get(p), accept.as_deref() == Some(OCI_MANIFEST)) {
                (Some(m), true) => (200, String::new(), m.clone(), true),
                _ => (404, String::new(), vec![], false),
            }
        }
        _ => (405, String::new(), vec![], false),
    }
}

#[test]
fn pushed_blobs_arrive_whole_under_their_digests_and_pull_back_at_full_length() {
    let t = spawn_registry();
    let mut c = berth_benches::client::connect(&t).unwrap();
    let none = Extra::default();
    assert_eq!(registry::ping(&mut c, &none).unwrap(), 200);
    let p = Payload::new(300 << 10, 3, 11);
    for i in 0..3 {
        registry::push_blob(&mut c, &none, "a/b/c", p.digest(i), &p.parts(i)).unwrap();
    }
    for i in 0..3 {
        let n = registry::pull_blob(&mut c, &none, "a/b/c", p.digest(i), 300 << 10).unwrap();
        assert_eq!(n, 300 << 10);
    }
    assert_eq!(
        c.connects, 1,
        "every request reused one keep-alive connection"
    );
}

#[test]
fn a_wrong_digest_or_a_short_blob_is_reported_not_measured() {
    let t = spawn_registry();
    let mut c = berth_benches::client::connect(&t).unwrap();
    let none = Extra::default();
    let wrong = sha256_digest(b"something else");
    let e = registry::push_blob(&mut c, &none, "a/b/c", &wrong, &[b"data"]).unwrap_err();
    assert!(matches!(e, OpError::Unexpected { status: 400, .. }), "{e}");
    let d = sha256_digest(b"data");
    registry::push_blob(&mut c, &none, "a/b/c", &d, &[b"data"]).unwrap();
    let e = registry::pull_blob(&mut c, &none, "a/b/c", &d, 5).unwrap_err();
    assert!(e.to_string().contains("got 4 body bytes, want 5"), "{e}");
}

#[test]
fn the_small_image_pushes_and_its_manifest_comes_back_by_tag() {
    let t = spawn_registry();
    let mut c = berth_benches::client::connect(&t).unwrap();
    let none = Extra::default();
    let img = SmallImage::new(5);
    img.push(&mut c, &none, "a/b/c", "bench").unwrap();
    let req = registry::manifest_get_request(&c, &none, "a/b/c", "bench");
    // Pipelined: two requests in one write, two responses in order.
    c.send_raw(&req.repeat(2)).unwrap();
    for _ in 0..2 {
        let r = c.read_response(false, Sink::Keep).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, img.manifest.as_slice())
        );
    }
}

#[test]
fn a_private_registry_refuses_anonymous_requests_and_serves_the_basic_token_holder() {
    let t = spawn_registry_requiring(Some(basic_authorization("s3cret")));
    let mut c = berth_benches::client::connect(&t).unwrap();
    let none = Extra::default();
    assert_eq!(registry::ping(&mut c, &none).unwrap(), 401);
    let e = registry::start_upload(&mut c, &none, "bench/load/app").unwrap_err();
    assert!(matches!(e, OpError::Unexpected { status: 401, .. }), "{e}");

    let mut wrong = Extra::default();
    wrong.add_basic_token("other").unwrap();
    assert_eq!(registry::ping(&mut c, &wrong).unwrap(), 401);

    let mut creds = Extra::default();
    creds.add_basic_token("s3cret").unwrap();
    assert_eq!(registry::ping(&mut c, &creds).unwrap(), 200);
    let p = Payload::new(70 << 10, 1, 9);
    registry::push_blob(&mut c, &creds, "bench/load/app", p.digest(0), &p.parts(0)).unwrap();
    let n = registry::pull_blob(&mut c, &creds, "bench/load/app", p.digest(0), 70 << 10).unwrap();
    assert_eq!(n, 70 << 10);
    // The manifest-get loop resends prebuilt request bytes: they must carry the credentials.
    let img = SmallImage::new(8);
    img.push(&mut c, &creds, "bench/load/app", "bench").unwrap();
    let req = registry::manifest_get_request(&c, &creds, "bench/load/app", "bench");
    c.send_raw(&req).unwrap();
    let r = c.read_response(false, Sink::Keep).unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, img.manifest.as_slice())
    );
    assert_eq!(c.connects, 1, "a 401 keeps the connection alive");
}

#[test]
fn a_second_authorization_is_refused_before_any_request() {
    let mut x = Extra::default();
    x.add_basic_token("a").unwrap();
    assert!(x.add_basic_token("b").is_err());
    let mut h = Extra(vec![("authorization".into(), "Bearer t".into())]);
    assert!(h.add_basic_token("a").is_err());
    assert!(Extra::default().add_basic_token("has space").is_err());
    assert!(Extra::default().add_basic_token("").is_err());
}

#[test]
fn the_storage_less_stub_answers_every_loadgen_request() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let t = Target::parse(&format!("http://{}", l.local_addr().unwrap())).unwrap();
    thread::spawn(move || berth_benches::stub::run(l));
    let mut c = berth_benches::client::connect(&t).unwrap();
    let none = Extra::default();
    assert_eq!(registry::ping(&mut c, &none).unwrap(), 200);
    let p = Payload::new((3 << 20) + 5, 1, 2);
    registry::push_blob(&mut c, &none, "a/b/c", p.digest(0), &p.parts(0)).unwrap();
    let n = registry::pull_blob(&mut c, &none, "a/b/c", p.digest(0), (3 << 20) + 5).unwrap();
    assert_eq!(n, (3 << 20) + 5);
    let img = SmallImage::new(6);
    img.push(&mut c, &none, "a/b/c", "bench").unwrap();
    let req = registry::manifest_get_request(&c, &none, "a/b/c", "bench");
    c.send_raw(&req).unwrap();
    let r = c.read_response(false, Sink::Keep).unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, img.manifest.as_slice())
    );
    assert_eq!(c.connects, 1);
}
