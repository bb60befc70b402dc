//! Broker's codes (`SC`, `EC`, `PeerStatus`, `PeerFlags`, `APIFlags`) and what status
//! subscribers and `peers()` hand out: `Status`, `Error`, `EndpointInfo`, `NetworkInfo`,
//! `PeerInfo`.

use broker::{EndpointId, ErrorCode, StatusCode, StatusEvent};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

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
    pub(crate) fn new(node: Option<EndpointId>, addr: Option<std::net::SocketAddr>) -> Self {
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

pub(crate) fn status_to_py(py: Python<'_>, ev: StatusEvent) -> PyResult<Py<PyAny>> {
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
    pub(crate) peer: EndpointInfo,
    /// `PeerFlags` bits: Local or Remote, Outbound or Inbound.
    #[pyo3(get)]
    pub(crate) flags: u32,
    /// The state of the peering.
    #[pyo3(get)]
    pub(crate) status: PeerStatus,
}

#[pymethods]
impl PeerInfo {
    fn __repr__(&self) -> String {
        format!("PeerInfo({}, {:?})", self.peer.__repr__(), self.status)
    }
}
