//! Data stores on an endpoint: [`Endpoint::attach_master`](crate::Endpoint::attach_master), [`Endpoint::attach_clone`](crate::Endpoint::attach_clone), the
//! [`Store`] handle and its [`StoreProxy`].
//!
//! Each store is one task on the endpoint's runtime that owns the sans-IO engine of
//! `broker-store` (a master with its backend, or a clone). The task receives the store commands
//! that the core routes to it (the store subscribes to Broker's topics
//! `<name>/<$>/data/master` or `<name>/<$>/data/clone`), hands what the engine publishes back to
//! the core, and answers the handles' requests. Mutations are fire-and-forget as in Broker; a
//! failed one (`type_clash`, `backend_failure`, …) is reported to the endpoint's error
//! subscribers. Reads block the calling thread (or await, in the `_async` forms).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use broker_backend::Backend;
use broker_data::{Data, DataType, Timespan, Timestamp};
use broker_store::{Clone as CloneFrontend, CloneConfig, Master, Output, Query, StoreConfig};
use broker_wire::{Command, EndpointId, EntityId, ErrorCode, InternalCommand, Topic};
use tokio::sync::{mpsc, oneshot};

use crate::cmd::{Cmd, StoreInbound, StoreOutput};
use crate::queue::{deadline, Queue};
use crate::Error;

/// Requests a handle may have in flight before mutations wait.
const REQUEST_QUEUE: usize = 4096;

/// Commands from the network a store may have waiting: beyond that the core stops handling
/// what peers send until the store catches up (their readers stop, TCP pushes back).
const STORE_INBOX: usize = 4096;

/// The storage engine of a master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendType {
    /// A hash table in memory: fastest, not persistent.
    Memory,
    /// A SQLite file in Broker's layout (option `path`, required; `synchronous`,
    /// `journal_mode`, `failure_mode`, `integrity_check` as in Broker).
    Sqlite,
    /// A RocksDB directory (option `path`, required); needs the `rocksdb` feature.
    RocksDb,
}

/// Backend options, as Broker's `backend_options`: names to values (`path` → a string, …).
pub type BackendOptions = BTreeMap<String, Data>;

/// The settings of [`Endpoint::attach_clone`](crate::Endpoint::attach_clone) (Broker's arguments, Zeek's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneOptions {
    /// How often a clone without a master asks for one (it also asks whenever a peer appears).
    pub resync_interval: Duration,
    /// How long after losing its master the clone keeps answering reads; then `stale_data`.
    /// `None`: never stale.
    pub stale_interval: Option<Duration>,
    /// How long mutations made without a master are kept for it; `None`: until it returns.
    pub mutation_buffer_interval: Option<Duration>,
}

impl Default for CloneOptions {
    fn default() -> Self {
        CloneOptions {
            resync_interval: Duration::from_secs(10),
            stale_interval: Some(Duration::from_secs(300)),
            mutation_buffer_interval: Some(Duration::from_secs(120)),
        }
    }
}

/// The answer to a [`StoreProxy`] request.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreResponse {
    /// The id the request returned.
    pub id: u64,
    /// The value, or the error (`no_such_key`, `stale_data`, …).
    pub answer: Result<Data, Error>,
}

enum Reply {
    Once(oneshot::Sender<Result<Data, Error>>),
    Mailbox(Arc<Queue<StoreResponse>>),
}

enum Req {
    Mutate(Command),
    Query {
        id: u64,
        query: Query,
        reply: Reply,
    },
    PutUnique {
        id: u64,
        command: Command,
        reply: Reply,
    },
    AwaitIdle(oneshot::Sender<()>),
}

enum Frontend {
    Master(Box<Master<Box<dyn Backend>>>),
    Clone(Box<CloneFrontend>),
}

macro_rules! both {
    ($fe:expr, $f:ident $(, $a:expr)*) => {
        match $fe {
            Frontend::Master(m) => m.$f($($a),*),
            Frontend::Clone(c) => c.$f($($a),*),
        }
    };
}

fn error(e: broker_store::StoreError) -> Error {
    Error::new(e.code, e.message)
}

fn span(d: Duration) -> Timespan {
    Timespan::try_from(d).unwrap_or(Timespan::from_nanos(i64::MAX))
}

