//! `berth-package-bench`: what the package index costs and how fast its answers are, on the
//! real release `berth` (started here on free loopback ports over temporary data folders,
//! provisioned with its CLI). Each figure prints a human line, then one JSON line; nothing
//! is asserted about speed. Every answer timed is checked (status, sizes, counts), so a
//! figure is never the speed of an error page.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use berth_benches::berth::{proc_status_kib, Berth};
use berth_benches::client::{HttpConn, Response, Sink};
use berth_benches::hammer::hammer;
use berth_benches::layers::{write_tree, Content, ImageMeta, Layer, TreeSpec};
use berth_benches::payload::sha256_digest;
use berth_benches::registry::{self, Extra, OpError};
use berth_benches::size::{fmt_size, parse_size};
use berth_engine::package::{scan_layer, ScanLimits};
use serde_json::{json, Value};

const USAGE: &str = "\
usage: berth-package-bench [FIGURE...] [options]

Figures (default: all, in this order):
  push      the same pushes to two servers side by side, one indexing packages and one
            with index_packages=false, in alternating rounds: both throughputs and the ratio
  index     a ~1 GiB gzip layer: manifest PUT's 201 to the version leaving \"indexing\",
            against `gzip -dc | tar -t` and the indexer's lister (scan_layer) on the same file
  details   an image of --files files in --dirs directories: p50/p99 at --conns connections
            of its details JSON, a Contents directory (/files?path=), and the HTML version
            page and its Contents tab when this server has them
  search    --search-images images sharing a layer with usr/lib/libssl.so.3, each with its
            own usr/bin/tool-N: p50/p99 of a path search with many hits and with one
  download  an image of one ~--download-size layer: the Download route against a blob GET
            of the layer, MB/s and the server's peak RSS during each

Options:
  --berth PATH          the server binary          [berth beside this binary]
  --push-rounds N       rounds per server (even: each goes first as often) [4]
  --push-images N       images per round           [64]
  --push-files N        files per image's layer    [4000]
  --push-conns N        connections pushing        [2]
  --index-size SIZE     generated layer's size     [1GiB]
  --index-layer FILE    index this gzip layer instead of generating one
  --files N             files of the details image [100000]
  --dirs N              its directories            [1000]
  --conns N             connections for latencies  [32]
  --seconds S           each latency run           [5]
  --search-images N     images for search          [1000]
  --download-size SIZE  the Download image's layer [256MiB]
  --download-count N    GETs of each kind          [4]
  --tmp DIR             where generated layers go  [$TMPDIR or /tmp]";

/// `println!` that ignores a closed stdout.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

const ORG: &str = "bench";
const REGISTRY: &str = "pkg";
/// How long any one wait for the indexer may take before the run gives up.
const INDEX_LIMIT: Duration = Duration::from_secs(900);

struct Args {
    figures: Vec<String>,
    berth: PathBuf,
    push_rounds: usize,
    push_images: usize,
    push_files: usize,
    push_conns: usize,
    index_size: u64,
    index_layer: Option<PathBuf>,
    files: usize,
    dirs: usize,
    conns: usize,
    seconds: f64,
    search_images: usize,
    download_size: u64,
    download_count: usize,
    tmp: PathBuf,
}

const FIGURES: [&str; 5] = ["push", "index", "details", "search", "download"];

