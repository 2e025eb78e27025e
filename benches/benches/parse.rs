//! One request through `berth_core::Connection`, bytes in to response bytes out, with every
//! `Need` answered at once by the testkit's in-memory `ModelStore`: the protocol core's cost
//! per request, without sockets or storage. The ceiling the server's manifest-GET req/s
//! (load generator) is measured against. Every request first asks `Need::Authorize`; the
//! bench grants it on the spot, so the figure is core's share (the extra need round trip
//! included) and not the server's token check.

use berth_core::testkit::ModelStore;
use berth_core::testkit::{epoch, parse_responses, Harness, Request};
use berth_core::{Auth, Connection, Input, Limits, Need, Output, Reply};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const REPO: &str = "bench/loadgen/app";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A connection and a store, driven synchronously with no per-request allocation of its
/// own (unlike `Harness`, which keeps the whole wire for its assertions).
struct Driver {
    conn: Connection,
    store: ModelStore,
    now: Instant,
}

impl Driver {
    /// Delivers one whole request and drains the connection; returns the response bytes
    /// (head, body and blob bytes) it produced, and keeps them in `wire` when given.
    fn roundtrip(&mut self, req: &[u8], mut wire: Option<&mut Vec<u8>>) -> u64 {
        let buf = self.conn.recv_buf();
        assert!(
            buf.len() >= req.len(),
            "request larger than the receive buffer"
        );
        buf[..req.len()].copy_from_slice(req);
        self.conn
            .handle_input(Input::Recv {
                now: self.now,
                n: req.len(),
            })
            .expect("the bench drives the connection correctly");
        let mut sent = 0u64;
        loop {
            let mut reply = None;
            while let Some(out) = self.conn.poll_output() {
                match out {
                    Output::Transmit(b) => {
                        sent += b.len() as u64;
                        if let Some(w) = wire.as_deref_mut() {
                            w.extend_from_slice(&b);
                        }
                    }
                    Output::SendBlob { blob, range } => {
                        sent += range.end - range.start;
                        if let Some(w) = wire.as_deref_mut() {
                            w.extend_from_slice(self.store.blob_bytes(blob, range));
                        }
                    }
                    // Not `store.answer`: the store logs every `Authorize` it answers, which
                    // would grow without bound over a bench's millions of iterations.
                    Output::Need(id, Need::Authorize(_)) => {
                        reply = Some((id, Reply::Auth(Auth::Granted { optional: true })))
                    }
                    Output::Need(id, need) => reply = Some((id, self.store.answer(&need))),
                    Output::Done(_) => {}
                    Output::Close => panic!("the connection closed during the bench"),
                }
            }
            match reply {
                Some((id, reply)) => self
                    .conn
                    .handle_input(Input::Reply {
                        now: self.now,
                        id,
                        reply,
                    })
                    .expect("the bench answers the outstanding need"),
                None => return sent,
            }
        }
    }
}

/// A store holding a config, a layer and a manifest tagged `v1`, pushed through a
/// connection as a client would; returns it with the manifest's digest and the layer's.
fn seeded_store() -> (ModelStore, String, String) {
    let mut h = Harness::new();
    let repo = berth_core::oci::RepoName::parse(REPO).expect("valid repository name");
    let config_bytes = br#"{"architecture":"amd64","os":"linux"}"#;
    let config = h.store.insert_blob(&repo, config_bytes);
    let mut layer_bytes = vec![0u8; 4096];
    berth_benches::payload::fill_random(&mut layer_bytes, 1);
    let layer = h.store.insert_blob(&repo, &layer_bytes);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer}","size":4096}}]}}"#,
        config_bytes.len()
    );
    let r = h.send(
        &Request::put(format!("/v2/{REPO}/manifests/v1"))
            .header("Content-Type", OCI_MANIFEST)
            .body(manifest.clone()),
    );
    assert_eq!(
        r.status,
        201,
        "seeding the manifest: {:?}",
        String::from_utf8_lossy(&r.body)
    );
    let digest = berth_benches::payload::sha256_digest(manifest.as_bytes());
    (std::mem::take(&mut h.store), digest, layer.to_string())
}

/// What docker sends to resolve a tag (headers as seen from docker 24 / containerd).
fn docker_manifest_get(reference: &str) -> Vec<u8> {
    format!(
        "GET /v2/{REPO}/manifests/{reference} HTTP/1.1\r\n\
         Host: 127.0.0.1:5000\r\n\
         User-Agent: docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1.0 os/linux arch/amd64 UpstreamClient(Docker-Client/24.0.7 \\(linux\\))\r\n\
         Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, */*\r\n\
         Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZXJ0aCIsImFjY2VzcyI6W3sidHlwZSI6InJlcG9zaXRvcnkifV19.c2lnbmF0dXJl\r\n\
         Accept-Encoding: gzip\r\n\
         Connection: keep-alive\r\n\r\n"
    )
    .into_bytes()
}

fn parse(c: &mut Criterion) {
    let (store, manifest_digest, layer_digest) = seeded_store();
    let cases: Vec<(&str, Vec<u8>, bool, u16)> = vec![
        (
            "ping",
            b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:5000\r\n\r\n".to_vec(),
            false,
            200,
        ),
        ("manifest_get_tag", docker_manifest_get("v1"), false, 200),
        (
            "manifest_get_digest",
            docker_manifest_get(&manifest_digest),
            false,
            200,
        ),
        (
            "blob_head",
            format!(
                "HEAD /v2/{REPO}/blobs/{layer_digest} HTTP/1.1\r\nHost: 127.0.0.1:5000\r\n\r\n"
            )
            .into_bytes(),
            true,
            200,
        ),
        (
            "manifest_get_unknown_tag",
            docker_manifest_get("nope"),
            false,
            404,
        ),
    ];
    let mut g = c.benchmark_group("core_request");
    g.throughput(Throughput::Elements(1));
    for (name, req, head, want) in cases {
        let mut d = Driver {
            conn: Connection::new(Arc::new(Limits::default()), epoch()),
            store: store.clone(),
            now: epoch(),
        };
        // Check the answer once, so the bench never measures an error page by mistake.
        let mut wire = Vec::new();
        d.roundtrip(&req, Some(&mut wire));
        let (rs, _) = parse_responses(&wire, &[head]);
        assert_eq!(rs.len(), 1, "{name}: one response");
        assert_eq!(
            rs[0].status,
            want,
            "{name}: {:?}",
            String::from_utf8_lossy(&rs[0].body)
        );
        g.bench_function(name, |b| b.iter(|| d.roundtrip(black_box(&req), None)));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = parse
}
criterion_main!(benches);
