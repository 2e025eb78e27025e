//! Tenancy records (issue 3): organisations, registries, access tokens and the audit log.
//!
//! These are storage nouns only; who may do what is the server's business (docs/auth.md,
//! "Authentication"). The engine keeps the invariants the server relies on:
//! - every registry belongs to an existing organisation, and every org or registry a token
//!   names exists when the token is created;
//! - slugs match `[a-z0-9]+(-[a-z0-9]+)*` (at most 39 bytes), so `org/registry/` is an
//!   unambiguous prefix of the registry's repository names;
//! - a registry is deleted only while no repository under it holds a manifest or a blob link;
//! - a token is found by the SHA-256 of its secret in one read transaction (two point
//!   lookups), since that happens on every authenticated request;
//! - records are never deleted: a revoked token keeps its row, so the audit trail can name it.
//!
//! Every write goes through the group commit (`commit.rs`) and is durable when the method
//! returns; checks and writes of one call happen in one transaction, so two concurrent
//! `create_org("acme")` cannot both succeed. Times are Unix seconds passed in by the caller:
//! the engine reads no clock here. Table layouts and encodings are in `schema.rs` (schema 2).

use std::ops::Bound;

use crate::kv::ReadableTable;

pub(crate) mod records;
mod rules;
mod writes;

pub(crate) use rules::Refusal;
pub use rules::{is_slug, slug_of, MAX_SLUG_LEN};

pub use records::{AuditRec, OrgRec, RegistryRec, TokenKind, TokenRec, Visibility};

use crate::schema::{self, ADMIN_ORG};
use crate::{Engine, Inner, StoreError};

/// Why a tenancy write changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// `create_org` of a slug already taken.
    #[error("the organisation already exists; choose another slug")]
    OrgExists,
    /// The organisation named does not exist.
    #[error("no such organisation; create it first with `berth org create <org>`")]
    OrgUnknown,
    /// `create_registry` of a slug already taken in the organisation.
    #[error("the organisation already has a registry with this slug; choose another name")]
    RegistryExists,
    /// The registry named does not exist in the organisation.
    #[error("no such registry; create it first with `berth registry create <org> <name>`")]
    RegistryUnknown,
    /// `delete_registry` while a repository under it holds a manifest or blob link.
    #[error("the registry still holds images; delete its manifests and blobs first")]
    RegistryNotEmpty,
    /// No token has this id.
    #[error("no such token; `berth token list <org>` shows the ids")]
    TokenUnknown,
    /// The record breaks a rule of the model (a slug outside the grammar, an admin token
    /// with an org, a duplicate token id or hash, …); the message says which. The server
    /// validates first, so this is a 400 at most.
    #[error("invalid record: {0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

// --- the Engine API -----------------------------------------------------------------------

impl Engine {
    /// Creates an organisation; `OrgExists` if the slug is taken.
    pub fn create_org(&self, slug: &str, now: u64) -> Result<OrgRec, TenancyError> {
        self.create_org_audited(slug, now, Vec::new())
    }

    /// [`create_org`](Self::create_org), appending `audit` to the audit log in the same
    /// transaction if the organisation is created: the entry and the change are durable
    /// together or not at all. (So do the other `_audited` calls.)
    pub fn create_org_audited(
        &self,
        slug: &str,
        now: u64,
        audit: Vec<AuditRec>,
    ) -> Result<OrgRec, TenancyError> {
        let rec = OrgRec {
            slug: slug.to_owned(),
            created: now,
        };
        self.write_tenancy(writes::CreateOrg { rec, audit }, true)
    }

