//! Content digests as the registry names them (`alg:hex`).

pub use berth_client::oci::sha256_digest;
use sha2::{Digest as _, Sha512};

/// `sha512:<128 hex>` of `bytes`.
pub fn sha512_digest(bytes: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(bytes)))
}

/// Digest of `bytes` with the algorithm named by `like` (`sha256:...` or `sha512:...`).
pub fn digest_like(like: &str, bytes: &[u8]) -> String {
    if like.starts_with("sha512:") {
        sha512_digest(bytes)
    } else {
        sha256_digest(bytes)
    }
}

/// The well-known empty blob.
pub const EMPTY_BLOB: &str =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The well-known empty JSON blob `{}`.
pub const EMPTY_JSON: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