fn expiry(e: Option<Duration>) -> Option<Timespan> {
    e.map(span)
}

fn shut_down() -> Error {
    Error::new(
        ErrorCode::ShuttingDown,
        "the store's endpoint has shut down",
    )
}

fn open_backend(kind: BackendType, options: &BackendOptions) -> Result<Box<dyn Backend>, Error> {
    let fail =
        |e: broker_backend::BackendError| Error::new(ErrorCode::BackendFailure, e.to_string());
    match kind {
        BackendType::Memory => Ok(Box::new(broker_backend_memory::MemoryBackend::new())),
        BackendType::Sqlite => Ok(Box::new(
            broker_backend_sqlite::SqliteBackend::open_with(options).map_err(fail)?,
        )),
        #[cfg(feature = "rocksdb")]
        BackendType::RocksDb => Ok(Box::new(
            broker_backend_rocksdb::RocksDbBackend::open_with(options).map_err(fail)?,
        )),
        #[cfg(not(feature = "rocksdb"))]
        BackendType::RocksDb => Err(Error::new(
            ErrorCode::BackendFailure,
            "this build has no RocksDB backend (cargo feature `rocksdb`)",
        )),
    }
}

/// What a store needs from its endpoint (implemented by [`Endpoint`](crate::Endpoint)), so that
/// this module sits below the endpoint and does not name it.
pub(crate) trait Host {
    /// A fresh entity id for a store frontend.
    fn store_entity(&self) -> EntityId;
    /// The stores attached to the endpoint, by name.
    fn local_stores(&self) -> &LocalStores;
    /// The store-events flag and the core's channel for store output.
    fn store_support(&self) -> (Arc<AtomicBool>, mpsc::Sender<StoreOutput>);
    /// The core's command channel.
    fn core_sender(&self) -> mpsc::UnboundedSender<Cmd>;
    /// Asks the core to route a store's topic to it (`Cmd::AttachStore`) and waits.
    fn attach_to_core(
        &self,
        id: u64,
        name: &str,
        master: bool,
        sink: mpsc::Sender<StoreInbound>,
    ) -> Result<(), Error>;
}

/// [`Endpoint::attach_master`](crate::Endpoint::attach_master).
pub(crate) fn attach_master(
    host: &impl Host,
    name: &str,
    backend: BackendType,
    options: BackendOptions,
) -> Result<Store, Error> {
    check_name(name)?;
    // Held until the store is registered: two threads attaching one name get one store.
    let mut local = host.local_stores().lock();
    if let Some(existing) = local.get(name).and_then(Weak::upgrade) {
        if existing.master {
            // As in Broker: the master already attached here, whatever the backend asked.
            return Ok(Store { inner: existing });
        }
    }
    let backend = open_backend(backend, &options)?;
    let id = host.store_entity();
    let master =
        Master::new(name, id, backend, StoreConfig::default(), Timestamp::now()).map_err(error)?;
    let store = start_store(host, name, id, Frontend::Master(Box::new(master)))?;
    local.insert(name.to_owned(), Arc::downgrade(&store.inner));
    Ok(store)
}

/// [`Endpoint::attach_clone`](crate::Endpoint::attach_clone).
pub(crate) fn attach_clone(
    host: &impl Host,
    name: &str,
    options: CloneOptions,
) -> Result<Store, Error> {
    check_name(name)?;
    let mut local = host.local_stores().lock();
    if let Some(existing) = local.get(name).and_then(Weak::upgrade) {
        // As in Broker: one clone per name and endpoint, and none beside a master.
        if existing.master {
            return Err(Error::new(
                ErrorCode::NoSuchMaster,
                format!("store {name:?} has its master on this endpoint: use that"),
            ));
        }
        return Ok(Store { inner: existing });
    }
    let id = host.store_entity();
    let config = CloneConfig {
        store: StoreConfig::default(),
        resync_interval: span(options.resync_interval),
        stale_interval: options.stale_interval.map(span),
        mutation_buffer_interval: options.mutation_buffer_interval.map(span),
        ..CloneConfig::default()
    };
    let clone = CloneFrontend::new(name, id, config, Timestamp::now());
    let store = start_store(host, name, id, Frontend::Clone(Box::new(clone)))?;
    local.insert(name.to_owned(), Arc::downgrade(&store.inner));
    Ok(store)
}

