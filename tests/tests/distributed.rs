//! Three `berth serve` nodes on one PostgreSQL (metadata) and one three-node Garage cluster
//! (blob bytes), behind a round-robin front: what one node acknowledged, every node serves,
//! bytes included, and a Garage node down stops nothing.

use berth_tests::content::{self, Image};
use berth_tests::digest::{sha256_digest, sha512_digest};
use berth_tests::http::{with_query, Client, Response};
use berth_tests::layout::{self, Layout};
use berth_tests::Expect as _;
use berth_tests::{Front, Garage, Postgres, Registry, Request};

struct Cluster {
    nodes: Vec<Registry>,
    front: Front,
    garage: Garage,
    _pg: Postgres,
}

/// Each node talks to its own Garage node (`i % 3`): a Garage node down is then felt by
/// one berth node's endpoint only — and the Garage cluster still serves it through the
/// others' (replication 3, quorum 2).
fn cluster() -> Cluster {
    cluster_with(&[])
}

/// [`cluster`], with `extra` settings for every node.
fn cluster_with(extra: &[(&str, &str)]) -> Cluster {
    let pg = Postgres::start();
    let garage = Garage::start(3);
    let env = |i: usize| {
        let mut env: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.extend([
            ("BERTH_METADATA".to_string(), pg.url()),
            ("BERTH_BLOBS".to_string(), garage.url(i)),
            ("AWS_ACCESS_KEY_ID".to_string(), garage.key_id().to_string()),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                garage.secret().to_string(),
            ),
        ]);
        env
    };
    let first = env(0);
    let first: Vec<(&str, &str)> = first
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let a = Registry::start_with_env(&first);
    let b = a.another_node();
    let c = a.another_node();
    let front = Front::start(&[a.addr(), b.addr(), c.addr()]);
    Cluster {
        nodes: vec![a, b, c],
        front,
        garage,
        _pg: pg,
    }
}

/// An auth file holding the write token for every host in `hosts` (the nodes, the front).
fn authfile(via: &Registry, hosts: &[String]) -> std::path::PathBuf {
    let auth = berth_tests::auth::base64(format!("berth:{}", via.token()).as_bytes());
    let auths: serde_json::Map<String, serde_json::Value> = hosts
        .iter()
        .map(|h| (h.clone(), serde_json::json!({ "auth": auth })))
        .collect();
    let path = via.scratch("cluster-auth").join("auth.json");
    std::fs::write(&path, serde_json::json!({ "auths": auths }).to_string()).unwrap();
    path
}

/// Pulls `repo_ref` from `host` and compares every blob with `img`.
fn pull_and_compare(
    auth: &std::path::Path,
    host: &str,
    repo_ref: &str,
    img: &Image,
    out: &std::path::Path,
) {
    berth_tests::clients::skopeo_copy(
        &format!("docker://{host}/{repo_ref}"),
        &format!("oci:{}:pulled", out.display()),
        &["--authfile", auth.to_str().unwrap()],
    );
    layout::assert_layout_consistent(out);
    assert!(layout::read_blob(out, &img.manifest.digest) == img.manifest.bytes);
    for b in img.blobs() {
        assert!(
            layout::read_blob(out, &b.digest) == b.bytes,
            "blob {} differs pulled from {host}",
            b.digest
        );
    }
}

#[test]
fn an_image_pushed_to_one_node_pulls_byte_exact_from_every_node_and_through_the_front() {
    let mut cl = cluster();
    let img = Image::random(3, 700_000);
    let a = &cl.nodes[0];
    let src = a.scratch("src");
    let mut l = Layout::create(&src);
    l.add_image(&img, Some("v1"));
    l.write_index();
    a.skopeo_copy(
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/e2e/tests/dist/app:v1", a.host()),
        &[],
    );
    let fresh = cl.nodes[0].another_node();
    let front = cl.front.addr().to_string();
    let mut hosts: Vec<String> = cl.nodes.iter().map(|n| n.host()).collect();
    hosts.extend([front.clone(), fresh.host()]);
    let auth = authfile(a, &hosts);
    // Every node serves it, each reading the bytes from the bucket into its own cache.
    for (i, node) in cl.nodes.iter().enumerate() {
        let out = a.scratch(&format!("n{i}"));
        pull_and_compare(&auth, &node.host(), "e2e/tests/dist/app:v1", &img, &out);
    }
    for i in 0..3 {
        let out = a.scratch(&format!("f{i}"));
        pull_and_compare(&auth, &front, "e2e/tests/dist/app:v1", &img, &out);
    }
    // One Garage node down: a node that never read the image (an empty cache) reads every
    // byte from the bucket through its own Garage endpoint, which the other two copies
    // still serve.
    cl.garage.stop_node(2);
    let out = a.scratch("down");
    pull_and_compare(&auth, &fresh.host(), "e2e/tests/dist/app:v1", &img, &out);
    cl.garage.start_node(2);

    // Each node reports what it waited on its database and its object store.
    let text = fresh.anonymous().get("/metrics").text();
    for series in [
        "berth_metadata_request_duration_seconds_count",
        "berth_object_store_request_duration_seconds_count",
    ] {
        let n: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"));
        assert!(n > 0, "{series} {n}");
    }
}

