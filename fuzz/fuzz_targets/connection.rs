//! Arbitrary bytes, split arbitrarily, through one `Connection` over a `ModelStore`.
//! The first bytes choose the split sizes and limits; the rest is the stream. Asserts:
//! no panic, every delivery is read or the connection stopped reading for a reason, and
//! EOF always ends in `Close`.

#![no_main]

use berth_core::testkit::Harness;
use berth_core::Limits;
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
    assert!(h.needs.len() <= stream.len() + 16, "needs bounded by input");
});