fn start_store(host: &impl Host, name: &str, id: EntityId, fe: Frontend) -> Result<Store, Error> {
    let (sink, inbound) = mpsc::channel(STORE_INBOX);
    let (tx, reqs) = mpsc::channel(REQUEST_QUEUE);
    let master = matches!(fe, Frontend::Master(_));
    let (events_wanted, out) = host.store_support();
    host.attach_to_core(id.object, name, master, sink)?;
    let task = StoreTask {
        fe,
        name: name.to_owned(),
        id,
        out,
        core: host.core_sender(),
        events_wanted,
        waiters: HashMap::new(),
        idle_waiters: Vec::new(),
        failures: Vec::new(),
    };
    // Its own thread: backend calls (SQLite, RocksDB, a clone's snapshot) never hold up the
    // endpoint's network thread, and a slow disk slows only this store. The endpoint's
    // shutdown waits for it (see `LocalStores::wait_closed`).
    let thread = std::thread::Builder::new()
        .name(format!("broker-store-{name}"))
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(rt) => rt.block_on(task.run(reqs, inbound)),
                Err(e) => tracing::error!(error = %e, "cannot start a store's runtime"),
            }
        });
    match thread {
        Ok(t) => host.local_stores().threads().push(t),
        Err(e) => {
            return Err(Error::new(
                ErrorCode::Unspecified,
                format!("cannot start a thread for store {name:?}: {e}"),
            ))
        }
    }
    Ok(Store {
        inner: Arc::new(Handle {
            name: name.to_owned(),
            id,
            master,
            tx,
            next_request: AtomicU64::new(1),
        }),
    })
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.contains("<$>") {
        return Err(Error::new(
            ErrorCode::InvalidTopicKey,
            format!("{name:?} is not a store name"),
        ));
    }
    Topic::new(name.to_owned())
        .map(|_| ())
        .map_err(|e| Error::new(ErrorCode::InvalidTopicKey, e.to_string()))
}

/// The stores attached to an endpoint, by name, while any handle to them lives: attaching a
/// name again gives the same store, as Broker does.
#[derive(Default)]
pub(crate) struct LocalStores(
    Mutex<HashMap<String, Weak<Handle>>>,
    Mutex<Vec<std::thread::JoinHandle<()>>>,
);

impl LocalStores {
    fn threads(&self) -> std::sync::MutexGuard<'_, Vec<std::thread::JoinHandle<()>>> {
        self.1.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many store threads still run (those that ended are joined): after the core's
    /// shutdown closed their inboxes, each writes what it holds, closes its backend (a
    /// RocksDB or SQLite file) and ends. The endpoint's shutdown waits for that, so that a
    /// process that exits after `shutdown` never leaves a backend open under its exit (RocksDB
    /// crashed there, and SQLite left its write-ahead log behind).
    pub(crate) fn running(&self) -> usize {
        let mut threads = self.threads();
        let (done, running): (Vec<_>, Vec<_>) = threads.drain(..).partition(|t| t.is_finished());
        *threads = running;
        drop(threads);
        for t in done {
            let _ = t.join();
        }
        self.threads().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Handle>>> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, h| h.strong_count() > 0);
        map
    }
}

/// The stores attached here: name, whether master, and the number of keys (none when the
/// store does not answer within a second).
pub(crate) async fn sizes(stores: &LocalStores) -> Vec<crate::web::StoreInfo> {
    let handles: Vec<Store> = stores
        .lock()
        .values()
        .filter_map(Weak::upgrade)
        .map(|inner| Store { inner })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for s in handles {
        let keys = tokio::time::timeout(std::time::Duration::from_secs(1), s.keys_async()).await;
        let size = match keys {
            Ok(Ok(Data::Set(k))) => Some(k.len() as u64),
            Ok(Ok(Data::Vector(k))) => Some(k.len() as u64),
            _ => None,
        };
        out.push((s.name().to_owned(), s.is_master(), size));
    }
    out.sort();
    out
}

