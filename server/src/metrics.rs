//! Counters for `/metrics`, in the Prometheus text format. Each reactor writes its own shard
//! (no cache line or lock is shared between event loops on the hot path); a scrape sums them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// (route, status) -> (count, total seconds).
type RequestCounts = BTreeMap<(&'static str, u16), (u64, f64)>;

/// Counters owned by one reactor.
#[derive(Default)]
pub struct Shard {
    /// (route, status) -> (count, total seconds). Locked by its reactor per request
    /// (uncontended) and by a scrape.
    requests: Mutex<RequestCounts>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    open: AtomicI64,
    accepted: AtomicU64,
    /// Worker jobs finished, and their total time parked (microseconds).
    jobs: AtomicU64,
    job_micros: AtomicU64,
}

impl Shard {
    pub fn request(&self, route: &'static str, status: u16, took: Duration) {
        // A poisoned lock only means a scrape panicked mid-read; the counts are still sound.
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry((route, status)).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += took.as_secs_f64();
    }
    pub fn bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Relaxed);
    }
    pub fn bytes_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Relaxed);
    }
    pub fn opened(&self) {
        self.open.fetch_add(1, Relaxed);
        self.accepted.fetch_add(1, Relaxed);
    }
    pub fn open_now(&self) -> i64 {
        self.open.load(Relaxed)
    }
    pub fn closed(&self) {
        self.open.fetch_sub(1, Relaxed);
    }
    /// A connection resumed after `took` parked on a worker.
    pub fn job_done(&self, took: Duration) {
        self.jobs.fetch_add(1, Relaxed);
        self.job_micros
            .fetch_add(took.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }
}

/// Storage gauges, read from the engine at scrape time.
#[derive(Clone, Debug, Default)]
pub struct Storage {
    pub blobs: u64,
    pub blob_bytes: u64,
    pub pack_bytes: u64,
    pub manifests: u64,
    pub repositories: u64,
    pub uploads_open: u64,
    /// Packs latched read-only after an I/O error.
    pub failed_packs: u64,
    pub gc_runs: u64,
    pub gc_blobs_removed: u64,
    pub gc_pack_bytes_removed: u64,
    /// Pack files the store holds open now.
    pub open_packs: u64,
    /// Whether the store's writes succeed (the last commit did).
    pub healthy: bool,
    /// Bytes free on the data folder's filesystem.
    pub free_bytes: u64,
    /// The reserve below which uploads are refused.
    pub min_free_bytes: u64,
    /// Statements sent to PostgreSQL and their time (a distributed store's metadata).
    pub metadata_latency: Option<berth_engine::LatencySum>,
    /// Requests to the object store and their time (a distributed store's blob bytes).
    pub object_latency: Option<berth_engine::LatencySum>,
}

/// How an authorization decision ended, for `berth_auth_decisions_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    Granted,
    /// 401 asking an anonymous caller to authenticate.
    Challenged,
    /// 401 `invalid_token`: bad, unknown, expired, revoked or tampered credentials.
    InvalidToken,
    /// 403 `insufficient_scope`: a bearer token that asked for too little.
    InsufficientScope,
    /// 403: the credential may read but not write.
    Denied,
    /// 404: not there, or not visible to the caller.
    NotFound,
    /// 429: too many failures from the client's address.
    RateLimited,
}

impl AuthOutcome {
    const ALL: [AuthOutcome; 7] = [
        AuthOutcome::Granted,
        AuthOutcome::Challenged,
        AuthOutcome::InvalidToken,
        AuthOutcome::InsufficientScope,
        AuthOutcome::Denied,
        AuthOutcome::NotFound,
        AuthOutcome::RateLimited,
    ];

    fn label(self) -> &'static str {
        match self {
            AuthOutcome::Granted => "granted",
            AuthOutcome::Challenged => "challenged",
            AuthOutcome::InvalidToken => "invalid_token",
            AuthOutcome::InsufficientScope => "insufficient_scope",
            AuthOutcome::Denied => "denied",
            AuthOutcome::NotFound => "not_found",
            AuthOutcome::RateLimited => "rate_limited",
        }
    }
}

