//! Broker's reliable replication channel: one producer, many consumers, sequence numbers,
//! cumulative acknowledgements, negative acknowledgements, heartbeats and retransmission.
//!
//! Both halves are plain state machines driven by ticks; they return what to send as
//! [`ProducerOut`] / [`ConsumerOut`] values and leave the encoding to the master and the clone
//! (which map them onto Broker's store commands). The rules follow Broker's `channel.hh`:
//!
//! * A consumer asks to join with a NACK for sequence number 0; the producer answers with a
//!   handshake carrying its current sequence number (the offset) and heartbeat interval.
//! * Events carry consecutive sequence numbers; a consumer processes them in order, buffers
//!   what arrives early, and after `nack_timeout` ticks without progress NACKs the gaps (heartbeats
//!   tell it the latest number). Every `heartbeat_interval` ticks it acknowledges what it has.
//! * The producer keeps each event until every consumer acknowledged it, retransmits on NACK,
//!   answers `retransmit_failed` for what it no longer has, and drops a consumer it has not heard
//!   from for `connection_timeout` ticks.
//!
//! Hostile input is bounded: a consumer buffers at most [`MAX_OUT_OF_ORDER`] early events and
//! NACKs at most [`MAX_NACK`] numbers at once, whatever sequence numbers a peer claims.

use std::collections::{BTreeMap, VecDeque};

use broker_wire::{EntityId, SequenceNumber};

/// Early (out-of-order) events a consumer buffers at most; later ones are dropped and NACKed
/// again once the gap closes.
pub const MAX_OUT_OF_ORDER: u64 = 1 << 16;

/// Sequence numbers one NACK asks for at most.
pub const MAX_NACK: usize = 4096;

/// Timing of a channel, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Ticks between heartbeats (and between a consumer's acknowledgements).
    pub heartbeat_interval: u16,
    /// Ticks without progress before a consumer NACKs.
    pub nack_timeout: u16,
    /// Ticks of silence after which the other side counts as gone.
    pub connection_timeout: u16,
}

impl Default for Timing {
    /// Broker's defaults: heartbeat every 5 ticks, NACK after 2, time out after 100.
    fn default() -> Self {
        Timing {
            heartbeat_interval: 5,
            nack_timeout: 2,
            connection_timeout: 100,
        }
    }
}

/// What a producer wants sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ProducerOut<P> {
    /// Send the handshake (offset, heartbeat interval) to one consumer.
    Handshake {
        /// The consumer.
        to: EntityId,
        /// The sequence number the consumer starts after.
        offset: SequenceNumber,
    },
    /// Send this event to every consumer.
    Broadcast(SequenceNumber, P),
    /// Send this event again to one consumer.
    Retransmit(EntityId, SequenceNumber, P),
    /// Tell one consumer that an event is gone for good.
    RetransmitFailed(EntityId, SequenceNumber),
    /// Send a heartbeat with the latest sequence number to every consumer.
    Heartbeat(SequenceNumber),
    /// A consumer was dropped (timeout or protocol violation).
    Dropped(EntityId),
}

#[derive(Debug, Clone)]
struct Path {
    hdl: EntityId,
    offset: SequenceNumber,
    acked: SequenceNumber,
    last_seen: u64,
}

/// The sending half of a channel.
#[derive(Debug, Clone)]
pub struct Producer<P> {
    seq: SequenceNumber,
    tick: u64,
    last_broadcast: u64,
    buf: VecDeque<(SequenceNumber, P)>,
    paths: Vec<Path>,
    timing: Timing,
}

impl<P: Clone> Producer<P> {
    /// A producer with no consumers. Its first event gets sequence number 2, as in Broker
    /// (the initial offset is 1).
    pub fn new(timing: Timing) -> Self {
        Self::starting_after(timing, 1)
    }

    /// A producer whose first event gets `seq + 1`: a producer that starts over continues its
    /// numbering, so that its new handshake differs from the old one.
    pub fn starting_after(timing: Timing, seq: SequenceNumber) -> Self {
        Producer {
            seq: seq.max(1),
            tick: 0,
            last_broadcast: 0,
            buf: VecDeque::new(),
            paths: Vec::new(),
            timing,
        }
    }

    /// The latest sequence number.
    pub fn seq(&self) -> SequenceNumber {
        self.seq
    }

    /// The number the next event gets.
    pub fn next_seq(&self) -> SequenceNumber {
        self.seq + 1
    }

