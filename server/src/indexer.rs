//! The package indexer: a thread that works through the package queue, off the event loops,
//! the workers and every push's path. For each queued manifest it lists the layers not yet
//! listed (streamed from their packs, decompressed, their tar headers read: once per layer
//! digest, whatever number of images share it), merges them into the image's file system,
//! computes the Download's checksums (its blobs read once for every tag), and records the
//! version, taking it off the queue in the same commit. A crash or restart resumes the
//! queue where it was: rows leave it only once their work is committed.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use berth_engine::package::version::{kind_name, merge_image, OS_RELEASE};
use berth_engine::package::{
    archive_checksums, scan_layer, Checksums, Kind, LayerListing, ManifestFacts, ScanLimits,
    VersionRecord,
};
use berth_engine::{BlobKey, Engine, ManifestRef, StoreError};
use crossbeam_channel::RecvTimeoutError;

use crate::dispatch::Store;
use crate::metrics::Metrics;
use crate::package::download;
use crate::web::download::Source;

/// How often an empty queue is looked at again.
const POLL: Duration = Duration::from_secs(1);
/// How long after a failure (the store unhealthy, a full disk) before trying again.
const BACKOFF: Duration = Duration::from_secs(30);
/// Manifests taken per look at the queue.
const BATCH: usize = 16;

pub struct Indexer {
    stop: crossbeam_channel::Sender<()>,
    thread: JoinHandle<()>,
    /// The thread's kernel id (0 until it has started), so that `stop` can lift its idle
    /// priority: on a busy machine a `SCHED_IDLE` thread may get no CPU for seconds, and
    /// shutdown waits for it.
    tid: Arc<std::sync::atomic::AtomicI32>,
}

impl Indexer {
    /// Starts the thread; each layer is listed within `limits`.
    pub fn start(store: Arc<Store>, limits: ScanLimits) -> std::io::Result<Indexer> {
        let (stop, rx) = crossbeam_channel::bounded::<()>(0);
        let tid = Arc::new(std::sync::atomic::AtomicI32::new(0));
        let own_tid = tid.clone();
        let thread = std::thread::Builder::new()
            .name("berth-indexer".into())
            .spawn(move || {
                // SAFETY: gettid(2) takes nothing and touches no memory.
                own_tid.store(
                    unsafe { libc::gettid() },
                    std::sync::atomic::Ordering::Release,
                );
                set_priority(0, Priority::Background);
                let mut wait = Duration::ZERO;
                loop {
                    if rx.recv_timeout(wait) != Err(RecvTimeoutError::Timeout) {
                        return;
                    }
                    wait = match work(
                        &Indexing {
                            e: store.engine(),
                            host: store.host(),
                            metrics: store.metrics(),
                            limits: &limits,
                        },
                        &rx,
                    ) {
                        Ok(0) => POLL,
                        Ok(_) => Duration::ZERO,
                        Err(e) => {
                            tracing::warn!(error = %e, "package indexer: will try again");
                            BACKOFF
                        }
                    };
                }
            })?;
        Ok(Indexer { stop, thread, tid })
    }

    /// Stops after the layer being listed (a layer is listed whole or not at all), at
    /// normal priority so that a busy machine does not hold the shutdown up.
    pub fn stop(self) {
        let tid = self.tid.load(std::sync::atomic::Ordering::Acquire);
        if tid != 0 {
            set_priority(tid, Priority::Normal);
        }
        drop(self.stop);
        let _ = self.thread.join();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Priority {
    Background,
    Normal,
}

/// The indexer runs only on CPU time nothing else wants (`SCHED_IDLE`, this thread
/// alone) and reads at idle I/O priority: pushes and pulls come first, and the index
/// catches up when they pause. `Normal` puts thread `tid` (0: the calling thread) back.
fn set_priority(tid: libc::pid_t, p: Priority) {
    let policy = match p {
        Priority::Background => libc::SCHED_IDLE,
        Priority::Normal => libc::SCHED_OTHER,
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler(2) changes thread `tid`'s policy (0: the calling thread);
    // `param` is a valid sched_param for both policies (priority 0), read during the call
    // only.
    if unsafe { libc::sched_setscheduler(tid, policy, &param) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "package indexer: scheduling policy refused");
    }
    // ioprio_set(IOPRIO_WHO_PROCESS, tid, class): no libc wrapper. Best effort (class 2)
    // at its default level is what a thread starts with.
    const IOPRIO_CLASS_BE: libc::c_long = 2;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3;
    const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    let class = match p {
        Priority::Background => IOPRIO_CLASS_IDLE,
        Priority::Normal => IOPRIO_CLASS_BE,
    };
    // SAFETY: ioprio_set(2) takes three integers and touches no memory of ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            libc::c_long::from(tid),
            (class << IOPRIO_CLASS_SHIFT) | if p == Priority::Normal { 4 } else { 0 },
        )
    };
    if r != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "package indexer: I/O priority refused");
    }
}

