//! A throwaway PostgreSQL 15 server for the distributed mode's tests: Debian's binaries,
//! `initdb` in a temporary folder as the `postgres` user, listening on a free loopback port.
//!
//! It is a real server, not a mock, because what the distributed mode must get right is
//! what PostgreSQL does: durability across a crash (fsync stays on, and `stop` is
//! `pg_ctl stop -m immediate`, a crash that recovery replays), password authentication over
//! TCP as a deployment has it, and connections that break when the server goes away.
//! Nothing of the machine's own PostgreSQL is used: no system cluster, no `/var/run`
//! socket, nothing left behind once the value is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::tool::Cmd;

/// Where Debian's `postgresql-15` puts the server binaries (not on PATH).
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The role and database the tests use; the role owns the database.
pub const DATABASE: &str = "berth";
const ROLE: &str = "berth";
/// How long a start (including crash recovery after `stop`) may take.
const START_LIMIT: Duration = Duration::from_secs(60);

/// A running (or stopped) PostgreSQL cluster of the test's own. Stopped with
/// `pg_ctl stop -m immediate` on drop; its folder goes with it.
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    password: String,
    running: bool,
}

impl Postgres {
    /// Makes a cluster in a new temporary folder and starts it; creates the database
    /// [`DATABASE`] owned by a role that logs in with a password (SCRAM) over 127.0.0.1.
    /// Panics with what to install, or with the server's log, on any failure.
    pub fn start() -> Postgres {
        let initdb = require_bin("initdb");
        require_bin("pg_ctl");
        require_bin("psql");
        let runuser = crate::tool::require_tool("runuser");
        assert_eq!(
            Cmd::tool("id").arg("-u").run().trim(),
            "0",
            "PostgreSQL's tests run as root: they start the server as the postgres user \
             with runuser (initdb refuses root itself)"
        );
        let (uid, gid) = postgres_user();

        let dir = tempfile::Builder::new()
            .prefix("berth-pg-")
            .tempdir()
            .expect("create a temp dir for PostgreSQL");
        // initdb and the server refuse to run as root; the folder is the postgres user's,
        // holding the data folder, the unix socket and the log.
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", dir.path().display()));
        let password = hex::encode(crate::content::random_bytes(16));
        let mut pg = Postgres {
            port: crate::registry::free_port().port(),
            dir,
            password,
            running: false,
        };

        // The superuser is reached only through the folder's unix socket (trust, as the
        // postgres user owns the folder); TCP needs a password, as in a deployment.
        Cmd::new(&runuser)
            .args(["-u", "postgres", "--"])
            .arg(initdb)
            .arg("-D")
            .arg(pg.data_dir())
            .args([
                "--username=postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .limit(START_LIMIT)
            .run();
        let conf = format!(
            "\n# berth-tests\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{sock}'\n\
             fsync = on\n\
             synchronous_commit = on\n\
             full_page_writes = on\n\
             max_connections = 200\n\
             logging_collector = off\n",
            port = pg.port,
            sock = pg.dir.path().display(),
        );
        let conf_path = pg.data_dir().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", conf_path.display()));
        text.push_str(&conf);
        std::fs::write(&conf_path, text)
            .unwrap_or_else(|e| panic!("write {}: {e}", conf_path.display()));

        pg.start_again();
        pg.superuser_sql(&format!(
            "CREATE ROLE {ROLE} LOGIN PASSWORD '{}'",
            pg.password
        ));
        pg.superuser_sql(&format!("CREATE DATABASE {DATABASE} OWNER {ROLE}"));
        pg
    }

    /// `postgres://berth:PASSWORD@127.0.0.1:PORT/berth`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{ROLE}:{}@127.0.0.1:{}/{DATABASE}",
            self.password, self.port
        )
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The role's password (also in [`url`](Self::url)).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Stops the server the way a crash or a power cut would (`pg_ctl stop -m immediate`:
    /// no checkpoint, connections cut); committed transactions survive through the WAL,
    /// which is what the tests rely on. The data and the port stay for `start_again`.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let (display, out) = self.pg_ctl().args(["stop", "-m", "immediate"]).output();
        if !out.status.success() {
            self.fail_pg_ctl(&display, &out);
        }
    }