    /// Whether there are consumers.
    pub fn has_consumers(&self) -> bool {
        !self.paths.is_empty()
    }

    /// The consumers.
    pub fn consumers(&self) -> impl Iterator<Item = EntityId> + '_ {
        self.paths.iter().map(|p| p.hdl)
    }

    /// Events sent but not yet acknowledged by every consumer.
    pub fn unacknowledged(&self) -> usize {
        self.buf.len()
    }

    /// Events not acknowledged yet, oldest first (what a writer replays to a new master).
    pub fn take_unacknowledged(&mut self) -> Vec<P> {
        self.buf.drain(..).map(|(_, p)| p).collect()
    }

    /// Every consumer has acknowledged everything.
    pub fn idle(&self) -> bool {
        self.paths.iter().all(|p| p.acked == self.seq)
    }

    /// Sends an event to every consumer (nothing happens without consumers, as in Broker).
    /// Returns its sequence number.
    pub fn produce(&mut self, content: P, out: &mut Vec<ProducerOut<P>>) -> Option<SequenceNumber> {
        if self.paths.is_empty() {
            return None;
        }
        self.seq += 1;
        self.buf.push_back((self.seq, content.clone()));
        self.last_broadcast = self.tick;
        out.push(ProducerOut::Broadcast(self.seq, content));
        Some(self.seq)
    }

    /// Adds a consumer and sends it the handshake. An existing consumer is reset to the current
    /// offset (it asked to start over).
    pub fn add(&mut self, hdl: EntityId, out: &mut Vec<ProducerOut<P>>) {
        self.paths.retain(|p| p.hdl != hdl);
        self.paths.push(Path {
            hdl,
            offset: self.seq,
            acked: 0,
            last_seen: self.tick,
        });
        self.trim();
        out.push(ProducerOut::Handshake {
            to: hdl,
            offset: self.seq,
        });
    }

    /// Removes a consumer.
    pub fn remove(&mut self, hdl: EntityId) {
        self.paths.retain(|p| p.hdl != hdl);
        self.trim();
    }

    /// A cumulative acknowledgement from `hdl`.
    pub fn handle_ack(&mut self, hdl: EntityId, seq: SequenceNumber) {
        let tick = self.tick;
        let Some(p) = self.paths.iter_mut().find(|p| p.hdl == hdl) else {
            return;
        };
        p.last_seen = tick;
        // An acknowledgement beyond what was sent is bogus; clamp it.
        let seq = seq.min(self.seq);
        if seq > p.acked {
            p.acked = seq;
            self.trim();
        }
    }

    /// A NACK from `hdl`. `[0]` from a stranger is a request to join; `[0]` from a consumer is a
    /// request to start over (it gets a fresh handshake at the current offset).
    pub fn handle_nack(
        &mut self,
        hdl: EntityId,
        seqs: &[SequenceNumber],
        out: &mut Vec<ProducerOut<P>>,
    ) {
        if seqs.is_empty() {
            return;
        }
        if seqs[0] == 0 {
            self.add(hdl, out);
            return;
        }
        let tick = self.tick;
        let Some(i) = self.paths.iter().position(|p| p.hdl == hdl) else {
            return;
        };
        self.paths[i].last_seen = tick;
        if !seqs.windows(2).all(|w| w[0] < w[1]) {
            self.paths.remove(i);
            self.trim();
            out.push(ProducerOut::Dropped(hdl));
            return;
        }
        self.handle_ack(hdl, seqs[0] - 1);
        for &seq in seqs.iter().take(MAX_NACK) {
            match self.find(seq) {
                Some(p) => out.push(ProducerOut::Retransmit(hdl, seq, p.clone())),
                None => out.push(ProducerOut::RetransmitFailed(hdl, seq)),
            }
        }
    }

    fn find(&self, seq: SequenceNumber) -> Option<&P> {
        let first = self.buf.front()?.0;
        let i = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.buf.get(i).map(|(_, p)| p)
    }

    /// Drops events that every consumer has.
    fn trim(&mut self) {
        if self.paths.is_empty() {
            self.buf.clear();
            return;
        }
        let acked = self.paths.iter().map(|p| p.acked).min().unwrap_or(0);
        while self.buf.front().is_some_and(|(s, _)| *s <= acked) {
            self.buf.pop_front();
        }
    }

    /// Advances one tick: heartbeats and consumer timeouts.
    pub fn tick(&mut self, out: &mut Vec<ProducerOut<P>>) {
        self.tick += 1;
        let hb = u64::from(self.timing.heartbeat_interval);
        if hb == 0 {
            return;
        }
        if self.last_broadcast + hb <= self.tick {
            self.last_broadcast = self.tick;
            out.push(ProducerOut::Heartbeat(self.seq));
        }
        let timeout = u64::from(self.timing.connection_timeout.max(1));
        let tick = self.tick;
        let before = self.paths.len();
        self.paths.retain(|p| {
            let alive = tick - p.last_seen < timeout;
            if !alive {
                out.push(ProducerOut::Dropped(p.hdl));
            }
            alive
        });
        if self.paths.len() != before {
            self.trim();
        }
    }

    /// Consumers still waiting for their handshake to be acknowledged (re-sent with each
    /// heartbeat by a writer).
    pub fn pending_handshakes(&self) -> Vec<(EntityId, SequenceNumber)> {
        self.paths
            .iter()
            .filter(|p| p.acked == 0)
            .map(|p| (p.hdl, p.offset))
            .collect()
    }
}

