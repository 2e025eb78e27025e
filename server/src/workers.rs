//! A small pool of threads for storage work that blocks (fsync, write transactions) or reads
//! without bound: upload finalise, a PATCH's sync, manifest put, deletes, mounts, the
//! `/metrics` scan, and a catalog filtered for a caller other than the admin (it may read
//! every repository). The connection that asked stays parked on its reactor; the answer
//! comes back over that reactor's channel, and its `Waker` makes the reactor drive the
//! connection again at once (the readiness edge it missed will not fire again).

use crate::dispatch::{Store, Work};
use crate::metrics::Metrics;
use crate::peers::Slot;
use berth_core::{NeedId, Reply};
use crossbeam_channel::{Receiver, Sender};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Which connection asked, so the answer finds it (and a stale answer is dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub reactor: usize,
    pub token: usize,
    /// The connection's generation: a slot reused by a later connection has another.
    pub gen: u64,
}

pub struct Job {
    pub origin: Origin,
    pub id: NeedId,
    pub work: Work,
}

/// A finished job on its way back to its reactor.
pub struct Completion {
    pub origin: Origin,
    pub id: NeedId,
    pub reply: Reply,
}

/// Where one reactor receives completions (and connections handed over by another
/// reactor to even out the load).
pub struct Mailbox {
    pub tx: Sender<Completion>,
    /// Connections handed over by another reactor, with their place under the per-address
    /// cap.
    pub sockets: Sender<(mio::net::TcpStream, Option<Slot>)>,
    /// Connections whose blob bytes a reader thread has loaded (`readers.rs`).
    pub loaded: Sender<Origin>,
    pub waker: mio::Waker,
}

impl Mailbox {
    /// Wakes the reactor after something was put in one of its channels: the readiness
    /// edge of the connection concerned will not fire again by itself.
    pub fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            tracing::error!(error = %e, "cannot wake reactor");
        }
    }
}

/// Named threads that each run until their job channel closes.
pub struct Threads(Vec<JoinHandle<()>>);

impl Threads {
    /// Starts `n` threads `{name}-{i}`, each running what `body` makes for it.
    pub fn start<F>(name: &str, n: usize, mut body: impl FnMut() -> F) -> std::io::Result<Threads>
    where
        F: FnOnce() + Send + 'static,
    {
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let t = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(body())?;
            threads.push(t);
        }
        Ok(Threads(threads))
    }

    /// Waits for every thread: after the job channel's last sender is gone, each finishes
    /// what it holds and stops.
    pub fn join(self) {
        for t in self.0 {
            let _ = t.join();
        }
    }
}

/// The worker pool. Dropping every `Sender<Job>` ends it.
pub fn start_pool(
    n: usize,
    jobs: Receiver<Job>,
    store: Arc<Store>,
    mailboxes: Arc<Vec<Mailbox>>,
    metrics: Arc<Metrics>,
) -> std::io::Result<Threads> {
    Threads::start("berth-worker", n, || {
        let (jobs, store, mailboxes, metrics) = (
            jobs.clone(),
            store.clone(),
            mailboxes.clone(),
            metrics.clone(),
        );
        move || work(jobs, &store, &mailboxes, &metrics)
    })
}

fn work(jobs: Receiver<Job>, store: &Store, mailboxes: &[Mailbox], metrics: &Metrics) {
    for job in jobs {
        // A panic in the engine is a bug; it must not also leave a connection parked forever.
        let reply = catch_unwind(AssertUnwindSafe(|| store.run(job.work)))
            .unwrap_or_else(|_| Reply::Failed(crate::failure::internal(&"storage work panicked")));
        metrics.jobs_in_flight.fetch_sub(1, Relaxed);
        let Some(mb) = mailboxes.get(job.origin.reactor) else {
            continue;
        };
        let done = Completion {
            origin: job.origin,
            id: job.id,
            reply,
        };
        // A closed mailbox means its reactor has exited (shutdown): nobody is waiting.
        if mb.tx.send(done).is_ok() {
            mb.wake();
        }
    }
}
