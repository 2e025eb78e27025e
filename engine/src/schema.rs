//! Every redb table of the store, and the byte encodings of their keys and values.
//!
//! Keys are redb tuples of `&str` (repository, tag) and `&[u8]` (an encoded [`BlobKey`]:
//! algorithm tag byte + raw hash), so a repository's entries are one contiguous range and
//! tags and repositories sort byte-wise, as spec §8.1 asks. Values the engine encodes
//! itself use fixed-width little-endian integers; `usize` never reaches the disk.
//!
//! Bump [`SCHEMA_VERSION`] on any change to a table or encoding below; `open` refuses a
//! store written with another version rather than misreading it.

use crate::kv::TableDefinition;

use crate::keys::BlobKey;
use crate::{BlobLoc, ReferrerRec};

/// A key scoped to a repository: (repository, encoded key).
pub(crate) type RepoKey = (&'static str, &'static [u8]);
/// A pair of keys scoped to a repository: (repository, encoded key, encoded key).
pub(crate) type RepoKeyPair = (&'static str, &'static [u8], &'static [u8]);

/// Version of the layout below, kept in [`META`] under [`META_SCHEMA`].
///
/// History: 1, blobs/manifests/uploads/packs; 2, adds the tenancy tables ([`ORGS`] to
/// [`AUDIT`]). A version-1 store is upgraded at open by creating those tables (nothing is
/// rewritten), see [`SCHEMA_UPGRADABLE`]; 3, the package queue and layer listings; 4, the
/// package index's versions, directories, push times and download counts; 5, a shared
/// store's upload sessions in their rows ([`SharedUpload`]) and the link uses its nodes
/// write down ([`LINK_USES`]), which a node of version 4 would ignore.
pub(crate) const SCHEMA_VERSION: u32 = 5;

/// Older versions `open` upgrades in place rather than refusing.
pub(crate) const SCHEMA_UPGRADABLE: &[u32] = &[1, 2, 3, 4];

/// Store-wide values: `"schema"` → u32 LE.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const META_SCHEMA: &str = "schema";
/// In [`META`]: the sum of the stored blobs' lengths and of the packs' committed lengths
/// ([`encode_totals`]), kept by every commit that changes them, so `/metrics` reads two
/// numbers instead of scanning the blob table, and `check` compares them with a scan.
pub(crate) const META_TOTALS: &str = "totals";

/// In [`META`]: a count (u64 LE) bumped by every tenancy write that can change an access
/// decision, in that write's transaction. Nodes sharing a PostgreSQL database read it to
/// know whether what they cached of tokens and registries is still current.
pub(crate) const META_TENANCY_GENERATION: &str = "tenancy_generation";
/// In [`META`], prefixed to a name: a secret shared by every node of the store (the bearer
/// tokens' signing key), made once by the first node that asks.
pub(crate) const META_SECRET_PREFIX: &str = "secret:";

/// Encoded blob key → [`BlobLoc`] (see [`encode_loc`]). One row per stored blob, whatever
/// the number of repositories linking it.
pub(crate) const BLOBS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blobs");

/// (repository, encoded blob key) → (): the blob is pullable from the repository.
pub(crate) const BLOB_LINKS: TableDefinition<RepoKey, ()> = TableDefinition::new("blob_links");

/// (repository, encoded blob key) → Unix seconds the link was last made or named by a
/// manifest, written on a shared store only: each node's record of uses is its own
/// (`touch.rs`), and garbage collection on one node must not take a link another node's
/// push just made for unused. Removed with the link by garbage collection.
pub(crate) const LINK_USES: TableDefinition<RepoKey, u64> = TableDefinition::new("link_uses");

/// (encoded blob key, repository) → (): reverse of [`BLOB_LINKS`], so garbage collection can
/// ask "does anyone still link this blob" without a scan.
pub(crate) const BLOB_LINKED_BY: TableDefinition<(&[u8], &str), ()> =
    TableDefinition::new("blob_linked_by");

/// Repository name → (): every repository anything was pushed to, for the catalog.
pub(crate) const REPOS: TableDefinition<&str, ()> = TableDefinition::new("repos");

/// (repository, encoded manifest key) → [`ManifestRow`].
pub(crate) const MANIFESTS: TableDefinition<RepoKey, &[u8]> = TableDefinition::new("manifests");

/// (repository, tag) → encoded manifest key.
pub(crate) const TAGS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("tags");

/// (repository, encoded subject key, encoded referrer key) → encoded [`ReferrerRec`].
pub(crate) const REFERRERS: TableDefinition<RepoKeyPair, &[u8]> = TableDefinition::new("referrers");

/// (repository, encoded manifest key, encoded target key) → [`REF_BLOB`] or
/// [`REF_MANIFEST`]: what a manifest holds on to, for garbage collection.
pub(crate) const MANIFEST_REFS: TableDefinition<RepoKeyPair, u8> =
    TableDefinition::new("manifest_refs");
pub(crate) const REF_BLOB: u8 = 1;
pub(crate) const REF_MANIFEST: u8 = 2;

/// Upload id → [`UploadRow`] (see [`encode_upload`]).
pub(crate) const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");

/// Pack id → [`PackRow`] (see [`encode_pack`]): bytes past `committed_len` in a pack file are
/// not named by any committed row and are cut off at open.
pub(crate) const PACKS: TableDefinition<u64, &[u8]> = TableDefinition::new("packs");

/// Manifests whose package details are still to be worked out: (repository, manifest
/// key) → (). Written in the manifest's own commit and removed once the indexer has
/// recorded them or the manifest is deleted, so a crash or restart resumes the queue
/// (`package_store.rs`). Version 3; an upgrade queues every manifest already stored.
pub(crate) const PACKAGE_QUEUE: TableDefinition<RepoKey, ()> =
    TableDefinition::new("package_queue");

/// What a layer holds, by the layer blob's key → [`encode_layer_listing`]: listed once per
/// layer however many images share it, removed with the blob by garbage collection.
/// Version 3.
pub(crate) const LAYER_LISTINGS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("layer_listings");

/// What the index recorded of a version: (repository, manifest key) → a
/// `package::VersionRecord` as JSON (a record read once per page, whose fields grow).
/// Written with the queue row's removal; removed with the manifest. Version 4; an upgrade
/// queues every manifest again to fill it.
pub(crate) const PACKAGE_VERSIONS: TableDefinition<RepoKey, &[u8]> =
    TableDefinition::new("package_versions");

/// An image version's file system by directory: (repository, manifest key, chunk key
/// `dir NUL first-name`, see `package::version::dir_chunks`) → [`encode_dir_chunk`].
/// Written and removed with its [`PACKAGE_VERSIONS`] row. Version 4.
pub(crate) const PACKAGE_DIRS: TableDefinition<RepoKeyPair, &[u8]> =
    TableDefinition::new("package_dirs");

/// Which layers hold an entry of a given file name: (name, layer key) → [`encode_paths`],
/// the paths of that name in the layer. Written with the layer's listing, removed with it:
/// what a path search reads first. Version 4.
pub(crate) const PACKAGE_NAMES: TableDefinition<(&[u8], &[u8]), &[u8]> =
    TableDefinition::new("package_names");

/// Which versions use a layer: (layer key, repository, manifest key) → (). Written and
/// removed with the version's [`PACKAGE_VERSIONS`] row. Version 4.
pub(crate) const PACKAGE_LAYER_USERS: TableDefinition<(&[u8], &str, &[u8]), ()> =
    TableDefinition::new("package_layer_users");

/// When a version was last pushed: (repository, manifest key) → unix seconds, written in
/// every manifest PUT's commit, removed with the manifest. Version 4.
pub(crate) const PACKAGE_PUSHED: TableDefinition<RepoKey, u64> =
    TableDefinition::new("package_pushed");

/// Pulls and Downloads of a version: (repository, manifest key) → count, added to in
/// batches (a crash loses at most the batch not yet written). Removed with the manifest.
/// Version 4.
pub(crate) const PACKAGE_DOWNLOADS: TableDefinition<RepoKey, u64> =
    TableDefinition::new("package_downloads");

// --- tenancy (schema 2) -------------------------------------------------------------------

/// Organisation slug → [`encode_org`].
pub(crate) const ORGS: TableDefinition<&str, &[u8]> = TableDefinition::new("orgs");

/// (organisation slug, registry slug) → [`encode_registry`]: an org's registries are one
/// contiguous range.
pub(crate) const REGISTRIES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("registries");

/// Token id → [`encode_token`] (the record, hash included). Revoked tokens stay, for the
/// audit trail.
pub(crate) const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");

/// SHA-256 of the secret (32 bytes) → token id: the lookup on every authenticated request.
pub(crate) const TOKEN_HASHES: TableDefinition<&[u8], &str> = TableDefinition::new("token_hashes");

/// (organisation slug, token id) → (): an org's tokens without scanning every token. Admin
/// tokens, which have no org, are filed under [`ADMIN_ORG`].
pub(crate) const ORG_TOKENS: TableDefinition<(&str, &str), ()> = TableDefinition::new("org_tokens");

/// The [`ORG_TOKENS`] org of admin tokens: the empty string, which no slug can be.
pub(crate) const ADMIN_ORG: &str = "";

/// (organisation slug, sequence number) → [`encode_audit`]. Sequence numbers count from 1
/// per organisation, so an org's log reads newest first by walking its range backwards.
pub(crate) const AUDIT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("audit");

/// Why a stored value failed to decode: the disk holds bytes this version never wrote.
#[derive(Debug)]
pub(crate) struct Corrupt(pub &'static str);

// --- little readers/writers -------------------------------------------------------------

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Corrupt> {
        if self.0.len() < n {
            return Err(Corrupt(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Corrupt> {
        Ok(self.take(1, what)?[0])
    }
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, Corrupt> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, Corrupt> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// A u32-LE length, then that many bytes.
    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], Corrupt> {
        let n = self.u32(what)?;
        self.take(n as usize, what)
    }
    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, Corrupt> {
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| Corrupt(what))
    }
    pub(crate) fn key(&mut self, what: &'static str) -> Result<BlobKey, Corrupt> {
        BlobKey::decode(self.bytes(what)?).ok_or(Corrupt(what))
    }
    pub(crate) fn rest(self) -> &'a [u8] {
        self.0
    }
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Values the engine stores are bounded far below 4 GiB (manifests ≤ the server's limit,
    // media types and annotations inside them), so the length fits; saturate rather than wrap.
    let n = u32::try_from(b.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&b[..n as usize]);
}

// --- blob locations ---------------------------------------------------------------------

/// pack u64 LE, offset u64 LE, len u64 LE: the byte range of the blob's data in the pack.
pub(crate) fn encode_loc(loc: &BlobLoc) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[0..8].copy_from_slice(&loc.pack.to_le_bytes());
    out[8..16].copy_from_slice(&loc.offset.to_le_bytes());
    out[16..24].copy_from_slice(&loc.len.to_le_bytes());
    out
}

pub(crate) fn decode_loc(b: &[u8]) -> Result<BlobLoc, Corrupt> {
    let mut r = Reader(b);
    Ok(BlobLoc {
        pack: r.u64("blob location")?,
        offset: r.u64("blob location")?,
        len: r.u64("blob location")?,
    })
}

// --- packs ------------------------------------------------------------------------------

/// A shared pack: small blobs appended by the committer.
pub(crate) const PACK_SHARED: u8 = 1;
/// A pack holding one large blob; it was the upload file.
pub(crate) const PACK_SINGLE: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PackRow {
    pub kind: u8,
    /// Bytes of the file that committed rows may name.
    pub committed_len: u64,
}

/// kind u8, 7 zero bytes, committed_len u64 LE.
pub(crate) fn encode_pack(p: &PackRow) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0] = p.kind;
    out[8..16].copy_from_slice(&p.committed_len.to_le_bytes());
    out
}

