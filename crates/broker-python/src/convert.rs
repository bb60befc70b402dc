//! Python values ⇄ Broker data, as the table of Broker's Python documentation says, plus the
//! wrapper classes for Broker types Python lacks (`Count`, `Port`, `Enum`) and `Data`.
//!
//! | Broker    | Python                                            |
//! |-----------|---------------------------------------------------|
//! | none      | `None`                                            |
//! | boolean   | `bool`                                            |
//! | count     | `broker.Count`                                    |
//! | integer   | `int`                                             |
//! | real      | `float`                                           |
//! | timespan  | `datetime.timedelta`                              |
//! | timestamp | timezone-aware `datetime.datetime` (UTC)          |
//! | string    | `str` (`bytes` when not UTF-8)                    |
//! | address   | `ipaddress.IPv4Address` / `IPv6Address`           |
//! | subnet    | `ipaddress.IPv4Network` / `IPv6Network`           |
//! | port      | `broker.Port`                                     |
//! | enum      | `broker.Enum`                                     |
//! | vector    | `tuple` (lists convert too)                       |
//! | set       | `set` (`frozenset` in immutable mode)             |
//! | table     | `dict` (a hashable read-only dict in immutable mode) |

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use broker_data::{Address, ByteString, Data, EnumValue, Port as BPort, Protocol, Subnet};
use broker_data::{Timespan, Timestamp};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple, PyType,
};
use pyo3::PyClass;

/// Values nested deeper than this cannot travel (the wire's limit), so they are refused here.
pub(crate) const MAX_DEPTH: usize = 64;

/// Python classes the conversions use, looked up once.
struct Classes {
    timedelta: Py<PyType>,
    datetime: Py<PyType>,
    utc: Py<PyAny>,
    epoch: Py<PyAny>,
    ipv4_address: Py<PyType>,
    ipv6_address: Py<PyType>,
    ipv4_network: Py<PyType>,
    ipv6_network: Py<PyType>,
    mapping_proxy: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();
static READ_ONLY_DICT: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn classes(py: Python<'_>) -> PyResult<&Classes> {
    CLASSES.get_or_try_init(py, || {
        let datetime = py.import("datetime")?;
        let ipaddress = py.import("ipaddress")?;
        let ty = |m: &Bound<'_, PyModule>, name: &str| -> PyResult<Py<PyType>> {
            Ok(m.getattr(name)?.cast_into::<PyType>()?.unbind())
        };
        let utc = datetime.getattr("timezone")?.getattr("utc")?;
        let epoch = datetime
            .getattr("datetime")?
            .call((1970, 1, 1, 0, 0, 0, 0, &utc), None)?;
        Ok(Classes {
            timedelta: ty(&datetime, "timedelta")?,
            datetime: ty(&datetime, "datetime")?,
            utc: utc.unbind(),
            epoch: epoch.unbind(),
            ipv4_address: ty(&ipaddress, "IPv4Address")?,
            ipv6_address: ty(&ipaddress, "IPv6Address")?,
            ipv4_network: ty(&ipaddress, "IPv4Network")?,
            ipv6_network: ty(&ipaddress, "IPv6Network")?,
            mapping_proxy: ty(&py.import("types")?, "MappingProxyType")?,
        })
    })
}

/// The hashable read-only dict of immutable mode (defined in `broker/__init__.py`).
fn read_only_dict(py: Python<'_>) -> PyResult<&Py<PyType>> {
    READ_ONLY_DICT.get_or_try_init(py, || {
        Ok(py
            .import("broker")?
            .getattr("_HashableReadOnlyDict")?
            .cast_into::<PyType>()?
            .unbind())
    })
}

/// The `TypeError` Broker raises for a value it cannot convert, naming the value's type.
pub(crate) fn unsupported(value: &Bound<'_, PyAny>) -> PyErr {
    let name = value
        .get_type()
        .fully_qualified_name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!("unsupported data type: <class '{name}'>"))
}

// -- Python → Broker ----------------------------------------------------------------------------

