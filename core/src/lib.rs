//! `berth-core`: Berth's sans-IO protocol core — HTTP/1.1 framing and the OCI Distribution
//! Spec v1.1 — as a state machine.
//!
//! The core never touches a socket, a file, a thread or a clock. The server feeds it bytes,
//! storage replies and the current time (`Input`), and drains what it wants done
//! (`Output`): bytes to send, blob ranges to send from storage, typed questions for the
//! storage layer (`Need`). See DESIGN.md for the whole map.

#![forbid(unsafe_code)]

pub mod connection;
pub mod limits;
pub mod need;
pub mod oci;

pub use connection::{Connection, Input, Misuse, Output, RequestRecord};
pub use limits::Limits;
pub use need::*;