pub(crate) fn decode_pack(b: &[u8]) -> Result<PackRow, Corrupt> {
    let mut r = Reader(b);
    let kind = r.u8("pack row")?;
    r.take(7, "pack row")?;
    Ok(PackRow {
        kind,
        committed_len: r.u64("pack row")?,
    })
}

// --- uploads ----------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UploadRow {
    pub repo: String,
    /// Seconds since the Unix epoch when the session started.
    pub created: u64,
    /// On a shared store, the session's durable state, so any node can take it up
    /// (`upload/shared.rs`); `None` on a store of one node, whose session lives in its
    /// upload file.
    pub shared: Option<SharedUpload>,
}

/// What every node needs to continue or finish a session another node started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SharedUpload {
    /// Data bytes held by the parts.
    pub len: u64,
    /// Seconds since the Unix epoch of the last durable change, for expiry.
    pub touched: u64,
    /// SHA-256 state after `len` bytes (sha2's serialized state), so finishing on another
    /// node hashes only what it receives itself.
    pub sha256: Vec<u8>,
    /// Each part's start, ascending, and the tag that makes its object's name its own
    /// (`part_name(id, start, tag)`), so two nodes racing to extend a session never write
    /// one object: part `i` holds bytes `parts[i].0..parts[i + 1].0` (the last up to `len`).
    pub parts: Vec<(u64, u64)>,
}

