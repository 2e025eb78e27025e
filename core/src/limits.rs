//! Every bound the core enforces on what a peer may send. Each has a default and a reason.

use std::time::Duration;

/// Bounds applied to each connection. Shared read-only (`Arc<Limits>`) by all connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum bytes in a request head (request line + headers). 64 KiB: long enough for
    /// bearer tokens and long scope lists, short enough that a peer cannot grow our buffer.
    pub header_bytes: usize,
    /// Maximum number of header fields in one request.
    pub header_count: usize,
    /// Maximum manifest body. 4 MiB is what distribution, containers/image and containerd use.
    pub manifest_bytes: usize,
    /// Maximum body of a non-OCI request (web pages, API, token endpoint).
    pub web_body_bytes: usize,
    /// Maximum size of one uploaded blob; `None` means unbounded.
    pub upload_bytes: Option<u64>,
    /// Time allowed from the first byte of a request head to its end (slow-loris bound).
    pub header_timeout: Duration,
    /// Time an idle keep-alive connection is kept open between requests.
    pub idle_timeout: Duration,
    /// Time allowed without any body byte arriving while a body is expected.
    pub body_timeout: Duration,
    /// Largest page returned by tags list, catalog and referrers when `n` asks for more
    /// (or for none); a `Link` header then points to the rest.
    pub page_size: usize,
    /// Bytes of an unwanted request body (after an early error response) the connection will
    /// read and drop to keep the connection alive; beyond this it closes instead.
    pub discard_bytes: u64,
    /// Bytes of an unwanted request body read and dropped before a connection that must
    /// close (an early 413, a refusal) closes: a client that writes its whole body before
    /// reading the answer would otherwise get a reset and never see why. 16 MiB covers a
    /// manifest four times over the default limit, read at memory speed; beyond it the
    /// connection closes at once.
    pub linger_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_bytes: 64 * 1024,
            header_count: 100,
            manifest_bytes: 4 * 1024 * 1024,
            web_body_bytes: 1024 * 1024,
            upload_bytes: None,
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            body_timeout: Duration::from_secs(60),
            page_size: 1000,
            discard_bytes: 64 * 1024,
            linger_bytes: 16 * 1024 * 1024,
        }
    }
}

/// A byte count for people: `1536` → `1.5 KiB`, `4194304` → `4 MiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = b as f64;
    let mut u = 0;
    while x >= 1024.0 && u < UNITS.len() - 1 {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else if x.fract() == 0.0 {
        format!("{x:.0} {}", UNITS[u])
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn byte_counts_read_as_people_write_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(4 * 1024 * 1024), "4 MiB");
        assert_eq!(human_bytes(5 << 40), "5 TiB");
    }
}
