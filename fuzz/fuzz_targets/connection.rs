//! Arbitrary bytes, split arbitrarily, through one `Connection` over a `ModelStore`.
//! The first bytes choose the split sizes, limits and auth policy; the rest is the stream.
//! Asserts: no panic, every delivery is read or the connection stopped reading for a
//! reason, EOF always ends in `Close`, and a refused caller never appends upload bytes.

#![no_main]

use berth_core::testkit::{AuthPolicy, AuthRules, Grants, Harness};
use berth_core::{Actions, Limits};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let piece = 1 + data[0] as usize;
    let small = data[1] & 1 == 1;
    let limits = if small {
        Limits {
            header_bytes: 256,
            header_count: 8,
            manifest_bytes: 512,
            web_body_bytes: 64,
            discard_bytes: 32,
            page_size: 3,
            ..Limits::default()
        }
    } else {
        Limits::default()
    };
    let mut h = Harness::with_limits(limits);
    // Let the fuzzer past hashing: any digest is accepted on close.
    h.store.verify_digests = data[1] & 2 == 2;
    h.store.check_references = data[1] & 4 == 4;
    // A public registry: anonymous callers pull; `Authorization: Bearer f` may do anything.
    let guarded = data[1] & 16 == 16;
    if guarded {
        let all = Actions {
            pull: true,
            push: true,
            delete: true,
        };
        h.store.auth = AuthPolicy::Rules(
            AuthRules {
                anonymous: Grants::everywhere(Actions::PULL),
                anonymous_ping: data[1] & 32 == 32,
                ..AuthRules::default()
            }
            .credential("Bearer f", Grants::everywhere(all)),
        );
    }
    h.piece = piece;
    let stream = &data[2..];
    let took = h.feed(stream);
    assert!(
        took == stream.len() || h.closed || !h.conn.wants_read(),
        "stopped reading without a reason"
    );
    if data[1] & 8 == 8 {
        h.advance(Duration::from_secs(3600));
    }
    h.eof();
    assert!(h.closed, "EOF must end the connection");
    assert!(h.asked.len() <= stream.len() + 16, "needs bounded by input");
    // Every storage need follows its request's Authorize: pushes happen only when granted.
    if guarded && h.needs.iter().any(|n| n == "AppendUpload") {
        assert!(
            h.store
                .auth_log
                .iter()
                .any(|a| a.credentials.as_deref() == Some("Bearer f")),
            "an upload was appended without a granted credential"
        );
    }
});
