//! `kill -9` in the middle of pushes (docs/architecture.md, "engine/"): after a restart the store is
//! consistent (`berth check`), everything acknowledged is still there with its digest, and
//! whatever was in flight is either absent (404) or complete — never half-visible.

use berth_tests::Expect as _;
use std::io::Write;
use std::time::Duration;

use berth_tests::content::{self, Blob, Image};
use berth_tests::http::{with_query, Client, Conn};
use berth_tests::{Registry, Request};

const NAME: &str = "e2e/tests/crash/app";
/// Size of the blob pushed slowly while the server is killed.
const BIG: usize = 6 * 1024 * 1024;
const PIECE: usize = 192 * 1024;

/// What the registry acknowledged (201) and must therefore keep.
#[derive(Default)]
struct Acked {
    blobs: Vec<Blob>,
    manifests: Vec<(String, Blob)>,
}

impl Acked {
    fn verify(&self, c: &mut Client) {
        for b in &self.blobs {
            let r = c.get(&format!("/v2/{NAME}/blobs/{}", b.digest));
            assert_eq!(
                r.status, 200,
                "acknowledged blob {} lost after a crash:\n{r:?}",
                b.digest
            );
            assert!(
                r.body == b.bytes,
                "acknowledged blob {} corrupted after a crash",
                b.digest
            );
        }
        for (tag, m) in &self.manifests {
            c.assert_manifest(NAME, tag, m);
            c.assert_manifest(NAME, &m.digest, m);
        }
    }
}

/// The in-flight blob must be 404 or complete and correct.
fn assert_all_or_nothing(c: &mut Client, b: &Blob) {
    let h = c.head(&format!("/v2/{NAME}/blobs/{}", b.digest));
    match h.status {
        404 => {}
        200 => {
            assert_eq!(
                h.header("Content-Length"),
                Some(b.len().to_string().as_str()),
                "half-visible blob:\n{h:?}"
            );
            let g = c.get(&format!("/v2/{NAME}/blobs/{}", b.digest)).expect(200);
            assert!(g.body == b.bytes, "in-flight blob visible with wrong bytes");
        }
        _ => panic!("in-flight blob after crash:\n{h:?}"),
    }
}

/// Restart after a kill, check the store, verify, and leave the server running.
fn recover(reg: &mut Registry, acked: &Acked, inflight: Option<&Blob>) {
    reg.start_again();
    let mut c = reg.client();
    acked.verify(&mut c);
    if let Some(b) = inflight {
        assert_all_or_nothing(&mut c, b);
    }
    drop(c);
    // `berth check` runs on a stopped store: stop gracefully, check, come back.
    reg.stop();
    reg.assert_check_clean();
    reg.start_again();
    let mut c = reg.client();
    acked.verify(&mut c);
}

/// Sends `patch` (202), kills the server at once and recovers it; returns a new client and
/// the session's location.
fn patch_then_kill_9(
    reg: &mut Registry,
    acked: &Acked,
    mut c: Client,
    patch: Request,
    inflight: &Blob,
) -> (Client, String) {
    let loc = c.send(patch).expect(202).location();
    reg.kill_9();
    drop(c);
    recover(reg, acked, Some(inflight));
    (reg.client(), loc)
}

/// The upload session at `loc` after a crash: there, holding the `len` bytes a 202
/// acknowledged. Returns its location.
#[track_caller]
fn session_after_crash(c: &mut Client, loc: &str, len: usize) -> String {
    let s = c.get(loc);
    assert_eq!(s.status, 204, "acknowledged upload session lost:\n{s:?}");
    let want = format!("0-{}", len - 1);
    assert_eq!(s.header("Range"), Some(want.as_str()), "{s:?}");
    s.location()
}

/// Closes the session at `loc` with `blob`'s digest (no more bytes): 201, and the blob reads
/// back whole.
#[track_caller]
fn close_upload(c: &mut Client, loc: &str, blob: &Blob) {
    let put = with_query(loc, &format!("digest={}", blob.digest));
    c.send(Request::put(&put).header("Content-Length", "0"))
        .expect(201);
    c.assert_blob(NAME, blob);
}

