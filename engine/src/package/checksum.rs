//! The Download's four checksums (MD5, SHA-1, SHA-256, SHA-512), computed in one pass.
//!
//! Every tag's archive of a version shares its first bytes (the blobs; see
//! [`ArchivePlan::shared_len`]): they are hashed once, and each archive continues from a
//! copy of that state, so a version with several tags costs one read of its blobs.

use std::io;
use std::ops::Range;

use md5::Md5;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use super::archive::{ArchivePlan, Piece};

/// The checksums of one Download file, lower-case hex.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    /// The file's length in bytes.
    pub size: u64,
    /// MD5.
    pub md5: String,
    /// SHA-1.
    pub sha1: String,
    /// SHA-256.
    pub sha256: String,
    /// SHA-512.
    pub sha512: String,
}

/// The four hashes running side by side.
#[derive(Clone, Default)]
pub struct Hashers {
    md5: Md5,
    sha1: Sha1,
    sha256: Sha256,
    sha512: Sha512,
    len: u64,
}

impl Hashers {
    /// Hashes the next bytes.
    pub fn update(&mut self, b: &[u8]) {
        self.md5.update(b);
        self.sha1.update(b);
        self.sha256.update(b);
        self.sha512.update(b);
        self.len += b.len() as u64;
    }

    /// The checksums of every byte hashed.
    pub fn finish(self) -> Checksums {
        Checksums {
            size: self.len,
            md5: hex::encode(self.md5.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
            sha256: hex::encode(self.sha256.finalize()),
            sha512: hex::encode(self.sha512.finalize()),
        }
    }
}

/// Reads `range` of the blob `digest`, handing its bytes on in order.
pub type BlobBytes<'a> = dyn FnMut(&str, Range<u64>, &mut dyn FnMut(&[u8])) -> io::Result<()> + 'a;

/// The checksums of each of `plans`, which must be the archives of one version under
/// different names (the same manifest, config and layers): their shared prefix is read once.
pub fn archive_checksums(
    plans: &[ArchivePlan],
    read: &mut BlobBytes<'_>,
) -> io::Result<Vec<Checksums>> {
    let Some(first) = plans.first() else {
        return Ok(Vec::new());
    };
    let shared = first.shared_len();
    let mut prefix = Hashers::default();
    feed(first, 0..shared, &mut prefix, read)?;
    let mut out = Vec::with_capacity(plans.len());
    for plan in plans {
        if plan.shared_len() != shared {
            return Err(io::Error::other(
                "archives of different contents hashed together",
            ));
        }
        let mut h = prefix.clone();
        feed(plan, shared..plan.len(), &mut h, read)?;
        out.push(h.finish());
    }
    Ok(out)
}

fn feed(
    plan: &ArchivePlan,
    range: Range<u64>,
    h: &mut Hashers,
    read: &mut BlobBytes<'_>,
) -> io::Result<()> {
    for piece in plan.pieces(range) {
        match piece {
            Piece::Bytes(b) => h.update(b),
            Piece::Blob { digest, range } => {
                let want = range.end - range.start;
                let before = h.len;
                read(digest, range, &mut |b| h.update(b))?;
                if h.len - before != want {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("blob {digest} is shorter than its descriptor says"),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::archive::{ArchiveBlob, ArchiveSpec};
    use std::collections::HashMap;

    fn blob(b: &[u8]) -> (ArchiveBlob, Vec<u8>) {
        let d = format!("sha256:{}", hex::encode(Sha256::digest(b)));
        (
            ArchiveBlob {
                digest: d,
                size: b.len() as u64,
            },
            b.to_vec(),
        )
    }

    #[test]
    fn each_tags_checksums_are_those_of_its_whole_archive() {
        let (m, mb) = blob(b"{\"schemaVersion\":2}");
        let (c, cb) = blob(b"{}");
        let (l, lb) = blob(&[7u8; 3000]);
        let store: HashMap<String, Vec<u8>> = [
            (m.digest.clone(), mb),
            (c.digest.clone(), cb),
            (l.digest.clone(), lb),
        ]
        .into_iter()
        .collect();
        let layers = [l.clone()];
        let spec = |tag| ArchiveSpec {
            manifest: m.clone(),
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json",
            config: c.clone(),
            layers: &layers,
            repository: "h/o/r/i",
            tag,
        };
        let plans: Vec<ArchivePlan> = [Some("1"), Some("latest"), None]
            .into_iter()
            .map(|t| ArchivePlan::new(&spec(t)).unwrap())
            .collect();
        let mut reads = 0;
        let mut read = |d: &str, r: Range<u64>, out: &mut dyn FnMut(&[u8])| {
            reads += 1;
            out(&store[d][r.start as usize..r.end as usize]);
            Ok(())
        };
        let sums = archive_checksums(&plans, &mut read).unwrap();
        assert_eq!(reads, 3, "each blob read once for all three archives");
        for (plan, sums) in plans.iter().zip(&sums) {
            let mut whole = Vec::new();
            for p in plan.pieces(0..plan.len()) {
                match p {
                    Piece::Bytes(b) => whole.extend_from_slice(b),
                    Piece::Blob { digest, range } => whole.extend_from_slice(
                        &store[digest][range.start as usize..range.end as usize],
                    ),
                }
            }
            assert_eq!(sums.size, whole.len() as u64);
            assert_eq!(sums.sha256, hex::encode(Sha256::digest(&whole)));
            assert_eq!(sums.sha512, hex::encode(Sha512::digest(&whole)));
            assert_eq!(sums.sha1, hex::encode(Sha1::digest(&whole)));
            assert_eq!(sums.md5, hex::encode(Md5::digest(&whole)));
        }
        assert_ne!(sums[0].sha256, sums[1].sha256);
        // A blob shorter than its descriptor is an error, not a wrong checksum.
        let mut short = |_: &str, _: Range<u64>, out: &mut dyn FnMut(&[u8])| {
            out(b"x");
            Ok(())
        };
        assert!(archive_checksums(&plans[..1], &mut short).is_err());
    }
}
