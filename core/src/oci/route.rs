//! Request line to typed operation (spec digest §3). Paths are parsed from the right
//! (§1.1): the suffix names the endpoint, everything between `/v2/` and it is the name.

use super::digest::{Digest, DigestError};
use super::error::ErrorCode;
use super::name::RepoName;
use super::reference::{Reference, Tag, UploadId};
use crate::http::head::Method;
use crate::need::{Access, Actions, Resource};

/// A registry operation with every path and query part parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// end-1
    Ping,
    /// catalog
    Catalog {
        n: Option<usize>,
        last: Option<String>,
    },
    /// end-2 (GET/HEAD)
    BlobGet {
        name: RepoName,
        digest: Digest,
        head: bool,
    },
    /// end-10
    BlobDelete { name: RepoName, digest: Digest },
    /// end-4a, end-4b (`digest`), end-11 (`mount`)
    UploadStart {
        name: RepoName,
        digest: Option<Digest>,
        mount: Option<Digest>,
        from: Option<RepoName>,
    },
    /// end-13
    UploadStatus { name: RepoName, upload: UploadId },
    /// end-5
    UploadPatch { name: RepoName, upload: UploadId },
    /// end-6
    UploadPut {
        name: RepoName,
        upload: UploadId,
        digest: Digest,
    },
    /// end-14
    UploadCancel { name: RepoName, upload: UploadId },
    /// end-3 (GET/HEAD)
    ManifestGet {
        name: RepoName,
        reference: Reference,
        head: bool,
    },
    /// end-7, end-7b (`tags`)
    ManifestPut {
        name: RepoName,
        reference: Reference,
        tags: Vec<Tag>,
    },
    /// end-9
    ManifestDelete {
        name: RepoName,
        reference: Reference,
    },
    /// end-8a/b
    TagsList {
        name: RepoName,
        n: Option<usize>,
        last: Option<String>,
    },
    /// end-12a/b
    Referrers {
        name: RepoName,
        digest: Digest,
        artifact_type: Option<String>,
    },
}

impl Op {
    /// Low-cardinality name for metrics and the access log.
    pub fn route_name(&self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::Catalog { .. } => "catalog",
            Op::BlobGet { head: true, .. } => "blob_head",
            Op::BlobGet { .. } => "blob_get",
            Op::BlobDelete { .. } => "blob_delete",
            Op::UploadStart { mount: Some(_), .. } => "blob_mount",
            Op::UploadStart { .. } => "upload_start",
            Op::UploadStatus { .. } => "upload_status",
            Op::UploadPatch { .. } => "upload_patch",
            Op::UploadPut { .. } => "upload_put",
            Op::UploadCancel { .. } => "upload_cancel",
            Op::ManifestGet { head: true, .. } => "manifest_head",
            Op::ManifestGet { .. } => "manifest_get",
            Op::ManifestPut { .. } => "manifest_put",
            Op::ManifestDelete { .. } => "manifest_delete",
            Op::TagsList { .. } => "tags_list",
            Op::Referrers { .. } => "referrers",
        }
    }
}

impl Op {
    /// What the caller must be allowed (`.0`) and would like in addition (`.1`, the source
    /// of a mount) for this operation: the table of docs/auth.md, after spec digest §9.4.
    /// Closing, checking and cancelling an upload all need `pull,push` (clients never ask
    /// for `delete` on an upload, §9.4); deleting manifests and blobs needs `delete`.
    pub fn access(&self) -> (Access, Option<Access>) {
        let repo = |name: &RepoName, actions: Actions| Access {
            resource: Resource::Repository(name.clone()),
            actions,
        };
        match self {
            Op::Ping => (
                Access {
                    resource: Resource::Ping,
                    actions: Actions::default(),
                },
                None,
            ),
            Op::Catalog { .. } => (
                Access {
                    resource: Resource::Catalog,
                    actions: Actions::PULL,
                },
                None,
            ),
            Op::BlobGet { name, .. }
            | Op::ManifestGet { name, .. }
            | Op::TagsList { name, .. }
            | Op::Referrers { name, .. } => (repo(name, Actions::PULL), None),
            Op::UploadStart {
                name,
                mount: Some(_),
                from: Some(from),
                ..
            } => (
                repo(name, Actions::PULL_PUSH),
                Some(repo(from, Actions::PULL)),
            ),
            Op::UploadStart { name, .. }
            | Op::UploadStatus { name, .. }
            | Op::UploadPatch { name, .. }
            | Op::UploadPut { name, .. }
            | Op::UploadCancel { name, .. }
            | Op::ManifestPut { name, .. } => (repo(name, Actions::PULL_PUSH), None),
            Op::BlobDelete { name, .. } | Op::ManifestDelete { name, .. } => {
                (repo(name, Actions::DELETE), None)
            }
        }
    }
}

