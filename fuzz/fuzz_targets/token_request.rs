//! The token endpoint's query string (GET) or form body (POST), and every `scope` in it.
//! Asserts: no panic; one scope result per `scope` pair; decoding never makes more pairs
//! than the text has `&`-separated parts.

#![no_main]

use berth_server::untrusted::token_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let r = token_request(&text);
    let scopes = r.pairs.iter().filter(|(k, _)| k == "scope").count();
    assert_eq!(r.scopes.len(), scopes);
    assert!(r.pairs.len() <= text.split('&').count());
});
