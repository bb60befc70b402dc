//! The storage side of Broker's data stores: the [`Backend`] trait that every storage engine
//! implements, the value operations that mutations apply ([`ops`]), and — behind the
//! `conformance` feature — the suite of tests every backend must pass.
//!
//! A backend is a plain key-value map from [`Data`] to [`Data`] with an optional expiry time per
//! entry. It knows nothing of masters, clones or replication (that is `broker-store`), and it is
//! driven from one thread at a time (`&mut self` everywhere).
//!
//! Mutations that combine an old value with an operand (increment, append, insert, push, pop,
//! …) are computed by [`ops::add`] and [`ops::subtract`], so that every backend agrees on them;
//! a backend only reads and writes whole values. A failed operation changes nothing.
//!
//! ```
//! use broker_backend::{ops, Backend, BackendError};
//! use broker_data::{Data, DataType};
//!
//! let mut counter = Data::Count(1);
//! counter = ops::add(Some(&counter), &Data::Count(41), DataType::Count).unwrap();
//! assert_eq!(counter, Data::Count(42));
//! assert_eq!(
//!     ops::add(Some(&counter), &Data::from("x"), DataType::String),
//!     Err(BackendError::TypeClash("cannot add a string to a count".into()))
//! );
//! ```

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use broker_data::{Data, DataType, Timestamp};

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod ops;

/// Why a backend operation failed. The variants map onto Broker's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The key does not exist (`no_such_key`).
    #[error("no such key")]
    NoSuchKey,
    /// The operation does not fit the stored value's type (`type_clash`).
    #[error("type clash: {0}")]
    TypeClash(String),
    /// The operand is malformed, e.g. a table entry that is not a key-value pair
    /// (`invalid_data`).
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// The storage itself failed: I/O, corruption, a foreign file (`backend_failure`).
    #[error("backend failure: {0}")]
    Failure(String),
}

/// The result of a backend operation.
pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// A storage engine for one data store.
///
/// Implementations keep every entry with its optional absolute expiry time and must survive
/// any input: a value that cannot be stored gives [`BackendError::Failure`], never a panic.
/// Persistent backends may group writes; [`Backend::flush`] makes everything written so far
/// durable, and the store engine calls it before it acknowledges anything.
pub trait Backend: Send {
    /// Sets `key` to `value` with an optional expiry, replacing what was there.
    fn put(&mut self, key: &Data, value: &Data, expiry: Option<Timestamp>) -> Result<()>;

    /// The value at `key`, if any.
    fn get(&mut self, key: &Data) -> Result<Option<Data>>;

    /// Whether `key` exists.
    fn exists(&mut self, key: &Data) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// Removes `key`; returns whether it existed.
    fn erase(&mut self, key: &Data) -> Result<bool>;

    /// Removes every entry.
    fn clear(&mut self) -> Result<()>;

    /// Removes `key` if its expiry time is at or before `now`; returns whether it did. An entry
    /// whose expiry was pushed back or removed since it was scheduled stays.
    fn expire(&mut self, key: &Data, now: Timestamp) -> Result<bool>;

    /// Every key, in Broker's order.
    fn keys(&mut self) -> Result<Vec<Data>>;

    /// The number of entries.
    fn size(&mut self) -> Result<u64>;

    /// A copy of every entry (what a clone receives when it attaches).
    fn snapshot(&mut self) -> Result<BTreeMap<Data, Data>>;

    /// Every entry that has an expiry time, with that time (read when a master starts, so that
    /// expiry survives a restart).
    fn expiries(&mut self) -> Result<Vec<(Data, Timestamp)>>;

    /// Makes every write so far durable. A no-op for the memory backend.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// Applies an addition (increment, append, insert, push) with [`ops::add`] and stores the
    /// result with `expiry`; returns the new value. Changes nothing on failure.
    fn add(
        &mut self,
        key: &Data,
        operand: &Data,
        init_type: DataType,
        expiry: Option<Timestamp>,
    ) -> Result<Data> {
        let old = self.get(key)?;
        let new = ops::add(old.as_ref(), operand, init_type)?;
        self.put(key, &new, expiry)?;
        Ok(new)
    }

    /// Applies a subtraction (decrement, remove, pop) with [`ops::subtract`] and stores the
    /// result with `expiry`; returns the new value. Changes nothing on failure.
    fn subtract(&mut self, key: &Data, operand: &Data, expiry: Option<Timestamp>) -> Result<Data> {
        let old = self.get(key)?.ok_or(BackendError::NoSuchKey)?;
        let new = ops::subtract(&old, operand)?;
        self.put(key, &new, expiry)?;
        Ok(new)
    }
}

impl<B: Backend + ?Sized> Backend for Box<B> {
    fn put(&mut self, key: &Data, value: &Data, expiry: Option<Timestamp>) -> Result<()> {
        (**self).put(key, value, expiry)
    }
    fn get(&mut self, key: &Data) -> Result<Option<Data>> {
        (**self).get(key)
    }
    fn exists(&mut self, key: &Data) -> Result<bool> {
        (**self).exists(key)
    }
    fn erase(&mut self, key: &Data) -> Result<bool> {
        (**self).erase(key)
    }
    fn clear(&mut self) -> Result<()> {
        (**self).clear()
    }
    fn expire(&mut self, key: &Data, now: Timestamp) -> Result<bool> {
        (**self).expire(key, now)
    }
    fn keys(&mut self) -> Result<Vec<Data>> {
        (**self).keys()
    }
    fn size(&mut self) -> Result<u64> {
        (**self).size()
    }
    fn snapshot(&mut self) -> Result<BTreeMap<Data, Data>> {
        (**self).snapshot()
    }
    fn expiries(&mut self) -> Result<Vec<(Data, Timestamp)>> {
        (**self).expiries()
    }
    fn flush(&mut self) -> Result<()> {
        (**self).flush()
    }
    fn add(
        &mut self,
        key: &Data,
        operand: &Data,
        init_type: DataType,
        expiry: Option<Timestamp>,
    ) -> Result<Data> {
        (**self).add(key, operand, init_type, expiry)
    }
    fn subtract(&mut self, key: &Data, operand: &Data, expiry: Option<Timestamp>) -> Result<Data> {
        (**self).subtract(key, operand, expiry)
    }
}
