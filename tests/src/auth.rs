//! Credentials and the management API (issue 3): what a test needs to provision tenants and
//! tokens and to present them the ways real clients do (docs/auth.md "Authentication").

use crate::http::Expect as _;
use base64::Engine as _;
use std::net::SocketAddr;

use crate::http::{Client, Request, Response};

/// Standard base64 with padding (RFC 4648 §4), as `Authorization: Basic` carries it.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `Basic base64(berth:TOKEN)`: any user name, the token as password (what `docker login -u
/// berth -p TOKEN` stores).
pub fn basic(token: &str) -> String {
    format!("Basic {}", base64(format!("berth:{token}").as_bytes()))
}

/// `Bearer TOKEN`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A token as `POST .../tokens` returns it: its id (for revocation) and its secret.
#[derive(Clone, Debug)]
pub struct Token {
    pub id: String,
    pub token: String,
}

/// The parameters of a `WWW-Authenticate: Bearer k="v",...` challenge, in order.
pub fn challenge_params(value: &str) -> Vec<(String, String)> {
    let rest = value
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("challenge {value:?} is not a Bearer challenge"));
    let mut out = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (k, after) = s
            .split_once('=')
            .unwrap_or_else(|| panic!("challenge parameter without '=' in {value:?}"));
        let after = after
            .strip_prefix('"')
            .unwrap_or_else(|| panic!("unquoted challenge parameter {k} in {value:?}"));
        let end = after
            .find('"')
            .unwrap_or_else(|| panic!("unterminated challenge parameter {k} in {value:?}"));
        out.push((k.trim().to_string(), after[..end].to_string()));
        s = after[end + 1..].trim_start_matches([',', ' ']);
    }
    out
}

/// One parameter of a Bearer challenge.
pub fn challenge_param(value: &str, key: &str) -> Option<String> {
    challenge_params(value)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// `application/x-www-form-urlencoded` escaping of one value.
pub fn form_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The management API (`/api/v1`) as the admin: every call checked, so setup fails at the
/// step that broke.
pub struct Admin {
    addr: SocketAddr,
    auth: String,
}

impl Admin {
    pub fn new(addr: SocketAddr, admin_token: &str) -> Admin {
        Admin {
            addr,
            auth: bearer(admin_token),
        }
    }

    /// One JSON call; returns whatever came back.
    pub fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Response {
        let mut req = Request::new(method, path).header("Authorization", &self.auth);
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string().into_bytes());
        }
        Client::new(self.addr).send(req)
    }

    #[track_caller]
    pub fn create_org(&self, slug: &str) {
        self.call(
            "POST",
            "/api/v1/orgs",
            Some(serde_json::json!({ "slug": slug })),
        )
        .expect(201);
    }

    /// Creates a registry named `name` in `org`; returns its slug.
    #[track_caller]
    pub fn create_registry(&self, org: &str, name: &str, public: bool) -> String {
        let r = self
            .call(
                "POST",
                &format!("/api/v1/orgs/{org}/registries"),
                Some(serde_json::json!({ "name": name, "public": public })),
            )
            .expect(201);
        let v = r.json();
        v["slug"]
            .as_str()
            .unwrap_or_else(|| panic!("registry without a slug:\n{r:?}"))
            .to_string()
    }

    /// Makes `org/slug` public or private.
    #[track_caller]
    pub fn set_public(&self, org: &str, slug: &str, public: bool) {
        self.call(
            "PATCH",
            &format!("/api/v1/orgs/{org}/registries/{slug}"),
            Some(serde_json::json!({ "public": public })),
        )
        .expect(200);
    }

    /// An organisation token with `scopes` (`read_packages`, `write_packages`), limited to
    /// `registries` (empty: all of the org's), expiring after `expires_in` seconds if given.
    #[track_caller]
    pub fn create_token(
        &self,
        org: &str,
        scopes: &[&str],
        registries: &[&str],
        expires_in: Option<u64>,
    ) -> Token {
        let mut body = serde_json::json!({ "scopes": scopes, "registries": registries });
        if let Some(s) = expires_in {
            body["expires_in"] = s.into();
        }
        let r = self
            .call("POST", &format!("/api/v1/orgs/{org}/tokens"), Some(body))
            .expect(201);
        token_of(&r)
    }

    /// A registry token: read-only, one registry.
    #[track_caller]
    pub fn create_registry_token(&self, org: &str, slug: &str) -> Token {
        let r = self
            .call(
                "POST",
                &format!("/api/v1/orgs/{org}/registries/{slug}/tokens"),
                Some(serde_json::json!({})),
            )
            .expect(201);
        token_of(&r)
    }

    /// Revokes a token by id.
    #[track_caller]
    pub fn revoke(&self, id: &str) {
        self.call("DELETE", &format!("/api/v1/tokens/{id}"), None)
            .expect(200);
    }
}

#[track_caller]
fn token_of(r: &Response) -> Token {
    let v = r.json();
    match (v["id"].as_str(), v["token"].as_str()) {
        (Some(id), Some(token)) => Token {
            id: id.to_string(),
            token: token.to_string(),
        },
        _ => panic!("token response without id and token:\n{r:?}"),
    }
}