struct Handle {
    name: String,
    id: EntityId,
    master: bool,
    tx: mpsc::Sender<Req>,
    next_request: AtomicU64,
}

/// A data store attached to an endpoint: a master or a clone. Cloning the handle shares the
/// store; the store detaches when the last handle is dropped (or the endpoint shuts down).
///
/// Mutations return at once (as in Broker) and are applied in the order they were made; on a
/// clone they take effect when the master's update comes back. Reads return the result,
/// blocking the calling thread briefly — use the `_async` forms in async code, or a
/// [`StoreProxy`] for an event loop.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.inner.name)
            .field("master", &self.inner.master)
            .finish()
    }
}

impl Store {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether this is the master (rather than a clone).
    pub fn is_master(&self) -> bool {
        self.inner.master
    }

    /// This frontend's entity id (endpoint and object number).
    pub fn frontend_id(&self) -> EntityId {
        self.inner.id
    }

    fn mutate(&self, command: Command) {
        // Closed only when the endpoint shut down: the mutation goes nowhere, as in Broker.
        let _ = self.inner.tx.blocking_send(Req::Mutate(command));
    }

    /// Sets `key` to `value`; with an expiry, the entry is removed that long after the master
    /// applied it.
    pub fn put(&self, key: impl Into<Data>, value: impl Into<Data>, expiry: Option<Duration>) {
        self.mutate(Command::Put {
            key: key.into(),
            value: value.into(),
            expiry: expiry_of(expiry),
            publisher: self.inner.id,
        });
    }

    /// Removes `key`.
    pub fn erase(&self, key: impl Into<Data>) {
        self.mutate(Command::Erase {
            key: key.into(),
            publisher: self.inner.id,
        });
    }

    /// Removes every entry.
    pub fn clear(&self) {
        self.mutate(Command::Clear {
            publisher: self.inner.id,
        });
    }

    /// Adds `amount` to the number (count, integer, real, timespan) or timestamp at `key`,
    /// starting from zero when absent.
    pub fn increment(
        &self,
        key: impl Into<Data>,
        amount: impl Into<Data>,
        expiry: Option<Duration>,
    ) {
        let amount = amount.into();
        let init_type = match amount.data_type() {
            t @ (DataType::Count | DataType::Integer | DataType::Real) => t,
            DataType::Timespan => DataType::Timestamp,
            _ => DataType::None,
        };
        self.add(key.into(), amount, init_type, expiry);
    }

    /// Subtracts `amount` from the number or timestamp at `key`.
    pub fn decrement(
        &self,
        key: impl Into<Data>,
        amount: impl Into<Data>,
        expiry: Option<Duration>,
    ) {
        self.subtract(key.into(), amount.into(), expiry);
    }

    /// Appends `text` to the string at `key` (starting from the empty string).
    pub fn append(&self, key: impl Into<Data>, text: impl Into<Data>, expiry: Option<Duration>) {
        self.add(key.into(), text.into(), DataType::String, expiry);
    }

    /// Inserts `element` into the set at `key` (starting from the empty set).
    pub fn insert_into(
        &self,
        key: impl Into<Data>,
        element: impl Into<Data>,
        expiry: Option<Duration>,
    ) {
        self.add(key.into(), element.into(), DataType::Set, expiry);
    }

    /// Sets `index` to `value` in the table at `key` (starting from the empty table), or inserts
    /// `value` at position `index` in the vector at `key`.
    pub fn insert_into_at(
        &self,
        key: impl Into<Data>,
        index: impl Into<Data>,
        value: impl Into<Data>,
        expiry: Option<Duration>,
    ) {
        let pair = Data::Vector(vec![index.into(), value.into()]);
        self.add(key.into(), pair, DataType::Table, expiry);
    }

    /// Removes `index` from the set or table at `key` (on a vector: its last element, as in
    /// Broker).
    pub fn remove_from(
        &self,
        key: impl Into<Data>,
        index: impl Into<Data>,
        expiry: Option<Duration>,
    ) {
        self.subtract(key.into(), index.into(), expiry);
    }