/// created u64 LE, then the repository (u32 LE length + UTF-8); for a shared session then
/// len u64 LE, touched u64 LE, the SHA-256 state (u32 LE length + bytes), the part count
/// (u32 LE) and each part's start and tag (u64 LE each). Rows of a store of one node end after the
/// repository, as rows before shared sessions did.
pub(crate) fn encode_upload(u: &UploadRow) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + u.repo.len());
    out.extend_from_slice(&u.created.to_le_bytes());
    put_bytes(&mut out, u.repo.as_bytes());
    if let Some(s) = &u.shared {
        out.extend_from_slice(&s.len.to_le_bytes());
        out.extend_from_slice(&s.touched.to_le_bytes());
        put_bytes(&mut out, &s.sha256);
        // A part per PATCH; the server bounds an upload's requests far below 4 billion.
        let n = u32::try_from(s.parts.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&n.to_le_bytes());
        for (start, tag) in s.parts.iter().take(n as usize) {
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(&tag.to_le_bytes());
        }
    }
    out
}

pub(crate) fn decode_upload(b: &[u8]) -> Result<UploadRow, Corrupt> {
    const WHAT: &str = "upload row";
    let mut r = Reader(b);
    let created = r.u64(WHAT)?;
    let repo = r.string(WHAT)?;
    if r.0.is_empty() {
        return Ok(UploadRow {
            repo,
            created,
            shared: None,
        });
    }
    let len = r.u64(WHAT)?;
    let touched = r.u64(WHAT)?;
    let sha256 = r.bytes(WHAT)?.to_vec();
    let n = r.u32(WHAT)?;
    let mut parts = Vec::with_capacity((n as usize).min(r.0.len() / 16));
    for _ in 0..n {
        parts.push((r.u64(WHAT)?, r.u64(WHAT)?));
    }
    Ok(UploadRow {
        repo,
        created,
        shared: Some(SharedUpload {
            len,
            touched,
            sha256,
            parts,
        }),
    })
}

