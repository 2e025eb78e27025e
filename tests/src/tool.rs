//! Running external clients (skopeo, podman, docker, oras) with a deadline and loud failures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::wait;

/// Finds `name` on PATH, or fails the test saying how to install it. Never skips: a client
/// test that silently did nothing would report a green suite that tested nothing.
pub fn require_tool(name: &str) -> PathBuf {
    if let Some(p) = which(name) {
        return p;
    }
    let pkg = match name {
        "dockerd" | "docker" => "docker.io",
        "ctr" => "containerd",
        "chromedriver" => "chromium-driver",
        other => other,
    };
    panic!(
        "`{name}` is required by this test but is not on PATH. Install it with \
         `sudo scripts/install-test-deps.sh` (or `apt-get install {pkg}`)."
    );
}

/// `PATH` lookup.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A command with a deadline; its output is shown when it fails.
pub struct Cmd {
    cmd: Command,
    display: String,
    limit: Duration,
}

impl Cmd {
    /// A command for a required tool (fails loudly when it is missing).
    pub fn tool(name: &str) -> Cmd {
        let path = require_tool(name);
        Cmd::new(&path)
    }

    pub fn new(program: &Path) -> Cmd {
        Cmd {
            cmd: Command::new(program),
            display: program.display().to_string(),
            limit: Duration::from_secs(300),
        }
    }

    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Cmd {
        self.display.push(' ');
        self.display.push_str(&a.as_ref().to_string_lossy());
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Cmd {
        self.cmd.env(k, v);
        self
    }

    /// Runs it in `dir` (clients that only touch files under their working directory).
    pub fn current_dir(mut self, dir: &Path) -> Cmd {
        self.cmd.current_dir(dir);
        self
    }

    pub fn limit(mut self, d: Duration) -> Cmd {
        self.limit = d;
        self
    }

    /// Runs to completion (or kills it at the deadline) and returns what it did.
    pub fn output(mut self) -> (String, Output) {
        let dir = tempfile::tempdir().expect("temp dir for command output");
        let out_p = dir.path().join("out");
        let err_p = dir.path().join("err");
        let mut child = self
            .cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_p).expect("stdout file"))
            .stderr(std::fs::File::create(&err_p).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn `{}`: {e}", self.display));
        let status = match wait::child_exit(&mut child, self.limit) {
            Some(s) => s,
            None => {
                let _ = child.kill();
                let s = child.wait().expect("wait for killed child");
                let out = std::fs::read(&out_p).unwrap_or_default();
                let err = std::fs::read(&err_p).unwrap_or_default();
                panic!(
                    "`{}` did not finish within {:?}\nstdout:\n{}\nstderr:\n{}\n({s})",
                    self.display,
                    self.limit,
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&err)
                );
            }
        };
        let out = Output {
            status,
            stdout: std::fs::read(&out_p).unwrap_or_default(),
            stderr: std::fs::read(&err_p).unwrap_or_default(),
        };
        (self.display, out)
    }

    /// Runs and requires exit 0; returns stdout.
    #[track_caller]
    pub fn run(self) -> String {
        let (display, out) = self.output();
        assert!(
            out.status.success(),
            "`{display}` failed ({})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
