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
