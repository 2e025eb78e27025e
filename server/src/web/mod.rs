//! Requests outside `/v2/` (`Need::Web`): `/metrics`, `/healthz`, the token endpoint
//! (`token_endpoint.rs`), the management API (`api.rs`), and the web pages (`ui/`) for
//! every other path. `/healthz`, the token endpoint and the pages' static files are
//! answered inline on the reactor; the `/metrics` scan, the API (whose writes wait on a
//! commit) and the pages (which read the store) run on workers. A body too large for memory
//! streams from the packs as pieces: `ranged.rs` answers a GET of one by `Range`,
//! `download.rs` lays the Download's archive onto them.

pub mod api;
pub mod download;
pub mod form;
mod oci_error;
pub mod ranged;
pub mod token_endpoint;
pub mod ui;

use crate::metrics::{Metrics, Storage};
use berth_core::{WebRequest, WebResponse};
use berth_engine::StoreHealth;
pub(crate) use oci_error::error;

/// Whether `req` is for the web pages (`ui/`): every path not answered here, by the API or
/// by the token endpoint.
pub fn is_page(req: &WebRequest) -> bool {
    let p = req.path.as_str();
    !(p == "/healthz" || p == "/metrics" || p == token_endpoint::PATH || p.starts_with(api::PREFIX))
}

/// Whether answering `req` reads storage-wide figures (costly on a large store).
pub fn reads_storage(req: &WebRequest) -> bool {
    req.path == "/metrics"
}

/// Answers one web request. `health` is only read for `/healthz`, `storage` for `/metrics`.
pub fn answer(
    req: &WebRequest,
    metrics: &Metrics,
    health: impl FnOnce() -> StoreHealth,
    storage: impl FnOnce() -> Storage,
) -> WebResponse {
    let get = req.method == "GET" || req.method == "HEAD";
    match req.path.as_str() {
        "/healthz" if get => healthz(&health()),
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

/// 503 while the store's writes fail (what failed is in the log, not here: it names
/// files); 200 otherwise, saying so when uploads are refused for space.
fn healthz(h: &StoreHealth) -> WebResponse {
    let plain = "text/plain; charset=utf-8";
    if h.failing.is_some() {
        return text(
            503,
            plain,
            "unhealthy: the store's writes are failing (see the server log; a full disk heals once space is freed)\n".into(),
        );
    }
    match h.free_bytes {
        Some(free) if free < h.min_free_bytes => text(
            200,
            plain,
            format!(
                "ok\nuploads refused: {free} bytes free, below min_free_space {}; delete images and run berth gc\n",
                h.min_free_bytes
            ),
        ),
        _ => text(200, plain, "ok\n".into()),
    }
}

fn text(status: u16, content_type: &str, body: String) -> WebResponse {
    WebResponse {
        status,
        content_type: content_type.into(),
        headers: Vec::new(),
        body: body.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &WebResponse) -> &[u8] {
        r.body.bytes().expect("an in-memory body")
    }

    fn req(method: &str, path: &str) -> WebRequest {
        WebRequest {
            method: method.into(),
            path: path.into(),
            query: String::new(),
            headers: Vec::new(),
            body: bytes::Bytes::new(),
        }
    }

    #[test]
    fn healthz_metrics_and_unknown_pages() {
        let m = Metrics::new(1);
        let r = answer(
            &req("GET", "/healthz"),
            &m,
            StoreHealth::default,
            Storage::default,
        );
        assert_eq!((r.status, body(&r)), (200, &b"ok\n"[..]));
        let r = answer(&req("GET", "/metrics"), &m, StoreHealth::default, || {
            Storage {
                manifests: 3,
                ..Storage::default()
            }
        });
        assert_eq!(r.status, 200);
        assert!(std::str::from_utf8(body(&r))
            .unwrap()
            .contains("berth_storage_manifests 3"));
        let r = answer(
            &req("POST", "/metrics"),
            &m,
            StoreHealth::default,
            Storage::default,
        );
        assert_eq!(r.status, 405);
        let r = answer(
            &req("GET", "/acme/web/app"),
            &m,
            StoreHealth::default,
            || panic!("storage read for a 404"),
        );
        assert_eq!(r.status, 404);
        assert_eq!(r.content_type, "application/json");
        let v: serde_json::Value = serde_json::from_slice(body(&r)).unwrap();
        assert_eq!(v["errors"][0]["code"], "NOT_FOUND");
    }

    #[test]
    fn healthz_is_503_while_writes_fail_and_says_when_uploads_are_refused() {
        let m = Metrics::new(1);
        let failing = || StoreHealth {
            failing: Some("metadata database: /data/meta.redb: No space left".into()),
            ..StoreHealth::default()
        };
        let r = answer(&req("GET", "/healthz"), &m, failing, Storage::default);
        assert_eq!(r.status, 503);
        assert!(!String::from_utf8_lossy(body(&r)).contains("meta.redb"));
        let short = || StoreHealth {
            failing: None,
            free_bytes: Some(10),
            min_free_bytes: 100,
        };
        let r = answer(&req("GET", "/healthz"), &m, short, Storage::default);
        assert_eq!(r.status, 200);
        assert!(String::from_utf8_lossy(body(&r)).contains("below min_free_space 100"));
    }
}
