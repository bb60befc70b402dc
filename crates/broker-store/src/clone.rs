//! The clone frontend: a local copy of a store that follows its master and sends its own
//! mutations to the master.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use broker_backend::ops;
use broker_data::{Data, Timespan, Timestamp};
use broker_wire::{Command, EndpointId, EntityId, ErrorCode, InternalCommand, Topic};

use crate::channel::{Consumer, ConsumerOut, Producer, ProducerOut};
use crate::master::no_such_key;
use crate::{events, master_topic, Output, Query, RequestId, StoreConfig, StoreError};

/// A clone's settings (the arguments of Broker's `attach_clone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneConfig {
    /// Channel timing.
    pub store: StoreConfig,
    /// How often a clone without a master asks for one (Zeek's default: 10 s). The facade also
    /// asks at once whenever a peer appears.
    pub resync_interval: Timespan,
    /// How long after losing its master a clone keeps answering reads from its copy; after
    /// that reads fail with `stale_data`. `None`: never stale (Broker's negative interval).
    pub stale_interval: Option<Timespan>,
    /// How long a clone without a master keeps mutations to send once it finds one; older ones
    /// are dropped with a `no_such_master` failure. `None`: keep them until a master appears.
    pub mutation_buffer_interval: Option<Timespan>,
    /// How long a read waits for a clone's first synchronization before it fails with
    /// `stale_data` (Broker: 5 s); also when `no_such_master` is reported.
    pub max_get_delay: Timespan,
}

impl Default for CloneConfig {
    /// Zeek's defaults: resync 10 s, stale after 300 s, buffer mutations for 120 s.
    fn default() -> Self {
        CloneConfig {
            store: StoreConfig::default(),
            resync_interval: Timespan::from_nanos(10_000_000_000),
            stale_interval: Some(Timespan::from_nanos(300_000_000_000)),
            mutation_buffer_interval: Some(Timespan::from_nanos(120_000_000_000)),
            max_get_delay: Timespan::from_nanos(5_000_000_000),
        }
    }
}

/// A clone of one store.
pub struct Clone {
    name: String,
    id: EntityId,
    master_topic: Topic,
    config: CloneConfig,
    master: Option<EntityId>,
    input: Consumer<Command>,
    /// The channel carrying our mutations to the master.
    output: Option<Producer<Arc<InternalCommand>>>,
    store: BTreeMap<Data, Data>,
    /// Mutations waiting for a master, with when they were made.
    stalled: VecDeque<(Timestamp, Command)>,
    /// Reads waiting for the first synchronization, with their deadlines.
    pending: Vec<(RequestId, Query, Timestamp)>,
    /// `put_unique` requests waiting for the master's answer.
    pending_unique: BTreeSet<RequestId>,
    synced: bool,
    lost_since: Option<Timestamp>,
    started: Timestamp,
    reported_no_master: bool,
    next_tick: Timestamp,
    next_attach: Timestamp,
    outputs: VecDeque<Output>,
    emit_events: bool,
    pout: Vec<ProducerOut<Arc<InternalCommand>>>,
    cout: Vec<ConsumerOut<Command>>,
}

