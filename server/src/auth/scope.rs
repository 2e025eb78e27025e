//! Scope strings as clients send them to the token endpoint (spec digest §9.3):
//! `repository:acme/web/app:pull,push registry:catalog:*`. A type may carry a deprecated
//! `(class)` suffix, equal to the bare type; the actions follow the LAST `:`.

use crate::auth::bearer::actions_of;
use berth_core::oci::RepoName;
use berth_core::Actions;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Repository {
        name: RepoName,
        actions: Actions,
    },
    /// `registry:catalog:*`.
    Catalog,
    /// A well-formed scope of a type this registry does not grant; ignored.
    Other,
}

/// Parses one `scope` value (space-separated resource scopes). `Err` says what is wrong.
pub fn parse(value: &str) -> Result<Vec<Scope>, String> {
    value
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(one)
        .collect()
}

fn one(s: &str) -> Result<Scope, String> {
    let bad = || format!("scope `{s}` is not type:name:actions");
    let (ty, rest) = s.split_once(':').ok_or_else(bad)?;
    let (name, actions) = rest.rsplit_once(':').ok_or_else(bad)?;
    let ty = match ty.split_once('(') {
        Some((t, class)) if class.ends_with(')') => t,
        Some(_) => return Err(bad()),
        None => ty,
    };
    if ty.is_empty()
        || !ty
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(bad());
    }
    let names: Vec<String> = actions.split(',').map(str::to_string).collect();
    if !names
        .iter()
        .all(|a| a == "*" || a.bytes().all(|b| b.is_ascii_lowercase()))
    {
        return Err(format!("scope `{s}` has an invalid action"));
    }
    match ty {
        "repository" => {
            let name = RepoName::parse(name)
                .ok_or_else(|| format!("scope `{s}` names an invalid repository"))?;
            Ok(Scope::Repository {
                name,
                actions: actions_of(&names),
            })
        }
        "registry" if name == "catalog" && names.iter().any(|a| a == "*") => Ok(Scope::Catalog),
        _ => Ok(Scope::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_grammar_table() {
        let repo = |n: &str, a: Actions| Scope::Repository {
            name: RepoName::parse(n).unwrap(),
            actions: a,
        };
        let rows: &[(&str, Vec<Scope>)] = &[
            (
                "repository:acme/web/app:pull",
                vec![repo("acme/web/app", Actions::PULL)],
            ),
            (
                "repository:acme/web/app:pull,push",
                vec![repo("acme/web/app", Actions::PULL_PUSH)],
            ),
            (
                "repository(plugin):a/b/c:*",
                vec![repo(
                    "a/b/c",
                    Actions {
                        pull: true,
                        push: true,
                        delete: true,
                    },
                )],
            ),
            (
                "repository:a/b/c:pull repository:a/b/d:delete",
                vec![repo("a/b/c", Actions::PULL), repo("a/b/d", Actions::DELETE)],
            ),
            ("registry:catalog:*", vec![Scope::Catalog]),
            (
                "repository:a/b/c:frob",
                vec![repo("a/b/c", Actions::default())],
            ),
            ("other:thing:x", vec![Scope::Other]),
            ("", vec![]),
        ];
        for (s, want) in rows {
            assert_eq!(&parse(s).unwrap(), want, "{s}");
        }
        for bad in [
            "repository",
            "repository:a/b/c",
            "repository:A/b/c:pull",
            "repository:a/b/c:PULL",
            "Repo:a:pull",
            "repository(x:a/b/c:pull",
            ":a:pull",
            "repository::pull",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