/// What a consumer wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsumerOut<P> {
    /// Apply this event (in order).
    Consume(P),
    /// An event is lost for good: the consumer is out of sync.
    Lost(SequenceNumber),
    /// Acknowledge everything up to this number.
    Ack(SequenceNumber),
    /// Ask for these numbers again (`[0]`: ask to join).
    Nack(Vec<SequenceNumber>),
}

/// The receiving half of a channel.
#[derive(Debug, Clone)]
pub struct Consumer<P> {
    producer: Option<EntityId>,
    next_seq: SequenceNumber,
    last_seq: SequenceNumber,
    buf: BTreeMap<SequenceNumber, Option<P>>,
    tick: u64,
    last_tick_seq: SequenceNumber,
    idle_ticks: u64,
    stalled_ticks: u64,
    silent_ticks: u64,
    timing: Timing,
}

impl<P> Consumer<P> {
    /// A consumer waiting for its handshake.
    pub fn new(timing: Timing) -> Self {
        Consumer {
            producer: None,
            next_seq: 0,
            last_seq: 0,
            buf: BTreeMap::new(),
            tick: 0,
            last_tick_seq: 0,
            idle_ticks: 0,
            stalled_ticks: 0,
            silent_ticks: 0,
            timing,
        }
    }

    /// The producer, once the handshake arrived.
    pub fn producer(&self) -> Option<EntityId> {
        self.producer
    }

    /// Whether the handshake arrived.
    pub fn initialized(&self) -> bool {
        self.next_seq != 0
    }

    /// Everything announced has been processed.
    pub fn idle(&self) -> bool {
        self.initialized() && self.buf.is_empty() && self.next_seq == self.last_seq
    }

    /// Ticks since the producer was last heard from.
    pub fn silent_ticks(&self) -> u64 {
        self.silent_ticks
    }

    /// Ticks without progress while events are missing.
    pub fn stuck_ticks(&self) -> u64 {
        if self.next_seq < self.last_seq {
            self.stalled_ticks
        } else {
            0
        }
    }

    /// Forgets the producer and everything buffered.
    pub fn reset(&mut self) {
        *self = Consumer::new(self.timing);
    }

    /// The producer's handshake: events after `offset` follow. Ignored once initialized.
    pub fn handle_handshake(
        &mut self,
        producer: EntityId,
        offset: SequenceNumber,
        out: &mut Vec<ConsumerOut<P>>,
    ) -> bool {
        if self.initialized() {
            return false;
        }
        self.producer = Some(producer);
        self.next_seq = offset + 1;
        self.last_seq = self.next_seq;
        self.last_tick_seq = self.next_seq;
        self.silent_ticks = 0;
        self.buf = self.buf.split_off(&self.next_seq);
        self.try_consume_buffer(out);
        out.push(ConsumerOut::Ack(self.next_seq - 1));
        true
    }

    /// A heartbeat announcing the producer's latest number.
    pub fn handle_heartbeat(&mut self, seq: SequenceNumber) {
        self.silent_ticks = 0;
        if self.last_seq == 0 || seq == 0 {
            return;
        }
        let seq = seq.min(self.next_seq.saturating_add(MAX_OUT_OF_ORDER));
        if seq + 1 > self.last_seq {
            self.last_seq = seq + 1;
        }
    }

