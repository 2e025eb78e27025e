//! Where the object store is and how long to wait on it: `s3://BUCKET?endpoint=URL&region=R`
//! plus credentials, timeouts, retries and the multipart part size.
//!
//! The URL is what an operator types (`--blobs`), so it is parsed strictly: an unknown query
//! key is an error naming it rather than a setting silently ignored. Credentials never come
//! from the URL (it ends up in logs and shell histories); they come from the usual AWS
//! variables or are set explicitly (the configuration file), and no `Debug` or `Display`
//! of anything here shows the secret.

use std::fmt;
use std::time::Duration;

/// Query keys the URL accepts.
const KEYS: &[&str] = &["endpoint", "region"];

/// Why a configuration was refused; the message names the offending part.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The URL is not `s3://BUCKET?...`, or a value in it is malformed.
    #[error("object store URL {url:?}: {why}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The URL names a query key this version does not know.
    #[error(
        "object store URL {url:?}: unknown setting {key:?} (known: endpoint, region; credentials \
         come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the configuration file)"
    )]
    UnknownKey {
        /// The URL as given.
        url: String,
        /// The key it does not know.
        key: String,
    },
    /// A plain-HTTP endpoint that is not on this machine: the secret would sign requests
    /// anyone on the path can read and replay.
    #[error(
        "object store endpoint {endpoint}: plain http is only allowed for loopback addresses; \
         use https, or set allow_http to accept it"
    )]
    InsecureEndpoint {
        /// The endpoint as given.
        endpoint: String,
    },
    /// Neither explicit credentials nor the AWS variables.
    #[error(
        "no object store credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and \
         AWS_SESSION_TOKEN for temporary ones), or give them in the configuration file"
    )]
    NoCredentials,
    /// A setting is out of its range.
    #[error("object store setting {setting}: {why}")]
    Invalid {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong with its value.
        why: String,
    },
    /// The client could not be set up (its runtime, or the S3 client itself).
    #[error("object store client for {what}: {why}")]
    Client {
        /// Which part.
        what: String,
        /// The underlying failure.
        why: String,
    },
}

/// A value that must never be printed (a secret key, a token, a password): `Debug` and
/// `Display` say it is redacted. The server's secrets are this type too.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `s`.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself: only for signing, hashing, verifying or handing to its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An access key: its id (not secret: it shows in the store's own logs and errors), its
/// secret and, for temporary credentials, a session token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Secret,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<Secret>,
}

impl Credentials {
    /// A key id and its secret.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key),
            session_token: None,
        }
    }

    /// From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`; `None`
    /// unless both of the first two are set and not empty.
    pub fn from_env() -> Option<Credentials> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Some(Credentials {
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: Secret::new(var("AWS_SECRET_ACCESS_KEY")?),
            session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
        })
    }
}