/// Sends the head and the first `pieces` pieces of a slow streamed PATCH, then returns the
/// connection (still mid-body).
fn slow_patch(reg: &Registry, loc: &str, bytes: &[u8], pieces: usize) -> Conn {
    let mut conn = Conn::connect(reg.addr(), Duration::from_secs(30)).unwrap();
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        reg.host(),
        reg.auth_header(),
        bytes.len()
    );
    conn.write_raw(head.as_bytes()).unwrap();
    for p in bytes.chunks(PIECE).take(pieces) {
        conn.stream().write_all(p).unwrap();
        conn.stream().flush().unwrap();
        std::thread::sleep(Duration::from_millis(15));
    }
    conn
}

#[test]
fn kill_9_during_pushes_loses_nothing_acknowledged_and_shows_nothing_half_written() {
    let mut reg = Registry::start();
    let mut acked = Acked::default();
    let mut c = reg.client();

    // Acknowledged baseline: an image and a few loose blobs.
    let base = Image::random(2, 300_000);
    c.push_image(NAME, &base, "base");
    acked.blobs.extend(base.blobs().cloned());
    acked.manifests.push(("base".into(), base.manifest.clone()));
    drop(c);

    let total_pieces = BIG.div_ceil(PIECE);
    // Rounds 1 and 2: killed four fifths and one fifth of the way through a slow PATCH.
    for fraction in [4, 1] {
        let big = Blob::new(content::OCI_LAYER_GZIP, content::random_bytes(BIG));
        let mut c = reg.client();
        let loc = c.start_upload(NAME);
        let _conn = slow_patch(&reg, &loc, &big.bytes, total_pieces * fraction / 5 + 1);
        reg.kill_9();
        drop(c);
        recover(&mut reg, &acked, Some(&big));
        // The upload session may be gone or resumable; either way a fresh push works.
        let mut c = reg.client();
        c.push_blob(NAME, &big);
        acked.blobs.push(big);
        acked.verify(&mut c);
    }

    // Round 3: the whole body sent and acknowledged (202), never closed; then, on a new
    // session, one chunk acknowledged and the server killed before the next.
    let big = Blob::new(content::OCI_LAYER_GZIP, content::random_bytes(BIG));
    let mut c = reg.client();
    let loc = c.start_upload(NAME);
    let patch = Request::patch(&loc).octets().body(big.bytes.clone());
    let (mut c, loc) = patch_then_kill_9(&mut reg, &acked, c, patch, &big);
    // The 202 acknowledged every byte: after recovery the session is there with all of
    // them, and closes into the blob.
    let loc = session_after_crash(&mut c, &loc, BIG);
    close_upload(&mut c, &loc, &big);
    acked.blobs.push(big);

    let chunked = Blob::new(content::OCI_LAYER_GZIP, content::random_bytes(BIG));
    let half = BIG / 2;
    let loc = c.start_upload(NAME);
    let patch = Request::patch(&loc)
        .octets()
        .header("Content-Range", &format!("0-{}", half - 1))
        .body(chunked.bytes[..half].to_vec());
    let (mut c, loc) = patch_then_kill_9(&mut reg, &acked, c, patch, &chunked);
    let loc = session_after_crash(&mut c, &loc, half);
    let r = c
        .send(
            Request::patch(&loc)
                .octets()
                .header("Content-Range", &format!("{half}-{}", BIG - 1))
                .body(chunked.bytes[half..].to_vec()),
        )
        .expect(202);
    close_upload(&mut c, &r.location(), &chunked);
    acked.blobs.push(chunked);
    drop(c);

    // Rounds 4..: the close (PUT) or a manifest PUT in flight when the server dies, at a few
    // different delays.
    for delay_ms in [0u64, 2, 10, 40] {
        let big = Blob::new(
            content::OCI_LAYER_GZIP,
            content::random_bytes(2 * 1024 * 1024),
        );
        let mut c = reg.client();
        let loc = c.start_upload(NAME);
        let mut conn = Conn::connect(reg.addr(), Duration::from_secs(30)).unwrap();
        let req = Request::put(&with_query(&loc, &format!("digest={}", big.digest)))
            .header("Authorization", &reg.auth_header())
            .octets()
            .body(big.bytes.clone());
        let _ = conn.write_raw(&req.to_bytes(&reg.host()));
        std::thread::sleep(Duration::from_millis(delay_ms));
        reg.kill_9();
        drop((c, conn));
        recover(&mut reg, &acked, Some(&big));

        // Now a manifest in flight: push its blobs (acknowledged), then kill during the PUT.
        let img = Image::random(1, 100_000);
        let mut c = reg.client();
        for b in img.blobs() {
            c.push_blob(NAME, b);
            acked.blobs.push(b.clone());
        }
        let tag = format!("inflight{delay_ms}");
        let mut conn = Conn::connect(reg.addr(), Duration::from_secs(30)).unwrap();
        let req = Request::put(&format!("/v2/{NAME}/manifests/{tag}"))
            .header("Authorization", &reg.auth_header())
            .header("Content-Type", &img.manifest.media_type)
            .body(img.manifest.bytes.clone());
        let _ = conn.write_raw(&req.to_bytes(&reg.host()));
        std::thread::sleep(Duration::from_millis(delay_ms));
        reg.kill_9();
        drop((c, conn));
        recover(&mut reg, &acked, None);
        let mut c = reg.client();
        let r = c.get(&format!("/v2/{NAME}/manifests/{tag}"));
        match r.status {
            404 => {}
            200 => assert!(
                r.body == img.manifest.bytes,
                "in-flight manifest visible with other bytes"
            ),
            _ => panic!("in-flight manifest after crash:\n{r:?}"),
        }
        // The tag, if visible, resolves to a manifest readable by digest (no dangling tag).
        if r.status == 200 {
            c.assert_manifest(NAME, &img.manifest.digest, &img.manifest);
        }
    }

    reg.stop();
    reg.assert_check_clean();
}

