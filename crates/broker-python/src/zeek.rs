//! `broker.zeek.Event`: Zeek events in Zeek's message layout.

use broker_data::zeek::{Event as ZEvent, Message};
use broker_data::{ByteString, Data};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::convert::{from_py, to_py, Count};

/// A Zeek event. `Event("ping", 1, "x")` makes one (keyword `metadata`: a dict or a list of
/// `(key, value)` pairs, keys ints or `broker.Count`); `Event(data)` reads one from a received
/// message.
#[pyclass(module = "broker.zeek", subclass, frozen)]
pub(crate) struct Event {
    /// The message as Broker data (what is published).
    pub(crate) data: Data,
    parsed: Result<ZEvent, String>,
}

fn parse(data: &Data) -> Result<ZEvent, String> {
    match Message::try_from(data) {
        Ok(Message::Event(e)) => Ok(e),
        Ok(other) => Err(format!(
            "not an event but a {:?} message",
            other.message_type()
        )),
        Err(e) => Err(e.to_string()),
    }
}

impl Event {
    fn event(&self) -> PyResult<&ZEvent> {
        self.parsed
            .as_ref()
            .map_err(|e| PyValueError::new_err(format!("invalid Event data: {e}")))
    }
}

#[pymethods]
impl Event {
    #[new]
    #[pyo3(signature = (*args, metadata = None))]
    fn new(args: &Bound<'_, PyTuple>, metadata: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let first = args
            .get_item(0)
            .map_err(|_| PyTypeError::new_err("Event() takes a name and arguments, or data"))?;
        if args.len() == 1 && !first.is_instance_of::<PyString>() {
            if let Ok(ev) = first.cast::<Event>() {
                let data = ev.get().data.clone();
                let parsed = parse(&data);
                return Ok(Event { data, parsed });
            }
            let data = from_py(&first)?;
            let parsed = parse(&data);
            return Ok(Event { data, parsed });
        }
        let name: String = first
            .extract()
            .map_err(|_| PyTypeError::new_err("an event's name is a str"))?;
        let mut ev = ZEvent::new(
            ByteString::from(name.as_str()),
            Vec::with_capacity(args.len()),
        );
        for a in args.iter().skip(1) {
            ev.args.push(from_py(&a)?);
        }
        if let Some(m) = metadata.filter(|m| !m.is_none()) {
            let pairs: Vec<Bound<'_, PyAny>> = match m.cast::<PyDict>() {
                Ok(d) => d.items().iter().collect(),
                Err(_) => m.try_iter()?.collect::<PyResult<_>>()?,
            };
            let mut meta = Vec::with_capacity(pairs.len());
            for p in pairs {
                let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = p
                    .extract()
                    .map_err(|_| PyTypeError::new_err("metadata entries are (key, value) pairs"))?;
                let key = match k.cast::<Count>() {
                    Ok(c) => c.get().value,
                    Err(_) => k.extract::<u64>().map_err(|_| {
                        PyTypeError::new_err("a metadata key is a non-negative int or a Count")
                    })?,
                };
                meta.push((key, from_py(&v)?));
            }
            ev.metadata = Some(meta);
        }
        let data = Data::from(Message::Event(ev));
        // Read back as a receiver reads it, so that `valid()` judges the metadata as Broker
        // does (a NetworkTimestamp that is not a timestamp makes the event invalid).
        let parsed = parse(&data);
        Ok(Event { data, parsed })
    }

    /// Whether the data is a well-formed event (metadata included).
    fn valid(&self) -> bool {
        self.parsed.is_ok()
    }

    /// The event's name.
    fn name(&self) -> PyResult<String> {
        Ok(self.event()?.name.to_string_lossy().into_owned())
    }

    /// The arguments, as a list of Python values.
    fn args(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        self._args(py, false)
    }

    /// The arguments; with `immutable`, in hashable forms (used by `SafeEvent`).
    #[pyo3(signature = (immutable = false))]
    fn _args(&self, py: Python<'_>, immutable: bool) -> PyResult<Vec<Py<PyAny>>> {
        self.event()?
            .args
            .iter()
            .map(|a| Ok(to_py(py, a, immutable)?.unbind()))
            .collect()
    }

    /// The metadata as a list of `(Count, value)` tuples, or `None`.
    fn metadata(&self, py: Python<'_>) -> PyResult<Option<Vec<Py<PyAny>>>> {
        let Some(meta) = &self.event()?.metadata else {
            return Ok(None);
        };
        meta.iter()
            .map(|(k, v)| {
                let pair = Data::Vector(vec![Data::Count(*k), v.clone()]);
                Ok(to_py(py, &pair, false)?.unbind())
            })
            .collect::<PyResult<Vec<_>>>()
            .map(Some)
    }

    /// The network timestamp from the metadata, as a `datetime`, or `None`.
    fn timestamp<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.event()?
            .timestamp()
            .map(|t| to_py(py, &Data::Timestamp(t), false))
            .transpose()
    }

    /// The whole message as a Python value (what `publish` sends).
    fn as_data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.data, false)
    }

    fn __repr__(&self) -> String {
        match &self.parsed {
            Ok(e) => {
                let args: Vec<String> = e.args.iter().map(|a| a.to_string()).collect();
                format!("{}({})", e.name.to_string_lossy(), args.join(", "))
            }
            Err(_) => format!("Event(<invalid> {})", self.data),
        }
    }
}