/// What indexing reads and writes with.
struct Indexing<'a> {
    e: &'a Engine,
    /// The host the Download names images by.
    host: &'a str,
    metrics: &'a Metrics,
    limits: &'a ScanLimits,
}

/// Works one batch of the queue; how many manifests it took off.
fn work(x: &Indexing<'_>, stop: &crossbeam_channel::Receiver<()>) -> Result<usize, StoreError> {
    // Another node's indexer is at it: nothing taken off here, so poll again later.
    let Some(_turn) = x.e.indexer_turn()? else {
        return Ok(0);
    };
    let batch = x.e.package_queue(BATCH)?;
    let mut n = 0;
    for (repo, key) in batch {
        if !matches!(stop.try_recv(), Err(crossbeam_channel::TryRecvError::Empty)) {
            break;
        }
        index_manifest(x, &repo, &key)?;
        x.metrics.package_manifests_indexed.fetch_add(1, Relaxed);
        n += 1;
    }
    Ok(n)
}

/// Works out and records what version `key` of `repo` is, and takes it off the queue: an
/// image's files first, then its Download's checksums.
#[allow(clippy::disallowed_methods)] // the indexer's own thread, off the event loops: dates a version, times a layer's listing
fn index_manifest(x: &Indexing<'_>, repo: &str, key: &BlobKey) -> Result<(), StoreError> {
    let (e, host) = (x.e, x.host);
    // Deleted since it was queued: nothing to do.
    let Some(m) = e.get_manifest(repo, ManifestRef::Key(key))? else {
        return e.package_done(&[(repo.to_owned(), key.clone())]);
    };
    let facts = ManifestFacts::parse(&m.body, &m.media_type);
    let mut sizes = Sizes::default();
    sizes.add(&key.to_string(), m.body.len() as u64);
    let (mut record, tree) = match facts.kind() {
        Kind::Image => {
            let listings = list_layers(x, repo, &facts)?;
            let refs: Vec<Option<&LayerListing>> = listings.iter().map(Option::as_ref).collect();
            let (record, tree) = merge_image(&facts, &refs);
            (record, Some(tree))
        }
        Kind::Index => {
            for child in &facts.manifests {
                sizes.add(&child.digest, child.size);
                let Some(ck) = BlobKey::parse(&child.digest) else {
                    continue;
                };
                if let Some(cm) = e.get_manifest(repo, ManifestRef::Key(&ck))? {
                    let cf = ManifestFacts::parse(&cm.body, &cm.media_type);
                    cf.blobs().iter().for_each(|b| sizes.add(&b.digest, b.size));
                }
            }
            let record = VersionRecord {
                kind: kind_name(Kind::Index).into(),
                ..VersionRecord::default()
            };
            (record, None)
        }
        Kind::Artifact => {
            let record = VersionRecord {
                kind: kind_name(Kind::Artifact).into(),
                ..VersionRecord::default()
            };
            (record, None)
        }
    };
    facts
        .blobs()
        .iter()
        .for_each(|b| sizes.add(&b.digest, b.size));
    record.size = sizes.total;
    record.indexed_at = crate::clock::unix_seconds(std::time::SystemTime::now());
    if facts.kind() != Kind::Image {
        return e.put_version(repo, key, &record, tree.as_ref());
    }
    // The files show as soon as they are merged; the checksums (a read of every blob)
    // follow, the version staying queued until they are recorded.
    e.put_version_listed(repo, key, &record, tree.as_ref())?;
    drop(tree);
    match checksums(e, host, repo, key, &m.media_type, &m.body, &facts) {
        Ok(sums) => e.put_checksums(repo, key, sums, None),
        Err(why) => e.put_checksums(repo, key, Default::default(), Some(why)),
    }
}

/// Bytes of blobs, each counted once.
#[derive(Default)]
struct Sizes {
    seen: std::collections::HashSet<String>,
    total: u64,
}

impl Sizes {
    fn add(&mut self, digest: &str, size: u64) {
        if self.seen.insert(digest.to_owned()) {
            self.total = self.total.saturating_add(size);
        }
    }
}

