//! One function per management command: build the API call, then print either the API's JSON
//! (`--json`) or a table. Output goes to a buffer the caller writes, so tests can read it.

use super::session::{emit, AdminError, Out, Session};
use super::table::{fields, rfc3339, Table};
use crate::cli::{Command, OrgCommand, RegistryCommand, TokenCommand};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::time::Duration;

/// Runs `cmd` (one of the management commands), appending its output to `out`.
pub fn execute(
    cmd: Command,
    out: &mut Out,
    env_token: &Option<OsString>,
) -> Result<(), AdminError> {
    let env = env_token;
    match cmd {
        Command::Org { command } => match command {
            OrgCommand::Create { org, api } => {
                let s = Session::open(&api, env)?;
                let v = s.call("POST", "/api/v1/orgs", Some(&json!({ "slug": org })))?;
                emit(out, &s, &v, || {
                    format!("created organisation {}\n", str_of(&v, "slug", &org))
                })
            }
            OrgCommand::List { api } => {
                let s = Session::open(&api, env)?;
                let v = s.call("GET", "/api/v1/orgs", None)?;
                let items = items(&v, "orgs")?;
                emit(out, &s, &v, || {
                    let mut t = Table::new(&["ORG", "CREATED"]);
                    for o in items {
                        t.row(vec![str_of(o, "slug", "-"), time_of(o, "created", "-")]);
                    }
                    or_none(
                        t,
                        "no organisations; create one with: berth org create ORG\n",
                    )
                })
            }
        },
        Command::Registry { command } => registry(command, out, env),
        Command::Gc { dry_run, api } => {
            let s = Session::open(&api, env)?;
            let path = if dry_run {
                "/api/v1/gc?dry_run=true"
            } else {
                "/api/v1/gc"
            };
            // A collection of a large store reads every blob row and may move gigabytes.
            let v = s.call_waiting("POST", path, None, Duration::from_secs(24 * 3600))?;
            emit(out, &s, &v, || gc_fields(&v))
        }
        Command::Token { command } => token(command, out, env),
        Command::Package { command } => super::package::execute(command, out, env),
        Command::Search {
            org,
            name,
            path,
            api,
        } => super::package::search(&org, name.as_deref(), path.as_deref(), &api, out, env),
        Command::Audit { org, limit, api } => {
            let s = Session::open(&api, env)?;
            let path = match limit {
                Some(n) => format!("/api/v1/orgs/{org}/audit?limit={n}"),
                None => format!("/api/v1/orgs/{org}/audit"),
            };
            let v = s.call("GET", &path, None)?;
            let items = items(&v, "entries")?;
            emit(out, &s, &v, || {
                let mut t = Table::new(&["TIME", "ACTOR", "ACTION", "TARGET", "DETAIL"]);
                for e in items {
                    t.row(vec![
                        time_of(e, "time", "-"),
                        str_of(e, "actor", "-"),
                        str_of(e, "action", "-"),
                        str_of(e, "target", ""),
                        str_of(e, "detail", ""),
                    ]);
                }
                or_none(t, &format!("no audit entries for {org}\n"))
            })
        }
        Command::Serve { .. }
        | Command::Check { .. }
        | Command::Migrate { .. }
        | Command::Defaults
        | Command::ResetAdminToken { .. } => Err(AdminError::Unexpected(
            "not a management command".to_string(),
        )),
    }
}

