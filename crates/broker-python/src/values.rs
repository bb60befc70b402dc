//! Broker's value classes, as its bindings define them (`_broker.cpp`, `data.cpp` in
//! zeek/broker): `Address`, `Subnet`, `Timespan`, `Timestamp` and the containers `Set`,
//! `Table` and `Vector`, whose elements are `Data`; and `Data.Type`, what `Data.get_type()`
//! returns.
//!
//! Users rarely meet these: publications and store values convert straight between Python's
//! own types and Broker data (see [`convert`](crate::convert)). They are here because Broker's
//! typed API hands them out (`Data.as_set()`, `Data.as_address()`, …) and takes them
//! (`Data(broker.Timespan(5))`), and scripts written against Broker's bindings use them.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use broker_data::{Address, Data, DataType, Subnet, Timespan, Timestamp};
use pyo3::exceptions::{PyIndexError, PyKeyError, PyTypeError, PyValueError, PyZeroDivisionError};
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PySlice, PyTuple};

use crate::convert::{compare_same, from_py, hash_of, PyData};

/// A comparison's result as Python wants it.
fn compared(py: Python<'_>, ord: Option<Ordering>, op: CompareOp) -> Py<PyAny> {
    match ord {
        Some(o) => PyBool::new(py, op.matches(o))
            .to_owned()
            .into_any()
            .unbind(),
        None => py.NotImplemented(),
    }
}

/// Equality only, as Broker's containers compare (`==`, `!=`; nothing else, and nothing with
/// other types).
fn equality(py: Python<'_>, same: Option<bool>, op: CompareOp) -> Py<PyAny> {
    match (op, same) {
        (CompareOp::Eq, Some(s)) => PyBool::new(py, s).to_owned().into_any().unbind(),
        (CompareOp::Ne, Some(s)) => PyBool::new(py, !s).to_owned().into_any().unbind(),
        _ => py.NotImplemented(),
    }
}

/// Values in Broker's text form, separated by ", " (the containers' `repr`).
fn joined<'a>(items: impl Iterator<Item = &'a Data>) -> String {
    items.map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
}

/// A `Data` object for Python (the elements containers hand out).
fn data_obj(py: Python<'_>, d: Data) -> PyResult<Py<PyAny>> {
    Ok(Bound::new(py, PyData(d))?.into_any().unbind())
}

// -- Data.Type ----------------------------------------------------------------------------------

/// The type of a `Data` value (`Data.Type`, what `Data.get_type()` returns). `Data.Type.None`
/// is another name of `Nil`, as in Broker.
#[pyclass(
    module = "broker",
    name = "Type",
    eq,
    eq_int,
    frozen,
    hash,
    from_py_object
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PyDataType {
    /// No value.
    Nil = 0,
    /// `bool`.
    Boolean = 1,
    /// `broker.Count`.
    Count = 2,
    /// `int`.
    Integer = 3,
    /// `float`.
    Real = 4,
    /// `str` (or `bytes`).
    String = 5,
    /// An IP address.
    Address = 6,
    /// An IP prefix.
    Subnet = 7,
    /// `broker.Port`.
    Port = 8,
    /// A point in time.
    Timestamp = 9,
    /// A length of time.
    Timespan = 10,
    /// `broker.Enum`.
    EnumValue = 11,
    /// A set.
    Set = 12,
    /// A table.
    Table = 13,
    /// A vector.
    Vector = 14,
}

impl From<DataType> for PyDataType {
    fn from(t: DataType) -> Self {
        match t {
            DataType::None => PyDataType::Nil,
            DataType::Boolean => PyDataType::Boolean,
            DataType::Count => PyDataType::Count,
            DataType::Integer => PyDataType::Integer,
            DataType::Real => PyDataType::Real,
            DataType::String => PyDataType::String,
            DataType::Address => PyDataType::Address,
            DataType::Subnet => PyDataType::Subnet,
            DataType::Port => PyDataType::Port,
            DataType::Timestamp => PyDataType::Timestamp,
            DataType::Timespan => PyDataType::Timespan,
            DataType::EnumValue => PyDataType::EnumValue,
            DataType::Set => PyDataType::Set,
            DataType::Table => PyDataType::Table,
            DataType::Vector => PyDataType::Vector,
        }
    }
}

