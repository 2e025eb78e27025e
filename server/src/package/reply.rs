//! What the package API and the Download share: what answering needs from the server
//! ([`Env`]), the error shape and the JSON answers. The API routes to the Download and the
//! Download answers in the API's shape; both take these from here.

use super::downloads::Downloads;
use super::view::ViewError;
use crate::auth::Authority;
use berth_core::WebResponse;
use berth_engine::Engine;
use serde_json::{json, Value};

/// What answering needs from the server.
pub struct Env<'a> {
    pub e: &'a Engine,
    pub auth: &'a Authority,
    pub host: &'a str,
    pub downloads: &'a Downloads,
}

/// An error answer: status, code and message.
pub(crate) type Failure = (u16, &'static str, String);

impl From<ViewError> for Failure {
    fn from(e: ViewError) -> Self {
        match e {
            ViewError::NotFound(m) => (404, "NOT_FOUND", m),
            ViewError::Bad(m) => (400, "BAD_REQUEST", m),
            ViewError::Store(s) => crate::failure::store_status(&s),
        }
    }
}

/// The API's error answer: `{"error":{"code","message"}}`.
pub fn failure((status, code, message): Failure) -> WebResponse {
    json_response(
        status,
        json!({ "error": { "code": code, "message": message } }),
    )
}

pub fn json_response(status: u16, body: Value) -> WebResponse {
    WebResponse {
        status,
        content_type: "application/json".into(),
        headers: vec![("Cache-Control".into(), "no-store".into())],
        body: body.to_string().into(),
    }
}