    /// An event.
    pub fn handle_event(&mut self, seq: SequenceNumber, payload: P, out: &mut Vec<ConsumerOut<P>>) {
        self.silent_ticks = 0;
        if !self.initialized() || seq < self.next_seq {
            // Before the handshake nothing can be placed; old events are duplicates.
            return;
        }
        if seq == self.next_seq {
            out.push(ConsumerOut::Consume(payload));
            self.bump();
            self.try_consume_buffer(out);
        } else if seq - self.next_seq <= MAX_OUT_OF_ORDER {
            if seq > self.last_seq {
                self.last_seq = seq;
            }
            let slot = self.buf.entry(seq).or_insert(None);
            if slot.is_none() {
                *slot = Some(payload);
            }
        }
    }

    /// The producer cannot resend `seq`.
    pub fn handle_retransmit_failed(&mut self, seq: SequenceNumber, out: &mut Vec<ConsumerOut<P>>) {
        self.silent_ticks = 0;
        if !self.initialized() || seq < self.next_seq {
            return;
        }
        if seq == self.next_seq {
            out.push(ConsumerOut::Lost(seq));
            self.bump();
            self.try_consume_buffer(out);
        } else if seq - self.next_seq <= MAX_OUT_OF_ORDER {
            self.buf.entry(seq).or_insert(None);
        }
    }

    fn bump(&mut self) {
        self.next_seq += 1;
        if self.next_seq > self.last_seq {
            self.last_seq = self.next_seq;
        }
    }

    fn try_consume_buffer(&mut self, out: &mut Vec<ConsumerOut<P>>) {
        while let Some(entry) = self.buf.first_entry() {
            if *entry.key() != self.next_seq {
                break;
            }
            let seq = *entry.key();
            match entry.remove() {
                Some(p) => out.push(ConsumerOut::Consume(p)),
                None => out.push(ConsumerOut::Lost(seq)),
            }
            self.bump();
        }
    }

