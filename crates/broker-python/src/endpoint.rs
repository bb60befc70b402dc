//! `broker.Endpoint` and what it hands out: subscribers, status subscribers, publishers,
//! statuses and errors, peer information, topics, configuration.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker::data::Data;
use broker::{DataMessage, EndpointId, ErrorCode, PeerState, StatusCode, StatusEvent};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::{PyBool, PyDict, PyInt, PyList, PyString, PyTuple};

use crate::convert::{from_py, to_py};
use crate::store::{Backend, Store};

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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
fn take_n<T: Send>(
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

fn deadline_of(timeout: Option<f64>) -> PyResult<Option<Instant>> {
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
fn get_args(
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

// -- topics -------------------------------------------------------------------------------------

/// A topic: `broker.Topic("/a") / "b"` is `/a/b`.
#[pyclass(module = "broker", frozen, from_py_object)]
#[derive(Clone, Debug)]
pub(crate) struct Topic(pub(crate) broker::Topic);

fn check_topic(s: &str) -> PyResult<broker::Topic> {
    broker::Topic::try_from(s)
        .map_err(|e| PyValueError::new_err(format!("invalid topic {s:?}: {e}")))
}

/// Broker's `topic::operator/=`: a separator goes between the two only when `b` does not
/// start with one, and one trailing separator of the result is dropped, so
/// `/a/` / `/b/c` is `/a//b/c` and `/b/c` / `/a/` is `/b/c/a`.
fn join(a: &str, b: &str) -> String {
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
fn topics_of(v: &Bound<'_, PyAny>) -> PyResult<Vec<broker::Topic>> {
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

// -- codes --------------------------------------------------------------------------------------

/// Broker's status codes (`broker.SC`).
#[pyclass(module = "broker", eq, eq_int, frozen, hash, from_py_object)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SC {
    /// Unspecified.
    Unspecified = 0,
    /// A peering was established.
    PeerAdded = 1,
    /// A peering was removed (unpeer).
    PeerRemoved = 2,
    /// A peering was lost.
    PeerLost = 3,
    /// An endpoint became reachable.
    EndpointDiscovered = 4,
    /// An endpoint became unreachable.
    EndpointUnreachable = 5,
}

impl From<StatusCode> for SC {
    fn from(c: StatusCode) -> Self {
        match c {
            StatusCode::Unspecified => SC::Unspecified,
            StatusCode::PeerAdded => SC::PeerAdded,
            StatusCode::PeerRemoved => SC::PeerRemoved,
            StatusCode::PeerLost => SC::PeerLost,
            StatusCode::EndpointDiscovered => SC::EndpointDiscovered,
            StatusCode::EndpointUnreachable => SC::EndpointUnreachable,
        }
    }
}

macro_rules! error_codes {
    ($($name:ident = $n:literal => $code:ident),* $(,)?) => {
        /// Broker's error codes (`broker.EC`), with Broker's numbers.
        #[pyclass(module = "broker", eq, eq_int, frozen, hash, from_py_object)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub(crate) enum EC {
            $(
                #[doc = concat!("`", stringify!($code), "`")]
                $name = $n,
            )*
        }

        impl From<ErrorCode> for EC {
            fn from(c: ErrorCode) -> Self {
                match c {
                    ErrorCode::None => EC::Unspecified,
                    $(ErrorCode::$code => EC::$name,)*
                    _ => EC::Unspecified,
                }
            }
        }
    };
}

error_codes! {
    Unspecified = 1 => Unspecified,
    PeerIncompatible = 2 => PeerIncompatible,
    PeerInvalid = 3 => PeerInvalid,
    PeerUnavailable = 4 => PeerUnavailable,
    PeerDisconnectDuringHandshake = 5 => PeerDisconnectDuringHandshake,
    PeerTimeout = 6 => PeerTimeout,
    MasterExists = 7 => MasterExists,
    NoSuchMaster = 8 => NoSuchMaster,
    NoSuchKey = 9 => NoSuchKey,
    RequestTimeOut = 10 => RequestTimeout,
    TypeClash = 11 => TypeClash,
    InvalidData = 12 => InvalidData,
    BackendFailure = 13 => BackendFailure,
    StaleData = 14 => StaleData,
    CannotOpenFile = 15 => CannotOpenFile,
    CannotWriteFile = 16 => CannotWriteFile,
    InvalidTopicKey = 17 => InvalidTopicKey,
    EndOfFile = 18 => EndOfFile,
    InvalidTag = 19 => InvalidTag,
    InvalidMessage = 20 => InvalidMessage,
    InvalidStatus = 21 => InvalidStatus,
    ConversionFailed = 22 => ConversionFailed,
    ConsumerExists = 23 => ConsumerExists,
    ConnectionTimeout = 24 => ConnectionTimeout,
    BadMemberFunctionCall = 25 => BadMemberFunctionCall,
    RepeatedRequestId = 26 => RepeatedRequestId,
    BrokenClone = 27 => BrokenClone,
    ShuttingDown = 28 => ShuttingDown,
    InvalidPeeringRequest = 29 => InvalidPeeringRequest,
    RepeatedPeeringHandshakeRequest = 30 => RepeatedPeeringHandshakeRequest,
    UnexpectedHandshakeMessage = 31 => UnexpectedHandshakeMessage,
    InvalidHandshakeState = 32 => InvalidHandshakeState,
    NoPathToPeer = 33 => NoPathToPeer,
    NoConnectorAvailable = 34 => NoConnectorAvailable,
    CannotOpenResource = 35 => CannotOpenResource,
    SerializationFailed = 36 => SerializationFailed,
    DeserializationFailed = 37 => DeserializationFailed,
    WrongMagicNumber = 38 => WrongMagicNumber,
    RedundantConnection = 39 => RedundantConnection,
    LogicError = 40 => LogicError,
    InvalidJson = 41 => InvalidJson,
}

/// The state of a peering (`broker.PeerStatus`).
#[pyclass(module = "broker", eq, eq_int, frozen, hash, from_py_object)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PeerStatus {
    /// Being set up.
    Initialized = 0,
    /// Dialing.
    Connecting = 1,
    /// Connected, handshake under way.
    Connected = 2,
    /// Messages flow.
    Peered = 3,
    /// Gone.
    Disconnected = 4,
    /// Lost, dialing again.
    Reconnecting = 5,
}

/// Bits of a peer's flags (`broker.PeerFlags`); `PeerInfo.flags` is an `int` of these bits.
#[pyclass(module = "broker", eq, eq_int, frozen, hash, from_py_object)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PeerFlags {
    /// No flags.
    Invalid = 0,
    /// An endpoint of this process.
    Local = 1,
    /// An endpoint over the network.
    Remote = 2,
    /// We dialed it.
    Outbound = 4,
    /// It dialed us.
    Inbound = 8,
}

// -- statuses -----------------------------------------------------------------------------------

/// The two styles of Broker 1's API (`broker.APIFlags`), kept for scripts that name them:
/// every endpoint here offers both blocking and non-blocking calls.
#[pyclass(module = "broker", eq, eq_int, frozen, hash, from_py_object)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum APIFlags {
    /// Calls that wait.
    Blocking = 0,
    /// Calls that return at once.
    NonBlocking = 1,
}

