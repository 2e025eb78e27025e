//! The OCI Distribution vocabulary: names, references, digests, ranges, routes, errors.

pub mod digest;
pub mod name;
pub mod reference;

pub use digest::{Algorithm, Digest, DigestError};
pub use name::RepoName;
pub use reference::{Reference, Tag, UploadId};
