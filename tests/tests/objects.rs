//! The engine's object store client (`berth_engine::objects`) against a real three-node
//! Garage cluster: what it writes reads back byte for byte, whole, by range and streamed;
//! a multipart upload is invisible until finished and leaves nothing when aborted; listings
//! and deletes; presigned URLs that curl fetches without credentials; and its errors sorted
//! as the server will act on them (denied, not found, unreachable within the timeouts),
//! also with one Garage node down.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use berth_engine::objects::{Credentials, Objects, ObjectsConfig, ObjectsError};
use berth_tests::content::random_bytes;
use berth_tests::Garage;

fn objects(g: &Garage, node: usize) -> Objects {
    g.objects(node)
}

/// Everything an `ObjectReader` yields, checking no chunk is larger than the store's
/// own buffering would make it (the reader must stream, not collect).
fn drain(mut r: berth_engine::objects::ObjectReader) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = r.next_chunk().expect("read a chunk") {
        assert!(
            chunk.len() <= 4 << 20,
            "a {} byte chunk: not streamed",
            chunk.len()
        );
        out.extend_from_slice(&chunk);
    }
    out
}

/// `curl` of `url` (no credentials) with `extra` arguments: the status and the body.
fn curl(url: &str, extra: &[&str]) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let body = dir.path().join("body");
    let code = berth_tests::Cmd::tool("curl")
        .arg("-sS")
        .args(extra)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .arg(url)
        .run();
    (
        code.trim().to_string(),
        std::fs::read(&body).unwrap_or_default(),
    )
}

#[test]
fn objects_round_trip_whole_by_range_and_streamed() {
    let g = Garage::start(3);
    let o = objects(&g, 0);
    o.probe().expect("the bucket answers");

    let small = random_bytes(100_000);
    o.put("rt/small", small.clone()).expect("put");
    assert_eq!(o.head("rt/small").unwrap(), Some(100_000));
    assert!(o.get("rt/small").unwrap() == small);
    assert!(o.get_range("rt/small", 10..20).unwrap() == small[10..20]);
    assert!(o.get_range("rt/small", 99_990..100_000).unwrap() == small[99_990..]);
    assert!(o.get_range("rt/small", 5..5).unwrap().is_empty());
    let past = o.get_range("rt/small", 99_990..100_010).unwrap_err();
    assert!(matches!(past, ObjectsError::Other { .. }), "{past:?}");

    // Replacing is a whole new object.
    o.put("rt/small", &b"short"[..]).expect("overwrite");
    assert!(o.get("rt/small").unwrap() == b"short"[..]);
    assert_eq!(o.head("rt/small").unwrap(), Some(5));

    // Through every node: the client is one of many, the bytes are the cluster's.
    for i in 0..3 {
        assert!(
            objects(&g, i).get("rt/small").unwrap() == b"short"[..],
            "node {i}"
        );
    }

    // Streamed: a 12 MiB object whole, a range of it, and through io::Read.
    let big = random_bytes(12 << 20);
    o.put("rt/big", big.clone()).expect("put 12 MiB");
    let r = o.reader("rt/big", None).unwrap();
    assert_eq!(r.len(), 12 << 20);
    assert!(drain(r) == big, "streamed bytes differ");
    let r = o.reader("rt/big", Some(1_000_000..9_000_001)).unwrap();
    assert_eq!(r.len(), 8_000_001);
    assert!(
        drain(r) == big[1_000_000..9_000_001],
        "streamed range differs"
    );
    let mut read = Vec::new();
    o.reader("rt/big", Some(5..(12 << 20)))
        .unwrap()
        .read_to_end(&mut read)
        .expect("io::Read to the end");
    assert!(read == big[5..]);
    assert!(o
        .reader("rt/big", Some(7..7))
        .unwrap()
        .next_chunk()
        .unwrap()
        .is_none());
    assert!(
        o.reader("rt/big", Some(0..(12 << 20) + 1)).is_err(),
        "a range past the end"
    );

    // Missing objects.
    assert_eq!(o.head("rt/missing").unwrap(), None);
    let e = o.get("rt/missing").unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert!(o.reader("rt/missing", None).unwrap_err().is_not_found());
    assert!(o.get_range("rt/missing", 0..1).unwrap_err().is_not_found());

    // Keys that would be rewritten into another key are refused, not silently changed.
    for bad in ["", "/rt/x", "rt//x", "rt/x/", "rt/../x"] {
        assert!(o.put(bad, &b"x"[..]).is_err(), "key {bad:?} accepted");
    }
}

