//! The metadata seam: transactions and typed tables with redb's shape, over either redb (the
//! embedded store, `meta.redb`) or PostgreSQL (the distributed store).
//!
//! The engine's tables, their keys and the code that reads and writes them are the same on
//! both: a table is a redb `TableDefinition` (its name and key and value types), and every
//! read and write goes through the types here, whose methods mirror redb's. On redb they are
//! redb's own, unchanged. On PostgreSQL a table is a relation of `(k bytea, v bytea)`
//! ordered by `k`: keys are written in an encoding whose byte order is redb's key order
//! (`order.rs`), values in redb's own encoding, so ranges, reverse walks and every decode
//! behave the same.

mod guard;
pub(crate) mod order;
pub(crate) mod pg;

use std::borrow::Borrow;
use std::marker::PhantomData;
use std::ops::RangeBounds;
use std::sync::Arc;

pub(crate) use redb::TableDefinition;
use redb::{Key, ReadableTable as _, ReadableTableMetadata as _, TableHandle as _, Value};

pub(crate) use guard::{AccessGuard, Entry};
pub(crate) use order::OrderedKey;

use crate::StoreError;

/// A read transaction: a consistent snapshot for as long as it lives.
pub(crate) enum ReadTransaction {
    Redb(redb::ReadTransaction),
    Pg(Arc<pg::Session>),
}

impl ReadTransaction {
    pub(crate) fn open_table<K: OrderedKey, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<ReadOnlyTable<K, V>, StoreError> {
        match self {
            ReadTransaction::Redb(t) => Ok(ReadOnlyTable::Redb(t.open_table(def)?)),
            ReadTransaction::Pg(s) => {
                Ok(ReadOnlyTable::Pg(pg::PgTable::new(s.clone(), def.name())))
            }
        }
    }
}

/// The write transaction of a batch.
// One per batch, never moved in a hot loop: its size is no concern.
#[allow(clippy::large_enum_variant)]
pub(crate) enum WriteTransaction {
    Redb(redb::WriteTransaction),
    Pg {
        s: Arc<pg::Session>,
        db: Arc<pg::PgDb>,
        lazy: bool,
    },
}

impl WriteTransaction {
    /// A batch on PostgreSQL: its transaction has taken the cluster-wide batch lock.
    pub(crate) fn begin_pg(db: &Arc<pg::PgDb>) -> Result<WriteTransaction, StoreError> {
        Ok(WriteTransaction::Pg {
            s: db.begin_write()?,
            db: db.clone(),
            lazy: false,
        })
    }

    pub(crate) fn open_table<K: OrderedKey, V: Value + 'static>(
        &self,
        def: TableDefinition<'static, K, V>,
    ) -> Result<Table<'_, K, V>, StoreError> {
        match self {
            WriteTransaction::Redb(t) => Ok(Table::Redb(t.open_table(def)?)),
            WriteTransaction::Pg { s, db, .. } => {
                db.ensure_table(s, def.name())?;
                Ok(Table::Pg(
                    pg::PgTable::new(s.clone(), def.name()),
                    PhantomData,
                ))
            }
        }
    }

    /// Commits without making the commit durable on its own: the next durable commit
    /// carries it (redb's `Durability::None`, PostgreSQL's `synchronous_commit = off`).
    pub(crate) fn set_lazy(&mut self) -> Result<(), StoreError> {
        match self {
            WriteTransaction::Redb(t) => Ok(t.set_durability(redb::Durability::None)?),
            WriteTransaction::Pg { lazy, .. } => {
                *lazy = true;
                Ok(())
            }
        }
    }

    pub(crate) fn commit(self) -> Result<(), StoreError> {
        match self {
            WriteTransaction::Redb(t) => Ok(t.commit()?),
            WriteTransaction::Pg { s, db, lazy } => {
                let done = s.commit(lazy);
                if done.is_err() {
                    // Tables created in it were rolled back with it.
                    db.forget_created();
                }
                done
            }
        }
    }
}

/// A range of a table, walked from either end.
pub(crate) enum Range<'a, K: Key + 'static, V: Value + 'static> {
    Redb(redb::Range<'a, K, V>),
    Pg(pg::PgRange<K, V>, PhantomData<&'a ()>),
}

impl<'a, K: OrderedKey, V: Value + 'static> Iterator for Range<'a, K, V> {
    type Item = Result<Entry<'a, K, V>, StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Range::Redb(r) => r.next().map(|e| {
                e.map(|(k, v)| (AccessGuard::Redb(k), AccessGuard::Redb(v)))
                    .map_err(StoreError::from)
            }),
            Range::Pg(r, _) => r.next_entry(true),
        }
    }
}

