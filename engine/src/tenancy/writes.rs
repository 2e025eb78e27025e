//! The tenancy writes, each applied by the committer inside a batch: every check first,
//! then the writes, so a refusal writes nothing (an answer, not a failure of the batch).
//! Each answers with its own type, so a caller can only get what its write made.

use crate::kv::{ReadableTable, Table};

use super::records::{self, append_audit, AuditRec, OrgRec, RegistryRec, TokenRec, Visibility};
use super::rules::{check_new_token, invalid, is_slug, Refusal, MAX_SLUG_LEN};
use crate::commit::{Batch, Write};
use crate::keys::UploadId;
use crate::schema::{self, ADMIN_ORG};
use crate::StoreError;

/// What a tenancy write answers: its result, or why it changed nothing.
type Answer<T> = Result<Result<T, Refusal>, StoreError>;

pub(crate) struct CreateOrg {
    pub(crate) rec: OrgRec,
    pub(crate) audit: Vec<AuditRec>,
}

impl Write for CreateOrg {
    type Out = Result<OrgRec, Refusal>;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Answer<OrgRec> {
        let (tt, rec) = (b.tenancy()?, &self.rec);
        if !is_slug(&rec.slug) {
            return Ok(Err(invalid(format!(
                "organisation slug {:?} must match [a-z0-9]+(-[a-z0-9]+)* and be at most \
                 {MAX_SLUG_LEN} characters",
                rec.slug
            ))));
        }
        if tt.orgs.get(rec.slug.as_str())?.is_some() {
            return Ok(Err(Refusal::OrgExists));
        }
        tt.orgs
            .insert(rec.slug.as_str(), &records::encode_org(rec)[..])?;
        Ok(Ok(rec.clone()))
    }

    fn audit(&self) -> &[AuditRec] {
        &self.audit
    }

    fn changed(out: &Self::Out) -> bool {
        out.is_ok()
    }
}

pub(crate) struct CreateRegistry {
    pub(crate) rec: RegistryRec,
    pub(crate) audit: Vec<AuditRec>,
}

impl Write for CreateRegistry {
    type Out = Result<RegistryRec, Refusal>;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Answer<RegistryRec> {
        let (tt, rec) = (b.tenancy()?, &self.rec);
        if tt.orgs.get(rec.org.as_str())?.is_none() {
            return Ok(Err(Refusal::OrgUnknown));
        }
        if !is_slug(&rec.slug) {
            return Ok(Err(invalid(format!(
                "registry slug {:?} must match [a-z0-9]+(-[a-z0-9]+)* and be at most \
                 {MAX_SLUG_LEN} characters",
                rec.slug
            ))));
        }
        let key = (rec.org.as_str(), rec.slug.as_str());
        if tt.registries.get(key)?.is_some() {
            return Ok(Err(Refusal::RegistryExists));
        }
        tt.registries
            .insert(key, &records::encode_registry(rec)[..])?;
        Ok(Ok(rec.clone()))
    }

    fn audit(&self) -> &[AuditRec] {
        &self.audit
    }

    fn changed(out: &Self::Out) -> bool {
        out.is_ok()
    }
}

pub(crate) struct UpdateRegistry {
    pub(crate) org: String,
    pub(crate) slug: String,
    pub(crate) visibility: Option<Visibility>,
    pub(crate) description: Option<String>,
    pub(crate) audit: Vec<AuditRec>,
}

impl Write for UpdateRegistry {
    type Out = Result<RegistryRec, Refusal>;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Answer<RegistryRec> {
        let tt = b.tenancy()?;
        let key = (self.org.as_str(), self.slug.as_str());
        let Some(old) = tt.registries.get(key)? else {
            return Ok(Err(Refusal::RegistryUnknown));
        };
        let mut rec = records::decode_registry(&self.org, &self.slug, old.value())?;
        drop(old);
        if let Some(v) = self.visibility {
            rec.visibility = v;
        }
        if let Some(d) = &self.description {
            rec.description.clone_from(d);
        }
        tt.registries
            .insert(key, &records::encode_registry(&rec)[..])?;
        Ok(Ok(rec))
    }