    /// Advances one tick: join requests, NACKs for gaps, periodic acknowledgements.
    pub fn tick(&mut self, out: &mut Vec<ConsumerOut<P>>) {
        self.tick += 1;
        self.silent_ticks += 1;
        let nack_timeout = u64::from(self.timing.nack_timeout.max(1));
        if !self.initialized() {
            self.idle_ticks += 1;
            if self.idle_ticks >= nack_timeout {
                self.idle_ticks = 0;
                out.push(ConsumerOut::Nack(vec![0]));
            }
            return;
        }
        let hb = u64::from(self.timing.heartbeat_interval);
        let progressed = self.next_seq > self.last_tick_seq;
        self.last_tick_seq = self.next_seq;
        if progressed {
            self.idle_ticks = 0;
            self.stalled_ticks = 0;
        } else {
            self.idle_ticks += 1;
            self.stalled_ticks += 1;
            if self.next_seq < self.last_seq && self.idle_ticks >= nack_timeout {
                self.idle_ticks = 0;
                let mut seqs = Vec::new();
                let mut i = self.next_seq;
                'gaps: for &have in self.buf.keys().chain(std::iter::once(&self.last_seq)) {
                    while i < have {
                        if seqs.len() >= MAX_NACK {
                            break 'gaps;
                        }
                        seqs.push(i);
                        i += 1;
                    }
                    i = have + 1;
                }
                if !seqs.is_empty() {
                    out.push(ConsumerOut::Nack(seqs));
                    return;
                }
            }
        }
        if hb > 0 && self.tick % hb == 0 {
            out.push(ConsumerOut::Ack(self.next_seq - 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_wire::EndpointId;

    fn ent(n: u8) -> EntityId {
        EntityId {
            endpoint: EndpointId::from_bytes([n; 16]),
            object: u64::from(n),
        }
    }

    #[test]
    fn join_send_ack_and_trim() {
        let mut p: Producer<u32> = Producer::new(Timing::default());
        let mut c: Consumer<u32> = Consumer::new(Timing::default());
        let mut po = Vec::new();
        let mut co = Vec::new();
        assert_eq!(p.produce(7, &mut po), None, "nothing without consumers");
        p.handle_nack(ent(1), &[0], &mut po);
        assert_eq!(
            po,
            vec![ProducerOut::Handshake {
                to: ent(1),
                offset: 1
            }]
        );
        po.clear();
        assert!(c.handle_handshake(ent(9), 1, &mut co));
        assert_eq!(co, vec![ConsumerOut::Ack(1)]);
        co.clear();
        let s1 = p.produce(10, &mut po).unwrap();
        let s2 = p.produce(11, &mut po).unwrap();
        assert_eq!((s1, s2), (2, 3));
        // Out of order: 3 before 2.
        c.handle_event(3, 11, &mut co);
        assert!(co.is_empty());
        c.handle_event(2, 10, &mut co);
        assert_eq!(co, vec![ConsumerOut::Consume(10), ConsumerOut::Consume(11)]);
        assert_eq!(p.unacknowledged(), 2);
        p.handle_ack(ent(1), 3);
        assert_eq!(p.unacknowledged(), 0);
        assert!(p.idle());
        assert!(c.idle());
    }

    #[test]
    fn gaps_are_nacked_and_retransmitted() {
        let t = Timing::default();
        let mut p: Producer<u32> = Producer::new(t);
        let mut c: Consumer<u32> = Consumer::new(t);
        let (mut po, mut co) = (Vec::new(), Vec::new());
        p.add(ent(1), &mut po);
        c.handle_handshake(ent(9), 1, &mut co);
        co.clear();
        for v in 0..5 {
            p.produce(v, &mut po);
        }
        // Only 2 and 6 arrive; a heartbeat says 6 is the latest.
        c.handle_event(2, 0, &mut co);
        c.handle_event(6, 4, &mut co);
        c.handle_heartbeat(6);
        co.clear();
        for _ in 0..3 {
            c.tick(&mut co);
        }
        assert_eq!(co, vec![ConsumerOut::Nack(vec![3, 4, 5])]);
        po.clear();
        p.handle_nack(ent(1), &[3, 4, 5], &mut po);
        assert_eq!(
            po,
            vec![
                ProducerOut::Retransmit(ent(1), 3, 1),
                ProducerOut::Retransmit(ent(1), 4, 2),
                ProducerOut::Retransmit(ent(1), 5, 3)
            ]
        );
        co.clear();
        for o in po.drain(..) {
            if let ProducerOut::Retransmit(_, s, v) = o {
                c.handle_event(s, v, &mut co);
            }
        }
        assert_eq!(
            co,
            vec![
                ConsumerOut::Consume(1),
                ConsumerOut::Consume(2),
                ConsumerOut::Consume(3),
                ConsumerOut::Consume(4)
            ]
        );
        // Acknowledged events are gone: a NACK for them gets retransmit_failed.
        p.handle_ack(ent(1), 6);
        p.handle_nack(ent(1), &[6], &mut po);
        assert_eq!(po, vec![ProducerOut::RetransmitFailed(ent(1), 6)]);
    }

    #[test]
    fn hostile_numbers_are_bounded() {
        let mut c: Consumer<u32> = Consumer::new(Timing::default());
        let mut co = Vec::new();
        c.handle_handshake(ent(9), 1, &mut co);
        c.handle_heartbeat(u64::MAX - 1);
        c.handle_event(u64::MAX, 1, &mut co);
        co.clear();
        for _ in 0..3 {
            c.tick(&mut co);
        }
        match &co[..] {
            [ConsumerOut::Nack(seqs)] => assert_eq!(seqs.len(), MAX_NACK),
            other => panic!("{other:?}"),
        }
        let mut p: Producer<u32> = Producer::new(Timing::default());
        let mut po = Vec::new();
        p.add(ent(1), &mut po);
        p.handle_ack(ent(1), u64::MAX);
        assert!(p.idle());
        po.clear();
        p.handle_nack(ent(1), &[5, 3], &mut po);
        assert_eq!(
            po,
            vec![ProducerOut::Dropped(ent(1))],
            "unsorted NACK drops the consumer"
        );
    }

    #[test]
    fn silent_consumers_time_out() {
        let t = Timing {
            heartbeat_interval: 1,
            nack_timeout: 1,
            connection_timeout: 3,
        };
        let mut p: Producer<u32> = Producer::new(t);
        let mut po = Vec::new();
        p.add(ent(1), &mut po);
        po.clear();
        for _ in 0..3 {
            p.tick(&mut po);
        }
        assert!(po.contains(&ProducerOut::Dropped(ent(1))));
        assert!(!p.has_consumers());
    }
}
