//! Content digests (image-spec descriptor.md, digest grammar; spec digest §1.3).

use std::fmt;

/// Digest algorithms this registry computes and verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the lower-case hex encoding.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated digest: a supported algorithm and its lower-case hex encoding.
/// Cannot hold an invalid value; `Display` gives the canonical `alg:hex` form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    alg: Algorithm,
    hex: Box<str>,
}

/// Why a string is not a digest we accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest does not match the grammar algorithm:encoded")]
    Syntax,
    #[error("digest algorithm is not supported (use sha256 or sha512)")]
    Unsupported,
    #[error("digest encoding must be lower-case hex of the algorithm's length")]
    Encoding,
}

impl Digest {
    /// Parses `alg:hex`. Upper-case hex or a wrong length is refused (spec digest §1.3).
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let (alg, enc) = s.split_once(':').ok_or(DigestError::Syntax)?;
        if alg.is_empty()
            || !alg
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
        {
            return Err(DigestError::Syntax);
        }
        if enc.is_empty()
            || !enc
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b))
        {
            return Err(DigestError::Syntax);
        }
        let alg = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(DigestError::Unsupported),
        };
        if enc.len() != alg.hex_len()
            || !enc
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::Encoding);
        }
        Ok(Digest {
            alg,
            hex: enc.into(),
        })
    }

    /// Builds a digest from raw hash output.
    pub fn from_hash(alg: Algorithm, hash: &[u8]) -> Digest {
        debug_assert_eq!(hash.len() * 2, alg.hex_len());
        let mut hex = String::with_capacity(hash.len() * 2);
        for b in hash {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            hex.push(HEX[(b >> 4) as usize] as char);
            hex.push(HEX[(b & 15) as usize] as char);
        }
        Digest {
            alg,
            hex: hex.into(),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The lower-case hex encoding, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.alg.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}
