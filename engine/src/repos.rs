//! Repositories by name prefix: one registry's images (`org/registry/`), for the web pages
//! that list them. Reads of the `repos` table in one MVCC transaction, like the catalog.

use std::ops::Bound;

use crate::kv::ReadableTable;
use crate::{schema, Engine, StoreError};

impl Engine {
    /// Repositories whose names start with `prefix`, in name order, after `after` (a whole
    /// name; one before the prefix starts at the prefix), at most `n`; and whether more
    /// follow.
    pub fn list_repos(
        &self,
        prefix: &str,
        after: Option<&str>,
        n: usize,
    ) -> Result<(Vec<String>, bool), StoreError> {
        let txn = self.inner.db.begin_read()?;
        let repos = txn.open_table(schema::REPOS)?;
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let mut out = Vec::new();
        let mut more = false;
        for entry in repos.range::<&str>((start, Bound::Unbounded))? {
            let (k, _) = entry?;
            let name = k.value();
            if !name.starts_with(prefix) {
                break;
            }
            if out.len() == n {
                more = true;
                break;
            }
            out.push(name.to_owned());
        }
        Ok((out, more))
    }

    /// How many repositories' names start with `prefix`: a walk of that part of the
    /// table, so proportional to the count.
    pub fn count_repos(&self, prefix: &str) -> Result<u64, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let repos = txn.open_table(schema::REPOS)?;
        let mut count = 0;
        for entry in repos.range::<&str>(prefix..)? {
            let (k, _) = entry?;
            if !k.value().starts_with(prefix) {
                break;
            }
            count += 1;
        }
        Ok(count)
    }

    /// Bytes stored for the repositories whose names start with `prefix`: their manifests,
    /// and every blob linked into them, each blob once however many of them link it. A
    /// walk of their links, so proportional to their size.
    pub fn repos_bytes(&self, prefix: &str) -> Result<u64, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let links = txn.open_table(schema::BLOB_LINKS)?;
        let blobs = txn.open_table(schema::BLOBS)?;
        let manifests = txn.open_table(schema::MANIFESTS)?;
        let mut seen = std::collections::HashSet::new();
        let mut total = 0u64;
        let start: (&str, &[u8]) = (prefix, &[]);
        for entry in links.range(start..)? {
            let (k, _) = entry?;
            let (repo, kb) = k.value();
            if !repo.starts_with(prefix) {
                break;
            }
            if seen.insert(kb.to_vec()) {
                if let Some(v) = blobs.get(kb)? {
                    total = total.saturating_add(schema::decode_loc(v.value())?.len);
                }
            }
        }
        for entry in manifests.range(start..)? {
            let (k, v) = entry?;
            if !k.value().0.starts_with(prefix) {
                break;
            }
            total = total.saturating_add(schema::decode_manifest(v.value())?.body.len() as u64);
        }
        Ok(total)
    }
}
