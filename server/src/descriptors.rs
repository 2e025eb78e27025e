//! File descriptors: the limit lifted to what the system allows, the share of it open packs
//! may hold (every blob over `small_blob_bytes` is a pack file of its own, so a store holds
//! far more packs than a process may open), and running out reported.

use crate::config::Config;
use crate::metrics::Metrics;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Descriptors the server holds whatever its load: stdio, the data directory's two locks,
/// the metadata database, the store's directory handles, the listener, the signal pipe, a
/// file being read at start; and room for a hasher or worker briefly opening one.
const FIXED: u64 = 32;
/// Per event loop: its epoll instance, its waker and its copy of the listener.
const PER_REACTOR: u64 = 3;
/// Open packs may hold one part in this many of the descriptors left after the fixed
/// ones; connections and upload sessions (each an open file) have the others.
const PACK_SHARE: u64 = 4;
/// At most this many packs open: each also holds a map once read, and past a few thousand
/// a bigger cache saves little.
const MAX_OPEN_PACKS: usize = 4096;
/// At most one ERROR line per this long about running out; every time is counted.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// How many descriptors the process may open and what open packs may take of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The soft `RLIMIT_NOFILE`.
    pub limit: u64,
    /// Kept for the server's own descriptors.
    pub reserved: u64,
    pub open_packs: usize,
    /// Whether `open_packs` was derived (`auto`) rather than set.
    pub derived: bool,
}

impl Plan {
    /// The budget for `limit` descriptors: `cfg.open_packs` if set, else a
    /// [`PACK_SHARE`]th of what the server's own leave, from 1 to [`MAX_OPEN_PACKS`].
    pub fn new(cfg: &Config, limit: u64) -> Plan {
        let reserved = FIXED + PER_REACTOR * cfg.threads as u64;
        let free = limit.saturating_sub(reserved);
        let derived = usize::try_from(free / PACK_SHARE)
            .unwrap_or(usize::MAX)
            .clamp(1, MAX_OPEN_PACKS);
        Plan {
            limit,
            reserved,
            open_packs: cfg.open_packs.unwrap_or(derived),
            derived: cfg.open_packs.is_none(),
        }
    }

    /// Says at start what the server may open and how it shares it; warns when the limit
    /// leaves connections little room, or `open_packs` was set past what it allows.
    pub fn log(&self, raised_from: Option<u64>) {
        let (limit, reserved, open_packs) = (self.limit, self.reserved, self.open_packs);
        let raised = raised_from.map_or(String::new(), |r| format!(" (raised from {r})"));
        let others = limit
            .saturating_sub(reserved)
            .saturating_sub(open_packs as u64);
        let how = if self.derived {
            "open_packs = auto: a quarter of the rest, at most 4096"
        } else {
            "open_packs as set"
        };
        tracing::info!(
            "descriptors: the process may open {limit}{raised}; {reserved} kept for the server itself, open_packs {open_packs} ({how}), {others} left for connections and uploads"
        );
        if others < 2 * open_packs as u64 || limit < 2 * reserved {
            tracing::warn!(
                "descriptors: a limit of {limit} leaves {others} for connections and uploads; raise it (ulimit -n, systemd LimitNOFILE=) or lower open_packs"
            );
        }
    }
}

/// The soft descriptor limit now, after lifting it to the hard limit (each connection is
/// one descriptor, and the usual soft default of 1024 would cap the registry near a
/// thousand clients). The second value is the soft limit before, when it was lifted.
pub fn raise_limit() -> (u64, Option<u64>) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return (MAX_OPEN_PACKS as u64, None);
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the rlimit struct we own; failure leaves the old limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
            return (lim.rlim_cur, Some(before));
        }
        tracing::debug!("cannot raise the open-file limit; keeping the current one");
    }
    (before, None)
}

/// Reports running out of descriptors: every time is counted in
/// `berth_descriptors_exhausted_total`, and an ERROR line says so at most once per
/// [`REPORT_EVERY`] (with how many times since the last), so a storm of failures is seen
/// without drowning the log.
pub struct Alarm {
    metrics: Arc<Metrics>,
    limit: u64,
    /// When the last line was written.
    last: Mutex<Option<Instant>>,
    /// Times since the last line.
    unreported: AtomicU64,
}

impl Alarm {
    pub fn new(metrics: Arc<Metrics>, limit: u64) -> Alarm {
        Alarm {
            metrics,
            limit,
            last: Mutex::new(None),
            unreported: AtomicU64::new(0),
        }
    }

    /// Opening something (`what`) failed with `e`; a no-op unless `e` is `EMFILE`/`ENFILE`.
    #[allow(clippy::disallowed_methods)] // called wherever an open fails, in the engine too, where no time is passed; it only spaces log lines
    pub fn ring(&self, what: &str, e: &io::Error) {
        if !berth_engine::is_exhaustion(e) {
            return;
        }
        self.metrics.descriptors_exhausted.fetch_add(1, Relaxed);
        self.unreported.fetch_add(1, Relaxed);
        let now = std::time::Instant::now();
        {
            // A poisoned lock only means a report panicked; the time in it is still sound.
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| now.saturating_duration_since(t) < REPORT_EVERY) {
                return;
            }
            *last = Some(now);
        }
        let times = self.unreported.swap(0, Relaxed);
        let limit = self.limit;
        tracing::error!(
            error = %e,
            times,
            "out of file descriptors ({what}): requests that need one fail while none is free; raise the limit of {limit} (ulimit -n, systemd LimitNOFILE=) or lower open_packs"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(threads: usize, open_packs: Option<usize>) -> Config {
        let mut c = Config::load(&crate::config::Flags::default(), &[]).unwrap();
        c.threads = threads;
        c.open_packs = open_packs;
        c
    }

    #[test]
    fn open_packs_take_a_quarter_of_what_the_server_leaves_within_bounds() {
        let p = Plan::new(&cfg(2, None), 128);
        assert_eq!((p.reserved, p.open_packs, p.derived), (38, 22, true));
        assert_eq!(Plan::new(&cfg(2, None), 1 << 20).open_packs, MAX_OPEN_PACKS);
        assert_eq!(Plan::new(&cfg(2, None), 20).open_packs, 1, "never none");
        let p = Plan::new(&cfg(2, Some(7)), 128);
        assert_eq!((p.open_packs, p.derived), (7, false));
    }

    #[test]
    fn the_alarm_counts_every_exhaustion_and_nothing_else() {
        let m = Arc::new(Metrics::new(1));
        let a = Alarm::new(m.clone(), 64);
        for _ in 0..5 {
            a.ring("open pack x", &io::Error::from_raw_os_error(libc::EMFILE));
        }
        a.ring("open pack x", &io::Error::from_raw_os_error(libc::ENFILE));
        a.ring("open pack x", &io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(m.descriptors_exhausted.load(Relaxed), 6);
        assert_eq!(a.unreported.load(Relaxed), 5, "one line said so; five wait");
    }
}
