//! The package indexer on the real binary: pushed images have their layers listed in the
//! background, each layer once however many images share it, and the queue empties; what
//! it recorded is in the store after the server stops.

// Tests wait on a real server: they read the clock and sleep.
#![allow(clippy::disallowed_methods)]

mod common;

use berth_engine::{BlobKey, Engine, EngineOptions};
use common::*;
use std::time::{Duration, Instant};

/// A tar of `files`, each holding its own line.
fn layer(files: &[&str]) -> Vec<u8> {
    let bodies: Vec<String> = (0..files.len()).map(|i| format!("file {i}\n")).collect();
    let named: Vec<(&str, &str)> = files
        .iter()
        .copied()
        .zip(bodies.iter().map(String::as_str))
        .collect();
    layer_of(&named)
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
    // The indexer thread yields to everything else: SCHED_IDLE (policy 5, field 41 of
    // its /proc stat), so pushes and pulls are never slower for it.
    let tasks = format!("/proc/{}/task", srv.child.id());
    let indexer = std::fs::read_dir(&tasks)
        .unwrap()
        .map(|t| t.unwrap().path())
        .find(|t| std::fs::read_to_string(t.join("comm")).unwrap().trim() == "berth-indexer")
        .expect("a berth-indexer thread");
    let stat = std::fs::read_to_string(indexer.join("stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    assert_eq!(
        fields[41 - 3],
        "5",
        "scheduling policy of the indexer: {stat}"
    );
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

/// A read token of another organisation, `rival`.
fn other_org_token(srv: &Server) -> String {
    let mut admin = srv.admin_client();
    let r = admin.json("POST", "/api/v1/orgs", r#"{"slug":"rival"}"#);
    assert_eq!(r.status, 201, "{r:?}");
    admin.create_token("rival", r#"{"scopes":["read_packages"]}"#)
}

#[test]
fn the_package_api_shows_what_the_indexer_recorded_to_whoever_may_pull() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let mut c = srv.client();
    let base = layer_of(&[
        (
            "etc/os-release",
            "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
        ),
        ("usr/bin/tool", "#!/bin/sh\n"),
    ]);
    let top = layer_of(&[("app/main", "main\n"), ("usr/bin/.wh.tool", "")]);
    put_image(
        &mut c,
        "1.0",
        br#"{"os":"linux","architecture":"amd64","config":{"Labels":{"org.opencontainers.image.description":"<script>alert(1)</script>"}}}"#,
        &[&base, &top],
    );
    let v = indexed(&mut c, "/api/v1/packages/acme/web/app:1.0");
    assert_eq!(v["state"], "indexed", "{v}");
    assert_eq!(v["name"], "app");
    assert_eq!(v["version"], "1.0");
    assert_eq!(v["registry"], "acme/web");
    assert_eq!(v["visibility"], "private");
    assert_eq!(v["kind"], "image");
    assert_eq!(v["platform"], "linux/amd64");
    // etc, etc/os-release, usr, usr/bin, app, app/main: the tool is whited out.
    assert_eq!(v["total_files"], 6, "{v}");
    assert_eq!(v["distribution"]["name"], "Debian GNU/Linux");
    assert_eq!(v["distribution"]["version"], "12");
    assert_eq!(v["description"], "<script>alert(1)</script>");
    let sums = &v["checksums"];
    assert_eq!(sums["sha256"].as_str().map(str::len), Some(64), "{v}");
    assert_eq!(sums["sha512"].as_str().unwrap().len(), 128);
    assert_eq!(sums["md5"].as_str().unwrap().len(), 32);
    assert_eq!(sums["sha1"].as_str().unwrap().len(), 40);
    assert!(v["pushed_at"].as_u64().unwrap() > 1_700_000_000);
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[1]["removed"], 1);
    assert_eq!(layers[1]["state"], "listed");
    let size = v["size"].as_u64().unwrap();
    assert!(size > (base.len() + top.len()) as u64, "{size}");

    // Contents, directory by directory.
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = c.get("/api/v1/packages/acme/web/app:1.0/files");
    assert_eq!(names(&r.json()), ["app", "etc", "usr"], "{r:?}");
    let r = c.get("/api/v1/packages/acme/web/app:1.0/files?path=/etc");
    let f = r.json();
    assert_eq!(names(&f), ["os-release"]);
    assert_eq!(f["entries"][0]["type"], "file");
    assert_eq!(f["entries"][0]["path"], "/etc/os-release");
    assert_eq!(f["entries"][0]["mode"], "0644");
    let r = c.get("/api/v1/packages/acme/web/app:1.0/files?path=/usr/bin");
    assert_eq!(names(&r.json()), Vec::<String>::new());
    let r = c.get("/api/v1/packages/acme/web/app:1.0/files?path=/app&limit=1");
    assert_eq!(r.json()["next_after"], serde_json::Value::Null);
    assert_eq!(
        c.get("/api/v1/packages/acme/web/app:1.0/files?path=/nope")
            .status,
        404
    );
    assert_eq!(
        c.get("/api/v1/packages/acme/web/app:1.0/files?limit=0")
            .status,
        400
    );

    // What each layer did, path by path.
    let r = c.get("/api/v1/packages/acme/web/app:1.0/layers?layer=1");
    let l = r.json();
    assert_eq!(
        l["added"],
        serde_json::json!(["/app", "/app/main"]),
        "{r:?}"
    );
    assert_eq!(l["removed"], serde_json::json!(["/usr/bin/tool"]));
    assert_eq!(l["removed_entries"], 1);
    assert_eq!(
        c.get("/api/v1/packages/acme/web/app:1.0/layers?layer=2")
            .status,
        404
    );
    assert_eq!(
        c.get("/api/v1/packages/acme/web/app:1.0/layers?layer=x")
            .status,
        400
    );

    // Lists.
    let r = c.get("/api/v1/packages/acme/web");
    let images = r.json()["images"].clone();
    assert_eq!(images[0]["name"], "app", "{r:?}");
    assert_eq!(images[0]["latest_tags"][0], "1.0");
    let r = c.get("/api/v1/packages/acme/web/app");
    assert_eq!(r.json()["versions"][0]["tags"][0], "1.0", "{r:?}");
    let r = c.get("/api/v1/packages/acme");
    assert_eq!(r.json()["registries"][0]["images"], 1, "{r:?}");
    // One image: what the registry stores is that image's manifest, config and layers.
    assert_eq!(
        r.json()["registries"][0]["storage_bytes"],
        v["size"],
        "{r:?}"
    );

    // Search: by name, by a file name anywhere, by a whole path; only what the caller sees.
    let hits = |c: &mut Client, q: &str| -> Vec<serde_json::Value> {
        let r = c.get(&format!("/api/v1/search?{q}"));
        assert_eq!(r.status, 200, "{q}: {r:?}");
        r.json()["results"].as_array().unwrap().clone()
    };
    let h = hits(&mut c, "org=acme&q=AP");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["repository"], "acme/web/app");
    assert_eq!(h[0]["tags"][0], "1.0");
    let h = hits(&mut c, "org=acme&path=os-release");
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["paths"][0], "/etc/os-release");
    assert_eq!(h[0]["digest"], v["digest"]);
    assert_eq!(hits(&mut c, "path=/etc/os-release").len(), 1);
    assert!(hits(&mut c, "path=/usr/bin/tool").is_empty(), "whited out");
    assert!(hits(&mut c, "path=/os-release").is_empty());
    assert_eq!(c.get("/api/v1/search?org=acme").status, 400);
    assert_eq!(c.get("/api/v1/search?q=x&limit=0").status, 400);
    let mut other = Client::connect_as(srv.addr, &bearer_header(&other_org_token(&srv)));
    assert!(
        hits(&mut other, "path=os-release").is_empty(),
        "another organisation's private image"
    );
    assert!(
        hits(&mut srv.anonymous(), "q=app").is_empty(),
        "a private registry"
    );
    assert_eq!(
        srv.anonymous().get("/api/v1/search?org=acme&q=app").status,
        404
    );

    // Pulls count, HEADs do not.
    let digest = v["digest"].as_str().unwrap().to_owned();
    let accept = [("Accept", "application/vnd.oci.image.manifest.v1+json")];
    assert_eq!(
        c.request("GET", "/v2/acme/web/app/manifests/1.0", &accept, b"")
            .status,
        200
    );
    let path = format!("/v2/acme/web/app/manifests/{digest}");
    assert_eq!(c.request("GET", &path, &accept, b"").status, 200);
    c.send("HEAD", "/v2/acme/web/app/manifests/1.0", &accept, b"");
    assert_eq!(c.response(true).status, 200);
    let v = c.get("/api/v1/packages/acme/web/app:1.0").json();
    assert_eq!(v["downloads"], 2, "{v}");

    // Bad and unknown references.
    assert_eq!(c.get("/api/v1/packages/acme/web/app:2.0").status, 404);
    assert_eq!(
        c.get("/api/v1/packages/acme/web/app@sha256:nope").status,
        400
    );
    assert_eq!(c.get("/api/v1/packages/acme/web/app:1.0/what").status, 404);

    // A private registry does not exist for anyone who may not pull it.
    let mut anon = srv.anonymous();
    let private = anon.get("/api/v1/packages/acme/web/app:1.0");
    assert_eq!(private.status, 404, "{private:?}");
    assert_eq!(anon.get("/api/v1/packages/acme/web/app:nope").status, 404);
    assert_eq!(anon.get("/api/v1/packages/acme").status, 404);
    let r = srv.admin_client().json(
        "PATCH",
        "/api/v1/orgs/acme/registries/web",
        r#"{"public":true}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let public = anon.get("/api/v1/packages/acme/web/app:1.0");
    assert_eq!(public.status, 200, "{public:?}");
    assert_eq!(public.json()["visibility"], "public");
    // Bad credentials are refused, not taken for anonymous.
    let mut wrong = Client::connect_as(srv.addr, &bearer_header("berth_pat_nope"));
    assert_eq!(wrong.get("/api/v1/packages/acme/web/app:1.0").status, 401);

    // Deleting the version forgets what the index held.
    let r = c.request("DELETE", &path, &[], b"");
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(c.get("/api/v1/packages/acme/web/app:1.0").status, 404);
    assert_eq!(
        c.get(&format!("/api/v1/packages/acme/web/app@{digest}"))
            .status,
        404
    );
}

/// A layer that is not what its media type says (gzip that breaks off, a tar with hostile
/// names) is indexed as far as it is valid: the details show what is known and name the
/// layer that could not be read, and nothing lands outside the store.
#[test]
fn a_corrupt_layer_is_indexed_as_far_as_it_reads_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let mut c = srv.client();
    let good = layer_of(&[("etc/os-release", "ID=alpine\nVERSION_ID=3.20\n")]);
    // A gzip stream cut in the middle of its tar.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(
        &mut gz,
        &layer_of(&[("app/one", &"x".repeat(100_000)), ("app/two", "y")]),
    )
    .unwrap();
    let whole = gz.finish().unwrap();
    let cut = whole[..whole.len() / 2].to_vec();
    // Hostile names: climbing out, absolute, far too long.
    let mut b = tar::Builder::new(Vec::new());
    for name in ["../../escape", "/etc/passwd-abs", "ok/kept"] {
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, &b"z"[..]).unwrap();
    }
    let hostile = b.into_inner().unwrap();
    put_image(
        &mut c,
        "bad",
        br#"{"os":"linux","architecture":"amd64"}"#,
        &[&good, &cut, &hostile],
    );
    let v = indexed(&mut c, "/api/v1/packages/acme/web/app:bad");
    assert_eq!(v["state"], "partial", "{v}");
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers[0]["state"], "listed");
    assert_eq!(layers[1]["state"], "partial", "{v}");
    assert!(
        layers[1]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{v}"
    );
    assert_eq!(layers[2]["state"], "listed");
    assert!(layers[2]["skipped"].as_u64().unwrap() >= 1, "{v}");
    // What could be read is shown: the distribution, the hostile layer's one good file.
    assert_eq!(v["distribution"]["version"], "3.20");
    let r = c.get("/api/v1/packages/acme/web/app:bad/files?path=/ok");
    let names: Vec<String> = r.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["kept"]);
    let root = c.get("/api/v1/packages/acme/web/app:bad/files").json();
    assert!(!root.to_string().contains("escape"), "{root}");
    assert!(!dir.path().parent().unwrap().join("escape").exists());
    // The indexer goes on: the next image is indexed.
    put_image(
        &mut c,
        "next",
        br#"{"os":"linux","architecture":"arm64"}"#,
        &[&good],
    );
    assert_eq!(
        indexed(&mut c, "/api/v1/packages/acme/web/app:next")["state"],
        "indexed"
    );
}