    fn audit(&self) -> &[AuditRec] {
        &self.audit
    }

    fn changed(out: &Self::Out) -> bool {
        out.is_ok()
    }
}

pub(crate) struct DeleteRegistry {
    pub(crate) org: String,
    pub(crate) slug: String,
    pub(crate) now: u64,
    pub(crate) audit: Vec<AuditRec>,
    /// The entry each token it revokes gets, its target set to the token's id.
    pub(crate) revoke_entry: Option<AuditRec>,
}

/// A registry deleted: the tokens it revoked, and the upload sessions it ended (their rows
/// are gone; the committer refuses their finish from now on, and
/// [`Engine::delete_registry`](crate::Engine::delete_registry) ends what is left of them in
/// memory).
pub(crate) struct Deleted {
    pub(crate) revoked: Vec<String>,
    pub(crate) uploads: Vec<UploadId>,
}

impl Write for DeleteRegistry {
    type Out = Result<Deleted, Refusal>;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Answer<Deleted> {
        let (org, slug) = (self.org.as_str(), self.slug.as_str());
        let prefix = format!("{org}/{slug}/");
        let (t, tt) = b.tables_and_tenancy()?;
        let key = (org, slug);
        if tt.registries.get(key)?.is_none() {
            return Ok(Err(Refusal::RegistryUnknown));
        }
        if holds_any(&t.manifests, &prefix)? || holds_any(&t.links, &prefix)? {
            return Ok(Err(Refusal::RegistryNotEmpty));
        }
        tt.registries.remove(key)?;
        // What is left under the prefix is empty repositories (their tags and referrer
        // entries went with their manifests): take them out of the catalog.
        let mut empty = Vec::new();
        for entry in t.repos.range::<&str>(prefix.as_str()..)? {
            let (k, _) = entry?;
            let name = k.value();
            if !name.starts_with(&prefix) {
                break;
            }
            empty.push(name.to_owned());
        }
        for name in empty {
            t.repos.remove(name.as_str())?;
        }
        let mut naming = Vec::new();
        for entry in tt.org_tokens.range::<(&str, &str)>((org, "")..)? {
            let (k, _) = entry?;
            let (o, id) = k.value();
            if o != org {
                break;
            }
            naming.push(id.to_owned());
        }
        let mut revoked = Vec::new();
        for id in naming {
            let Some(mut rec) = tt.token(&id)? else {
                continue;
            };
            if rec.revoked.is_none() && rec.registries.iter().any(|g| g == slug) {
                rec.revoked = Some(self.now);
                tt.tokens
                    .insert(id.as_str(), &records::encode_token(&rec)[..])?;
                revoked.push(id);
            }
        }
        // Its upload sessions end with it: otherwise one could still finish, after a
        // registry of the same slug is created again, into that registry.
        let mut ended = Vec::new();
        for entry in t.uploads.iter()? {
            let (k, v) = entry?;
            if schema::decode_upload(v.value())?.repo.starts_with(&prefix) {
                ended.push(k.value().to_owned());
            }
        }
        for id in &ended {
            t.uploads.remove(id.as_str())?;
        }
        let mut uploads: Vec<UploadId> =
            ended.iter().filter_map(|id| UploadId::parse(id)).collect();
        // Sessions whose row a failed batch dropped end too.
        for id in crate::upload::under(b.inner, &prefix) {
            if !uploads.contains(&id) {
                uploads.push(id);
            }
        }
        for id in &uploads {
            b.end(id);
        }
        // Its own entries first, then one per token it revoked (its `audit()` is empty:
        // they are written here, in this order).
        let tt = b.tenancy()?;
        for rec in &self.audit {
            append_audit(tt, rec)?;
        }
        if let Some(entry) = &self.revoke_entry {
            for id in &revoked {
                let rec = AuditRec {
                    target: id.clone(),
                    ..entry.clone()
                };
                append_audit(tt, &rec)?;
            }
        }
        Ok(Ok(Deleted { revoked, uploads }))
    }

