//! `Engine::check` (backs `berth check` and ends every crash test) and `Engine::stats`.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use crate::kv::ReadableTable;
use sha2::Digest;

use crate::keys::{Alg, BlobKey};
use crate::pack::format::{
    parse_pack_header, parse_record_header, PACK_HEADER_LEN, RECORD_HEADER_LEN,
};
use crate::schema::{self, PackRow};
use crate::{CheckOptions, CheckReport, Inner, StoreError, StoreStats};

pub(crate) fn run(inner: &Inner, opts: CheckOptions) -> Result<CheckReport, StoreError> {
    let mut report = CheckReport {
        problems: Vec::new(),
        repaired: inner.repaired.clone(),
    };
    let p = &mut report.problems;
    let txn = inner.db.begin_read()?;

    let kept = totals(&txn)?;
    let counted = schema::count_totals(
        &txn.open_table(schema::BLOBS)?,
        &txn.open_table(schema::PACKS)?,
    );
    match counted {
        Ok(c) if c == kept => {}
        Ok(c) => p.push(format!(
            "the kept totals ({} blob bytes, {} pack bytes) differ from the tables' ({}, {})",
            kept.blob_bytes, kept.pack_bytes, c.blob_bytes, c.pack_bytes
        )),
        // An undecodable row: reported below, where each table is read.
        Err(_) => {}
    }

    let mut packs: HashMap<u64, PackRow> = HashMap::new();
    for entry in txn.open_table(schema::PACKS)?.iter()? {
        let (k, v) = entry?;
        let id = k.value();
        match schema::decode_pack(v.value()) {
            Ok(row) => {
                let name = crate::pack::format::pack_name(id);
                match inner.fs.len_of(&name) {
                    Ok(len) if len < row.committed_len => p.push(format!(
                        "pack {id} holds {len} bytes but {} are committed",
                        row.committed_len
                    )),
                    Ok(_) => match read_pack_header(&*inner.fs, &name) {
                        Ok((_, hid)) if hid == id => {}
                        Ok((_, hid)) => p.push(format!("pack {id}'s header names pack {hid}")),
                        Err(why) => p.push(format!("pack {id}: {why}")),
                    },
                    Err(e) => p.push(format!("pack {id} ({}): {e}", inner.fs.describe(&name))),
                }
                packs.insert(id, row);
            }
            Err(c) => p.push(format!("pack {id}: undecodable row ({})", c.0)),
        }
    }

    let blobs = txn.open_table(schema::BLOBS)?;
    for entry in blobs.iter()? {
        let (k, v) = entry?;
        let Some(key) = BlobKey::decode(k.value()) else {
            p.push("a blob row has an undecodable key".into());
            continue;
        };
        let loc = match schema::decode_loc(v.value()) {
            Ok(l) => l,
            Err(c) => {
                p.push(format!("blob {key}: undecodable location ({})", c.0));
                continue;
            }
        };
        let Some(row) = packs.get(&loc.pack) else {
            p.push(format!(
                "blob {key} is in pack {}, which no row names",
                loc.pack
            ));
            continue;
        };
        let end = loc.offset.checked_add(loc.len);
        if loc.offset < RECORD_HEADER_LEN || end.is_none_or(|e| e > row.committed_len) {
            p.push(format!(
                "blob {key} at {}..+{} lies outside pack {}'s {} committed bytes",
                loc.offset, loc.len, loc.pack, row.committed_len
            ));
            continue;
        }
        let map = match inner.packs.map_covering(loc.pack, loc.offset + loc.len) {
            Ok(m) => m,
            Err(e) => {
                p.push(format!("blob {key}: {e}"));
                continue;
            }
        };
        let bytes = map.bytes();
        let hdr = &bytes[(loc.offset - RECORD_HEADER_LEN) as usize..loc.offset as usize];
        match parse_record_header(hdr) {
            Ok((k2, len)) if k2 == key && len == loc.len => {}
            Ok(_) => p.push(format!("blob {key}: its record header names other content")),
            Err(why) => p.push(format!("blob {key}: {why}")),
        }
        if opts.rehash {
            let data = &bytes[loc.offset as usize..(loc.offset + loc.len) as usize];
            let got = match key.alg {
                Alg::Sha256 => sha2::Sha256::digest(data).to_vec(),
                Alg::Sha512 => sha2::Sha512::digest(data).to_vec(),
            };
            if got != key.hash {
                p.push(format!(
                    "blob {key}: bytes in pack {} do not hash to its key",
                    loc.pack
                ));
            }
        }
    }

    for entry in txn.open_table(schema::BLOB_LINKS)?.iter()? {
        let (k, _) = entry?;
        let (repo, kb) = k.value();
        if blobs.get(kb)?.is_none() {
            p.push(format!("{repo} links a blob that is not stored"));
        }
    }
    let manifests = txn.open_table(schema::MANIFESTS)?;
    for entry in manifests.iter()? {
        let (k, v) = entry?;
        let (repo, kb) = k.value();
        if let Err(c) = schema::decode_manifest(v.value()) {
            p.push(format!("{repo}: undecodable manifest row ({})", c.0));
        }
        if BlobKey::decode(kb).is_none() {
            p.push(format!("{repo}: manifest row with an undecodable key"));
        }
    }
    let links = txn.open_table(schema::BLOB_LINKS)?;
    for entry in txn.open_table(schema::MANIFEST_REFS)?.iter()? {
        let (k, kind) = entry?;
        let (repo, m, target) = k.value();
        if manifests.get((repo, m))?.is_none() {
            p.push(format!(
                "{repo}: references recorded for a manifest that is gone"
            ));
        }
        // Blob links and child manifests may be deleted on their own (spec §8.3), and
        // garbage collection then removes bytes no repository links: only a blob the
        // repository still links must be stored.
        if kind.value() == schema::REF_BLOB
            && blobs.get(target)?.is_none()
            && links.get((repo, target))?.is_some()
        {
            let t = BlobKey::decode(target).map_or("?".into(), |k| k.to_string());
            p.push(format!(
                "{repo}: a manifest references blob {t}, which is not stored"
            ));
        }
    }
    for entry in txn.open_table(schema::TAGS)?.iter()? {
        let (k, v) = entry?;
        let (repo, tag) = k.value();
        if manifests.get((repo, v.value()))?.is_none() {
            p.push(format!(
                "{repo}:{tag} points to a manifest that is not in the repository"
            ));
        }
    }
    for entry in txn.open_table(schema::REFERRERS)?.iter()? {
        let (k, v) = entry?;
        let (repo, _, r) = k.value();
        if manifests.get((repo, r))?.is_none() {
            p.push(format!(
                "{repo}: a referrer entry names a manifest that is gone"
            ));
        }
        if let Err(c) = schema::decode_referrer(v.value()) {
            p.push(format!("{repo}: undecodable referrer entry ({})", c.0));
        }
    }
    for entry in txn.open_table(schema::UPLOADS)?.iter()? {
        let (k, v) = entry?;
        let id = k.value();
        // A shared store's session lives in its parts, whichever node holds a file.
        let shared = match schema::decode_upload(v.value()) {
            Ok(row) => row.shared,
            Err(c) => {
                p.push(format!("upload session {id}: undecodable row ({})", c.0));
                continue;
            }
        };
        match shared {
            Some(s) => {
                for (start, tag) in s.parts {
                    let part = crate::pack::format::part_name(id, start, tag);
                    if inner.fs.len_of(&part).is_err() {
                        p.push(format!(
                            "upload session {id} is missing its part at {start}"
                        ));
                    }
                }
            }
            None => {
                if inner
                    .fs
                    .len_of(&crate::pack::format::upload_name(id))
                    .is_err()
                {
                    p.push(format!("upload session {id} has no file"));
                }
            }
        }
    }
    check_tenancy(&txn, p)?;
    check_package_index(&txn, p)?;
    let failed = inner.failed_packs.lock().unwrap_or_else(|e| e.into_inner());
    for id in failed.iter() {
        p.push(format!("pack {id} latched read-only after an I/O error"));
    }
    Ok(report)
}

