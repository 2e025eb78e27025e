//! `ModelStore`: the storage layer as a few `BTreeMap`s. It answers every `Need` the way
//! the real store must (per-repository blob links, upload sessions, manifests, tags,
//! referrers, sha256/sha512 verification) and is the oracle of the core's tests.

use crate::need::*;
use crate::oci::{Algorithm, Digest, ErrorCode, Reference, RepoName, Tag, UploadId};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Range;

#[derive(Clone, Debug, Default)]
struct Repo {
    blobs: BTreeSet<Digest>,
    manifests: BTreeMap<Digest, Stored>,
    tags: BTreeMap<Tag, Digest>,
}

#[derive(Clone, Debug)]
struct Stored {
    info: ManifestInfo,
    subject: Option<(Digest, Referrer)>,
}

#[derive(Clone, Debug)]
struct Upload {
    repo: RepoName,
    data: Vec<u8>,
}

/// An in-memory store answering `Need`s. Deterministic: upload ids count up.
#[derive(Clone, Debug)]
pub struct ModelStore {
    repos: BTreeMap<RepoName, Repo>,
    blobs: BTreeMap<Digest, Bytes>,
    /// `BlobHandle::file` indexes this list.
    handles: Vec<Digest>,
    uploads: BTreeMap<UploadId, Upload>,
    next_upload: u64,
    /// When false, `FinishUpload` trusts the client's digest (lets a fuzzer past hashing,
    /// as rustls's insecure provider does).
    pub verify_digests: bool,
    /// When true, `PutManifest` refuses manifests whose blobs/children are not present.
    pub check_references: bool,
    /// Largest blob accepted by `FinishUpload`.
    pub max_upload: Option<u64>,
    /// When set, every storage need is answered `Reply::Failed` (storage failure drills).
    /// `Need::Authorize` is still answered by `auth`: the drills aim at storage.
    pub fail: bool,
    /// When set, every storage need is answered `Reply::StoreFull` with this message.
    pub full: Option<String>,
    /// When set, every storage need is answered `Reply::Unavailable` with this message.
    pub unavailable: Option<String>,
    /// Who may do what. The default allows everything, so tests about storage need no
    /// credentials.
    pub auth: AuthPolicy,
    /// Answers for the next `Need::Authorize`s, in order, ahead of `auth` (scripted
    /// refusals: a 429 with `Retry-After`, a challenge to compare verbatim).
    pub scripted_auth: VecDeque<Auth>,
    /// Every `Need::Authorize` answered so far (credentials included: test data only).
    pub auth_log: Vec<AuthRequest>,
}

/// The testkit's stand-in for the server's authorizer.
#[derive(Clone, Debug, Default)]
pub enum AuthPolicy {
    /// Grant every request, optional access included.
    #[default]
    AllowAll,
    /// Decide from grants per credential, as the server's decision table does (simplified).
    Rules(AuthRules),
}

/// Actions a principal has: some on every repository, more on named ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    pub everywhere: Actions,
    pub repos: BTreeMap<RepoName, Actions>,
}

impl Grants {
    /// No actions anywhere.
    pub fn none() -> Grants {
        Grants::default()
    }

    /// `actions` on every repository.
    pub fn everywhere(actions: Actions) -> Grants {
        Grants {
            everywhere: actions,
            repos: BTreeMap::new(),
        }
    }

    /// Adds `actions` on `repo` (a valid repository name; test setup).
    pub fn on(mut self, repo: &str, actions: Actions) -> Grants {
        let name = RepoName::parse(repo).expect("test setup names a valid repository");
        let a = self.repos.entry(name).or_default();
        *a = union(*a, actions);
        self
    }

    /// What the principal may do on `repo`.
    pub fn actions(&self, repo: &RepoName) -> Actions {
        union(
            self.everywhere,
            self.repos.get(repo).copied().unwrap_or_default(),
        )
    }
}

fn union(a: Actions, b: Actions) -> Actions {
    Actions {
        pull: a.pull || b.pull,
        push: a.push || b.push,
        delete: a.delete || b.delete,
    }
}

/// A credential-to-grants table. Anonymous callers get `anonymous`; a credential (the raw
/// `Authorization` value) not in `credentials` is invalid.
#[derive(Clone, Debug, Default)]
pub struct AuthRules {
    pub anonymous: Grants,
    pub credentials: BTreeMap<String, Grants>,
    /// Whether an anonymous `GET /v2/` is granted (else 401 with a challenge).
    pub anonymous_ping: bool,
}

impl AuthRules {
    /// Adds a credential (the whole `Authorization` value) with its grants.
    pub fn credential(mut self, value: &str, grants: Grants) -> AuthRules {
        self.credentials.insert(value.to_owned(), grants);
        self
    }

