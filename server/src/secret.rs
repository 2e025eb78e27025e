//! Secrets and the small primitives around them: random token secrets, SHA-256, HMAC-SHA256,
//! base64 and constant-time comparison (the MAC and the comparison are RustCrypto's `hmac`
//! and `subtle`: crypto is not written here). A secret lives in a `Secret` whose `Debug` and
//! `Display` redact, so no log line, panic message or `{:?}` of a request can carry one
//! (docs/architecture.md, "server/").

use base64::alphabet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// A value that must never be printed: a token secret, a password, a bearer token (the
/// engine's type, which also holds the object store's keys).
pub use berth_engine::objects::Secret;

/// `n` bytes from the operating system's generator.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| format!("no randomness from the OS: {e}"))?;
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
    Ok(Secret::new(out))
}

/// A token id: `tok_` + 16 hex digits.
pub fn new_token_id() -> Result<String, String> {
    Ok(format!("tok_{}", hex::encode(random_bytes(8)?)))
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// HMAC-SHA256 (RFC 2104), RustCrypto's: the bearer tokens' MAC.
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // Invariant: HMAC takes a key of any length (a long one is hashed first).
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC keys may have any length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// Equality whose time does not depend on where the inputs differ (`subtle`); slices of
/// different lengths are unequal at once, the length being no secret.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Standard base64 as HTTP Basic clients send it: padding optional; non-zero leftover bits
/// are refused, so no two spellings decode alike.
const BASIC: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Standard base64 with padding (HTTP Basic); clients encode, the server only decodes.
#[cfg(test)]
pub fn base64_encode(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Standard base64, padding optional (HTTP Basic as clients send it).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    BASIC.decode(s).ok()
}

/// URL-safe base64 without padding (bearer token parts).
pub fn base64url_encode(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// The inverse of [`base64url_encode`]; padding or leftover bits make it `None`, so a
/// tampered MAC cannot pass for the real one under another spelling.
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
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
