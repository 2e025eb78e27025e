//! Tenancy records (organisations, registries, tokens, audit entries) and how they are
//! stored: their encodings, the tables a batch opens to write them,
//! and the audit log's append (which every audited write of any kind makes, so the
//! committer reaches it here without depending on the tenancy operations).

use crate::kv::{ReadableTable, Table, WriteTransaction};

use crate::schema::{self, put_bytes, Corrupt, Reader};
use crate::StoreError;

/// Who may pull from a registry without credentials.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Only tokens of its organisation (and the admin).
    #[default]
    Private,
    /// Anyone may pull; pushing still needs a token.
    Public,
}

/// An organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgRec {
    /// See [`is_slug`].
    pub slug: String,
    /// Unix seconds.
    pub created: u64,
}

/// A registry: a namespace of repositories `{org}/{slug}/{image}` inside one organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryRec {
    /// The owning organisation's slug; it must exist.
    pub org: String,
    /// Unique in the organisation; see [`is_slug`] and [`slug_of`].
    pub slug: String,
    /// The display name the slug was derived from.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Private unless made public.
    pub visibility: Visibility,
    /// Unix seconds.
    pub created: u64,
}

/// What a token was issued as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// `berth_adm_`: everything, no organisation.
    Admin,
    /// `berth_pat_`: an organisation's API access token.
    Org,
    /// `berth_rt_`: read-only, one registry.
    Registry,
}

/// An access token as stored. The secret itself is never stored, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRec {
    /// `tok_` + 16 hex digits in practice; `[A-Za-z0-9_-]`, 1..=64 bytes.
    pub id: String,
    /// Admin, org or registry token.
    pub kind: TokenKind,
    /// `None` exactly for admin tokens.
    pub org: Option<String>,
    /// `read_packages`.
    pub read: bool,
    /// `write_packages` (the server treats it as implying read).
    pub write: bool,
    /// Registry slugs of `org` the token is limited to; empty means all of them. A registry
    /// token names exactly one.
    pub registries: Vec<String>,
    /// Free text.
    pub description: String,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds after which the token is refused.
    pub expires: Option<u64>,
    /// Unix seconds of the last use written back (see [`Engine::touch_tokens`]).
    pub last_used: Option<u64>,
    /// Unix seconds of the (first) revocation.
    pub revoked: Option<u64>,
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
}

/// One audit log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRec {
    /// Assigned when the entry is appended (1, 2, … per organisation); ignored on input.
    pub seq: u64,
    /// Unix seconds.
    pub time: u64,
    /// The organisation whose log this belongs to.
    pub org: String,
    /// Token id, `"anonymous"` or `"admin"`.
    pub actor: String,
    /// `manifest.push`, `token.revoke`, …
    pub action: String,
    /// What was acted on (repository, token id, registry slug, …).
    pub target: String,
    /// Free text.
    pub detail: String,
}

fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        None => out.extend_from_slice(&[0; 9]),
        Some(x) => {
            out.push(1);
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
}

impl Reader<'_> {
    /// Flag u8 (0/1) then a u64 LE, always 9 bytes.
    fn opt_u64(&mut self, what: &'static str) -> Result<Option<u64>, Corrupt> {
        let flag = self.u8(what)?;
        let v = self.u64(what)?;
        match flag {
            0 => Ok(None),
            1 => Ok(Some(v)),
            _ => Err(Corrupt(what)),
        }
    }
    fn end(self, what: &'static str) -> Result<(), Corrupt> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Corrupt(what))
        }
    }
}

/// created u64 LE. (The slug is the key.)
pub(crate) fn encode_org(o: &OrgRec) -> [u8; 8] {
    o.created.to_le_bytes()
}

pub(crate) fn decode_org(slug: &str, b: &[u8]) -> Result<OrgRec, Corrupt> {
    let mut r = Reader(b);
    let created = r.u64("organisation row")?;
    r.end("organisation row")?;
    Ok(OrgRec {
        slug: slug.to_owned(),
        created,
    })
}

const VIS_PRIVATE: u8 = 0;
const VIS_PUBLIC: u8 = 1;

/// created u64 LE, visibility u8 (0 private, 1 public), then name and description (u32 LE
/// length + UTF-8 each). (Org and slug are the key.)
pub(crate) fn encode_registry(g: &RegistryRec) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + g.name.len() + g.description.len());
    out.extend_from_slice(&g.created.to_le_bytes());
    out.push(match g.visibility {
        Visibility::Private => VIS_PRIVATE,
        Visibility::Public => VIS_PUBLIC,
    });
    put_bytes(&mut out, g.name.as_bytes());
    put_bytes(&mut out, g.description.as_bytes());
    out
}

