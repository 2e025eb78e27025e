//! What every event loop and connection shares: the store, the counters, the channels to
//! the workers and readers, the limits, and the shutdown flags.

use crate::dispatch::Store;
use crate::metrics::{Metrics, Shard};
use crate::peers::Peers;
use crate::readers::Read;
use crate::workers::{Job, Mailbox};
use berth_core::Limits;
use crossbeam_channel::Sender;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// What every reactor and connection shares, read-only or atomically.
pub struct Shared {
    /// Every reactor's inbox, for handing over connections.
    pub mailboxes: Arc<Vec<Mailbox>>,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub jobs: Sender<Job>,
    /// Reads of blob bytes not in memory (`readers.rs`).
    pub reads: Sender<Read>,
    pub limits: Arc<Limits>,
    pub access_log: bool,
    pub grace: Duration,
    /// How long queued output may wait on a client that reads nothing.
    pub send_timeout: Duration,
    /// Set once by the signal handler thread: stop accepting, drain, exit.
    pub shutdown: AtomicBool,
    /// Set by a reactor that died of an I/O error, so the process exits non-zero.
    pub failed: AtomicBool,
    /// Open connections per client address, when capped.
    pub peers: Option<Arc<Peers>>,
}

impl Shared {
    pub fn shard(&self, reactor: usize) -> &Shard {
        self.metrics.shard(reactor)
    }
}