/// Counters for `/metrics`, in constant time: table lengths (which redb keeps) and the
/// totals the commits keep (`schema::META_TOTALS`), never a scan.
pub(crate) fn stats(inner: &Inner) -> Result<StoreStats, StoreError> {
    let txn = inner.db.begin_read()?;
    let blobs = txn.open_table(schema::BLOBS)?;
    let totals = totals(&txn)?;
    let failed = inner
        .failed_packs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len();
    Ok(StoreStats {
        blobs: blobs.len()?,
        blob_bytes: totals.blob_bytes,
        pack_bytes: totals.pack_bytes,
        manifests: txn.open_table(schema::MANIFESTS)?.len()?,
        repositories: txn.open_table(schema::REPOS)?.len()?,
        uploads_open: inner.uploads.count() as u64,
        failed_packs: failed as u64,
        gc_runs: inner.gc.runs.load(Relaxed),
        gc_blobs_removed: inner.gc.blobs.load(Relaxed),
        gc_pack_bytes_removed: inner.gc.pack_bytes.load(Relaxed),
        open_packs: inner.packs.open_count() as u64,
        metadata_latency: inner.db.latency(),
        object_latency: inner.fs.latency(),
    })
}

fn totals(txn: &crate::kv::ReadTransaction) -> Result<schema::Totals, StoreError> {
    Ok(txn
        .open_table(schema::META)?
        .get(schema::META_TOTALS)?
        .map(|v| schema::decode_totals(v.value()))
        .transpose()?
        .unwrap_or_default())
}

