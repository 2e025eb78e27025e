//! Structured logs through `tracing`. Event-loop threads batch their lines in a
//! thread-local buffer flushed before each poll, so an access line costs no syscall of its
//! own; every other thread writes each line at once. Lines never carry header values.

use crate::config::LogFormat;
use berth_core::RequestRecord;
use std::cell::RefCell;
use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;
use std::time::SystemTime;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Bytes a batching thread holds before writing anyway.
const BATCH_BYTES: usize = 64 * 1024;

/// The format chosen at `init`, for the access lines written without `tracing`'s formatter.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

thread_local! {
    /// (batching, pending bytes)
    static PENDING: RefCell<(bool, Vec<u8>)> = const { RefCell::new((false, Vec::new())) };
}

/// Installs the global subscriber. Level from `BERTH_LOG` (e.g. `debug`, `berth=trace`),
/// default `info`.
pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
    let filter = EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_target(true);
    // try_init fails only if a subscriber is already set (tests); that one stays.
    let _ = match format {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().flatten_event(true).try_init(),
    };
}

/// Makes this thread batch its log lines until `flush()`.
pub fn batch_this_thread() {
    PENDING.with(|p| p.borrow_mut().0 = true);
}

/// Writes this thread's pending lines.
pub fn flush() {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if !p.1.is_empty() {
            let _ = io::stderr().lock().write_all(&p.1);
            p.1.clear();
        }
    });
}

/// One line per finished request: method, path, route, status, bytes and duration.
pub fn access(rec: &RequestRecord, took: std::time::Duration) {
    // The access line is the one written per request: formatted here directly into the
    // batch rather than through tracing's field visitors, which cost about a tenth of a
    // manifest GET. It still obeys the `BERTH_LOG` filter and looks like every other line.
    if !tracing::enabled!(target: "berth::access", tracing::Level::INFO) {
        return;
    }
    let micros = took.as_micros();
    // A log line's timestamp is a wall-clock reading by nature, as in tracing's own lines.
    #[allow(clippy::disallowed_methods)]
    let now = crate::rfc3339::micros(SystemTime::now());
    let mut line = Vec::with_capacity(192);
    let _ = match FORMAT.get() {
        Some(LogFormat::Json) => {
            let _ = write!(
                line,
                r#"{{"timestamp":"{now}","level":"INFO","target":"berth::access","method":"#
            );
            let _ = serde_json::to_writer(&mut line, &rec.method);
            line.extend_from_slice(b",\"path\":");
            let _ = serde_json::to_writer(&mut line, &rec.path);
            writeln!(
                line,
                r#","route":"{}","status":{},"bytes_in":{},"bytes_out":{},"micros":{micros}}}"#,
                rec.route, rec.status, rec.bytes_in, rec.bytes_out
            )
        }
        _ => writeln!(
            line,
            "{now}  INFO berth::access: method={} path={} route={} status={} bytes_in={} bytes_out={} micros={micros}",
            rec.method, rec.path, rec.route, rec.status, rec.bytes_in, rec.bytes_out
        ),
    };
    let _ = LineWriter.write(&line);
}

struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter
    }
}

struct LineWriter;

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            if p.0 {
                p.1.extend_from_slice(buf);
                if p.1.len() >= BATCH_BYTES {
                    let _ = io::stderr().lock().write_all(&p.1);
                    p.1.clear();
                }
                Ok(buf.len())
            } else {
                io::stderr().lock().write_all(buf).map(|()| buf.len())
            }
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
