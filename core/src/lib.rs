//! `berth-core`: Berth's sans-IO protocol core — HTTP/1.1 framing and the OCI Distribution
//! Spec v1.1 — as a state machine.
//!
//! # What the core never does
//! It never touches a socket, a file, a thread or a clock (`.clippy.toml` bans them). The
//! server feeds it bytes, storage replies and the current time (`Input`), and drains what it
//! wants done (`Output`): bytes to send, blob ranges to send from storage, typed questions
//! for the storage layer (`Need`). Upload ids come from the storage layer, so the core needs
//! no entropy either. Every path through it is deterministic: the same inputs give the same
//! outputs, which is what the `testkit` simulator and the fuzz targets rely on.
//!
//! # The drive contract
//! ```text
//! loop {
//!     while conn.wants_read() {
//!         n = sock.read(conn.recv_buf());                 // 0 => Input::Eof
//!         conn.handle_input(Input::Recv { now, n });
//!         while let Some(out) = conn.poll_output() {      // drain after EVERY input
//!             Transmit(bytes)       => queue bytes
//!             SendBlob{blob, range} => queue that range of the pack
//!             Need(id, need)        => answer it (inline or on a worker), later
//!                                      conn.handle_input(Input::Reply { now, id, reply })
//!             Done(record)          => access log + metrics
//!             Close                 => flush the queue, then close the socket
//!         }
//!     }
//!     if conn.deadline() has passed => conn.handle_input(Input::Timeout(now)), drain
//! }
//! ```
//! - Every `/v2/` request first asks `Need::Authorize` (after its head is routed, before any
//!   other need, body byte or `100 Continue`); a refusal is answered as it comes, with no
//!   side effect. Requests outside `/v2/` (`Need::Web`) are the server's to authorize.
//! - One `Need` is outstanding at a time. Until its reply arrives `wants_read()` is false,
//!   no timer is armed, and pipelined requests wait in the receive buffer (backpressure).
//! - `Need::AppendUpload { bytes }` borrows the receive buffer: copy or write the bytes
//!   before the next `handle_input`. Request bodies are never gathered, except manifests
//!   (at most `Limits::manifest_bytes`) and web requests (`Limits::web_body_bytes`).
//! - A client mistake becomes a response, never an `Err`. `Reply::Failed` becomes a 500 and
//!   the connection lives on. `Err(Misuse)` from `handle_input` only ever means the server
//!   drove the connection wrongly (a reply to the wrong need, reading while not wanted).
//! - Panics are bugs: no input reaches an `unwrap`.
//!
//! # Layout
//! `connection` (phases, buffer, timers) hands bytes to `http` (head, body, response
//! framing) and requests to `endpoint` (the OCI endpoints, one file per resource), which
//! uses `oci` (names, digests, ranges, routes, error table, manifests, referrers). `need`
//! is the storage contract. Dependencies run one way: an endpoint step never calls the
//! connection, it returns what the connection does next (respond, park on a need, read
//! the body), and a parked step is continued only by the reply type of the need it asked.

#![forbid(unsafe_code)]

pub mod connection;
mod endpoint;
pub mod http;
pub mod limits;
pub mod need;
pub mod oci;
pub mod timer;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use connection::{Connection, Input, Misuse, Output, RequestRecord};
pub use endpoint::hash;
pub use limits::Limits;
pub use need::*;
