//! The management JSON API, `/api/v1/…` (docs/auth.md, "Management API and audit log"): organisations,
//! registries, tokens and the audit log, and garbage collection (`POST /api/v1/gc`). JSON
//! in and out; errors are `{"error":{"code","message"}}` with 400 bad input, 401 no or
//! invalid token, 403 not allowed, 404 missing, 409 exists, not empty or already running.
//! The admin token may do everything; an organisation token may read its own
//! organisation as the registry shows it: a registry it may not pull (limited to others,
//! private) does not exist for it, so `GET …/registries` omits it, `GET
//! …/registries/{slug}` is the same 404 as for an unknown slug, and the audit log leaves
//! out entries about it. Entries about no registry (the organisation, tokens) and listing
//! tokens (`GET …/tokens`: ids, scopes, last use) are the admin token's; other tokens get
//! 403. `DELETE /api/v1/tokens/{id}` takes the admin token; to any other token, another
//! organisation's token (or an admin token) is the same 404 as an unknown id. Every change
//! to an organisation is audited. Runs on a worker: writes wait on the engine's commit.

use crate::audit;
use crate::auth::credentials::{self, Presented, ADMIN_PREFIX, PAT_PREFIX, REGISTRY_PREFIX};
use crate::auth::policy::{may_read, Principal};
use crate::auth::{ratelimit, AuthError, Authority, Ctx};
use crate::proxies::forwarded_for;
use crate::secret::{new_token_id, new_token_secret, sha256};
use crate::web::form;
use berth_core::{WebRequest, WebResponse};
use berth_engine::{
    is_slug, slug_of, AuditRec, Engine, GcError, GcReport, OrgRec, RegistryRec, StoreError,
    TenancyError, TokenKind, TokenRec, Visibility,
};
use serde_json::{json, Value};

pub const PREFIX: &str = "/api/";

/// A failed API call: status, code, message.
struct Fail(u16, &'static str, String);

type Answer = Result<(u16, Value), Fail>;

fn bad(msg: impl Into<String>) -> Fail {
    Fail(400, "BAD_REQUEST", msg.into())
}
fn forbidden(msg: impl Into<String>) -> Fail {
    Fail(403, "FORBIDDEN", msg.into())
}
fn missing(msg: impl Into<String>) -> Fail {
    Fail(404, "NOT_FOUND", msg.into())
}
fn conflict(msg: impl Into<String>) -> Fail {
    Fail(409, "CONFLICT", msg.into())
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        let (status, code, message) = crate::failure::store_status(&e);
        Fail(status, code, message)
    }
}

impl From<TenancyError> for Fail {
    fn from(e: TenancyError) -> Self {
        let msg = e.to_string();
        match e {
            TenancyError::OrgExists | TenancyError::RegistryExists => conflict(msg),
            TenancyError::RegistryNotEmpty => conflict(msg),
            TenancyError::OrgUnknown
            | TenancyError::RegistryUnknown
            | TenancyError::TokenUnknown => missing(msg),
            TenancyError::Invalid(_) => bad(msg),
            TenancyError::Store(s) => Fail::from(s),
        }
    }
}

/// Runs a garbage collection (dry or not) for `POST /api/v1/gc`.
pub type Collect<'a> = dyn Fn(bool) -> Result<GcReport, GcError> + 'a;

pub fn answer(
    e: &Engine,
    auth: &Authority,
    req: &WebRequest,
    ctx: &Ctx,
    gc: &Collect<'_>,
) -> WebResponse {
    let ctx = &auth.for_request(ctx, forwarded_for(&req.headers).as_deref());
    let header = req.header("authorization");
    let presented = credentials::parse(header);
    let result = match who(e, auth, &presented, ctx) {
        Ok(p) => route(e, &p, req, ctx, gc),
        Err(Refused::Fail(f)) => Err(f),
        Err(Refused::Throttled(wait)) => {
            let mut r = respond(Err(Fail(
                429,
                "TOO_MANY_REQUESTS",
                ratelimit::throttled(wait),
            )));
            r.headers.push(("Retry-After".into(), wait.to_string()));
            return r;
        }
    };
    let mut r = respond(result);
    if r.status == 401 {
        r.headers.push((
            "WWW-Authenticate".into(),
            format!("Bearer realm=\"{}\"", auth.settings.service),
        ));
    }
    r
}