/// A request under `/v2` that cannot become an `Op`; each maps to one error response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// No endpoint has this path: 404.
    NotFound,
    /// The path exists but not for this method: 405 UNSUPPORTED, with the methods it
    /// takes (the `Allow` header, RFC 9110 §15.5.6).
    Method(&'static str),
    /// An OCI error with its detail.
    Oci(ErrorCode, String),
}

impl RouteError {
    fn oci(code: ErrorCode, detail: impl Into<String>) -> RouteError {
        RouteError::Oci(code, detail.into())
    }
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Oci(Op),
    /// Not under `/v2`: the server's web, API, token and metrics routes.
    Web,
}

/// Whether a path belongs to the registry API (everything else is `Need::Web`).
pub fn is_registry_path(path: &str) -> bool {
    path == "/v2" || path.starts_with("/v2/")
}

/// Routes a request. `query` is the raw query string.
/// `Allow` for the endpoints that only read.
const READ: &str = "GET, HEAD";

pub fn route(method: Method, path: &str, query: &str) -> Result<Route, RouteError> {
    if !is_registry_path(path) {
        return Ok(Route::Web);
    }
    let rest = path.strip_prefix("/v2").unwrap_or("");
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let read = matches!(method, Method::Get | Method::Head);
    let head = method == Method::Head;
    if rest.is_empty() {
        return if read {
            Ok(Route::Oci(Op::Ping))
        } else {
            Err(RouteError::Method(READ))
        };
    }
    if rest == "_catalog" {
        if !read {
            return Err(RouteError::Method(READ));
        }
        let q = Query::parse(query);
        return Ok(Route::Oci(Op::Catalog {
            n: q.n()?,
            last: q.get("last").map(str::to_owned),
        }));
    }
    // The last three segments, found from the right without allocating; `k` counts the
    // segments, saturating at 4 ("at least four").
    let mut seg = [""; 3];
    let mut starts = [0usize; 3];
    let mut k = 0;
    let mut end = rest.len();
    while k < 3 {
        match rest[..end].rfind('/') {
            Some(i) => {
                seg[k] = &rest[i + 1..end];
                starts[k] = i + 1;
                end = i;
                k += 1;
            }
            None => {
                seg[k] = &rest[..end];
                k += 1;
                end = usize::MAX;
                break;
            }
        }
    }
    if end != usize::MAX {
        k = 4;
    }
    let last = |i: usize| seg[i - 1];
    // The name is everything before the last `trailing` segments.
    let name_before = |trailing: usize| -> Result<RepoName, RouteError> {
        let name = &rest[..starts[trailing - 1].saturating_sub(1)];
        RepoName::parse(name).ok_or_else(|| RouteError::oci(ErrorCode::NameInvalid, name))
    };
    let q = Query::parse(query);
    let op = if k >= 3 && last(2) == "tags" && last(1) == "list" {
        if !read {
            return Err(RouteError::Method(READ));
        }
        Op::TagsList {
            name: name_before(2)?,
            n: q.n()?,
            last: q.get("last").map(str::to_owned),
        }
    } else if k >= 4 && last(3) == "blobs" && last(2) == "uploads" {
        let name = name_before(3)?;
        let id = last(1);
        if id.is_empty() {
            upload_start(method, name, &q)?
        } else {
            let upload = UploadId::parse(&percent_decode(id))
                .ok_or_else(|| RouteError::oci(ErrorCode::BlobUploadUnknown, id))?;
            match method {
                Method::Get | Method::Head => Op::UploadStatus { name, upload },
                Method::Patch => Op::UploadPatch { name, upload },
                Method::Put => {
                    let digest = match q.get("digest") {
                        None => {
                            return Err(RouteError::oci(
                                ErrorCode::DigestInvalid,
                                "digest parameter missing",
                            ))
                        }
                        Some(d) => parse_digest(d)?,
                    };
                    Op::UploadPut {
                        name,
                        upload,
                        digest,
                    }
                }
                Method::Delete => Op::UploadCancel { name, upload },
                _ => return Err(RouteError::Method("GET, HEAD, PATCH, PUT, DELETE")),
            }
        }
    } else if k >= 3 && last(2) == "blobs" && last(1) == "uploads" {
        // `/blobs/uploads` without the trailing slash: lenient alias of end-4a.
        upload_start(method, name_before(2)?, &q)?
    } else if k >= 3 && last(2) == "blobs" {
        if !matches!(method, Method::Get | Method::Head | Method::Delete) {
            return Err(RouteError::Method("GET, HEAD, DELETE"));
        }
        let name = name_before(2)?;
        let digest = parse_digest(&percent_decode(last(1)))?;
        if method == Method::Delete {
            Op::BlobDelete { name, digest }
        } else {
            Op::BlobGet { name, digest, head }
        }
    } else if k >= 3 && last(2) == "manifests" {
        let name = name_before(2)?;
        let raw = percent_decode(last(1));
        match method {
            Method::Get | Method::Head | Method::Delete => {
                // T1 probes `.INVALID_MANIFEST_NAME` and expects 404: an invalid tag names
                // nothing. A malformed digest is a client error (400 DIGEST_INVALID).
                let reference = match parse_reference(&raw) {
                    Ok(r) => r,
                    Err(RefError::Digest) => {
                        return Err(RouteError::oci(ErrorCode::DigestInvalid, raw))
                    }
                    Err(RefError::Tag) => {
                        return Err(RouteError::oci(ErrorCode::ManifestUnknown, raw))
                    }
                };
                if method == Method::Delete {
                    Op::ManifestDelete { name, reference }
                } else {
                    Op::ManifestGet {
                        name,
                        reference,
                        head,
                    }
                }
            }
            Method::Put => {
                let reference = match parse_reference(&raw) {
                    Ok(r) => r,
                    Err(RefError::Digest) => {
                        return Err(RouteError::oci(ErrorCode::DigestInvalid, raw))
                    }
                    Err(RefError::Tag) => return Err(RouteError::oci(ErrorCode::TagInvalid, raw)),
                };
                let mut tags = Vec::new();
                for t in q.all("tag") {
                    tags.push(
                        Tag::parse(t).ok_or_else(|| RouteError::oci(ErrorCode::TagInvalid, t))?,
                    );
                }
                Op::ManifestPut {
                    name,
                    reference,
                    tags,
                }
            }
            _ => return Err(RouteError::Method("GET, HEAD, PUT, DELETE")),
        }
    } else if k >= 3 && last(2) == "referrers" {
        if !read {
            return Err(RouteError::Method(READ));
        }
        Op::Referrers {
            name: name_before(2)?,
            digest: parse_digest(&percent_decode(last(1)))?,
            artifact_type: q
                .get("artifactType")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        }
    } else {
        return Err(RouteError::NotFound);
    };
    Ok(Route::Oci(op))
}

