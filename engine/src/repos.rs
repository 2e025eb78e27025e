//! Repositories by name prefix: one registry's images (`org/registry/`), for the web pages
//! that list them. Reads of the `repos` table in one MVCC transaction, like the catalog.

use std::ops::Bound;

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
}