/// All the server's counters.
pub struct Metrics {
    shards: Vec<Shard>,
    /// Needs handed to workers and not yet answered.
    pub jobs_in_flight: AtomicI64,
    /// Failed authentications (bad, unknown, expired, revoked or tampered credentials).
    pub auth_failures: AtomicU64,
    /// Blob responses cut short because their pack could not be read.
    pub pack_read_errors: AtomicU64,
    /// Blob windows read from the disk by reader threads (their pages were not cached).
    pub pack_disk_reads: AtomicU64,
    /// Connections closed at accept: their address had `max_connections_per_ip` open.
    pub connections_refused: AtomicU64,
    /// Opens (connections, upload files, packs) that failed for want of descriptors.
    pub descriptors_exhausted: AtomicU64,
    /// Layers the indexer listed (each once, whatever number of images share it).
    pub package_layers_listed: AtomicU64,
    /// Manifests the indexer took off the package queue.
    pub package_manifests_indexed: AtomicU64,
    /// Decisions by `AuthOutcome` (index in `AuthOutcome::ALL`).
    auth_outcomes: [AtomicU64; 7],
}

impl Metrics {
    pub fn new(reactors: usize) -> Metrics {
        Metrics {
            shards: (0..reactors.max(1)).map(|_| Shard::default()).collect(),
            jobs_in_flight: AtomicI64::new(0),
            auth_failures: AtomicU64::new(0),
            pack_read_errors: AtomicU64::new(0),
            pack_disk_reads: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            descriptors_exhausted: AtomicU64::new(0),
            package_layers_listed: AtomicU64::new(0),
            package_manifests_indexed: AtomicU64::new(0),
            auth_outcomes: Default::default(),
        }
    }

