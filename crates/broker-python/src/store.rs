//! `broker.Store`: a master or clone data store, and `broker.Backend`.

use std::sync::Mutex;
use std::time::Duration;

use broker::data::Data;
use broker::ErrorCode;
use pyo3::exceptions::{PyRuntimeError, PyRuntimeWarning};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::convert::{duration_of, from_py, to_py};

/// The storage engine of a master (`broker.Backend`).
#[pyclass(module = "broker", eq, eq_int, frozen, hash, from_py_object)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Backend {
    /// In memory.
    Memory = 0,
    /// A SQLite file in Broker's layout (option `path`).
    SQLite = 1,
    /// A RocksDB directory (option `path`; only when built with the `rocksdb` feature).
    RocksDB = 2,
}

/// Which side of a store (`broker.Frontend`, as in Broker's bindings).
#[pyclass(module = "broker", eq, eq_int, frozen, hash, from_py_object)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Frontend {
    /// The store's authority.
    Master = 0,
    /// A replica of a master.
    Clone = 1,
}

impl From<Backend> for broker::BackendType {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Memory => broker::BackendType::Memory,
            Backend::SQLite => broker::BackendType::Sqlite,
            Backend::RocksDB => broker::BackendType::RocksDb,
        }
    }
}

/// A data store (`broker.Store`): every accessor and mutator of Broker's, at a master or a
/// clone; a context manager. Mutations are asynchronous, as in Broker: `await_idle()` waits
/// until they are applied; failures are reported to status subscribers.
#[pyclass(module = "broker", frozen)]
pub(crate) struct Store {
    inner: Mutex<Option<broker::Store>>,
}

fn expiry_of(v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    duration_of(v)
}

impl Store {
    pub(crate) fn from_result(
        py: Python<'_>,
        r: Result<broker::Store, broker::Error>,
    ) -> PyResult<Option<Store>> {
        match r {
            Ok(s) => Ok(Some(Store {
                inner: Mutex::new(Some(s)),
            })),
            Err(e) => {
                let msg = format!("cannot attach store: {}: {}", e.code.name(), e.message);
                let category = py.get_type::<PyRuntimeWarning>();
                PyErr::warn(py, &category, &std::ffi::CString::new(msg)?, 1)?;
                Ok(None)
            }
        }
    }

    fn store(&self) -> PyResult<broker::Store> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| PyRuntimeError::new_err("the store was reset"))
    }

    /// Runs a mutation with the interpreter released (it waits only when the store's request
    /// queue is full).
    fn mutate(&self, py: Python<'_>, f: impl FnOnce(&broker::Store) + Send) -> PyResult<()> {
        let s = self.store()?;
        py.detach(|| f(&s));
        Ok(())
    }

    /// A read: its value, or `None` for a missing key or any other error (as Broker does).
    fn read<'py>(
        &self,
        py: Python<'py>,
        f: impl FnOnce(&broker::Store) -> Result<Data, broker::Error> + Send,
    ) -> PyResult<Bound<'py, PyAny>> {
        let s = self.store()?;
        match py.detach(|| f(&s)) {
            Ok(d) => to_py(py, &d, false),
            Err(e) if e.code == ErrorCode::ShuttingDown => Err(crate::wait::py_err(e)),
            Err(_) => Ok(py.None().into_bound(py)),
        }
    }
}

