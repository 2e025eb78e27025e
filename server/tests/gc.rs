//! Garbage collection on the real binary: `berth gc` against a running server, the
//! periodic collection, and the store checking clean afterwards.

#![allow(clippy::disallowed_methods)]

mod common;
use common::*;

fn packs(data: &std::path::Path) -> usize {
    std::fs::read_dir(data.join("packs")).unwrap().count()
}

/// `berth gc` with the admin token (from DATA/admin-token) against `srv`.
fn gc(srv: &Server, args: &[&str]) -> std::process::Output {
    let url = format!("http://{}", srv.addr);
    let mut all = vec!["gc", "--server", &url, "--data", srv.data.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = berth(&all).env_remove("BERTH_TOKEN").output().unwrap();
    assert!(
        out.status.success(),
        "berth gc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn metric(srv: &Server, name: &str) -> u64 {
    counter(&srv.client().get("/metrics").text(), name)
}

#[test]
fn berth_gc_reclaims_deleted_blobs_and_keeps_everything_linked() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start_with(dir.path(), &[("BERTH_GC_INTERVAL", "off")]);
    let mut c = srv.client();
    // Above small_blob_bytes (1 MiB): each is a pack of its own.
    let (gone, kept) = (pattern(3 << 20, 1), pattern(2 << 20, 2));
    let small = pattern(10_000, 3);
    let dg = push_blob(&mut c, &gone, 2);
    let dk = push_blob(&mut c, &kept, 2);
    let ds = push_blob(&mut c, &small, 1);
    let before = packs(dir.path());

    let r = c.request("DELETE", &format!("/v2/{REPO}/blobs/{dg}"), &[], b"");
    assert_eq!(r.status, 202, "{r:?}");

    let dry: serde_json::Value =
        serde_json::from_slice(&gc(&srv, &["--dry-run", "--json"]).stdout).unwrap();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["blobs_removed"], 1);
    assert_eq!(dry["blob_bytes_removed"], gone.len() as u64);
    assert_eq!(dry["packs_removed"], 1);
    assert_eq!(packs(dir.path()), before, "a dry run deletes nothing");

    let out = String::from_utf8(gc(&srv, &[]).stdout).unwrap();
    assert!(out.contains("blobs removed:      1\n"), "{out}");
    assert!(out.contains("packs removed:      1\n"), "{out}");
    assert_eq!(packs(dir.path()), before - 1, "its pack file is deleted");
    assert_eq!(metric(&srv, "berth_gc_runs_total"), 1);
    assert_eq!(metric(&srv, "berth_gc_blobs_removed_total"), 1);

    let r = c.get(&format!("/v2/{REPO}/blobs/{dg}"));
    assert_eq!(r.status, 404);
    for (d, bytes) in [(&dk, &kept), (&ds, &small)] {
        let r = c.get(&format!("/v2/{REPO}/blobs/{d}"));
        assert!(
            r.status == 200 && r.body == *bytes,
            "{d} came back different"
        );
    }
    // Nothing left to collect; and the deleted blob can be pushed again.
    let again: serde_json::Value = serde_json::from_slice(&gc(&srv, &["--json"]).stdout).unwrap();
    assert_eq!(again["blobs_removed"], 0);
    push_blob(&mut c, &gone, 3);
    let r = c.get(&format!("/v2/{REPO}/blobs/{dg}"));
    assert!(r.status == 200 && r.body == gone);

    // Only the admin token may collect.
    let r = Client::connect_as(srv.addr, &bearer_header(&srv.token)).json("POST", "/api/v1/gc", "");
    assert_eq!(r.status, 403, "{r:?}");

    srv.signal(libc::SIGTERM);
    assert!(srv.wait(Duration::from_secs(20)).success());
    let out = berth(&["check", "--data", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_server_collects_every_gc_interval() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(dir.path(), &[("BERTH_GC_INTERVAL", "200ms")]);
    let mut c = srv.client();
    let d = push_blob(&mut c, &pattern(2 << 20, 9), 1);
    let before = packs(dir.path());
    let r = c.request("DELETE", &format!("/v2/{REPO}/blobs/{d}"), &[], b"");
    assert_eq!(r.status, 202);
    let t = Instant::now();
    while metric(&srv, "berth_gc_blobs_removed_total") == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no collection within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(packs(dir.path()), before - 1);
}

/// Deleting an image gives its layers' space back: with a grace of one second, the next
/// collection after the manifest DELETE removes the blobs only it named.
#[test]
fn deleting_an_image_reclaims_its_layers_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(
        dir.path(),
        &[
            ("BERTH_GC_INTERVAL", "off"),
            ("BERTH_GC_UNREFERENCED_AFTER", "1s"),
        ],
    );
    let mut c = srv.client();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = pattern(2 << 20, 21);
    let (dc, dl) = (push_blob(&mut c, &config, 1), push_blob(&mut c, &layer, 2));
    let manifest = image_manifest((&dc, config.len()), (&dl, layer.len()));
    let r = c.request(
        "PUT",
        &format!("/v2/{REPO}/manifests/1.0"),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        manifest.as_bytes(),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let before = packs(dir.path());
    std::thread::sleep(Duration::from_millis(1500));
    let kept: serde_json::Value = serde_json::from_slice(&gc(&srv, &["--json"]).stdout).unwrap();
    assert_eq!(
        (&kept["links_removed"], &kept["blobs_removed"]),
        (&0.into(), &0.into()),
        "the manifest names both: {kept}"
    );

    let digest = sha256(manifest.as_bytes());
    let r = c.request(
        "DELETE",
        &format!("/v2/{REPO}/manifests/{digest}"),
        &[],
        b"",
    );
    assert_eq!(r.status, 202, "{r:?}");
    let done: serde_json::Value = serde_json::from_slice(&gc(&srv, &["--json"]).stdout).unwrap();
    assert_eq!(
        (&done["links_removed"], &done["blobs_removed"]),
        (&2.into(), &2.into()),
        "{done}"
    );
    assert_eq!(packs(dir.path()), before - 1, "the layer's pack is deleted");
    for d in [&dc, &dl] {
        assert_eq!(c.get(&format!("/v2/{REPO}/blobs/{d}")).status, 404);
    }
}
