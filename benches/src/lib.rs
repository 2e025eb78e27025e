//! Shared code of Berth's benchmarks: the load generator's connections (berth-client's), the OCI
//! requests it sends with the credentials they carry, and the payloads and statistics of a run;
//! for the package bench, the real server it starts (`berth`), the image layers it pushes
//! (`layers`) and GETs under load (`hammer`).
//!
//! The load generator compares; it never asserts a speed. It does check every answer it
//! gets (status, lengths, digests), so a figure is never the speed of an error page.
//! It only ever targets loopback addresses (see `target`).

pub mod berth;
pub mod client;
pub mod credentials;
pub mod hammer;
pub mod latency;
pub mod layers;
pub mod payload;
pub mod registry;
pub mod size;
pub mod stub;
pub mod target;
