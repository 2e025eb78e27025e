//! A rough throughput probe of the manifest GET hot path (prints, never asserts a speed).
//! Run: `cargo test -p berth-core --release --test throughput -- --ignored --nocapture`.

use berth_core::testkit::{epoch, Request};
use berth_core::{Connection, Input, Limits, ManifestInfo, Output, Reply};
use std::sync::Arc;

#[test]
#[ignore = "timing probe; run in release"]
fn manifest_get_requests_per_second() {
    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let info = ManifestInfo {
        digest: berth_core::hash(berth_core::oci::Algorithm::Sha256, body),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        body: bytes::Bytes::from_static(body),
    };
    let req = Request::get("/v2/org/reg/app/manifests/v1")
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .header("User-Agent", "probe/1.0")
        .to_bytes();
    let mut conn = Connection::new(Arc::new(Limits::default()), epoch());
    let n = 200_000;
    #[allow(clippy::disallowed_methods)] // a timing probe reads the clock
    let t0 = std::time::Instant::now();
    let mut out_bytes = 0usize;
    for _ in 0..n {
        let buf = conn.recv_buf();
        buf[..req.len()].copy_from_slice(&req);
        conn.handle_input(Input::Recv {
            now: epoch(),
            n: req.len(),
        })
        .unwrap();
        let mut id = None;
        while let Some(o) = conn.poll_output() {
            if let Output::Need(i, _) = o {
                id = Some(i);
            }
        }
        conn.handle_input(Input::Reply {
            now: epoch(),
            id: id.unwrap(),
            reply: Reply::Manifest(Some(info.clone())),
        })
        .unwrap();
        while let Some(o) = conn.poll_output() {
            if let Output::Transmit(b) = o {
                out_bytes += b.len();
            }
        }
    }
    let dt = t0.elapsed();
    println!(
        "{n} manifest GETs in {dt:?}: {:.0} req/s, {out_bytes} bytes out",
        n as f64 / dt.as_secs_f64()
    );
}