#[test]
fn objects_multipart_upload_shows_only_when_finished_and_abort_leaves_nothing() {
    let g = Garage::start(3);
    let o = objects(&g, 1);

    // 20 MiB in uneven writes: four full parts and a last short one.
    let big = random_bytes(20 << 20);
    let mut w = o.writer("mp/done").expect("start a multipart upload");
    for piece in big.chunks(1_000_003) {
        w.write(piece).expect("write");
    }
    assert_eq!(w.len(), 20 << 20);
    assert_eq!(
        o.head("mp/done").unwrap(),
        None,
        "visible before the upload was completed"
    );
    assert_eq!(w.finish().expect("complete the upload"), 20 << 20);
    assert_eq!(o.head("mp/done").unwrap(), Some(20 << 20));
    assert!(
        o.get("mp/done").unwrap() == big,
        "the multipart object differs"
    );
    assert!(
        o.get_range("mp/done", (5 << 20) - 3..(5 << 20) + 3)
            .unwrap()
            == big[(5 << 20) - 3..(5 << 20) + 3]
    );

    // One big write is cut into parts too.
    let mut w = o.writer("mp/one-write").unwrap();
    w.write(&big[..11 << 20]).unwrap();
    assert_eq!(w.finish().unwrap(), 11 << 20);
    assert!(o.get("mp/one-write").unwrap() == big[..11 << 20]);

    // A small object through the writer: one short part.
    let mut w = o.writer("mp/small").unwrap();
    w.write(b"tiny").unwrap();
    assert_eq!(w.finish().unwrap(), 4);
    assert!(o.get("mp/small").unwrap() == b"tiny"[..]);

    // Aborted after a part was sent, and dropped unfinished: neither shows, and no
    // upload stays open in the bucket.
    let mut w = o.writer("mp/aborted").unwrap();
    w.write(&big[..7 << 20]).unwrap();
    w.abort().expect("abort");
    let mut w = o.writer("mp/dropped").unwrap();
    w.write(&big[..6 << 20]).unwrap();
    drop(w);
    for key in ["mp/aborted", "mp/dropped"] {
        assert_eq!(o.head(key).unwrap(), None, "{key} visible");
    }
    let keys: Vec<String> = o
        .list("mp")
        .unwrap()
        .map(|e| e.expect("list").key)
        .collect();
    assert_eq!(keys, ["mp/done", "mp/one-write", "mp/small"]);
    let uploads = g.curl(0, "?uploads").run();
    assert!(
        !uploads.contains("mp/aborted") && !uploads.contains("mp/dropped"),
        "a multipart upload is still open:\n{uploads}"
    );
}

#[test]
fn objects_list_delete_and_presigned_urls() {
    let g = Garage::start(3);
    let o = objects(&g, 2);
    let before = SystemTime::now() - Duration::from_secs(60);
    for (k, n) in [("ls/b", 2), ("ls/a", 1), ("ls/sub/c", 3), ("lsx/d", 4)] {
        o.put(k, vec![b'x'; n]).unwrap();
    }
    let listed: Vec<(String, u64)> = o
        .list("ls")
        .unwrap()
        .map(|e| {
            let e = e.expect("list");
            assert!(e.last_modified > before, "{e:?}");
            (e.key, e.len)
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("ls/a".to_string(), 1),
            ("ls/b".to_string(), 2),
            ("ls/sub/c".to_string(), 3)
        ]
    );
    assert_eq!(
        o.list("ls/").unwrap().count(),
        3,
        "a trailing / is the same folder"
    );
    assert_eq!(o.list("").unwrap().count(), 4, "the whole bucket");
    assert_eq!(o.list("none").unwrap().count(), 0);

    o.delete("ls/b").unwrap();
    o.delete("ls/b").expect("deleting what is gone is fine");
    o.delete("ls/never")
        .expect("deleting what never was is fine");
    let keys: Vec<String> = o.list("ls").unwrap().map(|e| e.unwrap().key).collect();
    assert_eq!(keys, ["ls/a", "ls/sub/c"]);

    // A presigned GET: no credentials needed, ranges work, it expires.
    let body = random_bytes(50_000);
    o.put("signed/blob", body.clone()).unwrap();
    let url = o
        .signed_get_url("signed/blob", Duration::from_secs(300))
        .unwrap();
    assert!(url.starts_with(&g.endpoint(2)), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
    assert!(!url.contains(g.secret()), "the secret is in the URL");
    let (code, got) = curl(&url, &[]);
    assert_eq!(code, "200");
    assert!(got == body, "presigned GET returned other bytes");
    let (code, got) = curl(&url, &["-H", "Range: bytes=100-199"]);
    assert_eq!(code, "206");
    assert!(
        got == body[100..200],
        "presigned ranged GET returned other bytes"
    );
    let (code, _) = curl(&format!("{url}x"), &[]);
    assert_eq!(code, "403", "a tampered signature is refused");
    // The signature covers the host: the same URL sent to another node is refused, so a
    // presigned URL must be made for the endpoint its holder will reach.
    let (code, _) = curl(&url.replace(&g.endpoint(2), &g.endpoint(0)), &[]);
    assert_eq!(
        code, "403",
        "a URL signed for one host was accepted by another"
    );
    let missing = o
        .signed_get_url("signed/missing", Duration::from_secs(60))
        .unwrap();
    assert_eq!(curl(&missing, &[]).0, "404");
}

#[test]
fn objects_wrong_credentials_are_denied_without_showing_them() {
    let g = Garage::start(3);
    for (id, secret) in [
        (g.key_id().to_string(), "0".repeat(64)),
        (
            "GK000000000000000000000000".to_string(),
            g.secret().to_string(),
        ),
    ] {
        let mut c = ObjectsConfig::parse(&g.url(0)).unwrap();
        c.credentials = Some(Credentials::new(id.clone(), secret.clone()));
        let o = Objects::open(c).unwrap();
        for e in [
            o.put("denied/x", &b"x"[..]).unwrap_err(),
            o.get("denied/x").unwrap_err(),
            o.probe().unwrap_err(),
            o.list("denied").unwrap().next().unwrap().unwrap_err(),
            o.writer("denied/y").map(|_| ()).unwrap_err(),
        ] {
            assert!(matches!(e, ObjectsError::Denied { .. }), "{e:?}");
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(&secret), "the secret is shown: {shown}");
            assert!(shown.contains("denied"), "{shown}");
        }
    }
    // A bucket that does not exist.
    let mut c =
        ObjectsConfig::parse(&g.url(0).replace("s3://berth?", "s3://no-such-bucket?")).unwrap();
    c.credentials = Some(Credentials::new(g.key_id(), g.secret()));
    let e = Objects::open(c).unwrap().probe().unwrap_err();
    assert!(
        matches!(
            e,
            ObjectsError::NotFound { .. } | ObjectsError::Denied { .. }
        ),
        "{e:?}"
    );
}

