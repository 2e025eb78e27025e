//! Registry credentials the load generator presents. Berth wants a token on every `/v2`
//! request; Distribution in its benchmark config wants none. Basic is used rather than a
//! bearer token from `/auth/token` because it needs no extra round trip before the clock
//! starts and works the same on every connection (spec digest §9.2).

use base64::Engine as _;
/// The user name sent with a token secret. Berth checks only the secret.
pub const BASIC_USER: &str = "berth";

/// `Basic base64("berth:" + secret)`: the `Authorization` value for a token secret.
pub fn basic_authorization(secret: &str) -> String {
    format!(
        "Basic {}",
        base64(format!("{BASIC_USER}:{secret}").as_bytes())
    )
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
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
