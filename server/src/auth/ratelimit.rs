//! Slows down guessing: once a client address has failed `max_failures` times within
//! `failure_window`, its further failing attempts are answered 429 (with the seconds left
//! of the window that began with its first failure) instead of 401. Only failures are
//! counted and only failures are throttled: a credential that verifies is always accepted,
//! so a stream of bad passwords from an address (behind a proxy: from every client) cannot
//! lock out the good ones. That leaks nothing worth guarding: secrets are 238-bit random
//! strings, so whether a guess was throttled or wrong tells a guesser nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a throttled attempt is told, wherever it was made.
pub fn throttled(wait: u64) -> String {
    format!("too many failed authentications from this address; retry in {wait} s")
}

/// Entries kept before old windows are swept: bounds memory under a spray of addresses.
const SWEEP_AT: usize = 10_000;

pub struct FailureLimiter {
    max: u32,
    window: Duration,
    /// IP -> (start of its window, failures in it).
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    pub fn new(max: u32, window: Duration) -> FailureLimiter {
        FailureLimiter {
            max,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one failed authentication from `ip`; the seconds to wait when it is beyond
    /// the allowance of its window.
    #[must_use]
    pub fn failed(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        // A poisoned lock means a panic elsewhere mid-update; the counts are still usable.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= SWEEP_AT {
            let w = self.window;
            seen.retain(|_, (start, _)| *start + w > now);
        }
        let e = seen.entry(ip).or_insert((now, 0));
        if e.0 + self.window <= now {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
        let end = e.0 + self.window;
        (e.1 > self.max).then(|| end.saturating_duration_since(now).as_secs().max(1))
    }
}

#[cfg(test)]
mod tests {
    // A fixed point to count from; the limiter only compares instants.
    #![allow(clippy::disallowed_methods)]
    use super::*;

    #[test]
    fn failures_past_the_allowance_wait_for_the_end_of_their_window() {
        let l = FailureLimiter::new(2, Duration::from_secs(60));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(l.failed(ip, t0), None);
        assert_eq!(l.failed(ip, t0), None, "at the limit, not beyond");
        let t10 = t0 + Duration::from_secs(10);
        assert_eq!(l.failed(ip, t10), Some(50));
        assert_eq!(l.failed(ip, t10), Some(50), "still throttled, same window");
        assert_eq!(l.failed(other, t10), None);
        // A new window starts from zero.
        let t61 = t0 + Duration::from_secs(61);
        assert_eq!(l.failed(ip, t61), None);
        assert_eq!(l.failed(ip, t61), None);
        assert_eq!(l.failed(ip, t61 + Duration::from_secs(59)), Some(1));
    }
}
