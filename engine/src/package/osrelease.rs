//! `os-release(5)`: shell-style `KEY=value` lines, values bare or in double or single quotes,
//! with backslash escapes inside double quotes (and bare values).

use std::collections::BTreeMap;

/// The keys of an `os-release` file. Unknown lines are skipped, never an error: a
/// distribution name is a nicety and a broken file simply shows less.
pub fn parse(text: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(text);
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        if let Some(v) = unquote(value.trim()) {
            out.insert(key.to_owned(), v);
        }
    }
    out
}

/// The value of one assignment, or `None` when its quotes do not close.
fn unquote(v: &str) -> Option<String> {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    match v.chars().next() {
        Some(q @ ('"' | '\'')) => {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    c if c == q => {
                        closed = true;
                        break;
                    }
                    '\\' if q == '"' => out.push(chars.next()?),
                    c => out.push(c),
                }
            }
            closed.then_some(out)
        }
        _ => {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.push(chars.next()?),
                    c => out.push(c),
                }
            }
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn debian_alpine_and_odd_files_read_as_expected() {
        let debian = br#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
ID=debian
HOME_URL="https://www.debian.org/"
"#;
        let d = parse(debian);
        assert_eq!(d["NAME"], "Debian GNU/Linux");
        assert_eq!(d["VERSION_ID"], "12");
        assert_eq!(d["ID"], "debian");
        let alpine = b"NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\n";
        assert_eq!(parse(alpine)["VERSION_ID"], "3.20.3");
        let odd = b"# comment\n\nA='single \\ quoted'\nB=\"esc \\\" aped\"\nC=bare\\ word\nD=\"unclosed\nbad key=1\n=novalue\nE\n";
        let o = parse(odd);
        assert_eq!(o["A"], "single \\ quoted");
        assert_eq!(o["B"], "esc \" aped");
        assert_eq!(o["C"], "bare word");
        assert!(!o.contains_key("D"));
        assert_eq!(o.len(), 3);
        assert!(parse(&[0xff, 0xfe, b'\n']).is_empty());
    }
}
