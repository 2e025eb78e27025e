//! Percent-decoding of URL query values and `application/x-www-form-urlencoded` bodies.
//! Shared by the core's router and the server's token endpoint and API, so both read a
//! value the same way.

use std::borrow::Cow;

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`, the form encoding).
/// Invalid escapes are kept literally and a result that is not UTF-8 gives back the input
/// unchanged: the value is then judged by whoever reads it, never refused here.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Cow<'_, str> {
    if !(s.contains('%') || plus_is_space && s.contains('+')) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                if let (Some(h), Some(l)) = (hex_value(b[i + 1]), hex_value(b[i + 2])) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(_) => Cow::Borrowed(s),
    }
}

/// The value of one hexadecimal digit, either case.
/// `s` as a query-string value or path: RFC 3986's unreserved characters and `/` kept,
/// every other byte `%XX`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
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
    }
}