/// Converts a Python value to Broker data (see the module's table). A value without a Broker
/// counterpart raises `TypeError` naming its type; integers beyond 64 bits raise
/// `OverflowError`; containers nested deeper than 64 levels raise `ValueError`.
pub(crate) fn from_py(value: &Bound<'_, PyAny>) -> PyResult<Data> {
    from_py_at(value, 0)
}

fn from_py_at(v: &Bound<'_, PyAny>, depth: usize) -> PyResult<Data> {
    let py = v.py();
    if v.is_none() {
        return Ok(Data::None);
    }
    // Exact built-in types first: they are the common case.
    if let Ok(b) = v.cast_exact::<PyBool>() {
        return Ok(Data::Boolean(b.is_true()));
    }
    if v.is_exact_instance_of::<PyInt>() {
        return int_of(v);
    }
    if let Ok(s) = v.cast_exact::<PyString>() {
        return Ok(Data::String(ByteString::from(s.to_cow()?.as_ref())));
    }
    if let Ok(c) = v.cast_exact::<Count>() {
        return Ok(Data::Count(c.get().value));
    }
    if let Ok(f) = v.cast_exact::<PyFloat>() {
        return Ok(Data::Real(f.value()));
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return vector_of(t.iter(), t.len(), depth);
    }
    if let Ok(l) = v.cast::<PyList>() {
        return vector_of(l.iter(), l.len(), depth);
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(Data::String(ByteString::copy_from_slice(b.as_bytes())));
    }
    if let Ok(p) = v.cast::<Port>() {
        return Ok(Data::Port(p.get().0));
    }
    if let Ok(e) = v.cast::<Enum>() {
        return Ok(Data::EnumValue(EnumValue::new(e.get().name.clone())));
    }
    if let Ok(d) = v.cast::<PyData>() {
        return Ok(d.get().0.clone());
    }
    if let Ok(ev) = v.cast::<crate::zeek::Event>() {
        return Ok(ev.get().data.clone());
    }
    if let Some(d) = value_class(v)? {
        return Ok(d);
    }
    if let Ok(c) = v.cast::<Count>() {
        return Ok(Data::Count(c.get().value));
    }
    // Subclasses of the built-ins (bool is an int subclass, handled above when exact).
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Data::Boolean(b.is_true()));
    }
    if v.is_instance_of::<PyInt>() {
        return int_of(v);
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Data::Real(f.value()));
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(Data::String(ByteString::from(s.to_cow()?.as_ref())));
    }
    if let Ok(s) = v.cast::<PySet>() {
        return set_of(s.iter(), depth);
    }
    if let Ok(s) = v.cast::<PyFrozenSet>() {
        return set_of(s.iter(), depth);
    }
    if let Ok(d) = v.cast::<PyDict>() {
        return table_of(d.iter(), depth);
    }
    let c = classes(py)?;
    if v.is_instance(c.timedelta.bind(py))? {
        return Ok(Data::Timespan(Timespan::from_nanos(timedelta_nanos(v)?)));
    }
    if v.is_instance(c.datetime.bind(py))? {
        // Naive datetimes are local time, as `datetime.timestamp()` takes them.
        let aware = v.call_method1("astimezone", (c.utc.bind(py),))?;
        let since = aware.sub(c.epoch.bind(py))?;
        return Ok(Data::Timestamp(Timestamp::from_nanos(timedelta_nanos(
            &since,
        )?)));
    }
    if v.is_instance(c.ipv4_address.bind(py))? || v.is_instance(c.ipv6_address.bind(py))? {
        return Ok(Data::Address(address_of(v)?));
    }
    if v.is_instance(c.ipv4_network.bind(py))? || v.is_instance(c.ipv6_network.bind(py))? {
        let address = address_of(&v.getattr("network_address")?)?;
        let len: u8 = v.getattr("prefixlen")?.extract()?;
        let subnet = Subnet::new(address, len).map_err(|e| PyValueError::new_err(e.to_string()))?;
        return Ok(Data::Subnet(subnet));
    }
    if v.is_instance(c.mapping_proxy.bind(py))? {
        let items = v.call_method0("items")?;
        let mut table = BTreeMap::new();
        for pair in items.try_iter()? {
            let (k, val): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair?.extract()?;
            table.insert(
                from_py_at(&k, nested(depth)?)?,
                from_py_at(&val, nested(depth)?)?,
            );
        }
        return Ok(Data::Table(table));
    }
    Err(unsupported(v))
}

