//! `broker.Publisher`.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::convert::from_py;
use crate::wait::{lock, py_err};

/// Publishes on one topic (`broker.Publisher`); a context manager.
#[pyclass(module = "broker", frozen)]
pub(crate) struct Publisher {
    inner: Mutex<Option<Arc<broker::Publisher>>>,
    endpoint: broker::Endpoint,
    /// Always readable: `publish` waits by itself when the network cannot keep up, so a
    /// caller that selects on `fd()` before publishing never deadlocks.
    ready: (UnixStream, UnixStream),
}

impl Publisher {
    pub(crate) fn new(p: broker::Publisher, endpoint: broker::Endpoint) -> PyResult<Self> {
        use std::io::Write;
        let (r, mut w) = UnixStream::pair()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot create descriptor: {e}")))?;
        w.write_all(&[1])
            .map_err(|e| PyRuntimeError::new_err(format!("cannot signal descriptor: {e}")))?;
        Ok(Publisher {
            inner: Mutex::new(Some(Arc::new(p))),
            endpoint,
            ready: (r, w),
        })
    }

    fn get_inner(&self) -> PyResult<Arc<broker::Publisher>> {
        lock(&self.inner)
            .clone()
            .ok_or_else(|| PyRuntimeError::new_err("the publisher was reset"))
    }
}

#[pymethods]
impl Publisher {
    /// Publishes one value, waiting while the endpoint's buffers are full.
    fn publish(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let p = self.get_inner()?;
        let d = from_py(data)?;
        send_on(
            &self.endpoint,
            py,
            vec![(p.topic().clone(), broker::data::SharedData::from(d))],
        )
    }

    /// Publishes several values: `publish_batch(1, 2, 3)`.
    #[pyo3(signature = (*batch))]
    fn publish_batch(&self, py: Python<'_>, batch: &Bound<'_, PyTuple>) -> PyResult<()> {
        let p = self.get_inner()?;
        // One list argument is accepted too (`publish_batch([1, 2])`).
        let items: Vec<Bound<'_, PyAny>> =
            if batch.len() == 1 && batch.get_item(0)?.is_instance_of::<PyList>() {
                batch.get_item(0)?.try_iter()?.collect::<PyResult<_>>()?
            } else {
                batch.iter().collect()
            };
        let mut out: broker::Publications = Vec::with_capacity(items.len());
        for d in &items {
            out.push((p.topic().clone(), from_py(d)?.into()));
        }
        if out.is_empty() {
            return Ok(());
        }
        send_on(&self.endpoint, py, out)
    }

    /// How many more batches fit before `publish` waits.
    fn demand(&self) -> PyResult<usize> {
        Ok(self.get_inner()?.demand())
    }

    /// Batches buffered in the endpoint, not yet taken by its core.
    fn buffered(&self) -> PyResult<usize> {
        let p = self.get_inner()?;
        Ok(p.capacity() - p.demand())
    }

    /// How many batches the endpoint buffers at most.
    fn capacity(&self) -> PyResult<usize> {
        Ok(self.get_inner()?.capacity())
    }

    /// Same as `demand()`.
    fn free_capacity(&self) -> PyResult<usize> {
        Ok(self.get_inner()?.demand())
    }

    /// Accepted for compatibility; not measured (0).
    fn send_rate(&self) -> usize {
        0
    }

    /// A descriptor that is always readable: `publish` itself waits when it must.
    fn fd(&self) -> i32 {
        self.ready.0.as_raw_fd()
    }

    /// Detaches the publisher.
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

pub(crate) fn send_on(
    ep: &broker::Endpoint,
    py: Python<'_>,
    batch: broker::Publications,
) -> PyResult<()> {
    match ep.try_publish_prepared(batch) {
        Ok(()) => Ok(()),
        Err(broker::TryPublishError::Full(b)) => {
            py.detach(|| ep.publish_prepared(b)).map_err(py_err)
        }
        Err(broker::TryPublishError::Closed(_)) => Err(PyRuntimeError::new_err(
            "shutting_down: the endpoint has shut down",
        )),
    }
}