/// Why `who` found no caller.
enum Refused {
    Fail(Fail),
    /// A failed authentication past the allowance: the seconds to wait.
    Throttled(u64),
}

fn who(
    e: &Engine,
    auth: &Authority,
    presented: &Presented,
    ctx: &Ctx,
) -> Result<Principal, Refused> {
    let unauthorized = |m: &str| Fail(401, "UNAUTHORIZED", m.to_string());
    let failed = |why: &str, f: Fail| match auth.failed(ctx, why) {
        Some(wait) => Refused::Throttled(wait),
        None => Refused::Fail(f),
    };
    match presented {
        Presented::Anonymous => Err(Refused::Fail(unauthorized(
            "an access token is required: send Authorization: Bearer <token> (BERTH_TOKEN or DATA/admin-token)",
        ))),
        Presented::Bearer(_) => Err(failed(
            "bearer token on the management API",
            unauthorized("send an access token (berth_…), not a bearer token"),
        )),
        p => match auth.authenticate(e, p, ctx) {
            Ok(c) => Ok(c.principal),
            Err(AuthError::Store(s)) => Err(Refused::Fail(Fail::from(s))),
            Err(AuthError::Invalid(why)) => Err(failed(
                why,
                unauthorized(&format!("{why}; check the token")),
            )),
        },
    }
}

fn respond(r: Answer) -> WebResponse {
    let (status, body) = match r {
        Ok(ok) => ok,
        Err(Fail(status, code, message)) => (
            status,
            json!({ "error": { "code": code, "message": message } }),
        ),
    };
    WebResponse {
        status,
        content_type: "application/json".into(),
        headers: vec![("Cache-Control".into(), "no-store".into())],
        body: body.to_string().into(),
    }
}

/// May `p` read (`write == false`) or change organisation `org`'s records?
fn check(p: &Principal, org: &str, write: bool) -> Result<(), Fail> {
    if p.is_admin() {
        return Ok(());
    }
    let own = matches!(p, Principal::Token(t) if t.kind == TokenKind::Org && t.org.as_deref() == Some(org));
    match (own, write) {
        (true, false) => Ok(()),
        (true, true) => Err(forbidden(
            "organisation tokens may only read; use the admin token to make changes",
        )),
        // What the caller may not see is indistinguishable from what does not exist.
        (false, false) if matches!(p, Principal::Token(t) if t.kind == TokenKind::Org) => {
            Err(missing(format!("no organisation {org}")))
        }
        _ => Err(forbidden(
            "this token may not use the management API for this organisation",
        )),
    }
}

fn slug(s: &str, what: &str) -> Result<(), Fail> {
    if is_slug(s) {
        Ok(())
    } else {
        Err(bad(format!(
            "`{s}` is not a valid {what} slug: use lower-case letters, digits and single dashes (a-z0-9, at most 39 characters)"
        )))
    }
}

/// The body's JSON object, refusing fields other than `known`: a misspelt or unsupported
/// field would otherwise be a 200 that did nothing.
fn body_of(req: &WebRequest, known: &[&str]) -> Result<serde_json::Map<String, Value>, Fail> {
    fields(&req.body, known)
}

/// [`body_of`] for any bytes, its refusal as the message the caller would get: what
/// `untrusted::management_body` hands to fuzz targets.
pub fn parse_body(bytes: &[u8], known: &[&str]) -> Result<serde_json::Map<String, Value>, String> {
    fields(bytes, known).map_err(|Fail(_, _, message)| message)
}

