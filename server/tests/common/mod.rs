//! Shared by the integration tests: the real `berth` binary on a loopback port with a
//! temporary data directory, driven by the workspace's HTTP/1.1 client (`berth-client`).
//! Every started server is provisioned through the management API with the admin token
//! from DATA/admin-token: organisation `acme`, registry `web`, and a write token, which
//! `Server::client()` presents as Basic credentials.

// Tests measure wall time and wait for the process: the server's clock rule is not theirs.
#![allow(clippy::disallowed_methods, dead_code, unused_imports)]

use base64::Engine as _;
pub use sha2::{Digest as _, Sha256};
pub use std::io::{BufRead, BufReader, Read, Write};
pub use std::net::{SocketAddr, TcpListener, TcpStream};
pub use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
pub use std::time::{Duration, Instant};

pub const REPO: &str = "acme/web/app";

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdout: BufReader<ChildStdout>,
    pub data: std::path::PathBuf,
    /// The admin token's secret (DATA/admin-token).
    pub admin: String,
    /// A write token of organisation `acme`.
    pub token: String,
}

pub fn berth(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.args(args)
        .env("BERTH_LOG", "warn")
        .env_remove("BERTH_CONFIG")
        .env_remove("BERTH_LISTEN")
        .env_remove("BERTH_DATA")
        .stdin(Stdio::null());
    c
}

/// `berth serve` on a free loopback port over `data`, with `extra` arguments.
pub fn serve_command(data: &std::path::Path, extra: &[&str]) -> Command {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    berth(&args)
}

impl Server {
    pub fn start(data: &std::path::Path) -> Server {
        Server::start_with(data, &[])
    }

    pub fn start_with(data: &std::path::Path, env: &[(&str, &str)]) -> Server {
        let mut cmd = serve_command(data, &[]);
        cmd.envs(env.iter().copied());
        Server::spawn(cmd)
    }

    pub fn spawn(cmd: Command) -> Server {
        Server::spawn_logging_to(cmd, Stdio::inherit())
    }

    /// Like `spawn`, with the server's stderr (its log) going to `log`.
    pub fn spawn_logging_to(mut cmd: Command, log: Stdio) -> Server {
        let data = cmd
            .get_args()
            .skip_while(|a| *a != "--data")
            .nth(1)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn berth");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        // "berth: listening on http://127.0.0.1:PORT, data in DIR"
        assert!(line.starts_with("berth: listening on http://"), "{line}");
        assert!(line.contains(&data), "{line}");
        let addr = line["berth: listening on http://".len()..]
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut srv = Server {
            child,
            addr,
            stdout,
            data: data.clone().into(),
            admin: String::new(),
            token: String::new(),
        };
        srv.provision();
        srv
    }

