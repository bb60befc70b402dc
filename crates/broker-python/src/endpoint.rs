//! `broker.Endpoint`: peering, publishing, subscribing, stores.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker::{EndpointId, PeerState};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::config::Configuration;
use crate::convert::from_py;
use crate::publisher::{send_on, Publisher};
use crate::status::{EndpointInfo, PeerFlags, PeerInfo, PeerStatus};
use crate::store::{Backend, Store};
use crate::subscriber::{StatusSubscriber, Subscriber};
use crate::topic::{check_topic, topic_of, topics_of, Topic};
use crate::wait::{deadline_of, lock, py_err, wait_for};

/// An endpoint (`broker.Endpoint`), also a context manager that shuts it down.
#[pyclass(module = "broker", subclass, frozen)]
pub(crate) struct Endpoint {
    pub(crate) inner: broker::Endpoint,
    queue_size: usize,
    /// The last topic published by name, checked once.
    last_topic: Mutex<Option<broker::Topic>>,
}

pub(crate) fn node_of(s: &str) -> PyResult<EndpointId> {
    s.parse()
        .map_err(|_| PyValueError::new_err(format!("invalid endpoint id {s:?}")))
}

pub(crate) fn retry_of(retry: f64) -> Option<Duration> {
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

    /// Opens Zeek's WebSocket API (JSON) on `address:port` (0 picks a free port); returns the
    /// port, 0 on failure. Clients connect to `ws://address:port/v1/messages/json`.
    #[pyo3(signature = (address = "127.0.0.1".to_owned(), port = 0))]
    fn listen_websocket(&self, py: Python<'_>, address: String, port: u16) -> u16 {
        py.detach(|| self.inner.listen_websocket(&address, port))
            .unwrap_or(0)
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
        self.send(py, vec![(t, broker::data::SharedData::from(d))])
    }

    /// Publishes several `(topic, data)` pairs: `publish_batch(("/a", 1), ("/b", 2))`.
    #[pyo3(signature = (*batch))]
    fn publish_batch(&self, py: Python<'_>, batch: &Bound<'_, PyTuple>) -> PyResult<()> {
        let mut out = Vec::with_capacity(batch.len());
        for item in batch.iter() {
            let (t, d): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item
                .extract()
                .map_err(|_| PyTypeError::new_err("publish_batch takes (topic, data) pairs"))?;
            out.push((self.topic(&t)?, from_py(&d)?.into()));
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

    /// A subscriber to topic prefixes. `qsize` is accepted for Broker's signature (Broker 2.x
    /// ignores it too); the queue holds at least the configuration's `subscriber_queue_size`
    /// (4,096 by default). It is lossless as in Broker: while it is full, the endpoint takes
    /// nothing more from peers and publishers; a subscriber that takes nothing for a second
    /// while messages wait loses its oldest ones instead (see `Subscriber.dropped()`).
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