fn fields(bytes: &[u8], known: &[&str]) -> Result<serde_json::Map<String, Value>, Fail> {
    let m = body(bytes)?;
    if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown field `{k}`; this call takes {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(m)
}

fn body(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, Fail> {
    if bytes.is_empty() {
        return Ok(Default::default());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("the body must be a JSON object")),
        Err(e) => Err(bad(format!("the body is not valid JSON: {e}"))),
    }
}

fn opt_str(m: &serde_json::Map<String, Value>, k: &str) -> Result<Option<String>, Fail> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("`{k}` must be a string"))),
    }
}

fn opt_bool(m: &serde_json::Map<String, Value>, k: &str) -> Result<Option<bool>, Fail> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad(format!("`{k}` must be true or false"))),
    }
}

fn opt_u64(m: &serde_json::Map<String, Value>, k: &str) -> Result<Option<u64>, Fail> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| bad(format!("`{k}` must be a positive whole number of seconds"))),
    }
}

fn route(e: &Engine, p: &Principal, req: &WebRequest, ctx: &Ctx, gc: &Collect<'_>) -> Answer {
    let Some(rest) = req.path.strip_prefix("/api/v1/") else {
        return Err(missing("no such API; the management API is under /api/v1/"));
    };
    let seg: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let m = req.method.as_str();
    match (m, seg.as_slice()) {
        ("POST", ["orgs"]) => create_org(e, p, req, ctx),
        ("POST", ["gc"]) => collect(p, req, gc),
        ("GET", ["orgs"]) => list_orgs(e, p),
        ("GET", ["orgs", org]) => {
            slug(org, "organisation")?;
            check(p, org, false)?;
            let o = e
                .get_org(org)?
                .ok_or_else(|| missing(format!("no organisation {org}")))?;
            Ok((200, org_json(&o)))
        }
        ("POST", ["orgs", org, "registries"]) => create_registry(e, p, org, req, ctx),
        ("GET", ["orgs", org, "registries"]) => {
            slug(org, "organisation")?;
            check(p, org, false)?;
            let regs = e.list_registries(org)?;
            let shown = regs.iter().filter(|r| may_read(p, r)).map(registry_json);
            Ok((200, Value::Array(shown.collect())))
        }
        ("GET", ["orgs", org, "registries", reg]) => {
            let r = registry(e, p, org, reg, false)?;
            Ok((200, registry_json(&r)))
        }
        ("PATCH", ["orgs", org, "registries", reg]) => update_registry(e, p, org, reg, req, ctx),
        ("DELETE", ["orgs", org, "registries", reg]) => {
            let r = registry(e, p, org, reg, true)?;
            let deleted = audit::by(ctx, org, p, "registry.delete", &format!("{org}/{reg}"), "");
            let why = format!("registry {org}/{reg} deleted");
            let each_revoked = audit::by(ctx, org, p, "token.revoke", "", &why);
            let revoked =
                e.delete_registry_audited(org, reg, ctx.unix, vec![deleted], Some(each_revoked))?;
            let mut v = registry_json(&r);
            v["revoked_tokens"] = json!(revoked);
            Ok((200, v))
        }
        ("POST", ["orgs", org, "registries", reg, "tokens"]) => {
            registry(e, p, org, reg, true)?;
            let m = body_of(req, &["description", "expires_in"])?;
            let description = opt_str(&m, "description")?.unwrap_or_default();
            let expires_in = opt_u64(&m, "expires_in")?;
            create_token(
                e,
                p,
                ctx,
                org,
                TokenKind::Registry,
                (true, false),
                vec![reg.to_string()],
                description,
                expires_in,
            )
        }
        ("POST", ["orgs", org, "tokens"]) => {
            slug(org, "organisation")?;
            check(p, org, true)?;
            let m = body_of(req, &["scopes", "registries", "description", "expires_in"])?;
            let scopes = match m.get("scopes") {
                Some(Value::Array(a)) if !a.is_empty() => a,
                _ => {
                    return Err(bad(
                        "`scopes` must list read_packages and/or write_packages",
                    ))
                }
            };
            let (mut read, mut write) = (false, false);
            for s in scopes {
                match s.as_str() {
                    Some("read_packages") => read = true,
                    Some("write_packages") => write = true,
                    _ => {
                        return Err(bad(format!(
                            "unknown scope {s}; use read_packages or write_packages"
                        )))
                    }
                }
            }
            let registries = match m.get("registries") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => {
                    let mut out = Vec::new();
                    for r in a {
                        let r = r
                            .as_str()
                            .ok_or_else(|| bad("`registries` must list registry slugs"))?;
                        slug(r, "registry")?;
                        out.push(r.to_string());
                    }
                    out
                }
                Some(_) => return Err(bad("`registries` must list registry slugs")),
            };
            let description = opt_str(&m, "description")?.unwrap_or_default();
            let expires_in = opt_u64(&m, "expires_in")?;
            create_token(
                e,
                p,
                ctx,
                org,
                TokenKind::Org,
                (read || write, write),
                registries,
                description,
                expires_in,
            )
        }
        ("GET", ["orgs", org, "tokens"]) => {
            slug(org, "organisation")?;
            check(p, org, false)?;
            if !p.is_admin() {
                return Err(forbidden("only the admin token may list tokens"));
            }
            let toks = e.list_tokens(org)?;
            Ok((200, Value::Array(toks.iter().map(token_json).collect())))
        }
        ("DELETE", ["tokens", id]) => {
            // Another organisation's token (or an admin token) is no token at all to anyone
            // but the admin, as on every other read of the API.
            let rec = e
                .get_token(id)?
                .filter(|t| p.is_admin() || (t.org.is_some() && t.org.as_deref() == p.org()))
                .ok_or_else(|| missing(format!("no token {id}")))?;
            if let Some(org) = &rec.org {
                check(p, org, true)?;
            }
            let entries = rec
                .org
                .iter()
                .map(|org| audit::by(ctx, org, p, "token.revoke", id, ""))
                .collect();
            let rec = e.revoke_token_audited(id, ctx.unix, entries)?;
            Ok((200, token_json(&rec)))
        }
        ("GET", ["orgs", org, "audit"]) => {
            slug(org, "organisation")?;
            check(p, org, false)?;
            if e.get_org(org)?.is_none() {
                return Err(missing(format!("no organisation {org}")));
            }
            let q = form::pairs(&req.query);
            let limit = match form::first(&q, "limit") {
                None => 100,
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| bad("`limit` must be a whole number from 1 to 1000"))?,
            };
            let before = match form::first(&q, "before") {
                None => None,
                Some(v) => Some(
                    v.parse::<u64>()
                        .map_err(|_| bad("`before` must be an audit sequence number"))?,
                ),
            };
            let regs = e
                .list_registries(org)?
                .into_iter()
                .map(|r| (r.slug.clone(), r))
                .collect();
            let recs = e.list_audit_where(org, before, limit, |a| audit::shown_to(p, a, &regs))?;
            Ok((200, Value::Array(recs.iter().map(audit_json).collect())))
        }
        (_, ["orgs"] | ["orgs", _] | ["orgs", _, "registries"] | ["orgs", _, "registries", _])
        | (_, ["orgs", _, "tokens"] | ["orgs", _, "registries", _, "tokens"])
        | (_, ["tokens", _] | ["orgs", _, "audit"] | ["gc"]) => Err(Fail(
            405,
            "METHOD_NOT_ALLOWED",
            format!("{m} is not allowed here"),
        )),
        _ => Err(missing(format!("no API at {}", req.path))),
    }
}

