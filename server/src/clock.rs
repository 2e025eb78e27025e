//! The server's readings of the clock. The event loops read it per event and pass the
//! reading down; the few threads with a loop of their own (housekeeping, the indexer) read
//! it here too. Everything else gets time as an argument.

// The one home of the clock's readings (see .clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

/// A clock reading when a response is complete: request durations measured from the event
/// that began the request to the one that ended it read 0 for the many requests answered
/// within one event, so the access log and the duration metric read the clock again.
pub fn now() -> Instant {
    Instant::now()
}

/// Runs `f` with the current time as an HTTP date (`Date` header, RFC 9110 §5.6.7),
/// formatted once per second per thread.
pub fn with_http_date<R>(f: impl FnOnce(&str) -> R) -> R {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        f(&d.1)
    })
}

/// Wall-clock Unix seconds, for token expiry, bearer `iat`/`exp` and audit times (which
/// must survive restarts, unlike `Instant`).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
