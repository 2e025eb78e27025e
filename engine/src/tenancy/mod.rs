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

use redb::{ReadableTable, Table};

pub(crate) mod records;

pub use records::{AuditRec, OrgRec, RegistryRec, TokenKind, TokenRec, Visibility};

use crate::commit::Tables;
use crate::keys::UploadId;
use crate::schema::{self, ADMIN_ORG};
use crate::{Engine, Inner, StoreError};
use records::{append_audit, TenancyTables};

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

/// Longest organisation or registry slug, in bytes.
pub const MAX_SLUG_LEN: usize = 39;

/// Whether `s` is an organisation or registry slug: `[a-z0-9]+(-[a-z0-9]+)*`, at most
/// [`MAX_SLUG_LEN`] bytes. Neither `/` nor an empty part can occur, so `org/registry/` is
/// a prefix of exactly that registry's repository names.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SLUG_LEN
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The registry slug derived from a display name ("Web Services" → `web-services`):
/// lower-cased, each run of other than ASCII letters and digits becomes one `-`, trimmed.
/// `None` if nothing is left or the result is longer than [`MAX_SLUG_LEN`].
pub fn slug_of(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        } else {
            dash = true;
        }
    }
    is_slug(&out).then_some(out)
}

fn is_token_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn invalid(what: impl Into<String>) -> Refusal {
    Refusal::Invalid(what.into())
}

// --- the Engine API -----------------------------------------------------------------------

impl Engine {
    /// Creates an organisation; `OrgExists` if the slug is taken.
    pub fn create_org(&self, slug: &str, now: u64) -> Result<OrgRec, TenancyError> {
        let rec = OrgRec {
            slug: slug.to_owned(),
            created: now,
        };
        match self.write_tenancy(Op::CreateOrg(rec))? {
            Done::Org(o) => Ok(o),
            other => Err(other.unexpected()),
        }
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
        match self.write_tenancy(Op::CreateRegistry(rec))? {
            Done::Registry(g) => Ok(g),
            other => Err(other.unexpected()),
        }
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
        let op = Op::UpdateRegistry {
            org: org.to_owned(),
            slug: slug.to_owned(),
            visibility,
            description,
        };
        match self.write_tenancy(op)? {
            Done::Registry(g) => Ok(g),
            other => Err(other.unexpected()),
        }
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
        let op = Op::DeleteRegistry {
            org: org.to_owned(),
            slug: slug.to_owned(),
            now,
        };
        match self.write_tenancy(op)? {
            Done::Deleted { revoked, uploads } => {
                crate::upload::end(&self.inner, &self.commit, &uploads);
                Ok(revoked)
            }
            other => Err(other.unexpected()),
        }
    }

    /// Stores a new token. `OrgUnknown` if its org does not exist, `RegistryUnknown` if a
    /// registry it names does not; `Invalid` if the kind and fields disagree (an admin
    /// token with an org, a registry token naming other than one registry or with write) or
    /// the id or hash is already stored.
    pub fn create_token(&self, rec: TokenRec) -> Result<(), TenancyError> {
        match self.write_tenancy(Op::CreateToken(Box::new(rec)))? {
            Done::Unit => Ok(()),
            other => Err(other.unexpected()),
        }
    }

    /// Changes whenever an org, registry or token changes in a way that can change an
    /// access decision (last-used times do not count). Read it before a lookup; a cached
    /// result is current while the generation still reads the same.
    pub fn tenancy_generation(&self) -> u64 {
        self.commit.tenancy_generation()
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
        let op = Op::RevokeToken {
            id: id.to_owned(),
            now,
        };
        match self.write_tenancy(op)? {
            Done::Token(t) => Ok(t),
            other => Err(other.unexpected()),
        }
    }

