//! HTTP/1.1 behaviour of a `Connection`: framing, keep-alive, pipelining, limits,
//! 100-continue, timeouts, and the drive contract.

use berth_core::oci::Algorithm;
use berth_core::testkit::{epoch, parse_responses, Harness, ModelStore, Request};
use berth_core::{hash, Connection, Input, Limits, Misuse, Need, NeedId, Output, Reply};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn keep_alive_is_the_default_for_http_1_1() {
    let mut h = Harness::new();
    for _ in 0..3 {
        assert_eq!(h.send(&Request::get("/v2/")).status, 200);
    }
    assert!(!h.closed);
    assert!(h.conn.wants_read());
}

#[test]
fn connection_close_is_honoured_after_the_response() {
    let mut h = Harness::new();
    let r = h.send(&Request::get("/v2/").header("Connection", "close"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(h.closed);
    assert!(h.conn.is_closed());
    assert!(!h.conn.wants_read());
}

#[test]
fn http_1_0_closes_unless_keep_alive_is_asked_for() {
    let mut h = Harness::new();
    let rs = h.send_raw(b"GET /v2/ HTTP/1.0\r\n\r\n", &[false]);
    assert_eq!(rs[0].status, 200);
    assert!(h.closed);
    let mut h = Harness::new();
    let rs = h.send_raw(
        b"GET /v2/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        &[false],
    );
    assert_eq!(rs[0].header("Connection"), Some("keep-alive"));
    assert!(!h.closed);
}

#[test]
fn pipelined_requests_wait_in_the_buffer_while_a_need_is_outstanding() {
    let mut conn = Connection::new(Arc::new(Limits::default()), epoch());
    let mut store = ModelStore::new();
    let reqs = [
        Request::get("/v2/a/tags/list"),
        Request::get("/v2/"),
        Request::get("/v2/b/tags/list"),
    ];
    let bytes: Vec<u8> = reqs.iter().flat_map(|r| r.to_bytes()).collect();
    let buf = conn.recv_buf();
    buf[..bytes.len()].copy_from_slice(&bytes);
    conn.handle_input(Input::Recv {
        now: epoch(),
        n: bytes.len(),
    })
    .unwrap();
    let mut wire = Vec::new();
    let mut answered = 0;
    let mut authorized = 0;
    loop {
        let mut next = None;
        while let Some(out) = conn.poll_output() {
            match out {
                Output::Need(id, need) => {
                    let auth = matches!(need, Need::Authorize(_));
                    next = Some((id, auth, store.answer(&need)))
                }
                Output::Transmit(b) => wire.extend_from_slice(&b),
                _ => {}
            }
        }
        let Some((id, auth, reply)) = next else {
            break;
        };
        // Parked: nothing is read and no timer runs until the reply.
        assert!(!conn.wants_read());
        assert!(conn.recv_buf().is_empty());
        assert_eq!(conn.deadline(), None);
        conn.handle_input(Input::Reply {
            now: epoch(),
            id,
            reply,
        })
        .unwrap();
        if auth {
            authorized += 1;
        } else {
            answered += 1;
        }
    }
    // One authorization per request, then one storage need per tags list.
    assert_eq!((authorized, answered), (3, 2));
    let (rs, _) = parse_responses(&wire, &[false; 3]);
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [404, 200, 404]);
}

#[test]
fn oversized_head_is_431_and_closes() {
    let mut h = Harness::with_limits(Limits {
        header_bytes: 256,
        ..Limits::default()
    });
    let req = Request::get("/v2/").header("X-Big", &"a".repeat(300));
    let rs = h.send_raw(&req.to_bytes(), &[false]);
    assert_eq!(rs[0].status, 431);
    assert!(h.closed);
}

#[test]
fn oversized_head_without_terminator_is_431_as_soon_as_the_limit_passes() {
    let mut h = Harness::with_limits(Limits {
        header_bytes: 256,
        ..Limits::default()
    });
    h.heads.push(false);
    h.feed(&[b'a'; 300]);
    assert_eq!(h.responses()[0].status, 431);
    assert!(h.closed);
}

#[test]
fn too_many_header_fields_is_431_and_closes() {
    let mut h = Harness::with_limits(Limits {
        header_count: 4,
        ..Limits::default()
    });
    let mut req = Request::get("/v2/");
    for i in 0..6 {
        req = req.header(&format!("X-{i}"), "1");
    }
    let rs = h.send_raw(&req.to_bytes(), &[false]);
    assert_eq!(rs[0].status, 431);
    assert!(h.closed);
}

#[test]
fn malformed_head_is_400_and_closes_only_that_connection() {
    let mut h = Harness::new();
    let rs = h.send_raw(
        b"GET /v2/ HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        &[false],
    );
    assert_eq!(rs[0].status, 400);
    assert!(h.closed);
    let mut other = Harness::new();
    assert_eq!(other.send(&Request::get("/v2/")).status, 200);
}

#[test]
fn content_length_with_chunked_is_400() {
    let mut h = Harness::new();
    let rs = h.send_raw(b"PATCH /v2/a/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", &[false]);
    assert_eq!(rs[0].status, 400);
    assert!(h.closed);
}

#[test]
fn malformed_chunked_body_is_400_and_closes() {
    let mut h = Harness::new();
    let loc = h.upload_location("a");
    let raw =
        format!("PATCH {loc} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    let rs = h.send_raw(raw.as_bytes(), &[false]);
    assert_eq!(rs[0].status, 400);
    assert!(h.closed);
}

#[test]
fn expect_continue_is_sent_only_after_the_upload_check_passes() {
    let mut h = Harness::new();
    let loc = h.upload_location("a");
    let data = b"0123456789";
    // Unknown session: no 100, a 404, and the unsent body forces a close.
    let head = "PATCH /v2/a/blobs/uploads/nope HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n";
    let start = h.wire.len();
    h.heads.push(false);
    h.feed(head.as_bytes());
    let out = String::from_utf8_lossy(&h.wire[start..]).into_owned();
    assert!(!out.contains("100 Continue"), "{out}");
    assert!(out.starts_with("HTTP/1.1 404"));
    assert!(h.closed);
    // Known session: 100 first, then the body is read and 202 follows.
    let mut h = Harness::new();
    let loc2 = h.upload_location("a");
    assert_eq!(loc, loc2);
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
    );
    let start = h.wire.len();
    h.heads.push(false);
    h.feed(head.as_bytes());
    assert_eq!(&h.wire[start..], b"HTTP/1.1 100 Continue\r\n\r\n");
    h.feed(data);
    let r = h.responses().pop().unwrap();
    assert_eq!((r.status, r.header("Range")), (202, Some("0-9")));
}

#[test]
fn expect_continue_on_a_manifest_put_is_answered_before_the_body() {
    let mut h = Harness::new();
    let head =
        "PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n";
    h.feed(head.as_bytes());
    assert_eq!(h.wire, b"HTTP/1.1 100 Continue\r\n\r\n");
}

#[test]
fn early_error_with_a_small_body_discards_it_and_keeps_the_connection() {
    let mut h = Harness::new();
    // Bad digest: answered before the body is read; 4 bytes are discarded.
    let req = Request::put("/v2/a/blobs/uploads/x?digest=bad").body(&b"data"[..]);
    let mut bytes = req.to_bytes();
    bytes.extend_from_slice(&Request::get("/v2/").to_bytes());
    let rs = h.send_raw(&bytes, &[false, false]);
    assert_eq!(rs.iter().map(|r| r.status).collect::<Vec<_>>(), [400, 200]);
    assert!(!h.closed);
}

#[test]
fn early_error_with_a_large_body_closes() {
    let mut h = Harness::with_limits(Limits {
        discard_bytes: 8,
        ..Limits::default()
    });
    let req = Request::put("/v2/a/blobs/uploads/x?digest=bad").body(vec![0u8; 100]);
    let rs = h.send_raw(&req.to_bytes(), &[false]);
    assert_eq!(rs[0].status, 400);
    assert_eq!(rs[0].header("Connection"), Some("close"));
    assert!(h.closed);
}

#[test]
fn idle_keep_alive_connection_closes_silently_after_idle_timeout() {
    let mut h = Harness::new();
    h.send(&Request::get("/v2/"));
    let len = h.wire.len();
    let idle = h.conn.limits().idle_timeout;
    h.advance(idle - Duration::from_millis(1));
    assert!(!h.closed);
    h.advance(Duration::from_millis(1));
    assert!(h.closed);
    assert_eq!(h.wire.len(), len, "idle close sends nothing");
}

#[test]
fn slow_head_is_cut_off_by_the_header_timeout_from_its_first_byte() {
    let mut h = Harness::with_limits(Limits {
        header_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(100),
        ..Limits::default()
    });
    h.feed(b"GET /v2/ HTTP/1.1\r\n");
    assert_eq!(h.conn.deadline(), Some(h.now + Duration::from_secs(5)));
    h.advance(Duration::from_secs(3));
    h.feed(b"X-Slow: 1\r\n");
    h.advance(Duration::from_secs(2));
    assert!(h.closed);
}

#[test]
fn stalled_body_is_cut_off_by_the_body_timeout() {
    let mut h = Harness::with_limits(Limits {
        body_timeout: Duration::from_secs(7),
        ..Limits::default()
    });
    let loc = h.upload_location("a");
    h.feed(
        format!("PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123").as_bytes(),
    );
    assert!(!h.closed);
    h.advance(Duration::from_secs(6));
    h.feed(b"4567");
    h.advance(Duration::from_secs(6));
    assert!(!h.closed, "progress restarts the body timer");
    h.advance(Duration::from_secs(1));
    assert!(h.closed);
}

#[test]
fn eof_between_requests_closes_quietly_and_mid_request_closes_too() {
    let mut h = Harness::new();
    h.send(&Request::get("/v2/"));
    h.eof();
    assert!(h.closed);
    let mut h = Harness::new();
    h.feed(b"GET /v2/ HTT");
    h.eof();
    assert!(h.closed);
    assert!(h.wire.is_empty());
}

#[test]
fn eof_after_pipelined_requests_still_answers_them() {
    let mut h = Harness::new();
    let mut bytes = Request::get("/v2/").to_bytes();
    bytes.extend(Request::get("/v2/a/tags/list").to_bytes());
    h.heads.extend([false, false]);
    h.feed(&bytes);
    h.eof();
    let rs = h.responses();
    assert_eq!(rs.len(), 2);
    assert!(h.closed);
}

#[test]
fn stray_line_breaks_between_requests_are_ignored() {
    let mut h = Harness::new();
    let rs = h.send_raw(
        b"\r\n\r\nGET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n\r\nGET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n",
        &[false, false],
    );
    assert_eq!(rs.len(), 2);
}

#[test]
fn upload_bytes_leave_as_slices_of_the_receive_buffer() {
    let mut conn = Connection::new(Arc::new(Limits::default()), epoch());
    let mut store = ModelStore::new();
    let start = Request::post("/v2/a/blobs/uploads/").to_bytes();
    let data = vec![7u8; 100_000];
    let d = hash(Algorithm::Sha256, &data);
    let mut stream = start.clone();
    stream.extend(
        Request::put(format!("/v2/a/blobs/uploads/up-1?digest={d}"))
            .body(data.clone())
            .to_bytes(),
    );
    let mut off = 0;
    let mut appended = 0usize;
    let mut largest = 0usize;
    let mut wire = Vec::new();
    while off < stream.len() || conn.is_parked() {
        if conn.wants_read() && off < stream.len() {
            let buf = conn.recv_buf();
            let n = buf.len().min(stream.len() - off);
            buf[..n].copy_from_slice(&stream[off..off + n]);
            off += n;
            conn.handle_input(Input::Recv { now: epoch(), n }).unwrap();
        }
        loop {
            let mut next = None;
            while let Some(out) = conn.poll_output() {
                match out {
                    Output::Need(id, need) => {
                        if let berth_core::Need::AppendUpload { bytes, .. } = &need {
                            appended += bytes.len();
                            largest = largest.max(bytes.len());
                            assert!(bytes.len() <= berth_core::connection::MAX_RECV);
                        }
                        next = Some((id, store.answer(&need)));
                    }
                    Output::Transmit(b) => wire.extend_from_slice(&b),
                    _ => {}
                }
            }
            match next {
                Some((id, reply)) => conn
                    .handle_input(Input::Reply {
                        now: epoch(),
                        id,
                        reply,
                    })
                    .unwrap(),
                None => break,
            }
        }
    }
    assert_eq!(appended, data.len());
    assert!(largest > 8 * 1024, "the buffer grows while reads fill it");
    let (rs, _) = parse_responses(&wire, &[false, false]);
    assert_eq!(rs[1].status, 201);
}

#[test]
fn replies_to_the_wrong_need_are_misuse_not_peer_errors() {
    let mut conn = Connection::new(Arc::new(Limits::default()), epoch());
    let r = conn.handle_input(Input::Reply {
        now: epoch(),
        id: NeedId(99),
        reply: Reply::Blob(None),
    });
    assert_eq!(r, Err(Misuse::UnexpectedReply(NeedId(99))));
    let bytes = Request::get("/v2/a/tags/list").to_bytes();
    conn.recv_buf()[..bytes.len()].copy_from_slice(&bytes);
    conn.handle_input(Input::Recv {
        now: epoch(),
        n: bytes.len(),
    })
    .unwrap();
    let id = match conn.poll_output() {
        Some(Output::Need(id, _)) => id,
        other => panic!("expected a need, got {other:?}"),
    };
    let wrong = NeedId(id.0 + 1);
    assert_eq!(
        conn.handle_input(Input::Reply {
            now: epoch(),
            id: wrong,
            reply: Reply::Tags(None)
        }),
        Err(Misuse::UnexpectedReply(wrong))
    );
    assert_eq!(
        conn.handle_input(Input::Recv { now: epoch(), n: 1 }),
        Err(Misuse::RecvOverflow(1))
    );
    conn.handle_input(Input::Reply {
        now: epoch(),
        id,
        reply: Reply::Tags(None),
    })
    .unwrap();
}

#[test]
fn input_after_close_is_misuse() {
    let mut h = Harness::new();
    h.send(&Request::get("/v2/").header("Connection", "close"));
    assert_eq!(
        h.conn.handle_input(Input::Eof { now: h.now }),
        Err(Misuse::Closed)
    );
}

#[test]
fn a_reply_of_the_wrong_kind_fails_the_request_with_500() {
    let mut conn = Connection::new(Arc::new(Limits::default()), epoch());
    let bytes = Request::get("/v2/a/tags/list").to_bytes();
    conn.recv_buf()[..bytes.len()].copy_from_slice(&bytes);
    conn.handle_input(Input::Recv {
        now: epoch(),
        n: bytes.len(),
    })
    .unwrap();
    let Some(Output::Need(id, _)) = conn.poll_output() else {
        panic!("need expected")
    };
    conn.handle_input(Input::Reply {
        now: epoch(),
        id,
        reply: Reply::Blob(None),
    })
    .unwrap();
    let Some(Output::Transmit(b)) = conn.poll_output() else {
        panic!("response expected")
    };
    assert!(b.starts_with(b"HTTP/1.1 500"));
}

#[test]
fn chunk_framing_counts_against_a_gathered_body_limit() {
    let mut h = Harness::with_limits(Limits {
        manifest_bytes: 64,
        ..Limits::default()
    });
    // One data byte per chunk with a long extension: small data, huge framing.
    let ext = ";x=".to_owned() + &"y".repeat(1000);
    let mut raw =
        b"PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..10 {
        raw.extend_from_slice(format!("1{ext}\r\nx\r\n").as_bytes());
    }
    let rs = h.send_raw(&raw, &[false]);
    assert_eq!(rs[0].status, 413);
}

