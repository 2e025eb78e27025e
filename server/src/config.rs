//! Typed server configuration. Three layers, later wins: the TOML file, `BERTH_*`
//! environment variables, command-line flags. Every setting has a default and a reason
//! (see `KEYS`); a bad value is reported with its key, where it came from and how to fix it,
//! never with a panic.

use crate::proxies::TrustedProxies;
use berth_core::Limits;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable `key=value` lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Everything `berth serve` needs, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    pub data: PathBuf,
    /// Event loops (reactor threads).
    pub threads: usize,
    /// Worker threads for blocking storage work (commits, deletes).
    pub workers: usize,
    /// Threads that read blob bytes not in memory from the disk for the event loops.
    pub readers: usize,
    /// Connections one client address may have open; `None`: no cap.
    pub max_connections_per_ip: Option<u32>,
    pub log_format: LogFormat,
    /// Whether every finished request is logged.
    pub access_log: bool,
    /// Bounds the core enforces on each connection.
    pub limits: Limits,
    /// How long in-flight requests may run after SIGINT/SIGTERM.
    pub shutdown_grace: Duration,
    /// How long a response may wait on a client that reads nothing.
    pub send_timeout: Duration,
    /// Blobs up to this size share pack files; larger ones become packs of their own.
    pub small_blob_bytes: u64,
    /// Upload sessions untouched this long are removed.
    pub upload_expiry: Duration,
    /// How often garbage collection runs; `None`: only when asked (`berth gc`).
    pub gc_interval: Option<Duration>,
    /// Blob links no manifest references are collected once unused this long; `None`:
    /// only a blob DELETE removes a link.
    pub gc_unreferenced_after: Option<Duration>,
    /// Memory for manifests recently read; 0 turns the cache off.
    pub manifest_cache_bytes: usize,
    /// Pack files kept open; `None`: derived from the descriptor limit at start
    /// (`descriptors.rs`).
    pub open_packs: Option<usize>,
    /// Whether `serve` tightens data-directory entries other local users may read.
    pub fix_permissions: bool,
    /// Whether the package indexer thread runs; off, pushes are still queued for it.
    pub index_packages: bool,
    /// What one layer may cost the indexer (entries listed, bytes decompressed).
    pub index_limits: berth_engine::package::ScanLimits,
    /// Uploads are refused while less than this is free on the data folder's filesystem;
    /// `None`: the smaller of 64 MiB and 1% of the filesystem.
    pub min_free_space: Option<u64>,
    /// Where the metadata lives: `None` for `DATA/meta.redb`, or a PostgreSQL URL.
    pub metadata: Option<MetadataUrl>,
    /// Where blob bytes live: `None` for `DATA/packs`, or an S3 bucket (`s3://…`).
    pub blobs: Option<String>,
    /// Bytes of packs a node keeps in `DATA/cache` when the blobs are in a bucket.
    pub blob_cache_bytes: u64,
    /// Tenancy and access control.
    pub auth: AuthSettings,
    /// The web pages: sign-in sessions and listings.
    pub ui: UiSettings,
}

/// A PostgreSQL URL (`postgres://user[:password]@host[:port]/db`). It may hold a password:
/// `Debug` shows only what follows the `@`.
#[derive(Clone, PartialEq, Eq)]
pub struct MetadataUrl(pub String);

impl std::fmt::Debug for MetadataUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = self.0.rsplit_once('@').map_or("", |(_, p)| p);
        write!(f, "MetadataUrl(postgres://…@{place})")
    }
}

/// The web pages' bounds (`web/ui/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UiSettings {
    /// A sign-in session unused this long is ended.
    pub session_idle: Duration,
    /// Sessions held at once; past it, signing in ends the least recently used one.
    pub max_sessions: usize,
    /// Rows per page of a listing (a registry's images).
    pub page_size: usize,
}

/// How callers are authenticated (docs/auth.md, "Authentication").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSettings {
    /// The base URL clients reach the registry at (`https://registry.example.com`), for the
    /// absolute `realm` of challenges; `None` derives it from each request's `Host`.
    pub public_url: Option<String>,
    /// The `service` named in challenges and expected at the token endpoint.
    pub service: String,
    /// Failed authentications one client IP may make within `failure_window`.
    pub max_failures: u32,
    pub failure_window: Duration,
    /// How long a bearer token from `/auth/token` is valid.
    pub bearer_lifetime: Duration,
    /// Peers whose `X-Forwarded-For` names the client, for the failure throttle.
    pub trusted_proxies: TrustedProxies,
}

/// One setting: its file key, its default (as text, parsed like any other value) and why.
struct Key {
    name: &'static str,
    default: fn() -> String,
    why: &'static str,
}

