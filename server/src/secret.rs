//! Secrets and the small primitives around them: random token secrets, SHA-256, HMAC-SHA256,
//! base64 and constant-time comparison. A secret lives in a `Secret` whose `Debug` and
//! `Display` redact, so no log line, panic message or `{:?}` of a request can carry one
//! (STYLE.md, server/: "Logs never carry secrets").

use sha2::{Digest as _, Sha256};
use std::fmt;

/// A value that must never be printed: a token secret, a password, a bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself: only for hashing, verifying or handing to its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `n` bytes from the operating system's generator.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).map_err(|e| format!("no randomness from the OS: {e}"))?;
    Ok(b)
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A token secret: `prefix` + 40 base62 characters (about 238 bits).
pub fn new_token_secret(prefix: &str) -> Result<Secret, String> {
    let mut out = String::with_capacity(prefix.len() + 40);
    out.push_str(prefix);
    while out.len() < prefix.len() + 40 {
        for b in random_bytes(64)? {
            // Rejection sampling keeps every character equally likely (248 = 4 * 62).
            if b < 248 && out.len() < prefix.len() + 40 {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    Ok(Secret(out))
}

/// A token id: `tok_` + 16 hex digits.
pub fn new_token_id() -> Result<String, String> {
    Ok(format!("tok_{}", hex::encode(random_bytes(8)?)))
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// HMAC-SHA256 (RFC 2104): H((K ^ opad) || H((K ^ ipad) || m)), K padded to the block size.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn encode(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        let chars = c.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn decode(s: &str, alphabet: &[u8; 64]) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in s.bytes() {
        let v = alphabet.iter().position(|&a| a == b)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero: otherwise two spellings would decode alike, and a
    // tampered MAC could pass for the real one.
    (acc == 0).then_some(out)
}

/// Standard base64 with padding (HTTP Basic); clients encode, the server only decodes.
#[cfg(test)]
pub fn base64_encode(data: &[u8]) -> String {
    encode(data, STD, true)
}

/// Standard base64, padding optional (HTTP Basic as clients send it).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    decode(s, STD)
}

/// URL-safe base64 without padding (bearer token parts).
pub fn base64url_encode(data: &[u8]) -> String {
    encode(data, URL, false)
}

pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    if s.contains('=') {
        return None;
    }
    decode(s, URL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("berth_pat_abc");
        assert_eq!(format!("{s:?} {s}"), "Secret(<redacted>) <redacted>");
    }

    #[test]
    fn token_secrets_have_prefix_and_forty_base62_chars() {
        let s = new_token_secret("berth_pat_").unwrap();
        let rest = s.expose().strip_prefix("berth_pat_").unwrap();
        assert_eq!(rest.len(), 40);
        assert!(rest.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(s, new_token_secret("berth_pat_").unwrap());
        let id = new_token_id().unwrap();
        assert_eq!(id.len(), 20);
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(long),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn base64_round_trips_and_rejects_garbage() {
        for n in 0..20 {
            let d: Vec<u8> = (0..n).map(|i| (i * 37) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&d)).unwrap(), d);
            assert_eq!(base64url_decode(&base64url_encode(&d)).unwrap(), d);
        }
        assert_eq!(base64_encode(b"u:p"), "dTpw");
        assert_eq!(base64_decode("Og==").unwrap(), b":");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("!!!!").is_none());
        assert!(base64url_decode("ab+/").is_none());
    }

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
