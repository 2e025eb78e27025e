//! A real Garage cluster on loopback for the distributed mode's tests: `n` `garage server`
//! processes (three normally), joined, given a layout, with a bucket and a key that may
//! read and write it.
//!
//! Real, not a mock, because what the object store client must get right is what a
//! replicated store does: quorum writes and reads (two of three), a node that dies mid-test
//! and comes back with its data, and errors as S3 servers really word them. Each node is a
//! process of its own with its own ports and folders, so a test can `kill -9` one and start
//! it again on the same data. The binary is built once by `scripts/install-test-deps.sh`
//! (`cargo install garage`, about 25 CPU-minutes) into a cached folder; a missing binary
//! fails the test with the command that installs it, never skips it.

use berth_engine::objects::{Credentials, Objects, ObjectsConfig, RetrySettings};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::tool::{require_tool, Cmd};
use crate::wait;

/// Where `scripts/install-test-deps.sh` installs Garage; `BERTH_GARAGE` names another binary.
pub const GARAGE_BIN: &str = "/var/cache/berth-tests/garage/bin/garage";
/// The S3 region every node answers as (`s3_region`); clients must sign for it.
pub const REGION: &str = "garage";
/// The bucket `start` creates.
pub const BUCKET: &str = "berth";
/// How long a node may take to answer RPC, and the cluster to become fully operational.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// A running cluster. Every node is killed on drop and its folders removed.
pub struct Garage {
    bin: PathBuf,
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    key_id: String,
    secret: String,
}

struct Node {
    conf: PathBuf,
    s3: SocketAddr,
    admin: SocketAddr,
    /// `HEX@127.0.0.1:PORT`, as `garage node connect` takes it.
    id: String,
    child: Option<Child>,
    starts: u32,
}