/// The package index's rows hang off what they describe: a layer's names off its listing,
/// a version's rows off its manifest.
fn check_package_index(
    txn: &crate::kv::ReadTransaction,
    p: &mut Vec<String>,
) -> Result<(), StoreError> {
    let listings = txn.open_table(schema::LAYER_LISTINGS)?;
    let manifests = txn.open_table(schema::MANIFESTS)?;
    let name = |k: &[u8]| BlobKey::decode(k).map_or("?".into(), |k| k.to_string());
    let mut seen = std::collections::HashSet::new();
    for entry in txn.open_table(schema::PACKAGE_NAMES)?.iter()? {
        let (k, _) = entry?;
        let (_, layer) = k.value();
        if seen.insert(layer.to_vec()) && listings.get(layer)?.is_none() {
            p.push(format!(
                "the path search names layer {}, which has no listing",
                name(layer)
            ));
        }
    }
    for entry in txn.open_table(schema::PACKAGE_VERSIONS)?.iter()? {
        let (k, _) = entry?;
        let (repo, kb) = k.value();
        if manifests.get((repo, kb))?.is_none() {
            p.push(format!(
                "{repo}: the package index records manifest {}, which is gone",
                name(kb)
            ));
        }
    }
    Ok(())
}

/// Registries belong to stored orgs; tokens decode, and the hash and org indexes agree with
/// them both ways; audit rows decode.
fn check_tenancy(txn: &crate::kv::ReadTransaction, p: &mut Vec<String>) -> Result<(), StoreError> {
    let orgs = txn.open_table(schema::ORGS)?;
    for entry in orgs.iter()? {
        let (k, v) = entry?;
        if let Err(c) = crate::tenancy::records::decode_org(k.value(), v.value()) {
            p.push(format!("organisation {}: {}", k.value(), c.0));
        }
    }
    for entry in txn.open_table(schema::REGISTRIES)?.iter()? {
        let (k, v) = entry?;
        let (org, slug) = k.value();
        if let Err(c) = crate::tenancy::records::decode_registry(org, slug, v.value()) {
            p.push(format!("registry {org}/{slug}: {}", c.0));
        }
        if orgs.get(org)?.is_none() {
            p.push(format!(
                "registry {org}/{slug} belongs to no stored organisation"
            ));
        }
    }
    let tokens = txn.open_table(schema::TOKENS)?;
    let hashes = txn.open_table(schema::TOKEN_HASHES)?;
    let by_org = txn.open_table(schema::ORG_TOKENS)?;
    for entry in tokens.iter()? {
        let (k, v) = entry?;
        let id = k.value();
        let t = match crate::tenancy::records::decode_token(id, v.value()) {
            Ok(t) => t,
            Err(c) => {
                p.push(format!("token {id}: {}", c.0));
                continue;
            }
        };
        if hashes
            .get(&t.hash[..])?
            .map(|v| v.value().to_owned())
            .as_deref()
            != Some(id)
        {
            p.push(format!("token {id} is missing from the hash index"));
        }
        let org = t.org.as_deref().unwrap_or(schema::ADMIN_ORG);
        if by_org.get((org, id))?.is_none() {
            p.push(format!(
                "token {id} is missing from its organisation's index"
            ));
        }
    }
    for entry in hashes.iter()? {
        let (k, v) = entry?;
        let id = v.value();
        let ok = match tokens.get(id)? {
            Some(row) => crate::tenancy::records::decode_token(id, row.value())
                .is_ok_and(|t| t.hash[..] == *k.value()),
            None => false,
        };
        if !ok {
            p.push(format!(
                "the hash index names token {id} under another hash or none"
            ));
        }
    }
    for entry in by_org.iter()? {
        let (k, _) = entry?;
        let (org, id) = k.value();
        let ok = match tokens.get(id)? {
            Some(row) => crate::tenancy::records::decode_token(id, row.value())
                .is_ok_and(|t| t.org.as_deref().unwrap_or(schema::ADMIN_ORG) == org),
            None => false,
        };
        if !ok {
            p.push(format!(
                "the index of organisation {org:?} names token {id}, not its own"
            ));
        }
    }
    for entry in txn.open_table(schema::AUDIT)?.iter()? {
        let (k, v) = entry?;
        let (org, seq) = k.value();
        if let Err(c) = crate::tenancy::records::decode_audit(org, seq, v.value()) {
            p.push(format!("audit entry {org:?} #{seq}: {}", c.0));
        }
    }
    Ok(())
}

fn read_pack_header(fs: &dyn crate::vfs::Vfs, name: &str) -> Result<(u32, u64), String> {
    let f = fs
        .open(name, crate::vfs::OpenMode::Read)
        .map_err(|e| e.to_string())?;
    let mut h = [0u8; PACK_HEADER_LEN as usize];
    f.read_exact_at(&mut h, 0).map_err(|e| e.to_string())?;
    parse_pack_header(&h).map_err(str::to_owned)
}
