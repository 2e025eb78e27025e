//! Where a package page or API call points: `org`, `org/registry`,
//! `org/registry/image`, `org/registry/image:tag` or `org/registry/image@sha256:…`, then
//! optionally `/what` (`files`, `layers`, `download`). Repository names hold no `:` or `@`,
//! so the first path segment carrying one ends the image's name.

use berth_core::oci::{Digest, RepoName, Tag};

/// A version of an image: a tag or a manifest digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionRef {
    Tag(String),
    Digest(String),
}

impl VersionRef {
    /// As written after the image's name: `:tag` or `@digest`.
    pub fn suffix(&self) -> String {
        match self {
            VersionRef::Tag(t) => format!(":{t}"),
            VersionRef::Digest(d) => format!("@{d}"),
        }
    }
}

/// A parsed package path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackagePath {
    Org(String),
    Registry {
        org: String,
        registry: String,
    },
    Image {
        repo: String,
    },
    Version {
        repo: String,
        version: VersionRef,
        /// What of the version: `files`, `layers`, `download`; `None`: its details.
        what: Option<String>,
    },
}

/// Parses `rest` (percent-decoding already applied, no leading or trailing `/`); the
/// message says what is wrong.
pub fn parse(rest: &str) -> Result<PackagePath, String> {
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(format!(
            "`{rest}` is not a package path: it has an empty segment"
        ));
    }
    let ends = segs.iter().position(|s| s.contains(':') || s.contains('@'));
    let (name_segs, version, what) = match ends {
        None => (&segs[..], None, None),
        Some(i) => {
            let last = segs[i];
            let (name, version) = match last.split_once('@') {
                Some((n, d)) => {
                    Digest::parse(d).map_err(|e| format!("`{d}` is not a manifest digest: {e}"))?;
                    (n, VersionRef::Digest(d.to_owned()))
                }
                None => {
                    let (n, t) = last.split_once(':').unwrap_or((last, ""));
                    if Tag::parse(t).is_none() {
                        return Err(format!(
                            "`{t}` is not a tag: up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
                        ));
                    }
                    (n, VersionRef::Tag(t.to_owned()))
                }
            };
            let what = match &segs[i + 1..] {
                [] => None,
                [w] => Some((*w).to_owned()),
                _ => return Err(format!("`{rest}` is not a package path")),
            };
            let mut names: Vec<&str> = segs[..i].to_vec();
            names.push(name);
            return finish(names, Some(version), what);
        }
    };
    finish(name_segs.to_vec(), version, what)
}

fn finish(
    names: Vec<&str>,
    version: Option<VersionRef>,
    what: Option<String>,
) -> Result<PackagePath, String> {
    let slug_ok = |s: &str| berth_engine::is_slug(s);
    match (names.as_slice(), version) {
        ([org], None) if slug_ok(org) => Ok(PackagePath::Org((*org).to_owned())),
        ([org, reg], None) if slug_ok(org) && slug_ok(reg) => Ok(PackagePath::Registry {
            org: (*org).to_owned(),
            registry: (*reg).to_owned(),
        }),
        ([org, reg, _, ..], version) if slug_ok(org) && slug_ok(reg) => {
            let repo = names.join("/");
            if RepoName::parse(&repo).is_none() {
                return Err(format!(
                    "`{repo}` is not an image name: lower-case letters, digits and separators (`.`, `_`, `-`, `/`)"
                ));
            }
            Ok(match version {
                None => PackagePath::Image { repo },
                Some(version) => PackagePath::Version {
                    repo,
                    version,
                    what,
                },
            })
        }
        _ => Err(format!(
            "`{}` is not a package path: use ORG, ORG/REGISTRY, ORG/REGISTRY/IMAGE, or IMAGE:TAG or IMAGE@DIGEST after it",
            names.join("/")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_bad_ones_say_why() {
        assert_eq!(parse("acme").unwrap(), PackagePath::Org("acme".into()));
        assert_eq!(
            parse("acme/web").unwrap(),
            PackagePath::Registry {
                org: "acme".into(),
                registry: "web".into()
            }
        );
        assert_eq!(
            parse("acme/web/tools/app").unwrap(),
            PackagePath::Image {
                repo: "acme/web/tools/app".into()
            }
        );
        assert_eq!(
            parse("acme/web/app:1.0/files").unwrap(),
            PackagePath::Version {
                repo: "acme/web/app".into(),
                version: VersionRef::Tag("1.0".into()),
                what: Some("files".into())
            }
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse(&format!("acme/web/app@{d}")).unwrap(),
            PackagePath::Version {
                repo: "acme/web/app".into(),
                version: VersionRef::Digest(d),
                what: None
            }
        );
        assert!(parse("acme/web/app@sha256:xyz")
            .unwrap_err()
            .contains("digest"));
        assert!(parse("acme/web/app:-bad")
            .unwrap_err()
            .contains("not a tag"));
        assert!(parse("acme/web/App").unwrap_err().contains("image name"));
        assert!(parse("acme//web").is_err());
        assert!(parse("acme/web/app:1/files/more").is_err());
        assert!(parse("Acme").is_err());
    }
}
