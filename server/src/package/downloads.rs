//! Download counts: each pull of a version (a manifest GET by tag or digest; a HEAD is not
//! one) and each Download counts once. Counting never touches the disk on a pull: counts
//! gather in memory and the housekeeper adds them to the store in one commit every
//! [`FLUSH_EVERY`], and once more at shutdown; a crash loses at most that long's counts.
//! Pages add the counts not yet written, so a pull shows at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use berth_engine::{BlobKey, Engine, StoreError};

/// How long counts wait in memory before they are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);

/// Counts not yet written, by (repository, manifest key).
#[derive(Default)]
pub struct Downloads {
    pending: Mutex<HashMap<(String, BlobKey), u64>>,
}

impl Downloads {
    /// One more pull or Download of version `key` of `repo`.
    pub fn count(&self, repo: &str, key: BlobKey) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        *p.entry((repo.to_owned(), key)).or_default() += 1;
    }

    /// Counts of version `key` of `repo` not yet written.
    pub fn pending(&self, repo: &str, key: &BlobKey) -> u64 {
        let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.get(&(repo.to_owned(), key.clone())).copied().unwrap_or(0)
    }

    /// Writes the pending counts in one commit. On failure they are kept for the next try.
    pub fn flush(&self, e: &Engine) -> Result<usize, StoreError> {
        let batch: Vec<(String, BlobKey, u64)> = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.drain().map(|((r, k), n)| (r, k, n)).collect()
        };
        if let Err(err) = e.add_downloads(&batch) {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (r, k, n) in batch {
                *p.entry((r, k)).or_default() += n;
            }
            return Err(err);
        }
        Ok(batch.len())
    }
}