    /// Kills what `pg_ctl` left and panics with its output and the server's log.
    fn fail_pg_ctl(&self, display: &str, out: &std::process::Output) -> ! {
        self.kill_postmaster();
        panic!(
            "`{display}` failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Starts the server on the same data and port (first start, or after `stop`), and
    /// waits until it accepts connections (crash recovery included).
    pub fn start_again(&mut self) {
        assert!(!self.running, "start_again on a running PostgreSQL");
        let (display, out) = self
            .pg_ctl()
            .args([
                "start",
                "-w",
                "-t",
                &START_LIMIT.as_secs().to_string(),
                "-l",
            ])
            .arg(self.log_path())
            .limit(START_LIMIT + Duration::from_secs(10))
            .output();
        if !out.status.success() {
            self.fail_pg_ctl(&display, &out);
        }
        self.running = true;
    }

    /// Whether the server is meant to be up (between a start and a `stop`).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Runs `sql` as the test role over TCP with its password (so a test's assertions go
    /// the way a node's queries go) and returns the rows, one a line, columns split by `|`,
    /// without headers. Panics on an SQL error, with the error.
    pub fn sql(&self, sql: &str) -> String {
        self.psql_tcp(sql).run()
    }

    /// [`sql`](Self::sql) that may fail: `Err` holds psql's error output.
    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        let (_, out) = self.psql_tcp(sql).output();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs `sql` as the superuser through the folder's unix socket (for what only a
    /// superuser may do: roles, databases, cutting other sessions off).
    pub fn superuser_sql(&self, sql: &str) -> String {
        Cmd::new(&bin("psql"))
            .args(psql_flags())
            .arg("-h")
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-c", sql])
            .limit(Duration::from_secs(60))
            .run()
    }

    /// The server's log so far, for failure messages.
    pub fn log(&self) -> String {
        match std::fs::read_to_string(self.log_path()) {
            Ok(text) => format!("--- postgres log ---\n{text}"),
            Err(e) => format!("(no postgres log at {}: {e})", self.log_path().display()),
        }
    }

    fn psql_tcp(&self, sql: &str) -> Cmd {
        Cmd::new(&bin("psql"))
            .args(psql_flags())
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", ROLE, "-d", DATABASE, "-c", sql])
            .env("PGPASSWORD", &self.password)
            // Not the caller's ~/.pgpass or service files.
            .env("PGPASSFILE", "/dev/null")
            .env("PGSERVICEFILE", "/dev/null")
            .limit(Duration::from_secs(60))
    }

    fn pg_ctl(&self) -> Cmd {
        Cmd::new(&crate::tool::require_tool("runuser"))
            .args(["-u", "postgres", "--"])
            .arg(bin("pg_ctl"))
            .arg("-D")
            .arg(self.data_dir())
            .limit(Duration::from_secs(60))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The last resort when `pg_ctl` itself failed: SIGKILL the postmaster named in its
    /// pid file, so no server outlives the test.
    fn kill_postmaster(&self) {
        let pid_file = self.data_dir().join("postmaster.pid");
        let Ok(text) = std::fs::read_to_string(pid_file) else {
            return;
        };
        if let Some(pid) = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<libc::pid_t>().ok())
        {
            // SAFETY: kill(2) on the postmaster this harness started (its pid file is in
            // our own temporary folder); it touches no memory of ours.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            self.running = false;
            let (_, out) = self.pg_ctl().args(["stop", "-m", "immediate"]).output();
            if !out.status.success() {
                self.kill_postmaster();
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
    }
}

/// No psqlrc, unaligned tuples only, stop at the first error, quiet.
fn psql_flags() -> [&'static str; 6] {
    ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"]
}

fn bin(name: &str) -> PathBuf {
    Path::new(BIN_DIR).join(name)
}

/// The binary, or a panic saying how to install it: a database test that skipped itself
/// would report a green suite that tested nothing.
fn require_bin(name: &str) -> PathBuf {
    let p = bin(name);
    assert!(
        p.is_file(),
        "{} is required by this test but is missing. Install Debian's PostgreSQL 15 with \
         `sudo scripts/install-test-deps.sh` (or `apt-get install postgresql`).",
        p.display()
    );
    p
}

/// The `postgres` system user's uid and gid (Debian's package makes it).
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Cmd::tool("id").args([flag, "postgres"]).run();
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("`id {flag} postgres` printed {out:?}: {e}"))
    };
    (id("-u"), id("-g"))
}