// -- Address ------------------------------------------------------------------------------------

/// An address's family (`Address.Family`).
#[pyclass(
    module = "broker",
    name = "Family",
    eq,
    eq_int,
    frozen,
    hash,
    from_py_object
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AddressFamily {
    /// IPv4.
    IPv4 = 0,
    /// IPv6.
    IPv6 = 1,
}

/// A byte order (`Address.ByteOrder`).
#[pyclass(
    module = "broker",
    name = "ByteOrder",
    eq,
    eq_int,
    frozen,
    hash,
    from_py_object
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AddressByteOrder {
    /// The machine's.
    Host = 0,
    /// Big-endian.
    Network = 1,
}

/// An IPv4 or IPv6 address: `broker.Address(packed, 4)` or `broker.Address(packed, 6)`.
#[pyclass(module = "broker", name = "Address", from_py_object)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct PyAddress(pub(crate) Address);

/// The family argument: 4, 6 or an `Address.Family`.
fn family_of(v: &Bound<'_, PyAny>) -> PyResult<AddressFamily> {
    if let Ok(f) = v.cast::<AddressFamily>() {
        return Ok(*f.get());
    }
    match v.extract::<i64>() {
        Ok(4) => Ok(AddressFamily::IPv4),
        Ok(6) => Ok(AddressFamily::IPv6),
        _ => Err(PyValueError::new_err(
            "an address family is 4, 6 or an Address.Family",
        )),
    }
}

#[pymethods]
impl PyAddress {
    #[new]
    #[pyo3(signature = (bytes = None, family = None))]
    fn new(bytes: Option<&[u8]>, family: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let Some(bytes) = bytes else {
            return Ok(PyAddress(Address::from_octets([0; 16])));
        };
        let family = match family {
            Some(f) => family_of(f)?,
            None if bytes.len() == 4 => AddressFamily::IPv4,
            None => AddressFamily::IPv6,
        };
        let want = if family == AddressFamily::IPv4 { 4 } else { 16 };
        if bytes.len() != want {
            return Err(PyValueError::new_err(format!(
                "an {} address takes {want} bytes, got {}",
                if want == 4 { "IPv4" } else { "IPv6" },
                bytes.len()
            )));
        }
        Address::from_slice(bytes)
            .map(PyAddress)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    #[classattr]
    #[pyo3(name = "Family")]
    fn family_class(py: Python<'_>) -> Py<pyo3::types::PyType> {
        py.get_type::<AddressFamily>().unbind()
    }

    #[classattr]
    #[pyo3(name = "ByteOrder")]
    fn byte_order_class(py: Python<'_>) -> Py<pyo3::types::PyType> {
        py.get_type::<AddressByteOrder>().unbind()
    }

    /// Keeps the top `top_bits_to_keep` of the 128 bits (an IPv4 address's bits are its last
    /// 32) and clears the rest; false (and unchanged) beyond 128.
    fn mask(&mut self, top_bits_to_keep: u8) -> bool {
        self.0.mask(top_bits_to_keep).is_ok()
    }

    /// Whether this is an IPv4 address.
    fn is_v4(&self) -> bool {
        self.0.is_v4()
    }

    /// Whether this is an IPv6 address.
    fn is_v6(&self) -> bool {
        self.0.is_v6()
    }

    /// The 16 bytes in network order (an IPv4 address IPv4-mapped).
    fn bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.0.as_bytes())
    }

    fn __repr__(&self) -> String {
        self.0.to_string()
    }

    fn __hash__(&self) -> u64 {
        hash_of(&self.0)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let ord = other
            .cast::<PyAddress>()
            .ok()
            .map(|o| self.0.cmp(&o.borrow().0));
        compared(other.py(), ord, op)
    }
}

// -- Subnet -------------------------------------------------------------------------------------

