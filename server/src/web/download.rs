//! The Download's bytes as web pieces: the archive's small members from its plan, its blobs
//! as ranges of their packs, so the tar goes out from the store as a blob GET does, with no
//! copy of a layer anywhere and memory flat whatever the image's size.

use crate::nouns::blob_handle;
use berth_core::WebPiece;
use berth_engine::package::{ArchivePlan, Piece};
use berth_engine::{BlobKey, BlobLoc, Engine, StoreError};
use bytes::Bytes;
use std::ops::Range;

/// Why a range of an archive cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum PiecesError {
    /// A blob the plan names is not stored in the repository: deleted (and collected)
    /// since the plan was laid out.
    #[error("blob {0} of the download is no longer stored")]
    Missing(String),
    /// The stored blob is shorter than the archive's member, so sending the range would
    /// read past it into whatever follows in its pack.
    #[error("blob {digest} is stored as {stored} bytes; the download reads it to byte {end}")]
    Short {
        digest: String,
        stored: u64,
        end: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a blob member of the archive comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A blob stored in a pack.
    Stored(BlobLoc),
    /// Bytes already in memory: the manifest, which the store keeps with its metadata rather
    /// than as a blob of the repository, yet the archive holds as `blobs/sha256/<hex>`.
    Bytes(Bytes),
}

impl Source {
    fn len(&self) -> u64 {
        match self {
            Source::Stored(loc) => loc.len,
            Source::Bytes(b) => b.len() as u64,
        }
    }
}

/// The pieces of `range` of the archive `plan` lays out, in order: its bytes copied from the
/// plan (headers, the small JSON members, padding: a few KiB), its blobs as pack ranges or
/// the bytes found by `lookup` (`sha256:<hex>` → where the blob is, `None` if nowhere).
pub fn pieces(
    plan: &ArchivePlan,
    range: Range<u64>,
    mut lookup: impl FnMut(&str) -> Result<Option<Source>, StoreError>,
) -> Result<Vec<WebPiece>, PiecesError> {
    plan.pieces(range)
        .map(|p| match p {
            Piece::Bytes(b) => Ok(WebPiece::Bytes(Bytes::copy_from_slice(b))),
            Piece::Blob { digest, range } => {
                let src = lookup(digest)?.ok_or_else(|| PiecesError::Missing(digest.into()))?;
                if range.end > src.len() {
                    return Err(PiecesError::Short {
                        digest: digest.into(),
                        stored: src.len(),
                        end: range.end,
                    });
                }
                Ok(match src {
                    Source::Stored(loc) => WebPiece::Blob {
                        blob: blob_handle(&loc),
                        range,
                    },
                    // In bounds: checked against its length above.
                    Source::Bytes(b) => {
                        WebPiece::Bytes(b.slice(range.start as usize..range.end as usize))
                    }
                })
            }
        })
        .collect()
}

