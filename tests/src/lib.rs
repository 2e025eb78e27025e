//! Harness for end-to-end tests: start the real `berth` binary on a free loopback port,
//! provision a tenant (organisation, private registry, write token), talk to it over raw
//! HTTP/1.1 with credentials, build OCI content on disk, and drive real clients (skopeo,
//! podman, docker, containerd's ctr) against it, and open its web pages in a real headless
//! browser (chromium through chromedriver). For the distributed mode it also starts the
//! services those nodes stand on: a PostgreSQL server, a Garage (S3) cluster, and a
//! round-robin TCP front for several nodes.
//!
//! What it never does: link the server crates. Every test goes through the binary and a
//! socket, as a user's client would, so a test here fails exactly when a user would notice.
//! Each test owns its server, its data folder and its client processes, and cleans them up on
//! drop, so tests run in parallel and in any order.

pub mod api;
pub mod auth;
pub mod binary;
pub mod browser;
pub mod clients;
pub mod content;
pub mod digest;
pub mod front;
pub mod garage;
pub mod http;
pub mod layout;
pub mod postgres;
pub mod record;
pub mod registry;
pub mod tool;
pub mod wait;

pub use browser::Browser;
pub use content::{Blob, Descriptor, Image};
pub use digest::{sha256_digest, sha512_digest};
pub use front::Front;
pub use garage::Garage;
pub use http::{Client, Expect, Request, Response};
pub use postgres::Postgres;
pub use registry::{repo, Registry, ORG, REGISTRY};
pub use tool::{require_tool, Cmd};