    pub fn auth_outcome(&self, o: AuthOutcome) {
        if let Some(i) = AuthOutcome::ALL.iter().position(|x| *x == o) {
            self.auth_outcomes[i].fetch_add(1, Relaxed);
        }
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    pub fn shard(&self, i: usize) -> &Shard {
        &self.shards[i % self.shards.len()]
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self, storage: &Storage) -> String {
        let mut requests = RequestCounts::new();
        let (mut bin, mut bout, mut open, mut accepted) = (0, 0, 0, 0);
        let (mut jobs, mut job_micros) = (0u64, 0u64);
        for s in &self.shards {
            let m = s.requests.lock().unwrap_or_else(|p| p.into_inner());
            for (k, v) in m.iter() {
                let e = requests.entry(*k).or_insert((0, 0.0));
                e.0 += v.0;
                e.1 += v.1;
            }
            bin += s.bytes_in.load(Relaxed);
            bout += s.bytes_out.load(Relaxed);
            open += s.open.load(Relaxed);
            accepted += s.accepted.load(Relaxed);
            jobs += s.jobs.load(Relaxed);
            job_micros += s.job_micros.load(Relaxed);
        }
        let mut o = String::with_capacity(4096);
        head(
            &mut o,
            "berth_requests_total",
            "counter",
            "Requests answered, by route and status.",
        );
        for ((route, status), (n, _)) in &requests {
            let _ = writeln!(
                o,
                "berth_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let mut by_route: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
        for ((route, _), (n, secs)) in &requests {
            let e = by_route.entry(route).or_insert((0, 0.0));
            e.0 += n;
            e.1 += secs;
        }
        head(
            &mut o,
            "berth_request_duration_seconds",
            "summary",
            "Time from a request's first byte to its last response byte queued.",
        );
        for (route, (n, secs)) in &by_route {
            let _ = writeln!(
                o,
                "berth_request_duration_seconds_sum{{route=\"{route}\"}} {secs}"
            );
            let _ = writeln!(
                o,
                "berth_request_duration_seconds_count{{route=\"{route}\"}} {n}"
            );
        }
        head(
            &mut o,
            "berth_worker_job_duration_seconds",
            "summary",
            "Time a connection waited for a worker (commit, delete, mount).",
        );
        let _ = writeln!(
            o,
            "berth_worker_job_duration_seconds_sum {}\nberth_worker_job_duration_seconds_count {jobs}",
            job_micros as f64 / 1e6
        );
        for (name, help, sum) in [
            (
                "berth_metadata_request_duration_seconds",
                "Time this node waited on PostgreSQL, per statement (the metadata of a distributed store).",
                storage.metadata_latency,
            ),
            (
                "berth_object_store_request_duration_seconds",
                "Time this node waited on the object store, per request (the blob bytes of a distributed store).",
                storage.object_latency,
            ),
        ] {
            if let Some(l) = sum {
                head(&mut o, name, "summary", help);
                let _ = writeln!(
                    o,
                    "{name}_sum {}\n{name}_count {}",
                    l.nanos as f64 / 1e9,
                    l.count
                );
            }
        }
        let gauges: [(&str, &str, &str, i128); 25] = [
            (
                "berth_store_healthy",
                "gauge",
                "1 while the store's writes succeed, 0 once a commit failed (a full disk), until one succeeds again.",
                i128::from(storage.healthy),
            ),
            (
                "berth_store_free_bytes",
                "gauge",
                "Bytes free on the data folder's filesystem.",
                storage.free_bytes as i128,
            ),
            (
                "berth_store_min_free_bytes",
                "gauge",
                "Uploads are refused (507) while fewer bytes than this are free (min_free_space).",
                storage.min_free_bytes as i128,
            ),
            (
                "berth_received_bytes_total",
                "counter",
                "Bytes read from client sockets.",
                bin as i128,
            ),
            (
                "berth_sent_bytes_total",
                "counter",
                "Bytes written to client sockets, blob bytes included.",
                bout as i128,
            ),
            (
                "berth_connections_open",
                "gauge",
                "Client connections open now.",
                open as i128,
            ),
            (
                "berth_connections_accepted_total",
                "counter",
                "Client connections accepted.",
                accepted as i128,
            ),
            (
                "berth_connections_refused_total",
                "counter",
                "Connections closed at accept because their address had max_connections_per_ip open.",
                self.connections_refused.load(Relaxed) as i128,
            ),
            (
                "berth_worker_jobs_in_flight",
                "gauge",
                "Commits and deletes running on workers.",
                self.jobs_in_flight.load(Relaxed) as i128,
            ),
            (
                "berth_uploads_open",
                "gauge",
                "Upload sessions open in the store.",
                storage.uploads_open as i128,
            ),
            (
                "berth_storage_blobs",
                "gauge",
                "Distinct blobs stored.",
                storage.blobs as i128,
            ),
            (
                "berth_storage_blob_bytes",
                "gauge",
                "Bytes of distinct blobs stored.",
                storage.blob_bytes as i128,
            ),
            (
                "berth_storage_pack_bytes",
                "gauge",
                "Bytes of pack files on disk.",
                storage.pack_bytes as i128,
            ),
            (
                "berth_storage_manifests",
                "gauge",
                "Manifests stored.",
                storage.manifests as i128,
            ),
            (
                "berth_storage_repositories",
                "gauge",
                "Repositories.",
                storage.repositories as i128,
            ),
            (
                "berth_storage_failed_packs",
                "gauge",
                "Pack files read-only after an I/O error.",
                storage.failed_packs as i128,
            ),
            (
                "berth_gc_runs_total",
                "counter",
                "Garbage collections run since start (dry runs not counted).",
                storage.gc_runs as i128,
            ),
            (
                "berth_gc_blobs_removed_total",
                "counter",
                "Blobs no repository linked, removed by garbage collection.",
                storage.gc_blobs_removed as i128,
            ),
            (
                "berth_gc_pack_bytes_removed_total",
                "counter",
                "Bytes of pack files garbage collection deleted (freed once no pull reads them).",
                storage.gc_pack_bytes_removed as i128,
            ),
            (
                "berth_pack_read_errors_total",
                "counter",
                "Blob responses cut short because their pack could not be read.",
                self.pack_read_errors.load(Relaxed) as i128,
            ),
            (
                "berth_pack_disk_reads_total",
                "counter",
                "Blob windows (up to 2 MiB) read from the disk off the event loops because their pages were not in memory.",
                self.pack_disk_reads.load(Relaxed) as i128,
            ),
            (
                "berth_open_packs",
                "gauge",
                "Pack files held open for reading (at most open_packs, plus packs garbage collection just deleted).",
                storage.open_packs as i128,
            ),
            (
                "berth_descriptors_exhausted_total",
                "counter",
                "Accepts and file opens that failed because the process or system had no descriptor left.",
                self.descriptors_exhausted.load(Relaxed) as i128,
            ),
            (
                "berth_package_layers_listed_total",
                "counter",
                "Layers the package indexer has listed (once per layer digest).",
                self.package_layers_listed.load(Relaxed) as i128,
            ),
            (
                "berth_package_manifests_indexed_total",
                "counter",
                "Pushed manifests the package indexer has worked through.",
                self.package_manifests_indexed.load(Relaxed) as i128,
            ),
        ];
        for (name, kind, help, v) in gauges {
            head(&mut o, name, kind, help);
            let _ = writeln!(o, "{name} {v}");
        }
        head(
            &mut o,
            "berth_auth_failures_total",
            "counter",
            "Failed authentications (bad, unknown, expired, revoked or tampered credentials).",
        );
        let _ = writeln!(
            o,
            "berth_auth_failures_total {}",
            self.auth_failures.load(Relaxed)
        );
        head(
            &mut o,
            "berth_auth_decisions_total",
            "counter",
            "Authorization decisions, by outcome.",
        );
        for (i, out) in AuthOutcome::ALL.iter().enumerate() {
            let _ = writeln!(
                o,
                "berth_auth_decisions_total{{outcome=\"{}\"}} {}",
                out.label(),
                self.auth_outcomes[i].load(Relaxed)
            );
        }
        head(
            &mut o,
            "berth_reactor_connections_open",
            "gauge",
            "Client connections open now, by event loop (shows how evenly accepts spread).",
        );
        for (i, s) in self.shards.iter().enumerate() {
            let _ = writeln!(
                o,
                "berth_reactor_connections_open{{reactor=\"{i}\"}} {}",
                s.open.load(Relaxed)
            );
        }
        o
    }
}

fn head(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_sums_shards_by_route_and_status() {
        let m = Metrics::new(2);
        m.shard(0)
            .request("blob_get", 200, Duration::from_millis(500));
        m.shard(1)
            .request("blob_get", 200, Duration::from_millis(250));
        m.shard(1).request("manifest_get", 404, Duration::ZERO);
        m.shard(0).bytes_out(10);
        m.shard(1).bytes_out(5);
        m.shard(0).opened();
        m.shard(1).opened();
        m.shard(1).closed();
        let text = m.render(&Storage {
            blob_bytes: 42,
            metadata_latency: Some(berth_engine::LatencySum {
                count: 4,
                nanos: 1_500_000_000,
            }),
            ..Storage::default()
        });
        assert!(text.contains("berth_metadata_request_duration_seconds_sum 1.5\n"));
        assert!(text.contains("berth_metadata_request_duration_seconds_count 4\n"));
        assert!(
            !text.contains("berth_object_store_request"),
            "no object store, no series"
        );
        assert!(
            text.contains("berth_requests_total{route=\"blob_get\",status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("berth_requests_total{route=\"manifest_get\",status=\"404\"} 1\n"));
        assert!(text.contains("berth_request_duration_seconds_sum{route=\"blob_get\"} 0.75\n"));
        assert!(text.contains("berth_sent_bytes_total 15\n"));
        assert!(text.contains("berth_connections_open 1\n"));
        assert!(text.contains("berth_connections_accepted_total 2\n"));
        assert!(text.contains("berth_storage_blob_bytes 42\n"));
    }
}
