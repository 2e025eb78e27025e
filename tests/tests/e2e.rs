//! Every end-to-end test in one test binary: each file below would otherwise be its own
//! crate with its own (LTO) link, which costs more CI time than the tests themselves.
//! Run one group with `cargo nextest run -p berth-tests conformance_push::` (or `skopeo::`,
//! `crash::`, ...). The binary under test is found as `berth_tests::binary` says.

mod auth;
mod browser;
mod browser_pages;
mod conformance_discovery;
mod conformance_management;
mod conformance_pull;
mod conformance_push;
mod crash;
mod distributed;
mod distributed_infra;
mod docker;
mod object_fs;
mod objects;
mod oras;
mod package_cli;
mod podman;
mod robustness;
mod shared_metadata;
mod skopeo;
