//! Time as the server keeps it once read. The clock itself is read only where
//! `.clippy.toml` allows it: the event loops (`reactor.rs`, per event) and the threads that
//! own a loop of their own (housekeeping, the indexer), each at an
//! `#[allow(clippy::disallowed_methods)]` that says why. Everything else gets time passed
//! down: a `now: Instant`, a [`Wall`] reading.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds of a wall-clock reading (0 before 1970): what token expiry, bearer
/// `iat`/`exp` and audit times count in, since they must survive restarts.
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The wall clock as an event loop last read it: its Unix second and that second as an HTTP
/// date (`Date` header, RFC 9110 §5.6.7), formatted once per second.
pub struct Wall {
    unix: u64,
    date: String,
}

impl Wall {
    pub fn new(t: SystemTime) -> Wall {
        Wall {
            unix: unix_seconds(t),
            date: httpdate::fmt_http_date(t),
        }
    }

    /// Takes a new reading.
    pub fn set(&mut self, t: SystemTime) {
        let unix = unix_seconds(t);
        if unix != self.unix {
            self.unix = unix;
            self.date = httpdate::fmt_http_date(t);
        }
    }

    pub fn unix(&self) -> u64 {
        self.unix
    }

    pub fn date(&self) -> &str {
        &self.date
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_date_follows_the_second() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let mut w = Wall::new(t);
        assert_eq!(
            (w.unix(), w.date()),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT")
        );
        w.set(t + Duration::from_millis(900));
        assert_eq!(w.date(), "Sun, 06 Nov 1994 08:49:37 GMT");
        w.set(t + Duration::from_secs(1));
        assert_eq!(
            (w.unix(), w.date()),
            (784_111_778, "Sun, 06 Nov 1994 08:49:38 GMT")
        );
    }
}