/// `POST /api/v1/gc[?dry_run=true]`: the admin token only, as the store is shared by every
/// organisation.
fn collect(p: &Principal, req: &WebRequest, gc: &Collect<'_>) -> Answer {
    if !p.is_admin() {
        return Err(forbidden("only the admin token may run garbage collection"));
    }
    let q = form::pairs(&req.query);
    let dry_run = match form::first(&q, "dry_run") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(bad("`dry_run` must be true or false")),
    };
    let r = gc(dry_run).map_err(|e| match e {
        GcError::Busy => conflict(e.to_string()),
        GcError::Store(s) => Fail::from(s),
    })?;
    Ok((
        200,
        json!({
            "dry_run": r.dry_run,
            "uploads_expired": r.uploads_expired,
            "links_removed": r.links_removed,
            "blobs_removed": r.blobs_removed,
            "blob_bytes_removed": r.blob_bytes_removed,
            "blobs_moved": r.blobs_moved,
            "bytes_moved": r.bytes_moved,
            "packs_removed": r.packs_removed,
            "pack_bytes_removed": r.pack_bytes_removed,
            "blobs_unreadable": r.blobs_unreadable,
        }),
    ))
}

fn create_org(e: &Engine, p: &Principal, req: &WebRequest, ctx: &Ctx) -> Answer {
    if !p.is_admin() {
        return Err(forbidden("only the admin token may create organisations"));
    }
    let m = body_of(req, &["slug"])?;
    let s = opt_str(&m, "slug")?.ok_or_else(|| bad("`slug` is required"))?;
    slug(&s, "organisation")?;
    if crate::web::ui::RESERVED.contains(&s.as_str()) {
        return Err(bad(format!(
            "`{s}` is a path of the server's own (/{s}), so its organisation page could not be reached; choose another slug (reserved: {})",
            crate::web::ui::RESERVED.join(", ")
        )));
    }
    let entry = audit::by(ctx, &s, p, "org.create", &s, "");
    let o = e.create_org_audited(&s, ctx.unix, vec![entry])?;
    Ok((201, org_json(&o)))
}