/// A `lookup` for [`pieces`]: the blobs of `repo` in `engine`, peeked at (a Download is
/// not a use of an image's blobs that should hold them from garbage collection), and the
/// version's own manifest (`key`, `body`) from its bytes.
pub fn lookup_in<'e>(
    engine: &'e Engine,
    repo: &'e str,
    manifest: (&'e BlobKey, &'e Bytes),
) -> impl FnMut(&str) -> Result<Option<Source>, StoreError> + 'e {
    move |digest| match BlobKey::parse(digest) {
        Some(key) if &key == manifest.0 => Ok(Some(Source::Bytes(manifest.1.clone()))),
        Some(key) => Ok(engine.peek_blob(repo, &key)?.map(Source::Stored)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine::package::{ArchiveBlob, ArchiveSpec};
    use berth_engine::EngineOptions;
    use std::collections::HashMap;

    const REPO: &str = "acme/web/app";

    /// Bytes of `n` that differ with `seed`.
    fn data(seed: u8, n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    fn push(e: &Engine, bytes: &[u8]) -> ArchiveBlob {
        let key = BlobKey::sha256_of(bytes);
        let up = e.start_upload(REPO).unwrap();
        e.append_upload(REPO, &up.id, 0, bytes).unwrap();
        e.finish_upload(REPO, &up.id, &key).unwrap().into_inner();
        ArchiveBlob {
            digest: key.to_string(),
            size: bytes.len() as u64,
        }
    }

    /// The bytes `pieces` stand for, blob ranges read from their packs.
    fn render(e: &Engine, pieces: &[WebPiece]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in pieces {
            match p {
                WebPiece::Bytes(b) => out.extend_from_slice(b),
                WebPiece::Blob { blob, range } => {
                    let file = e.pack_file(blob.file).unwrap();
                    let len = (range.end - range.start) as usize;
                    let w = file.window(blob.offset + range.start, len).unwrap();
                    out.extend_from_slice(w.bytes());
                }
            }
        }
        out
    }

    #[test]
    fn any_range_of_the_archive_maps_onto_plan_bytes_and_pack_ranges() {
        let dir = tempfile::tempdir().unwrap();
        // Small blobs share a pack (at offsets past its start), large ones have their own.
        let opts = EngineOptions {
            small_blob_bytes: 4096,
            ..EngineOptions::default()
        };
        let e = Engine::open(dir.path(), opts).unwrap();
        push(&e, &data(9, 777));
        let contents = [data(1, 300), data(2, 120), data(3, 10_000), data(4, 513)];
        // The manifest is not a blob of the store: the lookup gives its bytes.
        let manifest_key = BlobKey::sha256_of(&contents[0]);
        let manifest_body = Bytes::from(contents[0].clone());
        let mut blobs = vec![ArchiveBlob {
            digest: manifest_key.to_string(),
            size: contents[0].len() as u64,
        }];
        blobs.extend(contents[1..].iter().map(|c| push(&e, c)));
        let lookup = || lookup_in(&e, REPO, (&manifest_key, &manifest_body));
        let layers = [blobs[2].clone(), blobs[3].clone()];
        let spec = ArchiveSpec {
            manifest: blobs[0].clone(),
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json",
            config: blobs[1].clone(),
            layers: &layers,
            repository: "127.0.0.1:5000/acme/web/app",
            tag: Some("1.0"),
        };
        let plan = ArchivePlan::new(&spec).unwrap();
        // The whole archive from the plan and the blobs' known bytes.
        let stored: HashMap<&str, &[u8]> = blobs
            .iter()
            .zip(&contents)
            .map(|(b, c)| (b.digest.as_str(), c.as_slice()))
            .collect();
        let mut whole = Vec::new();
        for p in plan.pieces(0..plan.len()) {
            match p {
                Piece::Bytes(b) => whole.extend_from_slice(b),
                Piece::Blob { digest, range } => whole
                    .extend_from_slice(&stored[digest][range.start as usize..range.end as usize]),
            }
        }
        assert_eq!(whole.len() as u64, plan.len());
        let n = plan.len();
        // Ranges starting and ending everywhere: in headers, padding, and mid-blob.
        let mut ranges = vec![(0, n), (0, 1), (n - 1, n)];
        ranges.extend(
            (0..n)
                .step_by(331)
                .map(|a| (a, n.min(a + 1 + a * 7 % 5000))),
        );
        for (a, b) in ranges {
            let ps = pieces(&plan, a..b, lookup()).unwrap();
            assert!(
                ps.iter().all(|p| !p.is_empty()),
                "no empty pieces for {a}..{b}"
            );
            assert!(
                render(&e, &ps) == whole[a as usize..b as usize],
                "the pieces of {a}..{b} are not those bytes of the archive"
            );
        }
        // The blobs go out from their packs, not through memory.
        let ps = pieces(&plan, 0..n, lookup()).unwrap();
        let from_packs: u64 = ps
            .iter()
            .filter(|p| matches!(p, WebPiece::Blob { .. }))
            .map(WebPiece::len)
            .sum();
        assert_eq!(from_packs, 120 + 10_000 + 513);
    }

    #[test]
    fn a_blob_no_longer_stored_or_shorter_than_planned_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        let m = push(&e, b"{\"schemaVersion\":2}");
        let c = push(&e, b"{}");
        let (other, body) = (BlobKey::sha256_of(b"another manifest"), Bytes::new());
        let lookup_in = |e, repo| lookup_in(e, repo, (&other, &body));
        let gone = [ArchiveBlob {
            digest: BlobKey::sha256_of(b"never pushed").to_string(),
            size: 12,
        }];
        let spec = ArchiveSpec {
            manifest: m.clone(),
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json",
            config: c.clone(),
            layers: &gone,
            repository: "h/acme/web/app",
            tag: None,
        };
        let plan = ArchivePlan::new(&spec).unwrap();
        match pieces(&plan, 0..plan.len(), lookup_in(&e, REPO)) {
            Err(PiecesError::Missing(d)) => assert_eq!(d, gone[0].digest),
            other => panic!("{other:?}"),
        }
        // A blob stored in another repository is not this one's.
        let plan = ArchivePlan::new(&ArchiveSpec {
            layers: &[],
            ..spec.clone()
        })
        .unwrap();
        assert!(pieces(&plan, 0..plan.len(), lookup_in(&e, REPO)).is_ok());
        assert!(matches!(
            pieces(&plan, 0..plan.len(), lookup_in(&e, "acme/web/other")),
            Err(PiecesError::Missing(_))
        ));
        // A member longer than the stored blob: its range would run past the blob.
        let long = [ArchiveBlob {
            size: c.size + 1,
            ..c.clone()
        }];
        let plan = ArchivePlan::new(&ArchiveSpec {
            config: m.clone(),
            layers: &long,
            ..spec
        })
        .unwrap();
        match pieces(&plan, 0..plan.len(), lookup_in(&e, REPO)) {
            Err(PiecesError::Short { stored, end, .. }) => assert_eq!((stored, end), (2, 3)),
            other => panic!("{other:?}"),
        }
    }
}