// --- manifests --------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ManifestRow {
    pub media_type: String,
    /// Where this manifest is listed as a referrer, so deleting it can remove that entry.
    pub subject: Option<BlobKey>,
    pub body: Vec<u8>,
}

/// media type (u32 LE length + UTF-8), subject flag u8 (0/1) [+ encoded key with u32 LE
/// length], then the raw manifest bytes to the end of the value.
pub(crate) fn encode_manifest(media_type: &str, subject: Option<&BlobKey>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + media_type.len() + 80 + body.len());
    put_bytes(&mut out, media_type.as_bytes());
    match subject {
        None => out.push(0),
        Some(k) => {
            out.push(1);
            put_bytes(&mut out, &k.encode());
        }
    }
    out.extend_from_slice(body);
    out
}

pub(crate) fn decode_manifest(b: &[u8]) -> Result<ManifestRow, Corrupt> {
    let mut r = Reader(b);
    let media_type = r.string("manifest media type")?;
    let subject = match r.u8("manifest subject flag")? {
        0 => None,
        1 => Some(r.key("manifest subject")?),
        _ => return Err(Corrupt("manifest subject flag")),
    };
    Ok(ManifestRow {
        media_type,
        subject,
        body: r.rest().to_vec(),
    })
}

// --- referrers --------------------------------------------------------------------------

