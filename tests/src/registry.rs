//! One `berth serve` process on a free loopback port with its own data folder.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::binary::berth_bin;
use crate::front::Front;
use crate::garage::GarageRef;
use crate::http::Client;
use crate::wait;

/// How long a fresh server may take to accept connections (includes store recovery).
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a graceful SIGTERM shutdown may take.
const STOP_LIMIT: Duration = Duration::from_secs(20);

/// The organisation every `Registry::start()` provisions.
pub const ORG: &str = "e2e";
/// The private registry (in `ORG`) every `Registry::start()` provisions.
pub const REGISTRY: &str = "tests";

/// `{ORG}/{REGISTRY}/{image}`: a repository name in the default registry.
pub fn repo(image: &str) -> String {
    format!("{ORG}/{REGISTRY}/{image}")
}

/// A running registry. Killed (SIGKILL) on drop; its data folder is removed with it.
///
/// Every start provisions, through the management API and the admin token the server wrote
/// to DATA/admin-token, the organisation `ORG`, its private registry `REGISTRY` and a
/// write token, which `client()` and the client drivers present: since issue 3 nothing in
/// `/v2/` answers without a credential, and names must be `{org}/{registry}/{image}`.
pub struct Registry {
    child: Option<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    starts: u32,
    env: Vec<(String, String)>,
    admin: String,
    token: String,
    /// Under `with-cluster`: the other two nodes of its store and the front clients reach
    /// all three through.
    cluster: Option<(Front, Vec<Registry>)>,
}

/// The nodes a `with-cluster` run starts per registry: one the test controls and two more.
const CLUSTER_NODES: usize = 3;

