//! Keys as bytes whose byte order is the key's order, for a backend that compares keys as
//! plain bytes (PostgreSQL's `bytea`) rather than through redb's typed comparison.
//!
//! A string or byte string followed by more of the key is escaped and terminated the way
//! FoundationDB's tuple layer does it (`00` → `00 FF`, then `00 00`), so that a shorter one
//! sorts before a longer one it begins and no element can run into the next; the last
//! element is written raw, which keeps the common one-part key free of escapes. Integers
//! are big-endian. So comparing two encodings byte by byte answers what redb's `compare`
//! answers on the same keys, element by element, and a range of keys is a range of bytes.

use redb::{Key, Value};

/// One element of a key.
pub(crate) trait Part: Key + 'static {
    /// The element decoded into memory it owns.
    type Owned;
    /// Appends the element; `last` when nothing of the key follows it.
    fn put(v: &Self::SelfType<'_>, last: bool, out: &mut Vec<u8>);
    /// Reads the element off the front of `b`.
    fn take(b: &mut &[u8], last: bool) -> Option<Self::Owned>;
    /// The decoded element as redb's type borrows it.
    fn view(o: &Self::Owned) -> Self::SelfType<'_>;
}

fn put_var(v: &[u8], last: bool, out: &mut Vec<u8>) {
    if last {
        out.extend_from_slice(v);
        return;
    }
    for &b in v {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

fn take_var(b: &mut &[u8], last: bool) -> Option<Vec<u8>> {
    if last {
        let all = b.to_vec();
        *b = &[];
        return Some(all);
    }
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        match *b.get(i)? {
            0 => match *b.get(i + 1)? {
                0xff => {
                    out.push(0);
                    i += 2;
                }
                0 => {
                    *b = &b[i + 2..];
                    return Some(out);
                }
                _ => return None,
            },
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
}

impl Part for &'static [u8] {
    type Owned = Vec<u8>;
    fn put(v: &&[u8], last: bool, out: &mut Vec<u8>) {
        put_var(v, last, out)
    }
    fn take(b: &mut &[u8], last: bool) -> Option<Vec<u8>> {
        take_var(b, last)
    }
    fn view(o: &Vec<u8>) -> &[u8] {
        o
    }
}

impl Part for &'static str {
    type Owned = String;
    fn put(v: &&str, last: bool, out: &mut Vec<u8>) {
        put_var(v.as_bytes(), last, out)
    }
    fn take(b: &mut &[u8], last: bool) -> Option<String> {
        String::from_utf8(take_var(b, last)?).ok()
    }
    fn view(o: &String) -> &str {
        o
    }
}

impl Part for u64 {
    type Owned = u64;
    fn put(v: &u64, _: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(&v.to_be_bytes());
    }
    fn take(b: &mut &[u8], _: bool) -> Option<u64> {
        let (head, rest) = b.split_first_chunk::<8>()?;
        *b = rest;
        Some(u64::from_be_bytes(*head))
    }
    fn view(o: &u64) -> u64 {
        *o
    }
}

fn redb_encoding<K: Value>(v: &K::SelfType<'_>) -> Vec<u8> {
    AsRef::<[u8]>::as_ref(&K::as_bytes(v)).to_vec()
}

/// A whole key: its ordered bytes, and back to the bytes redb's `from_bytes` reads.
pub(crate) trait OrderedKey: Key + 'static {
    fn ordered(v: &Self::SelfType<'_>) -> Vec<u8>;
    /// redb's encoding of the key whose ordered bytes are `b`; `None` if `b` is no such
    /// encoding (the database holds bytes this version never wrote).
    fn redb_bytes(b: &[u8]) -> Option<Vec<u8>>;
}

macro_rules! single {
    ($($t:ty),*) => {$(
        impl OrderedKey for $t {
            fn ordered(v: &Self::SelfType<'_>) -> Vec<u8> {
                let mut out = Vec::new();
                <$t as Part>::put(v, true, &mut out);
                out
            }
            fn redb_bytes(mut b: &[u8]) -> Option<Vec<u8>> {
                let o = <$t as Part>::take(&mut b, true)?;
                if !b.is_empty() {
                    return None;
                }
                Some(redb_encoding::<$t>(&<$t as Part>::view(&o)))
            }
        }
    )*};
}
single!(&'static [u8], &'static str, u64);

impl<A: Part, B: Part> OrderedKey for (A, B) {
    fn ordered(v: &Self::SelfType<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        A::put(&v.0, false, &mut out);
        B::put(&v.1, true, &mut out);
        out
    }
    fn redb_bytes(mut b: &[u8]) -> Option<Vec<u8>> {
        let a = A::take(&mut b, false)?;
        let c = B::take(&mut b, true)?;
        if !b.is_empty() {
            return None;
        }
        let v = (A::view(&a), B::view(&c));
        Some(redb_encoding::<(A, B)>(&v))
    }
}

impl<A: Part, B: Part, C: Part> OrderedKey for (A, B, C) {
    fn ordered(v: &Self::SelfType<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        A::put(&v.0, false, &mut out);
        B::put(&v.1, false, &mut out);
        C::put(&v.2, true, &mut out);
        out
    }
    fn redb_bytes(mut b: &[u8]) -> Option<Vec<u8>> {
        let a = A::take(&mut b, false)?;
        let m = B::take(&mut b, false)?;
        let c = C::take(&mut b, true)?;
        if !b.is_empty() {
            return None;
        }
        let v = (A::view(&a), B::view(&m), C::view(&c));
        Some(redb_encoding::<(A, B, C)>(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Ordering;

    type K3 = (&'static str, &'static [u8], &'static [u8]);

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        // Zeros and 0xff often: the escape's edge cases.
        prop::collection::vec(prop_oneof![Just(0u8), Just(0xffu8), any::<u8>()], 0..6)
    }

    proptest! {
        #[test]
        fn byte_order_is_redbs_order_and_decodes_back(
            a in "[a-c\\x00]{0,4}", b in bytes(), c in bytes(),
            x in "[a-c\\x00]{0,4}", y in bytes(), z in bytes(),
        ) {
            let k1: (&str, &[u8], &[u8]) = (&a, &b, &c);
            let k2: (&str, &[u8], &[u8]) = (&x, &y, &z);
            let (e1, e2) = (K3::ordered(&k1), K3::ordered(&k2));
            let r1 = redb_encoding::<K3>(&k1);
            let r2 = redb_encoding::<K3>(&k2);
            prop_assert_eq!(e1.cmp(&e2), <K3 as Key>::compare(&r1, &r2));
            prop_assert_eq!(K3::redb_bytes(&e1), Some(r1));
            let n1 = u64::from_le_bytes(<[u8; 8]>::try_from(&b.iter().chain(&[0; 8]).copied().take(8).collect::<Vec<_>>()[..]).unwrap());
            let n2 = u64::from_le_bytes(<[u8; 8]>::try_from(&y.iter().chain(&[0; 8]).copied().take(8).collect::<Vec<_>>()[..]).unwrap());
            let (s1, s2): ((&str, u64), (&str, u64)) = ((&a, n1), (&x, n2));
            let o = <(&str, u64)>::ordered(&s1).cmp(&<(&str, u64)>::ordered(&s2));
            prop_assert_eq!(o, s1.0.cmp(s2.0).then(n1.cmp(&n2)));
        }
    }

    #[test]
    fn a_key_that_is_no_encoding_decodes_to_none() {
        assert_eq!(<(&str, &[u8])>::redb_bytes(b"ab\0\x01"), None);
        assert_eq!(<(&str, &[u8])>::redb_bytes(b"ab"), None);
        assert_eq!(<&str>::redb_bytes(&[0xff, 0xfe]), None);
        assert_eq!(u64::redb_bytes(&[1, 2]), None);
        assert_eq!(
            <(&str, &str)>::ordered(&("a", "")).cmp(&<(&str, &str)>::ordered(&("a\0", ""))),
            Ordering::Less
        );
    }
}