fn registry(cmd: RegistryCommand, out: &mut Out, env: &Option<OsString>) -> Result<(), AdminError> {
    match cmd {
        RegistryCommand::Create {
            org,
            name,
            public,
            description,
            api,
        } => {
            let s = Session::open(&api, env)?;
            let mut body = json!({ "name": name, "public": public });
            if let Some(d) = description {
                body["description"] = Value::String(d);
            }
            let v = s.call(
                "POST",
                &format!("/api/v1/orgs/{org}/registries"),
                Some(&body),
            )?;
            emit(out, &s, &v, || {
                format!(
                    "created {} registry {org}/{}\n",
                    visibility(&v),
                    str_of(&v, "slug", "?")
                )
            })
        }
        RegistryCommand::List { org, api } => {
            let s = Session::open(&api, env)?;
            let v = s.call("GET", &format!("/api/v1/orgs/{org}/registries"), None)?;
            let items = items(&v, "registries")?;
            emit(out, &s, &v, || {
                let mut t =
                    Table::new(&["REGISTRY", "NAME", "VISIBILITY", "CREATED", "DESCRIPTION"]);
                for r in items {
                    t.row(vec![
                        str_of(r, "slug", "-"),
                        str_of(r, "name", ""),
                        visibility(r).to_string(),
                        time_of(r, "created", "-"),
                        str_of(r, "description", ""),
                    ]);
                }
                or_none(
                    t,
                    &format!("no registries in {org}; create one with: berth registry create {org} NAME\n"),
                )
            })
        }
        RegistryCommand::Show { registry, api } => {
            let s = Session::open(&api, env)?;
            let v = s.call("GET", &registry_url(&registry), None)?;
            emit(out, &s, &v, || registry_fields(&v, &registry.org))
        }
        RegistryCommand::Set {
            registry,
            public,
            private,
            description,
            api,
        } => {
            let s = Session::open(&api, env)?;
            let mut body = json!({});
            // clap's required group guarantees exactly one of the two.
            if public || private {
                body["public"] = Value::Bool(public);
            }
            if let Some(d) = description {
                body["description"] = Value::String(d);
            }
            let v = s.call("PATCH", &registry_url(&registry), Some(&body))?;
            emit(out, &s, &v, || {
                format!(
                    "updated registry {registry}\n{}",
                    registry_fields(&v, &registry.org)
                )
            })
        }
        RegistryCommand::Delete { registry, api } => {
            let s = Session::open(&api, env)?;
            let v = s.call("DELETE", &registry_url(&registry), None)?;
            emit(out, &s, &v, || {
                let ids: Vec<&str> = v["revoked_tokens"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if ids.is_empty() {
                    format!("deleted registry {registry}\n")
                } else {
                    format!(
                        "deleted registry {registry}; revoked the tokens that named it: {}\n",
                        ids.join(", ")
                    )
                }
            })
        }
    }
}

fn registry_url(r: &super::input::RegistryPath) -> String {
    format!("/api/v1/orgs/{}/registries/{}", r.org, r.registry)
}

fn registry_fields(v: &Value, org: &str) -> String {
    fields(&[
        (
            "registry",
            format!("{}/{}", str_of(v, "org", org), str_of(v, "slug", "?")),
        ),
        ("name", str_of(v, "name", "")),
        ("visibility", visibility(v).to_string()),
        ("description", str_of(v, "description", "")),
        ("created", time_of(v, "created", "-")),
    ])
}

/// A collection's report: counts, and sizes in bytes with a readable unit beside them.
fn gc_fields(v: &Value) -> String {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let bytes = |k: &str| {
        let b = n(k);
        format!("{b} ({})", berth_core::limits::human_bytes(b))
    };
    let head = if v.get("dry_run") == Some(&Value::Bool(true)) {
        "dry run: nothing was changed; a collection now would do this\n"
    } else {
        ""
    };
    head.to_string()
        + &fields(&[
            ("links removed", n("links_removed").to_string()),
            ("blobs removed", n("blobs_removed").to_string()),
            ("blob bytes removed", bytes("blob_bytes_removed")),
            ("blobs moved", n("blobs_moved").to_string()),
            ("bytes moved", bytes("bytes_moved")),
            ("packs removed", n("packs_removed").to_string()),
            ("pack bytes removed", bytes("pack_bytes_removed")),
            ("uploads expired", n("uploads_expired").to_string()),
            ("blobs unreadable", n("blobs_unreadable").to_string()),
        ])
}

fn token(cmd: TokenCommand, out: &mut Out, env: &Option<OsString>) -> Result<(), AdminError> {
    match cmd {
        TokenCommand::Create {
            org,
            scopes,
            registries,
            expires_in,
            description,
            api,
        } => {
            let s = Session::open(&api, env)?;
            let mut body = json!({ "scopes": scopes.names(), "registries": registries });
            if let Some(e) = expires_in {
                body["expires_in"] = json!(e);
            }
            if let Some(d) = description {
                body["description"] = Value::String(d);
            }
            let v = s.call("POST", &format!("/api/v1/orgs/{org}/tokens"), Some(&body))?;
            created_token(out, &s, &v, &format!("organisation token for {org}"))
        }
        TokenCommand::CreateRegistry {
            registry,
            expires_in,
            description,
            api,
        } => {
            let s = Session::open(&api, env)?;
            let mut body = json!({});
            if let Some(e) = expires_in {
                body["expires_in"] = json!(e);
            }
            if let Some(d) = description {
                body["description"] = Value::String(d);
            }
            let v = s.call(
                "POST",
                &format!("{}/tokens", registry_url(&registry)),
                Some(&body),
            )?;
            created_token(
                out,
                &s,
                &v,
                &format!("read-only registry token for {registry}"),
            )
        }
        TokenCommand::List { org, api } => {
            let s = Session::open(&api, env)?;
            let v = s.call("GET", &format!("/api/v1/orgs/{org}/tokens"), None)?;
            let items = items(&v, "tokens")?;
            let now = now();
            emit(out, &s, &v, || {
                let mut t = Table::new(&[
                    "ID",
                    "KIND",
                    "SCOPES",
                    "REGISTRIES",
                    "STATUS",
                    "CREATED",
                    "EXPIRES",
                    "LAST USED",
                    "DESCRIPTION",
                ]);
                for k in items {
                    t.row(vec![
                        str_of(k, "id", "-"),
                        str_of(k, "kind", "-"),
                        scopes_of(k),
                        registries_of(k),
                        status_of(k, now).to_string(),
                        time_of(k, "created", "-"),
                        time_of(k, "expires", "never"),
                        time_of(k, "last_used", "never"),
                        str_of(k, "description", ""),
                    ]);
                }
                or_none(
                    t,
                    &format!("no tokens in {org}; create one with: berth token create {org} --scopes read_packages\n"),
                )
            })
        }
        TokenCommand::Revoke { id, api } => {
            let s = Session::open(&api, env)?;
            let v = s.call("DELETE", &format!("/api/v1/tokens/{id}"), None)?;
            emit(out, &s, &v, || {
                format!("revoked token {}\n", str_of(&v, "id", &id))
            })
        }
    }
}

/// Human output of a new token: what it grants, then the secret alone on the last line.
fn created_token(out: &mut Out, s: &Session, v: &Value, what: &str) -> Result<(), AdminError> {
    let secret = v
        .get("token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| AdminError::Unexpected("the new token's secret is missing".to_string()))?;
    emit(out, s, v, || {
        let mut text = format!("created {what}: {}\n", str_of(v, "id", "?"));
        text.push_str(&fields(&[
            ("scopes", scopes_of(v)),
            ("registries", registries_of(v)),
            ("expires", time_of(v, "expires", "never")),
        ]));
        text.push_str("store the token now; it is not shown again:\n");
        text.push_str(secret);
        text.push('\n');
        text
    })
}

fn or_none(t: Table, none: &str) -> String {
    if t.is_empty() {
        none.to_string()
    } else {
        t.render()
    }
}

/// The list in a response: the body itself, or its `key` field.
fn items<'v>(v: &'v Value, key: &str) -> Result<&'v Vec<Value>, AdminError> {
    v.as_array()
        .or_else(|| v.get(key).and_then(Value::as_array))
        .ok_or_else(|| AdminError::Unexpected(format!("expected a list of {key}")))
}

