//! The package indexer on the real binary: pushed images have their layers listed in the
//! background, each layer once however many images share it, and the queue empties; what
//! it recorded is in the store after the server stops.

// Tests wait on a real server: they read the clock and sleep.
#![allow(clippy::disallowed_methods)]

mod common;

use berth_engine::{BlobKey, Engine, EngineOptions};
use common::*;
use std::time::{Duration, Instant};

fn layer(files: &[&str]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (i, f) in files.iter().enumerate() {
        let body = format!("file {i}\n");
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, f, body.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

fn put_image(c: &mut Client, tag: &str, config: &[u8], layers: &[&[u8]]) {
    let dc = push_blob(c, config, 1);
    let descs: Vec<String> = layers
        .iter()
        .map(|l| {
            let d = push_blob(c, l, 1);
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{}}}"#,
                l.len()
            )
        })
        .collect();
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{dc}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        descs.join(",")
    );
    let r = c.request(
        "PUT",
        &format!("/v2/{REPO}/manifests/{tag}"),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        m.as_bytes(),
    );
    assert_eq!(r.status, 201, "{r:?}");
}

#[test]
fn pushed_layers_are_listed_once_each_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start(dir.path());
    let mut c = srv.client();
    let base = layer(&["etc/os-release", "usr/bin/tool"]);
    let top = layer(&["app/main", "etc/.wh.os-release"]);
    put_image(
        &mut c,
        "a",
        br#"{"os":"linux","architecture":"amd64"}"#,
        &[&base],
    );
    put_image(
        &mut c,
        "b",
        br#"{"os":"linux","architecture":"arm64"}"#,
        &[&base, &top],
    );
    let t = Instant::now();
    loop {
        let m = c.get("/metrics").text();
        let done = counter(&m, "berth_package_manifests_indexed_total");
        if done >= 2 {
            let listed = counter(&m, "berth_package_layers_listed_total");
            assert_eq!(listed, 2, "the shared layer is listed once");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{done} manifests indexed after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    srv.signal(libc::SIGTERM);
    assert!(srv.wait(Duration::from_secs(20)).success());

    let e = Engine::open(dir.path(), EngineOptions::default()).unwrap();
    assert_eq!(
        e.package_queue(10).unwrap(),
        [],
        "every manifest was worked"
    );
    let listed = |blob: &[u8]| {
        let l = e.layer_listing(&BlobKey::sha256_of(blob)).unwrap().unwrap();
        assert!(l.complete());
        l.entries()
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(&base), ["etc/os-release", "usr/bin/tool"]);
    assert_eq!(listed(&top), ["app/main"], "the whiteout is not an entry");
}
