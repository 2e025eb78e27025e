//! Local checks of command-line values, as clap value parsers: a mistake the server would
//! refuse anyway is a usage error (exit 2) with a message naming the fix, before any request.

// One slug grammar for the whole program: the engine's, which the server enforces.
use berth_engine::{is_slug, slug_of};

const SLUG_RULE: &str =
    "use lower-case letters, digits and single hyphens inside, at most 39 characters";

/// An organisation slug.
pub fn org(s: &str) -> Result<String, String> {
    if is_slug(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not an organisation slug: {SLUG_RULE} (like acme or acme-labs)"
        ))
    }
}

/// `<org>/<registry>`, both slugs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryPath {
    pub org: String,
    pub registry: String,
}

impl std::fmt::Display for RegistryPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.org, self.registry)
    }
}

pub fn registry_path(s: &str) -> Result<RegistryPath, String> {
    let Some((o, r)) = s.split_once('/') else {
        return Err(format!(
            "'{s}' names no registry: write ORG/REGISTRY, like acme/web"
        ));
    };
    if !is_slug(o) {
        return Err(format!(
            "'{o}' is not an organisation slug: {SLUG_RULE}; write ORG/REGISTRY, like acme/web"
        ));
    }
    if !is_slug(r) {
        return Err(format!(
            "'{r}' is not a registry slug: {SLUG_RULE}; write ORG/REGISTRY with the slug `berth registry list {o}` shows"
        ));
    }
    Ok(RegistryPath {
        org: o.to_string(),
        registry: r.to_string(),
    })
}

/// A version of an image: `ORG/REGISTRY/IMAGE:TAG` or `ORG/REGISTRY/IMAGE@DIGEST`, read as
/// the package API reads its paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRef {
    /// `org/registry/image`.
    pub repo: String,
    pub version: crate::package::path::VersionRef,
}

impl std::fmt::Display for PackageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.repo, self.version.suffix())
    }
}

pub fn package_ref(s: &str) -> Result<PackageRef, String> {
    use crate::package::path::{parse, PackagePath};
    let usage =
        "write ORG/REGISTRY/IMAGE:TAG or ORG/REGISTRY/IMAGE@sha256:…, like acme/web/app:1.0";
    match parse(s.trim_matches('/')) {
        Ok(PackagePath::Version {
            repo,
            version,
            what: None,
        }) => Ok(PackageRef { repo, version }),
        Ok(_) => Err(format!("'{s}' names no version of an image: {usage}")),
        Err(why) => Err(format!("{why}; {usage}")),
    }
}

/// `os/arch[/variant]`, like linux/amd64 or linux/arm/v7.
pub fn platform(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = (2..=3).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a platform: write OS/ARCH or OS/ARCH/VARIANT, like linux/amd64 or linux/arm/v7"
        ))
    }
}

/// A registry slug given with `--registry`.
pub fn registry_slug(s: &str) -> Result<String, String> {
    if is_slug(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a registry slug: {SLUG_RULE}; use the slug `berth registry list ORG` shows"
        ))
    }
}

/// A registry display name that yields a slug.
pub fn registry_name(s: &str) -> Result<String, String> {
    if s.chars().any(char::is_control) {
        return Err("a registry name must not contain control characters".to_string());
    }
    match slug_of(s) {
        Some(_) => Ok(s.to_string()),
        None => Err(format!(
            "'{s}' gives no registry slug: use a name with ASCII letters or digits whose slug (lower-case, other characters as '-') is at most 39 characters, like \"Web Services\""
        )),
    }
}

/// The scopes of an organisation token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes {
    pub read: bool,
    pub write: bool,
}

impl Scopes {
    /// As the API names them.
    pub fn names(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.read {
            v.push("read_packages");
        }
        if self.write {
            v.push("write_packages");
        }
        v
    }
}

/// `read_packages[,write_packages]`, in either order, repeats ignored.
pub fn scopes(s: &str) -> Result<Scopes, String> {
    let mut out = Scopes {
        read: false,
        write: false,
    };
    for part in s.split(',').map(str::trim) {
        match part {
            "read_packages" => out.read = true,
            "write_packages" => out.write = true,
            "" => {}
            other => {
                return Err(format!(
                    "unknown scope '{other}': use read_packages, write_packages, or both separated by a comma"
                ))
            }
        }
    }
    if !out.read && !out.write {
        return Err(
            "no scope given: use read_packages, write_packages, or read_packages,write_packages"
                .to_string(),
        );
    }
    Ok(out)
}

/// A token lifetime like `30d`, `12h`, `90m` or `3600s`, in seconds.
pub fn duration(s: &str) -> Result<u64, String> {
    let fix = "write a whole number and a unit, like 30d, 12h, 90m or 3600s";
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let unit_secs: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "" => return Err(format!("'{s}' has no unit: {fix}")),
        _ => return Err(format!("'{s}' is not a duration: {fix}")),
    };
    if num.is_empty() {
        return Err(format!("'{s}' has no number: {fix}"));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is too long a duration: {fix}"))?;
    let secs = n
        .checked_mul(unit_secs)
        .ok_or_else(|| format!("'{s}' is too long a duration: {fix}"))?;
    if secs == 0 {
        return Err(format!(
            "'{s}' would expire at once: {fix}, or leave --expires-in out for a token that does not expire"
        ));
    }
    Ok(secs)
}