/// Every setting. Adding one here makes it valid in the file and as `BERTH_<NAME>`.
const KEYS: &[Key] = &[
    Key {
        name: "listen",
        default: || "127.0.0.1:5000".into(),
        why: "loopback only until the operator chooses to expose the registry; 5000 is the registry convention",
    },
    Key {
        name: "data",
        default: || "./berth-data".into(),
        why: "next to where it was started, so a first run needs no setup",
    },
    Key {
        name: "threads",
        default: || cores().to_string(),
        why: "one event loop per core saturates the machine without contention",
    },
    Key {
        name: "workers",
        default: || 8.to_string(),
        why: "commits wait on fsync, not CPU; several in flight let the engine batch them (group commit)",
    },
    Key {
        name: "readers",
        default: || 4.to_string(),
        why: "pulls of blobs not in memory wait on the disk here instead of stalling an event loop; a few reads in flight keep a disk busy",
    },
    Key {
        name: "log_format",
        default: || "text".into(),
        why: "readable on a terminal; choose json for a log shipper",
    },
    Key {
        name: "access_log",
        default: || "true".into(),
        why: "one line per request is what an operator looks at first",
    },
    Key {
        name: "header_bytes",
        default: || Limits::default().header_bytes.to_string(),
        why: "room for bearer tokens and long scope lists, small enough that a peer cannot grow our buffer",
    },
    Key {
        name: "header_count",
        default: || Limits::default().header_count.to_string(),
        why: "real clients send about a dozen headers",
    },
    Key {
        name: "manifest_bytes",
        default: || Limits::default().manifest_bytes.to_string(),
        why: "4 MiB is what distribution, containers/image and containerd accept",
    },
    Key {
        name: "web_body_bytes",
        default: || Limits::default().web_body_bytes.to_string(),
        why: "web and API requests carry small forms and JSON",
    },
    Key {
        name: "upload_bytes",
        default: || "unlimited".into(),
        why: "layers of any size stream to disk without being held in memory",
    },
    Key {
        name: "header_timeout",
        default: || secs(Limits::default().header_timeout),
        why: "bounds slow-loris heads without hurting slow networks",
    },
    Key {
        name: "idle_timeout",
        default: || secs(Limits::default().idle_timeout),
        why: "keep-alive connections are reused between layers; idle ones cost a socket",
    },
    Key {
        name: "body_timeout",
        default: || secs(Limits::default().body_timeout),
        why: "a stalled upload frees its connection after a minute",
    },
    Key {
        name: "page_size",
        default: || Limits::default().page_size.to_string(),
        why: "keeps tag, catalog and referrer responses small; Link headers page the rest",
    },
    Key {
        name: "discard_bytes",
        default: || Limits::default().discard_bytes.to_string(),
        why: "a small unwanted body is cheaper to skip than a reconnect; a large one is not",
    },
    Key {
        name: "linger_bytes",
        default: || Limits::default().linger_bytes.to_string(),
        why: "a client that writes its whole body before reading (refused manifest, early error) sees the answer, not a reset",
    },
    Key {
        name: "send_timeout",
        default: || "60s".into(),
        why: "a client that stops reading mid-download frees its connection and pack handle",
    },
    Key {
        name: "small_blob_bytes",
        default: || "1MiB".into(),
        why: "small blobs share packs (fewer files); large ones are renamed into place, never copied",
    },
    Key {
        name: "upload_expiry",
        default: || "24h".into(),
        why: "a client that vanished mid-push leaves its session; a day is longer than any real push",
    },
    Key {
        name: "max_connections_per_ip",
        default: || "1000".into(),
        why: "one address cannot hold every descriptor (a build farm behind one NAT stays far below); behind a proxy every client shares its address: raise it or say `unlimited`",
    },
    Key {
        name: "gc_interval",
        default: || "1h".into(),
        why: "deleted images give their space back within the hour; a run reads every blob row, so not much more often on large stores (`off`: only `berth gc`)",
    },
    Key {
        name: "gc_unreferenced_after",
        default: || "24h".into(),
        why: "a deleted image's layers are reclaimed a day after anyone last used them, longer than any push takes between uploading a layer and naming it in a manifest (`off`: only blob DELETEs unlink)",
    },
    Key {
        name: "manifest_cache_bytes",
        default: || "8MiB".into(),
        why: "hot manifests (a fleet pulling one tag) are answered from memory; writes drop their repository's entries",
    },
    Key {
        name: "open_packs",
        default: || "auto".into(),
        why: "each blob over small_blob_bytes is a pack file, and each open one a descriptor: `auto` keeps a quarter of the descriptors the process may open (after its own) for packs, at most 4096, the least recently read closing first; connections and uploads have the rest",
    },
    Key {
        name: "fix_permissions",
        default: || "false".into(),
        why: "the data directory is made owner-only (0700, files 0600); one that other local users may read is reported at start, and tightened only when asked (also --fix-permissions)",
    },
    Key {
        name: "index_packages",
        default: || "true".into(),
        why: "package details (contents, checksums, search) are worked out in the background off every push's path; `false` stops the indexer thread on a server that must spend no CPU on it (pushes are still queued, and indexed once it is turned on again)",
    },
    Key {
        name: "index.max_entries",
        default: || "1048576".into(),
        why: "entries listed per layer before its listing stops (the layer is then marked read in part): a whole distribution is ~100,000 files, and a layer of millions of empty files cannot fill the index",
    },
    Key {
        name: "index.max_uncompressed",
        default: || "64GiB".into(),
        why: "bytes one layer may decompress to while it is listed: a tar bomb (a small gzip of endless zeros) costs the indexer at most this much reading, at idle priority, and is then marked read in part",
    },
    Key {
        name: "min_free_space",
        default: || "auto".into(),
        why: "uploads are refused (507) below it, so that on a full disk deletes, garbage collection and metadata commits still have room to free space; auto is 64MiB, or 1% of a smaller filesystem (`off`: fill the disk)",
    },
    Key {
        name: "metadata",
        default: String::new,
        why: "empty: the metadata (organisations, tokens, repositories, tags, manifests, the package index) is in DATA/meta.redb; postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE keeps it in PostgreSQL, shared by every node of a distributed deployment (the password may instead come from PGPASSWORD; it is never logged)",
    },
    Key {
        name: "blobs",
        default: String::new,
        why: "empty: blob bytes are in DATA/packs; s3://BUCKET?endpoint=URL&region=R keeps them in S3-compatible object storage (AWS S3, R2, MinIO, Ceph, Garage), credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (never logged)",
    },
    Key {
        name: "blob_cache",
        default: || "10GiB".into(),
        why: "with blobs in a bucket, the packs a node read last are kept in DATA/cache (content never changes, so a copy is good forever): pulls of popular images are served from local disk",
    },
    Key {
        name: "public_url",
        default: String::new,
        why: "empty: challenges name http://<Host>/auth/token; set https://your.host when behind a TLS proxy",
    },
    Key {
        name: "auth.service",
        default: || "berth".into(),
        why: "the service name clients echo to the token endpoint; any stable string works",
    },
    Key {
        name: "auth.max_failures",
        default: || "10".into(),
        why: "enough for a mistyped token or two per window, far too few to guess a 238-bit secret",
    },
    Key {
        name: "auth.failure_window",
        default: || "60s".into(),
        why: "a locked-out client is back within a minute",
    },
    Key {
        name: "auth.bearer_lifetime",
        default: || "300s".into(),
        why: "long enough for one push of large layers, short enough that a leaked bearer token soon expires (revocation is immediate anyway)",
    },
    Key {
        name: "trusted_proxies",
        default: String::new,
        why: "empty: X-Forwarded-For is ignored and the socket's peer is the client; list your reverse proxies (addresses or CIDR blocks, e.g. 10.0.0.0/8, ::1) so failed logins are counted per client, not per proxy",
    },
    Key {
        name: "ui.session_idle",
        default: || "12h".into(),
        why: "a working day in the web pages without signing in again; a session left open on a shared machine ends overnight (revoking its token ends it at once)",
    },
    Key {
        name: "ui.max_sessions",
        default: || "10000".into(),
        why: "a session is a few hundred bytes of memory; this many is far more than the people using one registry server, and a script signing in in a loop cannot grow the server's memory past it",
    },
    Key {
        name: "ui.page_size",
        default: || "50".into(),
        why: "a registry's images fit on a screen or two and each row reads its tags; `?after=` pages the rest",
    },
    Key {
        name: "shutdown_grace",
        default: || "10s".into(),
        why: "lets a push in progress finish its commit before the process exits",
    },
];

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// Where a value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("the default"),
            Source::File(p) => write!(f, "config file {}", p.display()),
            Source::Env(v) => write!(f, "environment variable {v}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Why the configuration could not be loaded. Each says what to change.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("config file {path} is not valid TOML: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("unknown key `{key}` in {origin}; known keys: {known}")]
    UnknownKey {
        key: String,
        origin: Source,
        known: String,
    },
    #[error("bad value for `{key}` ({origin}): {problem}; {fix}")]
    Value {
        key: &'static str,
        origin: Source,
        problem: String,
        fix: String,
    },
}