/// Broker's mutators of the form `name(key, x, expiry=None)` are one-line calls of the Rust
/// store's methods of the same shape: this writes them once, in the one `#[pymethods]` block
/// with the methods written by hand (`rest`).
macro_rules! store_methods {
    (
        $($(#[doc = $doc:literal])* fn $name:ident($arg:ident) => $method:ident;)*
        rest { $($rest:tt)* }
    ) => {
        #[pymethods]
        impl Store {
            $(
                $(#[doc = $doc])*
                #[pyo3(signature = (key, $arg, expiry = None))]
                fn $name(
                    &self,
                    py: Python<'_>,
                    key: &Bound<'_, PyAny>,
                    $arg: &Bound<'_, PyAny>,
                    expiry: Option<&Bound<'_, PyAny>>,
                ) -> PyResult<()> {
                    let (k, x, e) = (from_py(key)?, from_py($arg)?, expiry_of(expiry)?);
                    self.mutate(py, |s| s.$method(k, x, e))
                }
            )*
            $($rest)*
        }
    };
}

store_methods! {
    /// Sets `key` to `value`, optionally expiring after `expiry` (seconds or a timedelta).
    fn put(value) => put;
    /// Adds `amount` to the number at `key` (count, integer, real, timespan; a missing key
    /// starts from zero; the amount's type must match).
    fn increment(amount) => increment;
    /// Subtracts `amount` from the number at `key`.
    fn decrement(amount) => decrement;
    /// Appends text to the string at `key`.
    fn append(s) => append;
    /// Removes `index` from the set or table at `key`.
    fn remove_from(index) => remove_from;
    /// Appends `value` to the vector at `key`.
    fn push(value) => push;

    rest {
    /// The store's name.
    fn name(&self) -> PyResult<String> {
        Ok(self.store()?.name().to_owned())
    }

    /// Whether this handle is the master (rather than a clone).
    fn is_master(&self) -> PyResult<bool> {
        Ok(self.store()?.is_master())
    }

    /// Whether `key` exists.
    fn exists(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let k = from_py(key)?;
        let s = self.store()?;
        Ok(py.detach(|| s.exists(k)).unwrap_or(false))
    }

    /// The value at `key`, or `None`.
    fn get<'py>(&self, py: Python<'py>, key: &Bound<'_, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let k = from_py(key)?;
        self.read(py, |s| s.get(k))
    }

    /// An element of the container at `key` (a vector's element at an index, a table's value
    /// for a key, whether a set holds a value), or `None`.
    fn get_index_from_value<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'_, PyAny>,
        index: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (k, i) = (from_py(key)?, from_py(index)?);
        self.read(py, |s| s.get_index_from_value(k, i))
    }

    /// The set of keys, or `None` on error.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.read(py, |s| s.keys())
    }

    /// Sets `key` to `value` only if absent; returns whether it did (`None` on error).
    #[pyo3(signature = (key, value, expiry = None))]
    fn put_unique(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        expiry: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<bool>> {
        let (k, v, e) = (from_py(key)?, from_py(value)?, expiry_of(expiry)?);
        let s = self.store()?;
        Ok(py.detach(|| s.put_unique(k, v, e)).ok())
    }

    /// Removes `key`.
    fn erase(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let k = from_py(key)?;
        self.mutate(py, |s| s.erase(k))
    }

    /// Removes every key.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.mutate(py, |s| s.clear())
    }

    /// `insert_into(key, x)` adds `x` to the set at `key`; `insert_into(key, index, value)`
    /// sets `index` to `value` in the table at `key` (or inserts into a vector at `index`).
    #[pyo3(signature = (key, index, value = None, expiry = None))]
    fn insert_into(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        index: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        expiry: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (k, i, e) = (from_py(key)?, from_py(index)?, expiry_of(expiry)?);
        match value {
            Some(v) => {
                let v = from_py(v)?;
                self.mutate(py, |s| s.insert_into_at(k, i, v, e))
            }
            None => self.mutate(py, |s| s.insert_into(k, i, e)),
        }
    }

    /// Removes the last element of the vector at `key`.
    #[pyo3(signature = (key, expiry = None))]
    fn pop(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        expiry: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (k, e) = (from_py(key)?, expiry_of(expiry)?);
        self.mutate(py, |s| s.pop(k, e))
    }

    /// Waits until every mutation made through this handle is applied (and, at a clone, the
    /// clone is synchronized); returns whether that happened within `timeout` seconds
    /// (default 10).
    #[pyo3(signature = (timeout = None))]
    fn await_idle(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let t = duration_of(timeout)?.unwrap_or(Duration::from_secs(10));
        let s = self.store()?;
        let deadline = std::time::Instant::now() + t;
        Ok(crate::wait::wait_for(
            py,
            Some(deadline),
            |slice| s.await_idle(slice).then_some(()),
            || false,
        )?
        .is_some())
    }

    /// Detaches this handle; it cannot be used afterwards.
    fn reset(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.reset();
        false
    }

    fn __repr__(&self) -> String {
        match self.store() {
            Ok(s) => format!(
                "Store({:?}, {})",
                s.name(),
                if s.is_master() { "master" } else { "clone" }
            ),
            Err(_) => "Store(reset)".to_owned(),
        }
    }
    }
}
