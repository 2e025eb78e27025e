//! The error answer of every JSON endpoint outside `/v2/`, shaped as the registry's own
//! errors are, so a client reads one kind of error body.

use berth_core::WebResponse;

/// A response with the OCI-shaped error body `{"errors":[{code, message}]}`.
pub fn error(status: u16, code: &str, message: &str) -> WebResponse {
    let body = serde_json::json!({ "errors": [{ "code": code, "message": message }] });
    WebResponse {
        status,
        content_type: "application/json".into(),
        headers: Vec::new(),
        body: body.to_string().into(),
    }
}

/// The answer to a request the store failed: 503 with `Retry-After` when storage cannot be
/// reached, 507 when it is full, else 500 with a request id (`failure.rs`).
pub fn store_error(e: &berth_engine::StoreError) -> WebResponse {
    let (status, code, message) = crate::failure::store_status(e);
    let mut r = error(status, code, &message);
    if status == 503 {
        r.headers.push((
            "Retry-After".into(),
            crate::failure::RETRY_AFTER_SECS.to_string(),
        ));
    }
    r
}
