//! When each repository link was last used, in memory, for garbage collection's grace on
//! links no manifest references.
//!
//! A push uploads its blobs before the manifest that references them, and a client that
//! finds a blob already there (HEAD, or a mount) does not upload it again: between that and
//! its manifest PUT, the link is referenced by nothing, yet must stay. So a link is used
//! when it is made (upload, mount), looked up (HEAD or GET of the blob in its repository),
//! or named by a manifest PUT; garbage collection leaves a link used within its grace.
//!
//! Nothing here is written to disk (a lookup must stay a read): after a restart every link
//! counts as used at open. Links are hashed, so memory is 16 bytes per link used; two links
//! sharing a hash only keep each other longer, never shorter.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

const SHARDS: usize = 16;

pub(crate) struct Touches {
    /// Unix seconds at open: the least "last used" time of any link.
    opened: u64,
    shards: [Mutex<HashMap<u64, u64>>; SHARDS],
}

impl Touches {
    pub(crate) fn new(opened: u64) -> Touches {
        Touches {
            opened,
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }

    fn shard(&self, h: u64) -> std::sync::MutexGuard<'_, HashMap<u64, u64>> {
        // A poisoned shard holds whole entries only (single inserts), so it stays usable.
        self.shards[(h % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// `repo`'s link to the blob encoded as `kb` was used at `now`.
    pub(crate) fn touch(&self, repo: &str, kb: &[u8], now: u64) {
        let h = link_hash(repo, kb);
        let mut s = self.shard(h);
        let at = s.entry(h).or_insert(now);
        *at = (*at).max(now);
    }

    /// When the link was last used (at the latest, at open).
    pub(crate) fn last(&self, repo: &str, kb: &[u8]) -> u64 {
        let h = link_hash(repo, kb);
        self.shard(h).get(&h).copied().unwrap_or(0).max(self.opened)
    }

    /// Forgets uses before `before`: they no longer keep anything.
    pub(crate) fn forget_before(&self, before: u64) {
        for s in &self.shards {
            s.lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, at| *at >= before);
        }
    }
}

/// The hash of a link, also used by garbage collection's set of referenced links.
pub(crate) fn link_hash(repo: &str, kb: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    repo.hash(&mut h);
    kb.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_was_last_used_at_its_latest_touch_and_never_before_open() {
        let t = Touches::new(100);
        assert_eq!(t.last("r", b"k"), 100, "unknown: used at open");
        t.touch("r", b"k", 150);
        t.touch("r", b"k", 120);
        assert_eq!(t.last("r", b"k"), 150, "the latest use counts");
        assert_eq!(t.last("s", b"k"), 100, "per repository");
        t.touch("s", b"k", 90);
        assert_eq!(t.last("s", b"k"), 100, "never before open");
        t.forget_before(151);
        assert_eq!(t.last("r", b"k"), 100);
    }
}
