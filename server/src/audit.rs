//! An organisation's audit log (docs/auth.md, "Management API and audit log"): who (token id, "admin" or
//! "anonymous"), what, on which target. Every change hands its entries to the engine with
//! the change ([`entry`] for pushes and deletes of content, [`by`] for the management
//! API's), so both commit in one transaction: there is no change without its entry, and no
//! entry for a change that did not happen.
//!
//! Who reads the log sees what the registry would show them ([`shown_to`]): the admin
//! everything, an organisation token only entries about registries it may pull.

use crate::auth::policy::{may_read, place, Principal};
use crate::auth::Ctx;
use berth_engine::{AuditRec, RegistryRec, Visibility};
use std::collections::HashMap;

/// The entry `who` earns for a management API change, to hand to the engine with the change
/// so both commit in one transaction.
pub fn by(
    ctx: &Ctx,
    org: &str,
    who: &Principal,
    action: &str,
    target: &str,
    detail: &str,
) -> AuditRec {
    entry(ctx.unix, org, &who.actor(), action, target, detail)
}

/// An entry to hand to the engine with the change it records, so both commit together.
pub fn entry(
    unix: u64,
    org: &str,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> AuditRec {
    AuditRec {
        seq: 0,
        time: unix,
        org: org.to_string(),
        actor: actor.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        detail: detail.to_string(),
    }
}

/// The registry slug an entry is about: `registry.*` entries name `org/registry`, content
/// entries (`manifest.*`, `tag.*`, `blob.*`) a repository `org/registry/image…`. Entries
/// about the organisation or its tokens, and actions not listed here, are about none.
pub fn registry_of(a: &AuditRec) -> Option<&str> {
    let (family, _) = a.action.split_once('.')?;
    let (org, reg) = match family {
        "registry" => a.target.split_once('/')?,
        "manifest" | "tag" | "blob" => place(&a.target)?,
        _ => return None,
    };
    (org == a.org).then_some(reg)
}

/// Whether `p` may see entry `a` of an organisation whose registries are `regs` (by slug).
/// A registry `p` may not pull does not exist for it, so neither do entries about it; one
/// deleted since counts as private (a token limited to other registries does not see its
/// history). Entries about no registry (the organisation, tokens: ids, scopes) are the
/// admin's, as listing tokens is.
pub fn shown_to(p: &Principal, a: &AuditRec, regs: &HashMap<String, RegistryRec>) -> bool {
    if p.is_admin() {
        return true;
    }
    let Some(slug) = registry_of(a) else {
        return false;
    };
    match regs.get(slug) {
        Some(r) => may_read(p, r),
        None => may_read(
            p,
            &RegistryRec {
                org: a.org.clone(),
                slug: slug.to_string(),
                name: slug.to_string(),
                description: String::new(),
                visibility: Visibility::Private,
                created: 0,
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine::{TokenKind, TokenRec};
    use std::sync::Arc;

    fn token(kind: TokenKind, org: Option<&str>, registries: &[&str]) -> Principal {
        Principal::Token(Arc::new(TokenRec {
            id: "tok_1".into(),
            kind,
            org: org.map(str::to_string),
            read: true,
            write: false,
            registries: registries.iter().map(|s| s.to_string()).collect(),
            description: String::new(),
            created: 0,
            expires: None,
            last_used: None,
            revoked: None,
            hash: [0; 32],
        }))
    }

    #[test]
    fn entries_are_shown_as_the_registry_would_show_their_registry() {
        let reg = |slug: &str, visibility| RegistryRec {
            org: "acme".into(),
            slug: slug.into(),
            name: slug.into(),
            description: String::new(),
            visibility,
            created: 0,
        };
        let regs: HashMap<String, RegistryRec> = [
            reg("apps", Visibility::Private),
            reg("sib", Visibility::Private),
            reg("pub", Visibility::Public),
        ]
        .into_iter()
        .map(|r| (r.slug.clone(), r))
        .collect();
        let admin = token(TokenKind::Admin, None, &[]);
        let limited = token(TokenKind::Org, Some("acme"), &["apps"]);
        let whole = token(TokenKind::Org, Some("acme"), &[]);
        let regtok = token(TokenKind::Registry, Some("acme"), &["apps"]);
        let entry = |action: &str, target: &str| entry(0, "acme", "admin", action, target, "");
        // (entry, registry it is about, seen by admin, limited, whole-org, registry token)
        let rows = [
            (
                entry("manifest.push", "acme/apps/app:1"),
                Some("apps"),
                [true, true, true, true],
            ),
            (
                entry("tag.delete", "acme/sib/app:1"),
                Some("sib"),
                [true, false, true, false],
            ),
            (
                entry("blob.delete", "acme/pub/a/b@sha256:00"),
                Some("pub"),
                [true, true, true, true],
            ),
            (
                entry("registry.create", "acme/sib"),
                Some("sib"),
                [true, false, true, false],
            ),
            (
                entry("registry.delete", "acme/gone"),
                Some("gone"),
                [true, false, true, false],
            ),
            (
                entry("manifest.push", "beta/apps/app:1"),
                None,
                [true, false, false, false],
            ),
            (
                entry("token.create", "tok_2"),
                None,
                [true, false, false, false],
            ),
            (
                entry("token.revoke", "tok_2"),
                None,
                [true, false, false, false],
            ),
            (
                entry("org.create", "acme"),
                None,
                [true, false, false, false],
            ),
            (
                entry("registry.update", "acme"),
                None,
                [true, false, false, false],
            ),
            (
                entry("future.thing", "acme/apps/app"),
                None,
                [true, false, false, false],
            ),
        ];
        for (a, about, seen) in rows {
            assert_eq!(registry_of(&a), about, "{a:?}");
            let got = [&admin, &limited, &whole, &regtok].map(|p| shown_to(p, &a, &regs));
            assert_eq!(got, seen, "{a:?}");
        }
    }
}
