//! `application/x-www-form-urlencoded` pairs, as in query strings and the token endpoint's
//! POST body: `&`-separated, `+` is a space, `%XX` a byte. Undecodable escapes are kept
//! literally rather than refused: the values are then checked by whoever reads them.

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
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
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
