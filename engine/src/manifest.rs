//! Manifests, tags, referrers and the catalog: reads (MVCC) and their writes inside a batch.

use std::collections::BTreeSet;
use std::ops::Bound;

use crate::kv::ReadableTable;

use crate::commit::{Batch, Tables, Write};
use crate::keys::BlobKey;
use crate::tenancy::records::AuditRec;
use crate::{
    schema, DeleteOutcome, Inner, ManifestRef, NewManifest, ReferrerRec, StoreError, StoredManifest,
};

pub(crate) fn get(
    inner: &Inner,
    repo: &str,
    r: ManifestRef<'_>,
) -> Result<Option<StoredManifest>, StoreError> {
    let txn = inner.db.begin_read()?;
    let key = match r {
        ManifestRef::Key(k) => k.clone(),
        ManifestRef::Tag(tag) => {
            let tags = txn.open_table(schema::TAGS)?;
            let Some(v) = tags.get((repo, tag))? else {
                return Ok(None);
            };
            BlobKey::decode(v.value()).ok_or(schema::Corrupt("tag target"))?
        }
    };
    let kb = key.encode();
    let manifests = txn.open_table(schema::MANIFESTS)?;
    let Some(v) = manifests.get((repo, &kb[..]))? else {
        return Ok(None);
    };
    let row = schema::decode_manifest(v.value())?;
    Ok(Some(StoredManifest {
        key,
        media_type: row.media_type,
        body: row.body.into(),
    }))
}

pub(crate) fn list_tags(
    inner: &Inner,
    repo: &str,
    last: Option<&str>,
    n: usize,
) -> Result<Option<(Vec<String>, bool)>, StoreError> {
    let txn = inner.db.begin_read()?;
    if txn.open_table(schema::REPOS)?.get(repo)?.is_none() {
        return Ok(None);
    }
    let tags = txn.open_table(schema::TAGS)?;
    let start = match last {
        Some(l) => Bound::Excluded((repo, l)),
        None => Bound::Included((repo, "")),
    };
    let mut out = Vec::new();
    let mut more = false;
    for entry in tags.range::<(&str, &str)>((start, Bound::Unbounded))? {
        let (k, _) = entry?;
        let (r, tag) = k.value();
        if r != repo {
            break;
        }
        if out.len() == n {
            more = true;
            break;
        }
        out.push(tag.to_owned());
    }
    Ok(Some((out, more)))
}

pub(crate) fn catalog(
    inner: &Inner,
    last: Option<&str>,
    n: usize,
) -> Result<(Vec<String>, bool), StoreError> {
    let txn = inner.db.begin_read()?;
    let repos = txn.open_table(schema::REPOS)?;
    let start = match last {
        Some(l) => Bound::Excluded(l),
        None => Bound::Unbounded,
    };
    let mut out = Vec::new();
    let mut more = false;
    for entry in repos.range::<&str>((start, Bound::Unbounded))? {
        let (k, _) = entry?;
        if out.len() == n {
            more = true;
            break;
        }
        out.push(k.value().to_owned());
    }
    Ok((out, more))
}

pub(crate) fn referrers(
    inner: &Inner,
    repo: &str,
    subject: &BlobKey,
) -> Result<Vec<ReferrerRec>, StoreError> {
    let sb = subject.encode();
    let txn = inner.db.begin_read()?;
    let table = txn.open_table(schema::REFERRERS)?;
    let mut out = Vec::new();
    let start: (&str, &[u8], &[u8]) = (repo, &sb[..], &[]);
    for entry in table.range(start..)? {
        let (k, v) = entry?;
        let (r, s, _) = k.value();
        if r != repo || s != &sb[..] {
            break;
        }
        out.push(schema::decode_referrer(v.value())?);
    }
    Ok(out)
}

/// Stores a manifest in a repository, with its tags, references and referrer entry.
pub(crate) struct PutManifest {
    pub(crate) repo: String,
    pub(crate) m: Box<NewManifest>,
    pub(crate) audit: Vec<AuditRec>,
}

impl Write for PutManifest {
    /// The keys it references that the repository lacks, if any (nothing stored then).
    type Out = Result<(), Vec<BlobKey>>;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<Self::Out, StoreError> {
        let (repo, m) = (self.repo.as_str(), &*self.m);
        let done = apply_put(&mut b.t, repo, m, (b.inner.clock)())?;
        if done.is_ok() {
            // Before any collection whose snapshot lacks these references can unlink them
            // (it checks uses again inside its transaction).
            for k in &m.blobs {
                b.used(repo, &k.encode())?;
            }
            for k in &m.external {
                let kb = k.encode();
                if b.t.links.get((repo, &kb[..]))?.is_some() {
                    b.used(repo, &kb)?;
                }
            }
        }
        Ok(done)
    }

    fn audit(&self) -> &[AuditRec] {
        &self.audit
    }

    fn changed(out: &Self::Out) -> bool {
        out.is_ok()
    }
}

/// How a manifest to delete is named.
pub(crate) enum ManifestKey {
    Tag(String),
    Key(BlobKey),
}