pub(crate) fn decode_registry(org: &str, slug: &str, b: &[u8]) -> Result<RegistryRec, Corrupt> {
    let what = "registry row";
    let mut r = Reader(b);
    let created = r.u64(what)?;
    let visibility = match r.u8(what)? {
        VIS_PRIVATE => Visibility::Private,
        VIS_PUBLIC => Visibility::Public,
        _ => return Err(Corrupt(what)),
    };
    let name = r.string(what)?;
    let description = r.string(what)?;
    r.end(what)?;
    Ok(RegistryRec {
        org: org.to_owned(),
        slug: slug.to_owned(),
        name,
        description,
        visibility,
        created,
    })
}

const KIND_ADMIN: u8 = 1;
const KIND_ORG: u8 = 2;
const KIND_REGISTRY: u8 = 3;
const SCOPE_READ: u8 = 1;
const SCOPE_WRITE: u8 = 2;

/// kind u8 (1 admin, 2 org, 3 registry), scopes u8 (bit 0 read, bit 1 write), hash
/// 32 bytes, created u64 LE, then expires, last_used, revoked (flag u8 0/1 + u64 LE each,
/// 9 bytes whether set or not), org (flag u8 0/1 [+ u32 LE length + UTF-8]), description
/// (u32 LE length + UTF-8), registries (u32 LE count, then u32 LE length + UTF-8 each).
/// (The id is the key.)
pub(crate) fn encode_token(t: &TokenRec) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + t.description.len() + 16 * t.registries.len());
    out.push(match t.kind {
        TokenKind::Admin => KIND_ADMIN,
        TokenKind::Org => KIND_ORG,
        TokenKind::Registry => KIND_REGISTRY,
    });
    let mut scopes = 0u8;
    if t.read {
        scopes |= SCOPE_READ;
    }
    if t.write {
        scopes |= SCOPE_WRITE;
    }
    out.push(scopes);
    out.extend_from_slice(&t.hash);
    out.extend_from_slice(&t.created.to_le_bytes());
    put_opt_u64(&mut out, t.expires);
    put_opt_u64(&mut out, t.last_used);
    put_opt_u64(&mut out, t.revoked);
    match &t.org {
        None => out.push(0),
        Some(o) => {
            out.push(1);
            put_bytes(&mut out, o.as_bytes());
        }
    }
    put_bytes(&mut out, t.description.as_bytes());
    // A token names at most the registries of one org; far below u32::MAX.
    let n = u32::try_from(t.registries.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
    for g in t.registries.iter().take(n as usize) {
        put_bytes(&mut out, g.as_bytes());
    }
    out
}

pub(crate) fn decode_token(id: &str, b: &[u8]) -> Result<TokenRec, Corrupt> {
    let what = "token row";
    let mut r = Reader(b);
    let kind = match r.u8(what)? {
        KIND_ADMIN => TokenKind::Admin,
        KIND_ORG => TokenKind::Org,
        KIND_REGISTRY => TokenKind::Registry,
        _ => return Err(Corrupt(what)),
    };
    let scopes = r.u8(what)?;
    if scopes & !(SCOPE_READ | SCOPE_WRITE) != 0 {
        return Err(Corrupt(what));
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(r.take(32, what)?);
    let created = r.u64(what)?;
    let expires = r.opt_u64(what)?;
    let last_used = r.opt_u64(what)?;
    let revoked = r.opt_u64(what)?;
    let org = match r.u8(what)? {
        0 => None,
        1 => Some(r.string(what)?),
        _ => return Err(Corrupt(what)),
    };
    let description = r.string(what)?;
    let n = r.u32(what)?;
    // Each entry takes at least its 4-byte length: bound the allocation by what is there.
    if u64::from(n) * 4 > r.0.len() as u64 {
        return Err(Corrupt(what));
    }
    let mut registries = Vec::with_capacity(n as usize);
    for _ in 0..n {
        registries.push(r.string(what)?);
    }
    r.end(what)?;
    Ok(TokenRec {
        id: id.to_owned(),
        kind,
        org,
        read: scopes & SCOPE_READ != 0,
        write: scopes & SCOPE_WRITE != 0,
        registries,
        description,
        created,
        expires,
        last_used,
        revoked,
        hash,
    })
}

/// time u64 LE, then actor, action, target, detail (u32 LE length + UTF-8 each). (Org and
/// sequence number are the key.)
pub(crate) fn encode_audit(a: &AuditRec) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(24 + a.actor.len() + a.action.len() + a.target.len() + a.detail.len());
    out.extend_from_slice(&a.time.to_le_bytes());
    for s in [&a.actor, &a.action, &a.target, &a.detail] {
        put_bytes(&mut out, s.as_bytes());
    }
    out
}

pub(crate) fn decode_audit(org: &str, seq: u64, b: &[u8]) -> Result<AuditRec, Corrupt> {
    let what = "audit row";
    let mut r = Reader(b);
    let time = r.u64(what)?;
    let actor = r.string(what)?;
    let action = r.string(what)?;
    let target = r.string(what)?;
    let detail = r.string(what)?;
    r.end(what)?;
    Ok(AuditRec {
        seq,
        time,
        org: org.to_owned(),
        actor,
        action,
        target,
        detail,
    })
}

