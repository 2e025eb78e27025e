//! Core nouns to engine nouns and back: a `Digest` is a `BlobKey` to the engine, a stored
//! blob's place is a `BlobHandle` to the core. Both the needs (`dispatch.rs`) and the
//! Download's pieces (`web/download.rs`) speak both.

use berth_core::oci::{Algorithm, Digest};
use berth_core::BlobHandle;
use berth_engine::{Alg, BlobKey, BlobLoc, StoreError};

fn alg(a: Algorithm) -> Alg {
    match a {
        Algorithm::Sha256 => Alg::Sha256,
        Algorithm::Sha512 => Alg::Sha512,
    }
}

/// `Digest` -> `BlobKey`. A `Digest` holds validated lower-case hex of its algorithm's
/// length, so every pair decodes.
pub fn key(d: &Digest) -> BlobKey {
    let hex = d.hex().as_bytes();
    let nib = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        _ => c.wrapping_sub(b'a').wrapping_add(10) & 15,
    };
    let hash = hex
        .chunks_exact(2)
        .map(|p| (nib(p[0]) << 4) | nib(p[1]))
        .collect();
    BlobKey {
        alg: alg(d.algorithm()),
        hash,
    }
}

/// `BlobKey` -> `Digest`, refusing a key of the wrong length (it came from disk).
pub fn digest(k: &BlobKey) -> Result<Digest, StoreError> {
    let a = match k.alg {
        Alg::Sha256 => Algorithm::Sha256,
        Alg::Sha512 => Algorithm::Sha512,
    };
    if k.hash.len() * 2 != a.hex_len() {
        return Err(StoreError::new(format!(
            "stored key of {} bytes for {}",
            k.hash.len(),
            a.as_str()
        )));
    }
    Ok(Digest::from_hash(a, &k.hash))
}

/// Where the core's `SendBlob` finds a stored blob: its pack and offset.
pub fn blob_handle(l: &BlobLoc) -> BlobHandle {
    BlobHandle {
        file: l.pack,
        offset: l.offset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_blob_keys() {
        for s in [
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            &format!("sha512:{}", "0123456789abcdef".repeat(8)),
        ] {
            let d = Digest::parse(s).unwrap();
            let k = key(&d);
            assert_eq!(k.hash.len() * 2, d.hex().len());
            assert_eq!(digest(&k).unwrap(), d);
        }
        let k = key(&Digest::parse(&format!("sha256:{}", "ff00".repeat(16))).unwrap());
        assert_eq!(&k.hash[..2], &[0xff, 0x00]);
    }

    #[test]
    fn a_stored_key_of_the_wrong_length_is_a_storage_error() {
        let k = BlobKey {
            alg: Alg::Sha256,
            hash: vec![1, 2, 3],
        };
        assert!(digest(&k).is_err());
    }
}
