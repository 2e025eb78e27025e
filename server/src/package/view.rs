//! What a caller may see of the packages: registries, images, versions, a version's details
//! and its files, as plain values the JSON API serialises and the pages render. Access is
//! the registry's: what a caller may not pull does not exist for it (the same not-found as an
//! unknown name).

use std::collections::BTreeMap;

use berth_engine::package::facts::{field, key as annotation};
use berth_engine::package::{ConfigFacts, EntryKind, FsNode, Kind, ManifestFacts, VersionRecord};
use berth_engine::{BlobKey, Engine, ManifestRef, RegistryRec, StoreError, Visibility};
use serde::Serialize;

use super::downloads::Downloads;
use super::path::VersionRef;
use crate::auth::policy::{may_read, place, Principal};

/// Why a view could not be made.
#[derive(Debug)]
pub enum ViewError {
    /// Not there, or not for this caller: the message names what was asked for.
    NotFound(String),
    /// The request does not make sense (an index's files without a platform).
    Bad(String),
    Store(StoreError),
}

impl From<StoreError> for ViewError {
    fn from(e: StoreError) -> Self {
        ViewError::Store(e)
    }
}

type R<T> = Result<T, ViewError>;

/// Largest config blob read for its labels.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// One registry on its organisation's page.
#[derive(Clone, Debug, Serialize)]
pub struct RegistryView {
    pub org: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub visibility: &'static str,
    pub images: u64,
    /// Bytes its images hold: manifests, and each blob once.
    pub storage_bytes: u64,
}

/// One image on its registry's page.
#[derive(Clone, Debug, Serialize)]
pub struct ImageView {
    /// The image's name within its registry.
    pub name: String,
    /// `org/registry/name`.
    pub repository: String,
    /// The newest version's tags (of an image or index rather than of an artifact).
    pub latest_tags: Vec<String>,
    pub versions: u64,
    pub pushed_at: Option<u64>,
    /// The newest version's size.
    pub size: Option<u64>,
    /// All versions' pulls and Downloads.
    pub downloads: u64,
}

/// One version on its image's page.
#[derive(Clone, Debug, Serialize)]
pub struct VersionView {
    pub digest: String,
    pub tags: Vec<String>,
    pub kind: Option<String>,
    pub state: &'static str,
    pub pushed_at: Option<u64>,
    pub size: Option<u64>,
    pub platforms: Vec<String>,
    pub downloads: u64,
}

/// A version's page.
#[derive(Clone, Debug, Serialize)]
pub struct Details {
    /// The image's name within its registry.
    pub name: String,
    /// The tag asked for, else the digest.
    pub version: String,
    pub repository: String,
    /// `org/registry`.
    pub registry: String,
    pub visibility: &'static str,
    pub digest: String,
    pub media_type: String,
    pub kind: &'static str,
    pub artifact_type: Option<String>,
    pub tags: Vec<String>,
    /// `indexing` until the indexer has recorded it, then `indexed`, or `partial` when a
    /// layer could not be read whole.
    pub state: &'static str,
    pub pushed_at: Option<u64>,
    pub indexed_at: Option<u64>,
    pub platform: Option<String>,
    /// An index's platforms.
    pub platforms: Vec<PlatformView>,
    /// The index this image was reached through, with `?platform=`.
    pub index_digest: Option<String>,
    pub total_files: Option<u64>,
    pub dependencies: Vec<Dependency>,
    pub size: Option<u64>,
    pub downloads: u64,
    pub distribution: Option<berth_engine::package::Distribution>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub homepage: Option<String>,
    pub source: Option<String>,
    pub licenses: Option<String>,
    pub software_version: Option<String>,
    pub created: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub ports: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub checksums: Option<berth_engine::package::Checksums>,
    /// Why there are no checksums (still indexing, a foreign layer, not an image).
    pub checksums_missing: Option<String>,
    pub manifest: Blob,
    pub config: Option<Blob>,
    pub layers: Vec<berth_engine::package::LayerInfo>,
    pub subject: Option<String>,
    pub referrers: Vec<ReferrerView>,
}

/// A blob a version names.
#[derive(Clone, Debug, Serialize)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

/// An index's platform image.
#[derive(Clone, Debug, Serialize)]
pub struct PlatformView {
    pub platform: String,
    pub digest: String,
    pub size: u64,
}