/// PATCH `bytes` at `start` (chunked style, `Content-Range`).
fn patch(c: &mut Client, loc: &str, bytes: &[u8], start: usize) -> Response {
    let range = format!("{start}-{}", start + bytes.len() - 1);
    c.send(
        Request::patch(loc)
            .octets()
            .header("Content-Range", &range)
            .body(bytes.to_vec()),
    )
}

/// The objects under `parts/` in the bucket: upload parts not yet removed.
fn parts_left(garage: &Garage) -> Vec<String> {
    garage
        .objects(0)
        .list("parts")
        .unwrap()
        .map(|o| o.unwrap().key)
        .collect()
}

#[test]
fn an_upload_moves_between_nodes_with_every_request_and_no_sticky_sessions() {
    let cl = cluster();
    let repo = "e2e/tests/dist/up";
    let token = cl.nodes[0].token().to_string();
    let mut c: Vec<Client> = cl.nodes.iter().map(|n| n.client_as(&token)).collect();
    // A pack of its own and a blob copied into a shared pack, each closed on a node other
    // than the one it started on; and a SHA-512 one, whose hash is not kept with the
    // session, so the closing node fetches every part.
    for (len, sha512) in [(3_000_000, false), (5_000, false), (2_000_001, true)] {
        let bytes = content::random_bytes(len);
        let digest = if sha512 {
            sha512_digest(&bytes)
        } else {
            sha256_digest(&bytes)
        };
        let third = len / 3;
        let loc = c[0].start_upload(repo);
        let loc = patch(&mut c[1], &loc, &bytes[..third], 0)
            .expect(202)
            .location();
        // Every node, the one that started it included, says what the session holds.
        for n in c.iter_mut() {
            let r = n.send(Request::get(&loc)).expect(204);
            assert_eq!(r.must_header("Range"), format!("0-{}", third - 1), "{len}");
        }
        let loc = patch(&mut c[2], &loc, &bytes[third..2 * third], third)
            .expect(202)
            .location();
        // The node that took the first PATCH holds a copy the third node moved past: the
        // session's own length is what counts there too.
        let r = patch(&mut c[1], &loc, &bytes[..10], 0).expect(416);
        assert_eq!(
            r.must_header("Range"),
            format!("0-{}", 2 * third - 1),
            "{len}"
        );
        // Closed on the first node, with the last bytes in the PUT.
        let put = Request::put(&with_query(&loc, &format!("digest={digest}")))
            .octets()
            .body(bytes[2 * third..].to_vec());
        let r = c[0].send(put).expect(201);
        assert_eq!(r.must_header("Docker-Content-Digest"), digest);
        for (i, n) in c.iter_mut().enumerate() {
            let got = n.get(&format!("/v2/{repo}/blobs/{digest}")).expect(200);
            assert!(got.body == bytes, "{len}: node {i} serves other bytes");
            // The session is over everywhere.
            n.send(Request::get(&loc)).expect(404);
        }
    }
    assert_eq!(
        parts_left(&cl.garage),
        Vec::<String>::new(),
        "parts of finished uploads"
    );

    // Cancelled on a third node: gone on all, its parts too.
    let loc = c[0].start_upload(repo);
    let loc = patch(&mut c[1], &loc, b"some bytes", 0)
        .expect(202)
        .location();
    assert_eq!(parts_left(&cl.garage).len(), 1);
    c[2].send(Request::delete(&loc)).expect(204);
    for n in c.iter_mut() {
        n.send(Request::get(&loc)).expect(404);
    }
    patch(&mut c[1], &loc, b"more", 10).expect(404);
    assert_eq!(
        parts_left(&cl.garage),
        Vec::<String>::new(),
        "parts of a cancelled upload"
    );

    // A wrong digest, closed on another node: refused, and the session is gone.
    let bytes = content::random_bytes(100_000);
    let loc = c[2].start_upload(repo);
    let loc = patch(&mut c[0], &loc, &bytes, 0).expect(202).location();
    let wrong = sha256_digest(b"other bytes");
    let r = c[1].send(Request::put(&with_query(&loc, &format!("digest={wrong}"))));
    assert_eq!(r.expect(400).error_codes(), ["DIGEST_INVALID"]);
    c[2].send(Request::get(&loc)).expect(404);
    assert_eq!(
        parts_left(&cl.garage),
        Vec::<String>::new(),
        "parts of a refused upload"
    );
}

