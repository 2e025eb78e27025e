//! Registry credentials the load generator presents. Berth wants a token on every `/v2`
//! request; Distribution in its benchmark config wants none. Basic is used rather than a
//! bearer token from `/auth/token` because it needs no extra round trip before the clock
//! starts and works the same on every connection (spec digest §9.2).

/// The user name sent with a token secret. Berth checks only the secret.
pub const BASIC_USER: &str = "berth";

/// `Basic base64("berth:" + secret)`: the `Authorization` value for a token secret.
pub fn basic_authorization(secret: &str) -> String {
    format!(
        "Basic {}",
        base64(format!("{BASIC_USER}:{secret}").as_bytes())
    )
}

/// Standard base64 with padding (RFC 4648 §4). A dozen lines here instead of a dependency
/// the workspace does not carry.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_test_vectors() {
        // RFC 4648 §10.
        let rows = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in rows {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn a_token_secret_becomes_basic_credentials_for_user_berth() {
        // echo -n 'berth:s3cret' | base64
        assert_eq!(basic_authorization("s3cret"), "Basic YmVydGg6czNjcmV0");
    }
}
