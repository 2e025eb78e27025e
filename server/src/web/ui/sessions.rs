//! Sign-in sessions, held in the server's memory: a random 256-bit id (the `berth_session`
//! cookie) names the token secret it was opened with and a CSRF token for its forms. The
//! secret is kept (as a [`Secret`], never printed) so that every request authenticates it
//! again: revoking or expiring the token ends its sessions at once. A restart ends every
//! session. The map is bounded: a session idle past its lifetime is gone, and signing in
//! while the map is full ends the least recently used one.

use crate::secret::{constant_time_eq, random_bytes, sha256, Secret};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "berth_session";

/// A session as a request sees it.
#[derive(Debug)]
pub struct Open {
    pub id: String,
    pub secret: Secret,
    /// Every form of the session carries it; a POST without it is refused.
    pub csrf: String,
}

struct Entry {
    secret: Secret,
    csrf: String,
    seen: Instant,
}

pub struct Sessions {
    /// Keyed by the SHA-256 of the id: lookups compare hashes, not the cookie itself.
    map: Mutex<HashMap<[u8; 32], Entry>>,
    idle: Duration,
    max: usize,
}

/// 256 random bits, in hex.
pub fn random_id() -> Result<String, String> {
    Ok(hex::encode(random_bytes(32)?))
}

impl Sessions {
    pub fn new(idle: Duration, max: usize) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle,
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for `secret` (already authenticated).
    pub fn open(&self, secret: Secret, now: Instant) -> Result<Open, String> {
        let id = random_id()?;
        let csrf = random_id()?;
        let mut m = self.lock();
        if m.len() >= self.max {
            m.retain(|_, e| now.saturating_duration_since(e.seen) < self.idle);
        }
        if m.len() >= self.max {
            if let Some(k) = m.iter().min_by_key(|(_, e)| e.seen).map(|(k, _)| *k) {
                m.remove(&k);
            }
        }
        m.insert(
            sha256(id.as_bytes()),
            Entry {
                secret: secret.clone(),
                csrf: csrf.clone(),
                seen: now,
            },
        );
        Ok(Open { id, secret, csrf })
    }

    /// The live session `id` names, marked used now; an idle one is ended instead.
    pub fn get(&self, id: &str, now: Instant) -> Option<Open> {
        let k = sha256(id.as_bytes());
        let mut m = self.lock();
        let e = m.get_mut(&k)?;
        if now.saturating_duration_since(e.seen) >= self.idle {
            m.remove(&k);
            return None;
        }
        e.seen = now;
        Some(Open {
            id: id.to_string(),
            secret: e.secret.clone(),
            csrf: e.csrf.clone(),
        })
    }

    /// Ends session `id` (signing out, or its token no longer authenticates).
    pub fn end(&self, id: &str) {
        self.lock().remove(&sha256(id.as_bytes()));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Whether a form's CSRF value matches the expected one (never when either is empty).
pub fn csrf_ok(expected: &str, sent: Option<&str>) -> bool {
    match sent {
        Some(s) if !expected.is_empty() => constant_time_eq(expected.as_bytes(), s.as_bytes()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    // A clock reading to count from; the server's rule is not the tests'.
    #![allow(clippy::disallowed_methods)]

    use super::*;

    #[test]
    fn sessions_live_until_idle_and_end_when_asked() {
        let t0 = Instant::now();
        let s = Sessions::new(Duration::from_secs(60), 10);
        let a = s.open(Secret::new("berth_pat_a"), t0).unwrap();
        assert_eq!(a.id.len(), 64, "256 bits in hex");
        assert_ne!(a.id, a.csrf);
        let got = s.get(&a.id, t0 + Duration::from_secs(59)).unwrap();
        assert_eq!(got.secret.expose(), "berth_pat_a");
        assert_eq!(got.csrf, a.csrf);
        // used at 59 s: alive until 119 s
        assert!(s.get(&a.id, t0 + Duration::from_secs(118)).is_some());
        assert!(s.get(&a.id, t0 + Duration::from_secs(178)).is_none());
        assert!(
            s.get(&a.id, t0).is_none(),
            "an idle session is gone for good"
        );
        let b = s.open(Secret::new("berth_pat_b"), t0).unwrap();
        assert!(s.get("not-a-session", t0).is_none());
        s.end(&b.id);
        assert!(s.get(&b.id, t0).is_none());
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_full_map_drops_idle_sessions_then_the_least_recently_used() {
        let t0 = Instant::now();
        let sec = |n| t0 + Duration::from_secs(n);
        let s = Sessions::new(Duration::from_secs(100), 2);
        let a = s.open(Secret::new("a"), sec(0)).unwrap();
        let b = s.open(Secret::new("b"), sec(1)).unwrap();
        assert!(s.get(&a.id, sec(2)).is_some(), "a is now the more recent");
        let c = s.open(Secret::new("c"), sec(3)).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.get(&b.id, sec(3)).is_none(), "b was least recently used");
        assert!(s.get(&a.id, sec(3)).is_some());
        assert!(s.get(&c.id, sec(3)).is_some());
        // both idle past their lifetime: both make room
        let d = s.open(Secret::new("d"), sec(500)).unwrap();
        assert_eq!(s.len(), 1);
        assert!(s.get(&d.id, sec(500)).is_some());
    }

    #[test]
    fn csrf_values_must_match_and_never_be_empty() {
        assert!(csrf_ok("abc", Some("abc")));
        assert!(!csrf_ok("abc", Some("abd")));
        assert!(!csrf_ok("abc", Some("")));
        assert!(!csrf_ok("abc", None));
        assert!(!csrf_ok("", Some("")));
    }
}
