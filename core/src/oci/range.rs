//! Byte ranges: blob download `Range: bytes=...` (RFC 9110 §14.1.2, spec digest §4.3) and
//! upload chunk `Content-Range: s-e` (spec digest §1.4, §5.4).

use std::ops::Range;

/// A request's `Range` header for a blob download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive) or `bytes=a-` (`end: None`).
    From { start: u64, end: Option<u64> },
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

/// What to send for a blob of `size` bytes given an optional `Range` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable range: 200 with the whole blob.
    Full,
    /// 206 with `Content-Range: bytes a-b/size`.
    Partial(Range<u64>),
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

impl ByteRange {
    /// Parses a `Range` header value. `None` means "not a single byte range of digits": the
    /// header is ignored and the whole blob sent (RFC 9110 §14.2: a server MAY ignore Range,
    /// and one that does not parse carries nothing to honour). `Some(Err(()))` is a range
    /// of digits that selects nothing even before the size is known, `bytes=500-0`: 416, as
    /// the conformance suite expects (spec digest §4.3).
    pub fn parse(v: &str) -> Option<Result<ByteRange, ()>> {
        let v = v.trim();
        let spec = v.strip_prefix("bytes=")?;
        if spec.contains(',') {
            // Multi-range: answered with the whole blob (spec digest §4.3 allows 200).
            return None;
        }
        let (a, b) = spec.trim().split_once('-')?;
        let (a, b) = (a.trim(), b.trim());
        Some(match (a.is_empty(), b.is_empty()) {
            (true, true) => return None,
            (true, false) => Ok(ByteRange::Suffix(saturating(b)?)),
            (false, true) => Ok(ByteRange::From {
                start: saturating(a)?,
                end: None,
            }),
            (false, false) => {
                let (start, end) = (saturating(a)?, saturating(b)?);
                if end < start {
                    Err(())
                } else {
                    Ok(ByteRange::From {
                        start,
                        end: Some(end),
                    })
                }
            }
        })
    }

    /// The half-open range to send from a blob of `size` bytes, end clamped to the size.
    pub fn resolve(self, size: u64) -> Option<Range<u64>> {
        match self {
            ByteRange::From { start, end } => {
                if start >= size {
                    return None;
                }
                let last = end.map_or(size - 1, |e| e.min(size - 1));
                Some(start..last + 1)
            }
            ByteRange::Suffix(n) => {
                if n == 0 || size == 0 {
                    return None;
                }
                Some(size - n.min(size)..size)
            }
        }
    }
}

/// Decides the response for an optional `Range` header on a blob of `size` bytes.
pub fn answer(range: Option<&str>, size: u64) -> RangeAnswer {
    match range.and_then(ByteRange::parse) {
        None => RangeAnswer::Full,
        Some(Err(())) => RangeAnswer::Unsatisfiable,
        Some(Ok(r)) => match r.resolve(size) {
            Some(rg) => RangeAnswer::Partial(rg),
            None => RangeAnswer::Unsatisfiable,
        },
    }
}

/// An upload chunk's `Content-Range: <start>-<end>` (inclusive, no unit; spec digest §1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    pub end: u64,
}

impl ContentRange {
    /// `^[0-9]+-[0-9]+$` with `end >= start`. A `bytes ` prefix is tolerated.
    pub fn parse(v: &str) -> Option<ContentRange> {
        let v = v.trim();
        let v = v.strip_prefix("bytes ").unwrap_or(v);
        let (a, b) = v.split_once('-')?;
        let (start, end) = (num(a)?, num(b)?);
        (end >= start).then_some(ContentRange { start, end })
    }

    pub fn len(self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(self) -> bool {
        false
    }
}

/// Digits as a number, any number of them: a position past any blob is as good as
/// `u64::MAX` (RFC 9110 §14.1.2 clamps a last position past the end; a first one is
/// unsatisfiable either way).
fn saturating(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn num(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_range_table() {
        // spec digest §4.3: the six cases T2 tests, on a 2048-byte blob, plus suffix forms.
        let rows: &[(&str, RangeAnswer)] = &[
            ("bytes=0-9", RangeAnswer::Partial(0..10)),
            ("bytes=2000-5000", RangeAnswer::Partial(2000..2048)),
            ("bytes=100-", RangeAnswer::Partial(100..2048)),
            ("bytes=-48", RangeAnswer::Partial(2000..2048)),
            ("bytes=-5000", RangeAnswer::Partial(0..2048)),
            ("bytes=5000-10000", RangeAnswer::Unsatisfiable),
            ("bytes=500-0", RangeAnswer::Unsatisfiable),
            ("bytes=2048-", RangeAnswer::Unsatisfiable),
            ("bytes=-0", RangeAnswer::Unsatisfiable),
            // Headers that do not parse are ignored (RFC 9110 §14.2): the whole blob.
            ("bytes=x-1", RangeAnswer::Full),
            ("bytes=-", RangeAnswer::Full),
            ("bytes=abc", RangeAnswer::Full),
            ("bytes=1-x", RangeAnswer::Full),
            ("bytes=", RangeAnswer::Full),
            ("bytes=-1-2", RangeAnswer::Full),
            ("bytes=0-1,5-6", RangeAnswer::Full),
            // Positions past any blob, however many digits: an end is clamped, a suffix
            // takes the whole blob, a start is past the end.
            (
                "bytes=0-18446744073709551615",
                RangeAnswer::Partial(0..2048),
            ),
            (
                "bytes=10-999999999999999999999999",
                RangeAnswer::Partial(10..2048),
            ),
            (
                "bytes=-999999999999999999999999",
                RangeAnswer::Partial(0..2048),
            ),
            (
                "bytes=999999999999999999999999-",
                RangeAnswer::Unsatisfiable,
            ),
            ("items=0-1", RangeAnswer::Full),
        ];
        for (h, want) in rows {
            assert_eq!(&answer(Some(h), 2048), want, "{h}");
        }
        assert_eq!(answer(None, 2048), RangeAnswer::Full);
        assert_eq!(answer(Some("bytes=0-"), 0), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn content_range_table() {
        // spec digest §1.4: ^[0-9]+-[0-9]+$, inclusive.
        let ok: &[(&str, u64, u64)] = &[
            ("0-21", 0, 21),
            ("22-41", 22, 41),
            ("5-5", 5, 5),
            ("bytes 0-1", 0, 1),
        ];
        for (v, s, e) in ok {
            let r = ContentRange::parse(v).unwrap();
            assert_eq!((r.start, r.end), (*s, *e), "{v}");
        }
        for v in [
            "",
            "1",
            "1-",
            "-1",
            "5-4",
            "a-b",
            "0-1/2",
            "0 - 1x",
            "99999999999999999999-1",
        ] {
            assert_eq!(ContentRange::parse(v), None, "{v}");
        }
        assert_eq!(ContentRange::parse("22-41").unwrap().len(), 20);
    }
}