/// With `BERTH_TEST_POSTGRES` set (the URL of a PostgreSQL server, ending in a database a
/// role that may create databases connects to), a fresh database there for the server whose
/// folder is `dir`, so the suite runs on PostgreSQL metadata too: its URL.
pub fn postgres_metadata(dir: &std::path::Path) -> Option<String> {
    let server = std::env::var("BERTH_TEST_POSTGRES").ok()?;
    let name = store_name(dir);
    // Tests start servers at once, and concurrent creations may find the template busy:
    // retry a few times.
    for attempt in 1.. {
        let out = Command::new("psql")
            .arg(&server)
            .args(["-v", "ON_ERROR_STOP=1", "-qc"])
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .expect("run psql (BERTH_TEST_POSTGRES is set: install postgresql-client)");
        if out.status.success() {
            break;
        }
        assert!(
            attempt < 20,
            "create database {name} on {server}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (base, _) = server
        .rsplit_once('/')
        .expect("BERTH_TEST_POSTGRES ends in /DATABASE");
    Some(format!("{base}/{name}"))
}

/// The name of the database (and, with `_` as `-`, the bucket) of the store in `dir`.
fn store_name(dir: &std::path::Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

impl Registry {
    /// Starts a server on a fresh data folder, provisioned as the type says.
    pub fn start() -> Registry {
        Registry::start_with_env(&[])
    }

    /// As `start`, with extra environment for `berth serve` (kept across restarts), e.g.
    /// `BERTH_AUTH_MAX_FAILURES` for tests that send many bad credentials on purpose.
    pub fn start_with_env(env: &[(&str, &str)]) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-")
            .tempdir()
            .expect("create a temp dir for the registry");
        std::fs::create_dir_all(dir.path().join("data")).expect("create data dir");
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // Under `with-cluster` a store of its own (a database and a bucket) served by three
        // nodes behind a front, unless the test chose its storage itself.
        let garage = GarageRef::from_env().filter(|_| {
            !env.iter()
                .any(|(k, _)| k.starts_with("BERTH_METADATA") || k == "BERTH_BLOBS")
        });
        if !env.iter().any(|(k, _)| k == "BERTH_METADATA") {
            if let Some(url) = postgres_metadata(dir.path()) {
                env.push(("BERTH_METADATA".into(), url));
            }
        }
        // Every node names the front as its public URL, as a deployment behind a balancer
        // must: the Download archive and the bearer realm carry it, the same on every node.
        let front = garage.as_ref().map(|_| Front::start(&[]));
        if let Some(f) = &front {
            env.push(("BERTH_PUBLIC_URL".into(), f.url()));
        }
        if let Some(g) = &garage {
            assert!(
                env.iter().any(|(k, _)| k == "BERTH_METADATA"),
                "BERTH_TEST_GARAGE needs BERTH_TEST_POSTGRES too (run under with-cluster)"
            );
            let bucket = store_name(dir.path()).replace('_', "-");
            g.create_bucket(&bucket);
            env.extend(g.node_env(&bucket, 0));
        }
        let mut r = Registry {
            child: None,
            addr: "127.0.0.1:0".parse().expect("literal socket address"),
            dir,
            starts: 0,
            env,
            admin: String::new(),
            token: String::new(),
            cluster: None,
        };
        r.spawn();
        r.provision();
        if let Some(g) = garage {
            let bucket = store_name(r.dir.path()).replace('_', "-");
            let others: Vec<Registry> = (1..CLUSTER_NODES)
                .map(|i| {
                    let mut env = r.env.clone();
                    env.retain(|(k, _)| k != "BERTH_BLOBS");
                    env.extend(g.node_env(&bucket, i).into_iter().take(1));
                    r.node_with(env)
                })
                .collect();
            let front = front.expect("started with the bucket");
            front.add(r.addr);
            for o in &others {
                front.add(o.addr);
            }
            r.cluster = Some((front, others));
            r.write_authfile();
        }
        r
    }

    /// Another node of the same store: a server of its own (its own data folder, port and
    /// log) on the same shared metadata and blobs (`BERTH_METADATA`, `BERTH_BLOBS` in the
    /// environment this one was started with), with this one's admin and write tokens,
    /// which the store already holds.
    pub fn another_node(&self) -> Registry {
        assert!(
            self.env.iter().any(|(k, _)| k == "BERTH_METADATA"),
            "another_node needs a registry started with BERTH_METADATA"
        );
        self.node_with(self.env.clone())
    }

    /// A node of this store started with `env`.
    fn node_with(&self, env: Vec<(String, String)>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-node-")
            .tempdir()
            .expect("create a temp dir for the node");
        std::fs::create_dir_all(dir.path().join("data")).expect("create data dir");
        let mut r = Registry {
            child: None,
            addr: "127.0.0.1:0".parse().expect("literal socket address"),
            dir,
            starts: 0,
            env,
            admin: self.admin.clone(),
            token: self.token.clone(),
            cluster: None,
        };
        r.spawn();
        r.write_authfile();
        r
    }

    fn write_authfile(&self) {
        let auth = format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            self.host(),
            crate::auth::base64(format!("berth:{}", self.token).as_bytes())
        );
        std::fs::write(self.authfile(), auth).expect("write the clients' auth file");
    }

    fn provision(&mut self) {
        let path = self.data_dir().join("admin-token");
        self.admin = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}\n{}", path.display(), self.log()))
            .trim()
            .to_string();
        assert!(
            self.admin.starts_with("berth_adm_"),
            "DATA/admin-token holds {:?}, want a berth_adm_ secret",
            self.admin
        );
        let admin = self.admin();
        admin.create_org(ORG);
        let slug = admin.create_registry(ORG, REGISTRY, false);
        assert_eq!(slug, REGISTRY);
        self.token = admin
            .create_token(ORG, &["write_packages"], &[], None)
            .token;
        self.write_authfile();
    }

    /// The admin token's secret (DATA/admin-token).
    pub fn admin_token(&self) -> &str {
        &self.admin
    }

    /// The management API as the admin (create orgs, registries, tokens; revoke).
    pub fn admin(&self) -> crate::auth::Admin {
        crate::auth::Admin::new(self.addr(), &self.admin)
    }

    /// The provisioned write token of `ORG` (all its registries).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A containers-auth.json (skopeo `--authfile`, podman `REGISTRY_AUTH_FILE`) holding the
    /// write token for this registry's host.
    pub fn authfile(&self) -> PathBuf {
        self.scratch("auth").join("auth.json")
    }

    /// `127.0.0.1:PORT` where clients reach it: the server, or under `with-cluster` the
    /// front of its three nodes.
    pub fn addr(&self) -> SocketAddr {
        match &self.cluster {
            Some((front, _)) => front.addr(),
            None => self.addr,
        }
    }

    /// How many nodes serve it behind [`addr`](Self::addr): 1, or under `with-cluster` 3,
    /// which the front gives connections to in turn.
    pub fn nodes(&self) -> usize {
        1 + self.cluster.as_ref().map_or(0, |(_, others)| others.len())
    }

    /// `127.0.0.1:PORT` as clients write it in image references.
    pub fn host(&self) -> String {
        self.addr().to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The server's data folder.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A scratch folder that lives as long as the registry (for layouts, client roots, ...).
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join("scratch").join(name);
        std::fs::create_dir_all(&p).expect("create scratch dir");
        p
    }

    /// A new raw HTTP client for this server presenting the write token (Basic).
    pub fn client(&self) -> Client {
        self.client_as(&self.token)
    }

    /// A raw client presenting `token` as the Basic password, as docker and podman do.
    pub fn client_as(&self, token: &str) -> Client {
        Client::new(self.addr()).with_auth(&crate::auth::basic(token))
    }

    /// A raw client sending no credentials.
    pub fn anonymous(&self) -> Client {
        Client::new(self.addr())
    }

    /// The `Authorization` value `client()` sends, for tests that write raw requests.
    pub fn auth_header(&self) -> String {
        crate::auth::basic(&self.token)
    }

    /// `skopeo copy` with this registry's credentials (`--authfile`) on either side.
    pub fn skopeo_copy(&self, src: &str, dst: &str, extra: &[&str]) -> String {
        let authfile = self.authfile();
        let mut args: Vec<&str> = vec!["--authfile", authfile.to_str().expect("utf-8 temp path")];
        args.extend_from_slice(extra);
        crate::clients::skopeo_copy(src, dst, &args)
    }

    /// Everything the server wrote to stdout and stderr so far, for failure messages.
    pub fn log(&self) -> String {
        let mut s = String::new();
        for i in 1..=self.starts {
            for stream in ["out", "err"] {
                let p = self.log_path(i, stream);
                if let Ok(text) = std::fs::read_to_string(&p) {
                    if !text.is_empty() {
                        s.push_str(&format!("--- berth run {i} std{stream} ---\n{text}"));
                    }
                }
            }
        }
        s
    }

    fn log_path(&self, run: u32, stream: &str) -> PathBuf {
        self.dir.path().join(format!("berth-{run}.std{stream}"))
    }

    /// Stops with SIGTERM, requires a clean exit 0, and starts again on the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// SIGTERM and wait; panics (with the log) unless the server exits 0 in time.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        wait::signal(&child, libc::SIGTERM);
        match wait::child_exit(&mut child, STOP_LIMIT) {
            Some(status) => assert!(
                status.success(),
                "berth exited with {status} after SIGTERM, want 0\n{}",
                self.log()
            ),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "berth did not exit within {STOP_LIMIT:?} of SIGTERM\n{}",
                    self.log()
                );
            }
        }
    }

    /// SIGKILL, as a crash or power cut would stop it; the data stays for `start_again`.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            wait::signal_group(&child, libc::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data folder (after `kill_9` or `stop`).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "start_again on a running registry");
        self.spawn();
    }

    /// Whether the server process is still alive.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Runs `berth check --data DIR` on the (stopped) store; it re-hashes every blob.
    pub fn check(&self) -> Output {
        Command::new(berth_bin())
            .arg("check")
            .arg("--data")
            .arg(self.data_dir())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .output()
            .expect("run berth check")
    }

    /// Asserts `berth check` exits 0, showing its output otherwise.
    pub fn assert_check_clean(&self) {
        let out = self.check();
        assert!(
            out.status.success(),
            "berth check failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn spawn(&mut self) {
        let bin = berth_bin();
        // The port is found by binding and releasing it; another process may grab it in
        // between, so a start that never listens is retried on a new port a few times.
        // A restart comes back on the same port, so clients' references stay valid.
        let fixed = self.addr.port() != 0;
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let addr = if fixed { self.addr } else { free_port() };
            self.starts += 1;
            let out = File::create(self.log_path(self.starts, "out")).expect("log file");
            let err = File::create(self.log_path(self.starts, "err")).expect("log file");
            let mut child = Command::new(&bin)
                .arg("serve")
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--data")
                .arg(self.data_dir())
                .env("RUST_BACKTRACE", "1")
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                // Its own process group, so a kill reaches anything it started too.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            let up = wait::until(START_LIMIT, || {
                if let Ok(Some(status)) = child.try_wait() {
                    return Some(Err(status));
                }
                answers_http(addr).then_some(Ok(()))
            });
            match up {
                Some(Ok(())) => {
                    self.addr = addr;
                    self.child = Some(child);
                    return;
                }
                Some(Err(status)) => {
                    last_err = format!("berth exited early with {status}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = format!("berth did not accept connections within {START_LIMIT:?}");
                }
            }
        }
        panic!(
            "could not start berth ({}): {last_err}\n{}",
            bin.display(),
            self.log()
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            wait::signal_group(&child, libc::SIGKILL);
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            if !log.is_empty() {
                eprintln!("{log}");
            }
        }
    }
}

/// Whether something on `addr` accepts a connection and answers `GET /v2/` with any HTTP
/// response: a bare accept could still come from a dying previous process.
fn answers_http(addr: SocketAddr) -> bool {
    let opts = berth_client::Options {
        connect_timeout: Duration::from_millis(200),
        read_timeout: Duration::from_secs(2),
        write_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let mut c = berth_client::HttpConn::new(vec![addr], addr.to_string(), opts);
    let close = [("Connection", "close")];
    c.request("GET", "/v2/", &close, &[], berth_client::Sink::Discard)
        .is_ok()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    l.local_addr().expect("local addr of a bound listener")
}