    /// The server's decision table (docs/auth.md, "Decision"), without tenancy: invalid
    /// credentials 401 `invalid_token`; covered → granted; anonymous → 401 with the scope;
    /// may pull but not more → 403 `DENIED`; otherwise 404 `NAME_UNKNOWN`.
    pub fn decide(&self, req: &AuthRequest) -> Auth {
        let realm = format!(
            "http://{}/auth/token",
            req.host.as_deref().unwrap_or("registry.test")
        );
        let grants = match &req.credentials {
            None => &self.anonymous,
            Some(c) => match self.credentials.get(c) {
                Some(g) => g,
                None => {
                    return Auth::Refused(challenge(
                        &realm,
                        &req.required,
                        Some("invalid_token"),
                        "invalid credentials",
                    ))
                }
            },
        };
        let anonymous = req.credentials.is_none();
        let covered = |a: &Access| match &a.resource {
            Resource::Ping => !anonymous || self.anonymous_ping,
            Resource::Catalog => true,
            Resource::Repository(r) => grants.actions(r).covers(a.actions),
        };
        if covered(&req.required) {
            return Auth::Granted {
                optional: req.optional.as_ref().is_some_and(covered),
            };
        }
        let Resource::Repository(repo) = &req.required.resource else {
            return Auth::Refused(challenge(
                &realm,
                &req.required,
                None,
                "authentication required",
            ));
        };
        if anonymous {
            Auth::Refused(challenge(
                &realm,
                &req.required,
                None,
                "authentication required",
            ))
        } else if grants.actions(repo).pull {
            Auth::Refused(Refusal {
                status: 403,
                code: ErrorCode::Denied,
                message: format!("credential may not push or delete in {repo}"),
                www_authenticate: None,
                retry_after: None,
            })
        } else {
            Auth::Refused(Refusal {
                status: 404,
                code: ErrorCode::NameUnknown,
                message: format!("repository {repo} not known to registry"),
                www_authenticate: None,
                retry_after: None,
            })
        }
    }
}

