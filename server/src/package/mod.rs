//! Package details on the server's side: what the indexer (`indexer.rs`) records is read
//! back here for the package API, the CLI and the pages, and the Download is laid out from
//! it. The pure work (layers, trees, facts, the archive) is `berth_engine::package`.

pub mod api;
pub mod download;
pub mod downloads;
pub mod path;
pub mod reply;
pub mod view;

/// A digest shortened to its algorithm and first 12 hex digits (`sha256:0123456789ab`), as
/// the CLI and the pages show one where the whole would not fit.
pub fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}", &hex[..12]),
        _ => d.to_owned(),
    }
}