    /// The organisation, if it exists.
    pub fn get_org(&self, slug: &str) -> Result<Option<OrgRec>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let orgs = txn.open_table(schema::ORGS)?;
        let rec = orgs
            .get(slug)?
            .map(|v| records::decode_org(slug, v.value()))
            .transpose()?;
        Ok(rec)
    }

    /// Every organisation, by slug.
    pub fn list_orgs(&self) -> Result<Vec<OrgRec>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let orgs = txn.open_table(schema::ORGS)?;
        let mut out = Vec::new();
        for entry in orgs.iter()? {
            let (k, v) = entry?;
            out.push(records::decode_org(k.value(), v.value())?);
        }
        Ok(out)
    }

    /// Creates a registry in `rec.org`; `OrgUnknown` if the org does not exist,
    /// `RegistryExists` if the slug is taken there. Returns the record as stored.
    pub fn create_registry(&self, rec: RegistryRec) -> Result<RegistryRec, TenancyError> {
        self.create_registry_audited(rec, Vec::new())
    }

    /// [`create_registry`](Self::create_registry) with its audit entries.
    pub fn create_registry_audited(
        &self,
        rec: RegistryRec,
        audit: Vec<AuditRec>,
    ) -> Result<RegistryRec, TenancyError> {
        self.write_tenancy(writes::CreateRegistry { rec, audit }, true)
    }

    /// The registry, if it exists.
    pub fn get_registry(&self, org: &str, slug: &str) -> Result<Option<RegistryRec>, StoreError> {
        get_registry(&self.inner, org, slug)
    }

    /// The org's registries, by slug; `OrgUnknown` if the org does not exist.
    pub fn list_registries(&self, org: &str) -> Result<Vec<RegistryRec>, TenancyError> {
        registries_of(&self.inner, org)?.ok_or(TenancyError::OrgUnknown)
    }

    /// Changes what is given; returns the record as stored. `RegistryUnknown` if missing.
    pub fn update_registry(
        &self,
        org: &str,
        slug: &str,
        visibility: Option<Visibility>,
        description: Option<String>,
    ) -> Result<RegistryRec, TenancyError> {
        self.update_registry_audited(org, slug, visibility, description, Vec::new())
    }

    /// [`update_registry`](Self::update_registry) with its audit entries.
    pub fn update_registry_audited(
        &self,
        org: &str,
        slug: &str,
        visibility: Option<Visibility>,
        description: Option<String>,
        audit: Vec<AuditRec>,
    ) -> Result<RegistryRec, TenancyError> {
        let w = writes::UpdateRegistry {
            org: org.to_owned(),
            slug: slug.to_owned(),
            visibility,
            description,
            audit,
        };
        self.write_tenancy(w, true)
    }

    /// Deletes the registry; `RegistryNotEmpty` while any repository `org/slug/...` holds a
    /// manifest or a blob link, `RegistryUnknown` if missing. The (empty) repositories under
    /// it leave the catalog, and every unrevoked token that names it (its registry tokens,
    /// and org tokens limited to registries among which it is) is revoked at `now` in the
    /// same transaction: a registry created later under the same slug is not covered by
    /// tokens minted for this one. Its repositories' upload sessions end in the same
    /// transaction, for the same reason: a later append or finish of one is refused as
    /// unknown, and their files are removed. Returns the ids of the tokens it revoked, for
    /// the audit log.
    pub fn delete_registry(
        &self,
        org: &str,
        slug: &str,
        now: u64,
    ) -> Result<Vec<String>, TenancyError> {
        self.delete_registry_audited(org, slug, now, Vec::new(), None)
    }

    /// [`delete_registry`](Self::delete_registry) with its audit entries, and `revoked`'s
    /// copy, its target set to the token's id, for each token the deletion revokes.
    pub fn delete_registry_audited(
        &self,
        org: &str,
        slug: &str,
        now: u64,
        audit: Vec<AuditRec>,
        revoked: Option<AuditRec>,
    ) -> Result<Vec<String>, TenancyError> {
        let w = writes::DeleteRegistry {
            org: org.to_owned(),
            slug: slug.to_owned(),
            now,
            audit,
            revoke_entry: revoked,
        };
        let done = self.write_tenancy(w, true)?;
        crate::upload::end(&self.inner, &self.commit, &done.uploads);
        Ok(done.revoked)
    }

    /// Stores a new token. `OrgUnknown` if its org does not exist, `RegistryUnknown` if a
    /// registry it names does not; `Invalid` if the kind and fields disagree (an admin
    /// token with an org, a registry token naming other than one registry or with write) or
    /// the id or hash is already stored.
    pub fn create_token(&self, rec: TokenRec) -> Result<(), TenancyError> {
        self.create_token_audited(rec, Vec::new())
    }

    /// [`create_token`](Self::create_token) with its audit entries.
    pub fn create_token_audited(
        &self,
        rec: TokenRec,
        audit: Vec<AuditRec>,
    ) -> Result<(), TenancyError> {
        let w = writes::CreateToken {
            rec: Box::new(rec),
            audit,
        };
        self.write_tenancy(w, true)
    }

    /// Changes whenever an org, registry or token changes in a way that can change an
    /// access decision (last-used times do not count). Read it before a lookup; a cached
    /// result is current while the generation still reads the same.
    ///
    /// On PostgreSQL another node may have made the change, so the count kept in the
    /// database is read (one statement); if it cannot be read, a number never returned
    /// before, so that the lookup runs and reports the failure.
    pub fn tenancy_generation(&self) -> u64 {
        match self.inner.db.shared_generation() {
            None => self.commit.tenancy_generation(),
            Some(Ok(g)) => g,
            Some(Err(_)) => self.commit.unique_generation(),
        }
    }

    /// The secret `name` shared by every node of the store, made from `make` by the first
    /// that asks; `None` on an embedded store, whose secrets are files in its folder.
    pub fn shared_secret(&self, name: &str, make: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        if self.inner.db.shared_generation().is_none() {
            return Ok(None);
        }
        let key = format!("{}{name}", schema::META_SECRET_PREFIX);
        Ok(Some(
            self.commit.submit(KeepSecret { key, make })?.into_inner(),
        ))
    }

    /// The token whose secret hashes to `hash`, revoked or expired ones included (the
    /// caller checks `revoked` and `expires` against its clock). One read transaction.
    pub fn token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<TokenRec>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let hashes = txn.open_table(schema::TOKEN_HASHES)?;
        let Some(id) = hashes.get(&hash[..])? else {
            return Ok(None);
        };
        let tokens = txn.open_table(schema::TOKENS)?;
        let id = id.value();
        let Some(v) = tokens.get(id)? else {
            return Err(StoreError::new(format!(
                "token hash index names token {id}, which is not stored (run `berth check`)"
            )));
        };
        let rec = records::decode_token(id, v.value())?;
        Ok(Some(rec))
    }

    /// The token with this id.
    pub fn get_token(&self, id: &str) -> Result<Option<TokenRec>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let tokens = txn.open_table(schema::TOKENS)?;
        let rec = tokens
            .get(id)?
            .map(|v| records::decode_token(id, v.value()))
            .transpose()?;
        Ok(rec)
    }

    /// The org's tokens (org and registry tokens, revoked ones included), by id;
    /// `OrgUnknown` if the org does not exist.
    pub fn list_tokens(&self, org: &str) -> Result<Vec<TokenRec>, TenancyError> {
        org_tokens(&self.inner, org)?.ok_or(TenancyError::OrgUnknown)
    }

    /// Marks the token revoked at `now` and returns it; revoking again keeps the first
    /// time. `TokenUnknown` if no token has this id.
    pub fn revoke_token(&self, id: &str, now: u64) -> Result<TokenRec, TenancyError> {
        self.revoke_token_audited(id, now, Vec::new())
    }

    /// [`revoke_token`](Self::revoke_token) with its audit entries.
    pub fn revoke_token_audited(
        &self,
        id: &str,
        now: u64,
        audit: Vec<AuditRec>,
    ) -> Result<TokenRec, TenancyError> {
        let w = writes::RevokeToken {
            id: id.to_owned(),
            now,
            audit,
        };
        self.write_tenancy(w, true)
    }

    /// Writes last-used times (token id, Unix seconds) in one transaction. A time never
    /// moves backwards; unknown ids are skipped (the server may batch uses of a token
    /// created and looked up in the same minute, never of one that does not exist).
    pub fn touch_tokens(&self, used: &[(String, u64)]) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        match self.write_tenancy(writes::TouchTokens(used.to_vec()), false) {
            Ok(()) => Ok(()),
            Err(TenancyError::Store(e)) => Err(e),
            Err(e) => Err(StoreError::new(format!(
                "internal: touch_tokens refused: {e}"
            ))),
        }
    }

    /// Appends to `rec.org`'s log (the org need not exist: an entry may outlive it) and
    /// returns the sequence number assigned: one more than the org's last.
    pub fn append_audit(&self, rec: AuditRec) -> Result<u64, StoreError> {
        match self.write_tenancy(writes::AppendAudit(Box::new(rec)), false) {
            Ok(s) => Ok(s),
            Err(TenancyError::Store(e)) => Err(e),
            Err(e) => Err(StoreError::new(format!(
                "internal: append_audit refused: {e}"
            ))),
        }
    }

    /// Up to `limit` entries of `org`'s log, newest first, with `seq < before` if given.
    pub fn list_audit(
        &self,
        org: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditRec>, StoreError> {
        self.list_audit_where(org, before, limit, |_| true)
    }

    /// [`list_audit`](Self::list_audit) of the entries `keep` accepts: a page holds
    /// `limit` of those if the log has them, however many others lie between.
    pub fn list_audit_where(
        &self,
        org: &str,
        before: Option<u64>,
        limit: usize,
        mut keep: impl FnMut(&AuditRec) -> bool,
    ) -> Result<Vec<AuditRec>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(schema::AUDIT)?;
        let end = match before {
            Some(b) => Bound::Excluded((org, b)),
            None => Bound::Included((org, u64::MAX)),
        };
        let range = table.range::<(&str, u64)>((Bound::Included((org, 0)), end))?;
        for entry in range.rev() {
            let (k, v) = entry?;
            let (o, seq) = k.value();
            let rec = records::decode_audit(o, seq, v.value())?;
            if keep(&rec) {
                out.push(rec);
            }
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// Whether any admin token that is not revoked exists (expiry is the caller's to
    /// judge: admin tokens are created without one).
    pub fn has_admin_token(&self) -> Result<bool, StoreError> {
        Ok(self
            .admin_tokens()?
            .iter()
            .any(|t| t.kind == TokenKind::Admin && t.revoked.is_none()))
    }

    /// Every admin token, revoked ones included, by id.
    pub fn admin_tokens(&self) -> Result<Vec<TokenRec>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        tokens_of(&txn, ADMIN_ORG)
    }
}

