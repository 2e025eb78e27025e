//! Real OCI clients driven against a `Registry`: skopeo, podman (rootful, vfs, private
//! storage), a private dockerd and containerd's `ctr` on the containerd that dockerd starts,
//! and the Python ORAS client from a virtualenv.
//! Each owns its state (credentials included) under a scratch folder and is torn down on
//! drop, so client tests neither see nor leave anything on the machine.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::tool::{require_tool, Cmd};
use crate::wait;

/// skopeo with no system policy or registry config in play.
pub fn skopeo() -> Cmd {
    Cmd::tool("skopeo").arg("--insecure-policy")
}

/// `skopeo login` into `authfile` (user `berth`, the token as password): the containers/image
/// `CheckAuth` flow (spec digest §9.6). Returns the command's output; fails loudly.
pub fn skopeo_login(authfile: &Path, host: &str, token: &str) -> String {
    skopeo()
        .args(["login", "--tls-verify=false", "--authfile"])
        .arg(authfile)
        .args(["--username", "berth", "--password", token, host])
        .limit(Duration::from_secs(60))
        .run()
}

/// `skopeo copy` between two transports (`oci:…`, `docker://…`, `docker-archive:…`),
/// plain HTTP to the registry on either side.
pub fn skopeo_copy(src: &str, dst: &str, extra: &[&str]) -> String {
    skopeo()
        .arg("copy")
        .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
        .args(extra)
        .arg(src)
        .arg(dst)
        .limit(Duration::from_secs(180))
        .run()
}

/// podman with its own root, runroot and tmpdir: rootful, vfs, no systemd, no network.
/// Its store is plain files under the registry's scratch folder and goes with it.
pub struct Podman {
    root: PathBuf,
}