fn str_of(v: &Value, key: &str, missing: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => missing.to_string(),
        Some(other) => other.to_string(),
    }
}

/// A time field: unix seconds, or a string the server already formatted.
fn time_of(v: &Value, key: &str, missing: &str) -> String {
    match v.get(key) {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(t) => rfc3339(t),
            None => n.to_string(),
        },
        Some(Value::String(s)) => s.clone(),
        _ => missing.to_string(),
    }
}

fn unix_of(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn visibility(v: &Value) -> &'static str {
    let public = match v.get("public") {
        Some(Value::Bool(b)) => *b,
        _ => v.get("visibility").and_then(Value::as_str) == Some("public"),
    };
    if public {
        "public"
    } else {
        "private"
    }
}

fn scopes_of(v: &Value) -> String {
    match v.get("scopes").and_then(Value::as_array) {
        Some(a) => a
            .iter()
            .map(|s| s.as_str().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(","),
        None => "-".to_string(),
    }
}

fn registries_of(v: &Value) -> String {
    match v.get("registries").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|s| s.as_str().unwrap_or("?"))
            .collect::<Vec<_>>()
            .join(","),
        _ => "all".to_string(),
    }
}

fn status_of(v: &Value, now: u64) -> &'static str {
    let set = |k| v.get(k).is_some_and(|x| !x.is_null());
    if set("revoked") {
        "revoked"
    } else if unix_of(v, "expires").is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    }
}

/// Wall-clock seconds, only to label expired tokens in a listing.
#[allow(clippy::disallowed_methods)] // the CLI is not the server's event loop; see .clippy.toml
fn now() -> u64 {
    crate::clock::unix_seconds(std::time::SystemTime::now())
}
