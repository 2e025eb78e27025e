//! Times as people and clients read them: RFC 3339 in UTC (`2026-11-27T22:25:52Z`), for the
//! token endpoint's `issued_at`, the management tables and the access log.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix seconds as RFC 3339 UTC, whole seconds.
pub fn seconds(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

/// An instant as RFC 3339 UTC with microseconds, for log lines.
pub fn micros(t: SystemTime) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_micros(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_format_as_utc() {
        assert_eq!(seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(seconds(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(seconds(1_795_213_552), "2026-11-20T22:25:52Z");
        assert_eq!(
            micros(UNIX_EPOCH + Duration::from_micros(1_500_000)).to_string(),
            "1970-01-01T00:00:01.500000Z"
        );
    }
}
