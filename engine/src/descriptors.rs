//! File descriptors: the modes the store's files are created with (owner-only), and what
//! happens when the process runs out of descriptors (the embedder is told, cached packs are
//! closed, the open is tried once more).

use std::fmt;
use std::io;
use std::sync::Arc;

/// Mode of every file the store creates: blobs may be private layers, so no other local
/// account may read them, whatever the umask.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory the store creates (see [`FILE_MODE`]).
pub const DIR_MODE: u32 = 0o700;

/// Told each time opening a file failed because the process (`EMFILE`) or the system
/// (`ENFILE`) had no descriptor left, with what was being opened: the engine can only fail
/// the operation, the embedder can tell the operator (a log line, a metric).
#[derive(Clone)]
pub struct DescriptorAlarm(pub Arc<AlarmFn>);

/// What [`DescriptorAlarm`] calls: what was being opened, and the error.
pub type AlarmFn = dyn Fn(&str, &io::Error) + Send + Sync;

impl fmt::Debug for DescriptorAlarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DescriptorAlarm")
    }
}

impl DescriptorAlarm {
    pub(crate) fn ring(&self, what: &str, e: &io::Error) {
        (self.0)(what, e)
    }
}

/// Whether `e` says the process or the system is out of descriptors.
pub fn is_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}
