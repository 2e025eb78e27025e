//! Slows down guessing: more than `max_failures` failed authentications from one client IP
//! within `failure_window` and that IP's requests with credentials get 429 until the window
//! that began with its first failure has passed (AUTH-DESIGN.md, "Failed authentications").

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

    /// Seconds to wait, when `ip` is locked out at `now`.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        // A poisoned lock means a panic elsewhere mid-update; the counts are still usable.
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let &(start, n) = seen.get(&ip)?;
        let end = start + self.window;
        (n > self.max && now < end).then(|| end.saturating_duration_since(now).as_secs().max(1))
    }

    /// Counts one failed authentication from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
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
    }
}

#[cfg(test)]
mod tests {
    // A fixed point to count from; the limiter only compares instants.
    #![allow(clippy::disallowed_methods)]
    use super::*;

    #[test]
    fn an_ip_is_locked_out_after_too_many_failures_until_its_window_ends() {
        let l = FailureLimiter::new(2, Duration::from_secs(60));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        l.failed(ip, t0);
        l.failed(ip, t0);
        assert_eq!(l.blocked(ip, t0), None, "at the limit, not beyond");
        l.failed(ip, t0 + Duration::from_secs(10));
        assert_eq!(l.blocked(ip, t0 + Duration::from_secs(10)), Some(50));
        assert_eq!(l.blocked(other, t0), None);
        assert_eq!(l.blocked(ip, t0 + Duration::from_secs(60)), None);
        // A new window starts from zero.
        l.failed(ip, t0 + Duration::from_secs(61));
        assert_eq!(l.blocked(ip, t0 + Duration::from_secs(61)), None);
    }
}