fn list_orgs(e: &Engine, p: &Principal) -> Answer {
    let orgs = if p.is_admin() {
        e.list_orgs()?
    } else {
        match p {
            Principal::Token(t) if t.kind == TokenKind::Org => match t.org.as_deref() {
                Some(o) => e.get_org(o)?.into_iter().collect(),
                None => Vec::new(),
            },
            _ => return Err(forbidden("registry tokens may not use the management API")),
        }
    };
    Ok((200, Value::Array(orgs.iter().map(org_json).collect())))
}

fn registry(
    e: &Engine,
    p: &Principal,
    org: &str,
    reg: &str,
    write: bool,
) -> Result<RegistryRec, Fail> {
    slug(org, "organisation")?;
    slug(reg, "registry")?;
    check(p, org, write)?;
    e.get_registry(org, reg)?
        .filter(|r| may_read(p, r))
        .ok_or_else(|| missing(format!("no registry {org}/{reg}")))
}

fn create_registry(e: &Engine, p: &Principal, org: &str, req: &WebRequest, ctx: &Ctx) -> Answer {
    slug(org, "organisation")?;
    check(p, org, true)?;
    let m = body_of(req, &["name", "public", "description"])?;
    let name = opt_str(&m, "name")?.ok_or_else(|| bad("`name` is required"))?;
    let s = slug_of(&name).ok_or_else(|| {
        bad(format!(
            "`{name}` does not make a registry slug: use letters and digits, at most 39 characters once spaces become dashes"
        ))
    })?;
    let public = opt_bool(&m, "public")?.unwrap_or(false);
    let rec = RegistryRec {
        org: org.to_string(),
        slug: s.clone(),
        name,
        description: opt_str(&m, "description")?.unwrap_or_default(),
        visibility: if public {
            Visibility::Public
        } else {
            Visibility::Private
        },
        created: ctx.unix,
    };
    let detail = if public { "public" } else { "private" };
    let entry = audit::by(
        ctx,
        org,
        p,
        "registry.create",
        &format!("{org}/{s}"),
        detail,
    );
    let rec = e.create_registry_audited(rec, vec![entry])?;
    Ok((201, registry_json(&rec)))
}