impl Clone {
    /// A clone that immediately asks for its master.
    pub fn new(name: &str, id: EntityId, config: CloneConfig, now: Timestamp) -> Self {
        let mut c = Clone {
            name: name.to_owned(),
            id,
            master_topic: master_topic(name),
            config,
            master: None,
            input: Consumer::new(config.store.timing),
            output: None,
            store: BTreeMap::new(),
            stalled: VecDeque::new(),
            pending: Vec::new(),
            pending_unique: BTreeSet::new(),
            synced: false,
            lost_since: None,
            started: now,
            reported_no_master: false,
            next_tick: now + config.store.tick_interval,
            next_attach: now,
            outputs: VecDeque::new(),
            emit_events: true,
            pout: Vec::new(),
            cout: Vec::new(),
        };
        c.ask_for_master(now);
        c
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This clone's entity id.
    pub fn id(&self) -> EntityId {
        self.id
    }

    /// The master followed now.
    pub fn master(&self) -> Option<EntityId> {
        self.master
    }

    /// Whether the clone ever received its master's state.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Whether to produce store events (on by default).
    pub fn set_emit_events(&mut self, on: bool) {
        self.emit_events = on;
    }

    /// The local copy (what reads answer from).
    pub fn snapshot(&self) -> BTreeMap<Data, Data> {
        self.store
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Synchronized with a master, every update applied, every own mutation acknowledged.
    pub fn is_idle(&self) -> bool {
        self.master.is_some()
            && self.input.idle()
            && self.output.as_ref().is_none_or(|o| o.idle())
            && self.stalled.is_empty()
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Clone::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Timestamp {
        self.next_tick
    }

    /// Whether reads fail with `stale_data` now.
    pub fn is_stale(&self, now: Timestamp) -> bool {
        match (self.lost_since, self.config.stale_interval) {
            (Some(since), Some(interval)) => now - since >= interval,
            _ => false,
        }
    }

    /// A read: answered from the copy, or — before the first synchronization — when the copy
    /// arrives (`stale_data` after `max_get_delay`); `stale_data` once the master has been gone
    /// for the stale interval.
    pub fn query(&mut self, now: Timestamp, id: RequestId, query: Query) {
        if !self.synced {
            self.pending
                .push((id, query, now + self.config.max_get_delay));
            return;
        }
        let result = if self.is_stale(now) {
            Err(self.stale())
        } else {
            self.answer(query)
        };
        self.outputs.push_back(Output::Response { id, result });
    }

    fn stale(&self) -> StoreError {
        StoreError::new(
            ErrorCode::StaleData,
            format!(
                "{}: the clone has no current copy of its master's data",
                self.name
            ),
        )
    }

    fn answer(&self, query: Query) -> Result<Data, StoreError> {
        match query {
            Query::Get(key) => self
                .store
                .get(&key)
                .cloned()
                .ok_or_else(|| no_such_key(&key)),
            Query::Exists(key) => Ok(Data::Boolean(self.store.contains_key(&key))),
            Query::GetIndex(key, index) => {
                let value = self.store.get(&key).ok_or_else(|| no_such_key(&key))?;
                Ok(ops::retrieve(value, &index)?)
            }
            Query::Keys => Ok(Data::Set(self.store.keys().cloned().collect())),
        }
    }

    /// A mutation from the local API: sent to the master (or kept until there is one). It
    /// becomes visible here when the master's update comes back.
    pub fn mutate(&mut self, now: Timestamp, command: Command) {
        if let Command::PutUnique { req_id, who, .. } = &command {
            if *who == self.id {
                self.pending_unique.insert(*req_id);
            }
        }
        if self.master.is_some() && self.output.is_some() {
            self.send_to_master(command);
        } else {
            self.stalled.push_back((now, command));
        }
    }

    /// The network says the master's endpoint is gone: count the master as lost now.
    pub fn endpoint_unreachable(&mut self, now: Timestamp, endpoint: EndpointId) {
        if self.master.is_some_and(|m| m.endpoint == endpoint) {
            self.lose_master(now, "its endpoint is unreachable");
        }
    }

    /// A peer appeared: a clone without a master asks at once instead of at its next resync.
    pub fn poke(&mut self, now: Timestamp) {
        if self.master.is_none() {
            self.ask_for_master(now);
        }
    }

    fn ask_for_master(&mut self, now: Timestamp) {
        self.next_attach = now + self.config.resync_interval;
        let command = InternalCommand {
            seq: 0,
            sender: self.id,
            receiver: EntityId::NIL,
            content: Command::Nack { seqs: vec![0] },
        };
        self.outputs.push_back(Output::Command {
            topic: self.master_topic.clone(),
            to: None,
            command: Arc::new(command),
        });
    }

    fn lose_master(&mut self, now: Timestamp, why: &str) {
        if self.master.take().is_none() {
            return;
        }
        tracing::info!(store = %self.name, why, "clone lost its master");
        self.input.reset();
        if self.lost_since.is_none() {
            self.lost_since = Some(now);
        }
        // The writer channel stays: if the same master comes back it resumes; a different
        // master gets the unacknowledged mutations again (see `start_output`).
        self.ask_for_master(now);
    }

    /// Runs the ticks that are due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = self.next_tick + self.config.store.tick_interval;
        if self.next_tick <= now {
            self.next_tick = now + self.config.store.tick_interval;
        }
        let timing = self.config.store.timing;
        let timeout = u64::from(timing.connection_timeout.max(1));
        if self.master.is_some() {
            if self.input.silent_ticks() >= timeout {
                self.lose_master(now, "no word from it for the connection timeout");
            } else if self.input.stuck_ticks() >= timeout {
                self.lose_master(now, "missing updates were not resent");
            }
        }
        if self.master.is_none() && now >= self.next_attach {
            self.ask_for_master(now);
        }
        let mut cout = std::mem::take(&mut self.cout);
        if self.master.is_some() {
            self.input.tick(&mut cout);
        }
        self.consumer_outputs(now, &mut cout);
        self.cout = cout;
        if self.master.is_some() {
            let mut pout = std::mem::take(&mut self.pout);
            if let Some(out) = self.output.as_mut() {
                out.tick(&mut pout);
                // Broker re-sends an unacknowledged handshake with every heartbeat.
                if pout.iter().any(|o| matches!(o, ProducerOut::Heartbeat(_))) {
                    for (to, offset) in out.pending_handshakes() {
                        pout.push(ProducerOut::Handshake { to, offset });
                    }
                }
            }
            self.producer_outputs(&mut pout);
            self.pout = pout;
        }
        // Mutations kept too long without a master are dropped, and said so.
        if let Some(limit) = self.config.mutation_buffer_interval {
            while self
                .stalled
                .front()
                .is_some_and(|(at, _)| now - *at > limit)
            {
                if let Some((_, cmd)) = self.stalled.pop_front() {
                    self.drop_mutation(cmd);
                }
            }
        }
        // Reads that waited too long for the first synchronization.
        let stale = self.stale();
        let mut expired = Vec::new();
        self.pending.retain(|(id, _, deadline)| {
            let keep = *deadline > now;
            if !keep {
                expired.push(*id);
            }
            keep
        });
        for id in expired {
            self.outputs.push_back(Output::Response {
                id,
                result: Err(stale.clone()),
            });
        }
        if !self.synced
            && !self.reported_no_master
            && now - self.started >= self.config.max_get_delay
        {
            self.reported_no_master = true;
            self.outputs.push_back(Output::Failure(StoreError::new(
                ErrorCode::NoSuchMaster,
                format!("{}: no master found for the clone", self.name),
            )));
        }
    }

    fn drop_mutation(&mut self, cmd: Command) {
        let err = StoreError::new(
            ErrorCode::NoSuchMaster,
            format!(
                "{}: dropped a {} that waited longer than the mutation buffer interval for a master",
                self.name,
                cmd.name()
            ),
        );
        if let Command::PutUnique { req_id, who, .. } = cmd {
            if who == self.id && self.pending_unique.remove(&req_id) {
                self.outputs.push_back(Output::Response {
                    id: req_id,
                    result: Err(err.clone()),
                });
            }
        }
        self.outputs.push_back(Output::Failure(err));
    }

    /// A store command from the network (sent to `<name>/<$>/data/clone`).
    pub fn handle_command(&mut self, now: Timestamp, cmd: InternalCommand) {
        let for_me = cmd.receiver == self.id;
        let from_master = self.master == Some(cmd.sender);
        let mut cout = std::mem::take(&mut self.cout);
        match cmd.content {
            Command::AckClone { offset, state, .. } if for_me && self.master.is_none() => {
                self.master = Some(cmd.sender);
                self.input.reset();
                self.input.handle_handshake(cmd.sender, offset, &mut cout);
                self.set_store(state, cmd.sender);
                self.synced = true;
                self.lost_since = None;
                self.start_output();
                let pending = std::mem::take(&mut self.pending);
                for (id, q, _) in pending {
                    let result = self.answer(q);
                    self.outputs.push_back(Output::Response { id, result });
                }
            }
            Command::Keepalive { seq } if from_master => self.input.handle_heartbeat(seq),
            Command::RetransmitFailed { seq } if from_master && for_me => {
                self.input.handle_retransmit_failed(seq, &mut cout)
            }
            Command::CumulativeAck { seq } if from_master && for_me => {
                if let Some(out) = self.output.as_mut() {
                    out.handle_ack(cmd.sender, seq);
                }
            }
            Command::Nack { seqs } if from_master && for_me => {
                self.handle_writer_nack(cmd.sender, &seqs)
            }
            content @ (Command::Put { .. }
            | Command::PutUniqueResult { .. }
            | Command::Erase { .. }
            | Command::Expire { .. }
            | Command::Add { .. }
            | Command::Subtract { .. }
            | Command::Clear { .. })
                if from_master =>
            {
                self.input.handle_event(cmd.seq, content, &mut cout)
            }
            _ => {}
        }
        self.consumer_outputs(now, &mut cout);
        self.cout = cout;
    }

    /// The master NACKed our writes; `[0]` means it does not know our channel (it restarted or
    /// forgot us): start the channel over and send what it has not acknowledged again.
    fn handle_writer_nack(&mut self, master: EntityId, seqs: &[u64]) {
        let mut pout = std::mem::take(&mut self.pout);
        if seqs == [0] {
            let (unacked, seq) = self
                .output
                .as_mut()
                .map(|o| (o.take_unacknowledged(), o.seq()))
                .unwrap_or_default();
            let mut out = Producer::starting_after(self.config.store.timing, seq);
            out.add(master, &mut pout);
            self.output = Some(out);
            self.producer_outputs(&mut pout);
            for c in unacked {
                let content = c.content.clone();
                self.send_to_master(content);
            }
        } else if let Some(out) = self.output.as_mut() {
            out.handle_nack(master, seqs, &mut pout);
            self.producer_outputs(&mut pout);
        }
        self.pout = pout;
    }

    /// Opens (or keeps) the writer channel to the master just attached, then sends what waited.
    fn start_output(&mut self) {
        let Some(master) = self.master else { return };
        let same = self
            .output
            .as_ref()
            .is_some_and(|o| o.consumers().any(|c| c == master));
        if !same {
            let (unacked, seq) = self
                .output
                .as_mut()
                .map(|o| (o.take_unacknowledged(), o.seq()))
                .unwrap_or_default();
            let mut out = Producer::starting_after(self.config.store.timing, seq);
            let mut pout = std::mem::take(&mut self.pout);
            out.add(master, &mut pout);
            self.output = Some(out);
            self.producer_outputs(&mut pout);
            self.pout = pout;
            for c in unacked {
                let content = c.content.clone();
                self.send_to_master(content);
            }
        }
        while let Some((_, cmd)) = self.stalled.pop_front() {
            self.send_to_master(cmd);
        }
    }

    fn send_to_master(&mut self, content: Command) {
        let (Some(master), Some(out)) = (self.master, self.output.as_mut()) else {
            return;
        };
        let command = Arc::new(InternalCommand {
            seq: out.next_seq(),
            sender: self.id,
            receiver: master,
            content,
        });
        let mut pout = std::mem::take(&mut self.pout);
        out.produce(command, &mut pout);
        self.producer_outputs(&mut pout);
        self.pout = pout;
    }

    fn producer_outputs(&mut self, pout: &mut Vec<ProducerOut<Arc<InternalCommand>>>) {
        let Some(master) = self.master else {
            pout.clear();
            return;
        };
        for o in pout.drain(..) {
            let command = match o {
                ProducerOut::Handshake { offset, .. } => self.control(
                    master,
                    Command::AttachWriter {
                        offset,
                        heartbeat_interval: self.config.store.timing.heartbeat_interval,
                    },
                ),
                ProducerOut::Broadcast(_, c) | ProducerOut::Retransmit(_, _, c) => c,
                ProducerOut::RetransmitFailed(_, seq) => {
                    self.control(master, Command::RetransmitFailed { seq })
                }
                ProducerOut::Heartbeat(seq) => {
                    self.control(EntityId::NIL, Command::Keepalive { seq })
                }
                ProducerOut::Dropped(_) => continue,
            };
            self.outputs.push_back(Output::Command {
                topic: self.master_topic.clone(),
                to: Some(master.endpoint),
                command,
            });
        }
    }

    /// Sends a control message (acknowledgement, NACK) to the master followed now.
    fn control_to_master(&mut self, content: Command) {
        if let Some(m) = self.master {
            let command = self.control(m, content);
            self.outputs.push_back(Output::Command {
                topic: self.master_topic.clone(),
                to: Some(m.endpoint),
                command,
            });
        }
    }

    fn control(&self, receiver: EntityId, content: Command) -> Arc<InternalCommand> {
        Arc::new(InternalCommand {
            seq: 0,
            sender: self.id,
            receiver,
            content,
        })
    }

    fn consumer_outputs(&mut self, now: Timestamp, cout: &mut Vec<ConsumerOut<Command>>) {
        let mut lost = false;
        for o in cout.drain(..) {
            if lost {
                continue;
            }
            match o {
                ConsumerOut::Consume(cmd) => self.apply(cmd),
                ConsumerOut::Lost(seq) => {
                    tracing::warn!(store = %self.name, seq, "clone missed an update for good");
                    lost = true;
                }
                ConsumerOut::Ack(seq) => self.control_to_master(Command::CumulativeAck { seq }),
                ConsumerOut::Nack(seqs) => self.control_to_master(Command::Nack { seqs }),
            }
        }
        if lost {
            // Out of sync: start over with a fresh copy (the copy itself is not stale).
            let was_lost = self.lost_since;
            self.lose_master(now, "an update was lost");
            self.lost_since = was_lost;
        }
    }

    fn set_store(&mut self, state: BTreeMap<Data, Data>, publisher: EntityId) {
        if self.emit_events {
            for (k, old) in &self.store {
                match state.get(k) {
                    None => {
                        let ev = events::erase(&self.name, k, &EntityId::NIL);
                        self.outputs.push_back(Output::Event(ev));
                    }
                    Some(new) if new != old => {
                        let ev = events::update(&self.name, k, old, new, None, &publisher);
                        self.outputs.push_back(Output::Event(ev));
                    }
                    Some(_) => {}
                }
            }
            for (k, v) in &state {
                if !self.store.contains_key(k) {
                    let ev = events::insert(&self.name, k, v, None, &publisher);
                    self.outputs.push_back(Output::Event(ev));
                }
            }
        }
        self.store = state.into_iter().collect();
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Put {
                key,
                value,
                expiry,
                publisher,
            } => {
                if self.emit_events {
                    let ev = match self.store.get(&key) {
                        Some(old) => {
                            events::update(&self.name, &key, old, &value, expiry, &publisher)
                        }
                        None => events::insert(&self.name, &key, &value, expiry, &publisher),
                    };
                    self.outputs.push_back(Output::Event(ev));
                }
                self.store.insert(key, value);
            }
            Command::Erase { key, publisher } => {
                let removed = self.store.remove(&key).is_some();
                if removed && self.emit_events {
                    let ev = events::erase(&self.name, &key, &publisher);
                    self.outputs.push_back(Output::Event(ev));
                }
            }
            Command::Expire { key, publisher } => {
                let removed = self.store.remove(&key).is_some();
                if removed && self.emit_events {
                    let ev = events::expire(&self.name, &key, &publisher);
                    self.outputs.push_back(Output::Event(ev));
                }
            }
            Command::Clear { publisher } => {
                if self.emit_events {
                    for k in self.store.keys() {
                        let ev = events::erase(&self.name, k, &publisher);
                        self.outputs.push_back(Output::Event(ev));
                    }
                }
                self.store.clear();
            }
            Command::PutUniqueResult {
                inserted,
                who,
                req_id,
                ..
            } => {
                if who == self.id && self.pending_unique.remove(&req_id) {
                    self.outputs.push_back(Output::Response {
                        id: req_id,
                        result: Ok(Data::Boolean(inserted)),
                    });
                }
            }
            // A Broker master sends results as puts; apply these too, should one arrive.
            Command::Add {
                key,
                value,
                init_type,
                ..
            } => {
                if let Ok(new) = ops::add(self.store.get(&key), &value, init_type) {
                    self.store.insert(key, new);
                }
            }
            Command::Subtract { key, value, .. } => {
                if let Some(new) = self
                    .store
                    .get(&key)
                    .and_then(|old| ops::subtract(old, &value).ok())
                {
                    self.store.insert(key, new);
                }
            }
            _ => {}
        }
    }
}