impl Garage {
    /// Starts `n` nodes (`replication_factor` = the smaller of `n` and 3), joins them into
    /// one cluster with a zone each, and creates [`BUCKET`] and a key that may read, write
    /// and own it. Returns once every node's S3 endpoint answers that key; panics with the
    /// nodes' logs otherwise.
    pub fn start(n: usize) -> Garage {
        assert!(n >= 1, "a Garage cluster needs at least one node");
        let bin = garage_bin();
        require_tool("curl");
        let dir = tempfile::Builder::new()
            .prefix("berth-garage-")
            .tempdir()
            .expect("create a temp dir for Garage");
        let rpc_secret = hex::encode(crate::content::random_bytes(32));
        let admin_token = hex::encode(crate::content::random_bytes(16));
        let ports = free_ports(3 * n);
        let replication = n.min(3);
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let home = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&home).expect("create a Garage node's folder");
            let (s3, rpc, admin) = (ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]);
            // Page-cache durability is enough here: the tests kill processes, not the
            // machine, and fsync on every block would only slow a shared disk.
            let conf = format!(
                "metadata_dir = \"{meta}\"\n\
                 data_dir = \"{data}\"\n\
                 db_engine = \"lmdb\"\n\
                 replication_factor = {replication}\n\
                 rpc_bind_addr = \"{rpc}\"\n\
                 rpc_public_addr = \"{rpc}\"\n\
                 rpc_secret = \"{rpc_secret}\"\n\
                 \n\
                 [s3_api]\n\
                 s3_region = \"{REGION}\"\n\
                 api_bind_addr = \"{s3}\"\n\
                 \n\
                 [admin]\n\
                 api_bind_addr = \"{admin}\"\n\
                 admin_token = \"{admin_token}\"\n",
                meta = home.join("meta").display(),
                data = home.join("data").display(),
            );
            let conf_path = home.join("garage.toml");
            std::fs::write(&conf_path, conf).expect("write a Garage node's configuration");
            nodes.push(Node {
                conf: conf_path,
                s3,
                admin,
                id: String::new(),
                child: None,
                starts: 0,
            });
        }
        let mut g = Garage {
            bin,
            dir,
            nodes,
            key_id: String::new(),
            secret: String::new(),
        };
        for i in 0..n {
            g.spawn(i);
        }
        for i in 0..n {
            g.wait_rpc(i);
            let id = g.cli(i).args(["node", "id", "-q"]).run();
            g.nodes[i].id = id.trim().to_string();
            assert!(
                g.nodes[i].id.contains('@'),
                "`garage node id -q` printed {:?}, want ID@ADDR\n{}",
                g.nodes[i].id,
                g.logs()
            );
        }
        for i in 1..n {
            let id = g.nodes[i].id.clone();
            g.cli(0).args(["node", "connect", &id]).run();
        }
        g.wait_for(READY_LIMIT, "node 0 to see every node", |g| {
            let (_, out) = g
                .cli(0)
                .arg("status")
                .limit(Duration::from_secs(20))
                .output();
            let text = String::from_utf8_lossy(&out.stdout);
            out.status.success() && g.nodes.iter().all(|node| text.contains(&node.id[..16]))
        });
        for i in 0..n {
            let hex = g.nodes[i]
                .id
                .split('@')
                .next()
                .unwrap_or_default()
                .to_string();
            g.cli(0)
                .args([
                    "layout",
                    "assign",
                    "-z",
                    &format!("zone{i}"),
                    "-c",
                    "1G",
                    &hex,
                ])
                .run();
        }
        g.cli(0).args(["layout", "apply", "--version", "1"]).run();
        g.wait_healthy();

        g.cli(0).args(["bucket", "create", BUCKET]).run();
        let created = g.cli(0).args(["key", "create", "berth-tests"]).run();
        g.key_id = field(&created, "Key ID:");
        g.secret = field(&created, "Secret key:");
        g.cli(0)
            .args(["bucket", "allow", "--read", "--write", "--owner", BUCKET])
            .args(["--key", "berth-tests"])
            .run();
        for i in 0..n {
            g.wait_s3(i);
        }
        g
    }

    /// How many nodes the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no node (never: `start` needs one).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s S3 endpoint, `http://127.0.0.1:PORT` (path-style: the bucket is the
    /// first path segment).
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://{}", self.nodes[i].s3)
    }

    /// Every node's S3 endpoint, in node order.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.endpoint(i)).collect()
    }

    /// Node `i`'s S3 address.
    pub fn s3_addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].s3
    }

    /// The region requests must be signed for.
    pub fn region(&self) -> &str {
        REGION
    }

    /// The bucket `start` created.
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// The access key id that may read, write and own the bucket.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// That key's secret.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// `s3://BUCKET?endpoint=URL&region=garage` for node `i`: the shape of Berth's
    /// `--blobs` setting.
    pub fn url(&self, i: usize) -> String {
        format!(
            "s3://{BUCKET}?endpoint={}&region={REGION}",
            self.endpoint(i)
        )
    }

    /// A configuration of Berth's object store client for the bucket through node `i`,
    /// with this cluster's key and 5 MiB parts (the smallest S3 takes), so an upload of a
    /// few MiB is already a multipart one.
    pub fn objects_config(&self, i: usize) -> ObjectsConfig {
        let mut c = ObjectsConfig::parse(&self.url(i)).expect("the harness's URL parses");
        c.credentials = Some(Credentials::new(self.key_id(), self.secret()));
        c.part_size = 5 << 20;
        c
    }

    /// A client of the bucket through node `i` (see [`Garage::objects_config`]).
    pub fn objects(&self, i: usize) -> Objects {
        Objects::open(self.objects_config(i)).expect("open the object store client")
    }

    /// `curl` signing for this cluster's key (`--aws-sigv4`, curl computes the signature)
    /// at `key` in the bucket through node `i`: `-sS` and the URL are set, the caller adds
    /// the method and body (`-T FILE`, `-X DELETE`, `-o FILE`, `-w '%{http_code}'`, ...).
    pub fn curl(&self, i: usize, key: &str) -> Cmd {
        // Garage wants x-amz-content-sha256 on every signed request, which curl (7.88)
        // does not add by itself; given, curl signs it as the payload's hash.
        Cmd::tool("curl")
            .arg("-sS")
            .args(["--aws-sigv4", "aws:amz:garage:s3"])
            .arg("--user")
            .arg(format!("{}:{}", self.key_id, self.secret))
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
            .arg(format!("{}/{BUCKET}/{key}", self.endpoint(i)))
            .limit(Duration::from_secs(60))
    }

    /// Kills node `i` with SIGKILL, as a crash would; its data and ports stay for
    /// `start_node`.
    pub fn stop_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            wait::signal(&child, libc::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Starts node `i` again on its own data and ports, and returns once it has rejoined:
    /// every node says the cluster is fully operational and its S3 endpoint answers.
    pub fn start_node(&mut self, i: usize) {
        assert!(
            self.nodes[i].child.is_none(),
            "start_node({i}) on a running node"
        );
        self.spawn(i);
        self.wait_rpc(i);
        // The others retry a lost peer with a growing pause (half a minute by now, in a
        // test); told to connect, they do at once, as an operator's `node connect` would.
        let id = self.nodes[i].id.clone();
        for j in 0..self.nodes.len() {
            if j != i && self.nodes[j].child.is_some() {
                self.cli(j).args(["node", "connect", &id]).run();
            }
        }
        self.wait_healthy();
        self.wait_s3(i);
    }

    /// Whether node `i` is meant to be up.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// What `BERTH_TEST_GARAGE` tells the test processes a `with-cluster` run starts, so
    /// each registry they start gets a bucket of its own on this cluster ([`GarageRef`]).
    pub fn env_value(&self) -> String {
        serde_json::json!({
            "bin": self.bin,
            "conf": self.nodes[0].conf,
            "key_id": self.key_id,
            "secret": self.secret,
            "endpoints": self.endpoints(),
        })
        .to_string()
    }

    /// The `garage` CLI talking to node `i` (its configuration names its RPC address and
    /// the cluster's secret).
    pub fn cli(&self, i: usize) -> Cmd {
        Cmd::new(&self.bin)
            .arg("-c")
            .arg(&self.nodes[i].conf)
            .limit(Duration::from_secs(60))
    }

    /// Every node's log so far, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for i in 0..self.nodes.len() {
            let p = self.log_path(i);
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            s.push_str(&format!(
                "--- garage node {i} ({}) ---\n{text}",
                p.display()
            ));
        }
        s
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}")).join("garage.log")
    }

    fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .expect("open a Garage node's log");
        let node = &mut self.nodes[i];
        node.starts += 1;
        let mut banner = log.try_clone().expect("clone log handle");
        let _ = writeln!(banner, "=== berth-tests: start {} ===", node.starts);
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&node.conf)
            .arg("server")
            .env("RUST_LOG", "garage=info")
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        node.child = Some(child);
    }

    /// Waits until node `i` answers the CLI over RPC (its key made, its port bound).
    fn wait_rpc(&mut self, i: usize) {
        self.wait_for(READY_LIMIT, &format!("node {i} to answer RPC"), |g| {
            let (_, out) = g
                .cli(i)
                .arg("status")
                .limit(Duration::from_secs(20))
                .output();
            out.status.success()
        });
    }

    /// Waits until every running node says the cluster is fully operational (all storage
    /// nodes connected, every partition with its quorum).
    fn wait_healthy(&mut self) {
        self.wait_for(
            READY_LIMIT,
            "every node to report the cluster healthy",
            |g| {
                g.nodes.iter().all(|node| {
                    node.child.is_none()
                        || http_get(node.admin, "/health")
                            .is_some_and(|r| r.starts_with("HTTP/1.1 200") && r.contains("fully"))
                })
            },
        );
    }

    /// Waits until node `i`'s S3 endpoint lists the bucket for the key (the key and the
    /// bucket's permissions have reached it).
    fn wait_s3(&mut self, i: usize) {
        self.wait_for(
            READY_LIMIT,
            &format!("node {i}'s S3 API to accept the key"),
            |g| {
                let (_, out) = g
                    .curl(i, "?list-type=2&max-keys=1")
                    .args(["-o", "/dev/null", "-w", "%{http_code}"])
                    .limit(Duration::from_secs(20))
                    .output();
                String::from_utf8_lossy(&out.stdout).trim() == "200"
            },
        );
    }

    /// Polls `ready` until it holds; panics naming `what`, with every node's log, if it
    /// does not within `limit` or a node process exits meanwhile.
    fn wait_for(&mut self, limit: Duration, what: &str, mut ready: impl FnMut(&Garage) -> bool) {
        let outcome = wait::until(limit, || {
            for (i, node) in self.nodes.iter_mut().enumerate() {
                if let Some(c) = &mut node.child {
                    if let Ok(Some(status)) = c.try_wait() {
                        return Some(Err(format!("garage node {i} exited with {status}")));
                    }
                }
            }
            if ready(self) {
                return Some(Ok(()));
            }
            std::thread::sleep(Duration::from_millis(200));
            None
        });
        match outcome {
            Some(Ok(())) => {}
            Some(Err(why)) => panic!("while waiting for {what}: {why}\n{}", self.logs()),
            None => panic!(
                "Garage: timed out after {limit:?} waiting for {what}\n{}",
                self.logs()
            ),
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// The Garage binary: `BERTH_GARAGE`, else the cached install; panics with the command
/// that installs it.
pub fn garage_bin() -> PathBuf {
    let p =
        std::env::var_os("BERTH_GARAGE").map_or_else(|| PathBuf::from(GARAGE_BIN), PathBuf::from);
    assert!(
        p.is_file(),
        "Garage is required by this test but {} is missing. Install it with \
         `sudo scripts/install-test-deps.sh` (it runs `cargo install garage --version 2.5.0 \
         --locked --root /var/cache/berth-tests/garage`, about 25 CPU-minutes the first time), \
         or point BERTH_GARAGE at a garage binary.",
        p.display()
    );
    p
}

/// `n` loopback ports free a moment ago, all different: the listeners are held until every
/// port is chosen, so the kernel cannot hand the same one out twice.
fn free_ports(n: usize) -> Vec<SocketAddr> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("local addr of a bound listener"))
        .collect()
}

