//! `berth-loadgen`: drives an OCI registry on loopback with monolithic blob pushes, blob
//! pulls or manifest GETs, and prints what it measured: a human line, then one JSON line.
//!
//! Everything untimed (generating and hashing payloads, pushing what a pull needs,
//! connecting) happens before the clock starts. Every response is checked; a push or pull
//! that fails aborts the run, a failed manifest GET is counted and reported.

use berth_benches::client::HttpConn;
use berth_benches::latency::Samples;
use berth_benches::payload::Payload;
use berth_benches::registry::{self, Extra, OpError, SmallImage};
use berth_benches::size::{fmt_size, parse_size};
use berth_benches::target::Target;
use serde_json::json;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "\
usage: berth-loadgen <push|pull|manifest-get> [options]

  push          POST + one PUT ?digest= per blob (whole body, Content-Length); K distinct
                blobs, digests computed before the clock starts
  pull          push one blob untimed, then GET it K times (bytes counted, length checked)
  manifest-get  push a small image untimed, then GET its manifest by tag in a loop on every
                connection for --seconds

options:
  --target URL      registry base URL, loopback only        [http://127.0.0.1:5000]
  --repo NAME       repository                              [bench/load/app]
  --size SIZE       blob size for push/pull (256MiB, 1GiB)  [256MiB]
  --conns N         concurrent keep-alive connections       [1; manifest-get: 32]
  --count K         blobs to push / GETs to make            [push: N, pull: N]
  --seconds S       manifest-get duration                   [10]
  --tag TAG         manifest-get tag                        [bench]
  --pipeline D      manifest-get: D requests in flight per connection (1 = no pipelining) [1]
  --basic-token S   send 'Authorization: Basic base64(berth:S)' with every request
                    (a Berth token secret; S may also come from BERTH_LOADGEN_TOKEN)
  --header 'N: V'   extra request header, repeatable
  --label TEXT      copied into the JSON summary (e.g. the server's name)

Prints a human summary, then one line of JSON. Exit status 1 on a failed run, 2 when
manifest-get saw errors.";

/// `println!` that ignores a closed stdout (`| head -1`) instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

const MAX_CONNS: usize = 256;
const MAX_COUNT: usize = 4096;
const MAX_SIZE: u64 = 8 << 30;
const MAX_TOTAL: u64 = 256 << 30;
const MAX_SECONDS: f64 = 600.0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Push,
    Pull,
    ManifestGet,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Push => "push",
            Mode::Pull => "pull",
            Mode::ManifestGet => "manifest-get",
        }
    }
}

struct Args {
    mode: Mode,
    target: Target,
    target_url: String,
    repo: String,
    size: u64,
    conns: usize,
    count: usize,
    seconds: f64,
    tag: String,
    pipeline: usize,
    extra: Extra,
    label: String,
}

