//! The one place where the core's questions meet the engine: converts core nouns
//! (`Digest`, `RepoName`, `Reference`, ...) to engine nouns (`BlobKey`, `&str`, ...) and back,
//! answers cheap needs inline on the reactor (MVCC reads, page-cache appends), and packages
//! blocking ones (anything that waits on an fsync or the engine's commit thread: finishes,
//! a PATCH's sync, manifest puts, deletes, mounts; `/metrics`, which scans the store; and a
//! catalog filtered for a caller other than the admin, which may read every repository) as
//! `Work` for the worker pool.
//!
//! `Finish::Committed` and `Mount::Mounted` are built only from an engine `Durable<_>`: no
//! 201 leaves before the bytes and the metadata naming them are on disk.

use crate::audit;
use crate::auth::cache::AuthCache;
use crate::auth::policy::Principal;
use crate::auth::{Authority, Caller, Ctx};
use crate::bootstrap;
use crate::config::Config;
use crate::datadir::{self, DataDirError};
use crate::descriptors::{Alarm, Plan};
use crate::failure::store_reply;
use crate::metrics::{Metrics, Storage};
use crate::nouns::{blob_handle, digest, key};
use crate::package;
use crate::web;
use berth_core::oci::{Digest, Reference, RepoName, UploadId};
use berth_core::{
    AppendRefused, BlobInfo, Deleted, Finish, ManifestInfo, ManifestPut, Mount, Need, NewManifest,
    Page, Referrer, Reply, UploadInfo, WebRequest,
};
use berth_engine::{
    AppendError, AuditRec, BlobLoc, CheckOptions, DeleteOutcome, DescriptorAlarm, Engine,
    EngineOptions, FinishError, GcError, GcOptions, GcReport, ManifestRef, PutManifestError,
    ReferrerRec, StoreError, UploadStatus,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The store as the server sees it.
pub struct Store {
    engine: Engine,
    metrics: Arc<Metrics>,
    pub auth: Authority,
    /// Garbage collection's grace for links no manifest references (`None`: kept).
    gc_unreferenced_after: Option<std::time::Duration>,
    /// Told when an open fails for want of descriptors (the store's own, and accepts).
    alarm: Arc<Alarm>,
    /// The host images are named by (`package::download::public_host`).
    host: String,
    /// Pulls and Downloads not yet written.
    pub downloads: crate::package::downloads::Downloads,
    /// The web pages' sign-in sessions and bounds.
    sessions: web::ui::sessions::Sessions,
    ui: crate::config::UiSettings,
}

/// What a connection's needs are answered for: when and from where, and who the last
/// `Need::Authorize` granted (for the needs of the same request: catalog filtering, the
/// audit log's "who", mount policy).
#[derive(Debug)]
pub struct Session {
    pub ctx: Ctx,
    pub caller: Option<Caller>,
    /// The connection's last verified credential and registry record.
    pub auth_cache: AuthCache,
}

impl Session {
    fn actor(&self) -> String {
        self.caller
            .as_ref()
            .map_or_else(|| "anonymous".to_string(), |c| c.principal.actor())
    }
}

/// Catalog names read from the engine per step while filtering a listing.
const CATALOG_BATCH: usize = 500;

/// How a need is answered.
pub enum Route {
    /// Answered already; hand the reply to the connection now.
    Now(Reply),
    /// Blocking work for the worker pool; the connection stays parked until it is done.
    Later(Work),
}

/// A need that blocks (fsync, write transaction), owned so it can cross to a worker.
pub enum Work {
    /// `fdatasync` of the upload file and a durable commit, before a PATCH's 202.
    SyncUpload {
        repo: RepoName,
        upload: UploadId,
    },
    /// On a shared store, where a session's row is read or written durably: opening a
    /// session (also a mount without `from`), its status, cancelling it.
    StartUpload {
        repo: RepoName,
        mount: bool,
    },
    UploadStatus {
        repo: RepoName,
        upload: UploadId,
    },
    CancelUpload {
        repo: RepoName,
        upload: UploadId,
    },
    FinishUpload {
        repo: RepoName,
        upload: UploadId,
        digest: Digest,
    },
    PutManifest {
        repo: RepoName,
        /// Boxed: a manifest is several times the size of every other job.
        manifest: Box<NewManifest>,
        /// Who, for the audit log, and when.
        actor: String,
        unix: u64,
    },
    DeleteManifest {
        repo: RepoName,
        reference: Reference,
        actor: String,
        unix: u64,
    },
    DeleteBlob {
        repo: RepoName,
        digest: Digest,
        actor: String,
        unix: u64,
    },
    /// Only with a `from` the caller may pull (the core asked, the server granted).
    MountBlob {
        repo: RepoName,
        digest: Digest,
        from: RepoName,
    },
    /// A page that reads storage-wide figures (`/metrics`), or the management API (its
    /// writes wait on the commit): never on an event loop.
    Web(Box<WebRequest>, Ctx),
    /// A catalog page for a caller who may not list everything: filtering it reads
    /// repositories and their registries until the page is full, however many it skips.
    Catalog {
        who: Principal,
        n: usize,
        last: Option<String>,
    },
}

/// Why the store could not be opened.
pub enum OpenError {
    /// Another berth holds the data directory.
    InUse(DataDirError),
    /// The store itself failed to open.
    Store(String),
}

/// The file system of the store: the data folder, with the packs in a bucket when `blobs`
/// names one (checked now, so a wrong endpoint, bucket or key is said at start).
fn blob_fs(cfg: &Config) -> Result<Arc<dyn berth_engine::vfs::Vfs>, OpenError> {
    let local = Arc::new(berth_engine::vfs::RealFs::new(&cfg.data));
    let Some(url) = &cfg.blobs else {
        return Ok(local);
    };
    use berth_engine::objects::{Objects, ObjectsConfig};
    let config = ObjectsConfig::parse(url).map_err(|e| OpenError::Store(e.to_string()))?;
    let bucket = config.bucket.clone();
    let objects = Objects::open(config).map_err(|e| OpenError::Store(e.to_string()))?;
    objects
        .probe()
        .map_err(|e| OpenError::Store(format!("the object store holding bucket {bucket}: {e}")))?;
    Ok(Arc::new(berth_engine::vfs::ObjectFs::new(
        local,
        objects,
        cfg.blob_cache_bytes,
    )))
}

/// The bearer tokens' signing key when the metadata is shared (PostgreSQL): every node
/// verifies what any node signed, so the key lives with the metadata, made once by the
/// first node. `None` on an embedded store, whose key is `DATA/token-key`.
fn shared_token_key(engine: &Engine) -> Result<Option<[u8; 32]>, OpenError> {
    let fresh = crate::secret::random_bytes(32).map_err(OpenError::Store)?;
    let key = engine
        .shared_secret("token-key", fresh)
        .map_err(|e| OpenError::Store(format!("cannot read the shared token key: {e}")))?;
    key.map(|k| {
        k.try_into().map_err(|_| {
            OpenError::Store("the shared token key in the metadata is not 32 bytes".into())
        })
    })
    .transpose()
}

/// What `berth check` found.
pub struct CheckOutcome {
    pub problems: Vec<String>,
    pub repaired: Vec<String>,
}

impl Store {
    /// What opening the store repaired or upgraded.
    pub fn repaired(&self) -> &[String] {
        self.engine.repaired()
    }

    /// Opens the engine in `cfg.data` (which `datadir::prepare` has made), with the open
    /// packs `fds` allows. The engine locks the directory for as long as the store is open.
    pub fn open(cfg: &Config, metrics: Arc<Metrics>, fds: &Plan) -> Result<Store, OpenError> {
        let alarm = Arc::new(Alarm::new(metrics.clone(), fds.limit));
        let ring = alarm.clone();
        let opts = EngineOptions {
            small_blob_bytes: cfg.small_blob_bytes,
            max_upload_bytes: cfg.limits.upload_bytes,
            upload_expiry_secs: cfg.upload_expiry.as_secs().max(1),
            manifest_cache_bytes: cfg.manifest_cache_bytes,
            open_packs: fds.open_packs,
            on_out_of_descriptors: Some(DescriptorAlarm(Arc::new(move |what, e| {
                ring.ring(what, e)
            }))),
            min_free_bytes: cfg.min_free_space,
            metadata: match &cfg.metadata {
                None => berth_engine::Metadata::Embedded,
                Some(url) => berth_engine::Metadata::Postgres {
                    url: url.0.clone(),
                    limits: berth_engine::PgLimits::default(),
                },
            },
            ..EngineOptions::default()
        };
        let fs = blob_fs(cfg)?;
        let engine = Engine::open_on(fs, opts, berth_engine::system_clock()).map_err(|e| {
            datadir::in_use(&e).map_or(OpenError::Store(e.to_string()), OpenError::InUse)
        })?;
        engine.watch_health(Box::new(|failing| match failing {
            Some(why) => tracing::error!(
                error = why,
                "the store is unhealthy: writes are failing (on a full disk: free space, \
                 e.g. delete images and run berth gc; writes resume by themselves)"
            ),
            None => tracing::info!("the store is healthy again: writes succeed"),
        }));
        let key = shared_token_key(&engine)?
            .map_or_else(|| bootstrap::token_key(&cfg.data), Ok)
            .map_err(OpenError::Store)?;
        let auth = Authority::new(key, cfg.auth.clone(), metrics.clone());
        Ok(Store {
            engine,
            metrics,
            auth,
            gc_unreferenced_after: cfg.gc_unreferenced_after,
            alarm,
            host: crate::package::download::public_host(cfg.auth.public_url.as_deref(), cfg.listen),
            downloads: Default::default(),
            sessions: web::ui::sessions::Sessions::new(cfg.ui.session_idle, cfg.ui.max_sessions),
            ui: cfg.ui,
        })
    }

    /// First start on an empty store: creates the admin token and writes its secret to
    /// `DATA/admin-token`. Returns that path when it did.
    pub fn bootstrap_admin(
        &self,
        data: &std::path::Path,
        unix: u64,
    ) -> Result<Option<PathBuf>, String> {
        bootstrap::admin_token(&self.engine, data, unix)
    }

    /// `berth reset-admin-token`: see [`bootstrap::reset_admin_token`].
    pub fn reset_admin(
        &self,
        data: &std::path::Path,
        unix: u64,
    ) -> Result<(Vec<String>, PathBuf), String> {
        bootstrap::reset_admin_token(&self.engine, data, unix)
    }

    /// Runs a garbage collection (see `berth_engine::Engine::collect_garbage`) and logs
    /// what it did; `dry_run` only reports what it would do.
    #[allow(clippy::disallowed_methods)] // runs on housekeeping or a worker, never an event loop; times a collection for its log line
    pub fn collect_garbage(&self, dry_run: bool) -> Result<GcReport, GcError> {
        let opts = GcOptions {
            dry_run,
            unreferenced_after: self.gc_unreferenced_after.map(|d| d.as_secs().max(1)),
            ..GcOptions::standard()
        };
        let took = std::time::Instant::now();
        match self.engine.collect_garbage(opts) {
            Ok(r) => {
                tracing::info!(
                    dry_run,
                    uploads_expired = r.uploads_expired,
                    links_removed = r.links_removed,
                    blobs_removed = r.blobs_removed,
                    blob_bytes_removed = r.blob_bytes_removed,
                    blobs_moved = r.blobs_moved,
                    bytes_moved = r.bytes_moved,
                    packs_removed = r.packs_removed,
                    pack_bytes_removed = r.pack_bytes_removed,
                    blobs_unreadable = r.blobs_unreadable,
                    ms = took.elapsed().as_millis() as u64,
                    "garbage collection"
                );
                Ok(r)
            }
            Err(GcError::Busy) => Err(GcError::Busy),
            Err(e) => {
                tracing::error!(error = %e, "garbage collection failed");
                Err(e)
            }
        }
    }

    /// Writes the download counts gathered since the last time; a failure keeps them for
    /// the next.
    pub fn flush_downloads(&self) {
        if let Err(e) = self.downloads.flush(&self.engine) {
            tracing::warn!(error = %e, "download counts not written; will try again");
        }
    }

    /// The host images are named by: the public URL's, else the listen address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The store, for the package indexer (which runs off the event loops and workers).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The counters, for the package indexer.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Ends a running garbage collection after its current step.
    pub fn cancel_garbage_collection(&self) {
        self.engine.cancel_garbage_collection();
    }

    /// The minute's upkeep for garbage collection: closes the packs it deleted once their
    /// grace is over, and forgets link uses too old to matter.
    pub fn tidy_for_gc(&self) {
        self.engine.close_retired_packs();
        self.engine
            .forget_old_link_uses(self.gc_unreferenced_after.map(|d| d.as_secs().max(1)));
    }

    /// Writes the token last-use times gathered since the previous call.
    pub fn flush_last_used(&self) {
        let used = self.auth.take_used();
        if used.is_empty() {
            return;
        }
        if let Err(e) = self.engine.touch_tokens(&used) {
            tracing::warn!(error = %e, "cannot record token last-use times");
        }
    }

    /// The caller whose catalog is listed. Listing reveals names only, so a bearer token's
    /// claims do not narrow it: what the credential behind it may pull is listed.
    fn catalog_reader(caller: Option<&Caller>) -> Principal {
        caller.map_or(Principal::Anonymous, |c| c.principal.clone())
    }

    /// The catalog page after `last`, holding only what `who` may pull. For the admin one
    /// listing read (answered on the event loop); for anyone else a filtering that may read
    /// the whole catalog (on a worker).
    fn catalog(&self, who: Principal, n: usize, last: Option<String>) -> Result<Reply, StoreError> {
        let e = &self.engine;
        if who.is_admin() {
            let (items, more) = e.catalog(last.as_deref(), n)?;
            return Ok(Reply::Catalog(Page { items, more }));
        }
        let who = Caller {
            principal: who,
            claims: None,
        };
        let mut cache = HashMap::new();
        let mut out = Vec::new();
        let mut cursor = last;
        loop {
            let (items, more) = e.catalog(cursor.as_deref(), CATALOG_BATCH)?;
            for name in items {
                if self.auth.may_pull(e, &who, &name, &mut cache)? {
                    if out.len() == n {
                        return Ok(Reply::Catalog(Page {
                            items: out,
                            more: true,
                        }));
                    }
                    out.push(name.clone());
                }
                cursor = Some(name);
            }
            if !more {
                return Ok(Reply::Catalog(Page {
                    items: out,
                    more: false,
                }));
            }
        }
    }

    pub fn check(&self, rehash: bool) -> Result<CheckOutcome, String> {
        let r = self
            .engine
            .check_with(CheckOptions { rehash })
            .map_err(|e| e.to_string())?;
        Ok(CheckOutcome {
            problems: r.problems,
            repaired: r.repaired,
        })
    }

    pub fn storage(&self) -> Storage {
        let s = self.engine.stats();
        let h = self.engine.health();
        Storage {
            healthy: h.failing.is_none(),
            free_bytes: h.free_bytes.unwrap_or(0),
            min_free_bytes: h.min_free_bytes,
            blobs: s.blobs,
            blob_bytes: s.blob_bytes,
            pack_bytes: s.pack_bytes,
            manifests: s.manifests,
            repositories: s.repositories,
            uploads_open: s.uploads_open,
            failed_packs: s.failed_packs,
            gc_runs: s.gc_runs,
            gc_blobs_removed: s.gc_blobs_removed,
            gc_pack_bytes_removed: s.gc_pack_bytes_removed,
            open_packs: s.open_packs,
            metadata_latency: s.metadata_latency,
            object_latency: s.object_latency,
        }
    }

    /// Opening something (`what`) failed with `e`: reported if it was for want of
    /// descriptors.
    pub fn opening_failed(&self, what: &str, e: &std::io::Error) {
        self.alarm.ring(what, e)
    }

    /// The open pack behind a `BlobHandle`, to send blob ranges from.
    pub fn pack_file(&self, file: u64) -> Result<Arc<berth_engine::PackFile>, String> {
        self.engine.pack_file(file).map_err(|e| e.to_string())
    }

    /// Answers a cheap need at once or hands back the blocking work.
    pub fn route(&self, need: Need<'_>, session: &mut Session) -> Route {
        let e = &self.engine;
        if e.shared_store() {
            // Session rows are in the shared metadata: no waiting on it here.
            match need {
                Need::StartUpload { repo } => {
                    return Route::Later(Work::StartUpload { repo, mount: false })
                }
                Need::MountBlob {
                    repo, from: None, ..
                } => return Route::Later(Work::StartUpload { repo, mount: true }),
                Need::UploadStatus { repo, upload } => {
                    return Route::Later(Work::UploadStatus { repo, upload })
                }
                Need::CancelUpload { repo, upload } => {
                    return Route::Later(Work::CancelUpload { repo, upload })
                }
                _ => {}
            }
        }
        let reply = match need {
            // Cheap: a token lookup or an HMAC, and a registry record read.
            Need::Authorize(req) => {
                match self
                    .auth
                    .authorize(e, &req, &session.ctx, &mut session.auth_cache)
                {
                    Ok((auth, caller)) => {
                        session.caller = caller;
                        Reply::Auth(auth)
                    }
                    Err(err) => {
                        session.caller = None;
                        store_reply(&err)
                    }
                }
            }
            Need::StatBlob { repo, digest } => failed(
                e.stat_blob(repo.as_str(), &key(&digest))
                    .map(|l| Reply::Blob(l.map(info))),
            ),
            // Session rows are posted to the engine's commit thread without waiting, so
            // opening and cancelling cost a file create or unlink: inline (on a shared
            // store they went to the workers above).
            Need::StartUpload { repo } => start_upload(e, &repo, false),
            Need::CancelUpload { repo, upload } => cancel_upload(e, &repo, &upload),
            Need::UploadStatus { repo, upload } => upload_status(e, &repo, &upload),
            Need::AppendUpload {
                repo,
                upload,
                offset,
                bytes,
            } => match e.append_upload(repo.as_str(), upload.as_str(), offset, bytes) {
                Ok(len) => Reply::Upload(Some(UploadInfo {
                    id: upload,
                    offset: len,
                })),
                Err(AppendError::Unknown) => Reply::Upload(None),
                Err(AppendError::Offset { have, .. }) => {
                    Reply::AppendRefused(AppendRefused::OutOfOrder { have })
                }
                Err(AppendError::TooLarge) => Reply::AppendRefused(AppendRefused::TooLarge),
                Err(AppendError::Store(err)) => store_reply(&err),
            },
            Need::GetManifest {
                repo,
                reference,
                pull,
            } => {
                let k;
                let r = match &reference {
                    Reference::Tag(t) => ManifestRef::Tag(t.as_str()),
                    Reference::Digest(d) => {
                        k = key(d);
                        ManifestRef::Key(&k)
                    }
                };
                match e.get_manifest(repo.as_str(), r) {
                    Ok(None) => Reply::Manifest(None),
                    Ok(Some(m)) => match digest(&m.key) {
                        Ok(d) => {
                            if pull {
                                self.downloads.count(repo.as_str(), m.key.clone());
                            }
                            Reply::Manifest(Some(ManifestInfo {
                                digest: d,
                                media_type: m.media_type,
                                body: m.body,
                            }))
                        }
                        Err(err) => store_reply(&err),
                    },
                    Err(err) => store_reply(&err),
                }
            }
            Need::ListTags { repo, n, last } => failed(
                e.list_tags(repo.as_str(), last.as_deref(), n)
                    .map(|t| Reply::Tags(t.map(|(items, more)| Page { items, more }))),
            ),
            Need::Referrers { repo, subject } => failed(
                e.referrers(repo.as_str(), &key(&subject))
                    .and_then(|rs| rs.into_iter().map(referrer).collect::<Result<Vec<_>, _>>())
                    .map(Reply::Referrers),
            ),
            Need::Catalog { n, last } => {
                let who = Self::catalog_reader(session.caller.as_ref());
                if !who.is_admin() {
                    return Route::Later(Work::Catalog { who, n, last });
                }
                failed(self.catalog(who, n, last))
            }
            Need::Web(req) if req.path == web::token_endpoint::PATH => Reply::Web(
                web::token_endpoint::answer(e, &self.auth, &req, &session.ctx),
            ),
            Need::Web(req) if web::ui::assets::is_asset(&req.path) => {
                match web::ui::assets::answer(&req) {
                    Some(r) => Reply::Web(r),
                    None => Reply::Web(web::error(404, "NOT_FOUND", "no such file")),
                }
            }
            Need::Web(req)
                if web::reads_storage(&req)
                    || req.path.starts_with(web::api::PREFIX)
                    || web::is_page(&req) =>
            {
                return Route::Later(Work::Web(Box::new(req), session.ctx))
            }
            Need::Web(req) => Reply::Web(web::answer(
                &req,
                &self.metrics,
                || e.health(),
                || self.storage(),
            )),
            Need::SyncUpload { repo, upload } => {
                return Route::Later(Work::SyncUpload { repo, upload })
            }
            Need::FinishUpload {
                repo,
                upload,
                digest,
            } => {
                return Route::Later(Work::FinishUpload {
                    repo,
                    upload,
                    digest,
                })
            }
            Need::PutManifest { repo, manifest } => {
                return Route::Later(Work::PutManifest {
                    repo,
                    manifest,
                    actor: session.actor(),
                    unix: session.ctx.unix,
                })
            }
            Need::DeleteManifest { repo, reference } => {
                return Route::Later(Work::DeleteManifest {
                    repo,
                    reference,
                    actor: session.actor(),
                    unix: session.ctx.unix,
                })
            }
            Need::DeleteBlob { repo, digest } => {
                return Route::Later(Work::DeleteBlob {
                    repo,
                    digest,
                    actor: session.actor(),
                    unix: session.ctx.unix,
                })
            }
            Need::MountBlob {
                repo,
                digest,
                from: Some(from),
            } => return Route::Later(Work::MountBlob { repo, digest, from }),
            // Multi-tenant: a blob is mounted only from a repository the caller was
            // authorised to pull; without `from` there is none, so open a session.
            Need::MountBlob {
                repo, from: None, ..
            } => start_upload(e, &repo, true),
        };
        Route::Now(reply)
    }

    /// Runs blocking work (on a worker thread).
    pub fn run(&self, work: Work) -> Reply {
        let e = &self.engine;
        match work {
            Work::StartUpload { repo, mount } => start_upload(e, &repo, mount),
            Work::UploadStatus { repo, upload } => upload_status(e, &repo, &upload),
            Work::CancelUpload { repo, upload } => cancel_upload(e, &repo, &upload),
            Work::SyncUpload { repo, upload } => failed(
                e.sync_upload(repo.as_str(), upload.as_str())
                    .and_then(|s| s.map(upload_info).transpose())
                    .map(Reply::Upload),
            ),
            Work::FinishUpload {
                repo,
                upload,
                digest,
            } => match e.finish_upload(repo.as_str(), upload.as_str(), &key(&digest)) {
                Ok(done) => Reply::Finished(Finish::Committed(info(done.into_inner()))),
                Err(FinishError::Unknown) => Reply::Finished(Finish::UploadUnknown),
                Err(FinishError::DigestMismatch) => Reply::Finished(Finish::DigestMismatch),
                Err(FinishError::TooLarge) => Reply::Finished(Finish::TooLarge),
                Err(FinishError::Store(err)) => store_reply(&err),
            },
            Work::PutManifest {
                repo,
                manifest,
                actor,
                unix,
            } => {
                let targets: Vec<String> = if manifest.tags.is_empty() {
                    vec![format!("{}@{}", repo.as_str(), manifest.digest)]
                } else {
                    manifest
                        .tags
                        .iter()
                        .map(|t| format!("{}:{}", repo.as_str(), t.as_str()))
                        .collect()
                };
                let detail = manifest.digest.to_string();
                let entries = entries(
                    repo.as_str(),
                    (unix, &actor),
                    "manifest.push",
                    &targets,
                    &detail,
                );
                match e.put_manifest_audited(repo.as_str(), new_manifest(*manifest), entries) {
                    Ok(done) => {
                        let () = done.into_inner();
                        Reply::ManifestPut(ManifestPut::Stored)
                    }
                    Err(PutManifestError::Missing(keys)) => {
                        match keys.iter().map(digest).collect::<Result<Vec<_>, _>>() {
                            Ok(ds) => Reply::ManifestPut(ManifestPut::Missing(ds)),
                            Err(err) => store_reply(&err),
                        }
                    }
                    Err(PutManifestError::Store(err)) => store_reply(&err),
                }
            }
            Work::DeleteManifest {
                repo,
                reference,
                actor,
                unix,
            } => {
                let k;
                let (r, action, target) = match &reference {
                    Reference::Tag(t) => (
                        ManifestRef::Tag(t.as_str()),
                        "tag.delete",
                        format!("{}:{}", repo.as_str(), t.as_str()),
                    ),
                    Reference::Digest(d) => {
                        k = key(d);
                        (
                            ManifestRef::Key(&k),
                            "manifest.delete",
                            format!("{}@{d}", repo.as_str()),
                        )
                    }
                };
                let entries = entries(repo.as_str(), (unix, &actor), action, &[target], "");
                failed(
                    e.delete_manifest_audited(repo.as_str(), r, entries)
                        .map(deleted),
                )
            }
            Work::DeleteBlob {
                repo,
                digest,
                actor,
                unix,
            } => {
                let target = format!("{}@{digest}", repo.as_str());
                let entries = entries(repo.as_str(), (unix, &actor), "blob.delete", &[target], "");
                failed(
                    e.unlink_blob_audited(repo.as_str(), &key(&digest), entries)
                        .map(deleted),
                )
            }
            Work::MountBlob { repo, digest, from } => {
                match e.mount_blob(repo.as_str(), &key(&digest), Some(from.as_str())) {
                    Ok(Some(done)) => Reply::Mount(Mount::Mounted(info(done.into_inner()))),
                    // Not mountable: open a session instead (spec §5.8, 202 fallback).
                    Ok(None) => start_upload(e, &repo, true),
                    Err(err) => store_reply(&err),
                }
            }
            Work::Catalog { who, n, last } => failed(self.catalog(who, n, last)),
            Work::Web(req, ctx)
                if req.path.starts_with(package::api::PREFIX)
                    || req.path == package::api::SEARCH =>
            {
                let env = package::reply::Env {
                    e,
                    auth: &self.auth,
                    host: &self.host,
                    downloads: &self.downloads,
                };
                Reply::Web(package::api::answer(&env, &req, &ctx))
            }
            Work::Web(req, ctx) if req.path.starts_with(web::api::PREFIX) => {
                let gc = |dry| self.collect_garbage(dry);
                Reply::Web(web::api::answer(e, &self.auth, &req, &ctx, &gc))
            }
            Work::Web(req, ctx) if web::is_page(&req) => {
                let site = web::ui::Site {
                    engine: e,
                    auth: &self.auth,
                    sessions: &self.sessions,
                    settings: &self.ui,
                    downloads: &self.downloads,
                    host: &self.host,
                };
                Reply::Web(web::ui::answer(&site, &req, &ctx))
            }
            Work::Web(req, _) => Reply::Web(web::answer(
                &req,
                &self.metrics,
                || e.health(),
                || self.storage(),
            )),
        }
    }
}

/// A storage failure becomes `Reply::Failed` (500) or `Reply::StoreFull` (507); the core
/// keeps the connection.
fn failed(r: Result<Reply, StoreError>) -> Reply {
    r.unwrap_or_else(|e| store_reply(&e))
}

fn info(l: BlobLoc) -> BlobInfo {
    BlobInfo {
        size: l.len,
        handle: blob_handle(&l),
    }
}

fn upload_info(s: UploadStatus) -> Result<UploadInfo, StoreError> {
    let id = UploadId::parse(&s.id)
        .ok_or_else(|| StoreError::new(format!("engine minted an invalid upload id {:?}", s.id)))?;
    Ok(UploadInfo { id, offset: s.len })
}

/// Opens an upload session in `repo`: the answer to a POST, or to a mount that did not
/// happen (spec §5.8, the 202 fallback).
fn start_upload(e: &Engine, repo: &RepoName, mount: bool) -> Reply {
    failed(
        e.start_upload(repo.as_str())
            .and_then(upload_info)
            .map(|u| {
                if mount {
                    Reply::Mount(Mount::Started(u))
                } else {
                    Reply::Upload(Some(u))
                }
            }),
    )
}

fn upload_status(e: &Engine, repo: &RepoName, id: &UploadId) -> Reply {
    failed(
        e.upload_status(repo.as_str(), id.as_str())
            .and_then(|s| s.map(upload_info).transpose())
            .map(Reply::Upload),
    )
}

fn cancel_upload(e: &Engine, repo: &RepoName, id: &UploadId) -> Reply {
    failed(e.cancel_upload(repo.as_str(), id.as_str()).map(|gone| {
        Reply::Deleted(if gone {
            Deleted::Done
        } else {
            Deleted::NotFound
        })
    }))
}

/// Audit entries for a change to `repo`, one per target, in its organisation's log (none
/// for a repository outside any organisation).
fn entries(
    repo: &str,
    (unix, actor): (u64, &str),
    action: &str,
    targets: &[String],
    detail: &str,
) -> Vec<AuditRec> {
    let Some((org, _)) = crate::auth::policy::place(repo) else {
        return Vec::new();
    };
    targets
        .iter()
        .map(|t| audit::entry(unix, org, actor, action, t, detail))
        .collect()
}

fn deleted(d: DeleteOutcome) -> Reply {
    Reply::Deleted(match d {
        DeleteOutcome::Deleted => Deleted::Done,
        DeleteOutcome::NotFound => Deleted::NotFound,
        DeleteOutcome::RepoUnknown => Deleted::NameUnknown,
    })
}

fn referrer(r: ReferrerRec) -> Result<Referrer, StoreError> {
    Ok(Referrer {
        media_type: r.media_type,
        digest: digest(&r.key)?,
        size: r.size,
        artifact_type: r.artifact_type,
        annotations: r.annotations,
    })
}

fn new_manifest(m: NewManifest) -> berth_engine::NewManifest {
    berth_engine::NewManifest {
        key: key(&m.digest),
        media_type: m.media_type,
        body: Vec::from(m.body),
        tags: m.tags.iter().map(|t| t.as_str().to_string()).collect(),
        blobs: m.blobs.iter().map(key).collect(),
        external: m.external.iter().map(key).collect(),
        manifests: m.manifests.iter().map(key).collect(),
        subject: m.subject.map(|(d, r)| {
            (
                key(&d),
                ReferrerRec {
                    media_type: r.media_type,
                    key: key(&r.digest),
                    size: r.size,
                    artifact_type: r.artifact_type,
                    annotations: r.annotations,
                },
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::policy::tests::tok;
    use crate::config::Flags;
    use berth_engine::TokenKind;

    fn store(dir: &std::path::Path) -> Store {
        let mut cfg = Config::load(&Flags::default(), &[]).unwrap();
        cfg.data = dir.to_path_buf();
        let fds = Plan::new(&cfg, 1024);
        match Store::open(&cfg, Arc::new(Metrics::new(1)), &fds) {
            Ok(s) => s,
            Err(_) => panic!("the store did not open"),
        }
    }

    #[allow(clippy::disallowed_methods)] // a session needs some instant
    fn session(principal: Principal) -> Session {
        Session {
            ctx: Ctx {
                now: std::time::Instant::now(),
                unix: 0,
                peer: None,
            },
            caller: Some(Caller {
                principal,
                claims: None,
            }),
            auth_cache: AuthCache::default(),
        }
    }

    /// Filtering the catalog for a caller other than the admin may read every repository:
    /// the event loop hands it to a worker (`Route::Later`), and answers the admin's one
    /// listing itself.
    #[test]
    fn a_filtered_catalog_goes_to_a_worker_and_the_admins_is_answered_inline() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        for who in [
            Principal::Anonymous,
            tok(TokenKind::Org, Some("acme"), true, false, &[]),
        ] {
            let need = Need::Catalog { n: 10, last: None };
            match s.route(need, &mut session(who.clone())) {
                Route::Later(w @ Work::Catalog { .. }) => match s.run(w) {
                    Reply::Catalog(p) => assert!(p.items.is_empty() && !p.more),
                    _ => panic!("catalog work answers with a catalog page"),
                },
                _ => panic!("{who:?}: the filtered catalog is answered on the event loop"),
            }
        }
        let need = Need::Catalog { n: 10, last: None };
        match s.route(
            need,
            &mut session(tok(TokenKind::Admin, None, true, true, &[])),
        ) {
            Route::Now(Reply::Catalog(p)) => assert!(p.items.is_empty()),
            _ => panic!("the admin's catalog is one listing, answered inline"),
        }
    }
}