    /// Appends `value` to the vector at `key` (starting from the empty vector).
    pub fn push(&self, key: impl Into<Data>, value: impl Into<Data>, expiry: Option<Duration>) {
        self.add(key.into(), value.into(), DataType::Vector, expiry);
    }

    /// Removes the last element of the vector at `key`.
    pub fn pop(&self, key: impl Into<Data>, expiry: Option<Duration>) {
        let key = key.into();
        self.subtract(key.clone(), key, expiry);
    }

    fn add(&self, key: Data, value: Data, init_type: DataType, expiry: Option<Duration>) {
        self.mutate(Command::Add {
            key,
            value,
            init_type,
            expiry: expiry_of(expiry),
            publisher: self.inner.id,
        });
    }

    fn subtract(&self, key: Data, value: Data, expiry: Option<Duration>) {
        self.mutate(Command::Subtract {
            key,
            value,
            expiry: expiry_of(expiry),
            publisher: self.inner.id,
        });
    }

    fn request_id(&self) -> u64 {
        self.inner.next_request.fetch_add(1, Ordering::Relaxed)
    }

    fn query_req(&self, query: Query, reply: Reply) -> (u64, Req) {
        let id = self.request_id();
        (id, Req::Query { id, query, reply })
    }

    fn put_unique_req(
        &self,
        key: Data,
        value: Data,
        expiry: Option<Duration>,
        reply: Reply,
    ) -> (u64, Req) {
        let id = self.request_id();
        let command = Command::PutUnique {
            key,
            value,
            expiry: expiry_of(expiry),
            who: self.inner.id,
            req_id: id,
            publisher: self.inner.id,
        };
        (id, Req::PutUnique { id, command, reply })
    }

    fn ask(&self, make: impl FnOnce(Reply) -> (u64, Req)) -> Result<Data, Error> {
        let (tx, rx) = oneshot::channel();
        let (_, req) = make(Reply::Once(tx));
        self.inner.tx.blocking_send(req).map_err(|_| shut_down())?;
        rx.blocking_recv().map_err(|_| shut_down())?
    }

    async fn ask_async(&self, make: impl FnOnce(Reply) -> (u64, Req)) -> Result<Data, Error> {
        let (tx, rx) = oneshot::channel();
        let (_, req) = make(Reply::Once(tx));
        self.inner.tx.send(req).await.map_err(|_| shut_down())?;
        rx.await.map_err(|_| shut_down())?
    }

    /// The value at `key`; `no_such_key` when absent.
    pub fn get(&self, key: impl Into<Data>) -> Result<Data, Error> {
        let q = Query::Get(key.into());
        self.ask(|r| self.query_req(q, r))
    }

    /// Whether `key` exists.
    pub fn exists(&self, key: impl Into<Data>) -> Result<bool, Error> {
        let q = Query::Exists(key.into());
        Ok(matches!(
            self.ask(|r| self.query_req(q, r))?,
            Data::Boolean(true)
        ))
    }

    /// An element of the container at `key`: a vector's element at a count index, a table's
    /// value at a key, whether a set holds `index`.
    pub fn get_index_from_value(
        &self,
        key: impl Into<Data>,
        index: impl Into<Data>,
    ) -> Result<Data, Error> {
        let q = Query::GetIndex(key.into(), index.into());
        self.ask(|r| self.query_req(q, r))
    }

    /// Every key, as a set.
    pub fn keys(&self) -> Result<Data, Error> {
        self.ask(|r| self.query_req(Query::Keys, r))
    }

    /// Sets `key` to `value` only when it is absent; returns whether it did.
    pub fn put_unique(
        &self,
        key: impl Into<Data>,
        value: impl Into<Data>,
        expiry: Option<Duration>,
    ) -> Result<bool, Error> {
        let (k, v) = (key.into(), value.into());
        let d = self.ask(|r| self.put_unique_req(k, v, expiry, r))?;
        Ok(matches!(d, Data::Boolean(true)))
    }

    /// [`get`](Self::get) for async code.
    pub async fn get_async(&self, key: impl Into<Data>) -> Result<Data, Error> {
        let q = Query::Get(key.into());
        self.ask_async(|r| self.query_req(q, r)).await
    }

