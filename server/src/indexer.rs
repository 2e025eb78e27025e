//! The package indexer: a thread that works through the package queue, off the event loops,
//! the workers and every push's path. For each queued manifest it lists the layers not yet
//! listed (streamed from their packs, decompressed, their tar headers read: once per layer
//! digest, whatever number of images share it) and takes the manifest off the queue. A
//! crash or restart resumes the queue where it was: rows leave it only once their work is
//! committed.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use berth_engine::package::{scan_layer, Kind, ManifestFacts, ScanLimits};
use berth_engine::{BlobKey, Engine, ManifestRef, StoreError};
use crossbeam_channel::RecvTimeoutError;

use crate::dispatch::Store;
use crate::metrics::Metrics;

/// How often an empty queue is looked at again.
const POLL: Duration = Duration::from_secs(1);
/// How long after a failure (the store unhealthy, a full disk) before trying again.
const BACKOFF: Duration = Duration::from_secs(30);
/// Manifests taken per look at the queue.
const BATCH: usize = 16;
/// Files whose contents the package details show (the distribution).
const CAPTURE: [&[u8]; 2] = [b"etc/os-release", b"usr/lib/os-release"];

pub struct Indexer {
    stop: crossbeam_channel::Sender<()>,
    thread: JoinHandle<()>,
}

impl Indexer {
    pub fn start(store: Arc<Store>) -> std::io::Result<Indexer> {
        let (stop, rx) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("berth-indexer".into())
            .spawn(move || {
                let mut wait = Duration::ZERO;
                loop {
                    if rx.recv_timeout(wait) != Err(RecvTimeoutError::Timeout) {
                        return;
                    }
                    wait = match work(store.engine(), store.metrics(), &rx) {
                        Ok(0) => POLL,
                        Ok(_) => Duration::ZERO,
                        Err(e) => {
                            tracing::warn!(error = %e, "package indexer: will try again");
                            BACKOFF
                        }
                    };
                }
            })?;
        Ok(Indexer { stop, thread })
    }

    /// Stops after the layer being listed (a layer is listed whole or not at all).
    pub fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// Works one batch of the queue; how many manifests it took off.
fn work(
    e: &Engine,
    metrics: &Metrics,
    stop: &crossbeam_channel::Receiver<()>,
) -> Result<usize, StoreError> {
    let batch = e.package_queue(BATCH)?;
    let mut done = Vec::with_capacity(batch.len());
    for (repo, key) in batch {
        if !matches!(stop.try_recv(), Err(crossbeam_channel::TryRecvError::Empty)) {
            break;
        }
        index_manifest(e, metrics, &repo, &key)?;
        done.push((repo, key));
    }
    e.package_done(&done)?;
    metrics
        .package_manifests_indexed
        .fetch_add(done.len() as u64, Relaxed);
    Ok(done.len())
}

fn index_manifest(
    e: &Engine,
    metrics: &Metrics,
    repo: &str,
    key: &BlobKey,
) -> Result<(), StoreError> {
    // Deleted since it was queued: nothing to do.
    let Some(m) = e.get_manifest(repo, ManifestRef::Key(key))? else {
        return Ok(());
    };
    let facts = ManifestFacts::parse(&m.body, &m.media_type);
    if facts.kind() != Kind::Image {
        return Ok(());
    }
    for layer in facts.layers.iter().filter(|l| !l.external) {
        let Some(lk) = BlobKey::parse(&layer.digest) else {
            continue;
        };
        if e.layer_listing(&lk)?.is_some() {
            continue;
        }
        // Not in this repository (any more): nothing to list here. A peek, not a use: the
        // indexer must not hold a layer back from garbage collection.
        let Some(loc) = e.peek_blob(repo, &lk)? else {
            continue;
        };
        let started = crate::reactor::now();
        let listing = scan_layer(e.blob_reader(loc)?, &CAPTURE, &ScanLimits::default());
        e.put_layer_listing(&lk, &listing)?;
        metrics.package_layers_listed.fetch_add(1, Relaxed);
        tracing::info!(
            layer = %lk,
            entries = listing.changes.len(),
            complete = listing.complete(),
            micros = crate::reactor::now().saturating_duration_since(started).as_micros() as u64,
            "package indexer: listed a layer"
        );
        if let Some(err) = &listing.error {
            tracing::warn!(layer = %lk, error = %err, "package indexer: layer read only in part");
        }
    }
    Ok(())
}
