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
        }
    }
}