fn upload_start(method: Method, name: RepoName, q: &Query) -> Result<Op, RouteError> {
    if method != Method::Post {
        return Err(RouteError::Method("POST"));
    }
    let mount = match q.get("mount") {
        Some(m) => Some(parse_digest(m)?),
        None => None,
    };
    let (mount, from) = match (mount, q.get("from")) {
        (Some(m), Some(f)) if !f.is_empty() => match RepoName::parse(f) {
            Some(from) => (Some(m), Some(from)),
            // A `from` that names no repository holds nothing to mount: the POST opens a
            // plain upload (202), as for any source it cannot mount from (spec §5.8).
            None => (None, None),
        },
        (m, _) => (m, None),
    };
    let digest = match q.get("digest") {
        Some(d) if mount.is_none() => Some(parse_digest(d)?),
        _ => None,
    };
    Ok(Op::UploadStart {
        name,
        digest,
        mount,
        from,
    })
}

enum RefError {
    Tag,
    Digest,
}

/// A reference is a tag unless it contains `:`, then it must be a digest (spec digest §1.2).
fn parse_reference(s: &str) -> Result<Reference, RefError> {
    if s.contains(':') {
        Digest::parse(s)
            .map(Reference::Digest)
            .map_err(|_| RefError::Digest)
    } else {
        Tag::parse(s).map(Reference::Tag).ok_or(RefError::Tag)
    }
}

fn parse_digest(s: &str) -> Result<Digest, RouteError> {
    Digest::parse(s)
        .map_err(|e: DigestError| RouteError::oci(ErrorCode::DigestInvalid, format!("{s}: {e}")))
}

/// Query parameters with percent-decoded values (clients send `digest=sha256%3A...`).
/// `+` is kept literally: media types such as `application/vnd.x+json` arrive unencoded.
pub struct Query<'q> {
    pairs: Vec<(&'q str, std::borrow::Cow<'q, str>)>,
}

