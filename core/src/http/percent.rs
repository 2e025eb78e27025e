//! Percent-decoding of URL query values and `application/x-www-form-urlencoded` bodies.
//! Shared by the core's router and the server's token endpoint and API, so both read a
//! value the same way.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::borrow::Cow;

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, the form encoding).
/// Invalid escapes are kept literally and a result that is not UTF-8 gives back the input
/// unchanged: the value is then judged by whoever reads it, never refused here.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Cow<'_, str> {
    if plus_is_space && s.contains('+') {
        let spaced = s.replace('+', " ");
        return match percent_decode_str(&spaced).decode_utf8() {
            Ok(d) => Cow::Owned(d.into_owned()),
            Err(_) => Cow::Borrowed(s),
        };
    }
    percent_decode_str(s)
        .decode_utf8()
        .unwrap_or(Cow::Borrowed(s))
}

/// What [`percent_encode`] escapes: all but RFC 3986's unreserved characters and `/`.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// `s` as a query-string value or path: RFC 3986's unreserved characters and `/` kept,
/// every other byte `%XX`.
pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, ESCAPED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_and_bad_ones_stay_literal() {
        assert_eq!(percent_decode("a%3Ab", false), "a:b");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("a%3A", false), "a:");
        assert_eq!(percent_decode("x+y", false), "x+y");
        assert_eq!(percent_decode("x+y%2B", true), "x y+");
        assert_eq!(percent_decode("%ff", false), "%ff");
        assert_eq!(percent_decode("%e2%82%ac+x", true), "\u{20ac} x");
        assert!(matches!(percent_decode("plain", true), Cow::Borrowed(_)));
    }

    #[test]
    fn encoding_keeps_unreserved_and_slash_and_escapes_the_rest_upper_case() {
        assert_eq!(percent_encode("a-b.c_d~e/f"), "a-b.c_d~e/f");
        assert_eq!(percent_encode("my app&x=\u{e9}"), "my%20app%26x%3D%C3%A9");
        assert_eq!(
            percent_decode(&percent_encode("a b/\u{e9}%"), false),
            "a b/\u{e9}%"
        );
    }
}