/// Where an endpoint is (`EndpointInfo.network`). As Broker's `OptionalNetworkInfo` it may
/// be unset (an endpoint known only by id): then `is_set()` is false, it is false as a bool
/// and `get()` raises `ValueError`.
#[pyclass(module = "broker", frozen, skip_from_py_object)]
#[derive(Clone, Debug)]
pub(crate) struct NetworkInfo {
    /// The address (empty when unset).
    #[pyo3(get)]
    address: String,
    /// The port (0 when unset).
    #[pyo3(get)]
    port: u16,
    set: bool,
}

#[pymethods]
impl NetworkInfo {
    /// Whether the address is known.
    fn is_set(&self) -> bool {
        self.set
    }

    /// The network info itself, when set (Broker's `OptionalNetworkInfo.get()`).
    fn get(slf: PyRef<'_, Self>) -> PyResult<PyRef<'_, Self>> {
        if slf.set {
            Ok(slf)
        } else {
            Err(PyValueError::new_err(
                "no network info: the endpoint's address is unknown",
            ))
        }
    }

    fn __bool__(&self) -> bool {
        self.set
    }

    fn __repr__(&self) -> String {
        if self.set {
            format!("{}:{}", self.address, self.port)
        } else {
            "nil".to_owned()
        }
    }
}

/// Which endpoint a status, error or peer is about.
#[pyclass(module = "broker", frozen, skip_from_py_object)]
#[derive(Clone, Debug)]
pub(crate) struct EndpointInfo {
    node: Option<EndpointId>,
    /// Its address (a `NetworkInfo`, unset when not known).
    #[pyo3(get)]
    network: NetworkInfo,
}

impl EndpointInfo {
    fn new(node: Option<EndpointId>, addr: Option<std::net::SocketAddr>) -> Self {
        EndpointInfo {
            node,
            network: match addr {
                Some(a) => NetworkInfo {
                    address: a.ip().to_string(),
                    port: a.port(),
                    set: true,
                },
                None => NetworkInfo {
                    address: String::new(),
                    port: 0,
                    set: false,
                },
            },
        }
    }
}

#[pymethods]
impl EndpointInfo {
    /// The endpoint's id (empty when not known yet).
    fn node_id(&self) -> String {
        self.node.map(|n| n.to_string()).unwrap_or_default()
    }