/// By tag: removes the tag only. By key: removes the manifest, every tag pointing to it
/// and its referrer entry.
pub(crate) struct DeleteManifest {
    pub(crate) repo: String,
    pub(crate) r: ManifestKey,
    pub(crate) audit: Vec<AuditRec>,
}

impl Write for DeleteManifest {
    type Out = DeleteOutcome;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Result<DeleteOutcome, StoreError> {
        apply_delete(&mut b.t, &self.repo, &self.r)
    }

    fn audit(&self) -> &[AuditRec] {
        &self.audit
    }

    fn changed(out: &DeleteOutcome) -> bool {
        *out == DeleteOutcome::Deleted
    }
}

/// Stores `m` in `repo`, or returns the keys it references that `repo` lacks (storing
/// nothing). Subjects are never checked (spec §6.4 step 6).
fn apply_put(
    t: &mut Tables<'_>,
    repo: &str,
    m: &NewManifest,
    now: u64,
) -> Result<Result<(), Vec<BlobKey>>, StoreError> {
    let mut missing = BTreeSet::new();
    for k in &m.blobs {
        if t.links.get((repo, &k.encode()[..]))?.is_none() {
            missing.insert(k.clone());
        }
    }
    for k in &m.manifests {
        // A manifest may list itself only by being malformed; it is not in the repo yet.
        if t.manifests.get((repo, &k.encode()[..]))?.is_none() {
            missing.insert(k.clone());
        }
    }
    if !missing.is_empty() {
        return Ok(Err(missing.into_iter().collect()));
    }
    let kb = m.key.encode();
    let subject = m.subject.as_ref().map(|(s, _)| s);
    // Same key, same bytes: an earlier row differs at most in media type, and its subject
    // (read from the same bytes) is the same, so overwriting loses nothing.
    let row = schema::encode_manifest(&m.media_type, subject, &m.body);
    t.manifests.insert((repo, &kb[..]), &row[..])?;
    for tag in &m.tags {
        t.tags.insert((repo, tag.as_str()), &kb[..])?;
    }
    if let Some((s, rec)) = &m.subject {
        let sb = s.encode();
        t.referrers
            .insert((repo, &sb[..], &kb[..]), &schema::encode_referrer(rec)[..])?;
    }
    for k in &m.blobs {
        t.refs
            .insert((repo, &kb[..], &k.encode()[..]), schema::REF_BLOB)?;
    }
    for k in &m.external {
        let eb = k.encode();
        if t.links.get((repo, &eb[..]))?.is_some() {
            t.refs.insert((repo, &kb[..], &eb[..]), schema::REF_BLOB)?;
        }
    }
    for k in &m.manifests {
        t.refs
            .insert((repo, &kb[..], &k.encode()[..]), schema::REF_MANIFEST)?;
    }
    t.repos.insert(repo, ())?;
    // Its package details are worked out after the push is acknowledged, off its path.
    t.package_queue.insert((repo, &kb[..]), ())?;
    t.pushed.insert((repo, &kb[..]), now)?;
    Ok(Ok(()))
}

fn apply_delete(
    t: &mut Tables<'_>,
    repo: &str,
    r: &ManifestKey,
) -> Result<DeleteOutcome, StoreError> {
    if t.repos.get(repo)?.is_none() {
        return Ok(DeleteOutcome::RepoUnknown);
    }
    match r {
        ManifestKey::Tag(tag) => Ok(if t.tags.remove((repo, tag.as_str()))?.is_some() {
            DeleteOutcome::Deleted
        } else {
            DeleteOutcome::NotFound
        }),
        ManifestKey::Key(key) => {
            let kb = key.encode();
            let Some(old) = t.manifests.remove((repo, &kb[..]))? else {
                return Ok(DeleteOutcome::NotFound);
            };
            let row = schema::decode_manifest(old.value())?;
            drop(old);
            t.package_queue.remove((repo, &kb[..]))?;
            crate::package_store::apply_forget_version(t, repo, &kb)?;
            if let Some(s) = row.subject {
                let sb = s.encode();
                t.referrers.remove((repo, &sb[..], &kb[..]))?;
            }
            let mut dead_tags = Vec::new();
            for entry in t.tags.range::<(&str, &str)>((repo, "")..)? {
                let (k, v) = entry?;
                let (r, tag) = k.value();
                if r != repo {
                    break;
                }
                if v.value() == &kb[..] {
                    dead_tags.push(tag.to_owned());
                }
            }
            for tag in dead_tags {
                t.tags.remove((repo, tag.as_str()))?;
            }
            let mut dead_refs = Vec::new();
            let start: (&str, &[u8], &[u8]) = (repo, &kb[..], &[]);
            for entry in t.refs.range(start..)? {
                let (k, _) = entry?;
                let (r, m, target) = k.value();
                if r != repo || m != &kb[..] {
                    break;
                }
                dead_refs.push(target.to_vec());
            }
            for target in dead_refs {
                t.refs.remove((repo, &kb[..], &target[..]))?;
            }
            Ok(DeleteOutcome::Deleted)
        }
    }
}
