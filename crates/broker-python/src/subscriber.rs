//! `broker.Subscriber` and `broker.StatusSubscriber`.

use std::sync::{Arc, Mutex};

use broker::DataMessage;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use crate::convert::to_py;
use crate::status::status_to_py;
use crate::topic::topic_of;
use crate::wait::{deadline_of, get_args, lock, py_err, take_n, wait_for};
use broker::data::Data;

/// Receives `(topic, data)` messages (`broker.Subscriber`); a context manager.
#[pyclass(module = "broker", frozen)]
pub(crate) struct Subscriber {
    pub(crate) inner: Mutex<Option<Arc<broker::Subscriber>>>,
    pub(crate) immutable: bool,
}

pub(crate) fn reset_error() -> PyErr {
    PyRuntimeError::new_err("the subscriber was reset")
}

impl Subscriber {
    fn get_inner(&self) -> PyResult<Arc<broker::Subscriber>> {
        lock(&self.inner).clone().ok_or_else(reset_error)
    }

    fn convert(&self, py: Python<'_>, msgs: Vec<DataMessage>) -> PyResult<Vec<Py<PyAny>>> {
        let mut last: Option<(broker::Topic, Bound<'_, PyString>)> = None;
        let mut out = Vec::with_capacity(msgs.len());
        for m in msgs {
            let topic = match &last {
                Some((t, s)) if *t == m.topic => s.clone(),
                _ => {
                    let s = PyString::new(py, m.topic.as_str());
                    last = Some((m.topic.clone(), s.clone()));
                    s
                }
            };
            let value = convert_lossless(py, &m.data, self.immutable)?;
            out.push(
                PyTuple::new(py, [topic.into_any(), value])?
                    .into_any()
                    .unbind(),
            );
        }
        Ok(out)
    }
}

#[pymethods]
impl Subscriber {
    /// `get()` waits for one message and returns `(topic, data)`; `get(timeout)` returns it
    /// or `None` after `timeout` seconds; `get(num)` waits for `num` messages and returns a
    /// list; `get(num, timeout)` returns up to `num` that came within `timeout`.
    #[pyo3(signature = (a = None, b = None, *, num = None, timeout = None))]
    fn get(
        &self,
        py: Python<'_>,
        a: Option<&Bound<'_, PyAny>>,
        b: Option<&Bound<'_, PyAny>>,
        num: Option<usize>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let (num, timeout) = get_args(a, b, num, timeout)?;
        let deadline = deadline_of(timeout)?;
        let sub = self.get_inner()?;
        match num {
            None => {
                let s = sub.clone();
                let got = wait_for(
                    py,
                    deadline,
                    |slice| s.get_timeout(slice),
                    || sub.is_closed(),
                )?;
                match got {
                    Some(m) => Ok(self.convert(py, vec![m])?.remove(0)),
                    None => Ok(py.None()),
                }
            }
            Some(n) => {
                let all = take_n(
                    py,
                    deadline,
                    n,
                    |want, slice| sub.get_n(want, Some(slice)),
                    || sub.is_closed(),
                )?;
                Ok(PyList::new(py, self.convert(py, all)?)?.into_any().unbind())
            }
        }
    }

    /// Every pending message, without waiting.
    fn poll(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        let msgs = self.get_inner()?.poll();
        self.convert(py, msgs)
    }

    /// How many messages are pending.
    fn available(&self) -> PyResult<usize> {
        Ok(self.get_inner()?.available())
    }

    /// A descriptor readable exactly while messages are pending (for `select`/`poll`).
    fn fd(&self) -> PyResult<i32> {
        Ok(self.get_inner()?.fd())
    }

    /// Messages dropped because the queue was full.
    fn dropped(&self) -> PyResult<u64> {
        Ok(self.get_inner()?.dropped())
    }

    /// Adds a topic prefix.
    #[pyo3(signature = (topic, block = false))]
    fn add_topic(&self, topic: &Bound<'_, PyAny>, block: bool) -> PyResult<()> {
        let _ = block;
        let t = topic_of(topic)?;
        self.get_inner()?.add_topic(t.as_str()).map_err(py_err)
    }

    /// Removes a topic prefix.
    #[pyo3(signature = (topic, block = false))]
    fn remove_topic(&self, topic: &Bound<'_, PyAny>, block: bool) -> PyResult<()> {
        let _ = block;
        let t = topic_of(topic)?;
        self.get_inner()?.remove_topic(t.as_str()).map_err(py_err)
    }

    /// Unsubscribes; the subscriber cannot be used afterwards.
    fn reset(&self) {
        lock(&self.inner).take();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.reset();
        false
    }
}

/// Receives `broker.Status` and `broker.Error` values; a context manager.
#[pyclass(module = "broker", frozen)]
pub(crate) struct StatusSubscriber {
    pub(crate) inner: Mutex<Option<Arc<broker::StatusSubscriber>>>,
}

impl StatusSubscriber {
    fn get_inner(&self) -> PyResult<Arc<broker::StatusSubscriber>> {
        lock(&self.inner).clone().ok_or_else(reset_error)
    }
}

#[pymethods]
impl StatusSubscriber {
    /// As `Subscriber.get`, returning `Status` or `Error` values.
    #[pyo3(signature = (a = None, b = None, *, num = None, timeout = None))]
    fn get(
        &self,
        py: Python<'_>,
        a: Option<&Bound<'_, PyAny>>,
        b: Option<&Bound<'_, PyAny>>,
        num: Option<usize>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let (num, timeout) = get_args(a, b, num, timeout)?;
        let deadline = deadline_of(timeout)?;
        let sub = self.get_inner()?;
        match num {
            None => {
                let s = sub.clone();
                match wait_for(
                    py,
                    deadline,
                    |slice| s.get_timeout(slice),
                    || sub.is_closed(),
                )? {
                    Some(ev) => status_to_py(py, ev),
                    None => Ok(py.None()),
                }
            }
            Some(n) => {
                let all = take_n(
                    py,
                    deadline,
                    n,
                    |want, slice| sub.get_n(want, Some(slice)),
                    || sub.is_closed(),
                )?;
                let items = all
                    .into_iter()
                    .map(|ev| status_to_py(py, ev))
                    .collect::<PyResult<Vec<_>>>()?;
                Ok(PyList::new(py, items)?.into_any().unbind())
            }
        }
    }

    /// Every pending status or error, without waiting.
    fn poll(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        self.get_inner()?
            .poll()
            .into_iter()
            .map(|ev| status_to_py(py, ev))
            .collect()
    }

    /// How many are pending.
    fn available(&self) -> PyResult<usize> {
        Ok(self.get_inner()?.available())
    }

    /// A descriptor readable exactly while something is pending.
    fn fd(&self) -> PyResult<i32> {
        Ok(self.get_inner()?.fd())
    }

    /// Stops receiving.
    fn reset(&self) {
        lock(&self.inner).take();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.reset();
        false
    }
}

/// Converts a received value without ever losing it: a value that plain Python types cannot
/// hold (a set of dicts, say) comes in immutable forms, and one that Python cannot represent
/// at all (should there be one) as a `broker.Data`.
pub(crate) fn convert_lossless<'py>(
    py: Python<'py>,
    d: &Data,
    immutable: bool,
) -> PyResult<Bound<'py, PyAny>> {
    match to_py(py, d, immutable) {
        Ok(v) => Ok(v),
        Err(_) if !immutable => convert_lossless(py, d, true),
        Err(_) => Ok(Bound::new(py, crate::convert::PyData(d.clone()))?.into_any()),
    }
}
