//! A small pool of threads for storage work that blocks (fsync, write transactions): upload
//! finalise, a PATCH's sync, manifest put, deletes, mounts, and the `/metrics` scan. The connection that asked stays parked on its
//! reactor; the answer comes back over that reactor's channel, and its `Waker` makes the
//! reactor drive the connection again at once (the readiness edge it missed will not fire
//! again).

use crate::dispatch::{Store, Work};
use crate::metrics::Metrics;
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
    pub sockets: Sender<mio::net::TcpStream>,
    pub waker: mio::Waker,
}

/// The pool. Dropping every `Sender<Job>` ends it; `join` waits for running jobs.
pub struct Pool {
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    pub fn start(
        n: usize,
        jobs: Receiver<Job>,
        store: Arc<Store>,
        mailboxes: Arc<Vec<Mailbox>>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Pool> {
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let (jobs, store, mailboxes, metrics) = (
                jobs.clone(),
                store.clone(),
                mailboxes.clone(),
                metrics.clone(),
            );
            let t = std::thread::Builder::new()
                .name(format!("berth-worker-{i}"))
                .spawn(move || work(jobs, &store, &mailboxes, &metrics))?;
            threads.push(t);
        }
        Ok(Pool { threads })
    }

    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn work(jobs: Receiver<Job>, store: &Store, mailboxes: &[Mailbox], metrics: &Metrics) {
    for job in jobs {
        // A panic in the engine is a bug; it must not also leave a connection parked forever.
        let reply = catch_unwind(AssertUnwindSafe(|| store.run(job.work))).unwrap_or_else(|_| {
            tracing::error!("storage work panicked; answering 500");
            Reply::Failed("internal error".into())
        });
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
            if let Err(e) = mb.waker.wake() {
                tracing::error!(error = %e, "cannot wake reactor");
            }
        }
    }
}
