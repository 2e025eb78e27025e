//! The package API, `GET /api/v1/packages/…` (JSON): an organisation's registries, a
//! registry's images, an image's versions, a version's details, a directory of its files
//! and its layers, for the CLI and scripts. Access is the registry's, as for pulling: no
//! credentials see public registries; a token (Basic password or `Bearer berth_…`) sees
//! what it may pull; what a caller may not see is the same 404 as what does not exist.
//! Errors are `{"error":{"code","message"}}`, as in the management API.

use berth_core::http::percent::percent_decode;
use berth_core::{WebRequest, WebResponse};
use berth_engine::Engine;
use serde_json::{json, Value};

use super::path::{self, PackagePath};
use super::reply::{failure, json_response, Env, Failure};
use super::view::Viewer;
use crate::auth::credentials;
use crate::auth::policy::Principal;
use crate::auth::{ratelimit, AuthError, Authority, Ctx};
use crate::proxies::forwarded_for;
use crate::web::form;

pub const PREFIX: &str = "/api/v1/packages";
/// `GET /api/v1/search?org=&q=&path=&limit=`.
pub const SEARCH: &str = "/api/v1/search";

/// Results a search gives unless `limit` says otherwise, and the most it may say.
const SEARCH_PAGE: usize = 50;
const SEARCH_PAGE_MAX: usize = 500;

/// Entries per page of a directory unless `limit` says otherwise, and the most it may say.
const FILES_PAGE: usize = 1000;
const FILES_PAGE_MAX: usize = 10_000;

/// Answers one package API request.
pub fn answer(env: &Env<'_>, req: &WebRequest, ctx: &Ctx) -> WebResponse {
    let ctx = &env
        .auth
        .for_request(ctx, forwarded_for(&req.headers).as_deref());
    let p = match caller(env.e, env.auth, req, ctx) {
        Ok(p) => p,
        Err(r) => return r,
    };
    match route(env, &p, req) {
        Ok(Routed::Json(v)) => json_response(200, v),
        Ok(Routed::Response(r)) => r,
        Err(f) => failure(f),
    }
}

/// What a route answers: JSON, or a response of its own (the Download).
enum Routed {
    Json(Value),
    Response(WebResponse),
}

/// Who is asking: anonymous without credentials; credentials that fail are refused
/// (and throttled) rather than treated as anonymous, so a typo is not a silent 404.
pub fn caller(
    e: &Engine,
    auth: &Authority,
    req: &WebRequest,
    ctx: &Ctx,
) -> Result<Principal, WebResponse> {
    let presented = credentials::parse(req.header("authorization"));
    match auth.authenticate(e, &presented, ctx) {
        Ok(c) => Ok(c.principal),
        Err(AuthError::Store(s)) => {
            let (status, code, message) = crate::failure::store_status(&s);
            Err(json_response(
                status,
                json!({"error": {"code": code, "message": message}}),
            ))
        }
        Err(AuthError::Invalid(why)) => {
            if let Some(wait) = auth.failed(ctx, why) {
                let mut r = json_response(
                    429,
                    json!({"error": {"code": "TOO_MANY_REQUESTS", "message": ratelimit::throttled(wait)}}),
                );
                r.headers.push(("Retry-After".into(), wait.to_string()));
                return Err(r);
            }
            let mut r = json_response(
                401,
                json!({"error": {"code": "UNAUTHORIZED", "message": format!("{why}; check the token")}}),
            );
            r.headers.push((
                "WWW-Authenticate".into(),
                format!("Bearer realm=\"{}\"", auth.settings.service),
            ));
            Err(r)
        }
    }
}

fn route(env: &Env<'_>, p: &Principal, req: &WebRequest) -> Result<Routed, Failure> {
    if req.method != "GET" && req.method != "HEAD" {
        return Err((
            405,
            "METHOD_NOT_ALLOWED",
            "the package API is read-only: use GET".into(),
        ));
    }
    let q = form::pairs(&req.query);
    let v = Viewer {
        e: env.e,
        p,
        host: env.host,
        downloads: env.downloads,
    };
    if req.path == SEARCH {
        let some = |k: &str| form::first(&q, k).filter(|s| !s.is_empty());
        let limit = number(&q, "limit", SEARCH_PAGE, SEARCH_PAGE_MAX)?;
        let hits = v.search(some("org"), some("q"), some("path"), limit)?;
        return Ok(Routed::Json(json!({ "results": ser(hits) })));
    }
    let rest = req
        .path
        .strip_prefix(PREFIX)
        .unwrap_or("")
        .trim_matches('/');
    let rest = percent_decode(rest, false);
    let at = path::parse(&rest).map_err(|m| (400, "BAD_REQUEST", m))?;
    let platform = form::first(&q, "platform").filter(|s| !s.is_empty());
    if let PackagePath::Version {
        repo,
        version,
        what: Some(w),
    } = &at
    {
        if w == "download" {
            let r = super::download::answer(env, p, repo, version, platform, req);
            return Ok(Routed::Response(r));
        }
    }
    Ok(Routed::Json(match at {
        PackagePath::Org(org) => {
            json!({ "organisation": org, "registries": ser(v.registries(&org)?) })
        }
        PackagePath::Registry { org, registry } => {
            let (r, images) = v.images(&org, &registry)?;
            json!({
                "registry": { "org": r.org, "slug": r.slug, "name": r.name, "description": r.description,
                              "visibility": format!("{:?}", r.visibility).to_lowercase() },
                "images": ser(images),
            })
        }
        PackagePath::Image { repo } => {
            json!({ "repository": repo, "versions": ser(v.versions(&repo)?) })
        }
        PackagePath::Version {
            repo,
            version,
            what,
        } => match what.as_deref() {
            None => ser(v.details(&repo, &version, platform)?),
            Some("files") => {
                let limit = number(&q, "limit", FILES_PAGE, FILES_PAGE_MAX)?;
                let dir = form::first(&q, "path").unwrap_or("/");
                let after = form::first(&q, "after").filter(|s| !s.is_empty());
                ser(v.files(&repo, &version, platform, dir, after, limit)?)
            }
            Some("layers") => match form::first(&q, "layer") {
                Some(n) => {
                    let index = n.parse::<usize>().map_err(|_| {
                        (
                            400,
                            "BAD_REQUEST",
                            format!("`layer` must be a layer's number from 0, not `{n}`"),
                        )
                    })?;
                    ser(v.layer_changes(&repo, &version, platform, index)?)
                }
                None => {
                    let d = v.details(&repo, &version, platform)?;
                    json!({ "digest": d.digest, "state": d.state, "layers": d.layers })
                }
            },
            Some(other) => {
                return Err((
                    404,
                    "NOT_FOUND",
                    format!("no `{other}` for a version: use files, layers or download"),
                ))
            }
        },
    }))
}

/// A whole-number parameter from 1 to `max`, `default` when absent.
fn number(q: &[(String, String)], k: &str, default: usize, max: usize) -> Result<usize, Failure> {
    match form::first(q, k) {
        None => Ok(default),
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                (
                    400,
                    "BAD_REQUEST",
                    format!("`{k}` must be a whole number from 1 to {max}"),
                )
            }),
    }
}

fn ser<T: serde::Serialize>(x: T) -> Value {
    serde_json::to_value(x).unwrap_or(Value::Null)
}
