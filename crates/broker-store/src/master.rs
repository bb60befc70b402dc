//! The master frontend: the authority over a store, applying every mutation to its backend and
//! replicating the results to the clones.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use broker_backend::{ops, Backend, BackendError};
use broker_data::{Data, Timespan, Timestamp};
use broker_wire::{encoded_data_len, Command, EntityId, ErrorCode, InternalCommand, Topic};

use crate::channel::{Consumer, ConsumerOut, Producer, ProducerOut};
use crate::{clone_topic, events, Output, Query, RequestId, StoreConfig, StoreError};

/// A writer (a clone sending its mutations): the offset its handshake named and the channel.
struct Input {
    offset: u64,
    channel: Consumer<Command>,
}

/// The master of one store.
///
/// Mutations from the local API go through [`Master::mutate`] and take effect at once; those of
/// clones arrive as commands through [`Master::handle_command`] and take effect in each clone's
/// order. Every change is broadcast to the clones as Broker does: additions and subtractions as
/// a `put` of the resulting value, `put_unique` as a `put` followed by its result, expiries as
/// `expire` commands sent when the entry's time comes.
pub struct Master<B> {
    name: String,
    id: EntityId,
    clones_topic: Topic,
    backend: B,
    config: StoreConfig,
    output: Producer<Arc<InternalCommand>>,
    inputs: BTreeMap<EntityId, Input>,
    /// Writers we asked to start over during this tick (one request per tick each).
    asked_to_rejoin: BTreeSet<EntityId>,
    expirations: BTreeSet<(Timestamp, Data)>,
    expiry_of: BTreeMap<Data, Timestamp>,
    next_tick: Timestamp,
    outputs: VecDeque<Output>,
    emit_events: bool,
    pout: Vec<ProducerOut<Arc<InternalCommand>>>,
    cout: Vec<ConsumerOut<Command>>,
}

impl<B: Backend> Master<B> {
    /// A master over `backend`, which may already hold entries (a persistent store reopened):
    /// their expiry times are scheduled again, and entries already due expire on the first
    /// [`Master::handle_timeout`].
    pub fn new(
        name: &str,
        id: EntityId,
        mut backend: B,
        config: StoreConfig,
        now: Timestamp,
    ) -> Result<Self, StoreError> {
        let mut expirations = BTreeSet::new();
        let mut expiry_of = BTreeMap::new();
        for (key, at) in backend.expiries()? {
            expirations.insert((at, key.clone()));
            expiry_of.insert(key, at);
        }
        Ok(Master {
            name: name.to_owned(),
            id,
            clones_topic: clone_topic(name),
            backend,
            output: Producer::new(config.timing),
            config,
            inputs: BTreeMap::new(),
            asked_to_rejoin: BTreeSet::new(),
            expirations,
            expiry_of,
            next_tick: now + config.tick_interval,
            outputs: VecDeque::new(),
            emit_events: true,
            pout: Vec::new(),
            cout: Vec::new(),
        })
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This master's entity id.
    pub fn id(&self) -> EntityId {
        self.id
    }

    /// Whether to produce store events (on by default; the facade turns them off while nobody
    /// subscribes, which spares a read per mutation).
    pub fn set_emit_events(&mut self, on: bool) {
        self.emit_events = on;
    }

    /// The backend.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Gives the backend back (after a flush), e.g. to reopen it under a new master.
    pub fn into_backend(mut self) -> B {
        let _ = self.backend.flush();
        self.backend
    }

    /// The clones currently attached.
    pub fn clones(&self) -> Vec<EntityId> {
        self.output.consumers().collect()
    }

    /// Every clone has every update, and every writer's mutations are applied.
    pub fn is_idle(&self) -> bool {
        self.output.idle() && self.inputs.values().all(|i| i.channel.idle())
    }

    /// A description of the replication state, for diagnostics.
    pub fn describe(&self) -> String {
        let inputs: Vec<String> = self
            .inputs
            .iter()
            .map(|(k, i)| format!("{k:?}: {:?}", i.channel))
            .collect();
        format!("output: {:?}\ninputs: {inputs:?}", self.output)
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Master::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Timestamp {
        match self.expirations.first() {
            Some((at, _)) if *at < self.next_tick => *at,
            _ => self.next_tick,
        }
    }

    /// Runs ticks and expiries that are due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if now >= self.next_tick {
            self.tick();
            self.next_tick = self.next_tick + self.config.tick_interval;
            if self.next_tick <= now {
                // Far behind (a suspended process): do not replay every missed tick.
                self.next_tick = now + self.config.tick_interval;
            }
        }
        while let Some((at, _)) = self.expirations.first() {
            if *at > now {
                break;
            }
            let Some((_, key)) = self.expirations.pop_first() else {
                break;
            };
            self.expiry_of.remove(&key);
            match self.backend.expire(&key, now) {
                Ok(true) => {
                    if self.emit_events {
                        let ev = events::expire(&self.name, &key, &self.id);
                        self.outputs.push_back(Output::Event(ev));
                    }
                    let publisher = self.id;
                    self.broadcast(Command::Expire { key, publisher });
                }
                Ok(false) => {}
                Err(e) => self.fail("expire", Some(&key), e),
            }
        }
    }

