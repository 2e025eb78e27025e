//! Threads that read blob bytes from the disk into the page cache, so an event loop never
//! waits on the disk: a pull of a blob nobody read lately would otherwise stall every other
//! connection on its loop for each window (about 4 ms per 2 MiB at 0.5 GB/s). The
//! connection waits (`Flushed::Loading`); the reader loads the window's pages, then tells
//! the connection's reactor, whose `Waker` makes it flush again at once. A read whose
//! connection closed before its turn is skipped, so clients that ask and leave cannot queue
//! up disk work.

use crate::metrics::Metrics;
use crate::send::{Load, Loader};
use crate::workers::{Mailbox, Origin, Threads};
use berth_engine::PackFile;
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// One read: bytes `at..at + len` of `file`, for the connection `origin`.
pub struct Read {
    origin: Origin,
    file: Arc<PackFile>,
    at: u64,
    len: usize,
    load: Arc<Load>,
}

/// Starts the reader threads. Dropping every `Sender<Read>` ends them.
pub fn start(
    n: usize,
    jobs: Receiver<Read>,
    mailboxes: Arc<Vec<Mailbox>>,
    metrics: Arc<Metrics>,
) -> std::io::Result<Threads> {
    Threads::start("berth-reader", n, || {
        let (jobs, mailboxes, metrics) = (jobs.clone(), mailboxes.clone(), metrics.clone());
        move || read(jobs, &mailboxes, &metrics)
    })
}

/// Each reader's buffer: the bytes read are dropped, so it only sets the size of each read.
const SCRATCH: usize = 256 << 10;

fn read(jobs: Receiver<Read>, mailboxes: &[Mailbox], metrics: &Metrics) {
    let mut scratch = vec![0u8; SCRATCH];
    for job in jobs {
        // The connection that asked has closed: nobody will use these bytes.
        if Arc::strong_count(&job.load) == 1 {
            continue;
        }
        match job.file.read_into_cache(job.at, job.len, &mut scratch) {
            Ok(()) => {
                metrics.pack_disk_reads.fetch_add(1, Relaxed);
                job.load.finish(true);
            }
            Err(e) => {
                tracing::warn!(error = %e, pack = job.file.id(), at = job.at, "cannot read blob bytes from the disk");
                job.load.finish(false);
            }
        }
        let Some(mb) = mailboxes.get(job.origin.reactor) else {
            continue;
        };
        // A closed mailbox means its reactor has exited (shutdown): nobody is waiting.
        if mb.loaded.send(job.origin).is_ok() {
            mb.wake();
        }
    }
}

/// A connection's way to the reader threads.
pub struct ReadFor<'a> {
    pub jobs: &'a Sender<Read>,
    pub origin: Origin,
}

impl Loader for ReadFor<'_> {
    fn load(&self, file: &Arc<PackFile>, at: u64, len: usize) -> Arc<Load> {
        let load = Arc::new(Load::default());
        let job = Read {
            origin: self.origin,
            file: file.clone(),
            at,
            len,
            load: load.clone(),
        };
        if self.jobs.send(job).is_err() {
            // Only after shutdown has dropped the readers: the flush maps the bytes itself.
            load.finish(true);
        }
        load
    }
}

#[cfg(test)]
#[allow(unsafe_code)] // a test's pack file, taken as stable
mod tests {
    use super::*;
    use std::io::Write;

    /// A read whose connection still waits is done, counted and reported to its reactor; one
    /// whose connection has closed (nobody holds its `Load`) is skipped.
    #[test]
    fn reads_for_closed_connections_are_skipped() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[7u8; 10_000]).unwrap();
        // SAFETY: an unlinked temporary file only this test holds.
        let file = Arc::new(unsafe { PackFile::assume_stable(f) });
        let poll = mio::Poll::new().unwrap();
        let (tx, _rx) = crossbeam_channel::unbounded();
        let (sockets, _sockets_rx) = crossbeam_channel::unbounded();
        let (loaded, loaded_rx) = crossbeam_channel::unbounded();
        let waker = mio::Waker::new(poll.registry(), mio::Token(0)).unwrap();
        let mailboxes = Arc::new(vec![Mailbox {
            tx,
            sockets,
            loaded,
            waker,
        }]);
        let metrics = Arc::new(Metrics::new(1));
        let (jobs, jobs_rx) = crossbeam_channel::unbounded();
        let origin = |gen| Origin {
            reactor: 0,
            token: 3,
            gen,
        };
        let (closed, open) = (origin(1), origin(2));
        let reader = |origin| ReadFor {
            jobs: &jobs,
            origin,
        };
        drop(reader(closed).load(&file, 0, 4096));
        let kept = reader(open).load(&file, 4096, 4096);
        drop(jobs);
        start(1, jobs_rx, mailboxes, metrics.clone())
            .unwrap()
            .join();
        assert_eq!(kept.outcome(), Some(true));
        assert_eq!(metrics.pack_disk_reads.load(Relaxed), 1);
        assert_eq!(loaded_rx.try_iter().collect::<Vec<_>>(), vec![open]);
    }
}
