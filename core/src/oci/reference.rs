//! Manifest references (tag or digest, spec digest §1.2) and upload session ids (§1.4).

use super::digest::Digest;
use std::fmt;

/// Longest tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub const MAX_TAG_LEN: usize = 128;

/// A validated tag.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(Box<str>);

impl Tag {
    pub fn parse(s: &str) -> Option<Tag> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > MAX_TAG_LEN {
            return None;
        }
        let first = b[0].is_ascii_alphanumeric() || b[0] == b'_';
        let rest = b[1..]
            .iter()
            .all(|&x| x.is_ascii_alphanumeric() || b"._-".contains(&x));
        (first && rest).then(|| Tag(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// What a manifest path names: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// Longest upload session id accepted in a path.
pub const MAX_UPLOAD_ID_LEN: usize = 64;

/// An upload session id, minted by the storage layer: `[a-zA-Z0-9-_.=]+`, at most 64 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(Box<str>);

impl UploadId {
    pub fn parse(s: &str) -> Option<UploadId> {
        let ok = !s.is_empty()
            && s.len() <= MAX_UPLOAD_ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.=".contains(&b));
        ok.then(|| UploadId(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}
