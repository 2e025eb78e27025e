//! What an endpoint step returns to the connection (`Next`), and how a parked step gets
//! the reply to its need (`Await`, `Pending`).
//!
//! A step that asks storage something returns `Next::ask(ask, then)`: `ask` names the
//! reply type `R` of its need (`ask.rs`), and `then` is a continuation whose `resume` takes
//! exactly an `R`. The pending state is that continuation, type-erased only after the
//! compiler has checked the pair, so a reply meant for one step cannot reach the code of
//! another: the (pending, reply) pairs that could be mismatched are not written anywhere.
//! What stays is the server answering with a `Reply` variant the need does not name; that
//! is caught in one place, `unanswered`, which answers 500 and closes.

use super::ask::{Ask, FromReply};
use super::read::{Body, Upload};
use super::respond::{self, Response};
use crate::limits::Limits;
use crate::need::{Need, Reply};
use crate::oci::error::ErrorCode;

/// What the connection does next for the current request.
pub(crate) enum Next {
    /// Finish the request with this response.
    Respond(Response),
    /// Finish it with this response and close the connection after it: the server broke
    /// the reply contract, so nothing more on this connection is to be trusted.
    Fail(Response),
    /// Emit the need and park until its reply, which goes to the pending step alone.
    Park(Need<'static>, Pending),
    /// Read the request body.
    Read(Body),
    /// `n` upload bytes handed out in `Need::AppendUpload` are stored: drop them from the
    /// buffer and stream on into the upload.
    Appended(usize, Upload),
}

impl Next {
    /// Asks storage, continuing in `then` with the reply: the only way an endpoint parks.
    pub(crate) fn ask<A: Await>(ask: Ask<A::Reply>, then: A) -> Next {
        Next::Park(ask.into_need(), Pending::new(then))
    }
}

impl From<Response> for Next {
    fn from(r: Response) -> Next {
        Next::Respond(r)
    }
}

/// What a step may know of the connection besides its own state.
pub(crate) struct Cx<'a> {
    pub limits: &'a Limits,
    /// Body bytes of the request not yet read: `None` if there are none left, `Some(None)`
    /// when the framing does not say how many (chunked).
    pub unread: Option<Option<u64>>,
}

impl Cx<'_> {
    /// Whether the request still has body bytes to read.
    pub(crate) fn body_pending(&self) -> bool {
        self.unread.is_some()
    }

    /// How many body bytes remain, when the framing says.
    pub(crate) fn body_len(&self) -> Option<u64> {
        self.unread.flatten()
    }

    /// A page size: the client's `n`, at most `page_size`.
    pub(crate) fn page_n(&self, n: Option<usize>) -> usize {
        let cap = self.limits.page_size;
        n.map_or(cap, |n| n.min(cap))
    }
}

/// A step parked on a need, continued by the need's reply. `Send`: a connection moves
/// between threads with its parked step.
pub(crate) trait Await: Sized + Send + 'static {
    /// The reply payload it continues with; fixed by the need it was parked on.
    type Reply: FromReply;

    fn resume(self, reply: Self::Reply, cx: &Cx<'_>) -> Next;
}

/// The step waiting for the outstanding need's reply.
pub(crate) struct Pending(Box<dyn Resume + Send>);

impl Pending {
    /// Outside `Next::ask` only for the append, whose need borrows the receive buffer and
    /// so is written by the connection (`uploads::appending`).
    pub(super) fn new<A: Await>(step: A) -> Pending {
        Pending(Box::new(step))
    }

    /// Continues the step with the reply to its need.
    pub(crate) fn resume(self, reply: Reply, cx: &Cx<'_>) -> Next {
        self.0.resume(reply, cx)
    }
}

/// `Await` with the reply still in the server's enum: what lets `Pending` hold any step.
trait Resume {
    fn resume(self: Box<Self>, reply: Reply, cx: &Cx<'_>) -> Next;
}

impl<A: Await> Resume for A {
    fn resume(self: Box<Self>, reply: Reply, cx: &Cx<'_>) -> Next {
        match A::Reply::from_reply(reply) {
            Ok(r) => Await::resume(*self, r, cx),
            Err(other) => unanswered(other),
        }
    }
}

/// A reply that is not the payload its step waits for: storage failed, or is full, or the
/// server answered with the wrong variant (its bug, not the peer's: fail this request
/// visibly rather than guess).
fn unanswered(reply: Reply) -> Next {
    match reply {
        Reply::Failed(msg) => respond::code(ErrorCode::Unknown, Some(msg)).into(),
        // DENIED: the spec's codes are a closed list, and this one is what a refusal is.
        Reply::StoreFull(msg) => respond::message(507, ErrorCode::Denied, &msg).into(),
        Reply::Unavailable(msg) => respond::unavailable(&msg).into(),
        other => {
            let detail = format!(
                "storage answered with an unexpected reply: {}",
                reply_name(&other)
            );
            Next::Fail(respond::code(ErrorCode::Unknown, Some(detail)))
        }
    }
}

fn reply_name(r: &Reply) -> &'static str {
    match r {
        Reply::Blob(_) => "Blob",
        Reply::Upload(_) => "Upload",
        Reply::Finished(_) => "Finished",
        Reply::Mount(_) => "Mount",
        Reply::Manifest(_) => "Manifest",
        Reply::ManifestPut(_) => "ManifestPut",
        Reply::Deleted(_) => "Deleted",
        Reply::Tags(_) => "Tags",
        Reply::Catalog(_) => "Catalog",
        Reply::Referrers(_) => "Referrers",
        Reply::Web(_) => "Web",
        Reply::Auth(_) => "Auth",
        Reply::AppendRefused(_) => "AppendRefused",
        Reply::Failed(_) => "Failed",
        Reply::StoreFull(_) => "StoreFull",
        Reply::Unavailable(_) => "Unavailable",
    }
}
