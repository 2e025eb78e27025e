//! Time spent waiting on the services a distributed store runs on (its PostgreSQL, its
//! object store), summed per service, for `/metrics`: a node's own view of its store's
//! latency, next to the request durations it already reports.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Requests made and the nanoseconds they took, summed.
#[derive(Debug, Default)]
pub struct Latency {
    count: AtomicU64,
    nanos: AtomicU64,
}

/// What a [`Latency`] has summed so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySum {
    /// Requests made.
    pub count: u64,
    /// Nanoseconds they took, in total.
    pub nanos: u64,
}

impl Latency {
    /// Runs `f`, one request to the service, and adds the time it took.
    #[allow(clippy::disallowed_methods)] // a duration, not a date: what the wait took
    pub(crate) fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let start = std::time::Instant::now();
        let out = f();
        let took = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Relaxed);
        self.nanos.fetch_add(took, Relaxed);
        out
    }

    /// The sums so far.
    pub fn sum(&self) -> LatencySum {
        LatencySum {
            count: self.count.load(Relaxed),
            nanos: self.nanos.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_timed_request_counts_once_and_adds_its_time() {
        let l = Latency::default();
        assert_eq!(l.time(|| 7), 7);
        l.time(|| std::thread::sleep(std::time::Duration::from_millis(2)));
        let s = l.sum();
        assert_eq!(s.count, 2);
        assert!(s.nanos >= 2_000_000, "{s:?}");
    }
}