fn parse_args(argv: Vec<String>) -> Result<Args, String> {
    let mut it = argv.into_iter();
    let mode = match it.next().as_deref() {
        Some("push") => Mode::Push,
        Some("pull") => Mode::Pull,
        Some("manifest-get") => Mode::ManifestGet,
        Some("-h" | "--help") | None => return Err(String::new()),
        Some(other) => return Err(format!("unknown mode {other:?}")),
    };
    let mut target_url = "http://127.0.0.1:5000".to_string();
    let mut repo = "bench/load/app".to_string();
    let mut size = 256u64 << 20;
    let mut conns: Option<usize> = None;
    let mut count: Option<usize> = None;
    let mut seconds = 10.0;
    let mut tag = "bench".to_string();
    let mut pipeline = 1usize;
    let mut extra = Extra::default();
    let mut label = String::new();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag} {v:?}: expected a whole number"))
        };
        match flag.as_str() {
            "--target" => target_url = val,
            "--repo" => repo = val,
            "--size" => size = parse_size(&val)?,
            "--conns" => conns = Some(num(&val)?),
            "--count" => count = Some(num(&val)?),
            "--seconds" => {
                seconds = val
                    .parse::<f64>()
                    .map_err(|_| format!("--seconds {val:?}: expected a number"))?
            }
            "--tag" => tag = val,
            "--pipeline" => pipeline = num(&val)?,
            "--header" => {
                let (n, v) = val
                    .split_once(':')
                    .ok_or_else(|| format!("--header {val:?}: expected 'Name: value'"))?;
                extra.0.push((n.trim().to_string(), v.trim().to_string()));
            }
            "--basic-token" => extra.add_basic_token(&val)?,
            "--label" => label = val,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if !extra.has_authorization() {
        // From the environment, so a secret need not show in the process listing.
        if let Some(secret) = std::env::var("BERTH_LOADGEN_TOKEN")
            .ok()
            .filter(|v| !v.is_empty())
        {
            extra.add_basic_token(&secret)?;
        }
    }
    let target = Target::parse(&target_url).map_err(|e| e.to_string())?;
    let conns = conns.unwrap_or(if mode == Mode::ManifestGet { 32 } else { 1 });
    let count = count.unwrap_or(conns);
    if !(1..=MAX_CONNS).contains(&conns) {
        return Err(format!("--conns must be 1..={MAX_CONNS}"));
    }
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(format!("--count must be 1..={MAX_COUNT}"));
    }
    if size > MAX_SIZE {
        return Err(format!("--size must be at most {}", fmt_size(MAX_SIZE)));
    }
    if mode != Mode::ManifestGet && size.saturating_mul(count as u64) > MAX_TOTAL {
        return Err(format!(
            "--size × --count must be at most {}",
            fmt_size(MAX_TOTAL)
        ));
    }
    if !(seconds > 0.0 && seconds <= MAX_SECONDS) {
        return Err(format!("--seconds must be in (0, {MAX_SECONDS}]"));
    }
    if !(1..=128).contains(&pipeline) {
        return Err("--pipeline must be 1..=128".into());
    }
    if repo.is_empty() || repo.contains(|c: char| c.is_whitespace() || c == '?' || c == '#') {
        return Err(format!("--repo {repo:?}: not a repository name"));
    }
    Ok(Args {
        mode,
        target,
        target_url,
        repo,
        size,
        conns,
        count,
        seconds,
        tag,
        pipeline,
        extra,
        label,
    })
}

fn nonce() -> u64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

/// `GET /v2/` before anything is timed: a 401 means the run needs credentials, and saying
/// so here beats failing on the first push.
fn check_access(c: &mut HttpConn, extra: &Extra) -> Result<(), String> {
    match registry::ping(c, extra).map_err(|e| e.to_string())? {
        401 if extra.has_authorization() => Err(
            "GET /v2/ answered 401 to the credentials given: is the token valid on this server?"
                .into(),
        ),
        401 => Err(
            "GET /v2/ answered 401: pass a token with --basic-token SECRET \
             (or BERTH_LOADGEN_TOKEN, or --header 'Authorization: ...')"
                .into(),
        ),
        _ => Ok(()),
    }
}

fn open_conns(a: &Args) -> Result<Vec<HttpConn>, String> {
    let mut v = Vec::with_capacity(a.conns);
    for _ in 0..a.conns {
        v.push(
            berth_benches::client::connect(&a.target)
                .map_err(|e| format!("connect to {}: {e}", a.target_url))?,
        );
    }
    Ok(v)
}

fn ms(us: f64) -> f64 {
    (us / 1000.0 * 1000.0).round() / 1000.0
}