/// How failed requests are retried. A request that fails to connect, times out, or gets a
/// 5xx is tried again after a growing pause, until `max_retries` retries or `retry_timeout`
/// since the first attempt, whichever comes first: the latter bounds how long a caller
/// waits on a store that is down.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrySettings {
    /// Retries after the first attempt (0: none).
    pub max_retries: usize,
    /// No retry starts later than this after the first attempt.
    pub retry_timeout: Duration,
    /// The first pause; each next one doubles, up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest pause between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetrySettings {
    /// Three retries within 10 s: enough to ride over a node restarting behind a balancer,
    /// short enough that a request on a store that is down fails while its client still
    /// waits for the answer.
    fn default() -> Self {
        RetrySettings {
            max_retries: 3,
            retry_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// Everything needed to reach one bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectsConfig {
    /// The bucket's name.
    pub bucket: String,
    /// `http(s)://HOST[:PORT]` of an S3-compatible server, addressed path-style
    /// (`ENDPOINT/BUCKET/KEY`); `None` for AWS S3 itself (`s3.REGION.amazonaws.com`).
    pub endpoint: Option<String>,
    /// The region requests are signed for (Garage: its `s3_region`; MinIO: `us-east-1`).
    pub region: String,
    /// `None`: from the AWS variables when the store is opened.
    pub credentials: Option<Credentials>,
    /// Accept a plain-http endpoint that is not loopback (loopback always is).
    pub allow_http: bool,
    /// How long establishing a connection may take.
    pub connect_timeout: Duration,
    /// How long one whole request of bounded size may take (a small object, a part of a
    /// multipart upload, a range read into memory, a listing page), connect included.
    pub request_timeout: Duration,
    /// For streamed reads, whose total length depends on how fast the caller consumes
    /// them: how long the store may stay silent before the read fails.
    pub read_timeout: Duration,
    /// What is retried and for how long.
    pub retry: RetrySettings,
    /// Size of each part of a multipart upload (S3 wants at least 5 MiB but the last).
    pub part_size: usize,
    /// Parts of one upload sent at once; the writer holds at most this many parts, plus
    /// the one it is filling, in memory.
    pub parts_in_flight: usize,
    /// Threads of the client's own runtime, which only moves bytes and waits on sockets.
    pub runtime_threads: usize,
}

impl ObjectsConfig {
    /// A configuration for `bucket` with every other setting at its default.
    pub fn new(bucket: impl Into<String>) -> ObjectsConfig {
        ObjectsConfig {
            bucket: bucket.into(),
            endpoint: None,
            region: "us-east-1".into(),
            credentials: None,
            allow_http: false,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(30),
            retry: RetrySettings::default(),
            part_size: 8 << 20,
            parts_in_flight: 2,
            runtime_threads: 2,
        }
    }

    /// Parses `s3://BUCKET?endpoint=URL&region=R` (both keys optional; values may be
    /// percent-encoded). Any other key is an error that names it.
    pub fn parse(url: &str) -> Result<ObjectsConfig, ConfigError> {
        let bad = |why: &str| ConfigError::Url {
            url: url.to_string(),
            why: why.to_string(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("must start with s3://"))?;
        let (bucket, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let bucket = bucket.strip_suffix('/').unwrap_or(bucket);
        if !is_bucket_name(bucket) {
            return Err(bad(
                "the bucket name must be 3 to 63 characters of a-z, 0-9, '.' and '-', \
                 starting and ending with a letter or digit",
            ));
        }
        let mut config = ObjectsConfig::new(bucket);
        let mut seen: Vec<&str> = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key =
                KEYS.iter()
                    .find(|known| **known == k)
                    .ok_or_else(|| ConfigError::UnknownKey {
                        url: url.to_string(),
                        key: k.to_string(),
                    })?;
            if seen.contains(key) {
                return Err(bad(&format!("{key} is given twice")));
            }
            seen.push(key);
            let v = percent_decode(v).ok_or_else(|| bad(&format!("{key}: bad %-encoding")))?;
            if v.is_empty() {
                return Err(bad(&format!("{key} is empty")));
            }
            match *key {
                "endpoint" => {
                    endpoint_host(&v).ok_or_else(|| {
                        bad("endpoint must be http://HOST[:PORT] or https://HOST[:PORT]")
                    })?;
                    config.endpoint = Some(v.trim_end_matches('/').to_string());
                }
                _ => config.region = v,
            }
        }
        Ok(config)
    }

    /// The credentials to sign with: the configured ones, else the AWS variables.
    pub(crate) fn resolve_credentials(&self) -> Result<Credentials, ConfigError> {
        self.credentials
            .clone()
            .or_else(Credentials::from_env)
            .ok_or(ConfigError::NoCredentials)
    }

    /// Refuses settings the client cannot work with.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(e) = &self.endpoint {
            let (scheme, host) = endpoint_host(e).ok_or_else(|| ConfigError::Url {
                url: e.clone(),
                why: "endpoint must be http://HOST[:PORT] or https://HOST[:PORT]".into(),
            })?;
            if scheme == "http" && !self.allow_http && !is_loopback(host) {
                return Err(ConfigError::InsecureEndpoint {
                    endpoint: e.clone(),
                });
            }
        }
        let positive = |setting: &'static str, d: Duration| {
            if d.is_zero() {
                Err(ConfigError::Invalid {
                    setting,
                    why: "must be more than 0".into(),
                })
            } else {
                Ok(())
            }
        };
        positive("connect_timeout", self.connect_timeout)?;
        positive("request_timeout", self.request_timeout)?;
        positive("read_timeout", self.read_timeout)?;
        if self.part_size < 5 << 20 {
            return Err(ConfigError::Invalid {
                setting: "part_size",
                why: format!(
                    "{} bytes is below S3's smallest part, 5 MiB",
                    self.part_size
                ),
            });
        }
        if self.parts_in_flight == 0 || self.runtime_threads == 0 {
            return Err(ConfigError::Invalid {
                setting: if self.parts_in_flight == 0 {
                    "parts_in_flight"
                } else {
                    "runtime_threads"
                },
                why: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// Where requests go, for error messages: the endpoint, or AWS's for the region.
    pub(crate) fn endpoint_name(&self) -> String {
        match &self.endpoint {
            Some(e) => e.clone(),
            None => format!("https://s3.{}.amazonaws.com", self.region),
        }
    }
}

impl fmt::Display for ObjectsConfig {
    /// The URL form, as `parse` reads it: never credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}?", self.bucket)?;
        if let Some(e) = &self.endpoint {
            write!(f, "endpoint={e}&")?;
        }
        write!(f, "region={}", self.region)
    }
}

/// S3's rules for bucket names (the subset every S3-compatible server accepts).
fn is_bucket_name(b: &str) -> bool {
    let ok_edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&b.len())
        && b.bytes().all(|c| ok_edge(c) || c == b'.' || c == b'-')
        && ok_edge(b.as_bytes()[0])
        && ok_edge(b.as_bytes()[b.len() - 1])
}

/// `(scheme, host)` of an `http(s)://HOST[:PORT][/]` endpoint.
fn endpoint_host(e: &str) -> Option<(&'static str, &str)> {
    let (scheme, rest) = if let Some(r) = e.strip_prefix("http://") {
        ("http", r)
    } else {
        ("https", e.strip_prefix("https://")?)
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        h
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if is_port(p) => h,
            Some(_) => return None,
            None => authority,
        }
    };
    (!host.is_empty()).then_some((scheme, host))
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.parse::<u16>().is_ok()
}

