//! `application/x-www-form-urlencoded` pairs, as in query strings and the token endpoint's
//! POST body: `&`-separated, `+` is a space, `%XX` a byte. Undecodable escapes are kept
//! literally rather than refused: the values are then checked by whoever reads them.

use berth_core::http::percent::percent_decode;

/// Every `key=value` pair, in order (keys may repeat: `scope` does).
pub fn pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The first value of `key`.
pub fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Every value of `key`.
pub fn all<'a>(pairs: &'a [(String, String)], key: &'a str) -> impl Iterator<Item = &'a str> {
    pairs
        .iter()
        .filter(move |(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn decode(s: &str) -> String {
    percent_decode(s, true).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_decode_plus_and_percent_and_keep_repeats() {
        let p = pairs("scope=repository%3Aa%2Fb%2Fc%3Apull&scope=x+y&service=berth&flag&bad=%zz%4");
        assert_eq!(
            all(&p, "scope").collect::<Vec<_>>(),
            ["repository:a/b/c:pull", "x y"]
        );
        assert_eq!(first(&p, "service"), Some("berth"));
        assert_eq!(first(&p, "flag"), Some(""));
        assert_eq!(first(&p, "bad"), Some("%zz%4"));
        assert_eq!(first(&p, "none"), None);
        assert!(pairs("").is_empty());
    }
}
