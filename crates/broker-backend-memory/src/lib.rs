//! The memory backend: a hash table of entries, the fastest backend and the reference the
//! others are checked against. Nothing survives the process.
//!
//! ```
//! use broker_backend::Backend;
//! use broker_backend_memory::MemoryBackend;
//! use broker_data::Data;
//!
//! let mut b = MemoryBackend::new();
//! b.put(&"k".into(), &Data::Count(1), None).unwrap();
//! assert_eq!(b.get(&"k".into()).unwrap(), Some(Data::Count(1)));
//! ```

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};

use broker_backend::{ops, Backend, BackendError, Result};
use broker_data::{Data, DataType, Timestamp};

/// Entries in a hash table, each with its optional expiry time.
#[derive(Debug, Default, Clone)]
pub struct MemoryBackend {
    entries: HashMap<Data, (Data, Option<Timestamp>)>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Backend for MemoryBackend {
    fn put(&mut self, key: &Data, value: &Data, expiry: Option<Timestamp>) -> Result<()> {
        match self.entries.get_mut(key) {
            Some(e) => *e = (value.clone(), expiry),
            None => {
                self.entries.insert(key.clone(), (value.clone(), expiry));
            }
        }
        Ok(())
    }

    fn get(&mut self, key: &Data) -> Result<Option<Data>> {
        Ok(self.entries.get(key).map(|(v, _)| v.clone()))
    }

    fn exists(&mut self, key: &Data) -> Result<bool> {
        Ok(self.entries.contains_key(key))
    }

    fn erase(&mut self, key: &Data) -> Result<bool> {
        Ok(self.entries.remove(key).is_some())
    }

    fn clear(&mut self) -> Result<()> {
        self.entries.clear();
        Ok(())
    }

    fn expire(&mut self, key: &Data, now: Timestamp) -> Result<bool> {
        let due = matches!(self.entries.get(key), Some((_, Some(at))) if *at <= now);
        if due {
            self.entries.remove(key);
        }
        Ok(due)
    }

    fn keys(&mut self) -> Result<Vec<Data>> {
        let mut keys: Vec<Data> = self.entries.keys().cloned().collect();
        keys.sort_unstable();
        Ok(keys)
    }

    fn size(&mut self) -> Result<u64> {
        Ok(self.entries.len() as u64)
    }

    fn snapshot(&mut self) -> Result<BTreeMap<Data, Data>> {
        Ok(self
            .entries
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect())
    }

    fn expiries(&mut self) -> Result<Vec<(Data, Timestamp)>> {
        let mut out: Vec<(Data, Timestamp)> = self
            .entries
            .iter()
            .filter_map(|(k, (_, e))| e.map(|e| (k.clone(), e)))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    // In place: no clone of the old value.
    fn add(
        &mut self,
        key: &Data,
        operand: &Data,
        init_type: DataType,
        expiry: Option<Timestamp>,
    ) -> Result<Data> {
        match self.entries.get_mut(key) {
            Some(entry) => {
                let new = ops::add(Some(&entry.0), operand, init_type)?;
                *entry = (new.clone(), expiry);
                Ok(new)
            }
            None => {
                let new = ops::add(None, operand, init_type)?;
                self.entries.insert(key.clone(), (new.clone(), expiry));
                Ok(new)
            }
        }
    }

    fn subtract(&mut self, key: &Data, operand: &Data, expiry: Option<Timestamp>) -> Result<Data> {
        let entry = self.entries.get_mut(key).ok_or(BackendError::NoSuchKey)?;
        let new = ops::subtract(&entry.0, operand)?;
        *entry = (new.clone(), expiry);
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance() {
        broker_backend::conformance::run(MemoryBackend::new);
    }
}
