//! Requests outside `/v2/` (`Need::Web`): `/metrics`, `/healthz`, the token endpoint
//! (`token_endpoint.rs`), the management API (`api.rs`), and a JSON 404 for every page not
//! built yet. `/healthz` and the token endpoint are answered inline on the reactor; the
//! `/metrics` scan and the API (whose writes wait on a commit) run on workers.

pub mod api;
pub mod form;
pub mod token_endpoint;

use crate::metrics::{Metrics, Storage};
use berth_core::{WebRequest, WebResponse};
use bytes::Bytes;

/// Whether answering `req` reads storage-wide figures (costly on a large store).
pub fn reads_storage(req: &WebRequest) -> bool {
    req.path == "/metrics"
}

/// Answers one web request. `storage` is only read for `/metrics`.
pub fn answer(
    req: &WebRequest,
    metrics: &Metrics,
    storage: impl FnOnce() -> Storage,
) -> WebResponse {
    let get = req.method == "GET" || req.method == "HEAD";
    match req.path.as_str() {
        "/healthz" if get => text(200, "text/plain; charset=utf-8", "ok\n".into()),
        "/metrics" if get => text(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render(&storage()),
        ),
        "/healthz" | "/metrics" => {
            let mut r = error(405, "METHOD_NOT_ALLOWED", "use GET");
            r.headers.push(("Allow".into(), "GET, HEAD".into()));
            r
        }
        _ => error(404, "NOT_FOUND", "no such page"),
    }
}

fn text(status: u16, content_type: &str, body: String) -> WebResponse {
    WebResponse {
        status,
        content_type: content_type.into(),
        headers: Vec::new(),
        body: Bytes::from(body),
    }
}

/// A response with the OCI-shaped error body `{"errors":[{code, message}]}`.
pub(crate) fn error(status: u16, code: &str, message: &str) -> WebResponse {
    let body = serde_json::json!({ "errors": [{ "code": code, "message": message }] });
    WebResponse {
        status,
        content_type: "application/json".into(),
        headers: Vec::new(),
        body: Bytes::from(body.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str) -> WebRequest {
        WebRequest {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    #[test]
    fn healthz_metrics_and_unknown_pages() {
        let m = Metrics::new(1);
        let r = answer(&req("GET", "/healthz"), &m, Storage::default);
        assert_eq!((r.status, &r.body[..]), (200, &b"ok\n"[..]));
        let r = answer(&req("GET", "/metrics"), &m, || Storage {
            manifests: 3,
            ..Storage::default()
        });
        assert_eq!(r.status, 200);
        assert!(std::str::from_utf8(&r.body)
            .unwrap()
            .contains("berth_storage_manifests 3"));
        let r = answer(&req("POST", "/metrics"), &m, Storage::default);
        assert_eq!(r.status, 405);
        let r = answer(&req("GET", "/acme/web/app"), &m, || {
            panic!("storage read for a 404")
        });
        assert_eq!(r.status, 404);
        assert_eq!(r.content_type, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["errors"][0]["code"], "NOT_FOUND");
    }
}