/// Values given on the command line; `None` means not given.
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub public_url: Option<String>,
    pub trusted_proxies: Option<String>,
    /// `--metadata URL`: sets `metadata`.
    pub metadata: Option<String>,
    /// `--blobs URL`: sets `blobs`.
    pub blobs: Option<String>,
    /// `--fix-permissions`: sets `fix_permissions`.
    pub fix_permissions: bool,
}

/// The raw text of every setting and where it came from, before typing.
struct Layers {
    values: BTreeMap<&'static str, (String, Source)>,
}

impl Layers {
    fn defaults() -> Layers {
        let values = KEYS
            .iter()
            .map(|k| (k.name, ((k.default)(), Source::Default)))
            .collect();
        Layers { values }
    }

    fn set(&mut self, key: &str, value: String, source: Source) -> Result<(), ConfigError> {
        match KEYS.iter().find(|k| k.name == key) {
            Some(k) => {
                self.values.insert(k.name, (value, source));
                Ok(())
            }
            None => Err(ConfigError::UnknownKey {
                key: key.to_string(),
                origin: source,
                known: KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    fn file(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: path.to_path_buf(),
                    reason: e.message().to_string(),
                })?;
        let mut flat = Vec::new();
        flatten("", table, &mut flat);
        for (key, value) in flat {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                // A list of strings (trusted_proxies) reads like its comma-separated form.
                toml::Value::Array(a) if a.iter().all(toml::Value::is_str) => a
                    .iter()
                    .filter_map(toml::Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            self.set(&key, text, Source::File(path.to_path_buf()))?;
        }
        Ok(())
    }

    /// `BERTH_<KEY>` for each known key (`.` in a key becomes `_`: `BERTH_AUTH_SERVICE`). Unknown `BERTH_*` variables are left alone: other
    /// tools (tests, scripts) share the prefix.
    fn env(&mut self, vars: &[(String, String)]) {
        for k in KEYS {
            let var = format!("BERTH_{}", k.name.replace('.', "_").to_ascii_uppercase());
            if let Some((_, v)) = vars.iter().find(|(name, _)| *name == var) {
                self.values.insert(k.name, (v.clone(), Source::Env(var)));
            }
        }
    }

    fn take(&self, key: &'static str) -> (&str, &Source) {
        // Invariant: `defaults()` inserted every key of KEYS, and callers only name keys of KEYS.
        let (v, s) = self.values.get(key).expect("every key has a default");
        (v.as_str(), s)
    }
}

impl Config {
    /// Loads the configuration: defaults, then the file (`--config`, else `BERTH_CONFIG`),
    /// then the environment, then flags.
    pub fn load(flags: &Flags, vars: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut layers = Layers::defaults();
        let file = flags.config.clone().or_else(|| {
            vars.iter()
                .find(|(k, _)| k == "BERTH_CONFIG")
                .map(|(_, v)| PathBuf::from(v))
        });
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Read {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            layers.file(&path, &text)?;
        }
        layers.env(vars);
        if let Some(l) = &flags.listen {
            layers.set("listen", l.clone(), Source::Flag("--listen"))?;
        }
        if let Some(u) = &flags.public_url {
            layers.set("public_url", u.clone(), Source::Flag("--public-url"))?;
        }
        if let Some(p) = &flags.trusted_proxies {
            layers.set(
                "trusted_proxies",
                p.clone(),
                Source::Flag("--trusted-proxies"),
            )?;
        }
        if let Some(m) = &flags.metadata {
            layers.set("metadata", m.clone(), Source::Flag("--metadata"))?;
        }
        if let Some(b) = &flags.blobs {
            layers.set("blobs", b.clone(), Source::Flag("--blobs"))?;
        }
        if flags.fix_permissions {
            layers.set(
                "fix_permissions",
                "true".into(),
                Source::Flag("--fix-permissions"),
            )?;
        }
        if let Some(d) = &flags.data {
            layers.set(
                "data",
                d.to_string_lossy().into_owned(),
                Source::Flag("--data"),
            )?;
        }
        Config::from_layers(&layers)
    }

    /// The configuration a file of `text` gives over the defaults, with no environment or
    /// flags: what `untrusted::config_file` hands to fuzz targets.
    pub fn from_file_text(text: &str) -> Result<Config, ConfigError> {
        let mut layers = Layers::defaults();
        layers.file(Path::new("berth.toml"), text)?;
        Config::from_layers(&layers)
    }

    fn from_layers(l: &Layers) -> Result<Config, ConfigError> {
        let limits = Limits {
            header_bytes: size(l, "header_bytes", 1024, 16 << 20)?,
            header_count: count(l, "header_count", 8, 10_000)?,
            manifest_bytes: size(l, "manifest_bytes", 1024, 64 << 20)?,
            web_body_bytes: size(l, "web_body_bytes", 0, 64 << 20)?,
            upload_bytes: upload_bytes(l)?,
            header_timeout: duration(l, "header_timeout", DAY)?,
            idle_timeout: duration(l, "idle_timeout", DAY)?,
            body_timeout: duration(l, "body_timeout", DAY)?,
            page_size: count(l, "page_size", 1, 100_000)?,
            discard_bytes: size(l, "discard_bytes", 0, 1 << 30)? as u64,
            linger_bytes: size(l, "linger_bytes", 0, 1 << 30)? as u64,
        };
        Ok(Config {
            listen: listen(l)?,
            data: data(l)?,
            threads: count(l, "threads", 1, 1024)?,
            workers: count(l, "workers", 1, 1024)?,
            readers: count(l, "readers", 1, 1024)?,
            max_connections_per_ip: match l.take("max_connections_per_ip").0.trim() {
                "unlimited" | "off" => None,
                _ => Some(count(l, "max_connections_per_ip", 1, 1_000_000)? as u32),
            },
            log_format: log_format(l)?,
            access_log: boolean(l, "access_log")?,
            limits,
            shutdown_grace: duration(l, "shutdown_grace", DAY)?,
            send_timeout: duration(l, "send_timeout", DAY)?,
            small_blob_bytes: size(l, "small_blob_bytes", 0, 1 << 30)? as u64,
            upload_expiry: duration(l, "upload_expiry", 30 * DAY)?,
            gc_interval: optional_duration(l, "gc_interval", 30 * DAY)?,
            gc_unreferenced_after: optional_duration(l, "gc_unreferenced_after", 365 * DAY)?,
            manifest_cache_bytes: size(l, "manifest_cache_bytes", 0, 1 << 32)?,
            open_packs: match l.take("open_packs").0.trim() {
                "auto" => None,
                _ => Some(count(l, "open_packs", 1, 1 << 20)?),
            },
            fix_permissions: boolean(l, "fix_permissions")?,
            index_packages: boolean(l, "index_packages")?,
            index_limits: berth_engine::package::ScanLimits {
                max_entries: count(l, "index.max_entries", 1000, 1 << 30)? as u64,
                max_uncompressed_bytes: size(l, "index.max_uncompressed", 1 << 20, 1 << 40)? as u64,
                ..berth_engine::package::ScanLimits::default()
            },
            min_free_space: min_free_space(l)?,
            metadata: metadata(l)?,
            blobs: blobs(l)?,
            blob_cache_bytes: size(l, "blob_cache", 0, 1 << 50)? as u64,
            auth: auth(l)?,
            ui: UiSettings {
                session_idle: duration(l, "ui.session_idle", 30 * DAY)?,
                max_sessions: count(l, "ui.max_sessions", 1, 10_000_000)?,
                page_size: count(l, "ui.page_size", 1, 1000)?,
            },
        })
    }
}

/// `[auth] service = "x"` and `auth.service = "x"` both become the key `auth.service`.
fn flatten(prefix: &str, table: toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            other => out.push((key, other)),
        }
    }
}

fn metadata(l: &Layers) -> Result<Option<MetadataUrl>, ConfigError> {
    let (url, src) = l.take("metadata");
    let url = url.trim();
    if url.is_empty() {
        return Ok(None);
    }
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        // The value is not echoed: it may be a mistyped URL holding a password.
        return Err(bad(
            "metadata",
            src,
            "is not a postgres:// URL".into(),
            "give postgres://USER@HOST[:PORT]/DATABASE, or leave it empty for DATA/meta.redb",
        ));
    }
    Ok(Some(MetadataUrl(url.to_string())))
}

