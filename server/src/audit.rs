//! An organisation's audit log (AUTH-DESIGN.md, "Audit log"): who (token id, "admin" or
//! "anonymous"), what, on which target. Pushes and deletes of content hand their entries
//! to the engine with the change ([`entry`]), so both commit in one transaction. The
//! management API's changes are recorded after they happened ([`record`]); a failed
//! append there is logged loudly rather than undoing the change.

use crate::auth::policy::Principal;
use crate::auth::Ctx;
use berth_engine::{AuditRec, Engine};

pub fn record(
    e: &Engine,
    ctx: &Ctx,
    org: &str,
    who: &Principal,
    action: &str,
    target: &str,
    detail: &str,
) {
    let rec = entry(ctx.unix, org, &who.actor(), action, target, detail);
    if let Err(err) = e.append_audit(rec) {
        tracing::error!(error = %err, org, action, target, "cannot append to the audit log");
    }
}

/// An entry to hand to the engine with the change it records, so both commit together.
pub fn entry(
    unix: u64,
    org: &str,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> AuditRec {
    AuditRec {
        seq: 0,
        time: unix,
        org: org.to_string(),
        actor: actor.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        detail: detail.to_string(),
    }
}
