//! `/auth/token`, the realm of every challenge (spec digest §9.5, §9.6): the GET form all
//! clients speak (`service`, repeatable `scope`, `account`, optional Basic), and the OAuth2
//! POST form containerd tries first (`grant_type=password`). `grant_type=refresh_token` is
//! refused with 400 so containerd falls back to GET; no refresh token is ever issued.
//! A `service` other than the one challenges name is refused (400); none is accepted.
//! The grant is the intersection of what was asked and what the credential allows; an
//! empty grant is still a 200 (the registry refuses the operation later).

use super::oci_error::{error, store_error};
use crate::auth::bearer::{self, action_names, intersect, ClaimAccess, Claims};
use crate::auth::cache::AuthCache;
use crate::auth::credentials::{self, Presented};
use crate::auth::ratelimit;
use crate::auth::scope::{self, Scope};
use crate::auth::{AuthError, Authority, Caller, Ctx};
use crate::proxies::forwarded_for;
use crate::secret::{random_bytes, Secret};
use crate::web::form;
use berth_core::{WebRequest, WebResponse};
use berth_engine::Engine;

pub const PATH: &str = "/auth/token";

pub fn answer(e: &Engine, auth: &Authority, req: &WebRequest, ctx: &Ctx) -> WebResponse {
    let ctx = &auth.for_request(ctx, forwarded_for(&req.headers).as_deref());
    let header = req.header("authorization");
    let (presented, scopes, oauth) = match req.method.as_str() {
        "GET" | "HEAD" => {
            let q = form::pairs(&req.query);
            if let Err(msg) = own_service(auth, &q) {
                return error(400, "UNSUPPORTED", &msg);
            }
            let scopes: Vec<String> = form::all(&q, "scope").map(str::to_string).collect();
            (credentials::parse(header), scopes, false)
        }
        "POST" => {
            let f = form::pairs(&String::from_utf8_lossy(&req.body));
            match form::first(&f, "grant_type") {
                Some("password") => {}
                Some("refresh_token") => {
                    return oauth_error(
                        400,
                        "unsupported_grant_type",
                        "refresh tokens are not issued; use grant_type=password or GET",
                    )
                }
                _ => {
                    return oauth_error(
                        400,
                        "unsupported_grant_type",
                        "grant_type must be password",
                    )
                }
            }
            if let Err(msg) = own_service(auth, &f) {
                return oauth_error(400, "invalid_request", &msg);
            }
            let password = form::first(&f, "password").unwrap_or("");
            let presented = if password.is_empty() {
                Presented::Anonymous
            } else {
                Presented::Token(Secret::new(password))
            };
            let scopes = form::all(&f, "scope").map(str::to_string).collect();
            (presented, scopes, true)
        }
        _ => {
            let mut r = error(405, "UNSUPPORTED", "use GET or POST");
            r.headers.push(("Allow".into(), "GET, POST".into()));
            return r;
        }
    };
    let mut parsed = Vec::new();
    for s in &scopes {
        match scope::parse(s) {
            Ok(v) => parsed.extend(v),
            Err(msg) if oauth => return oauth_error(400, "invalid_scope", &msg),
            Err(msg) => return error(400, "UNSUPPORTED", &msg),
        }
    }
    let caller = match presented {
        // A bearer token cannot mint another: only access tokens (or nothing) may.
        Presented::Bearer(_) => Err(AuthError::Invalid(
            "the token endpoint takes an access token (Basic password), not a bearer token",
        )),
        ref p => auth.authenticate(e, p, ctx),
    };
    let caller = match caller {
        Ok(c) => c,
        Err(AuthError::Store(err)) => return store_error(&err),
        Err(AuthError::Invalid(why)) => {
            if let Some(wait) = auth.failed(ctx, why) {
                let mut r = error(429, "TOOMANYREQUESTS", &ratelimit::throttled(wait));
                r.headers.push(("Retry-After".into(), wait.to_string()));
                return r;
            }
            let mut r = error(
                401,
                "UNAUTHORIZED",
                &format!("{why}; log in with an access token as the password"),
            );
            r.headers.push((
                "WWW-Authenticate".into(),
                format!("Basic realm=\"{}\"", auth.settings.service),
            ));
            return r;
        }
    };
    let access = match grants(e, auth, &caller, &parsed) {
        Ok(a) => a,
        Err(err) => return store_error(&err),
    };
    let lifetime = auth.settings.bearer_lifetime.as_secs();
    let jti = random_bytes(12).map(hex::encode).unwrap_or_default();
    let claims = Claims {
        sub: match &caller.principal {
            crate::auth::policy::Principal::Token(t) => t.id.clone(),
            crate::auth::policy::Principal::Anonymous => String::new(),
        },
        access,
        iat: ctx.unix,
        exp: ctx.unix.saturating_add(lifetime),
        jti,
    };
    let token = bearer::issue(auth.key(), &claims);
    let body = serde_json::json!({
        "token": token.expose(),
        "access_token": token.expose(),
        "expires_in": lifetime,
        "issued_at": rfc3339(ctx.unix),
    });
    WebResponse {
        status: 200,
        content_type: "application/json".into(),
        headers: vec![("Cache-Control".into(), "no-store".into())],
        body: body.to_string().into(),
    }
}

/// A token names no audience of its own, so one asked for another service (a client
/// sent to the wrong realm, or a proxy mixing registries up) is refused rather than
/// issued for this one. Clients echo the challenge's `service`; some leave it out.
fn own_service(auth: &Authority, form: &[(String, String)]) -> Result<(), String> {
    let ours = auth.settings.service.as_str();
    match form::first(form, "service") {
        None => Ok(()),
        Some(s) if s == ours => Ok(()),
        Some(s) => Err(format!(
            "this token endpoint serves service `{ours}`, not `{s}`; ask for the service the registry's challenge names"
        )),
    }
}

/// What to put in the token: per asked scope, the actions both asked and allowed.
fn grants(
    e: &Engine,
    auth: &Authority,
    caller: &Caller,
    asked: &[Scope],
) -> Result<Vec<ClaimAccess>, berth_engine::StoreError> {
    let mut out: Vec<ClaimAccess> = Vec::new();
    let mut cache = AuthCache::default();
    for s in asked {
        match s {
            Scope::Repository { name, actions } => {
                let (under, _, _) = auth.effective(e, caller, name.as_str(), &mut cache)?;
                let g = intersect(*actions, under);
                let names = action_names(g);
                if names.is_empty() {
                    continue;
                }
                match out
                    .iter_mut()
                    .find(|a| a.kind == "repository" && a.name == name.as_str())
                {
                    Some(a) => {
                        let merged = bearer::union(bearer::actions_of(&a.actions), g);
                        a.actions = action_names(merged);
                    }
                    None => out.push(ClaimAccess {
                        kind: "repository".into(),
                        name: name.as_str().to_string(),
                        actions: names,
                    }),
                }
            }
            Scope::Catalog => {
                if !out.iter().any(|a| a.kind == "registry") {
                    out.push(ClaimAccess {
                        kind: "registry".into(),
                        name: "catalog".into(),
                        actions: vec!["*".into()],
                    });
                }
            }
            Scope::Other => {}
        }
    }
    Ok(out)
}

fn oauth_error(status: u16, code: &str, message: &str) -> WebResponse {
    let body = serde_json::json!({ "error": code, "error_description": message });
    WebResponse {
        status,
        content_type: "application/json".into(),
        headers: Vec::new(),
        body: body.to_string().into(),
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(unix: u64) -> String {
    crate::rfc3339::seconds(unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
    }
}