/// The value of one of Broker's value classes (see [`crate::values`]), if `v` is one.
fn value_class(v: &Bound<'_, PyAny>) -> PyResult<Option<Data>> {
    use crate::values::{PyAddress, PySet, PySubnet, PyTable, PyTimespan, PyTimestamp, PyVector};
    // A container being changed while it is converted (`v.append(v)`) cannot be borrowed.
    let busy = |_| PyValueError::new_err("a container cannot hold itself while it changes");
    Ok(Some(if let Ok(a) = v.cast::<PyAddress>() {
        Data::Address(a.try_borrow().map_err(busy)?.0)
    } else if let Ok(s) = v.cast::<PySubnet>() {
        Data::Subnet(s.get().0)
    } else if let Ok(t) = v.cast::<PyTimespan>() {
        Data::Timespan(t.get().0)
    } else if let Ok(t) = v.cast::<PyTimestamp>() {
        Data::Timestamp(t.get().0)
    } else if let Ok(s) = v.cast::<PySet>() {
        Data::Set(s.try_borrow().map_err(busy)?.0.clone())
    } else if let Ok(t) = v.cast::<PyTable>() {
        Data::Table(t.try_borrow().map_err(busy)?.0.clone())
    } else if let Ok(x) = v.cast::<PyVector>() {
        Data::Vector(x.try_borrow().map_err(busy)?.0.clone())
    } else {
        return Ok(None);
    }))
}

fn nested(depth: usize) -> PyResult<usize> {
    if depth + 1 >= MAX_DEPTH {
        Err(PyValueError::new_err(format!(
            "value nested deeper than {MAX_DEPTH} levels"
        )))
    } else {
        Ok(depth + 1)
    }
}

fn int_of(v: &Bound<'_, PyAny>) -> PyResult<Data> {
    match v.extract::<i64>() {
        Ok(i) => Ok(Data::Integer(i)),
        Err(_) => Err(PyOverflowError::new_err(format!(
            "integer {} does not fit Broker's 64-bit integer (use broker.Count for unsigned)",
            v.repr().map(|r| r.to_string()).unwrap_or_default()
        ))),
    }
}

fn vector_of<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    len: usize,
    depth: usize,
) -> PyResult<Data> {
    let d = nested(depth)?;
    let mut out = Vec::with_capacity(len);
    for item in items {
        out.push(from_py_at(&item, d)?);
    }
    Ok(Data::Vector(out))
}

fn set_of<'py>(items: impl Iterator<Item = Bound<'py, PyAny>>, depth: usize) -> PyResult<Data> {
    let d = nested(depth)?;
    let mut out = BTreeSet::new();
    for item in items {
        out.insert(from_py_at(&item, d)?);
    }
    Ok(Data::Set(out))
}

fn table_of<'py>(
    items: impl Iterator<Item = (Bound<'py, PyAny>, Bound<'py, PyAny>)>,
    depth: usize,
) -> PyResult<Data> {
    let d = nested(depth)?;
    let mut out = BTreeMap::new();
    for (k, v) in items {
        out.insert(from_py_at(&k, d)?, from_py_at(&v, d)?);
    }
    Ok(Data::Table(out))
}

/// Python's `datetime.timedelta`.
pub(crate) fn timedelta_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    Ok(classes(py)?.timedelta.bind(py))
}

/// A `timedelta`'s length in nanoseconds, exactly (`OverflowError` beyond ±292 years).
pub(crate) fn timedelta_nanos(td: &Bound<'_, PyAny>) -> PyResult<i64> {
    let days: i64 = td.getattr("days")?.extract()?;
    let secs: i64 = td.getattr("seconds")?.extract()?;
    let micros: i64 = td.getattr("microseconds")?.extract()?;
    let ns =
        (i128::from(days) * 86_400 + i128::from(secs)) * 1_000_000_000 + i128::from(micros) * 1_000;
    i64::try_from(ns)
        .map_err(|_| PyOverflowError::new_err("time beyond Broker's range (±292 years)"))
}

