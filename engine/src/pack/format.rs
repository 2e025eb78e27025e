//! The byte layout of a pack file.
//!
//! ```text
//! pack file
//! ┌──────────────────────────── pack header, 32 bytes ─────────────────────────────┐
//! │ 0..8   magic  b"BERTHPAK"                                                      │
//! │ 8..12  format version u32 LE (= PACK_VERSION)                                  │
//! │ 12..16 kind u32 LE (1 = shared: many small blobs, 2 = single: one large blob)  │
//! │ 16..24 pack id u64 LE (the number in the file name)                            │
//! │ 24..28 reserved, zero                                                          │
//! │ 28..32 CRC-32 (IEEE) of bytes 0..28, u32 LE                                    │
//! └────────────────────────────────────────────────────────────────────────────────┘
//! then records, back to back, until the end of the file:
//! ┌──────────────────────────── record header, 96 bytes ───────────────────────────┐
//! │ 0..4   magic  b"BREC"                                                          │
//! │ 4      algorithm u8 (1 = sha256, 2 = sha512)                                   │
//! │ 5..8   reserved, zero                                                          │
//! │ 8..16  data length u64 LE                                                      │
//! │ 16..80 hash of the data (sha256 uses 16..48; the rest is zero)                 │
//! │ 80..92 reserved, zero                                                          │
//! │ 92..96 CRC-32 (IEEE) of bytes 0..92, u32 LE                                    │
//! ├──────────────────────────── data, `length` bytes ──────────────────────────────┤
//! └────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! A blob's [`BlobLoc`](crate::BlobLoc) names its data range (just past the record
//! header), so reads and sends never parse headers. The headers make a pack
//! self-describing: the data's own hash is its checksum, and the header CRC lets a tool
//! walk records to rebuild the index. An upload file starts with [`UPLOAD_RESERVED`] zero
//! bytes (one pack header + one record header), so a large upload becomes a single-blob pack
//! by writing those two headers in place and renaming the file: its data is never copied.

use crate::keys::{Alg, BlobKey};

pub(crate) const PACK_MAGIC: [u8; 8] = *b"BERTHPAK";
pub(crate) const PACK_VERSION: u32 = 1;
pub(crate) const PACK_HEADER_LEN: u64 = 32;
pub(crate) const KIND_SHARED: u32 = 1;
pub(crate) const KIND_SINGLE: u32 = 2;

pub(crate) const RECORD_MAGIC: [u8; 4] = *b"BREC";
pub(crate) const RECORD_HEADER_LEN: u64 = 96;

/// Room an upload file keeps at its start for the headers it will need as a pack.
pub(crate) const UPLOAD_RESERVED: u64 = PACK_HEADER_LEN + RECORD_HEADER_LEN;

/// By default, a shared pack stops taking new blobs past this size; the next blob starts
/// a new pack (`EngineOptions::shared_pack_bytes`).
pub(crate) const SHARED_PACK_ROLL_BYTES: u64 = 1 << 30;

/// The file name of pack `id` inside `packs/`.
pub(crate) fn pack_file_name(id: u64) -> String {
    format!("{id:016x}.pack")
}

/// The directory holding the packs.
pub(crate) const PACKS: &str = "packs";
/// The directory holding the files of uploads in progress.
pub(crate) const UPLOADS: &str = "uploads";

/// The directory of a shared store holding the durable parts of upload sessions
/// (`upload/shared.rs`); only shared stores have one.
pub(crate) const PARTS: &str = "parts";

/// Pack `id`'s name in the store (`packs/<id>.pack`).
pub(crate) fn pack_name(id: u64) -> String {
    format!("{PACKS}/{}", pack_file_name(id))
}

/// Upload `id`'s file in the store (`uploads/<id>`).
pub(crate) fn upload_name(id: &str) -> String {
    format!("{UPLOADS}/{id}")
}