fn blobs(l: &Layers) -> Result<Option<String>, ConfigError> {
    let (url, src) = l.take("blobs");
    let url = url.trim();
    if url.is_empty() {
        return Ok(None);
    }
    match berth_engine::objects::ObjectsConfig::parse(url) {
        Ok(_) => Ok(Some(url.to_string())),
        Err(e) => Err(bad(
            "blobs",
            src,
            e.to_string(),
            "give s3://BUCKET?endpoint=http://HOST:PORT&region=REGION, or leave it empty for DATA/packs",
        )),
    }
}

fn auth(l: &Layers) -> Result<AuthSettings, ConfigError> {
    let (url, src) = l.take("public_url");
    let url = url.trim().trim_end_matches('/');
    let public_url = if url.is_empty() {
        None
    } else if (url.starts_with("http://") || url.starts_with("https://"))
        && !url.contains(char::is_whitespace)
        && !url.contains('"')
    {
        Some(url.to_string())
    } else {
        return Err(bad(
            "public_url",
            src,
            format!("`{url}` is not an absolute http(s) URL"),
            "give the URL clients use, e.g. https://registry.example.com, or leave it empty",
        ));
    };
    let (service, src) = l.take("auth.service");
    if service.is_empty()
        || !service
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(bad(
            "auth.service",
            src,
            format!("`{service}` cannot be quoted in a challenge"),
            "use printable ASCII without quotes or spaces, e.g. berth or registry.example.com",
        ));
    }
    Ok(AuthSettings {
        public_url,
        service: service.to_string(),
        max_failures: count(l, "auth.max_failures", 1, 1_000_000)? as u32,
        failure_window: duration(l, "auth.failure_window", DAY)?,
        bearer_lifetime: {
            let d = duration(l, "auth.bearer_lifetime", DAY)?;
            if d < Duration::from_secs(60) {
                let (v, src) = l.take("auth.bearer_lifetime");
                return Err(bad(
                    "auth.bearer_lifetime",
                    src,
                    format!("`{v}` is shorter than a minute"),
                    "use at least 60s: clients floor token lifetimes at 60 s",
                ));
            }
            d
        },
        trusted_proxies: {
            let (v, src) = l.take("trusted_proxies");
            TrustedProxies::parse(v).map_err(|problem| {
                bad(
                    "trusted_proxies",
                    src,
                    problem,
                    "list addresses or CIDR blocks separated by commas, e.g. 10.0.0.0/8, 192.0.2.7, ::1",
                )
            })?
        },
    })
}