fn get_registry(inner: &Inner, org: &str, slug: &str) -> Result<Option<RegistryRec>, StoreError> {
    let txn = inner.db.begin_read()?;
    let table = txn.open_table(schema::REGISTRIES)?;
    let rec = table
        .get((org, slug))?
        .map(|v| records::decode_registry(org, slug, v.value()))
        .transpose()?;
    Ok(rec)
}

/// The org's registries; `None` if the org does not exist.
fn registries_of(inner: &Inner, org: &str) -> Result<Option<Vec<RegistryRec>>, StoreError> {
    let txn = inner.db.begin_read()?;
    if txn.open_table(schema::ORGS)?.get(org)?.is_none() {
        return Ok(None);
    }
    let table = txn.open_table(schema::REGISTRIES)?;
    let mut out = Vec::new();
    for entry in table.range::<(&str, &str)>((org, "")..)? {
        let (k, v) = entry?;
        let (o, slug) = k.value();
        if o != org {
            break;
        }
        out.push(records::decode_registry(o, slug, v.value())?);
    }
    Ok(Some(out))
}

/// The org's tokens; `None` if the org does not exist.
fn org_tokens(inner: &Inner, org: &str) -> Result<Option<Vec<TokenRec>>, StoreError> {
    let txn = inner.db.begin_read()?;
    if txn.open_table(schema::ORGS)?.get(org)?.is_none() {
        return Ok(None);
    }
    Ok(Some(tokens_of(&txn, org)?))
}