    fn __repr__(&self) -> String {
        if self.network.set {
            format!("{}@{}", self.node_id(), self.network.__repr__())
        } else {
            self.node_id()
        }
    }
}

/// A status (`broker.Status`): a change in connectivity.
#[pyclass(module = "broker", frozen, skip_from_py_object)]
#[derive(Clone, Debug)]
pub(crate) struct Status {
    code: SC,
    name: &'static str,
    context: EndpointInfo,
    message: String,
}

#[pymethods]
impl Status {
    /// The status code.
    fn code(&self) -> SC {
        self.code
    }
    /// The endpoint concerned.
    fn context(&self) -> EndpointInfo {
        self.context.clone()
    }
    /// The explanation.
    fn message(&self) -> &str {
        &self.message
    }
    fn __repr__(&self) -> String {
        format!(
            "{}({}, \"{}\")",
            self.name,
            self.context.__repr__(),
            self.message
        )
    }
}

/// An error (`broker.Error`) as a status subscriber receives it.
#[pyclass(module = "broker", frozen, skip_from_py_object)]
#[derive(Clone, Debug)]
pub(crate) struct Error {
    code: EC,
    name: &'static str,
    context: EndpointInfo,
    message: String,
}

#[pymethods]
impl Error {
    /// The error code.
    fn code(&self) -> EC {
        self.code
    }
    /// The endpoint concerned.
    fn context(&self) -> EndpointInfo {
        self.context.clone()
    }
    /// The explanation.
    fn message(&self) -> &str {
        &self.message
    }
    fn __repr__(&self) -> String {
        format!(
            "error({}, {}, \"{}\")",
            self.name,
            self.context.__repr__(),
            self.message
        )
    }
}

fn status_to_py(py: Python<'_>, ev: StatusEvent) -> PyResult<Py<PyAny>> {
    Ok(match ev {
        StatusEvent::Status {
            code,
            context,
            message,
        } => Py::new(
            py,
            Status {
                code: code.into(),
                name: code.name(),
                context: EndpointInfo::new(Some(context.id), context.address),
                message,
            },
        )?
        .into_any(),
        StatusEvent::Error {
            code,
            context,
            message,
        } => Py::new(
            py,
            Error {
                code: code.into(),
                name: code.name(),
                context: EndpointInfo::new(Some(context.id), context.address),
                message,
            },
        )?
        .into_any(),
    })
}

/// One peer (`broker.PeerInfo`).
#[pyclass(module = "broker", frozen, skip_from_py_object)]
#[derive(Clone, Debug)]
pub(crate) struct PeerInfo {
    /// The peer.
    #[pyo3(get)]
    peer: EndpointInfo,
    /// `PeerFlags` bits: Local or Remote, Outbound or Inbound.
    #[pyo3(get)]
    flags: u32,
    /// The state of the peering.
    #[pyo3(get)]
    status: PeerStatus,
}

#[pymethods]
impl PeerInfo {
    fn __repr__(&self) -> String {
        format!("PeerInfo({}, {:?})", self.peer.__repr__(), self.status)
    }
}

// -- configuration ------------------------------------------------------------------------------

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
    fn new(py: Python<'_>, options: Option<Py<BrokerOptions>>) -> PyResult<Self> {
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

/// Python subscribers default to a deep queue: a Python loop drains in bursts.
const PYTHON_QUEUE: usize = 1 << 18;

impl Configuration {
    fn build(&self, py: Python<'_>) -> PyResult<broker::Configuration> {
        let o = self.options.borrow(py);
        let mut c = broker::Configuration {
            subscriber_queue_size: PYTHON_QUEUE,
            ..broker::Configuration::default()
        };
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

// -- endpoint -----------------------------------------------------------------------------------

/// An endpoint (`broker.Endpoint`), also a context manager that shuts it down.
#[pyclass(module = "broker", subclass, frozen)]
pub(crate) struct Endpoint {
    pub(crate) inner: broker::Endpoint,
    queue_size: usize,
    /// The last topic published by name, checked once.
    last_topic: Mutex<Option<broker::Topic>>,
}

fn node_of(s: &str) -> PyResult<EndpointId> {
    s.parse()
        .map_err(|_| PyValueError::new_err(format!("invalid endpoint id {s:?}")))
}

fn retry_of(retry: f64) -> Option<Duration> {
    (retry.is_finite() && retry > 0.0).then(|| Duration::from_secs_f64(retry.min(1e9)))
}

impl Endpoint {
    fn topic(&self, v: &Bound<'_, PyAny>) -> PyResult<broker::Topic> {
        if let Ok(s) = v.cast::<PyString>() {
            let s = s.to_cow()?;
            let s = s.as_ref();
            let mut last = lock(&self.last_topic);
            if let Some(t) = last.as_ref().filter(|t| t.as_str() == s) {
                return Ok(t.clone());
            }
            let t = check_topic(s)?;
            *last = Some(t.clone());
            return Ok(t);
        }
        topic_of(v)
    }

    /// Hands a batch to the endpoint; waits (interpreter released) only when buffers are full.
    pub(crate) fn send(&self, py: Python<'_>, batch: broker::Publications) -> PyResult<()> {
        send_on(&self.inner, py, batch)
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

#[pymethods]
impl Endpoint {
    #[new]
    #[pyo3(signature = (config = None))]
    fn new(py: Python<'_>, config: Option<&Bound<'_, Configuration>>) -> PyResult<Self> {
        let cfg = match config {
            Some(c) => c.borrow().build(py)?,
            None => Configuration::new(py, None)?.build(py)?,
        };
        let queue_size = cfg.subscriber_queue_size;
        let inner = py.detach(|| broker::Endpoint::new(cfg)).map_err(py_err)?;
        Ok(Endpoint {
            inner,
            queue_size,
            last_topic: Mutex::new(None),
        })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.shutdown(py);
        false
    }

    fn __repr__(&self) -> String {
        self.inner.node_id().to_string()
    }

    /// This endpoint's id.
    fn node_id(&self) -> String {
        self.inner.node_id().to_string()
    }

    /// Listens on `address:port` (0 picks a free port); returns the port, 0 on failure (as
    /// Broker does).
    #[pyo3(signature = (address = "127.0.0.1".to_owned(), port = 0))]
    fn listen(&self, py: Python<'_>, address: String, port: u16) -> u16 {
        py.detach(|| self.inner.listen(&address, port)).unwrap_or(0)
    }

    /// Peers with `address:port`, waiting for the handshake; returns whether it succeeded.
    /// With `retry` seconds (> 0), a failed or lost peering is dialed again at that interval.
    #[pyo3(signature = (address, port, retry = 10.0))]
    fn peer(&self, py: Python<'_>, address: String, port: u16, retry: f64) -> bool {
        py.detach(|| self.inner.peer(&address, port, retry_of(retry)))
            .is_ok()
    }

    /// Like `peer`, without waiting.
    #[pyo3(signature = (address, port, retry = 10.0))]
    fn peer_nosync(&self, py: Python<'_>, address: String, port: u16, retry: f64) -> PyResult<()> {
        py.detach(|| self.inner.peer_nosync(&address, port, retry_of(retry)))
            .map_err(py_err)
    }

    /// Ends the peering with `address:port`; returns whether there was one.
    fn unpeer(&self, py: Python<'_>, address: String, port: u16) -> bool {
        py.detach(|| self.inner.unpeer(&address, port))
            .unwrap_or(false)
    }

    /// Like `unpeer`, without waiting.
    fn unpeer_nosync(&self, address: String, port: u16) {
        let ep = self.inner.clone();
        std::thread::spawn(move || {
            let _ = ep.unpeer(&address, port);
        });
    }

    /// The peers and the peerings under way.
    fn peers(&self, py: Python<'_>) -> Vec<PeerInfo> {
        py.detach(|| self.inner.peers())
            .into_iter()
            .map(|p| PeerInfo {
                peer: EndpointInfo::new(p.id, p.address),
                flags: if p.address.is_some() {
                    PeerFlags::Remote as u32
                } else {
                    PeerFlags::Local as u32
                } | if p.outbound {
                    PeerFlags::Outbound as u32
                } else {
                    PeerFlags::Inbound as u32
                },
                status: match p.state {
                    PeerState::Initializing => PeerStatus::Initialized,
                    PeerState::Connecting => PeerStatus::Connecting,
                    PeerState::Connected => PeerStatus::Connected,
                    PeerState::Peered => PeerStatus::Peered,
                    PeerState::Disconnected => PeerStatus::Disconnected,
                    PeerState::Reconnecting => PeerStatus::Reconnecting,
                },
            })
            .collect()
    }

    /// The topics other reachable endpoints subscribe to.
    fn peer_subscriptions(&self, py: Python<'_>) -> PyResult<Vec<Topic>> {
        Ok(py
            .detach(|| self.inner.peer_subscriptions())
            .map_err(py_err)?
            .into_iter()
            .map(Topic)
            .collect())
    }

    /// Waits until `node` (an id from `node_id()`) is a peer; returns whether it became one
    /// within `timeout` seconds (default 10).
    #[pyo3(signature = (node, timeout = None))]
    fn await_peer(&self, py: Python<'_>, node: &str, timeout: Option<f64>) -> PyResult<bool> {
        let id = node_of(node)?;
        let deadline = deadline_of(Some(timeout.unwrap_or(10.0)))?;
        let ep = &self.inner;
        Ok(wait_for(
            py,
            deadline,
            |slice| ep.await_peer(id, slice).ok(),
            || false,
        )?
        .is_some())
    }

    /// Routes these topics through this endpoint without delivering them here.
    fn forward(&self, topics: &Bound<'_, PyAny>) -> PyResult<()> {
        let ts = topics_of(topics)?;
        let names: Vec<&str> = ts.iter().map(|t| t.as_str()).collect();
        self.inner.forward(&names).map_err(py_err)
    }

    /// Publishes `data` (any convertible value) on `topic`.
    fn publish(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let t = self.topic(topic)?;
        let d = from_py(data)?;
        self.send(py, vec![(t, Arc::new(d))])
    }

    /// Publishes several `(topic, data)` pairs: `publish_batch(("/a", 1), ("/b", 2))`.
    #[pyo3(signature = (*batch))]
    fn publish_batch(&self, py: Python<'_>, batch: &Bound<'_, PyTuple>) -> PyResult<()> {
        let mut out = Vec::with_capacity(batch.len());
        for item in batch.iter() {
            let (t, d): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item
                .extract()
                .map_err(|_| PyTypeError::new_err("publish_batch takes (topic, data) pairs"))?;
            out.push((self.topic(&t)?, Arc::new(from_py(&d)?)));
        }
        if out.is_empty() {
            return Ok(());
        }
        self.send(py, out)
    }

    /// A publisher for one topic.
    fn make_publisher(&self, topic: &Bound<'_, PyAny>) -> PyResult<Publisher> {
        let t = topic_of(topic)?;
        Publisher::new(
            self.inner.make_publisher(t.as_str()).map_err(py_err)?,
            self.inner.clone(),
        )
    }

    /// A subscriber to topic prefixes. `qsize` is accepted for Broker's signature; the queue
    /// holds at least the configuration's `subscriber_queue_size` (262,144 by default) and
    /// drops the oldest message beyond (see `Subscriber.dropped()`).
    #[pyo3(signature = (topics, qsize = 20))]
    fn make_subscriber(&self, topics: &Bound<'_, PyAny>, qsize: usize) -> PyResult<Subscriber> {
        self.subscriber(topics, qsize, false)
    }

    /// Like `make_subscriber`, with values converted to immutable, hashable forms (frozenset,
    /// read-only dicts) so that any nesting can be represented.
    #[pyo3(signature = (topics, qsize = 20))]
    fn make_safe_subscriber(
        &self,
        topics: &Bound<'_, PyAny>,
        qsize: usize,
    ) -> PyResult<Subscriber> {
        self.subscriber(topics, qsize, true)
    }

    /// A subscriber to errors, and to statuses too with `receive_statuses`.
    #[pyo3(signature = (receive_statuses = false))]
    fn make_status_subscriber(&self, receive_statuses: bool) -> PyResult<StatusSubscriber> {
        Ok(StatusSubscriber {
            inner: Mutex::new(Some(Arc::new(
                self.inner
                    .make_status_subscriber(receive_statuses)
                    .map_err(py_err)?,
            ))),
        })
    }

    /// Attaches a master store; `type` is a `broker.Backend` (memory by default), `opts` the
    /// backend's options (`{"path": "x.sqlite"}`). Returns `None` on failure (as Broker does),
    /// with a `RuntimeWarning` giving the reason.
    #[pyo3(signature = (name, r#type = None, opts = None))]
    fn attach_master(
        &self,
        py: Python<'_>,
        name: &str,
        r#type: Option<Backend>,
        opts: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Option<Store>> {
        let mut options = broker::BackendOptions::new();
        if let Some(opts) = opts {
            for (k, v) in opts.iter() {
                options.insert(k.extract::<String>()?, from_py(&v)?);
            }
        }
        let backend = r#type.unwrap_or(Backend::Memory).into();
        let r = py.detach(|| self.inner.attach_master(name, backend, options));
        Store::from_result(py, r)
    }

    /// Attaches a clone of the master `name` (intervals in seconds; `None` for never).
    #[pyo3(signature = (name, resync_interval = 10.0, stale_interval = Some(300.0), mutation_buffer_interval = Some(120.0)))]
    fn attach_clone(
        &self,
        py: Python<'_>,
        name: &str,
        resync_interval: f64,
        stale_interval: Option<f64>,
        mutation_buffer_interval: Option<f64>,
    ) -> PyResult<Option<Store>> {
        let secs = |s: f64| -> PyResult<Duration> {
            Duration::try_from_secs_f64(s).map_err(|e| PyValueError::new_err(e.to_string()))
        };
        let options = broker::CloneOptions {
            resync_interval: secs(resync_interval)?,
            stale_interval: stale_interval.map(secs).transpose()?,
            mutation_buffer_interval: mutation_buffer_interval.map(secs).transpose()?,
        };
        let r = py.detach(|| self.inner.attach_clone(name, options));
        Store::from_result(py, r)
    }

    /// Closes every peering and stops the endpoint.
    fn shutdown(&self, py: Python<'_>) {
        py.detach(|| self.inner.shutdown());
    }
}

impl Endpoint {
    fn subscriber(
        &self,
        topics: &Bound<'_, PyAny>,
        qsize: usize,
        immutable: bool,
    ) -> PyResult<Subscriber> {
        let ts = topics_of(topics)?;
        let names: Vec<&str> = ts.iter().map(|t| t.as_str()).collect();
        let sub = self
            .inner
            .make_subscriber(&names, Some(qsize.max(self.queue_size)))
            .map_err(py_err)?;
        Ok(Subscriber {
            inner: Mutex::new(Some(Arc::new(sub))),
            immutable,
        })
    }
}

/// Converts a received value without ever losing it: a value that plain Python types cannot
/// hold (a set of dicts, say) comes in immutable forms, and one that Python cannot represent
/// at all (should there be one) as a `broker.Data`.
fn convert_lossless<'py>(
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

// -- subscribers --------------------------------------------------------------------------------

/// Receives `(topic, data)` messages (`broker.Subscriber`); a context manager.
#[pyclass(module = "broker", frozen)]
pub(crate) struct Subscriber {
    inner: Mutex<Option<Arc<broker::Subscriber>>>,
    immutable: bool,
}

fn reset_error() -> PyErr {
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
    inner: Mutex<Option<Arc<broker::StatusSubscriber>>>,
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

// -- publisher ----------------------------------------------------------------------------------

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
    fn new(p: broker::Publisher, endpoint: broker::Endpoint) -> PyResult<Self> {
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
        send_on(&self.endpoint, py, vec![(p.topic().clone(), Arc::new(d))])
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
            out.push((p.topic().clone(), Arc::new(from_py(d)?)));
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
