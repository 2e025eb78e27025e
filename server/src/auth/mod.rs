//! Access control (issue 3; docs/auth.md, "Authentication"): who the caller is
//! (`credentials`, `bearer`), what it may do (`policy`), the decision table that turns those
//! into `Auth::Granted` or a refusal with the right status and challenge, and the throttle
//! on clients that keep failing (`ratelimit`). Everything here is a cheap MVCC read plus an
//! HMAC, so `Need::Authorize` is answered inline on the reactor.

pub mod bearer;
pub mod cache;
mod caller;
pub mod credentials;
pub mod policy;
pub mod ratelimit;
pub mod scope;

use crate::config::AuthSettings;
use crate::metrics::{AuthOutcome, Metrics};
use crate::secret::{sha256, Secret};
use bearer::{intersect, BearerError};
use berth_core::oci::ErrorCode;
use berth_core::{Access, Actions, Auth, AuthRequest, Refusal, Resource};
use berth_engine::{Engine, RegistryRec, StoreError, TokenKind, TokenRec};
use cache::AuthCache;
use caller::check_valid;
pub use caller::{AuthError, Caller};
use credentials::{Presented, ADMIN_PREFIX, PAT_PREFIX, REGISTRY_PREFIX};
use policy::{allowed, place, Principal};
use ratelimit::FailureLimiter;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// When and from where a request came: the reactor's clock readings and the peer address.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    pub now: Instant,
    /// Unix seconds (token expiry, audit times, bearer `iat`/`exp`).
    pub unix: u64,
    /// The socket's peer; for one request, the client a trusted proxy names (`for_request`).
    pub peer: Option<IpAddr>,
}

/// The server's access control state.
pub struct Authority {
    /// The HMAC key of bearer tokens (DATA/token-key).
    key: Secret32,
    pub settings: AuthSettings,
    limiter: FailureLimiter,
    /// Token id -> last use (unix seconds), written to the store in batches.
    used: Mutex<HashMap<String, u64>>,
    metrics: Arc<Metrics>,
}

/// The 32-byte bearer key; its `Debug` redacts.
pub struct Secret32(pub [u8; 32]);

impl std::fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted key>")
    }
}

