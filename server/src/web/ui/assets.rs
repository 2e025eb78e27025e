//! The stylesheet and script, compiled into the binary and served from `/static/`. Pages
//! link them as `/static/berth.css?v=HASH` (a hash of the content): a response to that URL
//! never changes, so browsers keep it a year; any other URL of a file (an old hash, none)
//! is revalidated with its `ETag` every time, so an upgrade is seen at once.

use super::respond::{body, header, NOSNIFF};
use crate::web::form;
use berth_core::{WebRequest, WebResponse};
use std::sync::OnceLock;

struct Asset {
    path: &'static str,
    content_type: &'static str,
    text: &'static str,
}

const ASSETS: [Asset; 2] = [
    Asset {
        path: "/static/berth.css",
        content_type: "text/css; charset=utf-8",
        text: include_str!("berth.css"),
    },
    Asset {
        path: "/static/berth.js",
        content_type: "text/javascript; charset=utf-8",
        text: include_str!("berth.js"),
    },
];

/// The first 8 bytes of each asset's SHA-256, in hex, in `ASSETS` order.
fn hashes() -> &'static [String; 2] {
    static H: OnceLock<[String; 2]> = OnceLock::new();
    H.get_or_init(|| ASSETS.map(|a| hex::encode(&crate::secret::sha256(a.text.as_bytes())[..8])))
}

/// The URL pages link `path` (one of `ASSETS`) by.
pub fn url(path: &str) -> String {
    match ASSETS.iter().position(|a| a.path == path) {
        Some(i) => format!("{path}?v={}", hashes()[i]),
        None => path.to_string(),
    }
}

/// Whether `path` is one of the assets: answered inline, it reads no store.
pub fn is_asset(path: &str) -> bool {
    ASSETS.iter().any(|a| a.path == path)
}

/// `GET`/`HEAD` of an asset; 304 when the client holds this version; `None` for other paths.
pub fn answer(req: &WebRequest) -> Option<WebResponse> {
    let i = ASSETS.iter().position(|a| a.path == req.path)?;
    let a = &ASSETS[i];
    let hash = &hashes()[i];
    let etag = format!("\"{hash}\"");
    let pinned = form::first(&form::pairs(&req.query), "v") == Some(hash.as_str());
    let cache = if pinned {
        "public, max-age=31536000, immutable"
    } else {
        "public, no-cache"
    };
    let mut headers = vec![
        ("ETag".to_string(), etag.clone()),
        ("Cache-Control".to_string(), cache.to_string()),
        header(NOSNIFF.0, NOSNIFF.1),
    ];
    if req.method != "GET" && req.method != "HEAD" {
        headers.push(("Allow".into(), "GET, HEAD".into()));
        return Some(WebResponse {
            status: 405,
            content_type: "text/plain; charset=utf-8".into(),
            headers,
            body: body("use GET\n".into()),
        });
    }
    let fresh = req
        .header("if-none-match")
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    Some(WebResponse {
        status: if fresh { 304 } else { 200 },
        content_type: a.content_type.into(),
        headers,
        body: body(if fresh { "" } else { a.text }.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn get(path: &str, query: &str, headers: &[(&str, &str)]) -> WebResponse {
        answer(&WebRequest {
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Bytes::new(),
        })
        .unwrap()
    }

    fn got<'a>(r: &'a WebResponse, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn assets_are_cached_by_hash_and_revalidated_by_etag() {
        let u = url("/static/berth.css");
        let (path, q) = u.split_once('?').unwrap();
        let r = get(path, q, &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "text/css; charset=utf-8");
        assert_eq!(
            &r.body.bytes().unwrap()[..],
            include_str!("berth.css").as_bytes()
        );
        assert!(got(&r, "cache-control").unwrap().contains("immutable"));
        assert_eq!(got(&r, "x-content-type-options"), Some("nosniff"));
        let etag = got(&r, "etag").unwrap().to_string();
        let r = get(path, "", &[]);
        assert_eq!(got(&r, "cache-control"), Some("public, no-cache"));
        let r = get(path, "v=old", &[("if-none-match", &etag)]);
        assert_eq!((r.status, r.body.len()), (304, 0));
        let r = get("/static/berth.js", "", &[("if-none-match", &etag)]);
        assert_eq!(r.status, 200, "another file's tag");
        assert_eq!(r.content_type, "text/javascript; charset=utf-8");
        assert!(answer(&WebRequest {
            method: "GET".into(),
            path: "/static/other.css".into(),
            query: String::new(),
            headers: Vec::new(),
            body: Bytes::new(),
        })
        .is_none());
    }
}
