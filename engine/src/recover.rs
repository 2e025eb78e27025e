//! Opening a store: the lock, the schema, and the repairs a crash may call for.
//!
//! Runs before the committer starts and before anything is mapped, so it may truncate and
//! delete freely. Every repair is named in `CheckReport::repaired`.

use std::collections::BTreeSet;

use std::sync::Arc;

use crate::kv::pg::PgDb;
use crate::kv::ReadableTable;

use crate::commit::{sync_dir, Tables};
use crate::keys::UploadId;
use crate::pack::format::{
    pack_name, parse_pack_file_name, upload_name, PACKS, UPLOADS, UPLOAD_RESERVED,
};
use crate::schema::{self, PACK_SHARED};
use crate::tenancy::records::TenancyTables;
use crate::upload::Sessions;
use crate::vfs::{Held, OpenMode, Vfs};
use crate::{Clock, EngineOptions, StoreError};

pub(crate) struct Opened {
    pub db: crate::metadb::Opened,
    pub opts: EngineOptions,
    pub clock: Clock,
    pub sessions: Sessions,
    pub next_pack: u64,
    /// The shared pack to keep appending to: (id, committed length).
    pub resume_shared: Option<(u64, u64)>,
    pub repaired: Vec<String>,
    pub lock: Held,
}

fn mkdir(fs: &dyn Vfs, dir: &str) -> Result<(), StoreError> {
    fs.create_dir(dir)
        .map_err(|e| StoreError::io(format!("create directory {}", fs.describe(dir)), e))
}

/// Takes the store's exclusive lock, or says who holds it. A refusal is an I/O error of
/// kind `WouldBlock` whose `what` names the directory and the holder's pid, so a caller can
/// tell it from a failing disk and say what to do.
fn lock(fs: &dyn Vfs) -> Result<Held, StoreError> {
    match fs.lock() {
        Ok(Some(held)) => Ok(held),
        Ok(None) => {
            let owner = holder(fs).map_or_else(String::new, |pid| format!(" (pid {pid})"));
            Err(StoreError::io(
                format!(
                    "data directory {} is in use by another berth{owner}",
                    fs.describe("")
                ),
                std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!("{} is locked", fs.describe("lock")),
                ),
            ))
        }
        Err(e) => Err(StoreError::io(format!("lock {}", fs.describe("lock")), e)),
    }
}