/// media type, encoded key (u32-length prefixed each), size u64 LE, then two optional
/// strings (flag u8 0/1 + u32-length-prefixed UTF-8): artifact type, annotations JSON.
pub(crate) fn encode_referrer(r: &ReferrerRec) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, r.media_type.as_bytes());
    put_bytes(&mut out, &r.key.encode());
    out.extend_from_slice(&r.size.to_le_bytes());
    for opt in [&r.artifact_type, &r.annotations] {
        match opt {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                put_bytes(&mut out, s.as_bytes());
            }
        }
    }
    out
}

pub(crate) fn decode_referrer(b: &[u8]) -> Result<ReferrerRec, Corrupt> {
    let mut r = Reader(b);
    let media_type = r.string("referrer media type")?;
    let key = r.key("referrer key")?;
    let size = r.u64("referrer size")?;
    let mut opt = || -> Result<Option<String>, Corrupt> {
        match r.u8("referrer optional flag")? {
            0 => Ok(None),
            1 => Ok(Some(r.string("referrer optional string")?)),
            _ => Err(Corrupt("referrer optional flag")),
        }
    };
    let artifact_type = opt()?;
    let annotations = opt()?;
    Ok(ReferrerRec {
        media_type,
        key,
        size,
        artifact_type,
        annotations,
    })
}

/// Bytes of the stored blobs, and of the packs' committed lengths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub blob_bytes: u64,
    pub pack_bytes: u64,
}

/// blob bytes u64 LE, pack bytes u64 LE.
pub(crate) fn encode_totals(t: &Totals) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&t.blob_bytes.to_le_bytes());
    out[8..].copy_from_slice(&t.pack_bytes.to_le_bytes());
    out
}

pub(crate) fn decode_totals(b: &[u8]) -> Result<Totals, Corrupt> {
    let mut r = Reader(b);
    let t = Totals {
        blob_bytes: r.u64("totals")?,
        pack_bytes: r.u64("totals")?,
    };
    if !r.rest().is_empty() {
        return Err(Corrupt("totals"));
    }
    Ok(t)
}

/// The totals counted afresh from the blob and pack tables (at an upgrade, and by `check`).
pub(crate) fn count_totals(
    blobs: &impl crate::kv::ReadableTable<&'static [u8], &'static [u8]>,
    packs: &impl crate::kv::ReadableTable<u64, &'static [u8]>,
) -> Result<Totals, crate::StoreError> {
    let mut t = Totals::default();
    for entry in blobs.iter()? {
        let (_, v) = entry?;
        t.blob_bytes += decode_loc(v.value())?.len;
    }
    for entry in packs.iter()? {
        let (_, v) = entry?;
        t.pack_bytes += decode_pack(v.value())?.committed_len;
    }
    Ok(t)
}

/// The schema version as stored in [`META`].
pub(crate) fn encode_schema_version() -> [u8; 4] {
    SCHEMA_VERSION.to_le_bytes()
}

/// A count kept as u64 LE.
pub(crate) fn decode_u64(b: &[u8]) -> Result<u64, Corrupt> {
    let mut r = Reader(b);
    let n = r.u64("count")?;
    if !r.rest().is_empty() {
        return Err(Corrupt("count"));
    }
    Ok(n)
}

pub(crate) fn decode_schema_version(b: &[u8]) -> Result<u32, Corrupt> {
    Reader(b).u32("schema version")
}

/// A layer listing's encoded size past which further entries are left out (and the listing
/// marked truncated): one redb value stays far below what a length prefix can say.
const LISTING_MAX_BYTES: usize = 512 << 20;