/// A 401 with a Bearer challenge naming the scope the request needs (spec digest §9.2).
fn challenge(realm: &str, access: &Access, error: Option<&str>, message: &str) -> Refusal {
    let mut c = format!("Bearer realm=\"{realm}\",service=\"berth\"");
    if let Resource::Repository(r) = &access.resource {
        let a = access.actions;
        let names: Vec<&str> = [(a.pull, "pull"), (a.push, "push"), (a.delete, "delete")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        c.push_str(&format!(",scope=\"repository:{r}:{}\"", names.join(",")));
    } else if access.resource == Resource::Catalog {
        c.push_str(",scope=\"registry:catalog:*\"");
    }
    if let Some(e) = error {
        c.push_str(&format!(",error=\"{e}\""));
    }
    Refusal {
        status: 401,
        code: ErrorCode::Unauthorized,
        message: message.to_owned(),
        www_authenticate: Some(c),
        retry_after: None,
    }
}

impl Default for ModelStore {
    fn default() -> Self {
        ModelStore {
            repos: BTreeMap::new(),
            blobs: BTreeMap::new(),
            handles: Vec::new(),
            uploads: BTreeMap::new(),
            next_upload: 0,
            verify_digests: true,
            check_references: true,
            max_upload: None,
            fail: false,
            full: None,
            unavailable: None,
            auth: AuthPolicy::AllowAll,
            scripted_auth: VecDeque::new(),
            auth_log: Vec::new(),
        }
    }
}

impl ModelStore {
    pub fn new() -> ModelStore {
        ModelStore::default()
    }

    /// The bytes `Output::SendBlob { blob, range }` refers to.
    pub fn blob_bytes(&self, blob: BlobHandle, range: Range<u64>) -> &[u8] {
        let d = &self.handles[blob.file as usize];
        let b = &self.blobs[d];
        &b[range.start as usize..range.end as usize]
    }

    /// Puts a blob straight into a repository (test setup).
    pub fn insert_blob(&mut self, repo: &RepoName, data: &[u8]) -> Digest {
        let d = crate::hash(Algorithm::Sha256, data);
        self.blobs
            .entry(d.clone())
            .or_insert_with(|| Bytes::copy_from_slice(data));
        self.handle_of(&d);
        self.repos
            .entry(repo.clone())
            .or_default()
            .blobs
            .insert(d.clone());
        d
    }

    /// Whether `repo` holds blob `d`.
    pub fn has_blob(&self, repo: &RepoName, d: &Digest) -> bool {
        self.repos.get(repo).is_some_and(|r| r.blobs.contains(d))
    }

    /// The content of blob `d`, if stored anywhere.
    pub fn blob(&self, d: &Digest) -> Option<&Bytes> {
        self.blobs.get(d)
    }

    /// Number of open upload sessions.
    pub fn open_uploads(&self) -> usize {
        self.uploads.len()
    }

    /// The stored manifest `reference` names in `repo`.
    pub fn manifest(&self, repo: &RepoName, reference: &Reference) -> Option<&ManifestInfo> {
        let r = self.repos.get(repo)?;
        let d = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => r.tags.get(t)?.clone(),
        };
        r.manifests.get(&d).map(|s| &s.info)
    }

    /// The handle `Output::SendBlob` carries for blob `d` (which must be stored).
    pub fn handle_of(&mut self, d: &Digest) -> BlobHandle {
        let file = match self.handles.iter().position(|h| h == d) {
            Some(i) => i,
            None => {
                self.handles.push(d.clone());
                self.handles.len() - 1
            }
        };
        BlobHandle {
            file: file as u64,
            offset: 0,
        }
    }

    fn info(&mut self, d: &Digest) -> Option<BlobInfo> {
        let size = self.blobs.get(d)?.len() as u64;
        Some(BlobInfo {
            size,
            handle: self.handle_of(d),
        })
    }

    fn start(&mut self, repo: &RepoName) -> UploadInfo {
        self.next_upload += 1;
        let id = UploadId::parse(&format!("up-{}", self.next_upload))
            .expect("ids of this form are valid");
        self.repos.entry(repo.clone()).or_default();
        self.uploads.insert(
            id.clone(),
            Upload {
                repo: repo.clone(),
                data: Vec::new(),
            },
        );
        UploadInfo { id, offset: 0 }
    }

    fn upload(&self, repo: &RepoName, id: &UploadId) -> Option<UploadInfo> {
        let u = self.uploads.get(id).filter(|u| u.repo == *repo)?;
        Some(UploadInfo {
            id: id.clone(),
            offset: u.data.len() as u64,
        })
    }

    /// Answers `Need::Authorize`: a scripted answer if one is queued, else the policy.
    pub fn authorize(&mut self, req: &AuthRequest) -> Auth {
        self.auth_log.push(req.clone());
        if let Some(a) = self.scripted_auth.pop_front() {
            return a;
        }
        match &self.auth {
            AuthPolicy::AllowAll => Auth::Granted { optional: true },
            AuthPolicy::Rules(rules) => rules.decide(req),
        }
    }

    /// Answers one need, as the real store must.
    pub fn answer(&mut self, need: &Need<'_>) -> Reply {
        if self.fail && !matches!(need, Need::Authorize(_)) {
            return Reply::Failed("model store told to fail".into());
        }
        if let (Some(msg), false) = (&self.full, matches!(need, Need::Authorize(_))) {
            return Reply::StoreFull(msg.clone());
        }
        if let (Some(msg), false) = (&self.unavailable, matches!(need, Need::Authorize(_))) {
            return Reply::Unavailable(msg.clone());
        }
        match need {
            Need::StatBlob { repo, digest } => {
                if self.has_blob(repo, digest) {
                    Reply::Blob(self.info(digest))
                } else {
                    Reply::Blob(None)
                }
            }
            Need::DeleteBlob { repo, digest } => match self.repos.get_mut(repo) {
                None => Reply::Deleted(Deleted::NameUnknown),
                Some(r) => match r.blobs.remove(digest) {
                    true => Reply::Deleted(Deleted::Done),
                    false => Reply::Deleted(Deleted::NotFound),
                },
            },
            Need::StartUpload { repo } => Reply::Upload(Some(self.start(repo))),
            // In memory, the bytes are as durable as they will be.
            Need::UploadStatus { repo, upload } | Need::SyncUpload { repo, upload } => {
                Reply::Upload(self.upload(repo, upload))
            }
            Need::AppendUpload {
                repo,
                upload,
                offset,
                bytes,
            } => match self.uploads.get_mut(upload).filter(|u| u.repo == *repo) {
                Some(u) if u.data.len() as u64 == *offset => {
                    u.data.extend_from_slice(bytes);
                    Reply::Upload(Some(UploadInfo {
                        id: upload.clone(),
                        offset: u.data.len() as u64,
                    }))
                }
                // An append at the wrong offset is a core bug here (one writer per
                // session): make it loud. Refusals are tested through `Harness::intercept`.
                Some(u) => {
                    Reply::Failed(format!("append at {offset}, session has {}", u.data.len()))
                }
                None => Reply::Upload(None),
            },
            Need::FinishUpload {
                repo,
                upload,
                digest,
            } => {
                if self.upload(repo, upload).is_none() {
                    return Reply::Finished(Finish::UploadUnknown);
                }
                let Some(u) = self.uploads.remove(upload) else {
                    return Reply::Finished(Finish::UploadUnknown);
                };
                if self.max_upload.is_some_and(|m| u.data.len() as u64 > m) {
                    return Reply::Finished(Finish::TooLarge);
                }
                if self.verify_digests && crate::hash(digest.algorithm(), &u.data) != *digest {
                    return Reply::Finished(Finish::DigestMismatch);
                }
                self.blobs
                    .entry(digest.clone())
                    .or_insert_with(|| u.data.into());
                self.repos
                    .entry(repo.clone())
                    .or_default()
                    .blobs
                    .insert(digest.clone());
                let info = self.info(digest).expect("just inserted");
                Reply::Finished(Finish::Committed(info))
            }
            Need::CancelUpload { repo, upload } => {
                if self.uploads.get(upload).is_some_and(|u| u.repo == *repo) {
                    self.uploads.remove(upload);
                    Reply::Deleted(Deleted::Done)
                } else {
                    Reply::Deleted(Deleted::NotFound)
                }
            }
            Need::MountBlob { repo, digest, from } => {
                let found = match from {
                    Some(f) => self.has_blob(f, digest),
                    None => self.repos.values().any(|r| r.blobs.contains(digest)),
                };
                if found && self.blobs.contains_key(digest) {
                    self.repos
                        .entry(repo.clone())
                        .or_default()
                        .blobs
                        .insert(digest.clone());
                    let info = self.info(digest).expect("checked present");
                    Reply::Mount(Mount::Mounted(info))
                } else {
                    Reply::Mount(Mount::Started(self.start(repo)))
                }
            }
            Need::GetManifest {
                repo, reference, ..
            } => Reply::Manifest(self.manifest(repo, reference).cloned()),
            Need::PutManifest { repo, manifest } => {
                let r = self.repos.entry(repo.clone()).or_default();
                if self.check_references {
                    let mut missing: Vec<Digest> = manifest
                        .blobs
                        .iter()
                        .filter(|d| !r.blobs.contains(d))
                        .cloned()
                        .collect();
                    missing.extend(
                        manifest
                            .manifests
                            .iter()
                            .filter(|d| !r.manifests.contains_key(d))
                            .cloned(),
                    );
                    if !missing.is_empty() {
                        return Reply::ManifestPut(ManifestPut::Missing(missing));
                    }
                }
                r.manifests.insert(
                    manifest.digest.clone(),
                    Stored {
                        info: ManifestInfo {
                            digest: manifest.digest.clone(),
                            media_type: manifest.media_type.clone(),
                            body: manifest.body.clone(),
                        },
                        subject: manifest.subject.clone(),
                    },
                );
                for t in &manifest.tags {
                    r.tags.insert(t.clone(), manifest.digest.clone());
                }
                Reply::ManifestPut(ManifestPut::Stored)
            }
            Need::DeleteManifest { repo, reference } => {
                let Some(r) = self.repos.get_mut(repo) else {
                    return Reply::Deleted(Deleted::NameUnknown);
                };
                match reference {
                    Reference::Tag(t) => match r.tags.remove(t) {
                        Some(_) => Reply::Deleted(Deleted::Done),
                        None => Reply::Deleted(Deleted::NotFound),
                    },
                    Reference::Digest(d) => {
                        if r.manifests.remove(d).is_some() {
                            r.tags.retain(|_, v| v != d);
                            Reply::Deleted(Deleted::Done)
                        } else {
                            Reply::Deleted(Deleted::NotFound)
                        }
                    }
                }
            }
            Need::ListTags { repo, n, last } => {
                let Some(r) = self.repos.get(repo) else {
                    return Reply::Tags(None);
                };
                let names = r.tags.keys().map(|t| t.as_str().to_owned());
                Reply::Tags(Some(page(names, *n, last.as_deref())))
            }
            Need::Referrers { repo, subject } => {
                let list = self
                    .repos
                    .get(repo)
                    .map(|r| {
                        r.manifests
                            .values()
                            .filter_map(|s| s.subject.as_ref())
                            .filter(|(d, _)| d == subject)
                            .map(|(_, r)| r.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                Reply::Referrers(list)
            }
            Need::Catalog { n, last } => {
                let names = self.repos.keys().map(|r| r.as_str().to_owned());
                Reply::Catalog(page(names, *n, last.as_deref()))
            }
            Need::Authorize(req) => Reply::Auth(self.authorize(req)),
            Need::Web(req) => Reply::Web(WebResponse {
                status: 200,
                content_type: "text/plain".into(),
                headers: vec![("X-Web".into(), "1".into())],
                body: format!("{} {} {}", req.method, req.path, req.body.len()).into(),
            }),
        }
    }
}

/// A byte-wise sorted page after `last`, at most `n`.
fn page(sorted: impl Iterator<Item = String>, n: usize, last: Option<&str>) -> Page {
    let mut rest = sorted.filter(|s| last.is_none_or(|l| s.as_str() > l));
    let items: Vec<String> = rest.by_ref().take(n).collect();
    let more = rest.next().is_some();
    Page { items, more }
}
