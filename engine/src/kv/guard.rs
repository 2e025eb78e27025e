//! A key or value read from a table: borrowed from redb's pages, or copied out of a
//! PostgreSQL row in redb's encoding, read the same way either way.

use std::marker::PhantomData;

use redb::Value;

/// A stored key or value, borrowed from the database's pages or copied out of a row.
pub(crate) enum AccessGuard<'a, V: Value + 'static> {
    Redb(redb::AccessGuard<'a, V>),
    /// redb's encoding of the value, owned.
    Owned(Vec<u8>, PhantomData<V>),
}

impl<V: Value + 'static> AccessGuard<'_, V> {
    /// An owned copy of redb's encoding of the key or value.
    pub(crate) fn owned(bytes: Vec<u8>) -> Self {
        AccessGuard::Owned(bytes, PhantomData)
    }

    pub(crate) fn value(&self) -> V::SelfType<'_> {
        match self {
            AccessGuard::Redb(g) => g.value(),
            AccessGuard::Owned(b, _) => V::from_bytes(b),
        }
    }
}

/// A row of a table.
pub(crate) type Entry<'a, K, V> = (AccessGuard<'a, K>, AccessGuard<'a, V>);
