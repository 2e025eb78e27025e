//! Bearer tokens minted by `/auth/token`: `bt1.<base64url(claims JSON)>.<base64url(MAC)>`,
//! MAC = HMAC-SHA256(DATA/token-key, "bt1.<claims part>"). Self-contained, so verifying one
//! costs a MAC and a JSON parse; the caller then checks the access token it came from, which
//! makes revocation and expiry of that token immediate (docs/auth.md, "Authentication").

use crate::secret::{base64url_decode, base64url_encode, constant_time_eq, hmac_sha256, Secret};
use berth_core::Actions;
use serde::{Deserialize, Serialize};

const PREFIX: &str = "bt1";

/// One grant inside a bearer token, as in distribution's JWT `access` claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimAccess {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// What a bearer token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The access token id it was minted from; empty for an anonymous token.
    pub sub: String,
    pub access: Vec<ClaimAccess>,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
}

impl Claims {
    /// The actions granted on repository `name`.
    pub fn actions_for(&self, name: &str) -> Actions {
        let mut a = Actions::default();
        for g in self
            .access
            .iter()
            .filter(|g| g.kind == "repository" && g.name == name)
        {
            a = union(a, actions_of(&g.actions));
        }
        a
    }
}

pub fn union(a: Actions, b: Actions) -> Actions {
    Actions {
        pull: a.pull || b.pull,
        push: a.push || b.push,
        delete: a.delete || b.delete,
    }
}

pub fn intersect(a: Actions, b: Actions) -> Actions {
    Actions {
        pull: a.pull && b.pull,
        push: a.push && b.push,
        delete: a.delete && b.delete,
    }
}

/// `["pull","push"]` → Actions; `*` is every action, unknown names grant nothing.
pub fn actions_of(names: &[String]) -> Actions {
    let mut a = Actions::default();
    for n in names {
        match n.as_str() {
            "pull" => a.pull = true,
            "push" => a.push = true,
            "delete" => a.delete = true,
            "*" => {
                a = Actions {
                    pull: true,
                    push: true,
                    delete: true,
                }
            }
            _ => {}
        }
    }
    a
}

/// The wire names of `a`, in the conventional order.
pub fn action_names(a: Actions) -> Vec<String> {
    [(a.pull, "pull"), (a.push, "push"), (a.delete, "delete")]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// Signs `claims` into a token.
pub fn issue(key: &[u8], claims: &Claims) -> Secret {
    // Serializing plain strings, numbers and vectors cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let signed = format!("{PREFIX}.{}", base64url_encode(&json));
    let mac = hmac_sha256(key, signed.as_bytes());
    Secret::new(format!("{signed}.{}", base64url_encode(&mac)))
}

/// Why a bearer token was refused (safe to log: no part of the token).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("not a berth bearer token")]
    Format,
    #[error("bearer token signature does not match")]
    Signature,
    #[error("bearer token expired")]
    Expired,
}

/// Checks the MAC (in constant time), then the expiry.
pub fn verify(key: &[u8], token: &str, now: u64) -> Result<Claims, BearerError> {
    let mut parts = token.split('.');
    let (Some(PREFIX), Some(body), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BearerError::Format);
    };
    let mac = base64url_decode(mac).ok_or(BearerError::Format)?;
    let want = hmac_sha256(key, &token.as_bytes()[..PREFIX.len() + 1 + body.len()]);
    if !constant_time_eq(&mac, &want) {
        return Err(BearerError::Signature);
    }
    let json = base64url_decode(body).ok_or(BearerError::Format)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| BearerError::Format)?;
    if now >= claims.exp {
        return Err(BearerError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            sub: "tok_1".into(),
            access: vec![ClaimAccess {
                kind: "repository".into(),
                name: "acme/web/app".into(),
                actions: vec!["pull".into(), "push".into()],
            }],
            iat: 100,
            exp: 400,
            jti: "j".into(),
        }
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let t = issue(b"k", &claims());
        assert_eq!(verify(b"k", t.expose(), 399).unwrap(), claims());
        assert_eq!(verify(b"k", t.expose(), 400), Err(BearerError::Expired));
        assert_eq!(verify(b"other", t.expose(), 1), Err(BearerError::Signature));
        let c = verify(b"k", t.expose(), 1).unwrap();
        assert_eq!(c.actions_for("acme/web/app"), Actions::PULL_PUSH);
        assert_eq!(c.actions_for("acme/web/other"), Actions::default());
    }

    /// A token minted by an earlier build (its own HMAC code, before `hmac`) under a 32-byte
    /// key like DATA/token-key: tokens handed out before an upgrade must verify after it.
    #[test]
    fn a_token_minted_by_an_earlier_build_still_verifies() {
        const MINTED: &str = "bt1.eyJzdWIiOiJ0b2tfMDEyMzQ1Njc4OWFiY2RlZiIsImFjY2VzcyI6W3sidHlwZSI6InJlcG9zaXRvcnkiLCJuYW1lIjoiYWNtZS93ZWIvYXBwIiwiYWN0aW9ucyI6WyJwdWxsIiwicHVzaCJdfV0sImlhdCI6MTcwMDAwMDAwMCwiZXhwIjo0MDAwMDAwMDAwLCJqdGkiOiJqLTEifQ.8ATWjNhbYX9T5lUYTIDy99f_NHD8xXMivFXi1ynaW3A";
        let key: Vec<u8> = (0u8..32).collect();
        let want = Claims {
            sub: "tok_0123456789abcdef".into(),
            access: vec![ClaimAccess {
                kind: "repository".into(),
                name: "acme/web/app".into(),
                actions: vec!["pull".into(), "push".into()],
            }],
            iat: 1_700_000_000,
            exp: 4_000_000_000,
            jti: "j-1".into(),
        };
        assert_eq!(verify(&key, MINTED, 1_700_000_001), Ok(want.clone()));
        assert_eq!(issue(&key, &want).expose(), MINTED);
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let t = issue(b"k", &claims());
        let s = t.expose();
        let (head, mac) = s.rsplit_once('.').unwrap();
        // Widen the claims, keep the old MAC.
        let mut wide = claims();
        wide.access[0].actions.push("delete".into());
        let forged = format!(
            "bt1.{}.{mac}",
            base64url_encode(&serde_json::to_vec(&wide).unwrap())
        );
        assert_eq!(verify(b"k", &forged, 1), Err(BearerError::Signature));
        for bad in [
            "",
            "bt1",
            "bt1.a",
            "bt2.a.b",
            &format!("{head}.{mac}.x"),
            &format!("{head}.!!"),
            &format!("{head}."),
        ] {
            assert!(verify(b"k", bad, 1).is_err(), "{bad}");
        }
        // A flipped byte anywhere breaks it.
        for i in 0..s.len() {
            let mut b = s.as_bytes().to_vec();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let m = String::from_utf8(b).unwrap();
            if m != s {
                assert!(verify(b"k", &m, 1).is_err(), "flip at {i}");
            }
        }
    }
}