/// The queue survives a kill -9, before indexing and in the middle of it: every version
/// pushed is indexed after the restart.
#[test]
fn a_restart_mid_queue_finishes_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    // Pushed with the indexer off: all twelve are queued at the first kill.
    let mut srv = Server::start_with(dir.path(), &[("BERTH_INDEX_PACKAGES", "false")]);
    let mut c = srv.client();
    for i in 0..12 {
        let l = layer_of(&[(&format!("data/file-{i}"), &"d".repeat(200_000 + i))]);
        put_image(
            &mut c,
            &format!("v{i}"),
            format!(r#"{{"os":"linux","architecture":"amd64","n":{i}}}"#).as_bytes(),
            &[&l],
        );
    }
    srv.signal(libc::SIGKILL);
    srv.wait(Duration::from_secs(20));
    // Killed again as soon as the indexer has recorded one: mid-queue.
    let mut srv = Server::start(dir.path());
    let mut c = srv.client();
    let t = Instant::now();
    while counter(
        &c.get("/metrics").text(),
        "berth_package_manifests_indexed_total",
    ) == 0
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "nothing indexed in 30 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    srv.signal(libc::SIGKILL);
    srv.wait(Duration::from_secs(20));
    let srv = Server::start(dir.path());
    let mut c = srv.client();
    for i in 0..12 {
        let v = indexed(&mut c, &format!("/api/v1/packages/acme/web/app:v{i}"));
        assert_eq!(v["total_files"], 2, "{v}");
    }
}