impl<K: OrderedKey, V: Value + 'static> DoubleEndedIterator for Range<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Range::Redb(r) => r.next_back().map(|e| {
                e.map(|(k, v)| (AccessGuard::Redb(k), AccessGuard::Redb(v)))
                    .map_err(StoreError::from)
            }),
            Range::Pg(r, _) => r.next_entry(false),
        }
    }
}

/// Reading a table, in a read or a write transaction.
pub(crate) trait ReadableTable<K: OrderedKey, V: Value + 'static> {
    fn get<'a>(
        &self,
        key: impl Borrow<K::SelfType<'a>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StoreError>;
    fn range<'a, KR>(
        &self,
        range: impl RangeBounds<KR> + 'a,
    ) -> Result<Range<'_, K, V>, StoreError>
    where
        KR: Borrow<K::SelfType<'a>> + 'a;
    fn iter(&self) -> Result<Range<'_, K, V>, StoreError>;
    /// The number of rows: constant time on redb, a count on PostgreSQL.
    fn len(&self) -> Result<u64, StoreError>;
}

/// Implements [`ReadableTable`] for a table type by matching on its backend.
macro_rules! readable {
    ($ty:ident $(<$lt:lifetime>)?) => {
        impl<$($lt,)? K: OrderedKey, V: Value + 'static> ReadableTable<K, V> for $ty<$($lt,)? K, V> {
            fn get<'a>(
                &self,
                key: impl Borrow<K::SelfType<'a>>,
            ) -> Result<Option<AccessGuard<'_, V>>, StoreError> {
                match self {
                    $ty::Redb(t) => Ok(t.get(key)?.map(AccessGuard::Redb)),
                    $ty::Pg(t, ..) => Ok(t.get(key.borrow())?.map(|v| AccessGuard::owned(v))),
                }
            }
            fn range<'a, KR>(
                &self,
                range: impl RangeBounds<KR> + 'a,
            ) -> Result<Range<'_, K, V>, StoreError>
            where
                KR: Borrow<K::SelfType<'a>> + 'a,
            {
                match self {
                    $ty::Redb(t) => Ok(Range::Redb(t.range(range)?)),
                    $ty::Pg(t, ..) => {
                        let lo = pg::ordered_bound::<K>(range.start_bound().map(|k| k.borrow()));
                        let hi = pg::ordered_bound::<K>(range.end_bound().map(|k| k.borrow()));
                        Ok(Range::Pg(t.range(lo, hi), PhantomData))
                    }
                }
            }
            fn iter(&self) -> Result<Range<'_, K, V>, StoreError> {
                match self {
                    $ty::Redb(t) => Ok(Range::Redb(t.iter()?)),
                    $ty::Pg(t, ..) => Ok(Range::Pg(
                        t.range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
                        PhantomData,
                    )),
                }
            }
            fn len(&self) -> Result<u64, StoreError> {
                match self {
                    $ty::Redb(t) => Ok(t.len()?),
                    $ty::Pg(t, ..) => t.len(),
                }
            }
        }
    };
}

/// A table opened in a read transaction.
pub(crate) enum ReadOnlyTable<K: Key + 'static, V: Value + 'static> {
    Redb(redb::ReadOnlyTable<K, V>),
    Pg(pg::PgTable<K, V>),
}
readable!(ReadOnlyTable);

/// A table opened in the batch's write transaction.
pub(crate) enum Table<'t, K: Key + 'static, V: Value + 'static> {
    Redb(redb::Table<'t, K, V>),
    Pg(pg::PgTable<K, V>, PhantomData<&'t ()>),
}
readable!(Table<'t>);

impl<K: OrderedKey, V: Value + 'static> Table<'_, K, V> {
    /// Stores `value` under `key`; the value it replaced.
    pub(crate) fn insert<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StoreError> {
        match self {
            Table::Redb(t) => Ok(t.insert(key, value)?.map(AccessGuard::Redb)),
            Table::Pg(t, _) => {
                let v = V::as_bytes(value.borrow());
                let old = t.insert(key.borrow(), AsRef::<[u8]>::as_ref(&v))?;
                Ok(old.map(|v| AccessGuard::owned(v)))
            }
        }
    }

    /// Removes `key`; the value it had.
    pub(crate) fn remove<'a>(
        &mut self,
        key: impl Borrow<K::SelfType<'a>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StoreError> {
        match self {
            Table::Redb(t) => Ok(t.remove(key)?.map(AccessGuard::Redb)),
            Table::Pg(t, _) => Ok(t.remove(key.borrow())?.map(|v| AccessGuard::owned(v))),
        }
    }

    /// Removes every row.
    pub(crate) fn clear(&mut self) -> Result<(), StoreError> {
        match self {
            Table::Redb(t) => Ok(t.retain(|_, _| false)?),
            Table::Pg(t, _) => t.clear(),
        }
    }
}