fn bad(key: &'static str, source: &Source, problem: String, fix: &str) -> ConfigError {
    ConfigError::Value {
        key,
        origin: source.clone(),
        problem,
        fix: fix.to_string(),
    }
}

fn listen(l: &Layers) -> Result<SocketAddr, ConfigError> {
    let (v, src) = l.take("listen");
    let fix = "give HOST:PORT, e.g. 127.0.0.1:5000 or 0.0.0.0:5000";
    if let Ok(a) = v.parse::<SocketAddr>() {
        return Ok(a);
    }
    // Host names (e.g. `localhost:5000`) resolve once, at start-up.
    match v.to_socket_addrs() {
        Ok(mut it) => it
            .next()
            .ok_or_else(|| bad("listen", src, format!("`{v}` resolves to no address"), fix)),
        Err(e) => Err(bad("listen", src, format!("`{v}`: {e}"), fix)),
    }
}

fn data(l: &Layers) -> Result<PathBuf, ConfigError> {
    let (v, src) = l.take("data");
    if v.is_empty() {
        return Err(bad(
            "data",
            src,
            "empty path".into(),
            "give a directory, e.g. ./berth-data",
        ));
    }
    Ok(PathBuf::from(v))
}

fn log_format(l: &Layers) -> Result<LogFormat, ConfigError> {
    let (v, src) = l.take("log_format");
    match v.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(bad(
            "log_format",
            src,
            format!("`{v}` is not a log format"),
            "use text or json",
        )),
    }
}

fn boolean(l: &Layers, key: &'static str) -> Result<bool, ConfigError> {
    let (v, src) = l.take(key);
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad(
            key,
            src,
            format!("`{v}` is not a boolean"),
            "use true or false",
        )),
    }
}

fn count(l: &Layers, key: &'static str, min: usize, max: usize) -> Result<usize, ConfigError> {
    let (v, src) = l.take(key);
    let fix = format!("use a whole number from {min} to {max}");
    let n: usize = v
        .trim()
        .parse()
        .map_err(|_| bad(key, src, format!("`{v}` is not a whole number"), &fix))?;
    if n < min || n > max {
        return Err(bad(key, src, format!("{n} is out of range"), &fix));
    }
    Ok(n)
}

fn size(l: &Layers, key: &'static str, min: usize, max: usize) -> Result<usize, ConfigError> {
    let (v, src) = l.take(key);
    let fix = format!(
        "use a byte count from {min} to {max}, optionally with a unit (B, KiB, MiB, GiB), e.g. 64KiB"
    );
    let n = parse_size(v).ok_or_else(|| bad(key, src, format!("`{v}` is not a size"), &fix))?;
    if n < min as u64 || n > max as u64 {
        return Err(bad(key, src, format!("{n} bytes is out of range"), &fix));
    }
    // Within `max`, which is a usize.
    Ok(n as usize)
}

fn upload_bytes(l: &Layers) -> Result<Option<u64>, ConfigError> {
    let (v, src) = l.take("upload_bytes");
    let t = v.trim().to_ascii_lowercase();
    if t == "unlimited" || t == "none" || t == "0" {
        return Ok(None);
    }
    match parse_size(v) {
        Some(n) => Ok(Some(n)),
        None => Err(bad(
            "upload_bytes",
            src,
            format!("`{v}` is not a size"),
            "use a size such as 10GiB, or `unlimited`",
        )),
    }
}

fn min_free_space(l: &Layers) -> Result<Option<u64>, ConfigError> {
    let (v, src) = l.take("min_free_space");
    match v.trim().to_ascii_lowercase().as_str() {
        "auto" => return Ok(None),
        "off" => return Ok(Some(0)),
        _ => {}
    }
    parse_size(v).map(Some).ok_or_else(|| {
        bad(
            "min_free_space",
            src,
            format!("`{v}` is not a size"),
            "use a size such as 1GiB, `auto` (64MiB, or 1% of a smaller filesystem) or `off`",
        )
    })
}

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A duration, or `off` (also `0`) for none.
fn optional_duration(
    l: &Layers,
    key: &'static str,
    max: Duration,
) -> Result<Option<Duration>, ConfigError> {
    match l.take(key).0.trim() {
        "off" | "0" => Ok(None),
        _ => duration(l, key, max).map(Some),
    }
}