/// An image this one needs.
#[derive(Clone, Debug, Serialize)]
pub struct Dependency {
    /// A reference (`host/org/registry/image@digest`, or a base image's name as given).
    pub name: String,
    pub digest: Option<String>,
    pub platform: Option<String>,
    /// `org/registry/image@digest` when it is in this registry.
    pub link: Option<String>,
}

/// A manifest that refers to this one (a signature, an SBOM).
#[derive(Clone, Debug, Serialize)]
pub struct ReferrerView {
    pub digest: String,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub size: u64,
}

/// One page of a directory of a version's files.
#[derive(Clone, Debug, Serialize)]
pub struct FilesView {
    /// The directory, `/`-rooted.
    pub path: String,
    pub entries: Vec<FileView>,
    /// Pass as `after` for the next page.
    pub next_after: Option<String>,
}

/// One entry of a directory.
#[derive(Clone, Debug, Serialize)]
pub struct FileView {
    pub name: String,
    /// `/`-rooted.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
    /// Octal permission bits, `0755`.
    pub mode: String,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub link: Option<String>,
    /// The layer (0 = lowest) that last set it.
    pub layer: usize,
}

/// One search result: a version of an image.
#[derive(Clone, Debug, Serialize)]
pub struct SearchHit {
    /// `org/registry/name`.
    pub repository: String,
    /// `org/registry`.
    pub registry: String,
    /// The image's name within its registry.
    pub name: String,
    pub digest: String,
    pub tags: Vec<String>,
    /// For a path search, the paths found in it (`/`-rooted).
    pub paths: Vec<String>,
}

/// What one layer of an image did to the layers below it.
#[derive(Clone, Debug, Serialize)]
pub struct LayerChangesView {
    /// 0 = the lowest layer.
    pub index: usize,
    pub digest: String,
    /// Paths it added, changed, and removed (`/`-rooted; a removed directory stands for
    /// everything under it), each list at most [`CHANGES_SHOWN`] long.
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// The lists' whole lengths (`removed_entries` counts subtrees too).
    pub added_total: u64,
    pub changed_total: u64,
    pub removed_total: u64,
    pub removed_entries: u64,
    /// Whether the layer could be read (external or missing layers show no changes).
    pub listed: bool,
}

/// Paths shown per list of a layer's changes.
pub const CHANGES_SHOWN: usize = 1000;

/// The caller's view of the store.
pub struct Viewer<'a> {
    pub e: &'a Engine,
    pub p: &'a Principal,
    pub host: &'a str,
    pub downloads: &'a Downloads,
}

/// `public` or `private`.
pub fn visibility(r: &RegistryRec) -> &'static str {
    match r.visibility {
        Visibility::Public => "public",
        Visibility::Private => "private",
    }
}

/// A resolved version: its key, manifest and facts.
pub struct Resolved {
    pub key: BlobKey,
    pub media_type: String,
    pub body: bytes::Bytes,
    pub facts: ManifestFacts,
    /// The tag it was asked by.
    pub tag: Option<String>,
    /// The index it was reached through (`?platform=`).
    pub index: Option<BlobKey>,
}

