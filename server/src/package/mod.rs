//! Package details on the server's side: what the indexer (`indexer.rs`) records is read
//! back here for the package API, the CLI and the pages, and the Download is laid out from
//! it. The pure work (layers, trees, facts, the archive) is `berth_engine::package`.

pub mod api;
pub mod download;
pub mod downloads;
pub mod path;
pub mod view;
