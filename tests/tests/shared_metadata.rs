//! Several `berth serve` nodes on one PostgreSQL database: what one node acknowledges, every
//! node answers from then on — tags, manifests, tokens and their revocation, bearer tokens
//! signed by any node — with no cache in between.
//!
//! These nodes keep blob bytes in their own folders (object storage is what lets many nodes
//! serve the same bytes), so the tests read manifests, tags and access decisions across
//! nodes, never blob bytes.

use berth_tests::content::{self, Blob};
use berth_tests::postgres::Postgres;
use berth_tests::Expect as _;
use berth_tests::{Registry, Request};
use serde_json::json;

const NAME: &str = "e2e/tests/shared";

fn three_nodes(pg: &Postgres) -> (Registry, Registry, Registry) {
    let a = Registry::start_with_env(&[("BERTH_METADATA", &pg.url())]);
    let b = a.another_node();
    let c = a.another_node();
    (a, b, c)
}

fn config(word: &str) -> Blob {
    Blob::json(
        content::OCI_CONFIG,
        &json!({"architecture": "amd64", "os": "linux", "author": word,
                "rootfs": {"type": "layers", "diff_ids": []}}),
    )
}

#[test]
fn a_tag_pushed_or_moved_on_one_node_is_served_by_every_node_at_once() {
    let pg = Postgres::start();
    let (a, b, c) = three_nodes(&pg);
    assert!(a.data_dir().join("admin-token").exists());
    assert!(
        !b.data_dir().join("admin-token").exists(),
        "only the first node on an empty database makes the admin token"
    );

    let (cfg1, cfg2) = (config("one"), config("two"));
    let m1 = content::manifest(&cfg1.desc(), &[], Default::default());
    let m2 = content::manifest(&cfg2.desc(), &[], Default::default());
    let mut ca = a.client();
    ca.push_blob(NAME, &cfg1).expect(201);
    ca.put_manifest(NAME, "v1", &m1).expect(201);
    for node in [&a, &b, &c] {
        node.client().assert_manifest(NAME, "v1", &m1);
    }
    // The config was uploaded to a alone; the metadata says b holds it, so b takes a
    // manifest that names it. Then the tag moves on b and c reads the move at once.
    let mut cb = b.client();
    cb.push_blob(NAME, &cfg2).expect(201);
    cb.put_manifest(NAME, "v1", &m2).expect(201);
    for node in [&c, &a, &b] {
        node.client().assert_manifest(NAME, "v1", &m2);
    }
    let mut cc = c.client();
    cc.delete(&format!("/v2/{NAME}/manifests/{}", m2.digest))
        .expect(202);
    for node in [&a, &b, &c] {
        node.client()
            .get(&format!("/v2/{NAME}/manifests/v1"))
            .expect(404);
        node.client()
            .get(&format!("/v2/{NAME}/manifests/{}", m2.digest))
            .expect(404);
    }
}

#[test]
fn a_token_made_on_one_node_works_on_all_and_its_revocation_on_another_is_refused_by_all() {
    let pg = Postgres::start();
    let (a, b, c) = three_nodes(&pg);
    let t = a
        .admin()
        .create_token(berth_tests::registry::ORG, &["read_packages"], &[], None);
    // One keep-alive connection per node, used before and after: each node caches what
    // it verified on a connection, and must drop it when another node revokes the token.
    let mut clients: Vec<_> = [&a, &b, &c].iter().map(|n| n.client_as(&t.token)).collect();
    for cl in &mut clients {
        cl.get("/v2/").expect(200);
        cl.get("/v2/").expect(200);
    }
    c.admin().revoke(&t.id);
    for cl in &mut clients {
        cl.get("/v2/").expect(401);
    }
}

