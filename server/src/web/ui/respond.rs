//! How the web pages answer: HTML with the security headers every page carries, redirects,
//! cookies. Every response body is built by [`body`].

use berth_core::WebResponse;
use bytes::Bytes;
use maud::Markup;

/// Scripts and styles only from this server's own files (no inline ones, so markup an
/// image smuggles into a page cannot run), images also as `data:` URLs, forms only
/// posting here, and no framing (clickjacking).
pub const CSP: (&str, &str) = (
    "Content-Security-Policy",
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
);
pub const NOSNIFF: (&str, &str) = ("X-Content-Type-Options", "nosniff");
const REFERRER: (&str, &str) = ("Referrer-Policy", "same-origin");
/// Pages show who is signed in and what they may see: no cache may keep one.
const NO_STORE: (&str, &str) = ("Cache-Control", "no-store");

/// A response body.
pub fn body(b: Bytes) -> berth_core::WebBody {
    b.into()
}

pub fn header(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

fn page_headers() -> Vec<(String, String)> {
    [CSP, NOSNIFF, REFERRER, NO_STORE]
        .iter()
        .map(|(k, v)| header(k, v))
        .collect()
}

/// An HTML page.
pub fn html(status: u16, page: Markup) -> WebResponse {
    WebResponse {
        status,
        content_type: "text/html; charset=utf-8".into(),
        headers: page_headers(),
        body: body(Bytes::from(page.into_string())),
    }
}

/// `303 See Other` to `location` (a path on this server).
pub fn redirect(location: &str) -> WebResponse {
    let mut headers = page_headers();
    headers.push(header("Location", location));
    WebResponse {
        status: 303,
        content_type: String::new(),
        headers,
        body: body(Bytes::new()),
    }
}

/// How a cookie is set: HttpOnly (scripts never read it), SameSite=Lax (other sites'
/// forms do not send it), for the whole site, and Secure when the site is served over
/// https. `max_age` 0 deletes it; `None` keeps it until the browser closes.
pub fn cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> (String, String) {
    let mut c = format!("{name}={value}; HttpOnly; SameSite=Lax; Path=/");
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    header("Set-Cookie", &c)
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_from_every_cookie_header_and_set_with_their_flags() {
        let h = vec![
            header("cookie", "a=1; berth_session=abc"),
            header("Cookie", "berth_csrf=\"x\""),
        ];
        assert_eq!(cookie_value(&h, "berth_session"), Some("abc"));
        assert_eq!(cookie_value(&h, "berth_csrf"), Some("x"));
        assert_eq!(cookie_value(&h, "b"), None);
        let (k, v) = cookie("berth_session", "abc", true, None);
        assert_eq!(k, "Set-Cookie");
        assert_eq!(
            v,
            "berth_session=abc; HttpOnly; SameSite=Lax; Path=/; Secure"
        );
        let (_, v) = cookie("berth_session", "", false, Some(0));
        assert_eq!(
            v,
            "berth_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"
        );
    }

    #[test]
    fn pages_carry_the_security_headers() {
        let r = html(200, maud::html! { p { "x" } });
        let has = |k: &str, v: &str| r.headers.iter().any(|(a, b)| a == k && b == v);
        assert!(has("Content-Security-Policy", CSP.1));
        assert!(CSP.1.contains("frame-ancestors 'none'"));
        assert!(has("X-Content-Type-Options", "nosniff"));
        assert!(has("Referrer-Policy", "same-origin"));
        assert!(has("Cache-Control", "no-store"));
        assert_eq!(r.content_type, "text/html; charset=utf-8");
    }
}