impl Podman {
    pub fn new(scratch: &Path) -> Podman {
        require_tool("podman");
        std::fs::create_dir_all(scratch.join("root")).expect("podman root");
        std::fs::create_dir_all(scratch.join("runroot")).expect("podman runroot");
        std::fs::create_dir_all(scratch.join("tmp")).expect("podman tmp");
        // podman refuses a REGISTRY_AUTH_FILE that does not exist: start with no credentials.
        std::fs::write(scratch.join("auth.json"), r#"{"auths":{}}"#).expect("podman auth file");
        Podman {
            root: scratch.to_path_buf(),
        }
    }

    /// `podman login` (user `berth`, the token as password) into this podman's own auth
    /// file; later pulls and pushes present it.
    pub fn login(&self, host: &str, token: &str) -> String {
        self.cmd()
            .args([
                "login",
                "--tls-verify=false",
                "--username",
                "berth",
                "--password",
            ])
            .arg(token)
            .arg(host)
            .run()
    }

    pub fn cmd(&self) -> Cmd {
        Cmd::tool("podman")
            .env("TMPDIR", self.root.join("tmp"))
            // Its own credentials, never the machine's (~/.config/containers, /run/...).
            .env("REGISTRY_AUTH_FILE", self.root.join("auth.json"))
            .arg("--root")
            .arg(self.root.join("root"))
            .arg("--runroot")
            .arg(self.root.join("runroot"))
            .arg("--tmpdir")
            .arg(self.root.join("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--log-level",
                "error",
            ])
            .limit(Duration::from_secs(180))
    }
}

/// Where scripts/install-test-deps.sh installs the Python ORAS client (PyPI `oras` 0.2.x)
/// in a virtualenv; `BERTH_ORAS_VENV` names another.
pub const ORAS_VENV: &str = "/var/cache/berth-tests/oras-venv";

/// The Python ORAS client, run through tests/clients/oras_client.py (login, then push or
/// pull a file artifact) in a folder of its own, which also holds its credentials.
pub struct Oras {
    python: PathBuf,
    dir: PathBuf,
}

impl Oras {
    /// Fails loudly when the virtualenv or the `oras` package in it is missing.
    pub fn new(scratch: &Path) -> Oras {
        let venv =
            std::env::var_os("BERTH_ORAS_VENV").map_or_else(|| ORAS_VENV.into(), PathBuf::from);
        let python = venv.join("bin/python");
        let how = "Install it with `sudo scripts/install-test-deps.sh` (a virtualenv with `pip install 'oras>=0.2,<0.3'`).";
        assert!(
            python.is_file(),
            "the Python ORAS client is required by this test: no virtualenv at {}. {how}",
            venv.display()
        );
        let (display, out) = Cmd::new(&python)
            .args(["-c", "import oras.client"])
            .limit(Duration::from_secs(60))
            .output();
        assert!(
            out.status.success(),
            "`{display}` failed: the `oras` package is missing from {}. {how}\n{}",
            venv.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::create_dir_all(scratch).expect("oras working folder");
        Oras {
            python,
            dir: scratch.to_path_buf(),
        }
    }

    /// Its working folder: a file to push must be in it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `op` (`push` FILE or `pull` OUTDIR) of `reference` (`repo:tag`) at `host`, logged
    /// in with `token`. Not run yet: `.run()` requires success, `.output()` does not.
    pub fn cmd(&self, op: &str, host: &str, reference: &str, token: &str, path: &str) -> Cmd {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/oras_client.py");
        Cmd::new(&self.python)
            .arg(script)
            .args([op, host, reference, token, path])
            .current_dir(&self.dir)
            // Its own credentials, never the machine's (~/.docker/config.json).
            .env("HOME", &self.dir)
            .limit(Duration::from_secs(180))
    }
}

/// A private dockerd (own data-root, exec-root, socket; vfs; no iptables, no bridge),
/// in its own process group so its containerd goes with it.
pub struct Dockerd {
    child: Option<Child>,
    dir: PathBuf,
}

impl Dockerd {
    /// Starts dockerd trusting `insecure` (host:port) over plain HTTP; fails with its log.
    pub fn start(dir: &Path, insecure: &str) -> Dockerd {
        let bin = require_tool("dockerd");
        require_tool("docker");
        std::fs::create_dir_all(dir.join("config")).expect("docker config dir");
        let log = std::fs::File::create(dir.join("dockerd.log")).expect("dockerd log");
        let mut cmd = Command::new(bin);
        cmd.arg("--storage-driver=vfs")
            .args(["--iptables=false", "--ip-masq=false", "--ip-forward=false"])
            .arg("--bridge=none")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .arg("--insecure-registry")
            .arg(insecure)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .process_group(0);
        let child = cmd.spawn().expect("spawn dockerd");
        let mut d = Dockerd {
            child: Some(child),
            dir: dir.to_path_buf(),
        };
        let ready = wait::until(Duration::from_secs(90), || {
            if let Some(c) = &mut d.child {
                if let Ok(Some(status)) = c.try_wait() {
                    return Some(Err(status));
                }
            }
            let (_, out) = d
                .docker()
                .arg("version")
                .limit(Duration::from_secs(10))
                .output();
            out.status.success().then_some(Ok(()))
        });
        match ready {
            Some(Ok(())) => d,
            Some(Err(status)) => {
                panic!("dockerd exited with {status} while starting:\n{}", d.log())
            }
            None => panic!("dockerd did not answer within 90 s:\n{}", d.log()),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }

    /// The docker CLI pointed at this daemon, with its own config folder.
    /// The local image id of `reference` (`docker image inspect`), trimmed.
    pub fn image_id(&self, reference: &str) -> String {
        self.docker()
            .args(["image", "inspect", "--format", "{{.Id}}", reference])
            .run()
            .trim()
            .to_string()
    }

    pub fn docker(&self) -> Cmd {
        Cmd::tool("docker")
            .env("DOCKER_CONFIG", self.dir.join("config"))
            .arg("-H")
            .arg(format!("unix://{}", self.dir.join("docker.sock").display()))
            .limit(Duration::from_secs(180))
    }

    /// `docker login -u berth -p TOKEN host` into this daemon's own config folder.
    pub fn login(&self, host: &str, token: &str) -> String {
        self.docker()
            .args(["login", "--username", "berth", "--password", token, host])
            .run()
    }

    /// containerd's `ctr` on the containerd this dockerd started (under its exec-root), in
    /// a namespace of its own.
    pub fn ctr(&self) -> Cmd {
        let sock = self
            .dir
            .join("exec")
            .join("containerd")
            .join("containerd.sock");
        require_tool("ctr");
        Cmd::tool("ctr")
            .arg("--address")
            .arg(sock)
            .args(["--namespace", "berth-e2e"])
            .limit(Duration::from_secs(180))
    }

    /// `ctr images pull` of `reference` over plain HTTP into the native snapshotter, as
    /// `user` (`name:secret`) if given; not run yet, so the caller chooses `run` or `output`.
    pub fn ctr_pull(&self, reference: &str, user: Option<&str>) -> Cmd {
        let mut c = self.ctr().args(["images", "pull", "--plain-http"]);
        if let Some(u) = user {
            c = c.args(["--user", u]);
        }
        c.args(["--snapshotter", "native", reference])
    }

    /// SIGTERM the daemon's process group and wait; SIGKILL it if it lingers.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = child.id() as libc::pid_t;
        // SAFETY: kill(2) on the process group this harness created for dockerd
        // (process_group(0) makes its pgid equal to its pid); no memory is touched.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        if wait::child_exit(&mut child, Duration::from_secs(30)).is_none() {
            // SAFETY: as above, our own process group.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            let _ = child.wait();
        }
        // Let containerd (same group) finish exiting before the folder goes away.
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: as above; a last SIGKILL to anything of ours still in the group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- dockerd log ---\n{}", self.log());
        }
    }
}
