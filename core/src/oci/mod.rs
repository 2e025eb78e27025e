//! The OCI Distribution vocabulary: names, references, digests, ranges, routes, errors,
//! manifests and the referrers index.

pub mod digest;
pub mod error;
pub mod manifest;
pub mod name;
pub mod range;
pub mod reference;
pub mod referrers;
pub mod route;

pub use digest::{Algorithm, Digest, DigestError};
pub use error::ErrorCode;
pub use name::RepoName;
pub use reference::{Reference, Tag, UploadId};
