//! Who may do what (docs/auth.md, "Decision"): a pure function of the
//! principal and the registry record a repository name falls in. Repository names are
//! `{org}/{registry}/{image}`; anything shorter belongs to no registry and allows nothing.

use berth_core::Actions;
use berth_engine::{RegistryRec, TokenKind, TokenRec, Visibility};
use std::sync::Arc;

/// Who is asking, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    /// A valid (not revoked, not expired) access token. The record holds no secret, only
    /// the secret's hash.
    Token(Arc<TokenRec>),
}

impl Principal {
    /// The audit log's "who".
    pub fn actor(&self) -> String {
        match self {
            Principal::Anonymous => "anonymous".into(),
            Principal::Token(t) if t.kind == TokenKind::Admin => "admin".into(),
            Principal::Token(t) => t.id.clone(),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Token(t) if t.kind == TokenKind::Admin)
    }

    /// The organisation the principal belongs to (none for admin and anonymous).
    pub fn org(&self) -> Option<&str> {
        match self {
            Principal::Token(t) => t.org.as_deref(),
            Principal::Anonymous => None,
        }
    }
}

/// `org/registry/image…` split at its first two slashes.
pub fn place(repo: &str) -> Option<(&str, &str)> {
    let mut it = repo.splitn(3, '/');
    let (org, reg, image) = (it.next()?, it.next()?, it.next()?);
    (!org.is_empty() && !reg.is_empty() && !image.is_empty()).then_some((org, reg))
}

pub const ALL: Actions = Actions {
    pull: true,
    push: true,
    delete: true,
};

/// What `p` may do on repositories of registry `reg` (`None`: the registry does not exist).
pub fn allowed(p: &Principal, reg: Option<&RegistryRec>) -> Actions {
    let Some(reg) = reg else {
        return Actions::default();
    };
    let public = Actions {
        pull: reg.visibility == Visibility::Public,
        ..Actions::default()
    };
    let own = match p {
        Principal::Anonymous => Actions::default(),
        Principal::Token(t) => match t.kind {
            TokenKind::Admin => ALL,
            _ if t.org.as_deref() != Some(reg.org.as_str()) => Actions::default(),
            _ if !t.registries.is_empty() && !t.registries.contains(&reg.slug) => {
                Actions::default()
            }
            TokenKind::Registry => Actions::PULL,
            TokenKind::Org => Actions {
                pull: t.read || t.write,
                push: t.write,
                delete: t.write,
            },
        },
    };
    crate::auth::bearer::union(own, public)
}

/// Whether registry `reg` exists for `p`: whether it may pull from it, the decision `/v2/`
/// takes for a read. The management API shows `p` only those, in lists, details and the
/// audit log.
pub fn may_read(p: &Principal, reg: &RegistryRec) -> bool {
    allowed(p, Some(reg)).pull
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn reg(org: &str, slug: &str, public: bool) -> RegistryRec {
        RegistryRec {
            org: org.into(),
            slug: slug.into(),
            name: slug.into(),
            description: String::new(),
            visibility: if public {
                Visibility::Public
            } else {
                Visibility::Private
            },
            created: 0,
        }
    }

    /// A token principal, for tests elsewhere in the crate too.
    pub(crate) fn tok(
        kind: TokenKind,
        org: Option<&str>,
        read: bool,
        write: bool,
        regs: &[&str],
    ) -> Principal {
        Principal::Token(Arc::new(TokenRec {
            id: "tok_1".into(),
            kind,
            org: org.map(str::to_string),
            read,
            write,
            registries: regs.iter().map(|s| s.to_string()).collect(),
            description: String::new(),
            created: 0,
            expires: None,
            last_used: None,
            revoked: None,
            hash: [0; 32],
        }))
    }

    #[test]
    fn allowed_actions_table() {
        let none = Actions::default();
        let rw = ALL;
        let private = reg("acme", "web", false);
        let public = reg("acme", "pub", true);
        let other = reg("beta", "web", false);
        let admin = tok(TokenKind::Admin, None, true, true, &[]);
        let writer = tok(TokenKind::Org, Some("acme"), false, true, &[]);
        let reader = tok(TokenKind::Org, Some("acme"), true, false, &[]);
        let limited = tok(TokenKind::Org, Some("acme"), true, true, &["pub"]);
        let regtok = tok(TokenKind::Registry, Some("acme"), true, false, &["web"]);
        let rows = [
            (&Principal::Anonymous, Some(&private), none),
            (&Principal::Anonymous, Some(&public), Actions::PULL),
            (&Principal::Anonymous, None, none),
            (&admin, Some(&other), rw),
            (&admin, None, none),
            (&writer, Some(&private), rw),
            (&writer, Some(&other), none),
            (&reader, Some(&private), Actions::PULL),
            (&limited, Some(&private), none),
            (&limited, Some(&public), rw),
            (&regtok, Some(&private), Actions::PULL),
            (&regtok, Some(&public), Actions::PULL),
            (&regtok, Some(&other), none),
            (
                &tok(TokenKind::Org, Some("beta"), true, true, &[]),
                Some(&public),
                Actions::PULL,
            ),
        ];
        for (i, (p, r, want)) in rows.into_iter().enumerate() {
            assert_eq!(allowed(p, r), want, "row {i}");
        }
    }

    #[test]
    fn repository_names_split_into_org_and_registry() {
        assert_eq!(place("acme/web/app"), Some(("acme", "web")));
        assert_eq!(place("acme/web/a/b"), Some(("acme", "web")));
        assert_eq!(place("acme/web"), None);
        assert_eq!(place("library"), None);
    }
}