/// The tokens filed under `org` in the org index ([`ADMIN_ORG`] for admin tokens).
fn tokens_of(txn: &crate::kv::ReadTransaction, org: &str) -> Result<Vec<TokenRec>, StoreError> {
    let index = txn.open_table(schema::ORG_TOKENS)?;
    let tokens = txn.open_table(schema::TOKENS)?;
    let mut out = Vec::new();
    for entry in index.range::<(&str, &str)>((org, "")..)? {
        let (k, _) = entry?;
        let (o, id) = k.value();
        if o != org {
            break;
        }
        let Some(v) = tokens.get(id)? else {
            return Err(StoreError::new(format!(
                "token index of {org:?} names token {id}, which is not stored (run `berth check`)"
            )));
        };
        out.push(records::decode_token(id, v.value())?);
    }
    Ok(out)
}

// --- writes, applied by the committer inside a batch (`writes.rs`) ------------------------

impl From<Refusal> for TenancyError {
    fn from(r: Refusal) -> TenancyError {
        match r {
            Refusal::OrgExists => TenancyError::OrgExists,
            Refusal::OrgUnknown => TenancyError::OrgUnknown,
            Refusal::RegistryExists => TenancyError::RegistryExists,
            Refusal::RegistryUnknown => TenancyError::RegistryUnknown,
            Refusal::RegistryNotEmpty => TenancyError::RegistryNotEmpty,
            Refusal::TokenUnknown => TenancyError::TokenUnknown,
            Refusal::Invalid(s) => TenancyError::Invalid(s),
        }
    }
}