/// Runs `op(conn, i)` for i in 0..count spread over the connections, all starting together;
/// returns the wall time of the whole batch and each op's latency.
fn run_batch<F>(conns: &mut [HttpConn], count: usize, op: F) -> Result<(Duration, Samples), OpError>
where
    F: Fn(&mut HttpConn, usize) -> Result<(), OpError> + Sync,
{
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let start = Barrier::new(conns.len() + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter_mut()
            .map(|c| {
                let (next, failed, start, op) = (&next, &failed, &start, &op);
                s.spawn(move || -> Result<Samples, OpError> {
                    let mut lat = Samples::default();
                    start.wait();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count || failed.load(Ordering::Relaxed) {
                            return Ok(lat);
                        }
                        let t = Instant::now();
                        if let Err(e) = op(c, i) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        lat.record(t.elapsed());
                    }
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        let mut all = Samples::with_capacity(count);
        let mut first_err = None;
        for h in handles {
            // A panicking worker is a bug in this tool; re-raise it.
            match h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)) {
                Ok(l) => all.merge(l),
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        let wall = t0.elapsed();
        match first_err {
            Some(e) => Err(e),
            None => Ok((wall, all)),
        }
    })
}

fn throughput(
    a: &Args,
    what: &str,
    wall: Duration,
    mut lat: Samples,
    extra_json: serde_json::Value,
) -> serde_json::Value {
    let bytes = a.size * a.count as u64;
    let secs = wall.as_secs_f64();
    let mbps = bytes as f64 / 1e6 / secs;
    let p = lat
        .percentiles(&[50.0, 100.0])
        .unwrap_or_else(|| vec![0.0, 0.0]);
    out!(
        "{} {} × {} over {} conn(s): {} in {:.3} s = {:.1} MB/s ({:.3} GB/s); per {what} p50 {:.1} ms, max {:.1} ms",
        a.mode.name(),
        a.count,
        fmt_size(a.size),
        a.conns,
        fmt_size(bytes),
        secs,
        mbps,
        mbps / 1000.0,
        p[0] / 1000.0,
        p[1] / 1000.0,
    );
    let mut j = json!({
        "mode": a.mode.name(),
        "label": a.label,
        "target": a.target_url,
        "repo": a.repo,
        "size_bytes": a.size,
        "count": a.count,
        "conns": a.conns,
        "bytes": bytes,
        "seconds": secs,
        "mb_per_s": (mbps * 10.0).round() / 10.0,
        "gb_per_s": (mbps / 1000.0 * 1000.0).round() / 1000.0,
        "ops_per_s": (a.count as f64 / secs * 10.0).round() / 10.0,
        "op_p50_ms": ms(p[0]),
        "op_max_ms": ms(p[1]),
    });
    if let (Some(o), serde_json::Value::Object(e)) = (j.as_object_mut(), extra_json) {
        o.extend(e);
    }
    j
}

fn push(a: &Args) -> Result<serde_json::Value, String> {
    eprintln!(
        "preparing {} blob(s) of {} and their digests (untimed)...",
        a.count,
        fmt_size(a.size)
    );
    let payload = Payload::new(a.size, a.count, nonce());
    let mut conns = open_conns(a)?;
    check_access(&mut conns[0], &a.extra)?;
    let (wall, lat) = run_batch(&mut conns, a.count, |c, i| {
        registry::push_blob(c, &a.extra, &a.repo, payload.digest(i), &payload.parts(i))
    })
    .map_err(|e| format!("push failed: {e}"))?;
    // A push cannot beat SHA-256 over its bytes: print the bound beside the figure.
    let sha = payload.sha256_mb_per_s().map(|r| (r * 10.0).round() / 10.0);
    if let Some(r) = sha {
        eprintln!("SHA-256 on one core of this machine, same run: {r:.1} MB/s");
    }
    Ok(throughput(
        a,
        "blob",
        wall,
        lat,
        json!({ "sha256_mb_per_s": sha }),
    ))
}

fn pull(a: &Args) -> Result<serde_json::Value, String> {
    eprintln!("pushing one {} blob (untimed)...", fmt_size(a.size));
    let payload = Payload::new(a.size, 1, nonce());
    let mut conns = open_conns(a)?;
    check_access(&mut conns[0], &a.extra)?;
    let digest = payload.digest(0).to_string();
    registry::push_blob(&mut conns[0], &a.extra, &a.repo, &digest, &payload.parts(0))
        .map_err(|e| format!("untimed push failed: {e}"))?;
    drop(payload);
    let (wall, lat) = run_batch(&mut conns, a.count, |c, _| {
        registry::pull_blob(c, &a.extra, &a.repo, &digest, a.size).map(|_| ())
    })
    .map_err(|e| format!("pull failed: {e}"))?;
    Ok(throughput(a, "GET", wall, lat, json!({"digest": digest})))
}

struct GetStats {
    lat: Samples,
    errors: u64,
    reconnects: u64,
    first_error: Option<String>,
}

fn manifest_get(a: &Args) -> Result<(serde_json::Value, bool), String> {
    let img = SmallImage::new(nonce());
    let mut conns = open_conns(a)?;
    check_access(&mut conns[0], &a.extra)?;
    img.push(&mut conns[0], &a.extra, &a.repo, &a.tag)
        .map_err(|e| format!("untimed image push failed: {e}"))?;
    let one = registry::manifest_get_request(&conns[0], &a.extra, &a.repo, &a.tag);
    let batch = one.repeat(a.pipeline);
    let want = img.manifest.as_slice();
    let start = Barrier::new(conns.len() + 1);
    let run_for = Duration::from_secs_f64(a.seconds);
    let (wall, stats) = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter_mut()
            .map(|c| {
                let (start, batch) = (&start, &batch);
                s.spawn(move || {
                    let mut st = GetStats {
                        lat: Samples::with_capacity(1 << 16),
                        errors: 0,
                        reconnects: 0,
                        first_error: None,
                    };
                    let connects_before = c.connects;
                    start.wait();
                    let deadline = Instant::now() + run_for;
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let mut failed = c.send_raw(batch).err().map(|e| e.to_string());
                        if failed.is_none() {
                            for _ in 0..a.pipeline {
                                match c.read_response(false, berth_benches::client::Sink::Keep) {
                                    Ok(r) if r.status == 200 && r.body == want => {
                                        st.lat.record(t.elapsed())
                                    }
                                    Ok(r) => {
                                        st.errors += 1;
                                        st.first_error.get_or_insert_with(|| {
                                            format!(
                                                "status {} with {} body bytes",
                                                r.status,
                                                r.body.len()
                                            )
                                        });
                                    }
                                    Err(e) => {
                                        failed = Some(e.to_string());
                                        break;
                                    }
                                }
                            }
                        }
                        if let Some(e) = failed {
                            st.errors += 1;
                            st.first_error.get_or_insert(e);
                            // Do not spin on a dead server.
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                    st.reconnects = c.connects - connects_before;
                    st
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        let mut all = GetStats {
            lat: Samples::default(),
            errors: 0,
            reconnects: 0,
            first_error: None,
        };
        for h in handles {
            // A panicking worker is a bug in this tool; re-raise it.
            let st = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            all.lat.merge(st.lat);
            all.errors += st.errors;
            all.reconnects += st.reconnects;
            all.first_error = all.first_error.or(st.first_error);
        }
        (t0.elapsed(), all)
    });
    let mut lat = stats.lat;
    let ok = lat.len() as u64;
    let secs = wall.as_secs_f64();
    let rps = ok as f64 / secs;
    let p = lat
        .percentiles(&[50.0, 99.0, 100.0])
        .unwrap_or_else(|| vec![0.0; 3]);
    out!(
        "manifest-get over {} conn(s), pipeline {}: {} OK in {:.2} s = {:.0} req/s; p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs; {} error(s), {} reconnect(s)",
        a.conns, a.pipeline, ok, secs, rps, p[0], p[1], p[2], stats.errors, stats.reconnects
    );
    if let Some(e) = &stats.first_error {
        eprintln!("first error: {e}");
    }
    let j = json!({
        "mode": a.mode.name(),
        "label": a.label,
        "target": a.target_url,
        "repo": a.repo,
        "conns": a.conns,
        "pipeline": a.pipeline,
        "seconds": secs,
        "requests": ok,
        "errors": stats.errors,
        "reconnects": stats.reconnects,
        "req_per_s": rps.round(),
        "p50_us": p[0].round(),
        "p99_us": p[1].round(),
        "max_us": p[2].round(),
        "manifest_bytes": want.len(),
    });
    Ok((j, stats.errors == 0 && ok > 0))
}

fn main() -> ExitCode {
    let a = match parse_args(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            out!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("berth-loadgen: {e} (see --help)");
            return ExitCode::from(1);
        }
    };
    let result = match a.mode {
        Mode::Push => push(&a).map(|j| (j, true)),
        Mode::Pull => pull(&a).map(|j| (j, true)),
        Mode::ManifestGet => manifest_get(&a),
    };
    match result {
        Ok((j, clean)) => {
            out!("{j}");
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("berth-loadgen {}: {e}", a.mode.name());
            ExitCode::from(1)
        }
    }
}
