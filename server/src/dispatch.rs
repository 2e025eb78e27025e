//! The one place where the core's questions meet the engine: converts core nouns
//! (`Digest`, `RepoName`, `Reference`, ...) to engine nouns (`BlobKey`, `&str`, ...) and back,
//! answers cheap needs inline on the reactor (MVCC reads, page-cache appends), and packages
//! blocking ones (anything that waits on the engine's commit thread: finishes, manifest
//! puts, deletes, mounts; and `/metrics`, which scans the store) as `Work` for the worker
//! pool.
//!
//! `Finish::Committed` and `Mount::Mounted` are built only from an engine `Durable<_>`: no
//! 201 leaves before the bytes and the metadata naming them are on disk.

use crate::config::Config;
use crate::metrics::{Metrics, Storage};
use crate::web;
use berth_core::oci::{Algorithm, Digest, Reference, RepoName, UploadId};
use berth_core::{
    BlobHandle, BlobInfo, Deleted, Finish, ManifestInfo, ManifestPut, Mount, Need, NewManifest,
    Page, Referrer, Reply, UploadInfo, WebRequest,
};
use berth_engine::{
    Alg, AppendError, BlobKey, BlobLoc, DeleteOutcome, Engine, EngineOptions, FinishError,
    ManifestRef, PutManifestError, ReferrerRec, StoreError, UploadStatus,
};
use std::fs::File;
use std::sync::Arc;

/// The store as the server sees it.
pub struct Store {
    engine: Engine,
    metrics: Arc<Metrics>,
}

/// How a need is answered.
pub enum Route {
    /// Answered already; hand the reply to the connection now.
    Now(Reply),
    /// Blocking work for the worker pool; the connection stays parked until it is done.
    Later(Work),
}

/// A need that blocks (fsync, write transaction), owned so it can cross to a worker.
pub enum Work {
    FinishUpload {
        repo: RepoName,
        upload: UploadId,
        digest: Digest,
    },
    PutManifest {
        repo: RepoName,
        /// Boxed: a manifest is several times the size of every other job.
        manifest: Box<NewManifest>,
    },
    DeleteManifest {
        repo: RepoName,
        reference: Reference,
    },
    DeleteBlob {
        repo: RepoName,
        digest: Digest,
    },
    MountBlob {
        repo: RepoName,
        digest: Digest,
        from: Option<RepoName>,
    },
    /// A page that reads storage-wide figures (`/metrics`): their cost grows with the
    /// store, so they never run on an event loop.
    Web(Box<WebRequest>),
}

/// What `berth check` found.
pub struct CheckOutcome {
    pub problems: Vec<String>,
    pub repaired: Vec<String>,
}

impl Store {
    /// Opens the engine in `cfg.data` (which `datadir::prepare` has made and locked).
    pub fn open(cfg: &Config, metrics: Arc<Metrics>) -> Result<Store, String> {
        let opts = EngineOptions {
            small_blob_bytes: cfg.small_blob_bytes,
            max_upload_bytes: cfg.limits.upload_bytes,
            upload_expiry_secs: cfg.upload_expiry.as_secs().max(1),
        };
        let engine = Engine::open(&cfg.data, opts).map_err(|e| e.to_string())?;
        Ok(Store { engine, metrics })
    }

    pub fn check(&self) -> Result<CheckOutcome, String> {
        let r = self.engine.check().map_err(|e| e.to_string())?;
        Ok(CheckOutcome {
            problems: r.problems,
            repaired: r.repaired,
        })
    }

    pub fn storage(&self) -> Storage {
        let s = self.engine.stats();
        Storage {
            blobs: s.blobs,
            blob_bytes: s.blob_bytes,
            pack_bytes: s.pack_bytes,
            manifests: s.manifests,
            repositories: s.repositories,
            uploads_open: s.uploads_open,
            failed_packs: s.failed_packs,
        }
    }

    /// The open file behind a `BlobHandle`, for `sendfile`.
    pub fn pack_file(&self, file: u64) -> Result<Arc<File>, String> {
        self.engine.pack_file(file).map_err(|e| e.to_string())
    }