fn duration(l: &Layers, key: &'static str, max: Duration) -> Result<Duration, ConfigError> {
    let (v, src) = l.take(key);
    let fix = format!(
        "use a duration from 1ms to {}h such as 500ms, 30s, 2m, 1h or 1d (a bare number is seconds)",
        max.as_secs() / 3600
    );
    let d =
        parse_duration(v).ok_or_else(|| bad(key, src, format!("`{v}` is not a duration"), &fix))?;
    if d.is_zero() || d > max {
        return Err(bad(key, src, format!("`{v}` is out of range"), &fix));
    }
    Ok(d)
}

/// `123`, `64KiB`, `4 MiB`, `1G` (binary units; `K`/`KB`/`KiB` all mean 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `30`, `30s`, `500ms`, `2m`, `1h`, `7d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit.trim() {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" | "min" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        "d" => n.checked_mul(86_400).map(Duration::from_secs),
        _ => None,
    }
}

/// Every setting with its default and reason, as a TOML file one can start from.
pub fn describe_defaults() -> String {
    KEYS.iter()
        .map(|k| {
            let v = (k.default)();
            let bare = v.parse::<i64>().is_ok() || v == "true" || v == "false";
            let v = if bare {
                v
            } else {
                toml::Value::String(v).to_string()
            };
            format!("# {}\n{} = {}\n", k.why, k.name, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let c = Config::load(&Flags::default(), &[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(c.data, PathBuf::from("./berth-data"));
        assert_eq!(c.threads, cores());
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.shutdown_grace, Duration::from_secs(10));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.small_blob_bytes, 1 << 20);
        assert_eq!(c.upload_expiry, DAY);
        assert_eq!(c.gc_interval, Some(Duration::from_secs(3600)));
        assert_eq!(c.gc_unreferenced_after, Some(DAY));
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let f =
            file("listen = \"127.0.0.1:7000\"\nthreads = 3\nworkers = 5\nidle_timeout = \"5m\"\n");
        let flags = Flags {
            config: Some(f.path().to_path_buf()),
            ..Flags::default()
        };
        let vars = env(&[("BERTH_LISTEN", "127.0.0.1:7001"), ("BERTH_THREADS", "2")]);
        let c = Config::load(&flags, &vars).unwrap();
        assert_eq!(c.listen.port(), 7001, "env beats file");
        assert_eq!(c.threads, 2, "env beats file");
        assert_eq!(c.workers, 5, "file beats default");
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(300));

        let flags = Flags {
            listen: Some("127.0.0.1:7002".into()),
            data: Some("/tmp/x".into()),
            ..flags
        };
        let c = Config::load(&flags, &vars).unwrap();
        assert_eq!(c.listen.port(), 7002, "flag beats env");
        assert_eq!(c.data, PathBuf::from("/tmp/x"));
    }

    /// The settings that may be turned off take `off` / `unlimited`, and a number or
    /// duration otherwise; a bad value names its key.
    #[test]
    fn metadata_is_embedded_or_a_postgres_url_never_echoed() {
        assert_eq!(Config::load(&Flags::default(), &[]).unwrap().metadata, None);
        let flags = Flags {
            metadata: Some("postgres://u:hunter2@db:5432/berth".into()),
            ..Flags::default()
        };
        let c = Config::load(&flags, &[]).unwrap();
        assert_eq!(
            c.metadata.as_ref().unwrap().0,
            "postgres://u:hunter2@db:5432/berth"
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        let env = [(
            "BERTH_METADATA".to_string(),
            "mysql://u:hunter2@db/berth".to_string(),
        )];
        let e = Config::load(&Flags::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("metadata") && e.contains("postgres://"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn min_free_space_is_auto_a_size_or_off() {
        let load = |v: &str| Config::load(&Flags::default(), &env(&[("BERTH_MIN_FREE_SPACE", v)]));
        assert_eq!(
            Config::load(&Flags::default(), &[]).unwrap().min_free_space,
            None
        );
        assert_eq!(load("1GiB").unwrap().min_free_space, Some(1 << 30));
        assert_eq!(load("off").unwrap().min_free_space, Some(0));
        let e = load("lots").unwrap_err().to_string();
        assert!(e.contains("min_free_space") && e.contains("auto"), "{e}");
    }

    #[test]
    fn gc_and_connection_cap_settings_may_be_turned_off() {
        let c = Config::load(&Flags::default(), &[]).unwrap();
        assert_eq!(c.max_connections_per_ip, Some(1000));
        let vars = env(&[
            ("BERTH_GC_INTERVAL", "off"),
            ("BERTH_GC_UNREFERENCED_AFTER", "2h"),
            ("BERTH_MAX_CONNECTIONS_PER_IP", "unlimited"),
        ]);
        let c = Config::load(&Flags::default(), &vars).unwrap();
        assert_eq!(c.gc_interval, None);
        assert_eq!(c.gc_unreferenced_after, Some(Duration::from_secs(7200)));
        assert_eq!(c.max_connections_per_ip, None);
        let vars = env(&[("BERTH_OPEN_PACKS", "0")]);
        let e = Config::load(&Flags::default(), &vars).unwrap_err();
        assert!(e.to_string().contains("open_packs"), "{e}");
        let vars = env(&[("BERTH_MAX_CONNECTIONS_PER_IP", "0")]);
        let e = Config::load(&Flags::default(), &vars).unwrap_err();
        assert!(e.to_string().contains("max_connections_per_ip"), "{e}");
    }

    /// `open_packs` is derived unless given; `fix_permissions` is off unless the file, the
    /// environment or `--fix-permissions` turns it on.
    #[test]
    fn open_packs_and_fix_permissions_come_from_every_layer() {
        let c = Config::load(&Flags::default(), &[]).unwrap();
        assert_eq!((c.open_packs, c.fix_permissions), (None, false));
        let f = file("open_packs = 64\nfix_permissions = true\n");
        let flags = Flags {
            config: Some(f.path().to_path_buf()),
            ..Flags::default()
        };
        let c = Config::load(&flags, &[]).unwrap();
        assert_eq!((c.open_packs, c.fix_permissions), (Some(64), true));
        let vars = env(&[
            ("BERTH_OPEN_PACKS", "auto"),
            ("BERTH_FIX_PERMISSIONS", "no"),
        ]);
        let c = Config::load(&flags, &vars).unwrap();
        assert_eq!((c.open_packs, c.fix_permissions), (None, false));
        let flags = Flags {
            fix_permissions: true,
            ..flags
        };
        assert!(Config::load(&flags, &vars).unwrap().fix_permissions);
    }

    /// On unless turned off, from the file or the environment; a value that is not a
    /// boolean names the key.
    #[test]
    fn the_package_indexer_may_be_turned_off() {
        assert!(Config::load(&Flags::default(), &[]).unwrap().index_packages);
        let f = file("index_packages = false\n");
        let flags = Flags {
            config: Some(f.path().to_path_buf()),
            ..Flags::default()
        };
        assert!(!Config::load(&flags, &[]).unwrap().index_packages);
        let on = env(&[("BERTH_INDEX_PACKAGES", "true")]);
        assert!(Config::load(&flags, &on).unwrap().index_packages);
        let off = env(&[("BERTH_INDEX_PACKAGES", "off")]);
        assert!(
            !Config::load(&Flags::default(), &off)
                .unwrap()
                .index_packages
        );
        let e = Config::load(
            &Flags::default(),
            &env(&[("BERTH_INDEX_PACKAGES", "later")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("index_packages") && e.contains("BERTH_INDEX_PACKAGES"),
            "{e}"
        );
    }

    #[test]
    fn what_a_layer_may_cost_the_indexer_is_bounded_and_configurable() {
        let c = Config::load(&Flags::default(), &[]).unwrap();
        assert_eq!(c.index_limits.max_entries, 1 << 20);
        assert_eq!(c.index_limits.max_uncompressed_bytes, 64 << 30);
        let f = file("[index]\nmax_entries = 5000\nmax_uncompressed = \"1GiB\"\n");
        let flags = Flags {
            config: Some(f.path().to_path_buf()),
            ..Flags::default()
        };
        let c = Config::load(&flags, &[]).unwrap();
        assert_eq!(c.index_limits.max_entries, 5000);
        assert_eq!(c.index_limits.max_uncompressed_bytes, 1 << 30);
        let e = Config::load(
            &Flags::default(),
            &env(&[("BERTH_INDEX_MAX_ENTRIES", "10")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("index.max_entries") && e.contains("out of range"),
            "{e}"
        );
    }

    #[test]
    fn config_file_comes_from_berth_config_when_no_flag() {
        let f = file("page_size = 50\nupload_bytes = \"2GiB\"\n");
        let vars = env(&[("BERTH_CONFIG", f.path().to_str().unwrap())]);
        let c = Config::load(&Flags::default(), &vars).unwrap();
        assert_eq!(c.limits.page_size, 50);
        assert_eq!(c.limits.upload_bytes, Some(2 << 30));
    }

    #[test]
    fn bad_value_names_key_source_and_fix() {
        let vars = env(&[("BERTH_THREADS", "many")]);
        let e = Config::load(&Flags::default(), &vars).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("`threads`"), "{msg}");
        assert!(msg.contains("BERTH_THREADS"), "{msg}");
        assert!(msg.contains("whole number"), "{msg}");

        let f = file("header_timeout = \"soon\"\n");
        let flags = Flags {
            config: Some(f.path().to_path_buf()),
            ..Flags::default()
        };
        let msg = Config::load(&flags, &[]).unwrap_err().to_string();
        assert!(
            msg.contains("`header_timeout`") && msg.contains("config file"),
            "{msg}"
        );
        assert!(msg.contains("30s"), "fix shows an example: {msg}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for (k, v) in [
            ("BERTH_THREADS", "0"),
            ("BERTH_HEADER_BYTES", "10"),
            ("BERTH_PAGE_SIZE", "0"),
            ("BERTH_IDLE_TIMEOUT", "0s"),
            ("BERTH_SHUTDOWN_GRACE", "48h"),
            ("BERTH_LOG_FORMAT", "xml"),
            ("BERTH_ACCESS_LOG", "maybe"),
            ("BERTH_LISTEN", "nowhere"),
        ] {
            let e = Config::load(&Flags::default(), &env(&[(k, v)]));
            assert!(e.is_err(), "{k}={v} accepted");
        }
    }

    #[test]
    fn unknown_file_key_is_an_error_listing_known_keys() {
        let f = file("listn = \"127.0.0.1:1\"\n");
        let flags = Flags {
            config: Some(f.path().to_path_buf()),
            ..Flags::default()
        };
        let msg = Config::load(&flags, &[]).unwrap_err().to_string();
        assert!(msg.contains("`listn`") && msg.contains("listen"), "{msg}");
    }

    #[test]
    fn missing_config_file_and_bad_toml_are_reported() {
        let flags = Flags {
            config: Some("/nonexistent/berth.toml".into()),
            ..Flags::default()
        };
        assert!(matches!(
            Config::load(&flags, &[]),
            Err(ConfigError::Read { .. })
        ));
        let f = file("listen = \n");
        let flags = Flags {
            config: Some(f.path().to_path_buf()),
            ..Flags::default()
        };
        assert!(matches!(
            Config::load(&flags, &[]),
            Err(ConfigError::Syntax { .. })
        ));
    }

    #[test]
    fn sizes_and_durations_parse_with_units() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("4 MiB"), Some(4 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("1.5G"), None);
        assert_eq!(parse_size("KiB"), None);
        assert_eq!(parse_size("99999999999999999999T"), None);
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Some(DAY));
        assert_eq!(parse_duration("1w"), None);
    }

    #[test]
    fn trusted_proxies_come_from_a_list_env_or_flag_and_bad_ones_are_named() {
        let c = Config::load(&Flags::default(), &[]).unwrap();
        assert_eq!(c.auth.trusted_proxies, TrustedProxies::default());
        let f = file("trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n");
        let flags = Flags {
            config: Some(f.path().to_path_buf()),
            ..Flags::default()
        };
        let c = Config::load(&flags, &[]).unwrap();
        assert_eq!(c.auth.trusted_proxies.to_string(), "10.0.0.0/8, ::1/128");
        let c = Config::load(&flags, &env(&[("BERTH_TRUSTED_PROXIES", "192.0.2.7")])).unwrap();
        assert_eq!(c.auth.trusted_proxies.to_string(), "192.0.2.7/32");
        let flags = Flags {
            trusted_proxies: Some("192.0.2.0/24".into()),
            ..flags
        };
        let c = Config::load(&flags, &env(&[("BERTH_TRUSTED_PROXIES", "192.0.2.7")])).unwrap();
        assert_eq!(c.auth.trusted_proxies.to_string(), "192.0.2.0/24");
        let e = Config::load(
            &Flags::default(),
            &env(&[("BERTH_TRUSTED_PROXIES", "10.0.0.1, 10.0.0.0/40")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("trusted_proxies"), "{e}");
        assert!(e.contains("BERTH_TRUSTED_PROXIES"), "{e}");
        assert!(e.contains("10.0.0.0/40"), "{e}");
    }

    #[test]
    fn auth_settings_come_from_tables_dotted_keys_and_env() {
        let c = Config::load(&Flags::default(), &[]).unwrap();
        assert_eq!(c.auth.service, "berth");
        assert_eq!(c.auth.public_url, None);
        assert_eq!(c.auth.max_failures, 10);
        assert_eq!(c.auth.failure_window, Duration::from_secs(60));
        assert_eq!(c.auth.bearer_lifetime, Duration::from_secs(300));
        let f = file("public_url = \"https://r.example.com/\"\n[auth]\nservice = \"r.example.com\"\nmax_failures = 3\n");
        let flags = Flags {
            config: Some(f.path().to_path_buf()),
            ..Flags::default()
        };
        let vars = env(&[("BERTH_AUTH_FAILURE_WINDOW", "2m")]);
        let c = Config::load(&flags, &vars).unwrap();
        assert_eq!(c.auth.public_url.as_deref(), Some("https://r.example.com"));
        assert_eq!(c.auth.service, "r.example.com");
        assert_eq!(c.auth.max_failures, 3);
        assert_eq!(c.auth.failure_window, Duration::from_secs(120));
        let flags = Flags {
            public_url: Some("http://10.0.0.1:5000".into()),
            ..flags
        };
        let c = Config::load(&flags, &vars).unwrap();
        assert_eq!(c.auth.public_url.as_deref(), Some("http://10.0.0.1:5000"));
        for (k, v) in [
            ("BERTH_PUBLIC_URL", "registry.example.com"),
            ("BERTH_AUTH_SERVICE", "a \"b"),
            ("BERTH_AUTH_MAX_FAILURES", "0"),
            ("BERTH_AUTH_BEARER_LIFETIME", "10s"),
        ] {
            let e = Config::load(&Flags::default(), &env(&[(k, v)]));
            assert!(e.is_err(), "{k}={v} accepted");
        }
    }

    #[test]
    fn ui_settings_have_defaults_and_bounds() {
        let c = Config::load(&Flags::default(), &[]).unwrap();
        assert_eq!(c.ui.session_idle, Duration::from_secs(12 * 3600));
        assert_eq!((c.ui.max_sessions, c.ui.page_size), (10_000, 50));
        let f = file("[ui]\nsession_idle = \"30m\"\n");
        let flags = Flags {
            config: Some(f.path().to_path_buf()),
            ..Flags::default()
        };
        let c = Config::load(&flags, &env(&[("BERTH_UI_PAGE_SIZE", "7")])).unwrap();
        assert_eq!(c.ui.session_idle, Duration::from_secs(1800));
        assert_eq!(c.ui.page_size, 7);
        for (k, v) in [
            ("BERTH_UI_SESSION_IDLE", "0"),
            ("BERTH_UI_MAX_SESSIONS", "0"),
            ("BERTH_UI_PAGE_SIZE", "5000"),
        ] {
            let e = Config::load(&Flags::default(), &env(&[(k, v)]));
            assert!(e.is_err(), "{k}={v} accepted");
        }
    }

    #[test]
    fn every_key_has_a_reason_and_a_valid_default() {
        for k in KEYS {
            assert!(!k.why.is_empty(), "{} has no reason", k.name);
        }
        assert_eq!(describe_defaults().lines().count(), 2 * KEYS.len());
        let f = file(&describe_defaults());
        let flags = Flags {
            config: Some(f.path().to_path_buf()),
            ..Flags::default()
        };
        let from_file = Config::load(&flags, &[]).unwrap();
        assert_eq!(from_file, Config::load(&Flags::default(), &[]).unwrap());
    }
}
