//! Any split of a request stream parses the same; hostile input never panics or loops.

mod common;

use berth_core::testkit::{parse_responses, Harness};
use berth_core::Limits;
use proptest::prelude::*;

/// (route, status, bytes in, bytes out) of each record.
type Summary = Vec<(&'static str, u16, u64, u64)>;

/// Runs `stream` delivered in the pieces between `cuts`; returns the wire and the records'
/// (route, status, bytes in, bytes out).
fn run(stream: &[u8], cuts: &[usize]) -> (Vec<u8>, Summary) {
    let mut h = Harness::new();
    let mut prev = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(stream.len())).collect();
    cuts.sort_unstable();
    cuts.push(stream.len());
    for c in cuts {
        let took = h.feed(&stream[prev..c]);
        assert_eq!(took, c - prev, "the connection read every byte");
        prev = c;
    }
    let recs = h
        .records
        .iter()
        .map(|r| (r.route, r.status, r.bytes_in, r.bytes_out))
        .collect();
    (h.wire, recs)
}

#[test]
fn recorded_session_succeeds_in_one_piece() {
    let (reqs, stream) = common::push_session();
    let (wire, _) = run(&stream, &[]);
    let heads: Vec<bool> = reqs.iter().map(|r| r.is_head()).collect();
    let (rs, used) = parse_responses(&wire, &heads);
    assert_eq!(used, wire.len());
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [200, 404, 202, 202, 202, 201, 201, 201, 200, 200, 206, 200]
    );
    assert_eq!(rs[4].header("Range"), Some("0-199"));
}

#[test]
fn chunked_patch_split_at_every_byte() {
    let (_, stream) = common::push_session();
    let whole = run(&stream, &[]);
    // Every split through the POST, the chunked PATCH and the range PATCH.
    let end = stream.windows(9).position(|w| w == b"PUT /v2/s").unwrap();
    for cut in 0..=end {
        assert_eq!(run(&stream, &[cut]), whole, "split at {cut}");
    }
}

#[test]
fn byte_at_a_time_delivery_matches_one_piece() {
    let (_, stream) = common::push_session();
    let cuts: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(run(&stream, &cuts), run(&stream, &[]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_splits_give_byte_identical_output(cuts in proptest::collection::vec(0usize..4000, 0..40)) {
        let (_, stream) = common::push_session();
        prop_assert_eq!(run(&stream, &cuts), run(&stream, &[]));
    }
}

/// Feeds `stream` then EOF; the connection must end closed without panicking, having
/// asked a bounded number of needs.
fn survive(stream: &[u8], limits: &Limits) {
    let mut h = Harness::with_limits(limits.clone());
    h.piece = 61;
    h.feed(stream);
    h.eof();
    assert!(h.closed, "EOF always ends the connection");
    assert!(
        h.needs.len() <= stream.len() + 16,
        "needs must be bounded by input"
    );
}

#[test]
fn every_prefix_of_a_push_session_ends_cleanly() {
    let (_, stream) = common::push_session();
    let limits = Limits::default();
    for n in 0..=stream.len() {
        survive(&stream[..n], &limits);
    }
}

#[test]
fn every_one_byte_mutation_of_a_push_session_ends_cleanly() {
    let (_, stream) = common::push_session();
    let limits = Limits {
        header_bytes: 512,
        manifest_bytes: 1024,
        discard_bytes: 64,
        ..Limits::default()
    };
    let mut m = stream.clone();
    for i in 0..stream.len() {
        for v in [
            stream[i] ^ 0x01,
            stream[i] ^ 0x20,
            b'\n',
            b'0',
            b':',
            0xff,
            0,
        ] {
            m[i] = v;
            survive(&m, &limits);
        }
        m[i] = stream[i];
    }
}