/// The tenancy tables, opened only by batches holding a tenancy write (blob and manifest
/// batches do not pay for them) and by `open`, which creates them.
pub(crate) struct TenancyTables<'t> {
    pub(crate) orgs: Table<'t, &'static str, &'static [u8]>,
    pub(crate) registries: Table<'t, (&'static str, &'static str), &'static [u8]>,
    pub(crate) tokens: Table<'t, &'static str, &'static [u8]>,
    pub(crate) hashes: Table<'t, &'static [u8], &'static str>,
    pub(crate) org_tokens: Table<'t, (&'static str, &'static str), ()>,
    pub(crate) audit: Table<'t, (&'static str, u64), &'static [u8]>,
}

impl<'t> TenancyTables<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<TenancyTables<'t>, StoreError> {
        Ok(TenancyTables {
            orgs: txn.open_table(schema::ORGS)?,
            registries: txn.open_table(schema::REGISTRIES)?,
            tokens: txn.open_table(schema::TOKENS)?,
            hashes: txn.open_table(schema::TOKEN_HASHES)?,
            org_tokens: txn.open_table(schema::ORG_TOKENS)?,
            audit: txn.open_table(schema::AUDIT)?,
        })
    }

    pub(crate) fn token(&self, id: &str) -> Result<Option<TokenRec>, StoreError> {
        let rec = self
            .tokens
            .get(id)?
            .map(|v| decode_token(id, v.value()))
            .transpose()?;
        Ok(rec)
    }
}

/// Appends `rec` to its organisation's log in the batch's transaction; its sequence number.
pub(crate) fn append_audit(tt: &mut TenancyTables<'_>, rec: &AuditRec) -> Result<u64, StoreError> {
    let org = rec.org.as_str();
    let last = tt
        .audit
        .range::<(&str, u64)>((org, 0)..=(org, u64::MAX))?
        .next_back()
        .transpose()?
        .map_or(0, |(k, _)| k.value().1);
    let seq = last
        .checked_add(1)
        .ok_or_else(|| StoreError::new(format!("audit sequence of {org:?} exhausted")))?;
    tt.audit.insert((org, seq), &encode_audit(rec)[..])?;
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_token() -> TokenRec {
        TokenRec {
            id: "tok_0123456789abcdef".into(),
            kind: TokenKind::Org,
            org: Some("acme".into()),
            read: true,
            write: true,
            registries: vec!["web".into(), "api-v2".into()],
            description: "ci".into(),
            created: 10,
            expires: Some(1 << 40),
            last_used: None,
            revoked: Some(12),
            hash: [7; 32],
        }
    }

    #[test]
    fn tenancy_encodings_round_trip() {
        let o = OrgRec {
            slug: "acme".into(),
            created: 5,
        };
        assert_eq!(decode_org("acme", &encode_org(&o)).unwrap(), o);
        let g = RegistryRec {
            org: "acme".into(),
            slug: "web".into(),
            name: "Web".into(),
            description: "the site".into(),
            visibility: Visibility::Public,
            created: 6,
        };
        assert_eq!(
            decode_registry("acme", "web", &encode_registry(&g)).unwrap(),
            g
        );
        let t = sample_token();
        assert_eq!(decode_token(&t.id, &encode_token(&t)).unwrap(), t);
        let admin = TokenRec {
            kind: TokenKind::Admin,
            org: None,
            read: false,
            write: false,
            registries: vec![],
            expires: None,
            revoked: None,
            last_used: Some(3),
            ..sample_token()
        };
        assert_eq!(
            decode_token(&admin.id, &encode_token(&admin)).unwrap(),
            admin
        );
        let a = AuditRec {
            seq: 9,
            time: 8,
            org: "acme".into(),
            actor: "admin".into(),
            action: "registry.create".into(),
            target: "web".into(),
            detail: "".into(),
        };
        assert_eq!(decode_audit("acme", 9, &encode_audit(&a)).unwrap(), a);
    }

    #[test]
    fn truncated_or_padded_tenancy_values_decode_to_corrupt() {
        let t = sample_token();
        let full = encode_token(&t);
        for cut in 0..full.len() {
            assert!(decode_token("x", &full[..cut]).is_err(), "cut {cut}");
        }
        let mut long = full.clone();
        long.push(0);
        assert!(decode_token("x", &long).is_err());
        // a registry count far larger than the bytes that follow allocates nothing
        // (the registries take count 4 + "web" 4+3 + "api-v2" 4+6 = 21 bytes at the end)
        let mut lie = full[..full.len() - 21].to_vec();
        lie.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_token("x", &lie).is_err());
        assert!(decode_org("a", &[0; 7]).is_err());
        assert!(decode_registry("a", "b", &[0; 9]).is_err());
    }
}
