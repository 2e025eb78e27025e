//! Manifests recently read, kept in memory by repository and reference.
//!
//! A fleet that deploys `app:latest` asks for the same manifest thousands of times; each
//! answer from redb costs a read transaction and two table opens, which was a tenth of the
//! server's CPU under a manifest GET load. Only what was found is cached (a miss is never
//! remembered), and the cache never answers for a repository whose manifests or tags changed
//! since: every write to a repository drops that repository's entries after its commit and
//! before it is acknowledged, and bumps a generation so a read that raced with the write
//! does not put back what it read before the commit.

use crate::keys::BlobKey;
use crate::{ManifestRef, StoredManifest};
use std::collections::HashMap;
use std::sync::Mutex;

/// Bounded by the bytes of the bodies it holds; when full it starts over (a cache this
/// size refills within a few requests per hot manifest).
pub(crate) struct ManifestCache {
    max_bytes: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    generation: u64,
    bytes: usize,
    repos: HashMap<String, Repo>,
}

/// One repository's cached manifests, by tag and by key.
#[derive(Default)]
struct Repo {
    tags: HashMap<String, StoredManifest>,
    keys: HashMap<BlobKey, StoredManifest>,
}

impl Repo {
    fn get(&self, r: &ManifestRef<'_>) -> Option<&StoredManifest> {
        match r {
            ManifestRef::Tag(t) => self.tags.get(*t),
            ManifestRef::Key(k) => self.keys.get(*k),
        }
    }

    fn insert(&mut self, r: &ManifestRef<'_>, m: StoredManifest) -> Option<StoredManifest> {
        match r {
            ManifestRef::Tag(t) => self.tags.insert((*t).to_owned(), m),
            ManifestRef::Key(k) => self.keys.insert((*k).clone(), m),
        }
    }

    fn values(&self) -> impl Iterator<Item = &StoredManifest> {
        self.tags.values().chain(self.keys.values())
    }
}

/// What an entry counts against the bound: its bytes, not the maps' own overhead nor the
/// tag strings, so the memory it takes is somewhat above `max_bytes`.
fn cost(repo: &str, m: &StoredManifest) -> usize {
    m.body.len() + m.media_type.len() + repo.len()
}

/// Where a read that missed stands: pass it back to [`ManifestCache::insert`].
pub(crate) struct Ticket(u64);

impl ManifestCache {
    /// `max_bytes` of 0 turns the cache off.
    pub(crate) fn new(max_bytes: usize) -> ManifestCache {
        ManifestCache {
            max_bytes,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is consistent after every statement; a panic elsewhere cannot tear it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached manifest, or a ticket to read the store with and insert what it found.
    pub(crate) fn get(&self, repo: &str, r: &ManifestRef<'_>) -> Result<StoredManifest, Ticket> {
        let s = self.state();
        match s.repos.get(repo).and_then(|m| m.get(r)) {
            Some(m) => Ok(m.clone()),
            None => Err(Ticket(s.generation)),
        }
    }

    /// Remembers what a read under `ticket` found, unless a write came in between.
    pub(crate) fn insert(
        &self,
        ticket: Ticket,
        repo: &str,
        r: &ManifestRef<'_>,
        m: &StoredManifest,
    ) {
        let size = cost(repo, m);
        if size > self.max_bytes / 8 {
            return;
        }
        let mut s = self.state();
        if s.generation != ticket.0 {
            return;
        }
        // What leaves the cache is dropped after the lock is let go: freeing a full cache
        // must not hold up the other threads' lookups.
        let mut evicted = HashMap::new();
        if s.bytes + size > self.max_bytes {
            evicted = std::mem::take(&mut s.repos);
            s.bytes = 0;
        }
        let old = s
            .repos
            .entry(repo.to_owned())
            .or_default()
            .insert(r, m.clone());
        s.bytes += size;
        if let Some(old) = &old {
            s.bytes -= cost(repo, old);
        }
        drop(s);
        drop((evicted, old));
    }

    /// Forgets `repo`'s entries: called after a write to its manifests or tags commits
    /// (or fails), before the write is acknowledged.
    pub(crate) fn invalidate(&self, repo: &str) {
        let mut s = self.state();
        s.generation += 1;
        let gone = s.repos.remove(repo);
        if let Some(gone) = &gone {
            let freed: usize = gone.values().map(|m| cost(repo, m)).sum();
            s.bytes -= freed;
        }
        drop(s);
        drop(gone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(body: &[u8]) -> StoredManifest {
        StoredManifest {
            key: BlobKey::sha256_of(b"m"),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            body: bytes::Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn a_read_that_raced_with_a_write_is_not_cached() {
        let c = ManifestCache::new(1 << 20);
        let r = ManifestRef::Tag("latest");
        let Err(ticket) = c.get("a/b/c", &r) else {
            panic!("empty cache hit")
        };
        c.invalidate("a/b/c");
        c.insert(ticket, "a/b/c", &r, &manifest(b"old"));
        assert!(c.get("a/b/c", &r).is_err());
    }

    #[test]
    fn a_write_drops_only_its_repository() {
        let c = ManifestCache::new(1 << 20);
        let r = ManifestRef::Tag("latest");
        for repo in ["a/b/c", "a/b/d"] {
            let Err(t) = c.get(repo, &r) else { panic!() };
            c.insert(t, repo, &r, &manifest(repo.as_bytes()));
        }
        c.invalidate("a/b/c");
        assert!(c.get("a/b/c", &r).is_err());
        assert_eq!(c.get("a/b/d", &r).ok().unwrap().body, &b"a/b/d"[..]);
        assert_eq!(c.state().bytes, 5 + 42 + 5);
    }

    #[test]
    fn it_stays_within_its_bytes() {
        let c = ManifestCache::new(4096);
        for i in 0..100 {
            let tag = format!("t{i}");
            let r = ManifestRef::Tag(&tag);
            let Err(t) = c.get("a/b/c", &r) else { panic!() };
            c.insert(t, "a/b/c", &r, &manifest(&[0; 300]));
            assert!(c.state().bytes <= 4096);
        }
        let off = ManifestCache::new(0);
        let r = ManifestRef::Tag("x");
        let Err(t) = off.get("a", &r) else { panic!() };
        off.insert(t, "a", &r, &manifest(b"x"));
        assert!(off.get("a", &r).is_err());
    }
}
