//! What an `Authorization` header presents, parsed once (docs/auth.md, "Authentication").
//! `Basic base64(any-user:TOKEN)` carries an access token as the password; an empty Basic
//! (podman's `Og==`) or an empty password means anonymous (spec digest §9.1, 3);
//! `Bearer <token>` carries a bearer token from `/auth/token`, or an access token itself
//! (what scripts and the CLI send). Anything else is malformed: 401 `invalid_token`.

use crate::secret::{base64_decode, Secret};

/// Prefixes of access token secrets: organisation, registry, admin.
pub const PAT_PREFIX: &str = "berth_pat_";
pub const REGISTRY_PREFIX: &str = "berth_rt_";
pub const ADMIN_PREFIX: &str = "berth_adm_";

/// The credential a request presents.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// No header, or empty Basic credentials.
    Anonymous,
    /// An access token secret (`berth_pat_…`, `berth_rt_…`, `berth_adm_…`).
    Token(Secret),
    /// A bearer token minted by `/auth/token`.
    Bearer(Secret),
    /// A header that does not parse; the reason is safe to show (it holds no secret).
    Malformed(&'static str),
}

impl Presented {
    /// Whether the request carried credentials at all (rate limiting applies only then).
    pub fn has_credentials(&self) -> bool {
        !matches!(self, Presented::Anonymous)
    }
}

/// Parses an `Authorization` header value.
pub fn parse(header: Option<&str>) -> Presented {
    let Some(h) = header.map(str::trim) else {
        return Presented::Anonymous;
    };
    let (scheme, rest) = match h.split_once(' ') {
        Some((s, r)) => (s, r.trim()),
        None => (h, ""),
    };
    if scheme.eq_ignore_ascii_case("basic") {
        let Some(raw) = base64_decode(rest) else {
            return Presented::Malformed("Basic credentials are not base64");
        };
        let Ok(text) = String::from_utf8(raw) else {
            return Presented::Malformed("Basic credentials are not UTF-8");
        };
        let Some((_user, password)) = text.split_once(':') else {
            return Presented::Malformed("Basic credentials lack a ':'");
        };
        if password.is_empty() {
            return Presented::Anonymous;
        }
        Presented::Token(Secret::new(password))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Presented::Malformed("empty Bearer token");
        }
        if rest.starts_with("berth_") {
            Presented::Token(Secret::new(rest))
        } else {
            Presented::Bearer(Secret::new(rest))
        }
    } else {
        Presented::Malformed("unsupported authorization scheme; use Basic or Bearer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::base64_encode;

    fn basic(s: &str) -> String {
        format!("Basic {}", base64_encode(s.as_bytes()))
    }

    #[test]
    fn headers_parse_to_what_they_present() {
        let t = |s: &str| Presented::Token(Secret::new(s));
        let rows: Vec<(Option<String>, Presented)> = vec![
            (None, Presented::Anonymous),
            (Some("Basic Og==".into()), Presented::Anonymous),
            (Some(basic("user:")), Presented::Anonymous),
            (Some(basic("u:berth_pat_x")), t("berth_pat_x")),
            (Some(basic("u:a:b")), t("a:b")),
            (Some("basic ".to_string() + &base64_encode(b"x:y")), t("y")),
            (Some("Bearer berth_adm_z".into()), t("berth_adm_z")),
            (
                Some("Bearer bt1.a.b".into()),
                Presented::Bearer(Secret::new("bt1.a.b")),
            ),
        ];
        for (h, want) in rows {
            assert_eq!(parse(h.as_deref()), want, "{h:?}");
        }
        for bad in [
            "Basic !!!",
            "Basic",
            &basic("nocolon"),
            "Bearer",
            "Bearer   ",
            "Digest x",
            "",
            "Basic //79",
        ] {
            assert!(
                matches!(parse(Some(bad)), Presented::Malformed(_)),
                "{bad:?}"
            );
        }
    }
}
