//! Failures of the store as clients see them. Engine text names files and pack ids, which
//! are no client's business: the client is told an internal error happened, with a request
//! id, and the ERROR log line carries the detail under the same id. A write refused for
//! lack of space is the client's to know (507, with what to do).

use berth_core::Reply;
use berth_engine::StoreError;
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Logs `detail` under a fresh request id; returns what the client is told.
pub fn internal(detail: &dyn Display) -> String {
    let id = request_id();
    tracing::error!(request_id = %id, error = %detail, "internal error");
    format!("internal error (request id {id})")
}

/// If the store failed because its database or object store cannot be reached for now,
/// what the client is told (the log says which and why; the client is asked to retry).
pub fn unavailable(e: &StoreError) -> Option<String> {
    match e {
        StoreError::Unavailable(why) => {
            tracing::warn!(error = %why, "request failed: storage unavailable");
            Some(UNAVAILABLE.to_owned())
        }
        _ => None,
    }
}

/// `Retry-After` on a 503 for unreachable storage: the protocol core's own value.
pub const RETRY_AFTER_SECS: u32 = berth_core::RETRY_UNAVAILABLE_SECS;

/// What a client is told when storage cannot be reached.
pub const UNAVAILABLE: &str =
    "the registry's storage cannot be reached for now; retry in a few seconds";

/// Status, code and message for a store failure outside the OCI protocol (the management
/// and package APIs, the token endpoint): 503 when storage is unreachable, 507 when it is
/// full, else 500 with a request id.
pub fn store_status(e: &StoreError) -> (u16, &'static str, String) {
    if let Some(m) = unavailable(e) {
        return (503, "UNAVAILABLE", m);
    }
    match e.full_message() {
        Some(m) => {
            tracing::warn!(error = %e, "write refused: the store is full");
            (507, "STORE_FULL", m.to_owned())
        }
        None => (500, "INTERNAL", internal(e)),
    }
}

/// The reply to a request the store failed: 503 when storage is unreachable, 507 when it
/// is full, else an internal error.
pub fn store_reply(e: &StoreError) -> Reply {
    if let Some(m) = unavailable(e) {
        return Reply::Unavailable(m);
    }
    match e.full_message() {
        Some(m) => {
            tracing::warn!(error = %e, "write refused: the store is full");
            Reply::StoreFull(m.to_owned())
        }
        None => Reply::Failed(internal(e)),
    }
}

/// 16 hex digits, random: unique enough to find one line in a log.
fn request_id() -> String {
    match crate::secret::random_bytes(8) {
        Ok(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        // No randomness: a count still tells the lines of one run's log apart.
        Err(_) => {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            format!("{:016x}", NEXT.fetch_add(1, Relaxed))
        }
    }
}