/// An IP prefix: `broker.Subnet(broker.Address(...), 24)`.
#[pyclass(module = "broker", name = "Subnet", frozen, from_py_object)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct PySubnet(pub(crate) Subnet);

#[pymethods]
impl PySubnet {
    #[new]
    #[pyo3(signature = (address = None, length = 0))]
    fn new(address: Option<PyRef<'_, PyAddress>>, length: u8) -> PyResult<Self> {
        let a = address.map_or(Address::from_octets([0; 16]), |a| a.0);
        Subnet::new(a, length)
            .map(PySubnet)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Whether `addr` lies in this subnet.
    fn contains(&self, addr: PyRef<'_, PyAddress>) -> bool {
        self.0.contains(&addr.0)
    }

    /// The network address.
    fn network(&self) -> PyAddress {
        PyAddress(self.0.network())
    }

    /// The prefix length (of the address's family: up to 32 for IPv4).
    fn length(&self) -> u8 {
        self.0.length()
    }

    fn __repr__(&self) -> String {
        self.0.to_string()
    }

    fn __hash__(&self) -> u64 {
        hash_of(&self.0)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        compare_same::<PySubnet, _>(&self.0, other, op, |o| &o.0)
    }
}

// -- Timespan and Timestamp ---------------------------------------------------------------------

/// A length of time in nanoseconds: `broker.Timespan(1500)` (an int is nanoseconds),
/// `broker.Timespan(1.5)` (a float is seconds).
#[pyclass(module = "broker", name = "Timespan", frozen, from_py_object)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct PyTimespan(pub(crate) Timespan);

/// Nanoseconds from an int (nanoseconds) or a float (seconds), as Broker's constructors take.
fn nanos_of(v: &Bound<'_, PyAny>) -> PyResult<i64> {
    if v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() {
        return v.extract::<i64>();
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Timespan::from_secs_f64(f.value())
            .map(|t| t.as_nanos())
            .map_err(|e| PyValueError::new_err(e.to_string()));
    }
    if let Ok(t) = v.cast::<PyTimespan>() {
        return Ok(t.get().0.as_nanos());
    }
    Err(PyTypeError::new_err(format!(
        "expected nanoseconds (int) or seconds (float), got {}",
        v.get_type().name()?
    )))
}

fn span(ns: Option<i64>) -> PyResult<PyTimespan> {
    ns.map(|n| PyTimespan(Timespan::from_nanos(n)))
        .ok_or_else(|| pyo3::exceptions::PyOverflowError::new_err("timespan out of range"))
}

#[pymethods]
impl PyTimespan {
    #[new]
    #[pyo3(signature = (value = None))]
    fn new(value: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let ns = match value {
            None => 0,
            Some(v) if v.is_instance(crate::convert::timedelta_type(v.py())?)? => {
                crate::convert::timedelta_nanos(v)?
            }
            Some(v) => nanos_of(v)?,
        };
        Ok(PyTimespan(Timespan::from_nanos(ns)))
    }

    /// The length in nanoseconds.
    fn count(&self) -> i64 {
        self.0.as_nanos()
    }

    fn __repr__(&self) -> String {
        self.0.to_string()
    }

    fn __hash__(&self) -> u64 {
        hash_of(&self.0)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        compare_same::<PyTimespan, _>(&self.0, other, op, |o| &o.0)
    }

    fn __add__(&self, other: PyRef<'_, PyTimespan>) -> PyResult<PyTimespan> {
        span(self.0.as_nanos().checked_add(other.0.as_nanos()))
    }

    fn __sub__(&self, other: PyRef<'_, PyTimespan>) -> PyResult<PyTimespan> {
        span(self.0.as_nanos().checked_sub(other.0.as_nanos()))
    }

    fn __mul__(&self, k: i64) -> PyResult<PyTimespan> {
        span(self.0.as_nanos().checked_mul(k))
    }

    fn __rmul__(&self, k: i64) -> PyResult<PyTimespan> {
        self.__mul__(k)
    }