#[test]
fn a_bearer_token_from_one_node_is_accepted_by_the_others() {
    let pg = Postgres::start();
    let (a, b, c) = three_nodes(&pg);
    let r = a
        .client()
        .send(Request::get(&format!(
            "/auth/token?service=berth&scope=repository:{NAME}:pull,push"
        )))
        .expect(200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let bearer = v["token"].as_str().expect("a token").to_owned();
    for node in [&b, &c, &a] {
        let mut cl = node.anonymous();
        cl.send(
            Request::get(&format!("/v2/{NAME}/tags/list"))
                .header("Authorization", &berth_tests::auth::bearer(&bearer)),
        )
        .expect(404);
    }
}

/// `berth serve` with a database it cannot use says which and why, and exits non-zero,
/// never printing the password.
#[test]
fn a_database_that_refuses_the_password_or_is_not_there_stops_the_start_with_a_message() {
    let mut pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let serve = |url: &str| {
        let out = std::process::Command::new(berth_tests::binary::berth_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.path())
            .args(["--metadata", url])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run berth serve");
        assert!(!out.status.success(), "berth serve started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let wrong = pg.url().replace(pg.password(), "not-the-password-42");
    let said = serve(&wrong);
    assert!(said.contains("password authentication failed"), "{said}");
    assert!(
        said.contains(&pg.addr().to_string()),
        "names the server: {said}"
    );
    assert!(
        !said.contains("not-the-password-42"),
        "prints no password: {said}"
    );
    pg.stop();
    let said = serve(&pg.url());
    assert!(
        said.contains("metadata database") && said.contains(&pg.addr().to_string()),
        "{said}"
    );
    assert!(!said.contains(pg.password()), "prints no password: {said}");
}

/// PostgreSQL stopped (as by a crash) and started again under pushes and pulls: requests
/// meanwhile are 503 UNAVAILABLE with `Retry-After` and the error JSON, never a hang or
/// another failure; the node reconnects by itself, and every push it acknowledged is there.
#[test]
fn postgres_restarted_under_load_fails_requests_cleanly_and_the_node_reconnects() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;
    use std::time::Duration;

    let mut pg = Postgres::start();
    let a = Registry::start_with_env(&[("BERTH_METADATA", &pg.url())]);
    let cfg = config("restart");
    let m = content::manifest(&cfg.desc(), &[], Default::default());
    let mut c = a.client();
    c.push_blob(NAME, &cfg).expect(201);
    c.put_manifest(NAME, "v1", &m).expect(201);

    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|t| {
            let (stop, mut c, m) = (stop.clone(), a.client(), m.clone());
            std::thread::spawn(move || {
                let (mut acked, mut unavailable) = (Vec::new(), 0);
                for i in 0.. {
                    if stop.load(SeqCst) {
                        break;
                    }
                    let tag = format!("t{t}-{i}");
                    let put = Request::put(&format!("/v2/{NAME}/manifests/{tag}"))
                        .header("Content-Type", &m.media_type)
                        .body(m.bytes.clone());
                    let get = Request::get(&format!("/v2/{NAME}/manifests/v1"))
                        .header("Accept", &m.media_type);
                    for (req, ok) in [(put, 201), (get, 200)] {
                        let r = c.send(req);
                        if r.status == ok {
                            if ok == 201 {
                                acked.push(tag.clone());
                            }
                            continue;
                        }
                        assert_eq!(r.status, 503, "neither {ok} nor 503:\n{r:?}");
                        assert_eq!(r.error_codes(), vec!["UNAVAILABLE".to_owned()]);
                        assert!(r.header("Retry-After").is_some(), "{r:?}");
                        unavailable += 1;
                    }
                }
                (acked, unavailable)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    pg.stop();
    std::thread::sleep(Duration::from_secs(1));
    // A web page needing the store says so too: 503, try again shortly.
    let page = a.anonymous().get(&format!("/{}", berth_tests::ORG));
    assert_eq!(page.status, 503, "{page:?}");
    assert!(page.header("Retry-After").is_some(), "{page:?}");
    assert!(page.text().contains("Temporarily unavailable"), "{page:?}");
    std::thread::sleep(Duration::from_secs(1));
    pg.start_again();
    // The node comes back by itself: no restart, no operator.
    let back = berth_tests::wait::until(Duration::from_secs(30), || {
        (a.client()
            .send(Request::get(&format!("/v2/{NAME}/manifests/v1")).header("Accept", &m.media_type))
            .status
            == 200)
            .then_some(())
    });
    assert!(back.is_some(), "the node did not reconnect:\n{}", a.log());
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, SeqCst);
    let mut acked = Vec::new();
    let mut unavailable = 0;
    for h in load {
        let (a, u) = h.join().expect("a load thread failed");
        acked.extend(a);
        unavailable += u;
    }
    assert!(unavailable > 0, "no request met the database down");
    assert!(!acked.is_empty());
    let mut c = a.client();
    for tag in &acked {
        c.assert_manifest(NAME, tag, &m);
    }
}

/// A `psql` session holding PostgreSQL advisory lock `key` until dropped: what another
/// node's garbage collection or indexer holds while it runs.
struct HeldLock(std::process::Child);

impl HeldLock {
    fn take(pg: &Postgres, key: i64) -> HeldLock {
        use std::io::Write as _;
        let mut child = std::process::Command::new("psql")
            .arg(pg.url())
            .args(["-qAt", "-v", "ON_ERROR_STOP=1"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run psql");
        let stdin = child.stdin.as_mut().expect("psql's stdin");
        writeln!(stdin, "SELECT pg_advisory_lock({key});\n\\echo locked").unwrap();
        stdin.flush().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().expect("psql's stdout"));
        let mut line = String::new();
        while !line.trim().ends_with("locked") {
            line.clear();
            let n = std::io::BufRead::read_line(&mut out, &mut line).unwrap();
            assert!(n > 0, "psql ended before taking the lock");
        }
        HeldLock(child)
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// Garbage collection runs on one node at a time: while another node's collection holds
/// the cluster-wide lock, a collection asked of this node says it is busy (409) and does
/// nothing; once the other is done, it runs.
#[test]
fn garbage_collection_runs_on_one_node_at_a_time() {
    let pg = Postgres::start();
    let (a, b, _c) = three_nodes(&pg);
    let gc_lock = 0x62_65_72_74_68_67; // engine/src/gc.rs GC_LOCK
    let other = HeldLock::take(&pg, gc_lock);
    for node in [&a, &b] {
        let r = node.admin().call("POST", "/api/v1/gc", None);
        assert_eq!(r.status, 409, "{r:?}");
        assert!(r.text().contains("already running"), "{r:?}");
    }
    drop(other);
    a.admin().call("POST", "/api/v1/gc", None).expect(200);
    b.admin().call("POST", "/api/v1/gc", None).expect(200);
}
