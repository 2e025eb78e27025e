//! Who a credential names once it is verified ([`Caller`]), why one is refused
//! ([`AuthError`]), and the check every use of a stored token repeats (revoked, expired):
//! the authority (`mod.rs`) and the connection's cache (`cache.rs`) both rely on them.

use super::bearer::Claims;
use super::policy::Principal;
use berth_engine::{StoreError, TokenRec};
use std::sync::Arc;

/// An authenticated caller: who, and for a bearer token what its claims allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    /// `Some` for a bearer token: the most it grants, whatever the principal could do.
    /// Shared (like the token record), so a connection's cached caller is cloned per
    /// request without copying either.
    pub claims: Option<Arc<Claims>>,
}

impl Caller {
    pub const ANONYMOUS: Caller = Caller {
        principal: Principal::Anonymous,
        claims: None,
    };
}

/// Why credentials were refused.
#[derive(Debug)]
pub enum AuthError {
    /// Bad, unknown, expired, revoked or tampered; the text names which (no secret in it).
    Invalid(&'static str),
    Store(StoreError),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Store(e)
    }
}

/// A refused access token: revoked or expired take effect at once.
pub fn check_valid(rec: &TokenRec, unix: u64) -> Result<(), AuthError> {
    if rec.revoked.is_some() {
        return Err(AuthError::Invalid("token revoked"));
    }
    if rec.expires.is_some_and(|x| unix >= x) {
        return Err(AuthError::Invalid("token expired"));
    }
    Ok(())
}