/// An artifact (here an SBOM attached with `subject`) gets details of its own, and the
/// image it refers to lists it; an index names its platform images as dependencies and
/// counts every platform's blobs once in its size.
#[test]
fn artifacts_referrers_and_indexes_have_their_details() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start(dir.path());
    let mut c = srv.client();
    let shared = layer_of(&[("etc/os-release", "ID=debian\n")]);
    put_image(
        &mut c,
        "amd64",
        br#"{"os":"linux","architecture":"amd64"}"#,
        &[&shared],
    );
    put_image(
        &mut c,
        "arm64",
        br#"{"os":"linux","architecture":"arm64"}"#,
        &[&shared],
    );
    let amd = indexed(&mut c, "/api/v1/packages/acme/web/app:amd64");
    let arm = indexed(&mut c, "/api/v1/packages/acme/web/app:arm64");
    let desc = |v: &serde_json::Value, arch: &str| {
        platform_entry(
            v["digest"].as_str().unwrap(),
            v["manifest"]["size"].as_u64().unwrap(),
            arch,
        )
    };
    let index = put_index(&mut c, "multi", &[desc(&amd, "amd64"), desc(&arm, "arm64")]);
    let v = indexed(&mut c, "/api/v1/packages/acme/web/app:multi");
    assert_eq!(v["kind"], "index");
    assert_eq!(v["dependencies"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["dependencies"][1]["platform"], "linux/arm64");
    let platforms: Vec<&str> = v["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    // The shared layer once: index + two manifests + two configs + one layer.
    let each = |v: &serde_json::Value| {
        v["manifest"]["size"].as_u64().unwrap() + v["config"]["size"].as_u64().unwrap()
    };
    let want = index.len() as u64 + each(&amd) + each(&arm) + shared.len() as u64;
    assert_eq!(v["size"], want, "{v}");
    assert!(v["checksums"].is_null());
    // Through the index, a platform's own details.
    let p = c
        .get("/api/v1/packages/acme/web/app:multi?platform=linux/arm64")
        .json();
    assert_eq!(p["digest"], arm["digest"], "{p}");
    assert_eq!(p["index_digest"], v["digest"]);
    assert_eq!(p["platform"], "linux/arm64");
    let r = c.get("/api/v1/packages/acme/web/app:multi?platform=linux/s390x");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("linux/amd64, linux/arm64"), "{r:?}");
    let r = c.get("/api/v1/packages/acme/web/app:multi/files");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("choose a platform"), "{r:?}");

    // An SBOM referring to the amd64 image.
    let sbom = br#"{"spdxVersion":"SPDX-2.3"}"#;
    let ds = push_blob(&mut c, sbom, 1);
    let empty = push_blob(&mut c, b"{}", 1);
    let m = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/spdx+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/spdx+json","digest":"{ds}","size":{}}}],"subject":{}}}"#,
        sbom.len(),
        desc(&amd, "amd64")
    );
    let r = c.request(
        "PUT",
        "/v2/acme/web/app/manifests/sbom",
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        m.as_bytes(),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let s = indexed(&mut c, "/api/v1/packages/acme/web/app:sbom");
    assert_eq!(s["kind"], "artifact", "{s}");
    assert_eq!(s["artifact_type"], "application/spdx+json");
    assert_eq!(s["subject"], amd["digest"]);
    assert_eq!(s["checksums_missing"], "only images have a Download");
    let amd = c.get("/api/v1/packages/acme/web/app:amd64").json();
    assert_eq!(
        amd["referrers"][0]["artifact_type"], "application/spdx+json",
        "{amd}"
    );
}

