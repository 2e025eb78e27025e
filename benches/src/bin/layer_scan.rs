//! Lists a layer blob with the indexer's lister and, in the same run, with
//! `gzip -dc | tar -t` (or `zstd -dc`, or plain `tar -t`), and prints both rates and their
//! ratio. What the package index costs per layer, against the tools people would use.
//!
//!   berth-layer-scan LAYER [ROUNDS]

use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use berth_engine::package::{scan_layer, Compression, ScanLimits};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: berth-layer-scan LAYER [ROUNDS]");
        return ExitCode::from(2);
    };
    let rounds: u32 = args.next().and_then(|r| r.parse().ok()).unwrap_or(3);
    let Ok(mut f) = std::fs::File::open(&path) else {
        eprintln!("berth-layer-scan: cannot read {path}");
        return ExitCode::from(2);
    };
    let mut magic = [0u8; 4];
    let _ = std::io::Read::read(&mut f, &mut magic);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let decompress = match Compression::sniff(&magic) {
        Compression::Gzip => "gzip -dc",
        Compression::Zstd => "zstd -dc",
        Compression::None => "cat",
    };
    let shell = format!("{decompress} \"$0\" | tar -t >/dev/null");
    let mut best_tools = Duration::MAX;
    let mut best_berth = Duration::MAX;
    let mut entries = 0;
    let mut bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let ok = Command::new("sh")
            .args(["-c", &shell, &path])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("berth-layer-scan: `{decompress} | tar -t` failed on {path}");
            return ExitCode::FAILURE;
        }
        best_tools = best_tools.min(t.elapsed());
        let t = Instant::now();
        let Ok(f) = std::fs::File::open(&path) else {
            return ExitCode::FAILURE;
        };
        let l = scan_layer(f, &[b"etc/os-release"], &ScanLimits::default());
        best_berth = best_berth.min(t.elapsed());
        if !l.complete() {
            eprintln!("berth-layer-scan: listing incomplete: {:?}", l.error);
            return ExitCode::FAILURE;
        }
        entries = l.changes.len();
        bytes = l.uncompressed_bytes;
    }
    let mbs = |d: Duration| size as f64 / d.as_secs_f64() / 1e6;
    println!(
        "layer {path}: {size} bytes ({bytes} uncompressed), {entries} entries; best of {rounds}"
    );
    println!(
        "{decompress} | tar -t  {:>8.2} s  {:>8.1} MB/s",
        best_tools.as_secs_f64(),
        mbs(best_tools)
    );
    println!(
        "berth scan_layer       {:>8.2} s  {:>8.1} MB/s  ({:.2}x)",
        best_berth.as_secs_f64(),
        mbs(best_berth),
        best_tools.as_secs_f64() / best_berth.as_secs_f64()
    );
    ExitCode::SUCCESS
}