/// The pid the lock's holder wrote in it (`RealFs::lock`), if there is one.
fn holder(fs: &dyn Vfs) -> Option<u32> {
    let f = fs.open("lock", OpenMode::Read).ok()?;
    let mut buf = [0u8; 24];
    let n = f.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

pub(crate) fn open(fs: &dyn Vfs, opts: EngineOptions, clock: Clock) -> Result<Opened, StoreError> {
    mkdir(fs, "")?;
    let lock = lock(fs)?;
    mkdir(fs, PACKS)?;
    mkdir(fs, UPLOADS)?;
    let db = match &opts.metadata {
        crate::Metadata::Embedded => crate::metadb::Opened::Redb(crate::metadb::open_db(fs)?),
        crate::Metadata::Postgres { url, limits } => {
            crate::metadb::Opened::Pg(Arc::new(PgDb::connect(url, *limits)?))
        }
    };
    // The directories and the database's entry are durable before anything is stored in
    // them: a new store's first commit must not vanish with a directory entry.
    sync_dir(fs, "")?;
    let mut repaired = Vec::new();

    let txn = match &db {
        crate::metadb::Opened::Redb(db) => crate::kv::WriteTransaction::Redb(db.begin_write()?),
        crate::metadb::Opened::Pg(pg) => crate::kv::WriteTransaction::begin_pg(pg)?,
    };
    let mut resume_shared = None;
    let mut max_pack = 0u64;
    let mut named_packs = BTreeSet::new();
    let mut sessions_found = Vec::new();
    // Manifests stored before the package queue existed are queued by the upgrade.
    let mut queue_all = false;
    {
        let mut meta = txn.open_table(schema::META)?;
        let version = meta
            .get(schema::META_SCHEMA)?
            .map(|v| schema::decode_schema_version(v.value()))
            .transpose()?;
        match version {
            None => {
                meta.insert(schema::META_SCHEMA, &schema::encode_schema_version()[..])?;
            }
            Some(v) if v == schema::SCHEMA_VERSION => {}
            // Older layouts differ only by missing tables, created just below.
            Some(v) if schema::SCHEMA_UPGRADABLE.contains(&v) => {
                meta.insert(schema::META_SCHEMA, &schema::encode_schema_version()[..])?;
                repaired.push(format!(
                    "upgraded the store from schema version {v} to {}",
                    schema::SCHEMA_VERSION
                ));
                // Version 4 records what version 3 only listed: index everything again.
                if v < 4 {
                    queue_all = true;
                }
            }
            Some(v) => {
                let place = match &db {
                    crate::metadb::Opened::Redb(_) => fs.describe(""),
                    crate::metadb::Opened::Pg(pg) => {
                        format!("the PostgreSQL database {}", pg.place)
                    }
                };
                return Err(StoreError::new(format!(
                    "{place} holds a store of schema version {v}, written by a newer Berth; \
                     this Berth reads versions up to {}: upgrade Berth to open it",
                    schema::SCHEMA_VERSION
                )));
            }
        }
        drop(meta);
        // Creates every table, so read transactions never meet a missing one.
        drop(TenancyTables::open(&txn)?);
        let mut t = Tables::open(&txn)?;
        // A store from before the totals were kept counts them once.
        if txn
            .open_table(schema::META)?
            .get(schema::META_TOTALS)?
            .is_none()
        {
            let totals = schema::count_totals(&t.blobs, &t.packs)?;
            txn.open_table(schema::META)?
                .insert(schema::META_TOTALS, &schema::encode_totals(&totals)[..])?;
        }
        if queue_all {
            crate::package_store::forget_every_listing(&mut t)?;
            let n = crate::package_store::queue_every_manifest(&mut t)?;
            repaired.push(format!("queued {n} manifests for package details"));
        }

        // Pack tails past their committed length were never named by a committed row. On a
        // shared store another node may be writing a pack right now, and packs are written
        // in one batch: nothing to cut, nothing to resume.
        let shared = fs.shared();
        for entry in t.packs.iter()? {
            if shared {
                break;
            }
            let (k, v) = entry?;
            let id = k.value();
            let row = schema::decode_pack(v.value())?;
            named_packs.insert(id);
            max_pack = max_pack.max(id);
            let name = pack_name(id);
            let Ok(f) = fs.open(&name, OpenMode::Write) else {
                continue; // missing: `check` reports it; nothing to repair here
            };
            let len = f
                .len()
                .map_err(|e| StoreError::io(format!("stat {}", fs.describe(&name)), e))?;
            if len > row.committed_len {
                f.set_len(row.committed_len)
                    .and_then(|()| f.sync_data())
                    .map_err(|e| StoreError::io(format!("truncate {}", fs.describe(&name)), e))?;
                repaired.push(format!(
                    "cut {} uncommitted bytes from the tail of pack {id}",
                    len - row.committed_len
                ));
            }
            if row.kind == PACK_SHARED && row.committed_len < opts.shared_pack_bytes {
                resume_shared = Some((id, row.committed_len));
            }
        }

        // Sessions: keep those whose file is there; drop rows without a file.
        let mut dead_rows = Vec::new();
        // On a shared store, sessions without a file here may be another node's.
        for entry in t.uploads.iter()?.take_while(|_| !shared) {
            let (k, v) = entry?;
            let id = k.value().to_owned();
            match (UploadId::parse(&id), schema::decode_upload(v.value())) {
                (Some(uid), Ok(row)) => sessions_found.push((uid, row)),
                _ => dead_rows.push(id),
            }
        }
        let mut kept = Vec::new();
        for (uid, row) in sessions_found.drain(..) {
            let name = upload_name(uid.as_str());
            match fs.open(&name, OpenMode::Write) {
                Ok(f) => {
                    let stat = |e| StoreError::io(format!("stat {}", fs.describe(&name)), e);
                    let len = f.len().map_err(stat)?;
                    if len < UPLOAD_RESERVED {
                        drop(f);
                        let _ = fs.remove(&name);
                        dead_rows.push(uid.as_str().to_owned());
                        continue;
                    }
                    let mtime = f.modified_secs().map_err(stat)?;
                    let len = len - UPLOAD_RESERVED;
                    kept.push((uid, row, f, len, mtime));
                }
                Err(_) => dead_rows.push(uid.as_str().to_owned()),
            }
        }
        for id in &dead_rows {
            t.uploads.remove(id.as_str())?;
            repaired.push(format!("dropped upload session {id}: its file was missing"));
        }
        sessions_found.clear();
        let sessions = Sessions::new()?;
        let mut live_ids = BTreeSet::new();
        for (uid, row, f, len, mtime) in kept {
            live_ids.insert(uid.as_str().to_owned());
            sessions.restore(uid, row.repo, f, len, row.created.max(mtime));
        }
        drop(t);

        // Files no committed row names: packs renamed in by an upload whose commit never
        // happened, upload files whose session row never committed.
        let mut removed_any = false;
        // On a shared store a pack no row names yet may be another node's, about to commit.
        let unnamed = if shared { Vec::new() } else { list(fs, PACKS)? };
        for name in unnamed {
            let Some(id) = parse_pack_file_name(&name) else {
                continue;
            };
            max_pack = max_pack.max(id);
            if !named_packs.contains(&id) {
                let name = pack_name(id);
                fs.remove(&name)
                    .map_err(|e| StoreError::io(format!("remove {}", fs.describe(&name)), e))?;
                repaired.push(format!("removed pack {id}: no committed blob names it"));
                removed_any = true;
            }
        }
        if removed_any {
            sync_dir(fs, PACKS)?;
        }
        let mut removed_any = false;
        for name in list(fs, UPLOADS)? {
            if !live_ids.contains(&name) {
                let _ = fs.remove(&upload_name(&name));
                repaired.push(format!("removed upload file {name}: no session names it"));
                removed_any = true;
            }
        }
        if removed_any {
            sync_dir(fs, UPLOADS)?;
        }
        txn.commit()?;
        Ok(Opened {
            db,
            opts,
            clock,
            sessions,
            next_pack: max_pack + 1,
            resume_shared,
            repaired,
            lock,
        })
    }
}

fn list(fs: &dyn Vfs, dir: &str) -> Result<Vec<String>, StoreError> {
    fs.list(dir)
        .map_err(|e| StoreError::io(format!("list {}", fs.describe(dir)), e))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use redb::Database;

    use crate::schema;
    use crate::{Engine, EngineOptions};

    /// Rewrites the store's metadata as schema `version` would have left it.
    fn set_version(dir: &Path, version: u32, drop_tenancy: bool) {
        let db = Database::open(dir.join("meta.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        if drop_tenancy {
            assert!(txn.delete_table(schema::ORGS).unwrap());
            assert!(txn.delete_table(schema::REGISTRIES).unwrap());
            assert!(txn.delete_table(schema::TOKENS).unwrap());
            assert!(txn.delete_table(schema::TOKEN_HASHES).unwrap());
            assert!(txn.delete_table(schema::ORG_TOKENS).unwrap());
            assert!(txn.delete_table(schema::AUDIT).unwrap());
        }
        txn.open_table(schema::META)
            .unwrap()
            .insert(schema::META_SCHEMA, &version.to_le_bytes()[..])
            .unwrap();
        txn.commit().unwrap();
    }

    #[test]
    fn a_schema_1_store_is_upgraded_in_place_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(Engine::open(dir.path(), EngineOptions::default()).unwrap());
        set_version(dir.path(), 1, true);
        let e = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        let report = e.check().unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
        assert!(report
            .repaired
            .iter()
            .any(|r| r.contains("schema version 1 to 5")));
        assert!(e.list_orgs().unwrap().is_empty());
        e.create_org("acme", 1).unwrap();
        drop(e);

        set_version(dir.path(), schema::SCHEMA_VERSION + 1, false);
        let refused = Engine::open(dir.path(), EngineOptions::default());
        assert!(refused.is_err_and(|e| e.to_string().contains("schema version 6")));
    }

    #[test]
    fn a_schema_3_store_queues_its_manifests_for_package_details() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        let m = crate::NewManifest {
            key: crate::BlobKey::sha256_of(b"{}"),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            body: b"{}".to_vec(),
            tags: vec!["t".into()],
            blobs: vec![],
            external: vec![],
            manifests: vec![],
            subject: None,
        };
        let key = m.key.clone();
        let _ = e.put_manifest("app", m).unwrap();
        e.package_done(&[("app".into(), key.clone())]).unwrap();
        assert!(e.package_queue(10).unwrap().is_empty());
        drop(e);
        // A version 3 store had no version records: its manifests are indexed again.
        set_version(dir.path(), 3, false);
        let e = Engine::open(dir.path(), EngineOptions::default()).unwrap();
        assert_eq!(e.package_queue(10).unwrap(), [("app".to_owned(), key)]);
        let report = e.check().unwrap();
        assert!(report
            .repaired
            .iter()
            .any(|r| r.contains("queued 1 manifests")));
    }

    /// Every directory and file the store makes is its owner's alone (private layers),
    /// whatever the umask allowed (the tests run under the usual 022).
    #[test]
    fn the_store_is_created_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("store");
        let opts = EngineOptions {
            small_blob_bytes: 16,
            ..EngineOptions::default()
        };
        let e = Engine::open(&dir, opts).unwrap();
        for data in [&b"small"[..], &[5u8; 100][..]] {
            let up = e.start_upload("r").unwrap();
            e.append_upload("r", &up.id, 0, data).unwrap();
            e.finish_upload("r", &up.id, &crate::BlobKey::sha256_of(data))
                .unwrap()
                .into_inner();
        }
        let open = e.start_upload("r").unwrap();
        e.append_upload("r", &open.id, 0, b"pending").unwrap();
        let mut seen = 0;
        let mut stack = vec![dir.clone()];
        while let Some(p) = stack.pop() {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let want = if m.is_dir() {
                stack.extend(std::fs::read_dir(&p).unwrap().map(|d| d.unwrap().path()));
                crate::DIR_MODE
            } else {
                crate::FILE_MODE
            };
            assert_eq!(m.permissions().mode() & 0o777, want, "{}", p.display());
            seen += 1;
        }
        // The store, packs/, uploads/, meta.redb, lock, two packs, one upload file.
        assert_eq!(seen, 8);
    }
}
