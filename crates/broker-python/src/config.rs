//! `broker.BrokerOptions` and `broker.Configuration`.

use pyo3::prelude::*;

use crate::wait::py_err;

/// Broker's `BrokerOptions`.
#[pyclass(module = "broker", skip_from_py_object)]
#[derive(Clone, Debug)]
pub(crate) struct BrokerOptions {
    /// Plain TCP instead of TLS.
    #[pyo3(get, set)]
    disable_ssl: bool,
    /// Do not forward messages between peers.
    #[pyo3(get, set)]
    disable_forwarding: bool,
    /// Ignore `BROKER_*` environment variables.
    #[pyo3(get, set)]
    ignore_broker_conf: bool,
    /// Accepted for compatibility: endpoints always run on real time.
    #[pyo3(get, set)]
    use_real_time: bool,
    /// Hop limit of published messages.
    #[pyo3(get, set)]
    ttl: u16,
}

#[pymethods]
impl BrokerOptions {
    #[new]
    fn new() -> Self {
        let d = broker::Configuration::default();
        BrokerOptions {
            disable_ssl: d.disable_ssl,
            disable_forwarding: !d.forward,
            ignore_broker_conf: false,
            use_real_time: true,
            ttl: d.ttl,
        }
    }

    /// Forward messages between peers (the opposite of `disable_forwarding`).
    #[getter]
    fn get_forward(&self) -> bool {
        !self.disable_forwarding
    }

    #[setter]
    fn set_forward(&mut self, on: bool) {
        self.disable_forwarding = !on;
    }
}

/// Broker's `Configuration`: options plus TLS files and threads, and any option of
/// broker-rs by name with `set(name, value)`.
#[pyclass(module = "broker", skip_from_py_object)]
pub(crate) struct Configuration {
    /// The `BrokerOptions` (shared: changing them changes this configuration).
    #[pyo3(get, set)]
    options: Py<BrokerOptions>,
    /// CA certificates (PEM file).
    #[pyo3(get, set)]
    openssl_cafile: String,
    /// A directory of CA certificates.
    #[pyo3(get, set)]
    openssl_capath: String,
    /// This endpoint's certificate (PEM).
    #[pyo3(get, set)]
    openssl_certificate: String,
    /// The certificate's key (PEM).
    #[pyo3(get, set)]
    openssl_key: String,
    /// The key's passphrase.
    #[pyo3(get, set)]
    openssl_passphrase: String,
    /// Threads of the endpoint's runtime (0: the default).
    #[pyo3(get, set)]
    max_threads: usize,
    extra: Vec<(String, String)>,
}

#[pymethods]
impl Configuration {
    #[new]
    #[pyo3(signature = (options = None))]
    pub(crate) fn new(py: Python<'_>, options: Option<Py<BrokerOptions>>) -> PyResult<Self> {
        let options = match options {
            Some(o) => Py::new(py, o.borrow(py).clone())?,
            None => Py::new(py, BrokerOptions::new())?,
        };
        Ok(Configuration {
            options,
            openssl_cafile: String::new(),
            openssl_capath: String::new(),
            openssl_certificate: String::new(),
            openssl_key: String::new(),
            openssl_passphrase: String::new(),
            max_threads: 0,
            extra: Vec::new(),
        })
    }

    /// Sets any option of broker-rs by name (`peer_buffer_size`, `subscriber_queue_size`, …)
    /// from its text form; raises `ValueError` for an unknown name or a bad value.
    fn set(&mut self, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let text = value.str()?.to_string();
        broker::Configuration::default()
            .set(name, &text)
            .map_err(py_err)?;
        self.extra.push((name.to_owned(), text));
        Ok(())
    }
}

impl Configuration {
    pub(crate) fn build(&self, py: Python<'_>) -> PyResult<broker::Configuration> {
        let o = self.options.borrow(py);
        let mut c = broker::Configuration::default();
        if !o.ignore_broker_conf {
            c.apply_env(std::env::vars()).map_err(py_err)?;
        }
        c.disable_ssl = o.disable_ssl;
        c.forward = !o.disable_forwarding;
        c.ttl = o.ttl;
        let path = |s: &str| Some(std::path::PathBuf::from(s)).filter(|_| !s.is_empty());
        if let Some(p) = path(&self.openssl_cafile) {
            c.ssl_cafile = Some(p);
        }
        if let Some(p) = path(&self.openssl_capath) {
            c.ssl_capath = Some(p);
        }
        if let Some(p) = path(&self.openssl_certificate) {
            c.ssl_certificate = Some(p);
        }
        if let Some(p) = path(&self.openssl_key) {
            c.ssl_key = Some(p);
        }
        if !self.openssl_passphrase.is_empty() {
            c.ssl_passphrase = Some(self.openssl_passphrase.clone());
        }
        if self.max_threads > 0 {
            c.threads = self.max_threads;
        }
        for (k, v) in &self.extra {
            c.set(k, v).map_err(py_err)?;
        }
        Ok(c)
    }
}
