//! The real `berth` binary for a bench: started on a free loopback port (`127.0.0.1:0`, the
//! address read back from its first line) over a temporary data folder, provisioned with
//! the `berth` CLI as `scripts/bench-compare.sh` does (admin token from `DATA/admin-token`,
//! an organisation, a public registry, a `read_packages,write_packages` token whose secret
//! stays out of every command line), and stopped with SIGTERM when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::target::Target;

pub struct Berth {
    child: Child,
    bin: PathBuf,
    pub target: Target,
    pub url: String,
    pub data: tempfile::TempDir,
    /// The read+write token's secret.
    pub secret: String,
}

impl Berth {
    /// Starts `bin serve` with `env` added (e.g. `BERTH_INDEX_PACKAGES=false`), in a session
    /// of its own (`setsid`, as bench-compare.sh does: with autogroup scheduling the CPU is
    /// shared fairly between the bench's threads and the server), its log in `DATA.log`.
    pub fn start(bin: &Path, env: &[(&str, &str)]) -> Result<Berth, String> {
        let data = tempfile::Builder::new()
            .prefix("berth-package-bench.")
            .tempdir()
            .map_err(|e| format!("cannot make a temporary data folder: {e}"))?;
        let log = std::fs::File::create(data.path().with_extension("log"))
            .map_err(|e| format!("cannot create the server log: {e}"))?;
        let mut cmd = if Path::new("/usr/bin/setsid").exists() {
            let mut c = Command::new("/usr/bin/setsid");
            c.arg(bin);
            c
        } else {
            Command::new(bin)
        };
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path().join("d"))
            .env_remove("BERTH_CONFIG")
            .env_remove("BERTH_TOKEN")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut first = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let _ = out.read_line(&mut first);
        // The rest of stdout is drained so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let addr = first
            .strip_prefix("berth: listening on http://")
            .and_then(|r| r.split(',').next())
            .map(str::to_owned);
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{} did not start (first line {first:?}); log: {}",
                bin.display(),
                data.path().with_extension("log").display()
            ));
        };
        let url = format!("http://{addr}");
        let target = Target::parse(&url).map_err(|e| e.to_string())?;
        let b = Berth {
            child,
            bin: bin.to_path_buf(),
            target,
            url,
            data,
            secret: String::new(),
        };
        b.wait_for_admin_token()?;
        Ok(b)
    }

    fn data_dir(&self) -> PathBuf {
        self.data.path().join("d")
    }

    fn wait_for_admin_token(&self) -> Result<(), String> {
        let path = self.data_dir().join("admin-token");
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("berth wrote no {} within 10 s", path.display()))
    }

    /// `berth ARGS` as the admin, against this server; its stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.bin)
            .args(args)
            .env_remove("BERTH_TOKEN")
            .env("BERTH_SERVER", &self.url)
            .env("BERTH_DATA", self.data_dir())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run berth {}: {e}", args.join(" ")))?;
        if !out.status.success() {
            return Err(format!(
                "berth {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Organisation `org`, public registry `registry` (public so that the web pages can be
    /// read without a session), and a read+write token of the organisation.
    pub fn provision(&mut self, org: &str, registry: &str) -> Result<(), String> {
        self.cli(&["org", "create", org])?;
        self.cli(&["registry", "create", org, registry, "--public"])?;
        let out = self.cli(&[
            "token",
            "create",
            org,
            "--scopes",
            "read_packages,write_packages",
            "--description",
            "berth-package-bench",
        ])?;
        self.secret = out.lines().last().unwrap_or("").trim().to_owned();
        if self.secret.is_empty() {
            return Err("berth token create printed no secret".into());
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `kB` field of /proc/PID/status (`VmHWM`, `VmRSS`), in KiB.
    pub fn status_kib(&self, field: &str) -> Option<u64> {
        proc_status_kib(self.pid(), field)
    }

    /// Resets the peak RSS (`VmHWM`) to the current RSS (`echo 5 > /proc/PID/clear_refs`,
    /// Linux 4.0+), so a peak can be read for one load; false when the kernel refused.
    pub fn reset_peak_rss(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }

    /// The server's log so far, for an error message.
    pub fn log_path(&self) -> PathBuf {
        self.data.path().with_extension("log")
    }
}

/// A `kB` field of /proc/PID/status, in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

impl Drop for Berth {
    fn drop(&mut self) {
        // SIGTERM lets it flush and exit; a server that will not is killed after 20 s.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_file(self.log_path());
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