    /// Answers a cheap need at once or hands back the blocking work.
    pub fn route(&self, need: Need<'_>) -> Route {
        let e = &self.engine;
        let reply = match need {
            Need::StatBlob { repo, digest } => failed(
                e.stat_blob(repo.as_str(), &key(&digest))
                    .map(|l| Reply::Blob(l.map(info))),
            ),
            // Session rows are posted to the engine's commit thread without waiting, so
            // opening and cancelling cost a file create or unlink: inline.
            Need::StartUpload { repo } => failed(e.start_upload(repo.as_str()).and_then(upload)),
            Need::CancelUpload { repo, upload } => {
                failed(e.cancel_upload(repo.as_str(), upload.as_str()).map(|gone| {
                    Reply::Deleted(if gone {
                        Deleted::Done
                    } else {
                        Deleted::NotFound
                    })
                }))
            }
            Need::UploadStatus { repo, upload: id } => failed(
                e.upload_status(repo.as_str(), id.as_str())
                    .and_then(|s| s.map(upload_info).transpose())
                    .map(Reply::Upload),
            ),
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
                Err(err) => Reply::Failed(err.to_string()),
            },
            Need::GetManifest { repo, reference } => {
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
                        Ok(d) => Reply::Manifest(Some(ManifestInfo {
                            digest: d,
                            media_type: m.media_type,
                            body: m.body.into(),
                        })),
                        Err(err) => Reply::Failed(err.0),
                    },
                    Err(err) => Reply::Failed(err.to_string()),
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
            Need::Catalog { n, last } => failed(
                e.catalog(last.as_deref(), n)
                    .map(|(items, more)| Reply::Catalog(Page { items, more })),
            ),
            Need::Web(req) if web::reads_storage(&req) => {
                return Route::Later(Work::Web(Box::new(req)))
            }
            Need::Web(req) => Reply::Web(web::answer(&req, &self.metrics, || self.storage())),
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
                    manifest: Box::new(manifest),
                })
            }
            Need::DeleteManifest { repo, reference } => {
                return Route::Later(Work::DeleteManifest { repo, reference })
            }
            Need::DeleteBlob { repo, digest } => {
                return Route::Later(Work::DeleteBlob { repo, digest })
            }
            Need::MountBlob { repo, digest, from } => {
                return Route::Later(Work::MountBlob { repo, digest, from })
            }
        };
        Route::Now(reply)
    }

    /// Runs blocking work (on a worker thread).
    pub fn run(&self, work: Work) -> Reply {
        let e = &self.engine;
        match work {
            Work::FinishUpload {
                repo,
                upload,
                digest,
            } => match e.finish_upload(repo.as_str(), upload.as_str(), &key(&digest)) {
                Ok(done) => Reply::Finished(Finish::Committed(info(done.into_inner()))),
                Err(FinishError::Unknown) => Reply::Finished(Finish::UploadUnknown),
                Err(FinishError::DigestMismatch) => Reply::Finished(Finish::DigestMismatch),
                Err(FinishError::TooLarge) => Reply::Finished(Finish::TooLarge),
                Err(FinishError::Store(err)) => Reply::Failed(err.to_string()),
            },
            Work::PutManifest { repo, manifest } => {
                match e.put_manifest(repo.as_str(), new_manifest(*manifest)) {
                    Ok(done) => {
                        let () = done.into_inner();
                        Reply::ManifestPut(ManifestPut::Stored)
                    }
                    Err(PutManifestError::Missing(keys)) => {
                        match keys.iter().map(digest).collect::<Result<Vec<_>, _>>() {
                            Ok(ds) => Reply::ManifestPut(ManifestPut::Missing(ds)),
                            Err(err) => Reply::Failed(err.0),
                        }
                    }
                    Err(PutManifestError::Store(err)) => Reply::Failed(err.to_string()),
                }
            }
            Work::DeleteManifest { repo, reference } => {
                let k;
                let r = match &reference {
                    Reference::Tag(t) => ManifestRef::Tag(t.as_str()),
                    Reference::Digest(d) => {
                        k = key(d);
                        ManifestRef::Key(&k)
                    }
                };
                failed(e.delete_manifest(repo.as_str(), r).map(deleted))
            }
            Work::DeleteBlob { repo, digest } => {
                failed(e.unlink_blob(repo.as_str(), &key(&digest)).map(deleted))
            }
            Work::MountBlob { repo, digest, from } => {
                let from = from.as_ref().map(RepoName::as_str);
                match e.mount_blob(repo.as_str(), &key(&digest), from) {
                    Ok(Some(done)) => Reply::Mount(Mount::Mounted(info(done.into_inner()))),
                    // Not mountable: open a session instead (spec §5.8, 202 fallback).
                    Ok(None) => failed(
                        e.start_upload(repo.as_str())
                            .and_then(upload_info)
                            .map(|u| Reply::Mount(Mount::Started(u))),
                    ),
                    Err(err) => Reply::Failed(err.to_string()),
                }
            }
            Work::Web(req) => Reply::Web(web::answer(&req, &self.metrics, || self.storage())),
        }
    }
}