/// `index_packages = false` keeps the indexer thread from starting: pushes still queue
/// their images, which stay `indexing`, and the queue is worked once the server runs with
/// the indexer again.
#[test]
fn with_the_indexer_off_pushes_stay_queued_until_it_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = Server::start_with(dir.path(), &[("BERTH_INDEX_PACKAGES", "false")]);
    let mut c = srv.client();
    let base = layer_of(&[("usr/bin/tool", "#!/bin/sh\n")]);
    put_image(
        &mut c,
        "1.0",
        br#"{"os":"linux","architecture":"amd64"}"#,
        &[&base],
    );
    // An indexer that runs takes a queued image within its 1 s poll and a few milliseconds
    // of work; three seconds later one that is off has still not touched it.
    std::thread::sleep(Duration::from_secs(3));
    let v = c.get("/api/v1/packages/acme/web/app:1.0").json();
    assert_eq!(v["state"], "indexing", "{v}");
    let m = c.get("/metrics").text();
    assert_eq!(counter(&m, "berth_package_manifests_indexed_total"), 0);
    srv.signal(libc::SIGTERM);
    assert!(srv.wait(Duration::from_secs(20)).success());
    {
        let e = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        assert_eq!(
            e.package_queue(10).unwrap().len(),
            1,
            "the push stays queued"
        );
    }

    let srv = Server::start(dir.path());
    let mut c = srv.client();
    let v = indexed(&mut c, "/api/v1/packages/acme/web/app:1.0");
    assert_eq!(v["state"], "indexed", "{v}");
    assert_eq!(v["total_files"], 3, "usr, usr/bin, usr/bin/tool: {v}");
}
