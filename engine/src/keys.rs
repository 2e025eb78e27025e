//! Storage nouns: blob keys and upload ids, and their byte encodings.
//!
//! No HTTP here: the server turns a `core::Digest` into a [`BlobKey`]; the engine only sees
//! an algorithm and raw hash bytes.

use std::fmt;

/// Hash algorithms the store verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    /// SHA-256, the default of every client.
    Sha256,
    /// SHA-512, which the conformance suites push.
    Sha512,
}

impl Alg {
    /// The tag byte that leads an encoded key on disk; never reuse a retired value.
    pub(crate) fn tag(self) -> u8 {
        match self {
            Alg::Sha256 => 1,
            Alg::Sha512 => 2,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Option<Alg> {
        match tag {
            1 => Some(Alg::Sha256),
            2 => Some(Alg::Sha512),
            _ => None,
        }
    }

    /// Length of the raw hash in bytes.
    pub fn hash_len(self) -> usize {
        match self {
            Alg::Sha256 => 32,
            Alg::Sha512 => 64,
        }
    }

    /// The name in a digest string (`sha256` in `sha256:…`).
    pub fn name(self) -> &'static str {
        match self {
            Alg::Sha256 => "sha256",
            Alg::Sha512 => "sha512",
        }
    }
}

/// A blob's (or manifest's) identity: algorithm and raw hash bytes (32 or 64 bytes).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey {
    /// The algorithm.
    pub alg: Alg,
    /// Raw hash bytes, `alg.hash_len()` of them for any key that can name stored content.
    pub hash: Vec<u8>,
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.alg.name(), hex::encode(&self.hash))
    }
}

impl BlobKey {
    /// The SHA-256 key of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> BlobKey {
        use sha2::Digest;
        BlobKey {
            alg: Alg::Sha256,
            hash: sha2::Sha256::digest(bytes).to_vec(),
        }
    }

    /// The SHA-512 key of `bytes`.
    pub fn sha512_of(bytes: &[u8]) -> BlobKey {
        use sha2::Digest;
        BlobKey {
            alg: Alg::Sha512,
            hash: sha2::Sha512::digest(bytes).to_vec(),
        }
    }

    /// Parses `sha256:<hex>` or `sha512:<hex>` (lower-case hex of the algorithm's length),
    /// as manifests name their blobs.
    pub fn parse(digest: &str) -> Option<BlobKey> {
        let (alg, hex) = digest.split_once(':')?;
        let alg = match alg {
            "sha256" => Alg::Sha256,
            "sha512" => Alg::Sha512,
            _ => return None,
        };
        if hex.len() != 2 * alg.hash_len() || hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let hash = hex::decode(hex).ok()?;
        Some(BlobKey { alg, hash })
    }

    /// Whether the hash has the algorithm's length; a key that does not can name nothing
    /// stored, since every stored key was computed by the engine.
    pub fn is_well_formed(&self) -> bool {
        self.hash.len() == self.alg.hash_len()
    }

    /// On-disk form: one algorithm tag byte, then the raw hash.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.hash.len());
        out.push(self.alg.tag());
        out.extend_from_slice(&self.hash);
        out
    }

    /// Parses the on-disk form; `None` for bytes the engine never wrote.
    pub(crate) fn decode(bytes: &[u8]) -> Option<BlobKey> {
        let (&tag, hash) = bytes.split_first()?;
        let alg = Alg::from_tag(tag)?;
        (hash.len() == alg.hash_len()).then(|| BlobKey {
            alg,
            hash: hash.to_vec(),
        })
    }
}

/// An upload session id: 32 lowercase hex characters from the OS random source. Being
/// unguessable, it doubles as the capability to append; being hex, it is safe as a file name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct UploadId(String);

impl UploadId {
    pub(crate) fn random() -> Result<UploadId, getrandom::Error> {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw)?;
        Ok(UploadId(hex::encode(raw)))
    }

    /// Accepts only what [`UploadId::random`] produces, so a client-sent id can never
    /// name a path outside the uploads directory.
    pub(crate) fn parse(s: &str) -> Option<UploadId> {
        let ok = s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| UploadId(s.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_key_encoding_round_trips_and_rejects_wrong_lengths() {
        let k = BlobKey::sha256_of(b"x");
        assert_eq!(BlobKey::decode(&k.encode()), Some(k.clone()));
        let k5 = BlobKey::sha512_of(b"x");
        assert_eq!(BlobKey::decode(&k5.encode()), Some(k5));
        assert_eq!(BlobKey::decode(&[1, 2, 3]), None);
        assert_eq!(BlobKey::decode(&[]), None);
        assert_eq!(BlobKey::parse(&k.to_string()), Some(k.clone()));
        for bad in [
            "sha256:AB",
            "md5:00",
            "sha256",
            "",
            &k.to_string().to_uppercase(),
        ] {
            assert_eq!(BlobKey::parse(bad), None, "{bad}");
        }
        let mut bad = k.encode();
        bad[0] = 9;
        assert_eq!(BlobKey::decode(&bad), None);
    }

    #[test]
    fn upload_ids_are_32_hex_and_parse_refuses_paths() {
        let id = UploadId::random().unwrap();
        assert_eq!(id.as_str().len(), 32);
        assert_eq!(UploadId::parse(id.as_str()), Some(id));
        assert_eq!(UploadId::parse("../../etc/passwd"), None);
        assert_eq!(UploadId::parse("ABCDEF0123456789abcdef0123456789"), None);
        assert_eq!(UploadId::parse(""), None);
    }
}