/// A layer listing: flags u8 (1 truncated, 2 error), skipped u64, uncompressed bytes u64,
/// error (bytes, empty if none), changes u32 then each: tag u8 (0 entry, 1 whiteout,
/// 2 opaque), path (bytes), and for an entry kind u8, size u64, mode u32, uid u64, gid u64,
/// mtime u64, link flag u8 then link (bytes) if 1; captured files u32 then (path, bytes).
pub(crate) fn encode_layer_listing(l: &crate::package::LayerListing) -> Vec<u8> {
    use crate::package::layer::LayerChange;
    let mut out = Vec::with_capacity(64 + 48 * l.changes.len());
    let mut body = Vec::with_capacity(48 * l.changes.len());
    let mut kept = 0u32;
    let mut truncated = l.truncated;
    for c in &l.changes {
        if body.len() > LISTING_MAX_BYTES || kept == u32::MAX {
            truncated = true;
            break;
        }
        kept += 1;
        match c {
            LayerChange::Entry(e) => {
                body.push(0);
                put_bytes(&mut body, &e.path);
                put_meta(&mut body, &e.meta);
            }
            LayerChange::Whiteout(p) => {
                body.push(1);
                put_bytes(&mut body, p);
            }
            LayerChange::Opaque(p) => {
                body.push(2);
                put_bytes(&mut body, p);
            }
        }
    }
    let flags = u8::from(truncated) | (u8::from(l.error.is_some()) << 1);
    out.push(flags);
    out.extend_from_slice(&l.skipped.to_le_bytes());
    out.extend_from_slice(&l.uncompressed_bytes.to_le_bytes());
    put_bytes(&mut out, l.error.as_deref().unwrap_or("").as_bytes());
    out.extend_from_slice(&kept.to_le_bytes());
    out.extend_from_slice(&body);
    let captured = u32::try_from(l.captured.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&captured.to_le_bytes());
    for (p, b) in l.captured.iter().take(captured as usize) {
        put_bytes(&mut out, p);
        put_bytes(&mut out, b);
    }
    out
}

/// An entry's fields after its path, as a listing and a directory chunk store them.
fn put_meta(body: &mut Vec<u8>, f: &crate::package::layer::EntryMeta) {
    body.push(entry_kind_byte(f.kind));
    body.extend_from_slice(&f.size.to_le_bytes());
    body.extend_from_slice(&f.mode.to_le_bytes());
    body.extend_from_slice(&f.uid.to_le_bytes());
    body.extend_from_slice(&f.gid.to_le_bytes());
    body.extend_from_slice(&f.mtime.to_le_bytes());
    match &f.link {
        Some(t) => {
            body.push(1);
            put_bytes(body, t);
        }
        None => body.push(0),
    }
}

fn read_meta(
    r: &mut Reader<'_>,
    w: &'static str,
) -> Result<crate::package::layer::EntryMeta, Corrupt> {
    use crate::package::EntryKind::*;
    let kind = match r.u8(w)? {
        0 => File,
        1 => Dir,
        2 => Symlink,
        3 => HardLink,
        4 => CharDevice,
        5 => BlockDevice,
        6 => Fifo,
        7 => Other,
        _ => return Err(Corrupt(w)),
    };
    Ok(crate::package::layer::EntryMeta {
        kind,
        size: r.u64(w)?,
        mode: r.u32(w)?,
        uid: r.u64(w)?,
        gid: r.u64(w)?,
        mtime: r.u64(w)?,
        link: match r.u8(w)? {
            0 => None,
            1 => Some(r.bytes(w)?.into()),
            _ => return Err(Corrupt(w)),
        },
    })
}

/// One chunk of a directory: u32 count, then per entry its name, its fields, the layer
/// that set it (u32) and whether it is implicit (u8).
pub(crate) fn encode_dir_chunk(entries: &[(Box<[u8]>, &crate::package::FsNode)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 48 * entries.len());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (name, n) in entries {
        put_bytes(&mut out, name);
        put_meta(&mut out, &n.meta);
        out.extend_from_slice(&(n.layer as u32).to_le_bytes());
        out.push(u8::from(n.implicit));
    }
    out
}