#[test]
fn connections_and_needs_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<Connection>();
    send::<berth_core::Need<'static>>();
    send::<Reply>();
}

/// Every response carries the `Date` the driver set (RFC 9110 §6.6.1), errors and refused
/// heads included; a driver that never sets one gets none.
#[test]
fn responses_carry_the_date_the_driver_set() {
    let mut h = Harness::new();
    assert_eq!(h.send(&Request::get("/v2/")).header("Date"), None);
    let date = "Sat, 28 Nov 2026 03:40:00 GMT";
    h.conn.set_date(date);
    assert_eq!(h.send(&Request::get("/v2/")).header("Date"), Some(date));
    assert_eq!(
        h.send(&Request::get("/v2/a/blobs/sha256:zz"))
            .header("Date"),
        Some(date)
    );
    let rs = h.send_raw(b"GET /v2/ HTTP/1.1\r\n\r\n", &[false]);
    assert_eq!((rs[0].status, rs[0].header("Date")), (400, Some(date)));
}

/// A chunk too big for what is gathered (a manifest) is refused when its size line
/// arrives, not after the body timeout.
#[test]
fn a_chunk_too_big_for_a_gathered_body_is_refused_at_its_size_line() {
    let mut h = Harness::with_limits(Limits {
        manifest_bytes: 1000,
        ..Limits::default()
    });
    let raw = b"PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\nfffffffffffffff\r\n";
    let rs = h.send_raw(raw, &[false]);
    assert_eq!(rs.len(), 1, "answered without waiting for the chunk");
    assert_eq!(rs[0].status, 413);
    assert_eq!(rs[0].error_codes(), ["SIZE_INVALID"]);
}
