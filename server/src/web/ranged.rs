//! A GET of a body whose length is known up front, answered whole or by `Range` (RFC 9110
//! §14), so a long download that broke off resumes where it stopped instead of starting
//! over. Ranges are read by the registry's own parser: a web download and a blob GET agree
//! on what a `Range` header means.

use super::oci_error::error;
use berth_core::oci::range::{self, RangeAnswer};
use berth_core::{WebPiece, WebRequest, WebResponse};
use std::ops::Range;

/// Answers `req` for a body of `len` bytes whose strong entity tag is `etag` (quoted, as
/// the `ETag` header carries it: `"sha256:…"`). `pieces` gives the bytes of a range of the
/// body; it is called once, for the range sent, and not at all for a 416.
///
/// - 200 with the whole body: no `Range`, one that does not parse, several ranges (RFC 9110
///   §14.2 lets a server send the whole body instead), a method other than GET (ranges are
///   defined for GET alone), or an `If-Range` that is not `etag` (the body changed since
///   the client's first part, so its parts would not join: it starts over).
/// - 206 with `Content-Range: bytes a-b/len` for one satisfiable range.
/// - 416 with `Content-Range: bytes */len` and the OCI error body (`RANGE_INVALID`) when the
///   range selects nothing of the body.
///
/// Every answer says `Accept-Ranges: bytes` and carries the `ETag`, so a client knows it
/// may resume and what to resume against.
pub fn answer(
    req: &WebRequest,
    len: u64,
    etag: &str,
    content_type: &str,
    pieces: impl FnOnce(Range<u64>) -> Vec<WebPiece>,
) -> WebResponse {
    let ranged = req.method == "GET" && req.header("if-range").is_none_or(|v| v.trim() == etag);
    let asked = req.header("range").filter(|_| ranged);
    let (status, sent) = match range::answer(asked, len) {
        RangeAnswer::Full => (200, 0..len),
        RangeAnswer::Partial(r) => (206, r),
        RangeAnswer::Unsatisfiable => {
            let mut r = error(
                416,
                "RANGE_INVALID",
                &format!("the range asked for lies outside the body's {len} bytes"),
            );
            r.headers.extend([
                header("Content-Range", format!("bytes */{len}")),
                header("Accept-Ranges", "bytes".into()),
                header("ETag", etag.into()),
            ]);
            return r;
        }
    };
    let mut headers = vec![
        header("Accept-Ranges", "bytes".into()),
        header("ETag", etag.into()),
    ];
    if status == 206 {
        headers.push(header(
            "Content-Range",
            format!("bytes {}-{}/{len}", sent.start, sent.end - 1),
        ));
    }
    WebResponse {
        status,
        content_type: content_type.into(),
        headers,
        body: pieces(sent).into(),
    }
}

fn header(name: &str, value: String) -> (String, String) {
    (name.into(), value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const ETAG: &str = "\"sha256:abc\"";

    fn get(headers: &[(&str, &str)]) -> WebRequest {
        WebRequest {
            method: "GET".into(),
            path: "/download".into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Bytes::new(),
        }
    }

    /// Answers `req` over the body `0123456789`, and returns the response with the bytes
    /// its pieces hold (`None` if the pieces were never asked for).
    fn over_ten(req: &WebRequest) -> (WebResponse, Option<Vec<u8>>) {
        let whole = b"0123456789";
        let mut asked = None;
        let r = answer(req, 10, ETAG, "application/x-tar", |rg| {
            let (a, b) = (rg.start as usize, rg.end as usize);
            asked = Some(whole[a..b].to_vec());
            // Two pieces, to show the body is whatever the closure gives.
            let mid = (a + b) / 2;
            vec![
                WebPiece::Bytes(Bytes::copy_from_slice(&whole[a..mid])),
                WebPiece::Bytes(Bytes::copy_from_slice(&whole[mid..b])),
            ]
        });
        if let Some(want) = &asked {
            assert_eq!(r.body.len(), want.len() as u64);
        }
        (r, asked)
    }

    fn header<'r>(r: &'r WebResponse, name: &str) -> Option<&'r str> {
        r.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn always(r: &WebResponse) {
        assert_eq!(header(r, "accept-ranges"), Some("bytes"));
        assert_eq!(header(r, "etag"), Some(ETAG));
    }

    #[test]
    fn no_range_is_the_whole_body() {
        let (r, body) = over_ten(&get(&[]));
        always(&r);
        assert_eq!((r.status, body.as_deref()), (200, Some(&b"0123456789"[..])));
        assert_eq!(r.content_type, "application/x-tar");
        assert_eq!(header(&r, "content-range"), None);
    }

    #[test]
    fn a_range_is_206_with_its_content_range() {
        for (range, want, cr) in [
            ("bytes=2-5", &b"2345"[..], "bytes 2-5/10"),
            ("bytes=7-", b"789", "bytes 7-9/10"),
            ("bytes=-3", b"789", "bytes 7-9/10"),
            ("bytes=8-100", b"89", "bytes 8-9/10"),
            ("bytes=0-0", b"0", "bytes 0-0/10"),
        ] {
            let (r, body) = over_ten(&get(&[("range", range)]));
            always(&r);
            assert_eq!(r.status, 206, "{range}");
            assert_eq!(body.as_deref(), Some(want), "{range}");
            assert_eq!(header(&r, "content-range"), Some(cr), "{range}");
        }
    }

    #[test]
    fn a_range_outside_the_body_is_416_with_its_length() {
        for range in ["bytes=10-", "bytes=10-20", "bytes=5-2", "bytes=-0"] {
            let (r, body) = over_ten(&get(&[("range", range)]));
            always(&r);
            assert_eq!(r.status, 416, "{range}");
            assert_eq!(body, None, "no pieces for a 416");
            assert_eq!(header(&r, "content-range"), Some("bytes */10"));
            assert_eq!(r.content_type, "application/json");
            let v: serde_json::Value = serde_json::from_slice(r.body.bytes().unwrap()).unwrap();
            assert_eq!(v["errors"][0]["code"], "RANGE_INVALID");
        }
    }

    #[test]
    fn a_range_that_does_not_parse_or_asks_for_several_is_the_whole_body() {
        for range in ["bytes=a-b", "items=0-1", "bytes=-", "bytes=0-1,4-5", "2-5"] {
            let (r, body) = over_ten(&get(&[("range", range)]));
            always(&r);
            assert_eq!(r.status, 200, "{range}");
            assert_eq!(body.as_deref(), Some(&b"0123456789"[..]), "{range}");
        }
    }

    #[test]
    fn if_range_sends_the_part_only_while_the_etag_matches() {
        let (r, body) = over_ten(&get(&[("range", "bytes=4-"), ("if-range", ETAG)]));
        assert_eq!((r.status, body.as_deref()), (206, Some(&b"456789"[..])));
        for stale in [
            "\"sha256:def\"",
            "W/\"sha256:abc\"",
            "Sun, 06 Nov 1994 08:49:37 GMT",
        ] {
            let (r, body) = over_ten(&get(&[("range", "bytes=4-"), ("if-range", stale)]));
            always(&r);
            assert_eq!(r.status, 200, "{stale}");
            assert_eq!(body.as_deref(), Some(&b"0123456789"[..]), "{stale}");
        }
    }

    #[test]
    fn a_head_is_answered_as_the_whole_body() {
        let mut req = get(&[("range", "bytes=2-5")]);
        req.method = "HEAD".into();
        let (r, body) = over_ten(&req);
        always(&r);
        assert_eq!((r.status, body.map(|b| b.len())), (200, Some(10)));
    }
}
