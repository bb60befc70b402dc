//! Blocking waits from Python: the interpreter released while waiting, signals (Ctrl-C)
//! looked at every 50 ms, Broker errors as Python exceptions, and `get()`'s argument forms.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use broker::ErrorCode;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};

/// How long a blocking call waits with the interpreter released before it looks for signals
/// (Ctrl-C) and goes on waiting.
const SLICE: Duration = Duration::from_millis(50);

/// A Broker error as a Python exception: bad input is `ValueError`, the rest `RuntimeError`.
pub(crate) fn py_err(e: broker::Error) -> PyErr {
    match e.code {
        ErrorCode::InvalidTopicKey | ErrorCode::InvalidData => {
            PyValueError::new_err(format!("{}: {}", e.code.name(), e.message))
        }
        _ => PyRuntimeError::new_err(format!("{}: {}", e.code.name(), e.message)),
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits in slices with the interpreter released, checking for signals between slices, until
/// `step` yields something, `deadline` passes or `closed` says nothing will come.
pub(crate) fn wait_for<T: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut step: impl FnMut(Duration) -> Option<T> + Send,
    closed: impl Fn() -> bool + Send + Sync,
) -> PyResult<Option<T>> {
    loop {
        let slice = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
            None => SLICE,
        };
        if let Some(x) = py.detach(|| step(slice)) {
            return Ok(Some(x));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) || closed() {
            return Ok(None);
        }
        py.check_signals()?;
    }
}

/// Broker's `get(num, timeout)`: collects up to `n` items, waiting (interruptibly) until
/// there are `n`, `deadline` passes or nothing more can come.
pub(crate) fn take_n<T: Send>(
    py: Python<'_>,
    deadline: Option<Instant>,
    n: usize,
    take: impl Fn(usize, Duration) -> Vec<T> + Send + Sync,
    closed: impl Fn() -> bool + Send + Sync,
) -> PyResult<Vec<T>> {
    let mut all: Vec<T> = Vec::with_capacity(n.min(65_536));
    while all.len() < n {
        let want = n - all.len();
        let batch = wait_for(
            py,
            deadline,
            |slice| Some(take(want, slice)).filter(|v| !v.is_empty()),
            &closed,
        )?;
        match batch {
            Some(b) => all.extend(b),
            None => break,
        }
    }
    Ok(all)
}

pub(crate) fn deadline_of(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_finite() && t >= 0.0 => {
            Ok(Some(Instant::now() + Duration::from_secs_f64(t.min(1e9))))
        }
        Some(t) => Err(PyValueError::new_err(format!(
            "a timeout must be a non-negative number of seconds, got {t}"
        ))),
    }
}

/// Parses Broker's overloaded `get`: `get()`, `get(timeout: float)`, `get(num: int)`,
/// `get(num, timeout)`, and the keywords `num=` and `timeout=`.
pub(crate) fn get_args(
    a: Option<&Bound<'_, PyAny>>,
    b: Option<&Bound<'_, PyAny>>,
    num: Option<usize>,
    timeout: Option<f64>,
) -> PyResult<(Option<usize>, Option<f64>)> {
    let (mut n, mut t) = (num, timeout);
    if let Some(a) = a.filter(|a| !a.is_none()) {
        if a.is_instance_of::<PyInt>() && !a.is_instance_of::<PyBool>() {
            n = Some(a.extract()?);
        } else if let Ok(x) = a.extract::<f64>() {
            t = Some(x);
        } else {
            return Err(PyTypeError::new_err(
                "get() takes a count (int) and/or a timeout in seconds (float)",
            ));
        }
    }
    if let Some(b) = b.filter(|b| !b.is_none()) {
        t = Some(b.extract()?);
    }
    Ok((n, t))
}