    /// A timespan divided by a timespan is their ratio (an int, rounded toward zero); by an
    /// int, a timespan.
    fn __truediv__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let a = self.0.as_nanos();
        if let Ok(t) = other.cast::<PyTimespan>() {
            let b = t.get().0.as_nanos();
            let q = a
                .checked_div(b)
                .ok_or_else(|| PyZeroDivisionError::new_err("division by a zero timespan"))?;
            return Ok(q.into_pyobject(py)?.into_any().unbind());
        }
        let k: i64 = other.extract()?;
        let q = a
            .checked_div(k)
            .ok_or_else(|| PyZeroDivisionError::new_err("division by zero"))?;
        Ok(Bound::new(py, PyTimespan(Timespan::from_nanos(q)))?
            .into_any()
            .unbind())
    }

    /// The remainder of a division by a timespan or an int.
    fn __mod__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyTimespan> {
        let b = match other.cast::<PyTimespan>() {
            Ok(t) => t.get().0.as_nanos(),
            Err(_) => other.extract::<i64>()?,
        };
        let r = self
            .0
            .as_nanos()
            .checked_rem(b)
            .ok_or_else(|| PyZeroDivisionError::new_err("modulo by zero"))?;
        Ok(PyTimespan(Timespan::from_nanos(r)))
    }
}

/// A point in time, nanoseconds since the UNIX epoch: `broker.Timestamp(1.5)` (seconds) or
/// `broker.Timestamp(broker.Timespan(...))`.
#[pyclass(module = "broker", name = "Timestamp", frozen, from_py_object)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct PyTimestamp(pub(crate) Timestamp);

#[pymethods]
impl PyTimestamp {
    #[new]
    #[pyo3(signature = (value = None))]
    fn new(value: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let ns = match value {
            None => 0,
            Some(v) if v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() => {
                // Broker takes seconds as a double here: an int is seconds too.
                let secs: f64 = v.extract()?;
                nanos_of(&PyFloat::new(v.py(), secs).into_any())?
            }
            Some(v) => nanos_of(v)?,
        };
        Ok(PyTimestamp(Timestamp::from_nanos(ns)))
    }

    /// The time since the epoch, a `Timespan`.
    fn time_since_epoch(&self) -> PyTimespan {
        PyTimespan(self.0.since_epoch())
    }

    fn __repr__(&self) -> String {
        Data::Timestamp(self.0).to_string()
    }

    fn __hash__(&self) -> u64 {
        hash_of(&self.0)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        compare_same::<PyTimestamp, _>(&self.0, other, op, |o| &o.0)
    }
}

// -- containers ---------------------------------------------------------------------------------

/// An iterator over a snapshot of a container's values (each a `Data`, or a `(Data, Data)`
/// pair for a table's items).
#[pyclass(module = "broker")]
pub(crate) struct ValueIter {
    items: std::vec::IntoIter<Py<PyAny>>,
}

#[pymethods]
impl ValueIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self) -> Option<Py<PyAny>> {
        self.items.next()
    }
}

fn iter_of(py: Python<'_>, items: Vec<Py<PyAny>>) -> PyResult<Py<ValueIter>> {
    Py::new(
        py,
        ValueIter {
            items: items.into_iter(),
        },
    )
}

fn data_iter<'a>(py: Python<'_>, items: impl Iterator<Item = &'a Data>) -> PyResult<Py<ValueIter>> {
    let items = items
        .map(|d| data_obj(py, d.clone()))
        .collect::<PyResult<Vec<_>>>()?;
    iter_of(py, items)
}

/// Broker's set of `Data`: `broker.Set()`, `broker.Set([broker.Data(1), 2])`. Iterating
/// yields `Data` copies in Broker's order.
#[pyclass(module = "broker", name = "Set", from_py_object)]
#[derive(Clone, Debug, Default)]
pub(crate) struct PySet(pub(crate) BTreeSet<Data>);

#[pymethods]
impl PySet {
    #[new]
    #[pyo3(signature = (items = None))]
    fn new(items: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let Some(items) = items else {
            return Ok(PySet::default());
        };
        if let Ok(s) = items.cast::<PySet>() {
            return Ok(s.borrow().clone());
        }
        let mut out = BTreeSet::new();
        for item in items.try_iter()? {
            out.insert(from_py(&item?)?);
        }
        Ok(PySet(out))
    }