#[test]
fn objects_unreachable_endpoint_fails_within_the_timeouts() {
    let port = berth_tests::registry::free_port().port();
    let mut c = ObjectsConfig::parse(&format!(
        "s3://berth?endpoint=http://127.0.0.1:{port}&region=garage"
    ))
    .unwrap();
    c.credentials = Some(Credentials::new("GKx", "secret-not-shown"));
    let o = Objects::open(berth_tests::garage::impatient(c)).unwrap();
    let started = Instant::now();
    for e in [
        o.put("u/x", &b"x"[..]).unwrap_err(),
        o.get("u/x").unwrap_err(),
        o.head("u/x").unwrap_err(),
        o.delete("u/x").unwrap_err(),
        o.probe().unwrap_err(),
        o.writer("u/y").map(|_| ()).unwrap_err(),
    ] {
        assert!(e.is_unreachable(), "{e:?}");
        let shown = e.to_string();
        assert!(
            shown.contains(&format!("127.0.0.1:{port}")),
            "names no endpoint: {shown}"
        );
        assert!(!shown.contains("secret-not-shown"), "{shown}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "six requests took {:?}",
        started.elapsed()
    );
    // A presigned URL needs no connection.
    assert!(o.signed_get_url("u/x", Duration::from_secs(60)).is_ok());
}

#[test]
fn objects_work_through_another_node_with_one_garage_node_down() {
    let mut g = Garage::start(3);
    let o = objects(&g, 1);
    let before = random_bytes(3 << 20);
    o.put("down/before", before.clone()).unwrap();

    g.stop_node(0);
    let dead = objects(&g, 0);
    let e = dead.head("down/before").unwrap_err();
    assert!(e.is_unreachable(), "{e:?}");

    assert!(o.get("down/before").unwrap() == before);
    let during = random_bytes(11 << 20);
    let mut w = o.writer("down/during").unwrap();
    w.write(&during).unwrap();
    assert_eq!(w.finish().unwrap(), 11 << 20);
    assert!(drain(o.reader("down/during", Some(100..(11 << 20))).unwrap()) == during[100..]);
    o.put("down/small", &b"small"[..]).unwrap();
    assert_eq!(o.list("down").unwrap().count(), 3);
    o.delete("down/small").unwrap();
    let url = o
        .signed_get_url("down/during", Duration::from_secs(60))
        .unwrap();
    let (code, got) = curl(&url, &["-H", "Range: bytes=0-9"]);
    assert_eq!((code.as_str(), &got[..]), ("206", &during[..10]));

    // Back up, the restarted node serves what was written while it was down.
    g.start_node(0);
    let back = objects(&g, 0);
    assert!(back.get("down/during").unwrap() == during);
    assert_eq!(back.head("down/small").unwrap(), None);
}
