//! What one connection verified last, reused while the tenancy tables have not changed.
//!
//! A keep-alive client sends the same `Authorization` header on every request. Decoding it,
//! hashing the secret (or checking a bearer token's HMAC and parsing its claims) and reading
//! the token and registry records again cost a fifth of the server's CPU under a manifest
//! GET load. Each entry carries the engine's tenancy generation it was read under
//! (`Engine::tenancy_generation`): any token, registry or org change bumps it, so a
//! revocation still takes effect on the very next request. Expiry depends on the clock, not
//! on the tables, and is checked again on every use.

use super::caller::{check_valid, Caller};
use crate::auth::policy::Principal;
use crate::secret::{constant_time_eq, Secret};
use berth_engine::RegistryRec;

/// Owned by one connection (`dispatch::Session`); no locking.
#[derive(Default)]
pub struct AuthCache {
    caller: Option<Verified>,
    registry: Option<Registry>,
}

/// A credential that authenticated.
struct Verified {
    /// The `Authorization` header value, byte for byte. It holds the secret: redacted in
    /// `Debug`, compared in constant time (behind a proxy that pools upstream connections,
    /// one connection carries several users' headers).
    header: Secret,
    generation: u64,
    caller: Caller,
    /// When its use was last noted (token last-used times have one-second resolution).
    noted: u64,
}

/// The last registry record looked up (most connections work in one registry).
#[derive(Debug)]
struct Registry {
    org: Box<str>,
    slug: Box<str>,
    generation: u64,
    rec: Option<RegistryRec>,
}

/// Says what is cached, never the header (it holds the secret).
impl std::fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCache")
            .field(
                "caller",
                &self
                    .caller
                    .as_ref()
                    .map(|v| (&v.header, &v.caller, v.generation)),
            )
            .field("registry", &self.registry)
            .finish()
    }
}

/// A cache hit: the caller, and whether its use is to be noted again (once a second).
pub struct Hit {
    pub caller: Caller,
    pub note: Option<String>,
}

impl AuthCache {
    /// The caller `header` authenticated as, if it did under `generation` and is still
    /// unexpired at `unix`. A miss forgets the entry: the full check then decides, with
    /// its error message and its failure counting.
    pub fn caller(&mut self, header: Option<&str>, generation: u64, unix: u64) -> Option<Hit> {
        let header = header?;
        let v = self.caller.as_mut()?;
        let current = v.generation == generation
            && constant_time_eq(v.header.expose().as_bytes(), header.as_bytes())
            && unexpired(&v.caller, unix);
        if !current {
            self.caller = None;
            return None;
        }
        let note = match &v.caller.principal {
            Principal::Token(rec) if v.noted != unix => {
                v.noted = unix;
                Some(rec.id.clone())
            }
            _ => None,
        };
        Some(Hit {
            caller: v.caller.clone(),
            note,
        })
    }

    /// Remembers what `header` authenticated as.
    pub fn remember(&mut self, header: &str, generation: u64, caller: &Caller, unix: u64) {
        self.caller = Some(Verified {
            header: Secret::new(header),
            generation,
            caller: caller.clone(),
            noted: unix,
        });
    }

    /// The registry `org/slug`, read by `load` unless it was read under `generation`.
    pub fn registry<E>(
        &mut self,
        org: &str,
        slug: &str,
        generation: u64,
        load: impl FnOnce() -> Result<Option<RegistryRec>, E>,
    ) -> Result<Option<&RegistryRec>, E> {
        let current = self
            .registry
            .as_ref()
            .is_some_and(|r| r.generation == generation && *r.org == *org && *r.slug == *slug);
        if !current {
            self.registry = Some(Registry {
                org: org.into(),
                slug: slug.into(),
                generation,
                rec: load()?,
            });
        }
        Ok(self.registry.as_ref().and_then(|r| r.rec.as_ref()))
    }
}

/// Whether the token and the bearer claims are still within their lifetime.
fn unexpired(c: &Caller, unix: u64) -> bool {
    let token = match &c.principal {
        Principal::Token(rec) => check_valid(rec, unix).is_ok(),
        Principal::Anonymous => true,
    };
    token && c.claims.as_ref().is_none_or(|cl| unix < cl.exp)
}