impl Viewer<'_> {
    fn registry(&self, org: &str, reg: &str) -> R<RegistryRec> {
        match self.e.get_registry(org, reg)? {
            Some(r) if may_read(self.p, &r) => Ok(r),
            _ => Err(ViewError::NotFound(format!("no registry {org}/{reg}"))),
        }
    }

    fn repo_registry(&self, repo: &str) -> R<RegistryRec> {
        let (org, reg) =
            place(repo).ok_or_else(|| ViewError::NotFound(format!("no image {repo}")))?;
        self.registry(org, reg)
            .map_err(|_| ViewError::NotFound(format!("no image {repo}")))
    }

    /// The registries of `org` the caller may see. An organisation with none is not found
    /// unless the caller belongs to it.
    pub fn registries(&self, org: &str) -> R<Vec<RegistryView>> {
        let mut out = Vec::new();
        for r in self.readable_registries(org)? {
            let prefix = format!("{}/{}/", r.org, r.slug);
            out.push(RegistryView {
                visibility: visibility(&r),
                images: self.e.count_repos(&prefix)?,
                storage_bytes: self.e.repos_bytes(&prefix)?,
                org: r.org,
                slug: r.slug,
                name: r.name,
                description: r.description,
            });
        }
        Ok(out)
    }

    /// The registries of `org` the caller may pull; an organisation with none is not found
    /// unless the caller belongs to it.
    fn readable_registries(&self, org: &str) -> R<Vec<RegistryRec>> {
        let none = || ViewError::NotFound(format!("no organisation {org}"));
        if self.e.get_org(org)?.is_none() {
            return Err(none());
        }
        let regs = self.e.list_registries(org).map_err(|_| none())?;
        let out: Vec<RegistryRec> = regs.into_iter().filter(|r| may_read(self.p, r)).collect();
        let member = self.p.is_admin() || self.p.org() == Some(org);
        if out.is_empty() && !member {
            return Err(none());
        }
        Ok(out)
    }

    /// Repositories under `org/reg/`, in name order.
    fn repos(&self, org: &str, reg: &str) -> R<Vec<String>> {
        let (all, _) = self
            .e
            .list_repos(&format!("{org}/{reg}/"), None, usize::MAX)?;
        Ok(all)
    }

    /// The images of a registry, newest push first.
    pub fn images(&self, org: &str, reg: &str) -> R<(RegistryRec, Vec<ImageView>)> {
        let r = self.registry(org, reg)?;
        let mut out = Vec::new();
        for repo in self.repos(org, reg)? {
            let versions = self.e.list_versions(&repo)?;
            if versions.is_empty() {
                continue;
            }
            // An SBOM or signature pushed after an image is not the image's newest
            // version: the newest tagged image (or index) is, then any tagged version.
            let newest = versions
                .iter()
                .find(|v| {
                    !v.tags.is_empty() && v.record.as_ref().is_none_or(|r| r.kind != "artifact")
                })
                .or_else(|| versions.iter().find(|v| !v.tags.is_empty()))
                .unwrap_or(&versions[0]);
            out.push(ImageView {
                name: repo[org.len() + reg.len() + 2..].to_owned(),
                latest_tags: newest.tags.clone(),
                versions: versions.len() as u64,
                pushed_at: versions.iter().filter_map(|v| v.stats.pushed_at).max(),
                size: newest.record.as_ref().map(|r| r.size),
                downloads: versions
                    .iter()
                    .map(|v| v.stats.downloads + self.downloads.pending(&repo, &v.key))
                    .sum(),
                repository: repo,
            });
        }
        out.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then(a.name.cmp(&b.name)));
        Ok((r, out))
    }

    /// Up to `limit` images of a registry, newest push first, after the one named `after`
    /// (the last of the page before), and whether more follow. Paging by name keeps a link
    /// stable while the pages are read; a name no longer there ends the listing.
    pub fn images_page(
        &self,
        org: &str,
        reg: &str,
        after: Option<&str>,
        limit: usize,
    ) -> R<(RegistryRec, Vec<ImageView>, bool)> {
        let (r, all) = self.images(org, reg)?;
        let from = match after {
            None => 0,
            Some(a) => all
                .iter()
                .position(|i| i.name == a)
                .map_or(all.len(), |i| i + 1),
        };
        let more = all.len() > from + limit;
        let page = all.into_iter().skip(from).take(limit).collect();
        Ok((r, page, more))
    }

    /// The versions of image `repo`, newest push first.
    pub fn versions(&self, repo: &str) -> R<Vec<VersionView>> {
        self.repo_registry(repo)?;
        let versions = self.e.list_versions(repo)?;
        if versions.is_empty() {
            return Err(ViewError::NotFound(format!("no image {repo}")));
        }
        let mut out = Vec::new();
        for v in versions {
            let platforms = match &v.record {
                Some(r) if r.kind == "index" => self
                    .e
                    .get_manifest(repo, ManifestRef::Key(&v.key))?
                    .map(|m| {
                        ManifestFacts::parse(&m.body, &m.media_type)
                            .manifests
                            .iter()
                            .filter_map(|d| d.platform.as_ref())
                            .filter(|p| !p.is_unknown())
                            .map(|p| p.to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            out.push(VersionView {
                digest: v.key.to_string(),
                kind: v.record.as_ref().map(|r| r.kind.clone()),
                state: state(v.record.as_ref()),
                pushed_at: v.stats.pushed_at,
                size: v.record.as_ref().map(|r| r.size),
                platforms,
                downloads: v.stats.downloads + self.downloads.pending(repo, &v.key),
                tags: v.tags,
            });
        }
        Ok(out)
    }

    /// Finds version `v` of `repo`, through an index to `platform` when given.
    pub fn resolve(&self, repo: &str, v: &VersionRef, platform: Option<&str>) -> R<Resolved> {
        self.repo_registry(repo)?;
        let missing = || ViewError::NotFound(format!("no version {repo}{}", v.suffix()));
        let (m, tag) = match v {
            VersionRef::Tag(t) => (
                self.e.get_manifest(repo, ManifestRef::Tag(t))?,
                Some(t.clone()),
            ),
            VersionRef::Digest(d) => {
                let k = BlobKey::parse(d).ok_or_else(missing)?;
                (self.e.get_manifest(repo, ManifestRef::Key(&k))?, None)
            }
        };
        let m = m.ok_or_else(missing)?;
        let facts = ManifestFacts::parse(&m.body, &m.media_type);
        let Some(want) = platform else {
            return Ok(Resolved {
                key: m.key,
                media_type: m.media_type,
                body: m.body,
                facts,
                tag,
                index: None,
            });
        };
        if facts.kind() != Kind::Index {
            return Err(ViewError::Bad(format!(
                "{repo}{} is not a multi-platform index: leave out the platform",
                v.suffix()
            )));
        }
        let child = facts
            .manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| p.to_string() == want))
            .ok_or_else(|| {
                ViewError::NotFound(format!(
                    "{repo}{} has no platform {want}; it has {}",
                    v.suffix(),
                    platforms(&facts).join(", ")
                ))
            })?;
        let ck = BlobKey::parse(&child.digest).ok_or_else(missing)?;
        let cm = self
            .e
            .get_manifest(repo, ManifestRef::Key(&ck))?
            .ok_or_else(missing)?;
        Ok(Resolved {
            key: cm.key,
            facts: ManifestFacts::parse(&cm.body, &cm.media_type),
            media_type: cm.media_type,
            body: cm.body,
            tag: None,
            index: Some(m.key),
        })
    }

    /// The details of version `v` of `repo`.
    pub fn details(&self, repo: &str, v: &VersionRef, platform: Option<&str>) -> R<Details> {
        let reg = self.repo_registry(repo)?;
        let r = self.resolve(repo, v, platform)?;
        let record = self.e.version(repo, &r.key)?;
        let stats = self.e.version_stats(repo, &r.key)?;
        let config = match &r.facts.config {
            Some(c) if r.facts.kind() == Kind::Image && c.size <= MAX_CONFIG_BYTES => {
                match BlobKey::parse(&c.digest) {
                    Some(ck) => match self.e.peek_blob(repo, &ck)? {
                        Some(loc) => ConfigFacts::parse(&self.e.read_blob(loc)?),
                        None => ConfigFacts::default(),
                    },
                    None => ConfigFacts::default(),
                }
            }
            _ => ConfigFacts::default(),
        };
        let (ann, labels) = (&r.facts.annotations, &config.labels);
        let f = |k: &str| field(k, ann, labels).map(str::to_owned);
        let kind = r.facts.kind();
        let mut dependencies = Vec::new();
        for d in &r.facts.manifests {
            dependencies.push(Dependency {
                name: format!("{}/{repo}@{}", self.host, d.digest),
                digest: Some(d.digest.clone()),
                platform: d.platform.as_ref().map(|p| p.to_string()),
                link: Some(format!("{repo}@{}", d.digest)),
            });
        }
        if let Some(base) = f(annotation::BASE_NAME) {
            let digest = f(annotation::BASE_DIGEST);
            let local = base
                .strip_prefix(&format!("{}/", self.host))
                .map(|rest| rest.split([':', '@']).next().unwrap_or(rest).to_owned());
            let link = match (&local, &digest) {
                (Some(l), Some(d)) => Some(format!("{l}@{d}")),
                (Some(l), None) => {
                    Some(base[self.host.len() + 1..].to_owned()).filter(|_| !l.is_empty())
                }
                _ => None,
            };
            dependencies.push(Dependency {
                name: base,
                digest,
                platform: None,
                link,
            });
        }
        let name_key = r.tag.clone().unwrap_or_default();
        let (checksums, checksums_missing) = match (&record, kind) {
            (_, Kind::Index) => (
                None,
                Some("an index downloads per platform: choose one".to_owned()),
            ),
            (_, Kind::Artifact) => (None, Some("only images have a Download".to_owned())),
            (None, _) => (None, Some("indexing".to_owned())),
            (Some(rec), _) => match (rec.checksums.get(&name_key), &rec.checksum_error) {
                (Some(c), _) => (Some(c.clone()), None),
                (None, Some(e)) => (None, Some(e.clone())),
                (None, None) => (None, Some("computing".to_owned())),
            },
        };
        let referrers = self
            .e
            .referrers(repo, &r.key)?
            .into_iter()
            .map(|x| ReferrerView {
                digest: x.key.to_string(),
                media_type: x.media_type,
                artifact_type: x.artifact_type,
                size: x.size,
            })
            .collect();
        let known: [&str; 9] = [
            annotation::DESCRIPTION,
            annotation::URL,
            annotation::SOURCE,
            annotation::LICENSES,
            annotation::VERSION,
            annotation::TITLE,
            annotation::BASE_NAME,
            annotation::BASE_DIGEST,
            annotation::CREATED,
        ];
        let rest = |m: &BTreeMap<String, String>| {
            m.iter()
                .filter(|(k, _)| !known.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        Ok(Details {
            name: repo[reg.org.len() + reg.slug.len() + 2..].to_owned(),
            version: match (&r.tag, &r.index) {
                (Some(t), _) => t.clone(),
                _ => r.key.to_string(),
            },
            repository: repo.to_owned(),
            registry: format!("{}/{}", reg.org, reg.slug),
            visibility: visibility(&reg),
            digest: r.key.to_string(),
            media_type: r.facts.media_type.clone(),
            kind: berth_engine::package::version::kind_name(kind),
            artifact_type: r.facts.artifact_type.clone(),
            tags: self.e.version_tags(repo, &r.key)?,
            state: state(record.as_ref()),
            pushed_at: stats.pushed_at,
            indexed_at: record.as_ref().map(|x| x.indexed_at),
            platform: config.platform.as_ref().map(|p| p.to_string()),
            platforms: r
                .facts
                .manifests
                .iter()
                .map(|d| PlatformView {
                    platform: d
                        .platform
                        .as_ref()
                        .map_or_else(|| "unknown".to_owned(), |p| p.to_string()),
                    digest: d.digest.clone(),
                    size: d.size,
                })
                .collect(),
            index_digest: r.index.as_ref().map(|k| k.to_string()),
            total_files: record.as_ref().and_then(|x| x.total_files),
            dependencies,
            size: record.as_ref().map(|x| x.size),
            downloads: stats.downloads + self.downloads.pending(repo, &r.key),
            distribution: record.as_ref().and_then(|x| x.distribution.clone()),
            title: f(annotation::TITLE),
            description: f(annotation::DESCRIPTION),
            homepage: f(annotation::URL),
            source: f(annotation::SOURCE),
            licenses: f(annotation::LICENSES),
            software_version: f(annotation::VERSION),
            created: f(annotation::CREATED).or(config.created.clone()),
            annotations: rest(ann),
            labels: rest(labels),
            command: config.command.clone(),
            env: config.env.clone(),
            ports: config.ports.clone(),
            user: config.user.clone(),
            workdir: config.workdir.clone(),
            checksums,
            checksums_missing,
            manifest: Blob {
                digest: r.key.to_string(),
                size: r.body.len() as u64,
                media_type: r.media_type.clone(),
            },
            config: r.facts.config.as_ref().map(|c| Blob {
                digest: c.digest.clone(),
                size: c.size,
                media_type: c.media_type.clone(),
            }),
            layers: record.map(|x| x.layers).unwrap_or_else(|| {
                r.facts
                    .layers
                    .iter()
                    .map(berth_engine::package::LayerInfo::unread)
                    .collect()
            }),
            subject: r.facts.subject.clone(),
            referrers,
        })
    }

    /// Up to `limit` entries of directory `dir` of version `v`'s file system, after `after`.
    pub fn files(
        &self,
        repo: &str,
        v: &VersionRef,
        platform: Option<&str>,
        dir: &str,
        after: Option<&str>,
        limit: usize,
    ) -> R<FilesView> {
        let r = self.resolve(repo, v, platform)?;
        match r.facts.kind() {
            Kind::Image => {}
            Kind::Index => {
                return Err(ViewError::Bad(format!(
                    "{repo}{} is a multi-platform index: choose a platform ({})",
                    v.suffix(),
                    platforms(&r.facts).join(", ")
                )))
            }
            Kind::Artifact => {
                return Err(ViewError::Bad(format!(
                    "{repo}{} is an artifact, not an image: it has no files",
                    v.suffix()
                )))
            }
        }
        let norm = berth_engine::package::layer::normalise(dir.as_bytes())
            .ok_or_else(|| ViewError::Bad(format!("`{dir}` is not a path inside the image")))?;
        let page = self
            .e
            .version_dir(repo, &r.key, &norm, after.map(str::as_bytes), limit)?;
        let Some(page) = page else {
            if self.e.version(repo, &r.key)?.is_none() {
                return Err(ViewError::NotFound(format!(
                    "{repo}{} is still being indexed: its files show once it is done",
                    v.suffix()
                )));
            }
            return Err(ViewError::NotFound(format!(
                "no directory /{} in {repo}{}",
                String::from_utf8_lossy(&norm),
                v.suffix()
            )));
        };
        let base = String::from_utf8_lossy(&norm).into_owned();
        let entries: Vec<FileView> = page
            .entries
            .iter()
            .map(|(name, n)| file_view(&base, name, n))
            .collect();
        Ok(FilesView {
            path: format!("/{base}"),
            next_after: page
                .more
                .then(|| entries.last().map(|e| e.name.clone()))
                .flatten(),
            entries,
        })
    }
}

impl Viewer<'_> {
    /// What layer `index` of version `v` added, changed and removed: its listing applied
    /// over those below it (worked out when asked: the index keeps listings, not changes).
    pub fn layer_changes(
        &self,
        repo: &str,
        v: &VersionRef,
        platform: Option<&str>,
        index: usize,
    ) -> R<LayerChangesView> {
        let r = self.resolve(repo, v, platform)?;
        let Some(layer) = r.facts.layers.get(index) else {
            return Err(ViewError::NotFound(format!(
                "{repo}{} has {} layers; there is no layer {index}",
                v.suffix(),
                r.facts.layers.len()
            )));
        };
        let mut tree = berth_engine::package::FsTree::new();
        // The changes of layer `index`, once it is applied: `None` when it was not read.
        let mut changes = None;
        for (i, d) in r.facts.layers.iter().enumerate().take(index + 1) {
            let listing = match BlobKey::parse(&d.digest) {
                Some(k) if !d.external => self.e.layer_listing(&k)?,
                _ => None,
            };
            changes = listing.map(|l| tree.apply(i, &l));
        }
        let listed = changes.is_some();
        let show = |paths: &[Box<[u8]>]| -> Vec<String> {
            paths
                .iter()
                .take(CHANGES_SHOWN)
                .map(|p| format!("/{}", String::from_utf8_lossy(p)))
                .collect()
        };
        let c = changes.unwrap_or_default();
        Ok(LayerChangesView {
            index,
            digest: layer.digest.clone(),
            listed,
            added: show(&c.added),
            changed: show(&c.changed),
            removed: show(&c.removed),
            added_total: c.added.len() as u64,
            changed_total: c.changed.len() as u64,
            removed_total: c.removed.len() as u64,
            removed_entries: c.removed_entries,
        })
    }

    /// The registries the caller may pull: of `org`, or of every organisation.
    fn visible_registries(&self, org: Option<&str>) -> R<Vec<RegistryRec>> {
        if let Some(o) = org {
            return self.readable_registries(o);
        }
        let mut out = Vec::new();
        for o in self.e.list_orgs()? {
            if let Ok(regs) = self.e.list_registries(&o.slug) {
                out.extend(regs.into_iter().filter(|r| may_read(self.p, r)));
            }
        }
        Ok(out)
    }

    /// Images whose name holds `q` (any case), and versions holding `path`: a path with a
    /// `/` is matched whole (`/usr/bin/curl`), a bare file name anywhere (`libssl.so.3`).
    /// Only what the caller may pull, at most `limit`.
    pub fn search(
        &self,
        org: Option<&str>,
        q: Option<&str>,
        path: Option<&str>,
        limit: usize,
    ) -> R<Vec<SearchHit>> {
        let regs = self.visible_registries(org)?;
        let q = q.map(str::to_lowercase);
        let name_matches = |name: &str| q.as_deref().is_none_or(|q| name.contains(q));
        let split = |repo: &str| -> Option<(String, String)> {
            let (o, r) = place(repo)?;
            Some((format!("{o}/{r}"), repo[o.len() + r.len() + 2..].to_owned()))
        };
        let mut out = Vec::new();
        let Some(path) = path else {
            let Some(_) = &q else {
                return Err(ViewError::Bad(
                    "search for a name (q=) or a path inside images (path=)".into(),
                ));
            };
            for r in &regs {
                for repo in self.repos(&r.org, &r.slug)? {
                    let Some((registry, name)) = split(&repo) else {
                        continue;
                    };
                    if !name_matches(&name) {
                        continue;
                    }
                    let versions = self.e.list_versions(&repo)?;
                    let Some(v) = versions
                        .iter()
                        .find(|v| !v.tags.is_empty())
                        .or(versions.first())
                    else {
                        continue;
                    };
                    out.push(SearchHit {
                        digest: v.key.to_string(),
                        tags: v.tags.clone(),
                        repository: repo.clone(),
                        registry,
                        name,
                        paths: Vec::new(),
                    });
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            return Ok(out);
        };
        let norm = berth_engine::package::layer::normalise(path.as_bytes())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ViewError::Bad(format!("`{path}` is not a path or file name")))?;
        let whole = path.contains('/');
        let (_, name) = berth_engine::package::layer::split_last(&norm);
        let visible: std::collections::HashSet<(String, String)> = regs
            .iter()
            .map(|r| (r.org.clone(), r.slug.clone()))
            .collect();
        // What the caller may not see, or whose name does not match, is passed over while
        // the store searches, so the search stops at `limit` results the caller gets.
        let keep = |repo: &str| {
            place(repo).is_some_and(|(o, r)| visible.contains(&(o.to_owned(), r.to_owned())))
                && split(repo).is_some_and(|(_, n)| name_matches(&n))
        };
        let found = self
            .e
            .find_paths(name, whole.then_some(&norm[..]), limit, keep)?;
        for hit in found {
            let Some((registry, iname)) = split(&hit.repo) else {
                continue;
            };
            out.push(SearchHit {
                tags: self.e.version_tags(&hit.repo, &hit.key)?,
                digest: hit.key.to_string(),
                repository: hit.repo.clone(),
                registry,
                name: iname,
                paths: hit
                    .paths
                    .iter()
                    .map(|p| format!("/{}", String::from_utf8_lossy(p)))
                    .collect(),
            });
        }
        Ok(out)
    }
}

/// `indexing` until the version's files are recorded (a version queued again, pushed anew
/// with another tag, keeps showing what was recorded meanwhile); then `indexed`, or
/// `partial` when a layer could not be read whole.
fn state(record: Option<&VersionRecord>) -> &'static str {
    match record {
        None => "indexing",
        Some(r) if !r.complete() => "partial",
        Some(_) => "indexed",
    }
}

/// The platforms an index lists, as `os/arch[/variant]`.
pub fn platforms(f: &ManifestFacts) -> Vec<String> {
    f.manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| p.to_string())
        .collect()
}

fn file_view(dir: &str, name: &[u8], n: &FsNode) -> FileView {
    let name = String::from_utf8_lossy(name).into_owned();
    FileView {
        path: if dir.is_empty() {
            format!("/{name}")
        } else {
            format!("/{dir}/{name}")
        },
        name,
        kind: match n.meta.kind {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::HardLink => "hardlink",
            EntryKind::CharDevice => "char",
            EntryKind::BlockDevice => "block",
            EntryKind::Fifo => "fifo",
            EntryKind::Other => "other",
        },
        size: n.meta.size,
        mode: format!("{:04o}", n.meta.mode & 0o7777),
        uid: n.meta.uid,
        gid: n.meta.gid,
        mtime: n.meta.mtime,
        link: n
            .meta
            .link
            .as_ref()
            .map(|l| String::from_utf8_lossy(l).into_owned()),
        layer: n.layer,
    }
}
