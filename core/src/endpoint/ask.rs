//! Typed needs: each `Need` paired, in its type, with the `Reply` payload the storage
//! contract (`need.rs`) answers it with. An endpoint parks only through an `Ask<R>` and a
//! continuation that takes an `R` (`Next::ask`), so a step cannot wait on a need whose
//! answer is of another kind: that pairing is written once, here, instead of at every park.
//!
//! `FromReply` is the one place the server's `Reply` enum is taken apart; what does not
//! fit the asked payload is handled in `next.rs`, once for every step.

use crate::need::{
    AppendRefused, Auth, AuthRequest, BlobInfo, Deleted, Finish, ManifestInfo, ManifestPut, Mount,
    Need, NewManifest, Page, Referrer, Reply, UploadInfo, WebRequest, WebResponse,
};
use crate::oci::{Digest, Reference, RepoName, UploadId};
use std::marker::PhantomData;

/// A need whose reply carries an `R`. Built only by the functions below (`new` is private),
/// so the pairing of a need with its reply type cannot be restated wrongly elsewhere.
pub(crate) struct Ask<R> {
    need: Need<'static>,
    reply: PhantomData<fn() -> R>,
}

impl<R> Ask<R> {
    fn new(need: Need<'static>) -> Ask<R> {
        Ask {
            need,
            reply: PhantomData,
        }
    }

    pub(super) fn into_need(self) -> Need<'static> {
        self.need
    }

    /// For a need asked only for its effect: any reply, a failure included, is taken.
    pub(super) fn ignored(self) -> Ask<Ignored> {
        Ask::new(self.need)
    }
}

/// The payload of the `Reply` variant a need is answered with; `Err` gives back a reply of
/// another variant untouched.
pub(crate) trait FromReply: Sized {
    fn from_reply(reply: Reply) -> Result<Self, Reply>;
}

macro_rules! payload {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl FromReply for $t {
            fn from_reply(reply: Reply) -> Result<Self, Reply> {
                match reply {
                    Reply::$variant(x) => Ok(x),
                    other => Err(other),
                }
            }
        }
    )*};
}

payload!(
    Auth => Auth,
    Option<BlobInfo> => Blob,
    Option<UploadInfo> => Upload,
    Finish => Finished,
    Mount => Mount,
    Option<ManifestInfo> => Manifest,
    ManifestPut => ManifestPut,
    Deleted => Deleted,
    Option<Page> => Tags,
    Page => Catalog,
    Vec<Referrer> => Referrers,
    WebResponse => Web,
);

/// The answer to `Need::AppendUpload`: the session's new state (`None`: it vanished), or
/// why nothing was written.
pub(crate) type Appended = Result<Option<UploadInfo>, AppendRefused>;

impl FromReply for Appended {
    fn from_reply(reply: Reply) -> Result<Self, Reply> {
        match reply {
            Reply::Upload(u) => Ok(Ok(u)),
            Reply::AppendRefused(r) => Ok(Err(r)),
            other => Err(other),
        }
    }
}

/// Any reply at all: see `Ask::ignored`.
pub(crate) struct Ignored;

impl FromReply for Ignored {
    fn from_reply(_: Reply) -> Result<Self, Reply> {
        Ok(Ignored)
    }
}

pub(super) fn authorize(req: AuthRequest) -> Ask<Auth> {
    Ask::new(Need::Authorize(req))
}

pub(super) fn stat_blob(repo: RepoName, digest: Digest) -> Ask<Option<BlobInfo>> {
    Ask::new(Need::StatBlob { repo, digest })
}

pub(super) fn delete_blob(repo: RepoName, digest: Digest) -> Ask<Deleted> {
    Ask::new(Need::DeleteBlob { repo, digest })
}

pub(super) fn start_upload(repo: RepoName) -> Ask<Option<UploadInfo>> {
    Ask::new(Need::StartUpload { repo })
}

pub(super) fn upload_status(repo: RepoName, upload: UploadId) -> Ask<Option<UploadInfo>> {
    Ask::new(Need::UploadStatus { repo, upload })
}

pub(super) fn sync_upload(repo: RepoName, upload: UploadId) -> Ask<Option<UploadInfo>> {
    Ask::new(Need::SyncUpload { repo, upload })
}

pub(super) fn finish_upload(repo: RepoName, upload: UploadId, digest: Digest) -> Ask<Finish> {
    Ask::new(Need::FinishUpload {
        repo,
        upload,
        digest,
    })
}

pub(super) fn cancel_upload(repo: RepoName, upload: UploadId) -> Ask<Deleted> {
    Ask::new(Need::CancelUpload { repo, upload })
}

pub(super) fn mount_blob(repo: RepoName, digest: Digest, from: Option<RepoName>) -> Ask<Mount> {
    Ask::new(Need::MountBlob { repo, digest, from })
}

pub(super) fn get_manifest(
    repo: RepoName,
    reference: Reference,
    pull: bool,
) -> Ask<Option<ManifestInfo>> {
    Ask::new(Need::GetManifest {
        repo,
        reference,
        pull,
    })
}

pub(super) fn put_manifest(repo: RepoName, manifest: NewManifest) -> Ask<ManifestPut> {
    Ask::new(Need::PutManifest {
        repo,
        manifest: Box::new(manifest),
    })
}

pub(super) fn delete_manifest(repo: RepoName, reference: Reference) -> Ask<Deleted> {
    Ask::new(Need::DeleteManifest { repo, reference })
}

pub(super) fn list_tags(repo: RepoName, n: usize, last: Option<String>) -> Ask<Option<Page>> {
    Ask::new(Need::ListTags { repo, n, last })
}

pub(super) fn referrers(repo: RepoName, subject: Digest) -> Ask<Vec<Referrer>> {
    Ask::new(Need::Referrers { repo, subject })
}

pub(super) fn catalog(n: usize, last: Option<String>) -> Ask<Page> {
    Ask::new(Need::Catalog { n, last })
}

pub(super) fn web(req: WebRequest) -> Ask<WebResponse> {
    Ask::new(Need::Web(req))
}
