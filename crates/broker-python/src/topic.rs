//! `broker.Topic`, and topics from Python arguments.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::{PyBool, PyString};

/// A topic: `broker.Topic("/a") / "b"` is `/a/b`.
#[pyclass(module = "broker", frozen, from_py_object)]
#[derive(Clone, Debug)]
pub(crate) struct Topic(pub(crate) broker::Topic);

pub(crate) fn check_topic(s: &str) -> PyResult<broker::Topic> {
    broker::Topic::try_from(s)
        .map_err(|e| PyValueError::new_err(format!("invalid topic {s:?}: {e}")))
}

/// Broker's `topic::operator/=`: a separator goes between the two only when `b` does not
/// start with one, and one trailing separator of the result is dropped, so
/// `/a/` / `/b/c` is `/a//b/c` and `/b/c` / `/a/` is `/b/c/a`.
pub(crate) fn join(a: &str, b: &str) -> String {
    let mut out = String::with_capacity(a.len() + b.len() + 1);
    out.push_str(a);
    if !b.is_empty() && !b.starts_with('/') && !a.is_empty() {
        out.push('/');
    }
    out.push_str(b);
    if out.ends_with('/') {
        out.pop();
    }
    out
}

#[pymethods]
impl Topic {
    #[new]
    #[pyo3(signature = (name = ""))]
    fn new(name: &str) -> PyResult<Self> {
        Ok(Topic(check_topic(name)?))
    }

    /// The topic's text.
    fn string(&self) -> &str {
        self.0.as_str()
    }

    fn __str__(&self) -> &str {
        self.0.as_str()
    }

    fn __repr__(&self) -> String {
        self.0.as_str().to_owned()
    }

    fn __truediv__(&self, other: &Bound<'_, PyAny>) -> PyResult<Topic> {
        let rhs = topic_of(other)?;
        Ok(Topic(check_topic(&join(self.0.as_str(), rhs.as_str()))?))
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.0.as_str().hash(&mut h);
        h.finish()
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let py = other.py();
        let theirs = if let Ok(t) = other.cast::<Topic>() {
            t.get().0.as_str().to_owned()
        } else if let Ok(s) = other.extract::<String>() {
            s
        } else {
            return py.NotImplemented();
        };
        PyBool::new(py, op.matches(self.0.as_str().cmp(theirs.as_str())))
            .to_owned()
            .into_any()
            .unbind()
    }
}

/// A topic from a `str` or a `Topic`.
pub(crate) fn topic_of(v: &Bound<'_, PyAny>) -> PyResult<broker::Topic> {
    if let Ok(s) = v.cast::<PyString>() {
        return check_topic(&s.to_cow()?);
    }
    if let Ok(t) = v.cast::<Topic>() {
        return Ok(t.get().0.clone());
    }
    Err(PyTypeError::new_err(format!(
        "a topic is a str or a broker.Topic, not {}",
        v.get_type().name()?
    )))
}

/// Topics from a `str`, a `Topic` or an iterable of these.
pub(crate) fn topics_of(v: &Bound<'_, PyAny>) -> PyResult<Vec<broker::Topic>> {
    if v.is_instance_of::<PyString>() || v.cast::<Topic>().is_ok() {
        return Ok(vec![topic_of(v)?]);
    }
    v.try_iter()
        .map_err(|_| {
            PyTypeError::new_err("topics are a str, a broker.Topic or an iterable of them")
        })?
        .map(|t| topic_of(&t?))
        .collect()
}