fn parse_args(argv: Vec<String>) -> Result<Args, String> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("berth")))
        .unwrap_or_else(|| PathBuf::from("target/release/berth"));
    let mut a = Args {
        figures: Vec::new(),
        berth: beside,
        push_rounds: 4,
        push_images: 64,
        push_files: 4000,
        push_conns: 2,
        index_size: 1 << 30,
        index_layer: None,
        files: 100_000,
        dirs: 1000,
        conns: 32,
        seconds: 5.0,
        search_images: 1000,
        download_size: 256 << 20,
        download_count: 4,
        tmp: std::env::temp_dir(),
    };
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Err(String::new());
        }
        if !arg.starts_with("--") {
            if !FIGURES.contains(&arg.as_str()) {
                return Err(format!(
                    "unknown figure {arg:?}: choose from {}",
                    FIGURES.join(", ")
                ));
            }
            a.figures.push(arg);
            continue;
        }
        let val = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let num = |lo: usize, hi: usize| -> Result<usize, String> {
            val.parse::<usize>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| format!("{arg} {val:?}: expected a whole number from {lo} to {hi}"))
        };
        match arg.as_str() {
            "--berth" => a.berth = val.into(),
            "--push-rounds" => a.push_rounds = num(1, 100)?,
            "--push-images" => a.push_images = num(1, 1000)?,
            "--push-files" => a.push_files = num(1, 1_000_000)?,
            "--push-conns" => a.push_conns = num(1, 64)?,
            "--index-size" => a.index_size = size_in(&val, 1 << 20, 16 << 30)?,
            "--index-layer" => a.index_layer = Some(val.into()),
            "--files" => a.files = num(1, 10_000_000)?,
            "--dirs" => a.dirs = num(1, 100_000)?,
            "--conns" => a.conns = num(1, 256)?,
            "--seconds" => {
                a.seconds = val
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s > 0.0 && *s <= 600.0)
                    .ok_or_else(|| {
                        format!("--seconds {val:?}: expected a number of seconds up to 600")
                    })?
            }
            "--search-images" => a.search_images = num(1, 100_000)?,
            "--download-size" => a.download_size = size_in(&val, 1 << 20, 16 << 30)?,
            "--download-count" => a.download_count = num(1, 100)?,
            "--tmp" => a.tmp = val.into(),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if a.figures.is_empty() {
        a.figures = FIGURES.iter().map(|f| f.to_string()).collect();
    }
    if !a.berth.is_file() {
        return Err(format!(
            "no berth binary at {} (cargo build --release -p berth-server, or --berth PATH)",
            a.berth.display()
        ));
    }
    Ok(a)
}

fn size_in(v: &str, lo: u64, hi: u64) -> Result<u64, String> {
    let n = parse_size(v)?;
    if !(lo..=hi).contains(&n) {
        return Err(format!(
            "size {v:?}: expected {} to {}",
            fmt_size(lo),
            fmt_size(hi)
        ));
    }
    Ok(n)
}

/// A provisioned server and the credentials the bench presents to it.
struct Side {
    srv: Berth,
    extra: Extra,
}

impl Side {
    fn start(a: &Args, env: &[(&str, &str)]) -> Result<Side, String> {
        let mut srv = Berth::start(&a.berth, env)?;
        srv.provision(ORG, REGISTRY)?;
        let mut extra = Extra::default();
        extra.add_basic_token(&srv.secret)?;
        Ok(Side { srv, extra })
    }

    fn conn(&self) -> Result<HttpConn, String> {
        berth_benches::client::connect(&self.srv.target)
            .map_err(|e| format!("connect to {}: {e}", self.srv.url))
    }

    fn get(&self, c: &mut HttpConn, path: &str, auth: bool) -> Result<Response, String> {
        let h: Vec<(&str, &str)> = if auth {
            self.extra
                .0
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect()
        } else {
            Vec::new()
        };
        c.request("GET", path, &h, &[], Sink::Keep)
            .map_err(|e| format!("GET {path}: {e}"))
    }

    /// The version's details once the indexer has recorded it; polled every `every`.
    fn indexed(
        &self,
        c: &mut HttpConn,
        repo: &str,
        tag: &str,
        every: Duration,
    ) -> Result<Value, String> {
        let path = format!("/api/v1/packages/{repo}:{tag}");
        let t = Instant::now();
        loop {
            let r = self.get(c, &path, true)?;
            if r.status != 200 {
                return Err(format!("GET {path}: status {}", r.status));
            }
            let v: Value =
                serde_json::from_slice(&r.body).map_err(|e| format!("GET {path}: {e}"))?;
            if v["state"] != "indexing" {
                return Ok(v);
            }
            if t.elapsed() > INDEX_LIMIT {
                return Err(format!("{repo}:{tag} still indexing after {INDEX_LIMIT:?}"));
            }
            std::thread::sleep(every);
        }
    }

