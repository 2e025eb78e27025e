//! Bounded waiting: every wait in the suite has a deadline, so a hung server or client fails
//! the test instead of hanging CI.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Polls `f` until it returns `Some`, or gives up after `limit`.
pub fn until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a child to exit, at most `limit`; `None` if it is still running.
pub fn child_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    until(limit, || child.try_wait().ok().flatten())
}

/// Sends a signal to a child we spawned (by its own pid, never by name).
pub fn signal(child: &Child, sig: libc::c_int) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) with a pid of a child process this harness spawned and has not yet
    // reaped; it touches no memory of ours.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Sends a signal to the process group of a child spawned with `process_group(0)` (its pgid
/// is its pid), reaching whatever it started too.
pub fn signal_group(child: &Child, sig: libc::c_int) {
    let pgid = child.id() as libc::pid_t;
    // SAFETY: kill(2) on the process group this harness created for its own child; it
    // touches no memory of ours.
    unsafe {
        libc::kill(-pgid, sig);
    }
}