/// A crash right after a 201 must not lose that blob or manifest: "no 201 before fsync".
#[test]
fn acknowledged_pushes_survive_an_immediate_kill_9() {
    let mut reg = Registry::start();
    let mut acked = Acked::default();
    for round in 0..3 {
        let img = Image::random(3, 200_000);
        let mut c = reg.client();
        let tag = format!("r{round}");
        c.push_image(NAME, &img, &tag);
        reg.kill_9();
        acked.blobs.extend(img.blobs().cloned());
        acked.manifests.push((tag, img.manifest.clone()));
        drop(c);
        recover(&mut reg, &acked, None);
    }
    reg.stop();
    reg.assert_check_clean();
}

/// The crash tests lean on `berth check`; it must actually look at blob bytes, or a clean
/// check would prove nothing. Flip one byte of a stored blob on disk: check must fail.
#[test]
fn berth_check_fails_on_a_blob_corrupted_on_disk() {
    let mut reg = Registry::start();
    let mut c = reg.client();
    let blob = Blob::new(content::OCI_LAYER_GZIP, content::random_bytes(256 * 1024));
    c.push_blob(NAME, &blob);
    drop(c);
    reg.stop();
    reg.assert_check_clean();

    // Find the blob's bytes in whatever file the store keeps them and flip one in the middle.
    let needle = &blob.bytes[100_000..100_064];
    let mut flipped = false;
    let mut stack = vec![reg.data_dir()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read data dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let mut bytes = std::fs::read(&p).expect("read store file");
            if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
                bytes[at + 10] ^= 0xff;
                std::fs::write(&p, &bytes).expect("write store file");
                flipped = true;
            }
        }
    }
    assert!(
        flipped,
        "blob bytes not found verbatim anywhere under the data folder"
    );
    let out = reg.check();
    assert!(
        !out.status.success(),
        "berth check exited 0 on a store with a corrupted blob:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