    /// Org `acme`, registry `web` (existing ones are kept across restarts), a write token.
    fn provision(&mut self) {
        self.admin = std::fs::read_to_string(self.data.join("admin-token"))
            .expect("DATA/admin-token written at first start")
            .trim()
            .to_string();
        let mut c = self.admin_client();
        let r = c.json("POST", "/api/v1/orgs", r#"{"slug":"acme"}"#);
        assert!(r.status == 201 || r.status == 409, "{r:?}");
        let r = c.json("POST", "/api/v1/orgs/acme/registries", r#"{"name":"web"}"#);
        assert!(r.status == 201 || r.status == 409, "{r:?}");
        self.token = c.create_token("acme", r#"{"scopes":["write_packages"]}"#);
    }

    /// A client presenting the admin token.
    pub fn admin_client(&self) -> Client {
        Client::connect_as(self.addr, &bearer_header(&self.admin))
    }

    /// A client without credentials.
    pub fn anonymous(&self) -> Client {
        Client::connect(self.addr)
    }

    /// `Authorization` value for the write token of `acme`.
    pub fn auth(&self) -> String {
        basic(&self.token)
    }

    /// A client presenting acme's write token (Basic).
    pub fn client(&self) -> Client {
        Client::connect_as(self.addr, &self.auth())
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0);
    }

    /// Waits at most `limit` for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if t.elapsed() > limit {
                let _ = self.child.kill();
                panic!("berth did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn rest_of_stdout(&mut self) -> String {
        let mut s = String::new();
        let _ = self.stdout.read_to_string(&mut s);
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use berth_client::Response;

/// The body as JSON, panicking with the whole response otherwise.
pub trait JsonBody {
    fn json(&self) -> serde_json::Value;
}

impl JsonBody for Response {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// One connection to the server, never reopened behind the test's back: a test that sees
/// the server close it can tell. Panics on any transport failure.
pub struct Client {
    conn: berth_client::HttpConn,
    /// Sent as `Authorization` on every request that does not set its own.
    pub auth: Option<String>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let opts = berth_client::Options {
            read_timeout: Duration::from_secs(30),
            reconnect: false,
            ..Default::default()
        };
        Client {
            conn: berth_client::HttpConn::connect(addr, "localhost", opts).unwrap(),
            auth: None,
        }
    }

    pub fn connect_as(addr: SocketAddr, auth: &str) -> Client {
        let mut c = Client::connect(addr);
        c.auth = Some(auth.to_string());
        c
    }

    /// The socket, for raw bytes.
    pub fn stream(&mut self) -> &mut TcpStream {
        self.conn.socket().unwrap()
    }

    /// A JSON request to the management API.
    pub fn json(&mut self, method: &str, path: &str, body: &str) -> Response {
        self.request(
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    }

    /// Creates a token through the API and returns its secret.
    pub fn create_token(&mut self, org: &str, body: &str) -> String {
        let r = self.json("POST", &format!("/api/v1/orgs/{org}/tokens"), body);
        assert_eq!(r.status, 201, "{r:?}");
        r.json()["token"].as_str().unwrap().to_string()
    }

    /// `headers` with this client's `Authorization` unless they carry their own.
    fn with_auth<'a>(&'a self, headers: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut all = headers.to_vec();
        let own = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        if let (Some(a), false) = (&self.auth, own) {
            all.push(("Authorization", a));
        }
        all
    }

    /// Sends a request without reading its answer ([`Client::response`] does).
    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
        let head = {
            let all = self.with_auth(headers);
            self.conn.head(method, path, &all, body.len() as u64)
        };
        self.conn.send_raw(&head).unwrap();
        self.conn.send_raw(body).unwrap();
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let head = {
            let all = self.with_auth(headers);
            self.conn.head(method, path, &all, body.len() as u64)
        };
        self.conn
            .exchange(&head, &[body], method == "HEAD", berth_client::Sink::Keep)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    /// Reads the next response (of a request sent with [`Client::send`] or raw bytes).
    pub fn response(&mut self, head_only: bool) -> Response {
        self.conn
            .read_response(head_only, berth_client::Sink::Keep)
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    /// Runs an OCI push step of `berth_client::oci` on this connection with this client's
    /// `Authorization`.
    pub fn oci<T>(
        &mut self,
        step: impl FnOnce(
            &mut berth_client::HttpConn,
            &[(&str, &str)],
        ) -> Result<T, berth_client::oci::PushError>,
    ) -> Result<T, berth_client::oci::PushError> {
        let auth = self.auth.clone();
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        step(&mut self.conn, &headers)
    }

    /// Whether the server has closed this connection (read returns 0 or an error).
    pub fn closed_by_server(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream().read(&mut b), Ok(0) | Err(_))
    }
}

/// `sha256:<hex>` of `b`.
pub use berth_client::oci::sha256_digest as sha256;

pub fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// POST, then PATCH in `chunks` Content-Range pieces, then PUT ?digest=. Returns the digest.
pub fn push_blob(c: &mut Client, data: &[u8], chunks: usize) -> String {
    c.oci(|conn, h| berth_client::oci::push_blob_in_chunks(conn, h, REPO, data, chunks))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The value of counter or gauge `name` in a `/metrics` page.
pub fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// An OCI image manifest naming one config and one uncompressed layer, by digest and size.
pub fn image_manifest(config: (&str, usize), layer: (&str, usize)) -> String {
    berth_client::oci::image_manifest(
        (config.0, config.1 as u64),
        &[(layer.0, layer.1 as u64)],
        berth_client::oci::OCI_LAYER_TAR,
    )
}

/// Standard base64 (with padding), for Basic credentials.
pub fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// `Basic base64(user:token)`.
pub fn basic(token: &str) -> String {
    format!("Basic {}", base64(format!("ci:{token}").as_bytes()))
}

/// `Bearer <token>`.
pub fn bearer_header(token: &str) -> String {
    format!("Bearer {token}")
}

/// Pushes an OCI image of `config` and uncompressed tar `layers` to [`REPO`] as `tag`; its digest.
pub fn put_image(c: &mut Client, tag: &str, config: &[u8], layers: &[&[u8]]) -> String {
    c.oci(|conn, h| berth_client::oci::push_image(conn, h, REPO, tag, config, layers))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// An index entry (or a `subject`) naming image manifest `digest` of `size` bytes, for
/// `linux/{arch}`.
pub fn platform_entry(digest: &str, size: u64, arch: &str) -> String {
    format!(
        r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":{size},"platform":{{"os":"linux","architecture":"{arch}"}}}}"#
    )
}

/// Pushes an OCI index of `entries` ([`platform_entry`]) to [`REPO`] as `tag`; its body.
pub fn put_index(c: &mut Client, tag: &str, entries: &[String]) -> String {
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        entries.join(",")
    );
    let r = c.request(
        "PUT",
        &format!("/v2/{REPO}/manifests/{tag}"),
        &[("Content-Type", "application/vnd.oci.image.index.v1+json")],
        index.as_bytes(),
    );
    assert_eq!(r.status, 201, "{r:?}");
    index
}

/// A tar of regular files `(path, content)`.
pub fn layer_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, body) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, body.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

/// Polls the version's details until the indexer is done with it: its files recorded
/// (`state` past `indexing`) and its checksums too (no longer `computing`).
pub fn indexed(c: &mut Client, path: &str) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let r = c.get(path);
        assert_eq!(r.status, 200, "{r:?}");
        let v = r.json();
        if v["state"] != "indexing" && v["checksums_missing"] != "computing" {
            return v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "not indexed after 30 s: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