    /// [`exists`](Self::exists) for async code.
    pub async fn exists_async(&self, key: impl Into<Data>) -> Result<bool, Error> {
        let q = Query::Exists(key.into());
        Ok(matches!(
            self.ask_async(|r| self.query_req(q, r)).await?,
            Data::Boolean(true)
        ))
    }

    /// [`get_index_from_value`](Self::get_index_from_value) for async code.
    pub async fn get_index_from_value_async(
        &self,
        key: impl Into<Data>,
        index: impl Into<Data>,
    ) -> Result<Data, Error> {
        let q = Query::GetIndex(key.into(), index.into());
        self.ask_async(|r| self.query_req(q, r)).await
    }

    /// [`keys`](Self::keys) for async code.
    pub async fn keys_async(&self) -> Result<Data, Error> {
        self.ask_async(|r| self.query_req(Query::Keys, r)).await
    }

    /// [`put_unique`](Self::put_unique) for async code.
    pub async fn put_unique_async(
        &self,
        key: impl Into<Data>,
        value: impl Into<Data>,
        expiry: Option<Duration>,
    ) -> Result<bool, Error> {
        let (k, v) = (key.into(), value.into());
        let d = self
            .ask_async(|r| self.put_unique_req(k, v, expiry, r))
            .await?;
        Ok(matches!(d, Data::Boolean(true)))
    }

    /// [`put`](Self::put) for async code: waits for room instead of blocking a thread.
    pub async fn put_async(
        &self,
        key: impl Into<Data>,
        value: impl Into<Data>,
        expiry: Option<Duration>,
    ) -> Result<(), Error> {
        let c = Command::Put {
            key: key.into(),
            value: value.into(),
            expiry: expiry_of(expiry),
            publisher: self.inner.id,
        };
        self.inner
            .tx
            .send(Req::Mutate(c))
            .await
            .map_err(|_| shut_down())
    }

    /// Waits until the store is idle — every mutation made so far applied (and, on a persistent
    /// backend, written), every clone up to date — or until `timeout`. Returns whether it is.
    pub fn await_idle(&self, timeout: Duration) -> bool {
        let (tx, mut rx) = oneshot::channel();
        if self.inner.tx.blocking_send(Req::AwaitIdle(tx)).is_err() {
            return false;
        }
        let end = std::time::Instant::now() + timeout;
        loop {
            match rx.try_recv() {
                Ok(()) => return true,
                Err(oneshot::error::TryRecvError::Closed) => return false,
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// [`await_idle`](Self::await_idle) for async code.
    pub async fn await_idle_async(&self, timeout: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.inner.tx.send(Req::AwaitIdle(tx)).await.is_err() {
            return false;
        }
        matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(())))
    }

    /// A proxy whose requests answer through a mailbox (see [`StoreProxy`]).
    pub fn proxy(&self) -> Result<StoreProxy, Error> {
        let mailbox = Queue::new(usize::MAX, Duration::ZERO)
            .map_err(|e| Error::new(ErrorCode::CannotOpenResource, e.to_string()))?;
        Ok(StoreProxy {
            store: self.clone(),
            mailbox: Arc::new(mailbox),
        })
    }
}

fn expiry_of(e: Option<Duration>) -> Option<Timespan> {
    expiry(e)
}

/// Decoupled requests: each returns a unique, increasing 64-bit id at once, and the
/// [`StoreResponse`] carrying that id arrives in the proxy's mailbox, whose [`fd`](Self::fd) is
/// readable while responses are waiting (for poll/select/epoll loops).
///
/// ```
/// use broker::{BackendType, Configuration, Endpoint};
/// let ep = Endpoint::new(Configuration::default()).unwrap();
/// let store = ep.attach_master("s", BackendType::Memory, Default::default()).unwrap();
/// store.put("foo", 42u64, None);
/// let proxy = store.proxy().unwrap();
/// let id = proxy.get("foo");
/// let response = proxy.receive();
/// assert_eq!(response.id, id);
/// assert_eq!(response.answer.unwrap(), broker::data::Data::Count(42));
/// ```
pub struct StoreProxy {
    store: Store,
    mailbox: Arc<Queue<StoreResponse>>,
}

impl StoreProxy {
    fn send(&self, make: impl FnOnce(Reply) -> (u64, Req)) -> u64 {
        let (id, req) = make(Reply::Mailbox(self.mailbox.clone()));
        if self.store.inner.tx.blocking_send(req).is_err() {
            self.mailbox.push_all([StoreResponse {
                id,
                answer: Err(shut_down()),
            }]);
        }
        id
    }