    fn is_indexed(&self, c: &mut HttpConn, repo: &str, tag: &str) -> Result<bool, String> {
        let r = self.get(c, &format!("/api/v1/packages/{repo}:{tag}"), true)?;
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        Ok(r.status == 200 && v["state"] != "indexing")
    }
}

/// An image ready to push: its layers and its config and manifest.
struct Image {
    repo: String,
    tag: String,
    layers: Vec<Layer>,
    meta: ImageMeta,
}

impl Image {
    fn new(image: &str, tag: &str, layers: Vec<Layer>) -> Image {
        let named: Vec<(&str, u64)> = layers
            .iter()
            .map(|l| (l.digest.as_str(), l.bytes.len() as u64))
            .collect();
        Image {
            repo: format!("{ORG}/{REGISTRY}/{image}"),
            tag: tag.to_owned(),
            meta: ImageMeta::new(image, &named),
            layers,
        }
    }

    fn bytes(&self) -> u64 {
        self.layers
            .iter()
            .map(|l| l.bytes.len() as u64)
            .sum::<u64>()
            + (self.meta.config.len() + self.meta.manifest.len()) as u64
    }

    fn push(&self, c: &mut HttpConn, extra: &Extra) -> Result<(), OpError> {
        for l in &self.layers {
            registry::push_blob(c, extra, &self.repo, &l.digest, &[&l.bytes])?;
        }
        self.meta.push(c, extra, &self.repo, &self.tag)
    }
}

/// Pushes `images` over `conns` connections, all starting together; the wall time.
fn push_all(side: &Side, images: &[&Image], conns: usize) -> Result<Duration, String> {
    let mut cs = (0..conns)
        .map(|_| side.conn())
        .collect::<Result<Vec<_>, _>>()?;
    let next = AtomicUsize::new(0);
    let start = Barrier::new(conns + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = cs
            .iter_mut()
            .map(|c| {
                let (next, start) = (&next, &start);
                s.spawn(move || -> Result<(), String> {
                    start.wait();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(img) = images.get(i) else {
                            return Ok(());
                        };
                        img.push(c, &side.extra)
                            .map_err(|e| format!("push {}:{}: {e}", img.repo, img.tag))?;
                    }
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        let mut first = Ok(());
        for h in handles {
            let r = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            if first.is_ok() {
                first = r;
            }
        }
        first.map(|()| t0.elapsed())
    })
}

/// Builds `n` items on every core, in order.
fn par_map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(n.max(1));
    let next = AtomicUsize::new(0);
    let mut parts: Vec<(usize, T)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut v = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return v;
                        }
                        v.push((i, f(i)));
                    }
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    parts.sort_by_key(|(i, _)| *i);
    parts.into_iter().map(|(_, t)| t).collect()
}