fn address_of(v: &Bound<'_, PyAny>) -> PyResult<Address> {
    let packed = v.getattr("packed")?;
    let bytes = packed.cast::<PyBytes>()?;
    Address::from_slice(bytes.as_bytes()).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Converts an expiry or interval argument: `None`, seconds (int or float) or a `timedelta`.
pub(crate) fn duration_of(v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<std::time::Duration>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let secs = if v.is_instance(classes(v.py())?.timedelta.bind(v.py()))? {
        timedelta_nanos(v)? as f64 / 1e9
    } else if let Ok(s) = v.extract::<f64>() {
        s
    } else {
        return Err(PyTypeError::new_err(format!(
            "expected seconds or a datetime.timedelta, got {}",
            v.get_type().name()?
        )));
    };
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(PyValueError::new_err(format!(
            "a duration must be a non-negative number of seconds, got {secs}"
        )));
    }
    std::time::Duration::try_from_secs_f64(secs)
        .map(Some)
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

// -- Broker → Python ----------------------------------------------------------------------------

/// Converts Broker data to a Python value (see the module's table). With `immutable`, sets
/// become `frozenset`s and tables hashable read-only dicts, so that any nesting (a set of
/// tables, say) can be represented.
pub(crate) fn to_py<'py>(
    py: Python<'py>,
    d: &Data,
    immutable: bool,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match d {
        Data::None => py.None().into_bound(py),
        Data::Boolean(b) => PyBool::new(py, *b).to_owned().into_any(),
        Data::Count(c) => Bound::new(py, Count { value: *c })?.into_any(),
        Data::Integer(i) => i.into_pyobject(py)?.into_any(),
        Data::Real(r) => PyFloat::new(py, *r).into_any(),
        Data::String(s) => match s.as_str() {
            Some(text) => PyString::new(py, text).into_any(),
            None => PyBytes::new(py, s.as_bytes()).into_any(),
        },
        Data::Address(a) => address_to_py(py, a)?,
        Data::Subnet(s) => {
            let c = classes(py)?;
            let network = s.network();
            let (class, addr) = match network.to_ip() {
                std::net::IpAddr::V4(v4) if network.is_v4() => {
                    (&c.ipv4_network, u32::from(v4).into_pyobject(py)?.into_any())
                }
                ip => (
                    &c.ipv6_network,
                    u128::from(match ip {
                        std::net::IpAddr::V6(v6) => v6,
                        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                    })
                    .into_pyobject(py)?
                    .into_any(),
                ),
            };
            class.bind(py).call1(((addr, s.length()),))?
        }
        Data::Port(p) => Bound::new(py, Port(*p))?.into_any(),
        Data::Timestamp(t) => {
            let c = classes(py)?;
            let delta = timedelta_from_nanos(py, t.as_nanos())?;
            c.epoch.bind(py).add(delta)?
        }
        Data::Timespan(t) => timedelta_from_nanos(py, t.as_nanos())?,
        Data::EnumValue(e) => Bound::new(
            py,
            Enum {
                name: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            },
        )?
        .into_any(),
        Data::Set(s) => {
            let items = s
                .iter()
                .map(|x| to_py(py, x, immutable))
                .collect::<PyResult<Vec<_>>>()?;
            if immutable {
                PyFrozenSet::new(py, &items)?.into_any()
            } else {
                PySet::new(py, &items)?.into_any()
            }
        }
        Data::Table(t) => {
            let dict = PyDict::new(py);
            for (k, v) in t {
                dict.set_item(to_py(py, k, immutable)?, to_py(py, v, immutable)?)?;
            }
            if immutable {
                read_only_dict(py)?.bind(py).call1((dict,))?
            } else {
                dict.into_any()
            }
        }
        Data::Vector(v) => {
            let items = v
                .iter()
                .map(|x| to_py(py, x, immutable))
                .collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, items)?.into_any()
        }
    })
}

