//! The parsers of bytes that come from outside, callable from outside the crate so fuzz
//! targets can feed them anything: each function here runs the server's own parser, not a
//! copy, and returns a summary in public types (the parsers' results are private to the
//! crate). None of them may panic, hang or allocate without bound on any input; a failure
//! is an `Err` or a refusal, as a client or operator would see it.

use crate::auth::{bearer, credentials, scope};
use crate::config::Config;
use crate::package::path::{self, PackagePath};
use crate::web::{api, form};

/// What an `Authorization` header value presents, as the authenticator reads it: `anonymous`,
/// `token` (an access token secret), `bearer` (a bearer token to verify) or the reason it is
/// malformed. The secret itself is never returned.
pub fn authorization(header: &str) -> &'static str {
    match credentials::parse(Some(header)) {
        credentials::Presented::Anonymous => "anonymous",
        credentials::Presented::Token(_) => "token",
        credentials::Presented::Bearer(_) => "bearer",
        credentials::Presented::Malformed(why) => why,
    }
}

/// Verifies a bearer token against `key` at `now` (Unix seconds): its grants as
/// `(type:name, actions)` pairs, or why it is refused.
pub fn bearer_token(
    key: &[u8],
    token: &str,
    now: u64,
) -> Result<Vec<(String, Vec<String>)>, String> {
    let claims = bearer::verify(key, token, now).map_err(|e| e.to_string())?;
    Ok(claims
        .access
        .iter()
        .map(|a| (format!("{}:{}", a.kind, a.name), a.actions.clone()))
        .collect())
}

/// A token request as `/auth/token` reads it.
#[derive(Debug)]
pub struct TokenRequest {
    /// Its name-value pairs, percent-decoded.
    pub pairs: Vec<(String, String)>,
    /// Each `scope` value: how many resource scopes it names, or why it is refused.
    pub scopes: Vec<Result<usize, String>>,
}

/// A token request's query string (GET) or form body (POST), read as `/auth/token` reads it.
pub fn token_request(query_or_form: &str) -> TokenRequest {
    let pairs = form::pairs(query_or_form);
    let scopes = form::all(&pairs, "scope")
        .map(|s| scope::parse(s).map(|parsed| parsed.len()))
        .collect();
    TokenRequest { pairs, scopes }
}

/// A management API request body, as a call that takes the fields `known` reads it: the JSON
/// object, or the message of the 400 it gets.
pub fn management_body(
    body: &[u8],
    known: &[&str],
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    api::parse_body(body, known)
}

/// A configuration file's text over the defaults: `Ok` when the server would start with it,
/// else the message `berth serve` prints.
pub fn config_file(text: &str) -> Result<(), String> {
    Config::from_file_text(text)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A package page's or API call's path after `/api/v1/packages/` (or a page's `/`): what it
/// names, as `org`, `org/registry`, the repository, or the repository with its version
/// written back (`:tag` or `@digest`) and what of it; or why it is refused.
pub fn package_path(rest: &str) -> Result<String, String> {
    Ok(match path::parse(rest)? {
        PackagePath::Org(o) => o,
        PackagePath::Registry { org, registry } => format!("{org}/{registry}"),
        PackagePath::Image { repo } => repo,
        PackagePath::Version {
            repo,
            version,
            what,
        } => format!(
            "{repo}{}{}",
            version.suffix(),
            what.map(|w| format!("/{w}")).unwrap_or_default()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_entry_point_reaches_its_parser() {
        assert_eq!(authorization("Basic Og=="), "anonymous");
        assert_eq!(authorization("Bearer x.y"), "bearer");
        assert_eq!(authorization("Digest x"), credentials_malformed("Digest x"));
        let claims = bearer::Claims {
            sub: "tok_1".into(),
            access: vec![bearer::ClaimAccess {
                kind: "repository".into(),
                name: "acme/web/app".into(),
                actions: vec!["pull".into()],
            }],
            iat: 10,
            exp: 100,
            jti: "j".into(),
        };
        let token = bearer::issue(b"k", &claims);
        assert_eq!(
            bearer_token(b"k", token.expose(), 50),
            Ok(vec![(
                "repository:acme/web/app".to_string(),
                vec!["pull".to_string()]
            )])
        );
        assert!(bearer_token(b"other", token.expose(), 50).is_err());
        let TokenRequest { pairs, scopes } =
            token_request("service=x&scope=repository%3Aa%2Fb%2Fc%3Apull&scope=bad");
        assert_eq!(pairs.len(), 3);
        assert_eq!(scopes[0], Ok(1));
        assert!(scopes[1].is_err());
        assert!(management_body(br#"{"slug":"a"}"#, &["slug"]).is_ok());
        assert!(management_body(br#"{"slu":"a"}"#, &["slug"])
            .unwrap_err()
            .contains("unknown field"));
        assert!(config_file("threads = 2").is_ok());
        assert!(config_file("threads = \"many\"").is_err());
        assert!(config_file("[[").is_err());
        assert_eq!(
            package_path("acme/web/app:1.0/files").as_deref(),
            Ok("acme/web/app:1.0/files")
        );
        assert!(package_path("acme/web/app:").is_err());
    }

    fn credentials_malformed(h: &str) -> &'static str {
        match credentials::parse(Some(h)) {
            credentials::Presented::Malformed(why) => why,
            other => panic!("{other:?}"),
        }
    }
}