fn emit(human: String, j: Value) {
    out!("{human}");
    out!("{j}");
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ---- 1. push with the indexer running vs without -----------------------------------------

fn push_figure(a: &Args) -> Result<(), String> {
    eprintln!(
        "push: generating {} images of one gzip layer of {} files each (untimed)...",
        a.push_rounds * a.push_images,
        a.push_files
    );
    let per_dir = 100.min(a.push_files);
    let images: Vec<Image> = par_map(a.push_rounds * a.push_images, |i| {
        let spec = TreeSpec {
            root: format!("usr/lib/bench-{i}"),
            dirs: a.push_files.div_ceil(per_dir),
            files_per_dir: per_dir,
            min_file: 256,
            max_file: 4096,
            content: Content::Text,
            // Fast to generate; the indexer's inflate costs about the same at any level.
            level: 1,
            seed: 0x5eed_0000 + i as u64,
            stop_at: None,
        };
        let round = i / a.push_images;
        Image::new(
            &format!("push-{}", i % a.push_images),
            &format!("r{round}"),
            vec![Layer::tree(&spec)],
        )
    });
    let round_bytes = |r: usize| -> u64 {
        images[r * a.push_images..(r + 1) * a.push_images]
            .iter()
            .map(Image::bytes)
            .sum()
    };
    let gz: u64 = images.iter().map(Image::bytes).sum();
    let tar: u64 = images
        .iter()
        .flat_map(|i| &i.layers)
        .map(|l| l.written.tar_bytes)
        .sum();
    eprintln!(
        "push: {} of images ({} of tar); starting two servers, one with index_packages=false",
        fmt_size(gz),
        fmt_size(tar)
    );
    let on = Side::start(a, &[])?;
    let off = Side::start(a, &[("BERTH_INDEX_PACKAGES", "false")])?;
    let mut probe = on.conn()?;
    let (mut t_on, mut t_off) = (Duration::ZERO, Duration::ZERO);
    let mut ratios = Vec::new();
    let mut indexed_during = 0usize;
    for r in 0..a.push_rounds {
        let batch: Vec<&Image> = images[r * a.push_images..(r + 1) * a.push_images]
            .iter()
            .collect();
        let order: [(&Side, bool); 2] = if r % 2 == 0 {
            [(&on, true), (&off, false)]
        } else {
            [(&off, false), (&on, true)]
        };
        let (mut ron, mut roff) = (Duration::ZERO, Duration::ZERO);
        for (side, indexing) in order {
            let t = push_all(side, &batch, a.push_conns)?;
            if indexing {
                ron = t;
                // How far the indexer got while the pushes ran; then let it finish, so its
                // work never overlaps the other server's round.
                for img in &batch {
                    if on.is_indexed(&mut probe, &img.repo, &img.tag)? {
                        indexed_during += 1;
                    }
                }
                for img in &batch {
                    on.indexed(&mut probe, &img.repo, &img.tag, Duration::from_millis(20))?;
                }
            } else {
                roff = t;
            }
        }
        let mb = round_bytes(r) as f64 / 1e6;
        eprintln!(
            "push round {r}: indexing {:.1} MB/s in {:.2} s, not indexing {:.1} MB/s in {:.2} s ({:.3})",
            mb / ron.as_secs_f64(),
            ron.as_secs_f64(),
            mb / roff.as_secs_f64(),
            roff.as_secs_f64(),
            roff.as_secs_f64() / ron.as_secs_f64()
        );
        ratios.push(round3(roff.as_secs_f64() / ron.as_secs_f64()));
        t_on += ron;
        t_off += roff;
    }
    let n = images.len();
    let mbps = |t: Duration| gz as f64 / 1e6 / t.as_secs_f64();
    let ratio = mbps(t_on) / mbps(t_off);
    // Whichever server pushes first in a round has been faster here, by up to 1.5x: the
    // geometric mean of the rounds each server led shows that apart from the indexer.
    let led = |first: usize| -> Option<f64> {
        let rs: Vec<f64> = ratios.iter().skip(first).step_by(2).copied().collect();
        (!rs.is_empty())
            .then(|| rs.iter().map(|r| r.ln()).sum::<f64>() / rs.len() as f64)
            .map(f64::exp)
    };
    let (on_first, off_first) = (led(0), led(1));
    emit(
        format!(
            "push with the indexer vs without: {n} images ({}, {} files each) over {} conn(s) in {} alternating rounds: indexing {:.1} MB/s ({:.1} images/s), not indexing {:.1} MB/s ({:.1} images/s), ratio {ratio:.3} (goal >= 0.95; {:.3} in the rounds the indexing server went first, {:.3} in the others); {indexed_during} of {n} indexed before their round's pushes ended",
            fmt_size(gz),
            a.push_files,
            a.push_conns,
            a.push_rounds,
            mbps(t_on),
            n as f64 / t_on.as_secs_f64(),
            mbps(t_off),
            n as f64 / t_off.as_secs_f64(),
            on_first.unwrap_or(f64::NAN),
            off_first.unwrap_or(f64::NAN),
        ),
        json!({
            "figure": "push_indexer_on_vs_off",
            "images": n, "bytes": gz, "tar_bytes": tar, "files_per_image": a.push_files,
            "conns": a.push_conns, "rounds": a.push_rounds,
            "on_mb_per_s": (mbps(t_on) * 10.0).round() / 10.0,
            "off_mb_per_s": (mbps(t_off) * 10.0).round() / 10.0,
            "on_seconds": round3(t_on.as_secs_f64()),
            "off_seconds": round3(t_off.as_secs_f64()),
            "ratio": round3(ratio),
            "round_ratios": ratios,
            "ratio_indexing_first": on_first.map(round3),
            "ratio_indexing_second": off_first.map(round3),
            "indexed_during_pushes": indexed_during,
        }),
    );
    Ok(())
}

// ---- 2. indexing a 1 GiB gzip image ------------------------------------------------------

fn index_figure(a: &Args, on: &Side) -> Result<(), String> {
    let (path, generated, entries) = match &a.index_layer {
        Some(p) => (p.clone(), false, None),
        None => {
            let p = a
                .tmp
                .join(format!("berth-package-bench-{}.tar.gz", std::process::id()));
            eprintln!(
                "index: writing a {} gzip layer to {} (untimed)...",
                fmt_size(a.index_size),
                p.display()
            );
            let f = std::fs::File::create(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let spec = TreeSpec {
                root: "usr/lib/big".into(),
                dirs: 1_000_000,
                files_per_dir: 100,
                min_file: 512,
                max_file: 64 << 10,
                content: Content::Text,
                level: 1,
                seed: 0xb16,
                stop_at: Some(a.index_size),
            };
            let w = std::io::BufWriter::with_capacity(1 << 20, f);
            let (w, written) = write_tree(&spec, w).map_err(|e| format!("{}: {e}", p.display()))?;
            w.into_inner()
                .map_err(|e| format!("{}: {e}", p.display()))?
                .sync_all()
                .map_err(|e| format!("{}: {e}", p.display()))?;
            (p, true, Some(written))
        }
    };
    let result = index_layer_file(on, &path, entries);
    if generated {
        let _ = std::fs::remove_file(&path);
    }
    result
}

fn index_layer_file(
    on: &Side,
    path: &Path,
    written: Option<berth_benches::layers::Written>,
) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let digest = sha256_digest(&bytes);
    let size = bytes.len() as u64;
    let img = ImageMeta::new("big", &[(&digest, size)]);
    let repo = format!("{ORG}/{REGISTRY}/big");
    let mut c = on.conn()?;
    eprintln!("index: pushing the {} layer (untimed)...", fmt_size(size));
    registry::push_blob(&mut c, &on.extra, &repo, &digest, &[&bytes]).map_err(|e| e.to_string())?;
    drop(bytes);
    img.push(&mut c, &on.extra, &repo, "1")
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    let v = on.indexed(&mut c, &repo, "1", Duration::from_millis(20))?;
    let index_time = t.elapsed();
    if v["state"] != "indexed" {
        return Err(format!(
            "the 1 GiB image ended {}, not indexed: {v}",
            v["state"]
        ));
    }
    let total_files = v["total_files"].as_u64().unwrap_or(0);
    if let Some(w) = written {
        if total_files != w.entries {
            return Err(format!(
                "the index counts {total_files} files, the layer has {}",
                w.entries
            ));
        }
    }
    eprintln!("index: `gzip -dc | tar -t` and scan_layer on the same file...");
    let t = Instant::now();
    let ok = Command::new("sh")
        .args([
            "-c",
            "gzip -dc \"$0\" | tar -t >/dev/null",
            &path.to_string_lossy(),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let tools = t.elapsed();
    if !ok {
        return Err(format!("`gzip -dc | tar -t` failed on {}", path.display()));
    }
    let t = Instant::now();
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let l = scan_layer(f, &[b"etc/os-release"], &ScanLimits::default());
    let scan = t.elapsed();
    if !l.complete() {
        return Err(format!("scan_layer: listing incomplete: {:?}", l.error));
    }
    let mbs = |d: Duration| size as f64 / 1e6 / d.as_secs_f64();
    emit(
        format!(
            "index a {} gzip layer ({} of tar, {total_files} files): 201 to indexed {:.2} s ({:.1} MB/s), gzip -dc | tar -t {:.2} s ({:.1} MB/s), ratio {:.2} (goal >= 1); the lister alone (scan_layer, as berth-layer-scan) {:.2} s ({:.1} MB/s)",
            fmt_size(size),
            fmt_size(l.uncompressed_bytes),
            index_time.as_secs_f64(),
            mbs(index_time),
            tools.as_secs_f64(),
            mbs(tools),
            tools.as_secs_f64() / index_time.as_secs_f64(),
            scan.as_secs_f64(),
            mbs(scan),
        ),
        json!({
            "figure": "index_gzip_layer",
            "layer_bytes": size, "tar_bytes": l.uncompressed_bytes, "total_files": total_files,
            "index_seconds": round3(index_time.as_secs_f64()),
            "gzip_tar_seconds": round3(tools.as_secs_f64()),
            "scan_layer_seconds": round3(scan.as_secs_f64()),
            "ratio": round3(tools.as_secs_f64() / index_time.as_secs_f64()),
        }),
    );
    Ok(())
}

// ---- 3. details and contents of an image with 100,000 files ------------------------------

fn details_figure(a: &Args, on: &Side) -> Result<(), String> {
    let per_dir = a.files.div_ceil(a.dirs);
    eprintln!(
        "details: an image of {} files in {} directories (untimed)...",
        per_dir * a.dirs,
        a.dirs
    );
    let spec = TreeSpec {
        root: "opt/app".into(),
        dirs: a.dirs,
        files_per_dir: per_dir,
        min_file: 16,
        max_file: 256,
        content: Content::Text,
        level: 6,
        seed: 0xd1,
        stop_at: None,
    };
    let img = Image::new("tree", "1", vec![Layer::tree(&spec)]);
    let mut c = on.conn()?;
    img.push(&mut c, &on.extra).map_err(|e| e.to_string())?;
    let t = Instant::now();
    let v = on.indexed(&mut c, &img.repo, &img.tag, Duration::from_millis(20))?;
    eprintln!(
        "details: indexed in {:.2} s: {} files",
        t.elapsed().as_secs_f64(),
        v["total_files"]
    );
    let dir = format!("/opt/app/d{:04}", a.dirs / 2);
    let api = format!("/api/v1/packages/{}:{}", img.repo, img.tag);
    let files = format!("{api}/files?path={dir}");
    let r = on.get(&mut c, &files, true)?;
    let listed = serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["entries"].as_array().map(Vec::len));
    if r.status != 200 || listed != Some(per_dir) {
        return Err(format!(
            "GET {files}: status {}, {listed:?} entries, want {per_dir}",
            r.status
        ));
    }
    let page = format!("/{}:{}", img.repo, img.tag);
    let contents = format!("{page}?tab=contents&path={dir}");
    let mut runs = vec![
        ("details JSON", api, true),
        ("Contents directory JSON", files, true),
    ];
    for (name, p) in [("version page HTML", page), ("Contents tab HTML", contents)] {
        let s = on.get(&mut c, &p, false)?.status;
        if s == 200 {
            runs.push((name, p, false));
        } else {
            emit(
                format!("{name}: GET {p} answers {s} on this server: not measured"),
                json!({ "figure": "details_latency", "what": name, "path": p, "status": s, "measured": false }),
            );
        }
    }
    let none = Extra::default();
    for (name, p, auth) in runs {
        let h = hammer(
            &on.srv.target,
            if auth { &on.extra } else { &none },
            &p,
            a.conns,
            a.seconds,
        )?;
        let mut j = h.json("details_latency");
        j["what"] = json!(name);
        j["files"] = json!(per_dir * a.dirs);
        emit(
            format!("{} ({} files): {}", name, per_dir * a.dirs, h.human(&p)),
            j,
        );
    }
    Ok(())
}

// ---- 4. search by path over 1,000 indexed images -----------------------------------------

fn search_figure(a: &Args, on: &Side) -> Result<(), String> {
    let base = Layer::files(&[
        ("usr/lib/libssl.so.3", b"\x7fELF libssl".as_slice()),
        ("usr/lib/libcrypto.so.3", b"\x7fELF libcrypto".as_slice()),
        (
            "etc/os-release",
            b"NAME=\"Bench\"\nVERSION_ID=\"1\"\n".as_slice(),
        ),
    ]);
    eprintln!(
        "search: pushing {} images sharing a base layer (untimed)...",
        a.search_images
    );
    let images: Vec<Image> = (0..a.search_images)
        .map(|n| {
            let body = format!("#!/bin/sh\necho tool {n}\n");
            let own = Layer::files(&[(&format!("usr/bin/tool-{n}"), body.as_bytes())]);
            let shared = Layer {
                bytes: base.bytes.clone(),
                digest: base.digest.clone(),
                written: base.written,
            };
            Image::new(&format!("s{n:04}"), "1", vec![shared, own])
        })
        .collect();
    let refs: Vec<&Image> = images.iter().collect();
    let t = push_all(on, &refs, 4)?;
    eprintln!(
        "search: pushed in {:.1} s; waiting for the indexer...",
        t.as_secs_f64()
    );
    let t = Instant::now();
    let mut c = on.conn()?;
    for img in &images {
        on.indexed(&mut c, &img.repo, &img.tag, Duration::from_millis(50))?;
    }
    eprintln!(
        "search: {} images indexed {:.1} s after the last push",
        images.len(),
        t.elapsed().as_secs_f64()
    );
    let mid = a.search_images / 2;
    for (what, q, want) in [
        (
            "a file name in every image",
            "libssl.so.3".to_string(),
            50.min(a.search_images),
        ),
        ("one whole path", format!("/usr/bin/tool-{mid}"), 1),
    ] {
        let p = format!("/api/v1/search?org={ORG}&path={q}");
        let r = on.get(&mut c, &p, true)?;
        let hits = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v["results"].as_array().map(Vec::len));
        if r.status != 200 || hits != Some(want) {
            return Err(format!(
                "GET {p}: status {}, {hits:?} results, want {want}",
                r.status
            ));
        }
        let h = hammer(&on.srv.target, &on.extra, &p, a.conns, a.seconds)?;
        let mut j = h.json("search_latency");
        j["what"] = json!(what);
        j["images"] = json!(a.search_images);
        j["results"] = json!(want);
        emit(
            format!(
                "search by path, {what} ({want} results of {} images): {}",
                a.search_images,
                h.human(&p)
            ),
            j,
        );
    }
    Ok(())
}

// ---- 5. Download vs blob GET -------------------------------------------------------------

/// GETs `path` `count` times on one connection: MB/s, bytes per GET, and the server's peak
/// RSS while they ran (VmHWM after a reset, and the highest VmRSS sampled every 20 ms).
fn timed_gets(
    on: &Side,
    path: &str,
    count: usize,
    want_len: Option<u64>,
) -> Result<(f64, u64, u64, u64), String> {
    let mut c = on.conn()?;
    let reset = on.srv.reset_peak_rss();
    let pid = on.srv.pid();
    let peak = AtomicU64::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    let (t, len) = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if let Some(k) = proc_status_kib(pid, "VmRSS") {
                    peak.fetch_max(k, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let h: Vec<(&str, &str)> = on
            .extra
            .0
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let t0 = Instant::now();
        let mut len = 0;
        let mut r = Ok(());
        for _ in 0..count {
            match c.request("GET", path, &h, &[], Sink::Discard) {
                Ok(resp) if resp.status == 200 && want_len.is_none_or(|w| w == resp.body_len) => {
                    len = resp.body_len
                }
                Ok(resp) => {
                    r = Err(format!(
                        "GET {path}: status {}, {} bytes",
                        resp.status, resp.body_len
                    ));
                    break;
                }
                Err(e) => {
                    r = Err(format!("GET {path}: {e}"));
                    break;
                }
            }
        }
        let t = t0.elapsed();
        done.store(true, Ordering::Relaxed);
        r.map(|()| (t, len))
    })?;
    let hwm = if reset {
        on.srv.status_kib("VmHWM").unwrap_or(0)
    } else {
        0
    };
    let mbps = (len * count as u64) as f64 / 1e6 / t.as_secs_f64();
    Ok((mbps, len, hwm, peak.load(Ordering::Relaxed)))
}

fn download_figure(a: &Args, on: &Side) -> Result<(), String> {
    const FILE: usize = 4 << 20;
    let files = (a.download_size as usize).div_ceil(FILE);
    eprintln!(
        "download: an image of one {} layer (untimed)...",
        fmt_size((files * FILE) as u64)
    );
    let spec = TreeSpec {
        root: "srv/data".into(),
        dirs: 1,
        files_per_dir: files,
        min_file: FILE,
        max_file: FILE,
        content: Content::Random,
        level: 0,
        seed: 0xd0,
        stop_at: None,
    };
    let img = Image::new("dl", "1", vec![Layer::tree(&spec)]);
    let layer_len = img.layers[0].bytes.len() as u64;
    let blob = format!("/v2/{}/blobs/{}", img.repo, img.layers[0].digest);
    let mut c = on.conn()?;
    img.push(&mut c, &on.extra).map_err(|e| e.to_string())?;
    let v = on.indexed(&mut c, &img.repo, &img.tag, Duration::from_millis(50))?;
    drop(img);
    let base_rss = on.srv.status_kib("VmRSS").unwrap_or(0);
    let (b_mbps, _, b_hwm, b_peak) = timed_gets(on, &blob, a.download_count, Some(layer_len))?;
    let mib = |k: u64| k as f64 / 1024.0;
    emit(
        format!(
            "blob GET of the {} layer x {}: {b_mbps:.1} MB/s; server RSS {:.1} MiB before, peak {:.1} MiB (VmHWM since reset), {:.1} MiB (sampled VmRSS)",
            fmt_size(layer_len), a.download_count, mib(base_rss), mib(b_hwm), mib(b_peak)
        ),
        json!({ "figure": "download_vs_blob", "what": "blob GET", "bytes": layer_len, "count": a.download_count,
                "mb_per_s": (b_mbps * 10.0).round() / 10.0, "rss_before_kib": base_rss,
                "peak_hwm_kib": b_hwm, "peak_rss_sampled_kib": b_peak }),
    );
    let dl = format!("/api/v1/packages/{ORG}/{REGISTRY}/dl:1/download");
    // A HEAD: whether the route exists; the timed GETs read the whole Download.
    let h: Vec<(&str, &str)> = on
        .extra
        .0
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let status = c
        .request("HEAD", &dl, &h, &[], Sink::Discard)
        .map_err(|e| format!("HEAD {dl}: {e}"))?
        .status;
    if status != 200 {
        emit(
            format!("Download: GET {dl} answers {status} on this server: not measured"),
            json!({ "figure": "download_vs_blob", "what": "Download", "path": dl, "status": status, "measured": false }),
        );
        return Ok(());
    }
    let (d_mbps, d_len, d_hwm, d_peak) = timed_gets(on, &dl, a.download_count, None)?;
    emit(
        format!(
            "Download of the same image x {} ({}): {d_mbps:.1} MB/s, {:.2} of the blob GET (goal >= 0.80); server peak RSS {:.1} MiB (VmHWM since reset), {:.1} MiB (sampled VmRSS)",
            a.download_count, fmt_size(d_len), d_mbps / b_mbps, mib(d_hwm), mib(d_peak)
        ),
        json!({ "figure": "download_vs_blob", "what": "Download", "bytes": d_len, "count": a.download_count,
                "mb_per_s": (d_mbps * 10.0).round() / 10.0, "ratio_to_blob_get": round3(d_mbps / b_mbps),
                "checksums": v["checksums"].is_object(),
                "peak_hwm_kib": d_hwm, "peak_rss_sampled_kib": d_peak }),
    );
    Ok(())
}

fn run(a: &Args) -> Result<(), String> {
    let started = Instant::now();
    out!(
        "berth-package-bench: {} cores, load average {}, {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split(' ')
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        a.berth.display()
    );
    if a.figures.iter().any(|f| f == "push") {
        push_figure(a)?;
    }
    let rest: Vec<&String> = a.figures.iter().filter(|f| *f != "push").collect();
    if !rest.is_empty() {
        let on = Side::start(a, &[])?;
        for f in rest {
            match f.as_str() {
                "index" => index_figure(a, &on)?,
                "details" => details_figure(a, &on)?,
                "search" => search_figure(a, &on)?,
                "download" => download_figure(a, &on)?,
                _ => {}
            }
        }
    }
    eprintln!(
        "berth-package-bench: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> ExitCode {
    let a = match parse_args(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            out!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("berth-package-bench: {e} (see --help)");
            return ExitCode::from(2);
        }
    };
    match run(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-package-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
