//! The background thread for the store's upkeep, off the event loops and workers: download
//! counts are written every `FLUSH_EVERY` and token last-use times once a minute (both at
//! shutdown too) so a pull or an authenticated request costs no write; packs garbage collection deleted are closed once their grace is over,
//! and link uses too old to keep anything are forgotten;
//! garbage collection runs every `gc_interval`.

use crate::dispatch::Store;
use crate::package::downloads::FLUSH_EVERY;
use crossbeam_channel::RecvTimeoutError;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the minute-scale chores run.
const TICK: Duration = Duration::from_secs(60);

pub struct Housekeeper {
    stop: crossbeam_channel::Sender<()>,
    thread: JoinHandle<()>,
    store: Arc<Store>,
}

impl Housekeeper {
    /// Starts the thread; `gc_every` of `None` leaves garbage collection to `berth gc`.
    #[allow(clippy::disallowed_methods)] // the housekeeping thread owns its loop and times its own chores
    pub fn start(store: Arc<Store>, gc_every: Option<Duration>) -> std::io::Result<Housekeeper> {
        let (stop, rx) = crossbeam_channel::bounded::<()>(0);
        let kept = store.clone();
        let thread = std::thread::Builder::new()
            .name("berth-housekeeping".into())
            .spawn(move || {
                let mut next_gc = gc_every.map(|d| Instant::now() + d);
                let mut next_tick = Instant::now() + TICK;
                loop {
                    let now = Instant::now();
                    let mut wait = FLUSH_EVERY.min(next_tick.saturating_duration_since(now));
                    if let Some(t) = next_gc {
                        wait = wait.min(t.saturating_duration_since(now));
                    }
                    if rx.recv_timeout(wait) != Err(RecvTimeoutError::Timeout) {
                        store.flush_last_used();
                        store.flush_downloads();
                        return;
                    }
                    store.flush_downloads();
                    if Instant::now() >= next_tick {
                        store.flush_last_used();
                        store.tidy_for_gc();
                        next_tick = Instant::now() + TICK;
                    }
                    if let (Some(at), Some(every)) = (next_gc, gc_every) {
                        if Instant::now() >= at {
                            // Failures are logged by the store; the next run tries again.
                            let _ = store.collect_garbage(false);
                            next_gc = Some(Instant::now() + every);
                        }
                    }
                }
            })?;
        Ok(Housekeeper {
            stop,
            thread,
            store: kept,
        })
    }

    /// Stops the thread after a last flush of last-use times; a collection running is
    /// cut short after its current step.
    pub fn stop(self) {
        self.store.cancel_garbage_collection();
        drop(self.stop);
        let _ = self.thread.join();
    }
}
