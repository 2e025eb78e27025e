//! What real clients sent (skopeo, podman, docker and containerd pushing and pulling,
//! recorded through a proxy by `tests/src/bin/record-sessions.rs` into the fuzz corpus,
//! `fuzz/corpus/connection/seed-session-*`) through one `Connection` each: whole, then
//! every prefix, then every one-byte change. Whatever the bytes: no panic, no hang, the
//! connection reads everything or stops reading for a reason, and EOF closes it. Whole
//! sessions get an answer to every request and no 5xx.
//!
//! `BERTH_SESSION_SWEEP=full` tries three changes at every byte instead of one.

// The core never starts threads; this test does, for its watchdog.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use berth_core::testkit::Harness;

/// The fuzz target's configuration bytes that open each recorded seed.
const CONFIG_BYTES: usize = 2;

fn sessions() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/connection");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("seed-session-").then(|| {
                let bytes = std::fs::read(e.path()).expect("read a session");
                (name, bytes[CONFIG_BYTES.min(bytes.len())..].to_vec())
            })
        })
        .collect();
    out.sort();
    out
}

/// Runs `bytes` through a fresh connection in pieces of `piece` bytes, then EOF.
fn run(bytes: &[u8], piece: usize) -> Harness {
    let mut h = Harness::new();
    h.piece = piece;
    let took = h.feed(bytes);
    assert!(
        took == bytes.len() || h.closed || !h.conn.wants_read(),
        "stopped reading at {took} of {} without a reason",
        bytes.len()
    );
    h.eof();
    assert!(h.closed, "EOF must end the connection");
    h
}

/// The request lines in a session (a request starts a line with a method and ` /`).
fn requests(bytes: &[u8]) -> usize {
    let methods: [&[u8]; 5] = [b"GET /", b"HEAD /", b"PUT /", b"POST /", b"PATCH /"];
    let mut n = 0;
    for (i, _) in bytes.iter().enumerate() {
        if (i == 0 || bytes[i - 1] == b'\n') && methods.iter().any(|m| bytes[i..].starts_with(m)) {
            n += 1;
        }
    }
    n.max(usize::from(!bytes.is_empty()))
}

/// The status of every response on the wire, found by their status lines: the harness
/// does not know which requests were HEADs (their answers carry a length but no body), so
/// the wire cannot be parsed response by response.
fn statuses(wire: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    for i in 0..wire.len() {
        let line = &wire[i..];
        if line.starts_with(b"HTTP/1.1 ") && line.get(12) == Some(&b' ') {
            let code = std::str::from_utf8(&line[9..12])
                .ok()
                .and_then(|c| c.parse().ok());
            if let Some(code) = code {
                out.push(code);
            }
        }
    }
    out
}

fn sweep(full: bool) {
    let all = sessions();
    assert!(
        all.iter().any(|(n, _)| n.contains("skopeo"))
            && all.iter().any(|(n, _)| n.contains("podman"))
            && all.iter().any(|(n, _)| n.contains("docker")),
        "recorded sessions of skopeo, podman and docker: {:?}",
        all.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for (name, bytes) in &all {
        let h = run(bytes, usize::MAX);
        let answers = statuses(&h.wire);
        assert!(
            answers.len() >= requests(bytes),
            "{name}: {} answers to {} requests",
            answers.len(),
            requests(bytes)
        );
        assert!(answers.iter().all(|&s| s < 500), "{name}: {answers:?}");
        for cut in 0..bytes.len() {
            run(&bytes[..cut], 1 + cut % 7);
        }
        let mut changed = bytes.clone();
        for i in 0..bytes.len() {
            let tries: &[fn(u8) -> u8] = if full {
                &[|b| b ^ 0x01, |_| 0, |_| b'\n']
            } else {
                match i % 3 {
                    0 => &[|b| b ^ 0x01],
                    1 => &[|_| 0],
                    _ => &[|_| b'\n'],
                }
            };
            for f in tries {
                changed[i] = f(bytes[i]);
                run(&changed, usize::MAX);
            }
            changed[i] = bytes[i];
        }
    }
}

#[test]
fn every_prefix_and_one_byte_change_of_real_client_sessions_is_handled() {
    let full = std::env::var("BERTH_SESSION_SWEEP").as_deref() == Ok("full");
    // On a thread, so that a hang fails the test with a message instead of stalling it.
    let (done, finished) = mpsc::channel();
    let sweeper = std::thread::spawn(move || {
        sweep(full);
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(if full { 1800 } else { 300 })) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The sweep panicked: report its message.
            if let Err(p) = sweeper.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("the sweep hung"),
    }
}
