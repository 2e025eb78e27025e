//! What is inside an image: the pure half of package details.
//!
//! Everything here works on `Read` and plain values, never on the store, so it is tested and
//! fuzzed without one:
//! - [`layer`] streams one layer blob (plain, gzip or zstd tar, sniffed from its first bytes)
//!   and lists its entries compactly, marking whiteouts and whatever it could not read;
//! - [`tree`] applies listings in order, honouring whiteouts and opaque directories, into
//!   the image's file system, and says per layer what was added, changed and removed;
//! - [`facts`] reads what a manifest and its config say (kind, platform, labels and
//!   annotations, the well-known fields, layers and external layers);
//! - [`osrelease`] reads an `os-release` file;
//! - [`archive`] lays out the Download, a tar that is both an OCI layout and a
//!   `docker save` archive, whose bytes stream from the store; [`checksum`] hashes it;
//! - [`version`] merges an image's listings into what the index records of a version.
//!
//! Hostile layers (paths with `..`, absolute paths, huge names, millions of entries, tar
//! bombs, corrupt compression) are listed as far as they are valid and marked: nothing here
//! panics on input, allocates without a bound, or touches a file system.

pub mod archive;
pub mod checksum;
pub mod facts;
pub mod layer;
pub mod osrelease;
pub mod tree;
pub mod version;

pub use archive::{ArchiveBlob, ArchiveError, ArchivePlan, ArchiveSpec, Piece};
pub use checksum::{archive_checksums, Checksums};
pub use facts::{ConfigFacts, Descriptor, Kind, ManifestFacts, Platform};
pub use layer::{
    scan_layer, Compression, EntryKind, EntryMeta, LayerEntry, LayerListing, ScanLimits,
};
pub use tree::{FsNode, FsTree, LayerChanges};
pub use version::{Distribution, LayerInfo, LayerState, VersionRecord};