/// The part of upload `id` starting at data byte `start`, written by the writer that drew
/// `tag` (`parts/<id>.<start as 16 hex>.<tag as 16 hex>`).
pub(crate) fn part_name(id: &str, start: u64, tag: u64) -> String {
    format!("{PARTS}/{id}.{start:016x}.{tag:016x}")
}

/// The upload id a file name in `parts/` belongs to, if it is one of ours.
pub(crate) fn parse_part_file_name(name: &str) -> Option<&str> {
    let mut it = name.split('.');
    let (id, start, tag) = (it.next()?, it.next()?, it.next()?);
    let hex = |s: &str| s.len() == 16 && u64::from_str_radix(s, 16).is_ok();
    (it.next().is_none() && hex(start) && hex(tag)).then_some(id)
}

/// The pack id a file name in `packs/` stands for, if it is one of ours.
pub(crate) fn parse_pack_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".pack")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

pub(crate) fn pack_header(kind: u32, id: u64) -> [u8; PACK_HEADER_LEN as usize] {
    let mut h = [0u8; PACK_HEADER_LEN as usize];
    h[0..8].copy_from_slice(&PACK_MAGIC);
    h[8..12].copy_from_slice(&PACK_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&kind.to_le_bytes());
    h[16..24].copy_from_slice(&id.to_le_bytes());
    let crc = crc32(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Parsed pack header fields: (kind, id), or why the bytes are not one.
pub(crate) fn parse_pack_header(h: &[u8]) -> Result<(u32, u64), &'static str> {
    if h.len() < PACK_HEADER_LEN as usize {
        return Err("pack header truncated");
    }
    if h[0..8] != PACK_MAGIC {
        return Err("bad pack magic");
    }
    if crc32(&h[0..28]).to_le_bytes() != h[28..32] {
        return Err("pack header checksum mismatch");
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != PACK_VERSION {
        return Err("unknown pack format version");
    }
    let kind = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&h[16..24]);
    Ok((kind, u64::from_le_bytes(id)))
}

pub(crate) fn record_header(key: &BlobKey, len: u64) -> [u8; RECORD_HEADER_LEN as usize] {
    let mut h = [0u8; RECORD_HEADER_LEN as usize];
    h[0..4].copy_from_slice(&RECORD_MAGIC);
    h[4] = key.alg.tag();
    h[8..16].copy_from_slice(&len.to_le_bytes());
    let n = key.hash.len().min(64);
    h[16..16 + n].copy_from_slice(&key.hash[..n]);
    let crc = crc32(&h[0..92]);
    h[92..96].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Parsed record header: (key, data length), or why the bytes are not one.
pub(crate) fn parse_record_header(h: &[u8]) -> Result<(BlobKey, u64), &'static str> {
    if h.len() < RECORD_HEADER_LEN as usize {
        return Err("record header truncated");
    }
    if h[0..4] != RECORD_MAGIC {
        return Err("bad record magic");
    }
    if crc32(&h[0..92]).to_le_bytes() != h[92..96] {
        return Err("record header checksum mismatch");
    }
    let alg = Alg::from_tag(h[4]).ok_or("unknown record algorithm")?;
    let mut len = [0u8; 8];
    len.copy_from_slice(&h[8..16]);
    let hash = h[16..16 + alg.hash_len()].to_vec();
    Ok((BlobKey { alg, hash }, u64::from_le_bytes(len)))
}

/// CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320): only guards the small headers, so a
/// bitwise loop is fast enough and needs no table.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn headers_round_trip_and_detect_a_flipped_bit() {
        let h = pack_header(KIND_SINGLE, 42);
        assert_eq!(parse_pack_header(&h), Ok((KIND_SINGLE, 42)));
        let k = BlobKey::sha256_of(b"abc");
        let mut r = record_header(&k, 3);
        assert_eq!(parse_record_header(&r), Ok((k, 3)));
        r[9] ^= 1;
        assert!(parse_record_header(&r).is_err());
        assert_eq!(parse_pack_file_name(&pack_file_name(0xabc)), Some(0xabc));
        assert_eq!(parse_pack_file_name("x.pack"), None);
    }
}
