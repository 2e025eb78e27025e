//! Appending to an organisation's audit log (AUTH-DESIGN.md, "Audit log"): who (token id,
//! "admin" or "anonymous"), what, on which target. The change it records has already
//! happened; a failed append is logged loudly rather than undoing it.

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
    record_actor(e, ctx.unix, org, &who.actor(), action, target, detail);
}

pub fn record_actor(
    e: &Engine,
    unix: u64,
    org: &str,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) {
    let rec = AuditRec {
        seq: 0,
        time: unix,
        org: org.to_string(),
        actor: actor.to_string(),
        action: action.to_string(),
        target: target.to_string(),
        detail: detail.to_string(),
    };
    if let Err(err) = e.append_audit(rec) {
        tracing::error!(error = %err, org, action, target, "cannot append to the audit log");
    }
}