/// A token id as `berth token list` shows it (`tok_` + hex); only its character set is
/// checked here, since the id goes into a URL path.
pub fn token_id(s: &str) -> Result<String, String> {
    if !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        if s.starts_with("berth_") {
            return Err(
                "that looks like a token secret, not its id: pass the id (tok_…) that `berth token list ORG` shows"
                    .to_string(),
            );
        }
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a token id: pass the id (tok_…) that `berth token list ORG` shows"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_one_number_and_one_unit() {
        let rows: &[(&str, Option<u64>)] = &[
            ("30d", Some(30 * 86_400)),
            ("12h", Some(12 * 3600)),
            ("90m", Some(5400)),
            ("3600s", Some(3600)),
            ("1s", Some(1)),
            ("0d", None),
            ("30", None),
            ("d", None),
            ("", None),
            ("30x", None),
            ("30 d", None),
            ("-1d", None),
            ("1.5h", None),
            ("1d12h", None),
            ("30D", None),
            ("99999999999999999999d", None),
            ("999999999999999999d", None),
        ];
        for (input, want) in rows {
            assert_eq!(duration(input).ok(), *want, "{input:?}");
        }
    }

    #[test]
    fn duration_errors_show_the_accepted_forms() {
        for bad in ["30", "30x", "d", "0s"] {
            let e = duration(bad).unwrap_err();
            assert!(e.contains("30d, 12h, 90m or 3600s"), "{e}");
        }
        assert!(duration("0s").unwrap_err().contains("--expires-in"));
    }

    #[test]
    fn scopes_accept_read_write_or_both_in_any_order() {
        let r = |read, write| Some(Scopes { read, write });
        let rows: &[(&str, Option<Scopes>)] = &[
            ("read_packages", r(true, false)),
            ("write_packages", r(false, true)),
            ("read_packages,write_packages", r(true, true)),
            ("write_packages,read_packages", r(true, true)),
            ("read_packages, write_packages", r(true, true)),
            ("read_packages,read_packages", r(true, false)),
            ("", None),
            (",", None),
            ("read", None),
            ("read_packages,admin", None),
            ("READ_PACKAGES", None),
        ];
        for (input, want) in rows {
            assert_eq!(scopes(input).ok(), *want, "{input:?}");
        }
        assert_eq!(
            scopes("write_packages,read_packages").unwrap().names(),
            ["read_packages", "write_packages"]
        );
        let e = scopes("read_packages,admin").unwrap_err();
        assert!(
            e.contains("'admin'") && e.contains("read_packages, write_packages"),
            "{e}"
        );
    }

    #[test]
    fn slugs_follow_the_organisation_grammar() {
        for good in ["acme", "a", "acme-labs", "a1-b2-c3", &"a".repeat(39)] {
            assert!(org(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Acme",
            "-acme",
            "acme-",
            "ac--me",
            "ac_me",
            "ac/me",
            &"a".repeat(40),
        ] {
            let e = org(bad).unwrap_err();
            assert!(e.contains("lower-case letters"), "{e}");
        }
    }

    #[test]
    fn registry_paths_need_exactly_org_slash_registry() {
        assert_eq!(
            registry_path("acme/web").unwrap(),
            RegistryPath {
                org: "acme".into(),
                registry: "web".into()
            }
        );
        assert_eq!(registry_path("acme/web").unwrap().to_string(), "acme/web");
        for bad in [
            "acme",
            "acme/",
            "/web",
            "acme/web/app",
            "Acme/web",
            "acme/Web",
        ] {
            assert!(registry_path(bad).is_err(), "{bad}");
        }
        assert!(registry_path("acme").unwrap_err().contains("ORG/REGISTRY"));
    }

    #[test]
    fn registry_names_derive_the_server_slug() {
        assert_eq!(slug_of("Web Services").as_deref(), Some("web-services"));
        assert_eq!(
            slug_of("  --Web__Services!! ").as_deref(),
            Some("web-services")
        );
        assert_eq!(slug_of("web").as_deref(), Some("web"));
        assert_eq!(slug_of("Ünïcode only"), Some("n-code-only".into()));
        assert_eq!(slug_of("!!!"), None);
        assert_eq!(slug_of(&"x".repeat(40)), None);
        assert!(registry_name("Web Services").is_ok());
        assert!(registry_name("***")
            .unwrap_err()
            .contains("like \"Web Services\""));
        assert!(registry_name("a\nb").is_err());
    }

    #[test]
    fn token_ids_are_checked_and_secrets_turned_away() {
        assert_eq!(
            token_id("tok_0123456789abcdef").unwrap(),
            "tok_0123456789abcdef"
        );
        for bad in ["", "tok/../x", "tok 1", "tok?x"] {
            assert!(token_id(bad).is_err(), "{bad}");
        }
        let e = token_id("berth_pat_abc").unwrap_err();
        assert!(e.contains("secret") && !e.contains("berth_pat_abc"), "{e}");
    }
}