    /// A mutation from the local API (`Put`, `PutUnique`, `Erase`, `Add`, `Subtract`, `Clear`).
    /// A `PutUnique` whose `who` is this master is answered with a [`Output::Response`] for its
    /// `req_id`; other commands are ignored.
    pub fn mutate(&mut self, now: Timestamp, command: Command) {
        self.apply(now, command);
    }

    /// A read, answered at once with an [`Output::Response`].
    pub fn query(&mut self, _now: Timestamp, id: RequestId, query: Query) {
        let result = self.answer(query);
        self.outputs.push_back(Output::Response { id, result });
    }

    fn answer(&mut self, query: Query) -> Result<Data, StoreError> {
        match query {
            Query::Get(key) => self.backend.get(&key)?.ok_or_else(|| no_such_key(&key)),
            Query::Exists(key) => Ok(Data::Boolean(self.backend.exists(&key)?)),
            Query::GetIndex(key, index) => {
                let value = self.backend.get(&key)?.ok_or_else(|| no_such_key(&key))?;
                Ok(ops::retrieve(&value, &index)?)
            }
            Query::Keys => Ok(Data::Set(self.backend.keys()?.into_iter().collect())),
        }
    }

    /// A store command from the network (sent to `<name>/<$>/data/master`).
    pub fn handle_command(&mut self, now: Timestamp, cmd: InternalCommand) {
        let sender = cmd.sender;
        match cmd.content {
            Command::Put { .. }
            | Command::PutUnique { .. }
            | Command::Erase { .. }
            | Command::Add { .. }
            | Command::Subtract { .. }
            | Command::Clear { .. } => {
                let mut cout = std::mem::take(&mut self.cout);
                match self.inputs.get_mut(&sender) {
                    Some(input) => input.channel.handle_event(cmd.seq, cmd.content, &mut cout),
                    None => {
                        // A writer we do not know (we restarted, or dropped it): ask it to
                        // start its channel over, once per tick.
                        if self.asked_to_rejoin.insert(sender) {
                            self.send_to(sender, Command::Nack { seqs: vec![0] });
                        }
                    }
                }
                self.consumer_outputs(now, sender, &mut cout);
                self.cout = cout;
            }
            Command::AttachWriter { offset, .. } => {
                let known = self.inputs.get(&sender).map(|i| i.offset);
                if known == Some(offset) {
                    return; // A repeated handshake (Broker repeats it until acknowledged).
                }
                let mut input = Input {
                    offset,
                    channel: Consumer::new(self.config.timing),
                };
                let mut cout = std::mem::take(&mut self.cout);
                input.channel.handle_handshake(sender, offset, &mut cout);
                self.inputs.insert(sender, input);
                self.consumer_outputs(now, sender, &mut cout);
                self.cout = cout;
            }
            Command::Keepalive { seq } => {
                if let Some(i) = self.inputs.get_mut(&sender) {
                    i.channel.handle_heartbeat(seq);
                }
            }
            Command::RetransmitFailed { seq } => {
                let mut cout = std::mem::take(&mut self.cout);
                if let Some(i) = self.inputs.get_mut(&sender) {
                    i.channel.handle_retransmit_failed(seq, &mut cout);
                }
                self.consumer_outputs(now, sender, &mut cout);
                self.cout = cout;
            }
            Command::CumulativeAck { seq } => self.output.handle_ack(sender, seq),
            Command::Nack { seqs } => {
                let mut pout = std::mem::take(&mut self.pout);
                self.output.handle_nack(sender, &seqs, &mut pout);
                self.producer_outputs(&mut pout);
                self.pout = pout;
            }
            // Sent by masters, not to them.
            Command::Expire { .. } | Command::PutUniqueResult { .. } | Command::AckClone { .. } => {
            }
        }
    }

