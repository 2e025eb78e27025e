//! The package index's rows in the store.
//!
//! The package queue: which manifests still wait for their package details (contents,
//! checksums, facts). A manifest PUT adds its row in the manifest's own transaction, so an
//! acknowledged push is always queued, and a crash or restart resumes where it was; the
//! indexer takes rows off with [`Engine::package_done`] once it has recorded them, and a
//! manifest DELETE removes its row with the manifest. Nothing here runs on a push's path
//! beyond one row insert in a transaction that commits anyway.
//!
//! Layer listings: what each layer blob holds, by its key, listed once however many images
//! share it and removed with the blob by garbage collection.

use redb::ReadableTable;

use crate::commit::Tables;
use crate::keys::BlobKey;
use crate::package::LayerListing;
use crate::schema;
use crate::{Engine, StoreError};

/// Queues every stored manifest (a store upgraded from before the queue existed); returns
/// how many.
pub(crate) fn queue_every_manifest(t: &mut Tables<'_>) -> Result<u64, StoreError> {
    let mut keys = Vec::new();
    for entry in t.manifests.iter()? {
        let (k, _) = entry?;
        let (repo, kb) = k.value();
        keys.push((repo.to_owned(), kb.to_vec()));
    }
    for (repo, kb) in &keys {
        t.package_queue.insert((repo.as_str(), &kb[..]), ())?;
    }
    Ok(keys.len() as u64)
}

impl Engine {
    /// Up to `limit` manifests waiting for package details, as (repository, manifest key),
    /// in key order. A row whose key does not decode (never written by this engine) is
    /// skipped.
    pub fn package_queue(&self, limit: usize) -> Result<Vec<(String, BlobKey)>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(schema::PACKAGE_QUEUE)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            if out.len() >= limit {
                break;
            }
            let (k, _) = entry?;
            let (repo, kb) = k.value();
            if let Some(key) = BlobKey::decode(kb) {
                out.push((repo.to_owned(), key));
            }
        }
        Ok(out)
    }

    /// Records what the layer blob `key` holds (listed once, whatever number of images
    /// share it). A blob no longer stored records nothing.
    pub fn put_layer_listing(
        &self,
        key: &BlobKey,
        listing: &LayerListing,
    ) -> Result<(), StoreError> {
        self.commit
            .put_listing(key.encode(), schema::encode_layer_listing(listing))
    }

    /// What the layer blob `key` holds, once listed.
    pub fn layer_listing(&self, key: &BlobKey) -> Result<Option<LayerListing>, StoreError> {
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(schema::LAYER_LISTINGS)?;
        let Some(v) = table.get(&key.encode()[..])? else {
            return Ok(None);
        };
        Ok(Some(schema::decode_layer_listing(v.value())?))
    }

    /// Takes manifests off the package queue (their details are recorded, or they are gone),
    /// durably: after a crash they are not worked on again.
    pub fn package_done(&self, done: &[(String, BlobKey)]) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        let items = done.iter().map(|(r, k)| (r.clone(), k.encode())).collect();
        self.commit.package_done(items)
    }
}