    /// Requests the value at `key`.
    pub fn get(&self, key: impl Into<Data>) -> u64 {
        let q = Query::Get(key.into());
        self.send(|r| self.store.query_req(q, r))
    }

    /// Requests whether `key` exists.
    pub fn exists(&self, key: impl Into<Data>) -> u64 {
        let q = Query::Exists(key.into());
        self.send(|r| self.store.query_req(q, r))
    }

    /// Requests an element of the container at `key`.
    pub fn get_index_from_value(&self, key: impl Into<Data>, index: impl Into<Data>) -> u64 {
        let q = Query::GetIndex(key.into(), index.into());
        self.send(|r| self.store.query_req(q, r))
    }

    /// Requests every key.
    pub fn keys(&self) -> u64 {
        self.send(|r| self.store.query_req(Query::Keys, r))
    }

    /// Requests a `put_unique`; the answer is a boolean.
    pub fn put_unique(
        &self,
        key: impl Into<Data>,
        value: impl Into<Data>,
        expiry: Option<Duration>,
    ) -> u64 {
        let (k, v) = (key.into(), value.into());
        self.send(|r| self.store.put_unique_req(k, v, expiry, r))
    }

    /// The next response, waiting for it.
    pub fn receive(&self) -> StoreResponse {
        loop {
            if let Some(r) = self.mailbox.take(1, None).pop() {
                return r;
            }
        }
    }

    /// The next response, waiting at most `timeout`.
    pub fn receive_timeout(&self, timeout: Duration) -> Option<StoreResponse> {
        self.mailbox.take(1, deadline(Some(timeout))).pop()
    }

    /// Up to `n` responses, waiting for the first until `timeout` (forever when `None`).
    pub fn receive_n(&self, n: usize, timeout: Option<Duration>) -> Vec<StoreResponse> {
        self.mailbox.take(n, deadline(timeout))
    }

    /// Every response waiting now, without blocking.
    pub fn poll(&self) -> Vec<StoreResponse> {
        self.mailbox.take_all()
    }

    /// How many responses are waiting.
    pub fn available(&self) -> usize {
        self.mailbox.len()
    }