fn update_registry(
    e: &Engine,
    p: &Principal,
    org: &str,
    reg: &str,
    req: &WebRequest,
    ctx: &Ctx,
) -> Answer {
    registry(e, p, org, reg, true)?;
    let m = body_of(req, &["public", "description"])?;
    let public = opt_bool(&m, "public")?;
    let description = opt_str(&m, "description")?;
    let vis = public.map(|p| {
        if p {
            Visibility::Public
        } else {
            Visibility::Private
        }
    });
    let mut detail = Vec::new();
    if let Some(p) = public {
        detail.push(if p { "public" } else { "private" }.to_string());
    }
    if description.is_some() {
        detail.push("description".to_string());
    }
    let target = format!("{org}/{reg}");
    let entry = audit::by(ctx, org, p, "registry.update", &target, &detail.join(","));
    let rec = e.update_registry_audited(org, reg, vis, description, vec![entry])?;
    Ok((200, registry_json(&rec)))
}

#[allow(clippy::too_many_arguments)]
fn create_token(
    e: &Engine,
    p: &Principal,
    ctx: &Ctx,
    org: &str,
    kind: TokenKind,
    (read, write): (bool, bool),
    registries: Vec<String>,
    description: String,
    expires_in: Option<u64>,
) -> Answer {
    let prefix = match kind {
        TokenKind::Org => PAT_PREFIX,
        TokenKind::Registry => REGISTRY_PREFIX,
        TokenKind::Admin => ADMIN_PREFIX,
    };
    let secret = new_token_secret(prefix).map_err(|m| Fail(500, "INTERNAL", m))?;
    let rec = TokenRec {
        id: new_token_id().map_err(|m| Fail(500, "INTERNAL", m))?,
        kind,
        org: Some(org.to_string()),
        read,
        write,
        registries,
        description,
        created: ctx.unix,
        expires: expires_in.map(|s| ctx.unix.saturating_add(s)),
        last_used: None,
        revoked: None,
        hash: sha256(secret.expose().as_bytes()),
    };
    let detail = token_json(&rec)["scopes"].to_string();
    let entry = audit::by(ctx, org, p, "token.create", &rec.id, &detail);
    e.create_token_audited(rec.clone(), vec![entry])?;
    let mut v = token_json(&rec);
    v["token"] = Value::String(secret.expose().to_string());
    Ok((201, v))
}

fn org_json(o: &OrgRec) -> Value {
    json!({ "slug": o.slug, "created": o.created })
}

fn registry_json(r: &RegistryRec) -> Value {
    json!({
        "org": r.org,
        "slug": r.slug,
        "name": r.name,
        "description": r.description,
        "public": r.visibility == Visibility::Public,
        "visibility": match r.visibility { Visibility::Public => "public", Visibility::Private => "private" },
        "created": r.created,
    })
}

/// A token record without its hash (and, having none, without its secret).
fn token_json(t: &TokenRec) -> Value {
    let mut scopes = Vec::new();
    if t.read || t.write {
        scopes.push("read_packages");
    }
    if t.write {
        scopes.push("write_packages");
    }
    json!({
        "id": t.id,
        "kind": match t.kind { TokenKind::Admin => "admin", TokenKind::Org => "org", TokenKind::Registry => "registry" },
        "org": t.org,
        "scopes": scopes,
        "registries": t.registries,
        "description": t.description,
        "created": t.created,
        "expires": t.expires,
        "last_used": t.last_used,
        "revoked": t.revoked,
    })
}

fn audit_json(a: &AuditRec) -> Value {
    json!({
        "seq": a.seq,
        "time": a.time,
        "org": a.org,
        "actor": a.actor,
        "action": a.action,
        "target": a.target,
        "detail": a.detail,
    })
}
