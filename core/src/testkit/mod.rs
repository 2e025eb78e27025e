//! Test support (feature `testkit`): `ModelStore` (the storage oracle), `Harness` (one
//! connection driven to quiescence against it), `Sim` (many connections, seeded random
//! byte delivery and virtual time) and a scripted client (`client`).

pub mod client;
pub mod model;
pub mod sim;

pub use client::{parse_responses, Request, Response};
pub use model::{AuthPolicy, AuthRules, Grants, ModelStore};
pub use sim::Sim;

use crate::connection::{Connection, Input, Output, RequestRecord};
use crate::limits::Limits;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A fixed origin for virtual time.
pub fn epoch() -> Instant {
    use std::sync::OnceLock;
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    // The one real clock read in the testkit: virtual time needs some origin.
    #[allow(clippy::disallowed_methods)]
    *EPOCH.get_or_init(Instant::now)
}

/// One connection and a `ModelStore`, driven synchronously: every need is answered at
/// once and every output collected.
pub struct Harness {
    pub conn: Connection,
    pub store: ModelStore,
    pub now: Instant,
    /// Everything the connection sent, blob bytes included.
    pub wire: Vec<u8>,
    pub records: Vec<RequestRecord>,
    pub closed: bool,
    /// Storage needs answered so far (for assertions about what was asked);
    /// `Need::Authorize` is left out here and kept in `asked` and `store.auth_log`.
    pub needs: Vec<String>,
    /// Every need answered so far, `Authorize` included, in order.
    pub asked: Vec<&'static str>,
    /// Whether each request sent so far was a HEAD, to parse `wire`.
    pub heads: Vec<bool>,
    /// Largest piece delivered per `Recv`.
    pub piece: usize,
    /// Answers a need instead of the store when it returns `Some` (replies the model
    /// would never give: a session gone mid-request, a failing sync).
    pub intercept: Option<Intercept>,
}

/// See [`Harness::intercept`].
pub type Intercept = Box<dyn FnMut(&crate::need::Need<'_>) -> Option<crate::need::Reply>>;

impl Harness {
    pub fn new() -> Harness {
        Harness::with_limits(Limits::default())
    }

    pub fn with_limits(limits: Limits) -> Harness {
        let now = epoch();
        Harness {
            conn: Connection::new(Arc::new(limits), now),
            store: ModelStore::new(),
            now,
            wire: Vec::new(),
            records: Vec::new(),
            closed: false,
            needs: Vec::new(),
            asked: Vec::new(),
            heads: Vec::new(),
            piece: usize::MAX,
            intercept: None,
        }
    }

    /// Delivers `bytes` as far as the connection reads them; returns how many it took.
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut off = 0;
        self.drain();
        while off < bytes.len() && self.conn.wants_read() {
            let buf = self.conn.recv_buf();
            let n = buf.len().min(bytes.len() - off).min(self.piece);
            if n == 0 {
                break;
            }
            buf[..n].copy_from_slice(&bytes[off..off + n]);
            off += n;
            self.conn
                .handle_input(Input::Recv { now: self.now, n })
                .expect("the harness drives the connection correctly");
            self.drain();
        }
        off
    }

    pub fn eof(&mut self) {
        if !self.closed {
            self.conn
                .handle_input(Input::Eof { now: self.now })
                .expect("the harness drives the connection correctly");
            self.drain();
        }
    }

    /// Moves virtual time forward by `d` and fires an expired deadline.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        if let Some(at) = self.conn.deadline() {
            if at <= self.now && !self.closed {
                self.conn
                    .handle_input(Input::Timeout(self.now))
                    .expect("the harness drives the connection correctly");
                self.drain();
            }
        }
    }

    /// Polls every output, answering needs from the store, until the connection is idle.
    pub fn drain(&mut self) {
        loop {
            let mut reply = None;
            while let Some(out) = self.conn.poll_output() {
                match out {
                    Output::Transmit(b) => self.wire.extend_from_slice(&b),
                    Output::SendBlob { blob, range } => {
                        self.wire
                            .extend_from_slice(self.store.blob_bytes(blob, range));
                    }
                    Output::Need(id, need) => {
                        let name = need_name(&need);
                        self.asked.push(name);
                        if name != "Authorize" {
                            self.needs.push(name.to_owned());
                        }
                        let instead = self.intercept.as_mut().and_then(|f| f(&need));
                        let r = instead.unwrap_or_else(|| self.store.answer(&need));
                        reply = Some((id, r));
                    }
                    Output::Done(r) => self.records.push(r),
                    Output::Close => self.closed = true,
                }
            }
            match reply {
                Some((id, reply)) => self
                    .conn
                    .handle_input(Input::Reply {
                        now: self.now,
                        id,
                        reply,
                    })
                    .expect("the harness answers the outstanding need"),
                None => break,
            }
        }
    }

    /// Sends one request; returns its response (panics if none came).
    pub fn send(&mut self, req: &Request) -> Response {
        let before = self.responses().len();
        self.heads.push(req.is_head());
        self.feed(&req.to_bytes());
        let rs = self.responses();
        assert!(
            rs.len() > before,
            "no response to {} {}",
            req.method,
            req.target
        );
        rs[before].clone()
    }

    /// Opens an upload session in `repo` (`POST .../blobs/uploads/`); returns its Location.
    pub fn upload_location(&mut self, repo: &str) -> String {
        self.send(&Request::post(format!("/v2/{repo}/blobs/uploads/")))
            .header("Location")
            .expect("a POST to uploads answers with a Location")
            .to_owned()
    }

    /// Sends raw bytes as requests (`heads` lists which are HEAD requests).
    pub fn send_raw(&mut self, bytes: &[u8], heads: &[bool]) -> Vec<Response> {
        let before = self.responses().len();
        self.heads.extend_from_slice(heads);
        self.feed(bytes);
        self.responses()[before..].to_vec()
    }

    /// Every complete response on the wire so far.
    pub fn responses(&self) -> Vec<Response> {
        parse_responses(&self.wire, &self.heads).0
    }
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

/// The variant name of a need, for assertions.
pub fn need_name(n: &crate::need::Need<'_>) -> &'static str {
    use crate::need::Need::*;
    match n {
        StatBlob { .. } => "StatBlob",
        DeleteBlob { .. } => "DeleteBlob",
        StartUpload { .. } => "StartUpload",
        UploadStatus { .. } => "UploadStatus",
        AppendUpload { .. } => "AppendUpload",
        SyncUpload { .. } => "SyncUpload",
        FinishUpload { .. } => "FinishUpload",
        CancelUpload { .. } => "CancelUpload",
        MountBlob { .. } => "MountBlob",
        GetManifest { .. } => "GetManifest",
        PutManifest { .. } => "PutManifest",
        DeleteManifest { .. } => "DeleteManifest",
        ListTags { .. } => "ListTags",
        Referrers { .. } => "Referrers",
        Catalog { .. } => "Catalog",
        Web(_) => "Web",
        Authorize(_) => "Authorize",
    }
}
