//! What tenancy records must look like (slugs, token ids and kinds), and the refusals a
//! write earns when it breaks a rule or meets the store's state.

use crate::kv::ReadableTable;

use super::records::{TenancyTables, TokenKind, TokenRec};
use crate::StoreError;

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

pub(crate) fn invalid(what: impl Into<String>) -> Refusal {
    Refusal::Invalid(what.into())
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

/// The refusal a new token earns, if any.
pub(crate) fn check_new_token(
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