    /// Writes last-used times (token id, Unix seconds) in one transaction. A time never
    /// moves backwards; unknown ids are skipped (the server may batch uses of a token
    /// created and looked up in the same minute, never of one that does not exist).
    pub fn touch_tokens(&self, used: &[(String, u64)]) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        match self.write_tenancy(Op::TouchTokens(used.to_vec())) {
            Ok(Done::Unit) => Ok(()),
            Ok(_) => Err(wrong_outcome()),
            Err(TenancyError::Store(e)) => Err(e),
            Err(e) => Err(StoreError::new(format!(
                "internal: touch_tokens refused: {e}"
            ))),
        }
    }

    /// Appends to `rec.org`'s log (the org need not exist: an entry may outlive it) and
    /// returns the sequence number assigned: one more than the org's last.
    pub fn append_audit(&self, rec: AuditRec) -> Result<u64, StoreError> {
        match self.write_tenancy(Op::AppendAudit(Box::new(rec))) {
            Ok(Done::Seq(s)) => Ok(s),
            Ok(_) => Err(wrong_outcome()),
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
fn tokens_of(txn: &redb::ReadTransaction, org: &str) -> Result<Vec<TokenRec>, StoreError> {
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

// --- writes, applied by the committer inside a batch ----------------------------------------

/// A tenancy write, queued to the committer.
pub(crate) enum Op {
    CreateOrg(OrgRec),
    CreateRegistry(RegistryRec),
    UpdateRegistry {
        org: String,
        slug: String,
        visibility: Option<Visibility>,
        description: Option<String>,
    },
    DeleteRegistry {
        org: String,
        slug: String,
        now: u64,
    },
    CreateToken(Box<TokenRec>),
    RevokeToken {
        id: String,
        now: u64,
    },
    TouchTokens(Vec<(String, u64)>),
    AppendAudit(Box<AuditRec>),
}

/// What a tenancy write did.
pub(crate) enum Done {
    Unit,
    Org(OrgRec),
    Registry(RegistryRec),
    Token(TokenRec),
    Seq(u64),
    /// A registry deleted: the tokens it revoked, and the upload sessions it ended (their
    /// rows are gone; the committer refuses their finish from now on, and
    /// [`Engine::delete_registry`] ends what is left of them in memory).
    Deleted {
        revoked: Vec<String>,
        uploads: Vec<UploadId>,
    },
}

impl Done {
    fn unexpected(self) -> TenancyError {
        TenancyError::Store(wrong_outcome())
    }
}

/// Why a tenancy write changed nothing: an answer, not a failure of the batch.
pub(crate) enum Refusal {
    OrgExists,
    OrgUnknown,
    RegistryExists,
    RegistryUnknown,
    RegistryNotEmpty,
    TokenUnknown,
    Invalid(String),
}

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

/// The committer answered a tenancy write with the outcome of another kind of write.
fn wrong_outcome() -> StoreError {
    StoreError::new("internal: a tenancy write was answered with another kind of outcome")
}

/// A tenancy write as the committer applies it.
struct TenancyWrite(Op);

impl crate::commit::Write for TenancyWrite {
    type Out = Result<Done, Refusal>;

    fn apply(&self, b: &mut crate::commit::Batch<'_, '_>) -> Result<Self::Out, StoreError> {
        let (t, tt) = b.tables_and_tenancy()?;
        let mut out = apply(t, tt, &self.0)?;
        if let (Ok(Done::Deleted { uploads, .. }), Op::DeleteRegistry { org, slug, .. }) =
            (&mut out, &self.0)
        {
            // Sessions whose row a failed batch dropped end too.
            let prefix = format!("{org}/{slug}/");
            for id in crate::upload::under(b.inner, &prefix) {
                if !uploads.contains(&id) {
                    uploads.push(id);
                }
            }
            for id in uploads.iter() {
                b.end(id);
            }
        }
        Ok(out)
    }

    fn changed(out: &Self::Out) -> bool {
        out.is_ok()
    }
}

impl Engine {
    /// Applies a tenancy write durably; a refusal comes back as its [`TenancyError`].
    fn write_tenancy(&self, op: Op) -> Result<Done, TenancyError> {
        let decides = !matches!(op, Op::TouchTokens(_) | Op::AppendAudit(_));
        let outcome = self.commit.submit(TenancyWrite(op));
        if decides {
            self.commit.bump_tenancy_generation();
        }
        outcome?.into_inner().map_err(TenancyError::from)
    }
}

/// Applies `op`: every check first, then the writes, so a refusal writes nothing.
pub(crate) fn apply(
    t: &mut Tables<'_>,
    tt: &mut TenancyTables<'_>,
    op: &Op,
) -> Result<Result<Done, Refusal>, StoreError> {
    match op {
        Op::CreateOrg(rec) => {
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
            Ok(Ok(Done::Org(rec.clone())))
        }
        Op::CreateRegistry(rec) => {
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
            Ok(Ok(Done::Registry(rec.clone())))
        }
        Op::UpdateRegistry {
            org,
            slug,
            visibility,
            description,
        } => {
            let key = (org.as_str(), slug.as_str());
            let Some(old) = tt.registries.get(key)? else {
                return Ok(Err(Refusal::RegistryUnknown));
            };
            let mut rec = records::decode_registry(org, slug, old.value())?;
            drop(old);
            if let Some(v) = visibility {
                rec.visibility = *v;
            }
            if let Some(d) = description {
                rec.description.clone_from(d);
            }
            tt.registries
                .insert(key, &records::encode_registry(&rec)[..])?;
            Ok(Ok(Done::Registry(rec)))
        }
        Op::DeleteRegistry { org, slug, now } => {
            let key = (org.as_str(), slug.as_str());
            if tt.registries.get(key)?.is_none() {
                return Ok(Err(Refusal::RegistryUnknown));
            }
            let prefix = format!("{org}/{slug}/");
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
            for entry in tt.org_tokens.range::<(&str, &str)>((org.as_str(), "")..)? {
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
                    rec.revoked = Some(*now);
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
            let uploads = ended.iter().filter_map(|id| UploadId::parse(id)).collect();
            Ok(Ok(Done::Deleted { revoked, uploads }))
        }
        Op::CreateToken(rec) => {
            if let Err(r) = check_new_token(tt, rec)? {
                return Ok(Err(r));
            }
            let id = rec.id.as_str();
            tt.tokens.insert(id, &records::encode_token(rec)[..])?;
            tt.hashes.insert(&rec.hash[..], id)?;
            let org = rec.org.as_deref().unwrap_or(ADMIN_ORG);
            tt.org_tokens.insert((org, id), ())?;
            Ok(Ok(Done::Unit))
        }
        Op::RevokeToken { id, now } => {
            let Some(mut rec) = tt.token(id)? else {
                return Ok(Err(Refusal::TokenUnknown));
            };
            if rec.revoked.is_none() {
                rec.revoked = Some(*now);
                tt.tokens
                    .insert(id.as_str(), &records::encode_token(&rec)[..])?;
            }
            Ok(Ok(Done::Token(rec)))
        }
        Op::TouchTokens(used) => {
            for (id, when) in used {
                let Some(mut rec) = tt.token(id)? else {
                    continue;
                };
                if rec.last_used.is_none_or(|l| l < *when) {
                    rec.last_used = Some(*when);
                    tt.tokens
                        .insert(id.as_str(), &records::encode_token(&rec)[..])?;
                }
            }
            Ok(Ok(Done::Unit))
        }
        Op::AppendAudit(rec) => Ok(Ok(Done::Seq(append_audit(tt, rec)?))),
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

/// The refusal a new token earns, if any.
fn check_new_token(
    tt: &TenancyTables<'_>,
    rec: &TokenRec,
) -> Result<Result<(), Refusal>, StoreError> {
    if !is_token_id(&rec.id) {
        return Ok(Err(invalid(format!(
            "token id {:?} must be 1 to 64 characters of [A-Za-z0-9_-]",
            rec.id
        ))));
    }
    match (rec.kind, &rec.org) {
        (TokenKind::Admin, Some(_)) => {
            return Ok(Err(invalid("an admin token belongs to no organisation")))
        }
        (TokenKind::Admin, None) if !rec.registries.is_empty() => {
            return Ok(Err(invalid("an admin token names no registries")))
        }
        (TokenKind::Org | TokenKind::Registry, None) => {
            return Ok(Err(invalid(
                "an organisation or registry token needs an organisation",
            )))
        }
        (TokenKind::Registry, Some(_)) if rec.registries.len() != 1 => {
            return Ok(Err(invalid("a registry token names exactly one registry")))
        }
        (TokenKind::Registry, Some(_)) if rec.write => {
            return Ok(Err(invalid("a registry token is read-only")))
        }
        _ => {}
    }
    if let Some(org) = &rec.org {
        if tt.orgs.get(org.as_str())?.is_none() {
            return Ok(Err(Refusal::OrgUnknown));
        }
        for g in &rec.registries {
            if tt.registries.get((org.as_str(), g.as_str()))?.is_none() {
                return Ok(Err(Refusal::RegistryUnknown));
            }
        }
    }
    if tt.tokens.get(rec.id.as_str())?.is_some() {
        return Ok(Err(invalid(format!(
            "token id {} is already taken; generate another",
            rec.id
        ))));
    }
    if tt.hashes.get(&rec.hash[..])?.is_some() {
        return Ok(Err(invalid(
            "a token with this secret is already stored; generate another secret",
        )));
    }
    Ok(Ok(()))
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