impl<'q> Query<'q> {
    pub fn parse(q: &'q str) -> Query<'q> {
        let pairs = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k, percent_decode(v)),
                None => (p, std::borrow::Cow::Borrowed("")),
            })
            .collect();
        Query { pairs }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| &**v)
    }

    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| *k == key)
            .map(|(_, v)| &**v)
    }

    /// `n` for pagination: absent → `None`; not a non-negative integer → 400.
    fn n(&self) -> Result<Option<usize>, RouteError> {
        match self.get("n") {
            None => Ok(None),
            Some(v) if !v.is_empty() && v.len() <= 18 && v.bytes().all(|b| b.is_ascii_digit()) => {
                // At most 18 digits: always fits a usize on 64-bit targets; clamp otherwise.
                Ok(Some(v.parse::<u64>().map_or(usize::MAX, |n| {
                    usize::try_from(n).unwrap_or(usize::MAX)
                })))
            }
            Some(v) => Err(RouteError::oci(ErrorCode::PaginationNumberInvalid, v)),
        }
    }
}

/// Decodes `%XX` escapes in a query value or path segment (`+` stays a plus: media types
/// such as `artifactType` contain it).
pub fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    crate::http::percent::percent_decode(s, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn r(m: Method, p: &str, q: &str) -> Result<Route, RouteError> {
        route(m, p, q)
    }

    fn name(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    #[test]
    fn paths_parse_from_the_right_so_names_may_contain_endpoint_words() {
        // spec digest §1.1: a component may itself be called `blobs` or `manifests`.
        let got = r(Method::Get, "/v2/a/blobs/manifests/latest", "").unwrap();
        assert_eq!(
            got,
            Route::Oci(Op::ManifestGet {
                name: name("a/blobs"),
                reference: Reference::Tag(Tag::parse("latest").unwrap()),
                head: false
            })
        );
        let got = r(Method::Post, "/v2/x/manifests/y/blobs/uploads/", "").unwrap();
        assert!(
            matches!(got, Route::Oci(Op::UploadStart { ref name, .. }) if name.as_str() == "x/manifests/y")
        );
        let got = r(Method::Get, &format!("/v2/org/reg/img/blobs/{D}"), "").unwrap();
        assert!(
            matches!(got, Route::Oci(Op::BlobGet { ref name, .. }) if name.as_str() == "org/reg/img")
        );
    }

    #[test]
    fn query_digest_is_percent_decoded() {
        let q = format!("digest={}", D.replace(':', "%3A"));
        let got = r(Method::Put, "/v2/a/blobs/uploads/u1", &q).unwrap();
        assert!(
            matches!(got, Route::Oci(Op::UploadPut { ref digest, .. }) if digest.to_string() == D)
        );
    }

    #[test]
    fn route_table() {
        use ErrorCode::*;
        let rows: &[(Method, &str, &str, Result<&str, RouteError>)] = &[
            (Method::Get, "/v2/", "", Ok("ping")),
            (Method::Get, "/v2", "", Ok("ping")),
            (Method::Head, "/v2/", "", Ok("ping")),
            (Method::Post, "/v2/", "", Err(RouteError::Method(READ))),
            (Method::Get, "/v2/_catalog", "n=2&last=a", Ok("catalog")),
            (
                Method::Get,
                "/v2/_catalog",
                "n=-1",
                Err(RouteError::Oci(PaginationNumberInvalid, "-1".into())),
            ),
            (
                Method::Get,
                "/v2/a/tags/list",
                "n=x",
                Err(RouteError::Oci(PaginationNumberInvalid, "x".into())),
            ),
            (Method::Get, "/v2/a/tags/list", "n=0", Ok("tags_list")),
            (
                Method::Post,
                "/v2/a/tags/list",
                "",
                Err(RouteError::Method(READ)),
            ),
            (
                Method::Get,
                "/v2/A/tags/list",
                "",
                Err(RouteError::Oci(NameInvalid, "A".into())),
            ),
            (Method::Post, "/v2/a/blobs/uploads/", "", Ok("upload_start")),
            (Method::Post, "/v2/a/blobs/uploads", "", Ok("upload_start")),
            (
                Method::Get,
                "/v2/a/blobs/uploads/",
                "",
                Err(RouteError::Method("POST")),
            ),
            (
                Method::Patch,
                "/v2/a/blobs/uploads/u-1",
                "",
                Ok("upload_patch"),
            ),
            (
                Method::Get,
                "/v2/a/blobs/uploads/u-1",
                "",
                Ok("upload_status"),
            ),
            (
                Method::Delete,
                "/v2/a/blobs/uploads/u-1",
                "",
                Ok("upload_cancel"),
            ),
            (
                Method::Put,
                "/v2/a/blobs/uploads/u-1",
                "",
                Err(RouteError::Oci(
                    DigestInvalid,
                    "digest parameter missing".into(),
                )),
            ),
            (
                Method::Post,
                "/v2/a/blobs/uploads/u-1",
                "",
                Err(RouteError::Method("GET, HEAD, PATCH, PUT, DELETE")),
            ),
            (
                Method::Get,
                "/v2/a/blobs/sha256:abc",
                "",
                Err(RouteError::Oci(
                    DigestInvalid,
                    "sha256:abc: digest encoding must be lower-case hex of the algorithm's length"
                        .into(),
                )),
            ),
            (
                Method::Put,
                "/v2/a/blobs/x",
                "",
                Err(RouteError::Method("GET, HEAD, DELETE")),
            ),
            (
                Method::Get,
                "/v2/a/manifests/.INVALID_MANIFEST_NAME",
                "",
                Err(RouteError::Oci(
                    ManifestUnknown,
                    ".INVALID_MANIFEST_NAME".into(),
                )),
            ),
            (
                Method::Put,
                "/v2/a/manifests/.bad",
                "",
                Err(RouteError::Oci(TagInvalid, ".bad".into())),
            ),
            (
                Method::Get,
                "/v2/a/manifests/sha256:totallywrong",
                "",
                Err(RouteError::Oci(DigestInvalid, "sha256:totallywrong".into())),
            ),
            (
                Method::Put,
                "/v2/a/manifests/sha256:baddigeststring",
                "",
                Err(RouteError::Oci(
                    DigestInvalid,
                    "sha256:baddigeststring".into(),
                )),
            ),
            (
                Method::Put,
                "/v2/a/manifests/v1",
                "tag=a&tag=b",
                Ok("manifest_put"),
            ),
            (
                Method::Put,
                "/v2/a/manifests/v1",
                "tag=.x",
                Err(RouteError::Oci(TagInvalid, ".x".into())),
            ),
            (
                Method::Delete,
                "/v2/a/manifests/v1",
                "",
                Ok("manifest_delete"),
            ),
            (
                Method::Patch,
                "/v2/a/manifests/v1",
                "",
                Err(RouteError::Method("GET, HEAD, PUT, DELETE")),
            ),
            (
                Method::Get,
                "/v2/a/nothing/here",
                "",
                Err(RouteError::NotFound),
            ),
            (
                Method::Get,
                "/v2/manifests/v1",
                "",
                Err(RouteError::NotFound),
            ),
            (
                Method::Get,
                "/v2/a/referrers/x",
                "",
                Err(RouteError::Oci(
                    DigestInvalid,
                    "x: digest does not match the grammar algorithm:encoded".into(),
                )),
            ),
        ];
        for (m, p, q, want) in rows {
            let got = r(*m, p, q).map(|rt| match rt {
                Route::Oci(op) => op.route_name(),
                Route::Web => "web",
            });
            assert_eq!(&got, &want.clone(), "{m:?} {p}?{q}");
        }
        assert_eq!(r(Method::Get, "/", ""), Ok(Route::Web));
        assert_eq!(r(Method::Get, "/v2x", ""), Ok(Route::Web));
    }

    #[test]
    fn mount_and_tag_params_are_typed() {
        let start = |from: &str| {
            r(
                Method::Post,
                "/v2/a/blobs/uploads/",
                &format!("mount={D}&from={from}"),
            )
        };
        let upload = |mount: Option<Digest>, from: Option<RepoName>| {
            Ok(Route::Oci(Op::UploadStart {
                name: name("a"),
                digest: None,
                mount,
                from,
            }))
        };
        let d = Digest::parse(D).unwrap();
        assert_eq!(start("b/c"), upload(Some(d), Some(name("b/c"))));
        // A source that is no repository name: a plain upload, not a 400.
        assert_eq!(start("Bad/Name"), upload(None, None));
        let got = r(Method::Put, &format!("/v2/a/manifests/{D}"), "tag=x&tag=y").unwrap();
        assert!(matches!(got, Route::Oci(Op::ManifestPut { ref tags, .. }) if tags.len() == 2));
        let got = r(
            Method::Get,
            &format!("/v2/a/referrers/{D}"),
            "artifactType=application%2Fvnd.x%2Bjson",
        )
        .unwrap();
        assert!(
            matches!(got, Route::Oci(Op::Referrers { artifact_type: Some(ref t), .. }) if t == "application/vnd.x+json")
        );
    }

    #[test]
    fn percent_decoding_keeps_invalid_escapes() {
        assert_eq!(percent_decode("a%3Ab"), "a:b");
        assert_eq!(percent_decode("a%3"), "a%3");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%ff"), "%ff");
    }
}