impl Authority {
    pub fn new(key: [u8; 32], settings: AuthSettings, metrics: Arc<Metrics>) -> Authority {
        Authority {
            key: Secret32(key),
            limiter: FailureLimiter::new(settings.max_failures, settings.failure_window),
            settings,
            used: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    pub fn key(&self) -> &[u8] {
        &self.key.0
    }

    /// The context of one request on a connection: its peer is the client that
    /// `X-Forwarded-For` names when the connection's peer is a trusted proxy.
    pub fn for_request(&self, ctx: &Ctx, forwarded_for: Option<&str>) -> Ctx {
        Ctx {
            peer: ctx
                .peer
                .map(|p| self.settings.trusted_proxies.client(p, forwarded_for)),
            ..*ctx
        }
    }

    /// Counts a failed authentication (metrics, the log, the per-address limiter); the
    /// seconds to wait when the attempt is throttled (429) rather than refused (401).
    #[must_use]
    pub fn failed(&self, ctx: &Ctx, why: &str) -> Option<u64> {
        self.metrics.auth_failures.fetch_add(1, Relaxed);
        tracing::info!(peer = ?ctx.peer, reason = why, "authentication failed");
        self.limiter.failed(ctx.peer?, ctx.now)
    }

    /// Who presented this credential.
    pub fn authenticate(
        &self,
        e: &Engine,
        presented: &Presented,
        ctx: &Ctx,
    ) -> Result<Caller, AuthError> {
        match presented {
            Presented::Anonymous => Ok(Caller::ANONYMOUS),
            Presented::Malformed(why) => Err(AuthError::Invalid(why)),
            Presented::Token(secret) => {
                let rec = self.token(e, secret, ctx)?;
                Ok(Caller {
                    principal: Principal::Token(Arc::new(rec)),
                    claims: None,
                })
            }
            Presented::Bearer(secret) => {
                let claims =
                    bearer::verify(self.key(), secret.expose(), ctx.unix).map_err(|err| {
                        AuthError::Invalid(match err {
                            BearerError::Format => "not a berth bearer token",
                            BearerError::Signature => "bearer token signature does not match",
                            BearerError::Expired => "bearer token expired",
                        })
                    })?;
                let principal = if claims.sub.is_empty() {
                    Principal::Anonymous
                } else {
                    // The token it came from must still be valid: revocation is immediate.
                    let rec = e
                        .get_token(&claims.sub)?
                        .ok_or(AuthError::Invalid("bearer token of an unknown token"))?;
                    check_valid(&rec, ctx.unix)?;
                    self.note_use(&rec.id, ctx.unix);
                    Principal::Token(Arc::new(rec))
                };
                Ok(Caller {
                    principal,
                    claims: Some(Arc::new(claims)),
                })
            }
        }
    }

    /// The valid access token behind `secret`.
    pub fn token(&self, e: &Engine, secret: &Secret, ctx: &Ctx) -> Result<TokenRec, AuthError> {
        let s = secret.expose();
        let kind = if s.starts_with(PAT_PREFIX) {
            TokenKind::Org
        } else if s.starts_with(REGISTRY_PREFIX) {
            TokenKind::Registry
        } else if s.starts_with(ADMIN_PREFIX) {
            TokenKind::Admin
        } else {
            return Err(AuthError::Invalid("not a berth access token"));
        };
        let rec = e
            .token_by_hash(&sha256(s.as_bytes()))?
            .ok_or(AuthError::Invalid("unknown token"))?;
        if rec.kind != kind {
            return Err(AuthError::Invalid("unknown token"));
        }
        check_valid(&rec, ctx.unix)?;
        self.note_use(&rec.id, ctx.unix);
        Ok(rec)
    }

    fn note_use(&self, id: &str, unix: u64) {
        let mut m = self.used.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(id.to_string(), unix);
    }

    /// Takes the last-use times gathered since the previous call.
    pub fn take_used(&self) -> Vec<(String, u64)> {
        let mut m = self.used.lock().unwrap_or_else(|p| p.into_inner());
        m.drain().collect()
    }

    /// What `caller` may do on repository `repo`: (what its credential allows, what it
    /// may do now — the former narrowed by a bearer token's claims, whether the registry
    /// exists). The registry record comes through `cache`.
    pub fn effective(
        &self,
        e: &Engine,
        caller: &Caller,
        repo: &str,
        cache: &mut AuthCache,
    ) -> Result<(Actions, Actions, bool), StoreError> {
        let reg = match place(repo) {
            Some((org, slug)) => cache.registry(org, slug, e.tenancy_generation(), || {
                e.get_registry(org, slug)
            })?,
            None => None,
        };
        let (under, eff) = grant(caller, repo, reg);
        Ok((under, eff, reg.is_some()))
    }

    /// Answers `Need::Authorize`: the decision table of docs/auth.md. The caller is
    /// returned with a grant, for the needs of the same request.
    pub fn authorize(
        &self,
        e: &Engine,
        req: &AuthRequest,
        ctx: &Ctx,
        cache: &mut AuthCache,
    ) -> Result<(Auth, Option<Caller>), StoreError> {
        let ctx = &self.for_request(ctx, req.forwarded_for.as_deref());
        let header = req.credentials.as_deref();
        // Only refusals name the scope: not built for the requests that pass.
        let scope = || scope_of(&req.required, req.optional.as_ref());
        let generation = e.tenancy_generation();
        let (caller, has_credentials) = match cache.caller(header, generation, ctx.unix) {
            Some(hit) => {
                if let Some(id) = hit.note {
                    self.note_use(&id, ctx.unix);
                }
                (hit.caller, true)
            }
            None => {
                let presented = credentials::parse(header);
                let has_credentials = presented.has_credentials();
                let caller = match self.authenticate(e, &presented, ctx) {
                    Ok(c) => c,
                    Err(AuthError::Store(err)) => return Err(err),
                    Err(AuthError::Invalid(why)) => {
                        if let Some(wait) = self.failed(ctx, why) {
                            return Ok((self.refuse_rate(wait), None));
                        }
                        let r =
                            self.unauthorized(req, scope().as_deref(), Some("invalid_token"), why);
                        return Ok((r, None));
                    }
                };
                if let (true, Some(h)) = (has_credentials, header) {
                    cache.remember(h, generation, &caller, ctx.unix);
                }
                (caller, has_credentials)
            }
        };
        let optional = match &req.optional {
            Some(Access {
                resource: Resource::Repository(from),
                actions,
            }) => self
                .effective(e, &caller, from.as_str(), cache)?
                .1
                .covers(*actions),
            Some(_) => false,
            None => false,
        };
        let granted = Auth::Granted { optional };
        let outcome = match &req.required.resource {
            Resource::Ping => {
                if has_credentials {
                    Ok(())
                } else {
                    Err(self.unauthorized(req, None, None, "authentication required"))
                }
            }
            Resource::Catalog => Ok(()),
            Resource::Repository(name) => {
                let (under, eff, exists) = self.effective(e, &caller, name.as_str(), cache)?;
                let want = req.required.actions;
                if eff.covers(want) {
                    Ok(())
                } else if caller.principal == Principal::Anonymous {
                    Err(self.unauthorized(req, scope().as_deref(), None, "authentication required"))
                } else if caller.claims.is_some() && under.covers(want) {
                    Err(self.unauthorized(
                        req,
                        scope().as_deref(),
                        Some("insufficient_scope"),
                        "the bearer token does not grant this action; request a token with the scope in the challenge",
                    ))
                } else if under.pull {
                    // Both exist, or nothing would be allowed.
                    let (org, slug) = place(name.as_str()).unwrap_or_default();
                    let mut r = self.refuse(
                        AuthOutcome::Denied,
                        403,
                        ErrorCode::Denied,
                        format!("token lacks write_packages for {org}/{slug}"),
                    );
                    // Like the 403 above, it names the scope to a bearer token's client:
                    // one that asks again on a 403 gets the same grant and stops there
                    // (without a challenge, the Python ORAS client retries for minutes).
                    if let (Some(_), Auth::Refused(r)) = (&caller.claims, &mut r) {
                        r.www_authenticate = Some(self.challenge(
                            req.host.as_deref(),
                            scope().as_deref(),
                            Some("insufficient_scope"),
                        ));
                    }
                    Err(r)
                } else {
                    Err(self.not_found(e, &caller.principal, name.as_str(), exists)?)
                }
            }
        };
        Ok(match outcome {
            Ok(()) => {
                self.metrics.auth_outcome(AuthOutcome::Granted);
                (granted, Some(caller))
            }
            Err(r) => (r, None),
        })
    }

    /// Steps 6 and 7: a 404 that names what is missing only to whom may know it.
    fn not_found(
        &self,
        e: &Engine,
        p: &Principal,
        repo: &str,
        registry_exists: bool,
    ) -> Result<Auth, StoreError> {
        let generic = "repository name not known to registry".to_string();
        let msg = match place(repo) {
            None => format!(
                "repository names have the form <organisation>/<registry>/<image>; `{repo}` has fewer parts"
            ),
            Some((org, slug)) if !registry_exists && (p.is_admin() || p.org() == Some(org)) => {
                if e.get_org(org)?.is_none() {
                    format!(
                        "organisation {org} does not exist; create it with: berth org create {org}"
                    )
                } else {
                    format!(
                        "registry {org}/{slug} does not exist; create it with: berth registry create {org} {slug}"
                    )
                }
            }
            Some(_) => generic,
        };
        Ok(self.refuse(AuthOutcome::NotFound, 404, ErrorCode::NameUnknown, msg))
    }

    fn refuse(&self, o: AuthOutcome, status: u16, code: ErrorCode, message: String) -> Auth {
        self.metrics.auth_outcome(o);
        Auth::Refused(Refusal {
            status,
            code,
            message,
            www_authenticate: None,
            retry_after: None,
        })
    }

    pub fn refuse_rate(&self, wait: u64) -> Auth {
        self.metrics.auth_outcome(AuthOutcome::RateLimited);
        Auth::Refused(Refusal {
            status: 429,
            code: ErrorCode::TooManyRequests,
            message: ratelimit::throttled(wait),
            www_authenticate: None,
            retry_after: Some(wait),
        })
    }

    fn unauthorized(
        &self,
        req: &AuthRequest,
        scope: Option<&str>,
        error: Option<&str>,
        message: &str,
    ) -> Auth {
        let outcome = match error {
            Some("invalid_token") => AuthOutcome::InvalidToken,
            Some(_) => AuthOutcome::InsufficientScope,
            None => AuthOutcome::Challenged,
        };
        self.metrics.auth_outcome(outcome);
        // RFC 6750 §3.1: a valid token short of the scope is 403, still with the challenge
        // naming the scope to ask for. Clients that keep their token through a 401 (the
        // Python ORAS client does, fetching a new one only on 403) then ask for a wider
        // one; those that fetch tokens per scope up front never meet it.
        let (status, code) = match outcome {
            AuthOutcome::InsufficientScope => (403, ErrorCode::Denied),
            _ => (401, ErrorCode::Unauthorized),
        };
        Auth::Refused(Refusal {
            status,
            code,
            message: message.to_string(),
            www_authenticate: Some(self.challenge(req.host.as_deref(), scope, error)),
            retry_after: None,
        })
    }

    /// The token endpoint's absolute URL (spec digest §9.2: `realm` MUST be absolute).
    pub fn realm(&self, host: Option<&str>) -> String {
        match &self.settings.public_url {
            Some(u) => format!("{u}/auth/token"),
            None => format!("http://{}/auth/token", request_host(host)),
        }
    }

    /// The `host[:port]` clients reach the registry at, for the commands the web pages
    /// show: the public URL's, else the request's `Host` (see [`request_host`]).
    pub fn public_host<'a>(&'a self, host: Option<&'a str>) -> &'a str {
        match &self.settings.public_url {
            Some(u) => url_host(u),
            None => request_host(host),
        }
    }

    /// `Bearer realm="…",service="…"[,scope="…"][,error="…"]`, every value quoted.
    pub fn challenge(
        &self,
        host: Option<&str>,
        scope: Option<&str>,
        error: Option<&str>,
    ) -> String {
        let mut c = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            self.realm(host),
            self.settings.service
        );
        if let Some(s) = scope {
            c.push_str(&format!(",scope=\"{s}\""));
        }
        if let Some(e) = error {
            c.push_str(&format!(",error=\"{e}\""));
        }
        c
    }

    /// Whether `caller` may pull `repo`, with a registry cache for listing many names.
    pub fn may_pull(
        &self,
        e: &Engine,
        caller: &Caller,
        repo: &str,
        cache: &mut HashMap<(String, String), Option<RegistryRec>>,
    ) -> Result<bool, StoreError> {
        if caller.principal.is_admin() && caller.claims.is_none() {
            return Ok(true);
        }
        let Some((org, slug)) = place(repo) else {
            return Ok(false);
        };
        let key = (org.to_string(), slug.to_string());
        let reg = match cache.get(&key) {
            Some(r) => r.clone(),
            None => {
                let r = e.get_registry(org, slug)?;
                cache.insert(key, r.clone());
                r
            }
        };
        Ok(grant(caller, repo, reg.as_ref()).1.pull)
    }
}

/// The `host[:port]` of a URL such as `https://registry.example.com/`.
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// A request's `Host` when it is a plain host name or address (with a port), else
/// `localhost`: it is echoed into challenges and pages, so nothing else passes.
pub fn request_host(host: Option<&str>) -> &str {
    host.map(str::trim)
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
        })
        .unwrap_or("localhost")
}

/// What `caller` may do on `repo` in registry `reg`: (what its credential allows, that
/// narrowed by a bearer token's claims).
fn grant(caller: &Caller, repo: &str, reg: Option<&RegistryRec>) -> (Actions, Actions) {
    let under = allowed(&caller.principal, reg);
    let eff = match &caller.claims {
        Some(c) => intersect(under, c.actions_for(repo)),
        None => under,
    };
    (under, eff)
}

/// The scope a challenge names: every scope the request needs (spec digest §9.2).
fn scope_of(required: &Access, optional: Option<&Access>) -> Option<String> {
    let one = |a: &Access| match &a.resource {
        Resource::Ping => None,
        Resource::Catalog => Some("registry:catalog:*".to_string()),
        Resource::Repository(n) => Some(format!(
            "repository:{}:{}",
            n.as_str(),
            bearer::action_names(a.actions).join(",")
        )),
    };
    let parts: Vec<String> = std::iter::once(required)
        .chain(optional)
        .filter_map(one)
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

#[cfg(test)]
mod tests;