fn address_to_py<'py>(py: Python<'py>, a: &Address) -> PyResult<Bound<'py, PyAny>> {
    let c = classes(py)?;
    match a.to_ip() {
        std::net::IpAddr::V4(v4) => c.ipv4_address.bind(py).call1((u32::from(v4),)),
        std::net::IpAddr::V6(v6) => c.ipv6_address.bind(py).call1((u128::from(v6),)),
    }
}

fn timedelta_from_nanos(py: Python<'_>, ns: i64) -> PyResult<Bound<'_, PyAny>> {
    let secs = ns.div_euclid(1_000_000_000);
    let micros = ns.rem_euclid(1_000_000_000) / 1_000;
    classes(py)?.timedelta.bind(py).call1((0, secs, micros))
}

/// The current time as a timezone-aware `datetime` (Broker's `now()`).
pub(crate) fn now(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    to_py(py, &Data::Timestamp(Timestamp::now()), false)
}

// -- wrapper classes ----------------------------------------------------------------------------

/// Broker's comparisons of wrapper values: with values of the same class only (anything else
/// is `NotImplemented`, so `Count(1) == 1` is false, as in Broker).
pub(crate) fn compare_same<T, K: Ord>(
    mine: &K,
    other: &Bound<'_, PyAny>,
    op: CompareOp,
    key: impl Fn(&T) -> &K,
) -> Py<PyAny>
where
    T: PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync,
{
    let py = other.py();
    match other.cast::<T>() {
        Ok(o) => PyBool::new(py, op.matches(mine.cmp(key(o.get()))))
            .to_owned()
            .into_any()
            .unbind(),
        Err(_) => py.NotImplemented(),
    }
}

pub(crate) fn hash_of<T: Hash>(x: &T) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    x.hash(&mut h);
    h.finish()
}

/// Broker's `count` (an unsigned 64-bit integer), which Python's `int` cannot stand for.
#[pyclass(module = "broker", frozen, from_py_object)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Count {
    /// The number.
    #[pyo3(get)]
    pub(crate) value: u64,
}