    /// Inserts a value.
    fn add(&mut self, x: &Bound<'_, PyAny>) -> PyResult<()> {
        self.0.insert(from_py(x)?);
        Ok(())
    }

    /// Removes a value (nothing happens when it is absent, as in Broker).
    fn remove(&mut self, x: &Bound<'_, PyAny>) -> PyResult<()> {
        self.0.remove(&from_py(x)?);
        Ok(())
    }

    /// Empties the set.
    fn clear(&mut self) {
        self.0.clear();
    }

    fn __contains__(&self, x: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.0.contains(&from_py(x)?))
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<ValueIter>> {
        data_iter(py, self.0.iter())
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    fn __bool__(&self) -> bool {
        !self.0.is_empty()
    }

    fn __repr__(&self) -> String {
        format!("Set{{{}}}", joined(self.0.iter()))
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let same = other.cast::<PySet>().ok().map(|o| self.0 == o.borrow().0);
        equality(other.py(), same, op)
    }
}

/// Broker's table of `Data` to `Data`: `t[broker.Data("a")]`, `t.items()`, … Keys may be
/// given as any value that converts.
#[pyclass(module = "broker", name = "Table", from_py_object)]
#[derive(Clone, Debug, Default)]
pub(crate) struct PyTable(pub(crate) BTreeMap<Data, Data>);

#[pymethods]
impl PyTable {
    #[new]
    #[pyo3(signature = (items = None))]
    fn new(items: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let Some(items) = items else {
            return Ok(PyTable::default());
        };
        if let Ok(t) = items.cast::<PyTable>() {
            return Ok(t.borrow().clone());
        }
        let pairs = if items.hasattr("items")? {
            items.call_method0("items")?
        } else {
            items.clone()
        };
        let mut out = BTreeMap::new();
        for pair in pairs.try_iter()? {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair?.extract()?;
            out.insert(from_py(&k)?, from_py(&v)?);
        }
        Ok(PyTable(out))
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match self.0.get(&from_py(key)?) {
            Some(v) => data_obj(py, v.clone()),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    fn __setitem__(&mut self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.0.insert(from_py(key)?, from_py(value)?);
        Ok(())
    }

    fn __delitem__(&mut self, key: &Bound<'_, PyAny>) -> PyResult<()> {
        match self.0.remove(&from_py(key)?) {
            Some(_) => Ok(()),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.0.contains_key(&from_py(key)?))
    }

    /// The keys, in Broker's order.
    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<ValueIter>> {
        data_iter(py, self.0.keys())
    }

    /// The keys, in Broker's order.
    fn keys(&self, py: Python<'_>) -> PyResult<Py<ValueIter>> {
        data_iter(py, self.0.keys())
    }

    /// The values, in their keys' order.
    fn values(&self, py: Python<'_>) -> PyResult<Py<ValueIter>> {
        data_iter(py, self.0.values())
    }

    /// `(key, value)` pairs, in the keys' order.
    fn items(&self, py: Python<'_>) -> PyResult<Py<ValueIter>> {
        let items = self
            .0
            .iter()
            .map(|(k, v)| {
                Ok(
                    PyTuple::new(py, [data_obj(py, k.clone())?, data_obj(py, v.clone())?])?
                        .into_any()
                        .unbind(),
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        iter_of(py, items)
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    fn __bool__(&self) -> bool {
        !self.0.is_empty()
    }

    fn __repr__(&self) -> String {
        let items = self
            .0
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!("Table{{{items}}}")
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let same = other.cast::<PyTable>().ok().map(|o| self.0 == o.borrow().0);
        equality(other.py(), same, op)
    }
}

/// Broker's vector of `Data`, with Python's list operations: `v[0]`, `v[-1]`, `v[1:3]`,
/// `append`, `extend`, `insert`, `pop`, …
#[pyclass(module = "broker", name = "Vector", from_py_object)]
#[derive(Clone, Debug, Default)]
pub(crate) struct PyVector(pub(crate) Vec<Data>);

impl PyVector {
    /// A Python index (negative from the end) as a position, or `IndexError`.
    fn position(&self, i: isize) -> PyResult<usize> {
        let len = self.0.len() as isize;
        let j = if i < 0 { i + len } else { i };
        if (0..len).contains(&j) {
            Ok(j as usize)
        } else {
            Err(PyIndexError::new_err("vector index out of range"))
        }
    }
}

#[pymethods]
impl PyVector {
    #[new]
    #[pyo3(signature = (items = None))]
    fn new(items: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let Some(items) = items else {
            return Ok(PyVector::default());
        };
        if let Ok(v) = items.cast::<PyVector>() {
            return Ok(v.borrow().clone());
        }
        let mut out = Vec::new();
        for item in items.try_iter()? {
            out.push(from_py(&item?)?);
        }
        Ok(PyVector(out))
    }

    fn __getitem__(&self, py: Python<'_>, index: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if let Ok(slice) = index.cast::<PySlice>() {
            let ind = slice.indices(self.0.len() as isize)?;
            let mut out = Vec::with_capacity(ind.slicelength);
            let mut i = ind.start;
            for _ in 0..ind.slicelength {
                out.push(self.0[i as usize].clone());
                i += ind.step;
            }
            return Ok(Bound::new(py, PyVector(out))?.into_any().unbind());
        }
        let i = self.position(index.extract()?)?;
        data_obj(py, self.0[i].clone())
    }

    fn __setitem__(&mut self, index: isize, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = self.position(index)?;
        self.0[i] = from_py(value)?;
        Ok(())
    }

    fn __delitem__(&mut self, index: isize) -> PyResult<()> {
        let i = self.position(index)?;
        self.0.remove(i);
        Ok(())
    }

    fn __contains__(&self, x: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.0.contains(&from_py(x)?))
    }

    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<ValueIter>> {
        data_iter(py, self.0.iter())
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    fn __bool__(&self) -> bool {
        !self.0.is_empty()
    }

    /// Adds a value at the end.
    fn append(&mut self, x: &Bound<'_, PyAny>) -> PyResult<()> {
        self.0.push(from_py(x)?);
        Ok(())
    }

    /// Adds every value of an iterable at the end.
    fn extend(&mut self, items: &Bound<'_, PyAny>) -> PyResult<()> {
        let more = PyVector::new(Some(items))?;
        self.0.extend(more.0);
        Ok(())
    }

    /// Inserts a value before position `i` (clamped to the vector, as Python's lists do).
    fn insert(&mut self, i: isize, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let len = self.0.len() as isize;
        let at = if i < 0 { (i + len).max(0) } else { i.min(len) };
        self.0.insert(at as usize, from_py(x)?);
        Ok(())
    }

    /// Removes and returns the value at `i` (the last by default).
    #[pyo3(signature = (i = -1))]
    fn pop(&mut self, py: Python<'_>, i: isize) -> PyResult<Py<PyAny>> {
        if self.0.is_empty() {
            return Err(PyIndexError::new_err("pop from an empty vector"));
        }
        let at = self.position(i)?;
        data_obj(py, self.0.remove(at))
    }

    /// Removes the first occurrence of a value (`ValueError` when there is none).
    fn remove(&mut self, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let d = from_py(x)?;
        match self.0.iter().position(|e| *e == d) {
            Some(i) => {
                self.0.remove(i);
                Ok(())
            }
            None => Err(PyValueError::new_err("value not in the vector")),
        }
    }

    /// How often a value occurs.
    fn count(&self, x: &Bound<'_, PyAny>) -> PyResult<usize> {
        let d = from_py(x)?;
        Ok(self.0.iter().filter(|e| **e == d).count())
    }

    /// Empties the vector.
    fn clear(&mut self) {
        self.0.clear();
    }

    fn __repr__(&self) -> String {
        format!("Vector[{}]", joined(self.0.iter()))
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let same = other
            .cast::<PyVector>()
            .ok()
            .map(|o| self.0 == o.borrow().0);
        equality(other.py(), same, op)
    }
}