    fn tick(&mut self) {
        self.asked_to_rejoin.clear();
        let mut pout = std::mem::take(&mut self.pout);
        self.output.tick(&mut pout);
        self.producer_outputs(&mut pout);
        self.pout = pout;
        let timeout = u64::from(self.config.timing.connection_timeout.max(1)) * 10;
        let mut cout = std::mem::take(&mut self.cout);
        let writers: Vec<EntityId> = self.inputs.keys().copied().collect();
        for w in writers {
            let Some(i) = self.inputs.get_mut(&w) else {
                continue;
            };
            if i.channel.silent_ticks() >= timeout {
                // Gone for long: forget it (it is asked to start over if it comes back).
                self.inputs.remove(&w);
                continue;
            }
            if i.channel.stuck_ticks() >= timeout / 10 {
                // Missing mutations that the writer does not resend: have it start over (it
                // sends everything we have not acknowledged again).
                self.inputs.remove(&w);
                self.send_to(w, Command::Nack { seqs: vec![0] });
                continue;
            }
            i.channel.tick(&mut cout);
            cout.retain(|o| !matches!(o, ConsumerOut::Nack(s) if s == &[0]));
            self.consumer_outputs(self.next_tick, w, &mut cout);
        }
        self.cout = cout;
    }

    /// Applies what a writer's channel delivered and sends its acknowledgements (the driver
    /// makes the applied mutations durable before they leave).
    fn consumer_outputs(
        &mut self,
        now: Timestamp,
        writer: EntityId,
        cout: &mut Vec<ConsumerOut<Command>>,
    ) {
        for o in cout.drain(..) {
            match o {
                ConsumerOut::Consume(cmd) => self.apply(now, cmd),
                ConsumerOut::Lost(seq) => self.outputs.push_back(Output::Failure(StoreError::new(
                    ErrorCode::Unspecified,
                    format!("{}: lost mutation {seq} from {writer:?}", self.name),
                ))),
                // The driver makes what came before durable before the acknowledgement leaves
                // (it owns flushing; the engine never flushes).
                ConsumerOut::Ack(seq) => self.send_to(writer, Command::CumulativeAck { seq }),
                ConsumerOut::Nack(seqs) => self.send_to(writer, Command::Nack { seqs }),
            }
        }
    }

    fn producer_outputs(&mut self, pout: &mut Vec<ProducerOut<Arc<InternalCommand>>>) {
        for o in pout.drain(..) {
            match o {
                ProducerOut::Handshake { to, offset } => match self.backend.snapshot() {
                    Ok(state) if snapshot_len(&state) > self.config.max_message_bytes => {
                        self.output.remove(to);
                        self.outputs.push_back(Output::Failure(StoreError::new(
                            ErrorCode::SerializationFailed,
                            format!(
                                "{}: the store ({} bytes) is too large to send to a clone in one message (limit {})",
                                self.name,
                                snapshot_len(&state),
                                self.config.max_message_bytes
                            ),
                        )));
                    }
                    Ok(state) => {
                        let command = InternalCommand {
                            seq: offset,
                            sender: self.id,
                            receiver: to,
                            content: Command::AckClone {
                                offset,
                                heartbeat_interval: self.config.timing.heartbeat_interval,
                                state,
                            },
                        };
                        self.outputs.push_back(Output::Command {
                            topic: self.clones_topic.clone(),
                            to: Some(to.endpoint),
                            command: Arc::new(command),
                        });
                    }
                    Err(e) => {
                        self.output.remove(to);
                        self.fail("snapshot", None, e);
                    }
                },
                ProducerOut::Broadcast(_, command) => self.outputs.push_back(Output::Command {
                    topic: self.clones_topic.clone(),
                    to: None,
                    command,
                }),
                ProducerOut::Retransmit(to, _, command) => {
                    self.outputs.push_back(Output::Command {
                        topic: self.clones_topic.clone(),
                        to: Some(to.endpoint),
                        command,
                    })
                }
                ProducerOut::RetransmitFailed(to, seq) => {
                    self.send_to(to, Command::RetransmitFailed { seq })
                }
                ProducerOut::Heartbeat(seq) => {
                    let command = InternalCommand {
                        seq: 0,
                        sender: self.id,
                        receiver: EntityId::NIL,
                        content: Command::Keepalive { seq },
                    };
                    self.outputs.push_back(Output::Command {
                        topic: self.clones_topic.clone(),
                        to: None,
                        command: Arc::new(command),
                    });
                }
                ProducerOut::Dropped(clone) => {
                    tracing::debug!(store = %self.name, ?clone, "dropped an unresponsive clone");
                }
            }
        }
    }