#[pymethods]
impl Count {
    #[new]
    #[pyo3(signature = (value = None))]
    fn new(value: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let Some(v) = value else {
            return Ok(Count { value: 0 });
        };
        if let Ok(c) = v.cast::<Count>() {
            return Ok(*c.get());
        }
        let n = v.cast::<PyInt>().map_err(|_| {
            PyTypeError::new_err(format!(
                "Count() takes an int, not {}",
                v.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        n.extract::<u64>()
            .map(|value| Count { value })
            .map_err(|_| PyOverflowError::new_err("a Count is between 0 and 2**64 - 1"))
    }

    fn __str__(&self) -> String {
        self.value.to_string()
    }

    fn __repr__(&self) -> String {
        format!("Count({})", self.value)
    }

    fn __int__(&self) -> u64 {
        self.value
    }

    fn __index__(&self) -> u64 {
        self.value
    }

    fn __hash__(&self) -> u64 {
        hash_of(&self.value)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        compare_same::<Count, _>(&self.value, other, op, |o| &o.value)
    }
}

/// The protocol of a [`Port`] (Broker's `Port.Protocol`).
#[pyclass(
    module = "broker",
    name = "Protocol",
    eq,
    eq_int,
    frozen,
    hash,
    from_py_object
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub(crate) enum PortProtocol {
    /// Unknown protocol.
    Unknown = 0,
    /// TCP.
    TCP = 1,
    /// UDP.
    UDP = 2,
    /// ICMP.
    ICMP = 3,
}

impl From<Protocol> for PortProtocol {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Unknown => PortProtocol::Unknown,
            Protocol::Tcp => PortProtocol::TCP,
            Protocol::Udp => PortProtocol::UDP,
            Protocol::Icmp => PortProtocol::ICMP,
        }
    }
}

impl From<PortProtocol> for Protocol {
    fn from(p: PortProtocol) -> Self {
        match p {
            PortProtocol::Unknown => Protocol::Unknown,
            PortProtocol::TCP => Protocol::Tcp,
            PortProtocol::UDP => Protocol::Udp,
            PortProtocol::ICMP => Protocol::Icmp,
        }
    }
}

/// A transport port: `broker.Port(80, broker.Port.TCP)`.
#[pyclass(module = "broker", frozen, from_py_object)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Port(pub(crate) BPort);

#[pymethods]
impl Port {
    #[new]
    #[pyo3(signature = (number = 0, protocol = PortProtocol::Unknown))]
    fn new(number: u16, protocol: PortProtocol) -> Self {
        Port(BPort::new(number, protocol.into()))
    }

    #[classattr]
    #[pyo3(name = "Protocol")]
    fn protocol_class(py: Python<'_>) -> Py<PyType> {
        py.get_type::<PortProtocol>().unbind()
    }
    #[classattr]
    #[pyo3(name = "TCP")]
    fn tcp() -> PortProtocol {
        PortProtocol::TCP
    }
    #[classattr]
    #[pyo3(name = "UDP")]
    fn udp() -> PortProtocol {
        PortProtocol::UDP
    }
    #[classattr]
    #[pyo3(name = "ICMP")]
    fn icmp() -> PortProtocol {
        PortProtocol::ICMP
    }
    #[classattr]
    #[pyo3(name = "Unknown")]
    fn unknown() -> PortProtocol {
        PortProtocol::Unknown
    }

    /// The port number.
    fn number(&self) -> u16 {
        self.0.number()
    }

    /// The protocol.
    fn get_type(&self) -> PortProtocol {
        self.0.protocol().into()
    }

    fn __repr__(&self) -> String {
        self.0.to_string()
    }

    fn __hash__(&self) -> u64 {
        hash_of(&self.0)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        compare_same::<Port, _>(&self.0, other, op, |o| &o.0)
    }
}

/// A Zeek enum value, by name: `broker.Enum("Conn::LOG")`.
#[pyclass(module = "broker", frozen, from_py_object)]
#[derive(Clone, Debug)]
pub(crate) struct Enum {
    /// The value's name.
    #[pyo3(get)]
    pub(crate) name: String,
}

#[pymethods]
impl Enum {
    #[new]
    fn new(name: String) -> Self {
        Enum { name }
    }

    fn __repr__(&self) -> String {
        self.name.clone()
    }

    fn __hash__(&self) -> u64 {
        hash_of(&self.name)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        compare_same::<Enum, _>(&self.name, other, op, |o| &o.name)
    }
}

/// A Broker value held as such: `broker.Data(x)` converts once; `str()` gives Broker's text
/// form; `get_type()` says which of `Data.Type` it is and the `as_*` accessors give it in the
/// forms of Broker's bindings; `Data.to_py(d)` and `Data.from_py(x)` convert.
#[pyclass(
    module = "broker",
    name = "Data",
    frozen,
    subclass,
    skip_from_py_object
)]
#[derive(Clone, Debug)]
pub(crate) struct PyData(pub(crate) Data);

impl PyData {
    /// The `TypeError` of an `as_*` accessor called on a value of another type.
    fn not_a(&self, what: &str) -> PyErr {
        PyTypeError::new_err(format!(
            "this Data holds a {}, not a {what}",
            self.0.data_type().name()
        ))
    }
}

#[pymethods]
impl PyData {
    #[new]
    #[pyo3(signature = (value = None))]
    fn new(value: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        Ok(PyData(match value {
            None => Data::None,
            Some(v) => from_py(v)?,
        }))
    }

    #[classattr]
    #[pyo3(name = "Type")]
    fn type_class(py: Python<'_>) -> Py<PyType> {
        py.get_type::<crate::values::PyDataType>().unbind()
    }