pub(crate) fn decode_dir_chunk(
    b: &[u8],
) -> Result<Vec<crate::package::version::Named<crate::package::FsNode>>, Corrupt> {
    const W: &str = "directory chunk";
    let mut r = Reader(b);
    let n = r.u32(W)?;
    let mut out = Vec::with_capacity((n as usize).min(b.len() / 8));
    for _ in 0..n {
        let name: Box<[u8]> = r.bytes(W)?.into();
        let meta = read_meta(&mut r, W)?;
        let layer = r.u32(W)? as usize;
        let implicit = match r.u8(W)? {
            0 => false,
            1 => true,
            _ => return Err(Corrupt(W)),
        };
        out.push((
            name,
            crate::package::FsNode {
                meta,
                layer,
                implicit,
            },
        ));
    }
    if !r.0.is_empty() {
        return Err(Corrupt(W));
    }
    Ok(out)
}

/// Paths: u32 count, then each as bytes.
pub(crate) fn encode_paths(paths: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + paths.iter().map(|p| p.len() + 4).sum::<usize>());
    out.extend_from_slice(&(paths.len() as u32).to_le_bytes());
    for p in paths {
        put_bytes(&mut out, p);
    }
    out
}

pub(crate) fn decode_paths(b: &[u8]) -> Result<Vec<Box<[u8]>>, Corrupt> {
    const W: &str = "path list";
    let mut r = Reader(b);
    let n = r.u32(W)?;
    let mut out = Vec::with_capacity((n as usize).min(b.len() / 4));
    for _ in 0..n {
        out.push(r.bytes(W)?.into());
    }
    if !r.0.is_empty() {
        return Err(Corrupt(W));
    }
    Ok(out)
}

fn entry_kind_byte(k: crate::package::EntryKind) -> u8 {
    use crate::package::EntryKind::*;
    match k {
        File => 0,
        Dir => 1,
        Symlink => 2,
        HardLink => 3,
        CharDevice => 4,
        BlockDevice => 5,
        Fifo => 6,
        Other => 7,
    }
}