    /// A control message to one entity, on the clone topic.
    fn send_to(&mut self, to: EntityId, content: Command) {
        let command = InternalCommand {
            seq: 0,
            sender: self.id,
            receiver: to,
            content,
        };
        self.outputs.push_back(Output::Command {
            topic: self.clones_topic.clone(),
            to: Some(to.endpoint),
            command: Arc::new(command),
        });
    }

    /// Sends a change to every clone (nothing is kept when there are none).
    fn broadcast(&mut self, content: Command) {
        if !self.output.has_consumers() {
            return;
        }
        let command = Arc::new(InternalCommand {
            seq: self.output.next_seq(),
            sender: self.id,
            receiver: EntityId::NIL,
            content,
        });
        let mut pout = std::mem::take(&mut self.pout);
        self.output.produce(command, &mut pout);
        self.producer_outputs(&mut pout);
        self.pout = pout;
    }

    fn fail(&mut self, op: &str, key: Option<&Data>, e: BackendError) {
        let mut err = StoreError::from(e);
        err.message = match key {
            Some(k) => format!("{}: {op} {}: {}", self.name, k.literal(), err.message),
            None => format!("{}: {op}: {}", self.name, err.message),
        };
        tracing::warn!(store = %self.name, error = %err, "store operation failed");
        self.outputs.push_back(Output::Failure(err));
    }

    fn set_expiry(&mut self, key: &Data, at: Option<Timestamp>) {
        if !self.expiry_of.is_empty() {
            if let Some(old) = self.expiry_of.remove(key) {
                self.expirations.remove(&(old, key.clone()));
            }
        }
        if let Some(at) = at {
            self.expiry_of.insert(key.clone(), at);
            self.expirations.insert((at, key.clone()));
        }
    }

    fn old_value(&mut self, key: &Data) -> Option<Data> {
        if self.emit_events {
            self.backend.get(key).ok().flatten()
        } else {
            None
        }
    }

    fn changed(
        &mut self,
        key: &Data,
        old: Option<Data>,
        new: &Data,
        expiry: Option<Timespan>,
        publisher: &EntityId,
    ) {
        if !self.emit_events {
            return;
        }
        let ev = match old {
            Some(old) => events::update(&self.name, key, &old, new, expiry, publisher),
            None => events::insert(&self.name, key, new, expiry, publisher),
        };
        self.outputs.push_back(Output::Event(ev));
    }

    /// After an addition or subtraction: schedules the expiry, reports the change and sends the
    /// clones the resulting value as a `put` (they do not repeat the computation, as in Broker).
    fn replicate_result(
        &mut self,
        key: Data,
        old: Option<Data>,
        new: Data,
        at: Option<Timestamp>,
        expiry: Option<Timespan>,
        publisher: EntityId,
    ) {
        self.set_expiry(&key, at);
        self.changed(&key, old, &new, expiry, &publisher);
        self.broadcast(Command::Put {
            key,
            value: new,
            expiry: None,
            publisher,
        });
    }

    /// Refuses a mutation whose key and value could not be replicated.
    fn too_large(&mut self, op: &str, key: &Data, value: &Data) -> bool {
        let len = encoded_data_len(key) + encoded_data_len(value);
        if len <= self.config.max_message_bytes {
            return false;
        }
        self.outputs.push_back(Output::Failure(StoreError::new(
            ErrorCode::SerializationFailed,
            format!(
                "{}: {op} of {len} bytes exceeds the replication limit of {} bytes",
                self.name, self.config.max_message_bytes
            ),
        )));
        true
    }