    /// Converts a Python value to a `Data`.
    #[staticmethod]
    fn from_py(value: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyData(from_py(value)?))
    }

    /// Converts a `Data` (or any convertible value) to its Python representation; with
    /// `immutable`, sets become frozensets and tables hashable read-only dicts.
    #[staticmethod]
    #[pyo3(signature = (value, immutable = false))]
    fn to_py<'py>(value: &Bound<'py, PyAny>, immutable: bool) -> PyResult<Bound<'py, PyAny>> {
        match value.cast::<PyData>() {
            Ok(d) => to_py(value.py(), &d.get().0, immutable),
            Err(_) => to_py(value.py(), &from_py(value)?, immutable),
        }
    }

    /// Which type the value has, a `Data.Type`.
    fn get_type(&self) -> crate::values::PyDataType {
        self.0.data_type().into()
    }

    /// The address (a `broker.Address`).
    fn as_address(&self) -> PyResult<crate::values::PyAddress> {
        match &self.0 {
            Data::Address(a) => Ok(crate::values::PyAddress(*a)),
            _ => Err(self.not_a("address")),
        }
    }

    /// The boolean.
    fn as_boolean(&self) -> PyResult<bool> {
        match &self.0 {
            Data::Boolean(b) => Ok(*b),
            _ => Err(self.not_a("boolean")),
        }
    }

    /// The count (an int).
    fn as_count(&self) -> PyResult<u64> {
        match &self.0 {
            Data::Count(c) => Ok(*c),
            _ => Err(self.not_a("count")),
        }
    }

    /// The enum value (a `broker.Enum`).
    fn as_enum_value(&self) -> PyResult<Enum> {
        match &self.0 {
            Data::EnumValue(e) => Ok(Enum {
                name: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }),
            _ => Err(self.not_a("enum_value")),
        }
    }

    /// The integer.
    fn as_integer(&self) -> PyResult<i64> {
        match &self.0 {
            Data::Integer(i) => Ok(*i),
            _ => Err(self.not_a("integer")),
        }
    }

    /// Nothing (`None`), when the value is nil.
    fn as_none(&self) -> PyResult<()> {
        match &self.0 {
            Data::None => Ok(()),
            _ => Err(self.not_a("none")),
        }
    }

    /// The port (a `broker.Port`).
    fn as_port(&self) -> PyResult<Port> {
        match &self.0 {
            Data::Port(p) => Ok(Port(*p)),
            _ => Err(self.not_a("port")),
        }
    }

    /// The real number.
    fn as_real(&self) -> PyResult<f64> {
        match &self.0 {
            Data::Real(r) => Ok(*r),
            _ => Err(self.not_a("real")),
        }
    }

    /// The set (a `broker.Set` of `Data`).
    fn as_set(&self) -> PyResult<crate::values::PySet> {
        match &self.0 {
            Data::Set(s) => Ok(crate::values::PySet(s.clone())),
            _ => Err(self.not_a("set")),
        }
    }

    /// The string's bytes.
    fn as_string<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        match &self.0 {
            Data::String(s) => Ok(PyBytes::new(py, s.as_bytes())),
            _ => Err(self.not_a("string")),
        }
    }

    /// The subnet (a `broker.Subnet`).
    fn as_subnet(&self) -> PyResult<crate::values::PySubnet> {
        match &self.0 {
            Data::Subnet(s) => Ok(crate::values::PySubnet(*s)),
            _ => Err(self.not_a("subnet")),
        }
    }

    /// The table (a `broker.Table` of `Data` to `Data`).
    fn as_table(&self) -> PyResult<crate::values::PyTable> {
        match &self.0 {
            Data::Table(t) => Ok(crate::values::PyTable(t.clone())),
            _ => Err(self.not_a("table")),
        }
    }

    /// The timespan in seconds (a float).
    fn as_timespan(&self) -> PyResult<f64> {
        match &self.0 {
            Data::Timespan(t) => Ok(t.as_secs_f64()),
            _ => Err(self.not_a("timespan")),
        }
    }

    /// The timestamp in seconds since the epoch (a float).
    fn as_timestamp(&self) -> PyResult<f64> {
        match &self.0 {
            Data::Timestamp(t) => Ok(t.as_secs_f64()),
            _ => Err(self.not_a("timestamp")),
        }
    }

    /// The vector (a `broker.Vector` of `Data`).
    fn as_vector(&self) -> PyResult<crate::values::PyVector> {
        match &self.0 {
            Data::Vector(v) => Ok(crate::values::PyVector(v.clone())),
            _ => Err(self.not_a("vector")),
        }
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __repr__(&self) -> String {
        format!("Data({})", self.0)
    }

    fn __hash__(&self) -> u64 {
        hash_of(&self.0)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        compare_same::<PyData, _>(&self.0, other, op, |o| &o.0)
    }
}