/// A collection on one node while another node's push has uploaded its blobs but not yet
/// its manifest: the blobs are linked and referenced by nothing, and the collecting node
/// never saw them used (each node's record of uses is its own). The uses the pushing node
/// wrote down with the links keep them, so the manifest that follows is accepted.
#[test]
fn a_push_racing_garbage_collection_on_another_node_keeps_its_blobs() {
    let cl = cluster_with(&[("BERTH_GC_UNREFERENCED_AFTER", "2s")]);
    // Every node has been up longer than the grace, so its own start no longer counts as a
    // use of every link.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let repo = "e2e/tests/dist/race";
    let token = cl.nodes[0].token().to_string();
    let mut a = cl.nodes[0].client_as(&token);
    let img = Image::random(2, 300_000);
    a.push_blob(repo, &img.config);
    for l in &img.layers {
        a.push_blob(repo, l);
    }
    let r = cl.nodes[1]
        .admin()
        .call("POST", "/api/v1/gc", None)
        .expect(200);
    assert_eq!(r.json()["links_removed"], 0, "{r:?}");
    a.put_manifest(repo, "v1", &img.manifest).expect(201);
    // Collected again, now that the manifest references them: still there, on every node.
    cl.nodes[2]
        .admin()
        .call("POST", "/api/v1/gc", None)
        .expect(200);
    for node in &cl.nodes {
        let mut c = node.client_as(&token);
        for b in img.blobs() {
            c.assert_blob(repo, b);
        }
    }
}

/// `kill -9` of a node while clients push through the front: a push cut off is retried by
/// its client, the front gives the retry to a live node, and every push acknowledged, before
/// or after, pulls back byte-exact from every node, the restarted one included.
#[test]
fn a_node_killed_mid_push_loses_nothing_acknowledged_and_clients_retry_through_the_front() {
    let mut cl = cluster();
    let front = cl.front.addr().to_string();
    let mut hosts: Vec<String> = cl.nodes.iter().map(|n| n.host()).collect();
    hosts.push(front.clone());
    let auth = authfile(&cl.nodes[0], &hosts);
    // Layers large enough that the kill lands while some are being sent.
    let images: Vec<Image> = (0..4).map(|_| Image::random(2, 12_000_000)).collect();
    let src = cl.nodes[0].scratch("src");
    let mut l = Layout::create(&src);
    for (i, img) in images.iter().enumerate() {
        l.add_image(img, Some(&format!("v{i}")));
    }
    l.write_index();
    let pushed = std::thread::scope(|sc| {
        let pushing = sc.spawn(|| {
            let mut retried = 0;
            for i in 0..images.len() {
                for attempt in 1.. {
                    let (cmd, out) = berth_tests::clients::skopeo()
                        .arg("copy")
                        .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
                        .args(["--authfile", auth.to_str().unwrap()])
                        .arg(format!("oci:{}:v{i}", src.display()))
                        .arg(format!("docker://{front}/e2e/tests/dist/k{i}:v1"))
                        .limit(std::time::Duration::from_secs(180))
                        .output();
                    if out.status.success() {
                        break;
                    }
                    assert!(
                        attempt < 5,
                        "{cmd} failed {attempt} times:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    retried += 1;
                }
            }
            retried
        });
        // Into the pushes, one node dies.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        cl.nodes[1].kill_9();
        pushing.join().unwrap()
    });
    eprintln!("pushes retried after the kill: {pushed}");
    cl.nodes[1].start_again();
    for (i, img) in images.iter().enumerate() {
        for (n, node) in cl.nodes.iter().enumerate() {
            let out = cl.nodes[0].scratch(&format!("k{i}-n{n}"));
            pull_and_compare(
                &auth,
                &node.host(),
                &format!("e2e/tests/dist/k{i}:v1"),
                img,
                &out,
            );
        }
    }
}