pub(crate) fn decode_layer_listing(b: &[u8]) -> Result<crate::package::LayerListing, Corrupt> {
    use crate::package::layer::{LayerChange, LayerEntry};
    const W: &str = "layer listing";
    let mut r = Reader(b);
    let flags = r.u8(W)?;
    let skipped = r.u64(W)?;
    let uncompressed_bytes = r.u64(W)?;
    let error = r.string(W)?;
    let n = r.u32(W)?;
    // Each change takes at least 5 bytes: a count past what is left is corrupt, not a
    // reason to reserve memory.
    let mut changes = Vec::with_capacity((n as usize).min(b.len() / 5));
    for _ in 0..n {
        let tag = r.u8(W)?;
        let path: Box<[u8]> = r.bytes(W)?.into();
        changes.push(match tag {
            0 => LayerChange::Entry(LayerEntry {
                path,
                meta: read_meta(&mut r, W)?,
            }),
            1 => LayerChange::Whiteout(path),
            2 => LayerChange::Opaque(path),
            _ => return Err(Corrupt(W)),
        });
    }
    let m = r.u32(W)?;
    let mut captured = Vec::with_capacity((m as usize).min(b.len() / 8));
    for _ in 0..m {
        let p: Box<[u8]> = r.bytes(W)?.into();
        captured.push((p, r.bytes(W)?.to_vec()));
    }
    if !r.0.is_empty() {
        return Err(Corrupt(W));
    }
    Ok(crate::package::LayerListing {
        changes,
        captured,
        skipped,
        truncated: flags & 1 != 0,
        error: (flags & 2 != 0).then_some(error),
        uncompressed_bytes,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn layer_listings_round_trip_and_truncations_are_corrupt() {
        use crate::package::layer::{LayerChange, LayerEntry};
        use crate::package::{EntryKind, LayerListing};
        let l = LayerListing {
            changes: vec![
                LayerChange::Entry(LayerEntry {
                    path: b"usr/bin/x".to_vec().into(),
                    meta: crate::package::EntryMeta {
                        kind: EntryKind::Symlink,
                        size: 0,
                        mode: 0o777,
                        uid: 1,
                        gid: 2,
                        mtime: 3,
                        link: Some(b"y".to_vec().into()),
                    },
                }),
                LayerChange::Entry(LayerEntry {
                    path: vec![0xff, b'a'].into(),
                    meta: crate::package::EntryMeta {
                        kind: EntryKind::File,
                        size: u64::MAX,
                        mode: 0o644,
                        uid: 0,
                        gid: 0,
                        mtime: 0,
                        link: None,
                    },
                }),
                LayerChange::Whiteout(b"etc/motd".to_vec().into()),
                LayerChange::Opaque(Vec::new().into()),
            ],
            captured: vec![(b"etc/os-release".to_vec().into(), b"ID=x".to_vec())],
            skipped: 7,
            truncated: true,
            error: Some("corrupt deflate stream".into()),
            uncompressed_bytes: 12345,
        };
        let enc = encode_layer_listing(&l);
        assert_eq!(decode_layer_listing(&enc).unwrap(), l);
        let plain = LayerListing::default();
        assert_eq!(
            decode_layer_listing(&encode_layer_listing(&plain)).unwrap(),
            plain
        );
        for n in 0..enc.len() {
            assert!(decode_layer_listing(&enc[..n]).is_err(), "prefix {n}");
        }
        let mut padded = enc.clone();
        padded.push(0);
        assert!(decode_layer_listing(&padded).is_err());
    }

    use super::*;
    use crate::Alg;

    #[test]
    fn every_value_encoding_round_trips() {
        let loc = BlobLoc {
            pack: 7,
            offset: 1 << 40,
            len: 3,
        };
        assert_eq!(decode_loc(&encode_loc(&loc)).unwrap(), loc);
        let p = PackRow {
            kind: PACK_SINGLE,
            committed_len: 99,
        };
        assert_eq!(decode_pack(&encode_pack(&p)).unwrap(), p);
        let mut u = UploadRow {
            repo: "a/b/c".into(),
            created: 17,
            shared: None,
        };
        assert_eq!(decode_upload(&encode_upload(&u)).unwrap(), u);
        u.shared = Some(SharedUpload {
            len: 5 << 30,
            touched: 18,
            sha256: vec![9; 105],
            parts: vec![(0, 7), (1 << 20, u64::MAX), (3 << 30, 0)],
        });
        let b = encode_upload(&u);
        assert_eq!(decode_upload(&b).unwrap(), u);
        assert!(
            decode_upload(&b[..b.len() - 1]).is_err(),
            "a cut row is corrupt"
        );
        let k = BlobKey::sha256_of(b"s");
        let m = decode_manifest(&encode_manifest("t/x", Some(&k), b"{}")).unwrap();
        assert_eq!(
            m,
            ManifestRow {
                media_type: "t/x".into(),
                subject: Some(k.clone()),
                body: b"{}".to_vec()
            }
        );
        let rec = ReferrerRec {
            media_type: "m".into(),
            key: BlobKey {
                alg: Alg::Sha512,
                hash: vec![3; 64],
            },
            size: 12,
            artifact_type: None,
            annotations: Some("{\"a\":\"b\"}".into()),
        };
        assert_eq!(decode_referrer(&encode_referrer(&rec)).unwrap(), rec);
    }

    #[test]
    fn truncated_values_decode_to_corrupt_not_panic() {
        let rec = ReferrerRec {
            media_type: "m".into(),
            key: BlobKey::sha256_of(b""),
            size: 1,
            artifact_type: Some("x".into()),
            annotations: None,
        };
        let full = encode_referrer(&rec);
        for cut in 0..full.len() {
            assert!(decode_referrer(&full[..cut]).is_err(), "cut {cut}");
        }
        assert!(decode_loc(&[0; 23]).is_err());
        assert!(decode_manifest(&[5, 0, 0, 0, b'a']).is_err());
    }
}
