//! The client of one bucket, with its own runtime, and the requests of bounded size (a
//! whole object in or out, a range, a head, a delete, a presigned URL); streamed reads,
//! listings and multipart writes add their methods in `reader.rs` and `writer.rs`.
//!
//! Two `object_store` clients share the runtime because a streamed read and a bounded
//! request need different timeouts (see `Inner`).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};

use super::config::{ConfigError, ObjectsConfig};
use super::error::{ObjectsError, Op};

const BAD_KEY: &str =
    "not a valid object key (empty, an empty, `.` or `..` segment, or a leading or trailing `/`)";

/// A bucket, reached through its own runtime. Cheap to clone (the clones share the runtime
/// and connection pools); `Send + Sync`, so worker threads share one.
#[derive(Clone)]
pub struct Objects {
    inner: Arc<Inner>,
}

struct Inner {
    /// `Some` until drop, which shuts it down without waiting.
    rt: Option<tokio::runtime::Runtime>,
    /// For requests of bounded size, under the whole-request timeout.
    store: AmazonS3,
    /// For streamed reads: no whole-request timeout (a slow reader would trip it halfway
    /// through a large blob), an inactivity timeout instead.
    streaming: AmazonS3,
    config: ObjectsConfig,
    /// Every request's time (each wait in `block_on`), for `/metrics`.
    latency: crate::latency::Latency,
    endpoint: String,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime waits for its threads and panics inside another runtime; a
        // background shutdown does neither. Requests are awaited by their callers, so what
        // it cuts off is at most a best-effort abort of an abandoned upload.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Objects({})", self.inner.config)
    }
}

