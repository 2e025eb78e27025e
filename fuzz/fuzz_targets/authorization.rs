//! `Authorization` header values as the authenticator reads them, and bearer tokens through
//! verification under a fixed key, at a time the input chooses.
//! Asserts: no panic; a Basic header never reads as a bearer token nor a Bearer one as an
//! access token; nothing but a token the key signed verifies.

#![no_main]

use berth_server::untrusted::{authorization, bearer_token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let seen = authorization(&text);
    if text.starts_with("Basic ") {
        assert_ne!(seen, "bearer", "{text:?}");
    }
    if text.starts_with("Bearer ") {
        assert_ne!(seen, "token", "{text:?}");
    }
    let now = u64::from(sel) << 24;
    let key = b"a key the fuzzer never learns".as_slice();
    // A token is three base64url parts and an HMAC the fuzzer cannot forge: nothing made up
    // verifies.
    assert!(
        bearer_token(key, &text, now).is_err(),
        "a made-up token verified: {text:?}"
    );
    if let Some(token) = text.strip_prefix("Bearer ") {
        let _ = bearer_token(key, token, now);
    }
});