/// `localhost`, 127.0.0.0/8 or ::1: traffic that never leaves the machine.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_endpoint_and_region() {
        let c = ObjectsConfig::parse(
            "s3://berth-blobs?endpoint=http%3A%2F%2F127.0.0.1%3A3900&region=garage",
        )
        .unwrap();
        assert_eq!(c.bucket, "berth-blobs");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(c.region, "garage");
        c.validate().unwrap();
        assert_eq!(
            c.to_string(),
            "s3://berth-blobs?endpoint=http://127.0.0.1:3900&region=garage"
        );
        let plain = ObjectsConfig::parse("s3://bucket").unwrap();
        assert_eq!(plain.endpoint, None);
        assert_eq!(plain.region, "us-east-1");
        assert_eq!(plain.endpoint_name(), "https://s3.us-east-1.amazonaws.com");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let e = ObjectsConfig::parse("s3://bucket?region=x&secret=hunter2").unwrap_err();
        assert!(matches!(&e, ConfigError::UnknownKey { key, .. } if key == "secret"));
        assert!(e.to_string().contains("unknown setting \"secret\""), "{e}");
    }

    #[test]
    fn malformed_urls_are_refused() {
        for url in [
            "http://bucket",
            "s3://",
            "s3://Upper",
            "s3://ab",
            "s3://-bucket",
            "s3://bucket?endpoint=ftp://x",
            "s3://bucket?endpoint=http://h:notaport",
            "s3://bucket?endpoint=",
            "s3://bucket?region=a&region=b",
            "s3://bucket?region=%zz",
        ] {
            assert!(ObjectsConfig::parse(url).is_err(), "{url} was accepted");
        }
    }

    #[test]
    fn plain_http_only_for_loopback_unless_allowed() {
        for ok in [
            "http://127.0.0.1:3900",
            "http://127.8.9.10",
            "http://localhost:9000",
            "http://[::1]:9000",
            "https://s3.example.com",
        ] {
            let c = ObjectsConfig::parse(&format!("s3://bucket?endpoint={ok}")).unwrap();
            c.validate().unwrap();
        }
        let mut c = ObjectsConfig::parse("s3://bucket?endpoint=http://10.0.0.5:9000").unwrap();
        assert!(matches!(
            c.validate(),
            Err(ConfigError::InsecureEndpoint { .. })
        ));
        c.allow_http = true;
        c.validate().unwrap();
    }

    #[test]
    fn secrets_never_show() {
        let mut c = ObjectsConfig::parse("s3://bucket?endpoint=http://127.0.0.1:1").unwrap();
        c.credentials = Some(Credentials {
            access_key_id: "GKabc".into(),
            secret_access_key: Secret::new("the-secret-value"),
            session_token: Some(Secret::new("the-session-token")),
        });
        let shown = format!("{c:?} {c} {:?}", c.credentials);
        assert!(!shown.contains("the-secret-value"), "{shown}");
        assert!(!shown.contains("the-session-token"), "{shown}");
        assert!(shown.contains("GKabc"), "{shown}");
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let mut c = ObjectsConfig::new("bucket");
        c.part_size = 1 << 20;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                setting: "part_size",
                ..
            })
        ));
        let mut c = ObjectsConfig::new("bucket");
        c.request_timeout = Duration::ZERO;
        assert!(c.validate().is_err());
    }
}