    /// A descriptor that is readable while responses are waiting.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.mailbox.fd()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

struct StoreTask {
    fe: Frontend,
    name: String,
    id: EntityId,
    out: mpsc::Sender<StoreOutput>,
    core: mpsc::UnboundedSender<Cmd>,
    events_wanted: Arc<AtomicBool>,
    waiters: HashMap<u64, Reply>,
    idle_waiters: Vec<oneshot::Sender<()>>,
    /// Failures found outside the engine (flushing), reported with the next batch.
    failures: Vec<Error>,
}

impl StoreTask {
    async fn run(
        mut self,
        mut reqs: mpsc::Receiver<Req>,
        mut inbound: mpsc::Receiver<StoreInbound>,
    ) {
        let mut rbuf = Vec::with_capacity(256);
        let mut ibuf = Vec::with_capacity(256);
        loop {
            let wake = both!(&self.fe, poll_timeout);
            let wait = (wake - Timestamp::now()).as_nanos().max(0) as u64;
            tokio::select! {
                // Local requests first: what this process did before a remote command arrived
                // is applied before it (a put, then a clone attaching, gets the put).
                biased;
                n = reqs.recv_many(&mut rbuf, 256) => {
                    if n == 0 {
                        break; // Every handle is gone: detach.
                    }
                }
                n = inbound.recv_many(&mut ibuf, 256) => {
                    if n == 0 {
                        break; // The core is gone (shutdown).
                    }
                }
                _ = tokio::time::sleep(Duration::from_nanos(wait)) => {}
            }
            // Take what else is ready, so that requests still go before remote commands.
            while rbuf.len() < 256 {
                match reqs.try_recv() {
                    Ok(r) => rbuf.push(r),
                    Err(_) => break,
                }
            }
            while ibuf.len() < 256 {
                match inbound.try_recv() {
                    Ok(i) => ibuf.push(i),
                    Err(_) => break,
                }
            }
            let wanted = self.events_wanted.load(Ordering::Relaxed);
            both!(&mut self.fe, set_emit_events, wanted);
            let now = Timestamp::now();
            for r in rbuf.drain(..) {
                self.request(now, r);
            }
            for i in ibuf.drain(..) {
                match i {
                    StoreInbound::Command(c) => {
                        both!(&mut self.fe, handle_command, now, (*c).clone())
                    }
                    StoreInbound::Poke => {
                        if let Frontend::Clone(c) = &mut self.fe {
                            c.poke(now);
                        }
                    }
                    StoreInbound::Unreachable(e) => {
                        if let Frontend::Clone(c) = &mut self.fe {
                            c.endpoint_unreachable(now, e);
                        }
                    }
                }
            }
            if both!(&self.fe, poll_timeout) <= now {
                both!(&mut self.fe, handle_timeout, now);
            }
            // Write what this batch changed once the queues are drained: batched commits under
            // load, prompt durability when quiet.
            if reqs.is_empty() && inbound.is_empty() {
                self.flush();
            }
            self.drain().await;
            if !self.idle_waiters.is_empty() && both!(&self.fe, is_idle) {
                self.flush();
                for w in self.idle_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        }
        self.flush();
        self.drain().await;
        let _ = self.core.send(Cmd::DetachStore {
            id: self.id.object,
            name: self.name.clone(),
        });
    }

    fn flush(&mut self) {
        if let Frontend::Master(m) = &mut self.fe {
            if let Err(e) = m.backend_mut().flush() {
                self.failures.push(Error::new(
                    ErrorCode::BackendFailure,
                    format!("{}: {e}", self.name),
                ));
            }
        }
    }

    fn request(&mut self, now: Timestamp, r: Req) {
        match r {
            Req::Mutate(c) => both!(&mut self.fe, mutate, now, c),
            Req::Query { id, query, reply } => {
                self.waiters.insert(id, reply);
                both!(&mut self.fe, query, now, id, query);
            }
            Req::PutUnique { id, command, reply } => {
                self.waiters.insert(id, reply);
                both!(&mut self.fe, mutate, now, command);
            }
            Req::AwaitIdle(tx) => self.idle_waiters.push(tx),
        }
    }

    async fn drain(&mut self) {
        let mut out = StoreOutput {
            failures: std::mem::take(&mut self.failures),
            ..StoreOutput::default()
        };
        let events_topic = broker_store::events_topic(&self.name);
        while let Some(o) = both!(&mut self.fe, poll_output) {
            match o {
                Output::Command { topic, to, command } => out.commands.push((topic, to, command)),
                Output::Event(d) => out.events.push((events_topic.clone(), d)),
                Output::Response { id, result } => {
                    let answer = result.map_err(error);
                    match self.waiters.remove(&id) {
                        Some(Reply::Once(tx)) => {
                            let _ = tx.send(answer);
                        }
                        Some(Reply::Mailbox(q)) => {
                            q.push_all([StoreResponse { id, answer }]);
                        }
                        None => {}
                    }
                }
                Output::Failure(e) => out.failures.push(error(e)),
            }
        }
        // Durability: an acknowledgement of a clone's writes leaves only after they are on
        // disk. This task is the one owner of flushing (here, and when its queues are empty).
        let acks = |c: &(Topic, Option<EndpointId>, Arc<InternalCommand>)| {
            matches!(c.2.content, Command::CumulativeAck { .. })
        };
        if matches!(self.fe, Frontend::Master(_)) && out.commands.iter().any(acks) {
            self.flush();
            if !self.failures.is_empty() {
                // Not durable: no acknowledgement (the writer sends them again).
                out.commands.retain(|c| !acks(c));
                out.failures.append(&mut self.failures);
            }
        }
        if !(out.commands.is_empty() && out.events.is_empty() && out.failures.is_empty()) {
            // Waits while the peers are full: the store stops taking requests meanwhile.
            let _ = self.out.send(out).await;
        }
    }
}