/// A storage failure becomes `Reply::Failed`: the core answers 500 and keeps the connection.
fn failed(r: Result<Reply, StoreError>) -> Reply {
    r.unwrap_or_else(|e| Reply::Failed(e.to_string()))
}

fn alg(a: Algorithm) -> Alg {
    match a {
        Algorithm::Sha256 => Alg::Sha256,
        Algorithm::Sha512 => Alg::Sha512,
    }
}

/// `Digest` -> `BlobKey`. A `Digest` holds validated lower-case hex of its algorithm's
/// length, so every pair decodes.
pub fn key(d: &Digest) -> BlobKey {
    let hex = d.hex().as_bytes();
    let nib = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        _ => c.wrapping_sub(b'a').wrapping_add(10) & 15,
    };
    let hash = hex
        .chunks_exact(2)
        .map(|p| (nib(p[0]) << 4) | nib(p[1]))
        .collect();
    BlobKey {
        alg: alg(d.algorithm()),
        hash,
    }
}

/// `BlobKey` -> `Digest`, refusing a key of the wrong length (it came from disk).
pub fn digest(k: &BlobKey) -> Result<Digest, StoreError> {
    let a = match k.alg {
        Alg::Sha256 => Algorithm::Sha256,
        Alg::Sha512 => Algorithm::Sha512,
    };
    if k.hash.len() * 2 != a.hex_len() {
        return Err(StoreError(format!(
            "stored key of {} bytes for {}",
            k.hash.len(),
            a.as_str()
        )));
    }
    Ok(Digest::from_hash(a, &k.hash))
}

fn info(l: BlobLoc) -> BlobInfo {
    BlobInfo {
        size: l.len,
        handle: BlobHandle {
            file: l.pack,
            offset: l.offset,
        },
    }
}

fn upload_info(s: UploadStatus) -> Result<UploadInfo, StoreError> {
    let id = UploadId::parse(&s.id)
        .ok_or_else(|| StoreError(format!("engine minted an invalid upload id {:?}", s.id)))?;
    Ok(UploadInfo { id, offset: s.len })
}

fn upload(s: UploadStatus) -> Result<Reply, StoreError> {
    upload_info(s).map(|u| Reply::Upload(Some(u)))
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

    #[test]
    fn digests_round_trip_through_blob_keys() {
        for s in [
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            &format!("sha512:{}", "0123456789abcdef".repeat(8)),
        ] {
            let d = Digest::parse(s).unwrap();
            let k = key(&d);
            assert_eq!(k.hash.len() * 2, d.hex().len());
            assert_eq!(digest(&k).unwrap(), d);
        }
        let k = key(&Digest::parse(&format!("sha256:{}", "ff00".repeat(16))).unwrap());
        assert_eq!(&k.hash[..2], &[0xff, 0x00]);
    }

    #[test]
    fn a_stored_key_of_the_wrong_length_is_a_storage_error() {
        let k = BlobKey {
            alg: Alg::Sha256,
            hash: vec![1, 2, 3],
        };
        assert!(digest(&k).is_err());
    }
}
