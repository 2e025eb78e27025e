//! One GET, sent in a loop on many keep-alive connections for a while: the latency of a page
//! or an API answer under load. Every answer must be 200 with a body; anything else is
//! counted as an error and reported, never timed.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::client::Sink;
use crate::latency::Samples;
use crate::registry::Extra;
use crate::target::Target;

/// What a run of GETs measured.
pub struct Hammered {
    pub path: String,
    pub conns: usize,
    pub seconds: f64,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Body bytes of the first answer.
    pub body_bytes: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Hammered {
    pub fn req_per_s(&self) -> f64 {
        self.ok as f64 / self.seconds
    }

    pub fn json(&self, figure: &str) -> serde_json::Value {
        serde_json::json!({
            "figure": figure,
            "path": self.path,
            "conns": self.conns,
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
            "requests": self.ok,
            "errors": self.errors,
            "body_bytes": self.body_bytes,
            "req_per_s": self.req_per_s().round(),
            "p50_us": self.p50_us.round(),
            "p99_us": self.p99_us.round(),
            "max_us": self.max_us.round(),
        })
    }

    pub fn human(&self, figure: &str) -> String {
        format!(
            "{figure}: {} conns, {:.1} s: {} OK ({:.0} req/s), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} error(s){}",
            self.conns,
            self.seconds,
            self.ok,
            self.req_per_s(),
            self.p50_us / 1000.0,
            self.p99_us / 1000.0,
            self.max_us / 1000.0,
            self.errors,
            self.first_error
                .as_ref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        )
    }
}

/// GETs `path` on `conns` connections for `seconds`, each connection sending its next
/// request when the last answer is read (no pipelining).
pub fn hammer(
    target: &Target,
    extra: &Extra,
    path: &str,
    conns: usize,
    seconds: f64,
) -> Result<Hammered, String> {
    let mut cs = Vec::with_capacity(conns);
    for _ in 0..conns {
        cs.push(crate::client::connect(target).map_err(|e| format!("connect: {e}"))?);
    }
    let request = cs[0].head("GET", path, &extra_headers(extra), 0);
    let start = Barrier::new(conns + 1);
    let run_for = Duration::from_secs_f64(seconds);
    type PerConn = (Samples, u64, Option<String>, u64);
    let (wall, results): (Duration, Vec<PerConn>) = std::thread::scope(|s| {
        let handles: Vec<_> = cs
            .iter_mut()
            .map(|c| {
                let (start, request) = (&start, &request);
                s.spawn(move || {
                    let (mut lat, mut errors, mut first, mut body) =
                        (Samples::with_capacity(1 << 14), 0u64, None, 0u64);
                    start.wait();
                    let deadline = Instant::now() + run_for;
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let r = c
                            .send_raw(request)
                            .and_then(|()| c.read_response(false, Sink::Discard));
                        match r {
                            Ok(r) if r.status == 200 && r.body_len > 0 => {
                                lat.record(t.elapsed());
                                body = r.body_len;
                            }
                            Ok(r) => {
                                errors += 1;
                                first.get_or_insert_with(|| format!("status {}", r.status));
                            }
                            Err(e) => {
                                errors += 1;
                                first.get_or_insert_with(|| e.to_string());
                                // Do not spin on a dead server.
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                    (lat, errors, first, body)
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        let results = handles
            .into_iter()
            // A panicking worker is a bug in this tool; re-raise it.
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        (t0.elapsed(), results)
    });
    let mut all = Samples::default();
    let (mut errors, mut first_error, mut body_bytes) = (0, None, 0);
    for (lat, e, f, b) in results {
        all.merge(lat);
        errors += e;
        first_error = first_error.or(f);
        body_bytes = body_bytes.max(b);
    }
    let ok = all.len() as u64;
    let p = all
        .percentiles(&[50.0, 99.0, 100.0])
        .unwrap_or_else(|| vec![0.0; 3]);
    Ok(Hammered {
        path: path.to_owned(),
        conns,
        seconds: wall.as_secs_f64(),
        ok,
        errors,
        first_error,
        body_bytes,
        p50_us: p[0],
        p99_us: p[1],
        max_us: p[2],
    })
}

fn extra_headers(extra: &Extra) -> Vec<(&str, &str)> {
    extra
        .0
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}