    fn changed(out: &Self::Out) -> bool {
        out.is_ok()
    }
}

pub(crate) struct CreateToken {
    pub(crate) rec: Box<TokenRec>,
    pub(crate) audit: Vec<AuditRec>,
}

impl Write for CreateToken {
    type Out = Result<(), Refusal>;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Answer<()> {
        let (tt, rec) = (b.tenancy()?, &*self.rec);
        if let Err(r) = check_new_token(tt, rec)? {
            return Ok(Err(r));
        }
        let id = rec.id.as_str();
        tt.tokens.insert(id, &records::encode_token(rec)[..])?;
        tt.hashes.insert(&rec.hash[..], id)?;
        let org = rec.org.as_deref().unwrap_or(ADMIN_ORG);
        tt.org_tokens.insert((org, id), ())?;
        Ok(Ok(()))
    }

    fn audit(&self) -> &[AuditRec] {
        &self.audit
    }

    fn changed(out: &Self::Out) -> bool {
        out.is_ok()
    }
}

pub(crate) struct RevokeToken {
    pub(crate) id: String,
    pub(crate) now: u64,
    pub(crate) audit: Vec<AuditRec>,
}

impl Write for RevokeToken {
    type Out = Result<TokenRec, Refusal>;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Answer<TokenRec> {
        let tt = b.tenancy()?;
        let Some(mut rec) = tt.token(&self.id)? else {
            return Ok(Err(Refusal::TokenUnknown));
        };
        if rec.revoked.is_none() {
            rec.revoked = Some(self.now);
            tt.tokens
                .insert(self.id.as_str(), &records::encode_token(&rec)[..])?;
        }
        Ok(Ok(rec))
    }

    fn audit(&self) -> &[AuditRec] {
        &self.audit
    }

    fn changed(out: &Self::Out) -> bool {
        out.is_ok()
    }
}

/// Last-used times, (token id, Unix seconds): a time never moves backwards, unknown ids
/// are skipped.
pub(crate) struct TouchTokens(pub(crate) Vec<(String, u64)>);

impl Write for TouchTokens {
    type Out = Result<(), Refusal>;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Answer<()> {
        let tt = b.tenancy()?;
        for (id, when) in &self.0 {
            let Some(mut rec) = tt.token(id)? else {
                continue;
            };
            if rec.last_used.is_none_or(|l| l < *when) {
                rec.last_used = Some(*when);
                tt.tokens
                    .insert(id.as_str(), &records::encode_token(&rec)[..])?;
            }
        }
        Ok(Ok(()))
    }
}

/// An audit entry on its own (the management API's); its sequence number.
pub(crate) struct AppendAudit(pub(crate) Box<AuditRec>);

impl Write for AppendAudit {
    type Out = Result<u64, Refusal>;

    fn apply(&self, b: &mut Batch<'_, '_>) -> Answer<u64> {
        Ok(Ok(append_audit(b.tenancy()?, &self.0)?))
    }
}

/// Whether any row of a (repository, …)-keyed table has a repository starting `prefix`:
/// such rows are contiguous, so the first row at or after `prefix` answers.
fn holds_any<V: redb::Value + 'static>(
    table: &Table<'_, (&'static str, &'static [u8]), V>,
    prefix: &str,
) -> Result<bool, StoreError> {
    let start: (&str, &[u8]) = (prefix, &[]);
    let Some(first) = table.range(start..)?.next() else {
        return Ok(false);
    };
    let (k, _) = first?;
    Ok(k.value().0.starts_with(prefix))
}
