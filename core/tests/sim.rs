//! Many clients pushing and pulling through one `ModelStore`, with seeded random byte
//! delivery, late storage replies and virtual time. A failure prints its seed;
//! `BERTH_SIM_SEED=<seed>` replays it.

mod common;

use berth_core::testkit::sim::Step;
use berth_core::testkit::{Request, Response, Sim};
use berth_core::Limits;
use common::{sha256, OCI_MANIFEST};

fn location(prev: Option<&Response>) -> String {
    prev.and_then(|r| r.header("Location"))
        .unwrap_or("/v2/missing/blobs/uploads/none")
        .to_owned()
}

/// A client that pushes a layer (POST, chunked PATCH, PUT), a config (single POST), a
/// manifest, then pulls them back.
fn pusher(i: usize, shared: &'static [u8]) -> (Vec<Step>, Vec<u16>) {
    let name = format!("sim/client{i}");
    let layer: Vec<u8> = (0..(500 + i * 37)).map(|j| (j * (i + 3)) as u8).collect();
    let ld = sha256(&layer).to_string();
    let sd = sha256(shared).to_string();
    let config = format!(r#"{{"client":{i}}}"#).into_bytes();
    let cd = sha256(&config).to_string();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{ld}","size":{}}},{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{sd}","size":{}}}]}}"#,
        config.len(),
        layer.len(),
        shared.len()
    );
    let n = name.clone();
    let l1 = layer.clone();
    let n2 = name.clone();
    let n3 = name.clone();
    let n4 = name.clone();
    let n5 = name.clone();
    let n6 = name.clone();
    let n7 = name.clone();
    let m = manifest.clone();
    let (ld2, sd2) = (ld.clone(), sd.clone());
    let steps: Vec<Step> = vec![
        Box::new(move |_| Request::post(format!("/v2/{n}/blobs/uploads/"))),
        Box::new(move |prev| {
            Request::patch(location(prev))
                .body(l1.clone())
                .chunked(11 + i)
        }),
        Box::new(move |prev| Request::put(format!("{}?digest={ld}", location(prev)))),
        Box::new(move |_| {
            Request::post(format!("/v2/{n2}/blobs/uploads/?digest={cd}")).body(config.clone())
        }),
        Box::new(move |_| {
            Request::post(format!("/v2/{n3}/blobs/uploads/?digest={sd2}")).body(shared.to_vec())
        }),
        Box::new(move |_| {
            Request::put(format!("/v2/{n4}/manifests/v1"))
                .header("Content-Type", OCI_MANIFEST)
                .body(m.clone())
        }),
        Box::new(move |_| Request::get(format!("/v2/{n5}/manifests/v1"))),
        Box::new(move |_| Request::get(format!("/v2/{n6}/blobs/{ld2}"))),
        Box::new(move |_| Request::head(format!("/v2/{n7}/blobs/{sd}"))),
    ];
    (steps, vec![202, 202, 201, 201, 201, 201, 200, 200, 200])
}

fn run(seed: u64, clients: usize) {
    static SHARED: &[u8] = b"a layer every client pushes: stored once";
    let mut sim = Sim::new(seed, Limits::default());
    sim.max_piece = 1 + (seed as usize % 97);
    let mut expect = Vec::new();
    for i in 0..clients {
        let (steps, statuses) = pusher(i, SHARED);
        sim.add_client(steps);
        expect.push(statuses);
    }
    sim.run(2_000_000);
    for (i, c) in sim.conns.iter().enumerate() {
        let got: Vec<u16> = c.responses.iter().map(|r| r.status).collect();
        assert_eq!(got, expect[i], "client {i}, seed {}", sim.seed);
        assert_eq!(c.records.len(), expect[i].len());
        let layer: Vec<u8> = (0..(500 + i * 37)).map(|j| (j * (i + 3)) as u8).collect();
        assert_eq!(
            c.responses[7].body, layer,
            "client {i} pulls its layer back"
        );
        assert_eq!(
            c.responses[8].header("Content-Length"),
            Some(SHARED.len().to_string().as_str())
        );
    }
    assert_eq!(sim.store.open_uploads(), 0);
}

#[test]
fn concurrent_clients_push_and_pull_through_one_store() {
    for seed in 0..8 {
        run(seed, 4);
    }
}

#[test]
fn idle_clients_are_closed_when_virtual_time_reaches_the_idle_deadline() {
    let mut sim = Sim::new(1, Limits::default());
    let steps: Vec<Step> = vec![Box::new(|_| Request::get("/v2/"))];
    sim.add_client(steps);
    sim.run(10_000);
    assert!(sim.conns[0].closed);
    assert_eq!(sim.conns[0].responses.len(), 1);
}