/// The value after `label` on its line of `garage key create`'s output.
fn field(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("no {label:?} in `garage key create`'s output:\n{text}"))
}

/// A plain HTTP GET (the admin API's health check needs no signature); the whole response
/// as text, or `None` if nothing answered.
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// `c`, giving up on an unreachable endpoint within a few seconds rather than the
/// client's default minute.
pub fn impatient(mut c: ObjectsConfig) -> ObjectsConfig {
    c.connect_timeout = Duration::from_secs(1);
    c.retry = RetrySettings {
        max_retries: 2,
        retry_timeout: Duration::from_secs(3),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
    };
    c
}

/// A Garage cluster another process started (`with-cluster`), as `BERTH_TEST_GARAGE`
/// describes it ([`Garage::env_value`]): enough to make buckets on it and point nodes at
/// them.
pub struct GarageRef {
    bin: PathBuf,
    conf: PathBuf,
    key_id: String,
    secret: String,
    endpoints: Vec<String>,
}

impl GarageRef {
    /// The cluster `BERTH_TEST_GARAGE` names, if it is set; panics if it is unreadable.
    pub fn from_env() -> Option<GarageRef> {
        let text = std::env::var("BERTH_TEST_GARAGE").ok()?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("BERTH_TEST_GARAGE is not JSON ({e}): {text}"));
        let s = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("BERTH_TEST_GARAGE lacks {k}: {text}"))
                .to_string()
        };
        let endpoints = v["endpoints"]
            .as_array()
            .unwrap_or_else(|| panic!("BERTH_TEST_GARAGE lacks endpoints: {text}"))
            .iter()
            .filter_map(|e| e.as_str().map(str::to_string))
            .collect();
        Some(GarageRef {
            bin: s("bin").into(),
            conf: s("conf").into(),
            key_id: s("key_id"),
            secret: s("secret"),
            endpoints,
        })
    }

    /// Creates bucket `name` and lets the cluster's key read, write and own it.
    pub fn create_bucket(&self, name: &str) {
        let cli = || {
            Cmd::new(&self.bin)
                .arg("-c")
                .arg(&self.conf)
                .limit(Duration::from_secs(60))
        };
        cli().args(["bucket", "create", name]).run();
        cli()
            .args(["bucket", "allow", "--read", "--write", "--owner", name])
            .args(["--key", &self.key_id])
            .run();
    }

    /// The settings of a node on bucket `name` through Garage node `i % n`: `BERTH_BLOBS`
    /// and the AWS credentials.
    pub fn node_env(&self, name: &str, i: usize) -> Vec<(String, String)> {
        let endpoint = &self.endpoints[i % self.endpoints.len()];
        vec![
            (
                "BERTH_BLOBS".into(),
                format!("s3://{name}?endpoint={endpoint}&region={REGION}"),
            ),
            ("AWS_ACCESS_KEY_ID".into(), self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret.clone()),
        ]
    }
}