/// Each layer's listing, in order (`None`: external, or not held): the stored one, or one
/// made now and stored for the next image sharing the layer (listed once per layer digest).
#[allow(clippy::disallowed_methods)] // the indexer's own thread, off the event loops: dates a version, times a layer's listing
fn list_layers(
    x: &Indexing<'_>,
    repo: &str,
    facts: &ManifestFacts,
) -> Result<Vec<Option<LayerListing>>, StoreError> {
    let (e, metrics) = (x.e, x.metrics);
    let mut out = Vec::with_capacity(facts.layers.len());
    for layer in &facts.layers {
        out.push(None);
        let Some(lk) = BlobKey::parse(&layer.digest).filter(|_| !layer.external) else {
            continue;
        };
        if let Some(stored) = e.layer_listing(&lk)? {
            *out.last_mut().expect("pushed above") = Some(stored);
            continue;
        }
        // Not in this repository (any more): nothing to list here. A peek, not a use: the
        // indexer must not hold a layer back from garbage collection.
        let Some(loc) = e.peek_blob(repo, &lk)? else {
            continue;
        };
        let started = std::time::Instant::now();
        let listing = scan_layer(e.blob_reader(loc)?, &OS_RELEASE, x.limits);
        e.put_layer_listing(&lk, &listing)?;
        metrics.package_layers_listed.fetch_add(1, Relaxed);
        tracing::info!(
            layer = %lk,
            entries = listing.changes.len(),
            complete = listing.complete(),
            micros = started.elapsed().as_micros() as u64,
            "package indexer: listed a layer"
        );
        if let Some(err) = &listing.error {
            tracing::warn!(layer = %lk, error = %err, "package indexer: layer read only in part");
        }
        *out.last_mut().expect("pushed above") = Some(listing);
    }
    Ok(out)
}

/// The Download's checksums for each tag pointing at the version (and for the version by
/// digest, under `""`), reading its blobs once; why not, when it has no Download.
fn checksums(
    e: &Engine,
    host: &str,
    repo: &str,
    key: &BlobKey,
    media_type: &str,
    manifest: &bytes::Bytes,
    facts: &ManifestFacts,
) -> Result<std::collections::BTreeMap<String, Checksums>, String> {
    let store_err = |err: StoreError| {
        tracing::warn!(error = %err, "package indexer: checksums not computed");
        "the store could not be read".to_owned()
    };
    let tags = e.version_tags(repo, key).map_err(store_err)?;
    let specs = download::archive_specs(host, repo, key, media_type, manifest.len() as u64, facts)?;
    let names: Vec<String> = std::iter::once(String::new()).chain(tags).collect();
    let plans = names
        .iter()
        .map(|t| specs.plan((!t.is_empty()).then_some(t.as_str())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut lookup = crate::web::download::lookup_in(e, repo, (key, manifest));
    let mut buf = vec![0u8; 256 << 10];
    let mut read = |digest: &str, range: std::ops::Range<u64>, out: &mut dyn FnMut(&[u8])| {
        let loc = match lookup(digest).map_err(std::io::Error::other)? {
            Some(Source::Stored(loc)) => loc,
            Some(Source::Bytes(b)) => {
                let r = usize::try_from(range.start).unwrap_or(usize::MAX)
                    ..usize::try_from(range.end).unwrap_or(usize::MAX);
                out(b.get(r).unwrap_or_default());
                return Ok(());
            }
            None => {
                return Err(std::io::Error::other(format!(
                    "blob {digest} is not stored"
                )))
            }
        };
        let part = berth_engine::BlobLoc {
            pack: loc.pack,
            offset: loc.offset + range.start,
            len: (range.end - range.start).min(loc.len.saturating_sub(range.start)),
        };
        let mut r = e.blob_reader(part).map_err(std::io::Error::other)?;
        loop {
            let n = std::io::Read::read(&mut r, &mut buf)?;
            if n == 0 {
                return Ok(());
            }
            out(&buf[..n]);
        }
    };
    let sums = archive_checksums(&plans, &mut read).map_err(|err| {
        tracing::warn!(error = %err, repo, "package indexer: checksums not computed");
        format!("the Download could not be read: {err}")
    })?;
    Ok(names.into_iter().zip(sums).collect())
}

#[cfg(test)]
mod tests {
    use super::{set_priority, Priority};

    fn policy(tid: libc::pid_t) -> libc::c_int {
        // SAFETY: sched_getscheduler(2) takes a thread id and touches no memory.
        unsafe { libc::sched_getscheduler(tid) }
    }

    #[test]
    fn the_indexer_thread_runs_idle_and_is_put_back_to_normal_for_its_stop() {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            set_priority(0, Priority::Background);
            // SAFETY: gettid(2) takes nothing and touches no memory.
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            let _ = done_rx.recv();
        });
        let tid = tid_rx.recv().unwrap();
        assert_eq!(policy(tid), libc::SCHED_IDLE);
        set_priority(tid, Priority::Normal);
        assert_eq!(policy(tid), libc::SCHED_OTHER);
        drop(done_tx);
        t.join().unwrap();
    }
}