impl Objects {
    /// Sets up the client for `config` (credentials from it, else from the AWS variables).
    /// Sends nothing yet: [`Objects::probe`] checks the store answers.
    pub fn open(config: ObjectsConfig) -> Result<Objects, ConfigError> {
        config.validate()?;
        let credentials = config.resolve_credentials()?;
        let endpoint = config.endpoint_name();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.runtime_threads)
            .thread_name("berth-objects")
            .enable_all()
            .build()
            .map_err(|e| ConfigError::Client {
                what: "its runtime".into(),
                why: e.to_string(),
            })?;
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: config.retry.initial_backoff,
                max_backoff: config.retry.max_backoff,
                base: 2.0,
            },
            max_retries: config.retry.max_retries,
            retry_timeout: config.retry.retry_timeout,
        };
        let build = |options: ClientOptions| {
            let mut b = AmazonS3Builder::new()
                .with_bucket_name(&config.bucket)
                .with_region(&config.region)
                .with_access_key_id(&credentials.access_key_id)
                .with_secret_access_key(credentials.secret_access_key.expose())
                // The engine checks every blob's digest itself; hashing each part again to
                // sign it would double the CPU an upload costs.
                .with_unsigned_payload(true)
                .with_retry(retry.clone())
                .with_client_options(options.with_allow_http(true));
            if let Some(token) = &credentials.session_token {
                b = b.with_token(token.expose());
            }
            if let Some(e) = &config.endpoint {
                // Path-style (ENDPOINT/BUCKET/KEY): what every S3-compatible server takes,
                // with no DNS name per bucket. (`validate` kept plain http to loopback.)
                b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
            }
            b.build().map_err(|e| ConfigError::Client {
                what: endpoint.clone(),
                why: e.to_string(),
            })
        };
        let base = ClientOptions::new().with_connect_timeout(config.connect_timeout);
        let store = build(base.clone().with_timeout(config.request_timeout))?;
        let streaming = build(
            base.with_timeout_disabled()
                .with_read_timeout(config.read_timeout),
        )?;
        Ok(Objects {
            inner: Arc::new(Inner {
                rt: Some(rt),
                store,
                streaming,
                config,
                latency: crate::latency::Latency::default(),
                endpoint,
            }),
        })
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &ObjectsConfig {
        &self.inner.config
    }

    /// Checks the bucket answers for these credentials (one listing request): at start,
    /// so a wrong endpoint, key or bucket is said at once rather than at the first push.
    pub fn probe(&self) -> Result<(), ObjectsError> {
        let op = self.op("LIST", "");
        let mut list = self.inner.store.list(None);
        match self.block_on(list.next()) {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(op.error(e)),
        }
    }

    /// Stores `bytes` at `key` in one request, replacing what was there; visible to every
    /// reader once this returns. For objects that fit in memory; larger ones go through
    /// [`Objects::writer`].
    pub fn put(&self, key: &str, bytes: impl Into<Bytes>) -> Result<(), ObjectsError> {
        let op = self.op("PUT", key);
        let path = self.path(&op)?;
        let payload = PutPayload::from(bytes.into());
        self.block_on(self.inner.store.put(&path, payload))
            .map(|_| ())
            .map_err(|e| op.error(e))
    }

    /// The whole object, in memory, under the whole-request timeout: for objects known to
    /// be small (manifests, a small blob); a large one goes through [`Objects::reader`].
    pub fn get(&self, key: &str) -> Result<Bytes, ObjectsError> {
        let op = self.op("GET", key);
        let path = self.path(&op)?;
        self.block_on(async {
            let got = self.inner.store.get(&path).await?;
            got.bytes().await
        })
        .map_err(|e| op.error(e))
    }

    /// Bytes `range` of the object, in memory; the range must lie within the object.
    pub fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectsError> {
        let op = self.op("GET", key);
        let path = self.path(&op)?;
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let want = range.end - range.start;
        let got = self
            .block_on(self.inner.store.get_range(&path, range.clone()))
            .map_err(|e| op.error(e))?;
        if got.len() as u64 != want {
            return Err(op.other(format!(
                "asked for bytes {}..{}, got {} bytes: the range goes past the object's end",
                range.start,
                range.end,
                got.len()
            )));
        }
        Ok(got)
    }

    /// The object's length, or `None` if there is no such object.
    pub fn head(&self, key: &str) -> Result<Option<u64>, ObjectsError> {
        let op = self.op("HEAD", key);
        let path = self.path(&op)?;
        match self.block_on(self.inner.store.head(&path)) {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(op.error(e)),
        }
    }

    /// Removes the object; one that is not there is not an error (deleting is idempotent,
    /// so a retried or repeated delete succeeds).
    pub fn delete(&self, key: &str) -> Result<(), ObjectsError> {
        let op = self.op("DELETE", key);
        let path = self.path(&op)?;
        match self.block_on(self.inner.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(op.error(e)),
        }
    }

    /// A presigned GET URL for the object, valid for `expires_in`: whoever holds it reads
    /// the object (ranges too) straight from the store, without credentials and without
    /// passing through a node. Made locally, no request is sent; the object need not exist.
    pub fn signed_get_url(&self, key: &str, expires_in: Duration) -> Result<String, ObjectsError> {
        let op = self.op("SIGN", key);
        let path = self.path(&op)?;
        self.block_on(
            self.inner
                .store
                .signed_url(http::Method::GET, &path, expires_in),
        )
        .map(|u| u.to_string())
        .map_err(|e| op.error(e))
    }

    /// The client for requests of bounded size.
    pub(super) fn store(&self) -> &AmazonS3 {
        &self.inner.store
    }

    /// The client for streamed reads.
    pub(super) fn streaming(&self) -> &AmazonS3 {
        &self.inner.streaming
    }

    pub(super) fn op<'a>(&'a self, op: &'static str, key: &'a str) -> Op<'a> {
        Op {
            endpoint: &self.inner.endpoint,
            bucket: &self.inner.config.bucket,
            op,
            key,
        }
    }

    /// The key as `object_store` takes it, refusing what it would silently rewrite
    /// (a leading `/`, an empty segment) so a key always names one object.
    pub(super) fn path(&self, op: &Op<'_>) -> Result<Path, ObjectsError> {
        Path::parse(op.key)
            .ok()
            .filter(|p| p.as_ref() == op.key && !op.key.is_empty())
            .ok_or_else(|| op.other(BAD_KEY))
    }

    /// Runs `f` to completion on the runtime, the calling thread waiting (the wait counted
    /// as one request's latency).
    pub(super) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.inner.latency.time(|| self.runtime().block_on(f))
    }

    /// Requests made so far and the time the callers waited on them.
    pub fn latency(&self) -> crate::LatencySum {
        self.inner.latency.sum()
    }

    pub(super) fn runtime(&self) -> &tokio::runtime::Runtime {
        // Invariant: `rt` is `Some` from `open` until `Inner` is dropped.
        self.inner
            .rt
            .as_ref()
            .expect("the runtime lives as long as Objects")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worker threads share one client and hand readers and writers between them.
    #[test]
    fn shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Objects>();
        send::<super::super::ObjectReader>();
        send::<super::super::ObjectWriter>();
        send::<super::super::ObjectList>();
    }

    #[test]
    fn open_needs_credentials_and_a_safe_endpoint() {
        let mut c = ObjectsConfig::parse("s3://bucket?endpoint=http://10.1.2.3:9000").unwrap();
        c.credentials = Some(super::super::Credentials::new("id", "secret"));
        assert!(matches!(
            Objects::open(c.clone()),
            Err(ConfigError::InsecureEndpoint { .. })
        ));
        c.endpoint = Some("http://127.0.0.1:9".into());
        let o = Objects::open(c).unwrap();
        assert!(!format!("{o:?}").contains("secret"));
    }
}