    fn apply(&mut self, now: Timestamp, command: Command) {
        match &command {
            Command::Put { key, value, .. } | Command::PutUnique { key, value, .. } => {
                if self.too_large(command.name(), key, value) {
                    if let Command::PutUnique { who, req_id, .. } = &command {
                        if *who == self.id {
                            self.outputs.push_back(Output::Response {
                                id: *req_id,
                                result: Ok(Data::Boolean(false)),
                            });
                        }
                    }
                    return;
                }
            }
            Command::Add { key, value, .. } => {
                if self.too_large("add", key, value) {
                    return;
                }
            }
            _ => {}
        }
        match command {
            Command::Put {
                key,
                value,
                expiry,
                publisher,
            } => {
                let at = expiry.map(|e| now + e);
                let old = self.old_value(&key);
                if let Err(e) = self.backend.put(&key, &value, at) {
                    return self.fail("put", Some(&key), e);
                }
                self.set_expiry(&key, at);
                self.changed(&key, old, &value, expiry, &publisher);
                self.broadcast(Command::Put {
                    key,
                    value,
                    expiry,
                    publisher,
                });
            }
            Command::PutUnique {
                key,
                value,
                expiry,
                who,
                req_id,
                publisher,
            } => {
                let inserted = match self.backend.exists(&key) {
                    Ok(true) => false,
                    Ok(false) => {
                        let at = expiry.map(|e| now + e);
                        match self.backend.put(&key, &value, at) {
                            Ok(()) => {
                                self.set_expiry(&key, at);
                                self.changed(&key, None, &value, expiry, &publisher);
                                self.broadcast(Command::Put {
                                    key: key.clone(),
                                    value,
                                    expiry,
                                    publisher,
                                });
                                true
                            }
                            Err(e) => {
                                self.fail("put_unique", Some(&key), e);
                                false
                            }
                        }
                    }
                    Err(e) => {
                        self.fail("put_unique", Some(&key), e);
                        false
                    }
                };
                self.broadcast(Command::PutUniqueResult {
                    inserted,
                    who,
                    req_id,
                    publisher: self.id,
                });
                if who == self.id {
                    self.outputs.push_back(Output::Response {
                        id: req_id,
                        result: Ok(Data::Boolean(inserted)),
                    });
                }
            }
            Command::Erase { key, publisher } => match self.backend.erase(&key) {
                Ok(true) => {
                    self.set_expiry(&key, None);
                    if self.emit_events {
                        let ev = events::erase(&self.name, &key, &publisher);
                        self.outputs.push_back(Output::Event(ev));
                    }
                    self.broadcast(Command::Erase { key, publisher });
                }
                Ok(false) => {}
                Err(e) => self.fail("erase", Some(&key), e),
            },
            Command::Add {
                key,
                value,
                init_type,
                expiry,
                publisher,
            } => {
                let at = expiry.map(|e| now + e);
                // Kept to undo an addition that grows the value past what can be replicated.
                let before = match self.backend.get(&key) {
                    Ok(v) => v,
                    Err(e) => return self.fail("add", Some(&key), e),
                };
                let old = if self.emit_events {
                    before.clone()
                } else {
                    None
                };
                match self.backend.add(&key, &value, init_type, at) {
                    Ok(new)
                        if encoded_data_len(&key) + encoded_data_len(&new)
                            > self.config.max_message_bytes =>
                    {
                        // Grew past what can be replicated: undo, and say so.
                        let undo = match &before {
                            Some(v) => self.backend.put(&key, v, self.expiry_of.get(&key).copied()),
                            None => self.backend.erase(&key).map(|_| ()),
                        };
                        if let Err(e) = undo {
                            return self.fail("add", Some(&key), e);
                        }
                        self.too_large("add", &key, &new);
                    }
                    Ok(new) => self.replicate_result(key, old, new, at, expiry, publisher),
                    Err(e) => self.fail("add", Some(&key), e),
                }
            }
            Command::Subtract {
                key,
                value,
                expiry,
                publisher,
            } => {
                let at = expiry.map(|e| now + e);
                let old = self.old_value(&key);
                match self.backend.subtract(&key, &value, at) {
                    Ok(new) => self.replicate_result(key, old, new, at, expiry, publisher),
                    Err(e) => self.fail("subtract", Some(&key), e),
                }
            }
            Command::Clear { publisher } => {
                if self.emit_events {
                    match self.backend.keys() {
                        Ok(keys) => {
                            for key in keys {
                                let ev = events::erase(&self.name, &key, &publisher);
                                self.outputs.push_back(Output::Event(ev));
                            }
                        }
                        Err(e) => return self.fail("clear", None, e),
                    }
                }
                if let Err(e) = self.backend.clear() {
                    return self.fail("clear", None, e);
                }
                self.expirations.clear();
                self.expiry_of.clear();
                self.broadcast(Command::Clear { publisher });
            }
            Command::Expire { .. }
            | Command::PutUniqueResult { .. }
            | Command::AttachWriter { .. }
            | Command::Keepalive { .. }
            | Command::CumulativeAck { .. }
            | Command::Nack { .. }
            | Command::AckClone { .. }
            | Command::RetransmitFailed { .. } => {}
        }
    }
}

/// The encoded size of a snapshot's entries.
fn snapshot_len(state: &std::collections::BTreeMap<Data, Data>) -> usize {
    state
        .iter()
        .map(|(k, v)| encoded_data_len(k) + encoded_data_len(v))
        .sum()
}

pub(crate) fn no_such_key(key: &Data) -> StoreError {
    StoreError::new(
        ErrorCode::NoSuchKey,
        format!("no such key: {}", key.literal()),
    )
}