impl Engine {
    /// Applies a tenancy write durably; a refusal comes back as its [`TenancyError`].
    /// `decides`: the write can change an access decision, so cached lookups must look
    /// again (bumped after the commit, or its failure: a bump for a write that failed costs
    /// one lookup).
    fn write_tenancy<W, T>(&self, w: W, decides: bool) -> Result<T, TenancyError>
    where
        W: crate::commit::Write<Out = Result<T, Refusal>>,
    {
        let outcome = if decides {
            let o = self.commit.submit(Decides(w));
            self.commit.bump_tenancy_generation();
            o
        } else {
            self.commit.submit(w)
        };
        outcome?.into_inner().map_err(TenancyError::from)
    }
}

/// A tenancy write that can change an access decision: it also bumps the generation kept
/// in the metadata, in its own transaction, so other nodes see the change on their next
/// lookup.
struct Decides<W>(W);

impl<W: crate::commit::Write> crate::commit::Write for Decides<W> {
    type Out = W::Out;
    const DURABLE: bool = W::DURABLE;
    fn apply(&self, b: &mut crate::commit::Batch<'_, '_>) -> Result<W::Out, StoreError> {
        let out = self.0.apply(b)?;
        let mut meta = b.meta()?;
        let now = meta
            .get(schema::META_TENANCY_GENERATION)?
            .map(|v| schema::decode_u64(v.value()))
            .transpose()?
            .unwrap_or(0);
        meta.insert(
            schema::META_TENANCY_GENERATION,
            &(now.wrapping_add(1)).to_le_bytes()[..],
        )?;
        Ok(out)
    }
    fn audit(&self) -> &[AuditRec] {
        self.0.audit()
    }
    fn changed(out: &W::Out) -> bool {
        W::changed(out)
    }
    fn failed(&self, inner: &crate::Inner) {
        self.0.failed(inner)
    }
}

/// Gets the secret at `key` in the metadata, storing `make` there first if there is none.
struct KeepSecret {
    key: String,
    make: Vec<u8>,
}

impl crate::commit::Write for KeepSecret {
    type Out = Vec<u8>;
    fn apply(&self, b: &mut crate::commit::Batch<'_, '_>) -> Result<Vec<u8>, StoreError> {
        let mut meta = b.meta()?;
        if let Some(v) = meta.get(self.key.as_str())? {
            return Ok(v.value().to_vec());
        }
        meta.insert(self.key.as_str(), &self.make[..])?;
        Ok(self.make.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_org_grammar() {
        for ok in ["a", "acme", "web-services", "a1-b2-c3", &"x".repeat(39)] {
            assert!(is_slug(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "Acme",
            "a_b",
            "a/b",
            "a.b",
            &"x".repeat(40),
        ] {
            assert!(!is_slug(bad), "{bad}");
        }
    }

    #[test]
    fn check_reports_index_rows_that_name_no_token() {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = Engine::open(dir.path(), crate::EngineOptions::default()).unwrap();
            e.create_org("acme", 1).unwrap();
            assert!(e.check().unwrap().is_clean());
        }
        {
            let db = redb::Database::open(dir.path().join("meta.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(schema::TOKEN_HASHES)
                .unwrap()
                .insert(&[1u8; 32][..], "tok_ghost")
                .unwrap();
            txn.open_table(schema::REGISTRIES)
                .unwrap()
                .insert(("gone", "web"), &[0u8; 9][..])
                .unwrap();
            txn.commit().unwrap();
        }
        let e = Engine::open(dir.path(), crate::EngineOptions::default()).unwrap();
        let problems = e.check().unwrap().problems;
        assert!(
            problems.iter().any(|p| p.contains("tok_ghost")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("gone/web")),
            "{problems:?}"
        );
        // a lookup through the dangling index row is an error, not a panic or a token
        assert!(e.token_by_hash(&[1u8; 32]).is_err());
    }

    #[test]
    fn registry_slugs_are_derived_in_kebab_case() {
        assert_eq!(slug_of("Web Services").as_deref(), Some("web-services"));
        assert_eq!(slug_of("  API -- v2!! ").as_deref(), Some("api-v2"));
        assert_eq!(slug_of("already-fine").as_deref(), Some("already-fine"));
        assert_eq!(slug_of("Café Crème").as_deref(), Some("caf-cr-me"));
        assert_eq!(slug_of("!!!"), None);
        assert_eq!(slug_of(&"ab ".repeat(20)), None);
    }
}
