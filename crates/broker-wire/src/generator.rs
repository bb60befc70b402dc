//! Broker's "generator files": the `messages.dat` of a recording directory.
//!
//! A generator file records the *shape* of every message an endpoint published, not its
//! content: the topic, whether it was data or a store command, and for data the type of every
//! value, the length of every string and enum name and the size of every container. Replaying
//! the file produces messages of the same shape with made-up content (strings of `x`, numbers
//! from a seeded generator), which is what Broker's cluster benchmark sends. Broker's source is
//! the reference (`generator_file_{reader,writer}`, `meta_data_writer`, `data_generator`);
//! `docs/protocol.md` describes the format with test vectors.
//!
//! The file starts with the magic `0x2EECC0DE` as a little-endian `u32` and a version byte.
//! Entries follow, each a type byte: `0` a new topic (CAF string: varint length, bytes; topics
//! are numbered from 0 in order of appearance), `1` a data message, `2` a command message (both:
//! the topic's number as a big-endian `u16`, then the shape). Shapes are a type tag and, for
//! strings and enum values, a big-endian `u32` length, for sets and vectors a `u32` size and the
//! elements, for tables a `u32` size and the keys and values in turn.
//!
//! Two versions exist. Version 1 (written by Broker 1.4 to 2.2, the releases that had
//! recording) numbers data types alphabetically and store commands as Broker 2.0 did; version 2
//! (Broker's source from 2.3 on, where recording was no longer built) numbers them in the data
//! model's order and the store commands of the current protocol. The reader takes both; the
//! writer writes either, version 2 by default.
//!
//! Broker's version-2 reader expects an `init_type` byte after an `add` command's value and
//! nothing after a `nack`, while its writer writes no `init_type` and a `u32` count for a `nack`.
//! We read and write what Broker's writer writes; a replayed `add` takes its value's type as the
//! initial type.

use std::collections::{BTreeMap, BTreeSet};

use broker_data::{
    Address, Data, DataType, EnumValue, Port, Protocol, Subnet, Timespan, Timestamp,
};
use bytes::BufMut;

use crate::reader::{put_varint, Reader};
use crate::{Command, EntityId, Topic, WireError};

/// The first four bytes of a generator file (little-endian on disk, as Broker writes it).
pub const GENERATOR_MAGIC: u32 = 0x2EEC_C0DE;

/// The version Broker's current source writes.
pub const GENERATOR_VERSION: u8 = 2;

/// Length of the header: magic and version.
pub const GENERATOR_HEADER_LEN: usize = 5;

const NEW_TOPIC: u8 = 0;
const DATA_MESSAGE: u8 = 1;
const COMMAND_MESSAGE: u8 = 2;

/// Version 1's data type tags, by the data model's tag (alphabetical order in Broker 1.4–2.2).
const V1_TAGS: [u8; 15] = [5, 1, 2, 4, 7, 9, 0, 10, 6, 13, 12, 3, 8, 11, 14];

/// Version-1 store command tags (Broker 2.0's variant order).
mod v1cmd {
    pub(super) const NONE: u8 = 0;
    pub(super) const PUT: u8 = 1;
    pub(super) const PUT_UNIQUE: u8 = 2;
    pub(super) const ERASE: u8 = 3;
    pub(super) const EXPIRE: u8 = 4;
    pub(super) const ADD: u8 = 5;
    pub(super) const SUBTRACT: u8 = 6;
    pub(super) const SNAPSHOT: u8 = 7;
    pub(super) const SNAPSHOT_SYNC: u8 = 8;
    pub(super) const SET: u8 = 9;
    pub(super) const CLEAR: u8 = 10;
}

/// The header of a generator file of `version`.
///
/// ```
/// assert_eq!(broker_wire::generator_header(2), [0xde, 0xc0, 0xec, 0x2e, 2]);
/// ```
pub fn generator_header(version: u8) -> [u8; GENERATOR_HEADER_LEN] {
    let m = GENERATOR_MAGIC.to_le_bytes();
    [m[0], m[1], m[2], m[3], version]
}

fn tag_of(version: u8, t: DataType) -> u8 {
    let tag = t as u8;
    if version == 1 {
        V1_TAGS[usize::from(tag)]
    } else {
        tag
    }
}

fn type_of(version: u8, tag: u8) -> Result<DataType, WireError> {
    let t = if version == 1 {
        V1_TAGS.iter().position(|&v| v == tag).map(|i| i as u8)
    } else {
        Some(tag)
    };
    t.and_then(DataType::from_tag)
        .ok_or(WireError::UnknownDataTag(tag))
}

/// Writes generator files: the header at creation, then one entry per message.
///
/// The writer buffers; [`take`](Self::take) hands out what accumulated (the header first), so a
/// caller can write to disk off its hot path.
///
/// ```
/// use broker_data::vector;
/// use broker_wire::{GeneratorReader, GeneratorWriter, GeneratorEntry, Topic};
/// let mut w = GeneratorWriter::new(2);
/// w.write_data(&Topic::new("zeek/events").unwrap(), &vector![1u64, "ab"]).unwrap();
/// let bytes = w.take();
/// let mut r = GeneratorReader::new(&bytes).unwrap();
/// match r.next().unwrap().unwrap() {
///     GeneratorEntry::Data { topic, data } => {
///         assert_eq!(topic.as_str(), "zeek/events");
///         assert_eq!(data.data_type(), broker_data::DataType::Vector);
///     }
///     other => panic!("{other:?}"),
/// }
/// assert!(r.next().is_none());
/// ```
#[derive(Debug)]
pub struct GeneratorWriter {
    version: u8,
    topics: std::collections::HashMap<Topic, u16>,
    buf: Vec<u8>,
}

impl GeneratorWriter {
    /// A writer of `version` (1 or 2; anything else writes version 2).
    pub fn new(version: u8) -> GeneratorWriter {
        let version = if version == 1 { 1 } else { GENERATOR_VERSION };
        GeneratorWriter {
            version,
            topics: Default::default(),
            buf: generator_header(version).to_vec(),
        }
    }

    /// The version this writer writes.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Bytes written but not yet taken.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes the bytes written since the last call (the header, the first time).
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    fn topic_id(&mut self, topic: &Topic) -> Result<u16, WireError> {
        if let Some(id) = self.topics.get(topic) {
            return Ok(*id);
        }
        let id = u16::try_from(self.topics.len()).map_err(|_| WireError::TooManyTopics)?;
        self.buf.push(NEW_TOPIC);
        put_varint(&mut self.buf, topic.as_bytes().len() as u64);
        self.buf.extend_from_slice(topic.as_bytes());
        self.topics.insert(topic.clone(), id);
        Ok(id)
    }

    /// Records a data message: its topic and the shape of `data`.
    pub fn write_data(&mut self, topic: &Topic, data: &Data) -> Result<(), WireError> {
        self.write_data_run(topic, std::iter::once(data))
            .map(|_| ())
    }

    /// Records data messages published one after the other on one topic (the topic is looked
    /// up once); returns how many.
    pub fn write_data_run<'d>(
        &mut self,
        topic: &Topic,
        values: impl IntoIterator<Item = &'d Data>,
    ) -> Result<usize, WireError> {
        let id = self.topic_id(topic)?.to_be_bytes();
        let mut n = 0;
        for data in values {
            self.buf.extend_from_slice(&[DATA_MESSAGE, id[0], id[1]]);
            shape(self.version, data, &mut self.buf);
            n += 1;
        }
        Ok(n)
    }

    /// Records a command message: its topic, the command's tag and the shapes of its data.
    ///
    /// Version 1 knows only the store mutations of Broker 2.0: the channel's control messages
    /// (and `put_unique_result`) are [`WireError::NotInGeneratorVersion`] there.
    pub fn write_command(&mut self, topic: &Topic, command: &Command) -> Result<(), WireError> {
        let v = self.version;
        // Version 1 holds Broker 2.0's mutations, under their tags of then.
        let tag = match (v, command.index()) {
            (1, 0) => v1cmd::PUT,
            (1, 1) => v1cmd::PUT_UNIQUE,
            (1, i @ 3..=6) => i,
            (1, 7) => v1cmd::CLEAR,
            (1, _) => return Err(WireError::NotInGeneratorVersion(command.name(), 1)),
            (_, i) => i,
        };
        let mut body = vec![tag];
        match command {
            Command::Put { key, value, .. }
            | Command::PutUnique { key, value, .. }
            | Command::Subtract { key, value, .. } => {
                shape(v, key, &mut body);
                shape(v, value, &mut body);
            }
            Command::Add {
                key,
                value,
                init_type,
                ..
            } => {
                shape(v, key, &mut body);
                shape(v, value, &mut body);
                if v == 1 {
                    body.push(tag_of(v, *init_type));
                }
            }
            Command::Erase { key, .. } | Command::Expire { key, .. } => shape(v, key, &mut body),
            Command::Nack { seqs } => body.put_u32(len32(seqs.len())),
            Command::PutUniqueResult { .. }
            | Command::Clear { .. }
            | Command::AttachWriter { .. }
            | Command::Keepalive { .. }
            | Command::CumulativeAck { .. }
            | Command::AckClone { .. }
            | Command::RetransmitFailed { .. } => {}
        }
        let id = self.topic_id(topic)?;
        self.buf.push(COMMAND_MESSAGE);
        self.buf.put_u16(id);
        self.buf.extend_from_slice(&body);
        Ok(())
    }
}

fn len32(n: usize) -> u32 {
    // Broker casts sizes to 32 bits; no value we can hold in memory comes near.
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Appends the shape of `data`.
fn shape(version: u8, data: &Data, out: &mut Vec<u8>) {
    out.push(tag_of(version, data.data_type()));
    match data {
        Data::String(s) => out.put_u32(len32(s.len())),
        Data::EnumValue(e) => out.put_u32(len32(e.0.len())),
        Data::Set(xs) => {
            out.put_u32(len32(xs.len()));
            for x in xs {
                shape(version, x, out);
            }
        }
        Data::Vector(xs) => {
            out.put_u32(len32(xs.len()));
            for x in xs {
                shape(version, x, out);
            }
        }
        Data::Table(xs) => {
            out.put_u32(len32(xs.len()));
            for (k, v) in xs {
                shape(version, k, out);
                shape(version, v, out);
            }
        }
        _ => {}
    }
}

/// One entry of a generator file, with content made up to its recorded shape.
#[derive(Debug, Clone, PartialEq)]
pub enum GeneratorEntry {
    /// A data message.
    Data {
        /// Its topic.
        topic: Topic,
        /// A value of the recorded shape.
        data: Data,
    },
    /// A store command.
    Command {
        /// Its topic.
        topic: Topic,
        /// A command of the recorded kind, with data of the recorded shapes.
        command: Command,
    },
}

impl GeneratorEntry {
    /// The entry's topic.
    pub fn topic(&self) -> &Topic {
        match self {
            GeneratorEntry::Data { topic, .. } | GeneratorEntry::Command { topic, .. } => topic,
        }
    }
}

/// Bounds on what the reader makes up: recorded shapes declare sizes without carrying the
/// bytes, so a few bytes of a hostile file could ask for gigabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneratorLimits {
    /// Most bytes of strings and elements one entry may make up (default 16 MiB).
    pub max_entry_size: usize,
    /// Deepest nesting (default 64).
    pub max_depth: usize,
}

impl Default for GeneratorLimits {
    fn default() -> Self {
        GeneratorLimits {
            max_entry_size: 16 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// The MINSTD generator Broker's data generator uses (`std::minstd_rand`, seed 0 → 1).
#[derive(Debug, Clone)]
struct MinStd(u64);

impl MinStd {
    fn new(seed: u32) -> MinStd {
        let s = u64::from(seed) % 2_147_483_647;
        MinStd(if s == 0 { 1 } else { s })
    }

    fn next(&mut self) -> u32 {
        self.0 = self.0 * 48_271 % 2_147_483_647;
        self.0 as u32
    }

    fn byte(&mut self) -> u8 {
        (self.next() % 256) as u8
    }

    fn char(&mut self) -> u8 {
        // Printable characters from '!' to '}', as Broker.
        b'!' + (self.next() % 93) as u8
    }
}

/// Reads a generator file of either version from memory, making up each entry's content.
///
/// The reader is an iterator of entries; after an error it ends. [`rewind`](Self::rewind)
/// starts over (a replay that loops), keeping the topic table.
///
/// ```
/// use broker_wire::GeneratorReader;
/// assert!(GeneratorReader::new(b"not a generator file").is_err());
/// let empty = broker_wire::generator_header(1);
/// let mut r = GeneratorReader::new(&empty).unwrap();
/// assert_eq!(r.version(), 1);
/// assert!(r.next().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct GeneratorReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    version: u8,
    topics: Vec<Topic>,
    sealed: bool,
    failed: bool,
    limits: GeneratorLimits,
    rng: MinStd,
    data_entries: u64,
    command_entries: u64,
    skipped: u64,
}

impl<'a> GeneratorReader<'a> {
    /// Checks the header and positions the reader at the first entry.
    pub fn new(bytes: &'a [u8]) -> Result<GeneratorReader<'a>, WireError> {
        Self::with_limits(bytes, GeneratorLimits::default())
    }

    /// [`new`](Self::new) with other limits.
    pub fn with_limits(
        bytes: &'a [u8],
        limits: GeneratorLimits,
    ) -> Result<GeneratorReader<'a>, WireError> {
        if bytes.len() < GENERATOR_HEADER_LEN {
            return Err(WireError::truncated(
                "generator file header",
                GENERATOR_HEADER_LEN,
                bytes.len(),
            ));
        }
        let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if magic != GENERATOR_MAGIC {
            return Err(WireError::NotAGeneratorFile(magic));
        }
        let version = bytes[4];
        if version != 1 && version != 2 {
            return Err(WireError::UnsupportedGeneratorVersion(version));
        }
        Ok(GeneratorReader {
            bytes,
            pos: GENERATOR_HEADER_LEN,
            version,
            topics: Vec::new(),
            sealed: false,
            failed: false,
            limits,
            rng: MinStd::new(0),
            data_entries: 0,
            command_entries: 0,
            skipped: 0,
        })
    }

    /// The file's version (1 or 2).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The topics seen so far, in order of appearance.
    pub fn topics(&self) -> &[Topic] {
        &self.topics
    }

    /// Whether every entry has been read.
    pub fn at_end(&self) -> bool {
        self.pos >= self.bytes.len() || self.failed
    }

    /// Data entries read in the first pass.
    pub fn data_entries(&self) -> u64 {
        self.data_entries
    }

    /// Command entries read in the first pass.
    pub fn command_entries(&self) -> u64 {
        self.command_entries
    }

    /// Version-1 `none` commands read in the first pass (no-ops, skipped). Version 1's other
    /// commands without a counterpart today become their nearest equivalents: `snapshot` a
    /// `nack` of 0 (a clone asking for the state), `snapshot_sync` a `keepalive`, `set` an
    /// `ack_clone` with the recorded state's shape.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Starts over at the first entry (after the whole file was read: the counts stay those of
    /// the first pass).
    pub fn rewind(&mut self) {
        if self.pos >= self.bytes.len() {
            self.sealed = true;
        }
        self.pos = GENERATOR_HEADER_LEN;
    }

    fn entry(&mut self) -> Result<Option<GeneratorEntry>, WireError> {
        loop {
            if self.pos >= self.bytes.len() {
                return Ok(None);
            }
            let mut r = Reader::new(&self.bytes[self.pos..]);
            let kind = r.u8("generator entry type")?;
            let out = match kind {
                NEW_TOPIC => {
                    let len = r.length("generator topic", 1)?;
                    let raw = r.take(len, "generator topic")?;
                    let text = std::str::from_utf8(raw).map_err(|_| WireError::TopicNotUtf8)?;
                    if !self.sealed {
                        if self.topics.len() > usize::from(u16::MAX) {
                            return Err(WireError::TooManyTopics);
                        }
                        self.topics.push(Topic::new(text)?);
                    }
                    None
                }
                DATA_MESSAGE | COMMAND_MESSAGE => {
                    let id = r.u16("generator topic id")?;
                    let topic = self
                        .topics
                        .get(usize::from(id))
                        .cloned()
                        .ok_or(WireError::UnknownTopicId(id))?;
                    let mut budget = self.limits.max_entry_size;
                    let mut s = Synth {
                        r: &mut r,
                        version: self.version,
                        rng: &mut self.rng,
                        budget: &mut budget,
                        max_depth: self.limits.max_depth,
                        random_strings: false,
                    };
                    if kind == DATA_MESSAGE {
                        let data = s.data(0)?;
                        if !self.sealed {
                            self.data_entries += 1;
                        }
                        Some(GeneratorEntry::Data { topic, data })
                    } else {
                        let command = s.command()?;
                        if !self.sealed {
                            match command {
                                Some(_) => self.command_entries += 1,
                                None => self.skipped += 1,
                            }
                        }
                        command.map(|command| GeneratorEntry::Command { topic, command })
                    }
                }
                other => return Err(WireError::UnknownGeneratorEntry(other)),
            };
            self.pos = self.bytes.len() - r.remaining();
            if out.is_some() {
                return Ok(out);
            }
        }
    }
}

impl Iterator for GeneratorReader<'_> {
    type Item = Result<GeneratorEntry, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.entry() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Makes up values of recorded shapes.
struct Synth<'r, 'a> {
    r: &'r mut Reader<'a>,
    version: u8,
    rng: &'r mut MinStd,
    budget: &'r mut usize,
    max_depth: usize,
    /// Strings of random characters instead of `x` (when drawing again after a collision).
    random_strings: bool,
}

/// How often a set element or table key is re-drawn when it collides with an earlier one.
const MAX_REDRAWS: usize = 64;

impl Synth<'_, '_> {
    fn spend(&mut self, n: usize) -> Result<(), WireError> {
        match self.budget.checked_sub(n) {
            Some(left) => {
                *self.budget = left;
                Ok(())
            }
            None => Err(WireError::GeneratorEntryTooLarge),
        }
    }

    fn size(&mut self, context: &'static str) -> Result<usize, WireError> {
        let n = self.r.u32(context)? as usize;
        // Every element is worth at least a byte of the budget, so a declared size cannot make
        // us loop (or allocate) beyond it.
        if n > *self.budget {
            return Err(WireError::GeneratorEntryTooLarge);
        }
        Ok(n)
    }

    /// `n` bytes of made-up text: `x`s, as Broker, or random printable characters.
    fn text(&mut self, n: usize) -> Result<Vec<u8>, WireError> {
        self.spend(n)?;
        Ok(if self.random_strings {
            (0..n).map(|_| self.rng.char()).collect()
        } else {
            vec![b'x'; n]
        })
    }

    fn data(&mut self, depth: usize) -> Result<Data, WireError> {
        let tag = self.r.u8("generator data type")?;
        let t = type_of(self.version, tag)?;
        self.of_type(t, depth)
    }

    fn of_type(&mut self, t: DataType, depth: usize) -> Result<Data, WireError> {
        if depth > self.max_depth {
            return Err(WireError::TooDeep {
                max: self.max_depth,
            });
        }
        self.spend(1)?;
        let rng = &mut *self.rng;
        Ok(match t {
            DataType::None => Data::None,
            DataType::Boolean => Data::Boolean(rng.next() % 2 != 0),
            DataType::Count => Data::Count(u64::from(rng.next())),
            DataType::Integer => Data::Integer(i64::from(rng.next())),
            DataType::Real => Data::Real(f64::from(rng.next())),
            DataType::String => {
                let n = self.size("generator string length")?;
                Data::String(self.text(n)?.into())
            }
            DataType::Address => Data::Address(random_address(rng)),
            DataType::Subnet => {
                let a = random_address(rng);
                let len = rng.byte() % 129;
                // A length of at most 128 always makes a subnet.
                Data::Subnet(Subnet::from_raw(a, len).unwrap_or_default())
            }
            DataType::Port => {
                let number = u16::from_be_bytes([rng.byte(), rng.byte()]);
                let protocol = Protocol::from_u8(rng.byte() % 4).unwrap_or(Protocol::Unknown);
                Data::Port(Port::new(number, protocol))
            }
            DataType::Timestamp => Data::Timestamp(Timestamp::from_nanos(i64::from(rng.next()))),
            DataType::Timespan => Data::Timespan(Timespan::from_nanos(i64::from(rng.next()))),
            DataType::EnumValue => {
                let n = self.size("generator enum name length")?;
                Data::EnumValue(EnumValue::new(self.text(n)?))
            }
            DataType::Vector => {
                let n = self.size("generator vector size")?;
                let mut xs = Vec::new();
                for _ in 0..n {
                    xs.push(self.data(depth + 1)?);
                }
                Data::Vector(xs)
            }
            DataType::Set => {
                let n = self.size("generator set size")?;
                let mut xs = BTreeSet::new();
                for _ in 0..n {
                    let mut x = self.data(depth + 1)?;
                    let mut tries = 0;
                    while xs.contains(&x) {
                        tries += 1;
                        if tries > MAX_REDRAWS {
                            return Err(WireError::GeneratorCannotDraw("set element"));
                        }
                        x = self.redraw(&x, depth + 1)?;
                    }
                    xs.insert(x);
                }
                Data::Set(xs)
            }
            DataType::Table => {
                let n = self.size("generator table size")?;
                let mut xs = BTreeMap::new();
                for _ in 0..n {
                    let mut k = self.data(depth + 1)?;
                    let v = self.data(depth + 1)?;
                    let mut tries = 0;
                    while xs.contains_key(&k) {
                        tries += 1;
                        if tries > MAX_REDRAWS {
                            return Err(WireError::GeneratorCannotDraw("table key"));
                        }
                        k = self.redraw(&k, depth + 1)?;
                    }
                    xs.insert(k, v);
                }
                Data::Table(xs)
            }
        })
    }

    /// A new value of `x`'s shape, for a set element or table key that collided with an
    /// earlier one: its shape drawn again (as Broker's `recreate`), strings with random
    /// characters instead of `x`.
    fn redraw(&mut self, x: &Data, depth: usize) -> Result<Data, WireError> {
        let mut buf = Vec::new();
        shape(self.version, x, &mut buf);
        let mut r = Reader::new(&buf);
        let mut s = Synth {
            r: &mut r,
            version: self.version,
            rng: &mut *self.rng,
            budget: &mut *self.budget,
            max_depth: self.max_depth,
            random_strings: true,
        };
        s.data(depth)
    }

    /// A command of the recorded kind; `None` for version 1's `none`.
    fn command(&mut self) -> Result<Option<Command>, WireError> {
        let tag = self.r.u8("generator command")?;
        let p = EntityId::NIL;
        // Version 1's mutations take version 2's tags; its other commands become their
        // counterparts: Broker 2.0's clone handshake, in today's terms, is a clone asking for
        // the master's state with a nack of 0 and the master answering with ack_clone (which
        // carries what `set` carried); heartbeats stand in for sync points.
        let tag = if self.version == 1 {
            match tag {
                v1cmd::PUT => 0,
                v1cmd::PUT_UNIQUE => 1,
                v1cmd::ERASE => 3,
                v1cmd::EXPIRE => 4,
                v1cmd::ADD => 5,
                v1cmd::SUBTRACT => 6,
                v1cmd::CLEAR => 7,
                v1cmd::SNAPSHOT => return Ok(Some(Command::Nack { seqs: vec![0] })),
                v1cmd::SNAPSHOT_SYNC => {
                    return Ok(Some(Command::Keepalive {
                        seq: u64::from(self.rng.next()),
                    }))
                }
                v1cmd::SET => {
                    let n = self.size("generator set command size")?;
                    let mut state = BTreeMap::new();
                    for _ in 0..n {
                        let k = self.data(1)?;
                        let v = self.data(1)?;
                        state.insert(k, v);
                    }
                    return Ok(Some(Command::AckClone {
                        offset: 0,
                        heartbeat_interval: 1,
                        state,
                    }));
                }
                v1cmd::NONE => return Ok(None),
                other => return Err(WireError::UnknownCommand(other)),
            }
        } else {
            tag
        };
        Ok(Some(match tag {
            0 => Command::Put {
                key: self.data(0)?,
                value: self.data(0)?,
                expiry: None,
                publisher: p,
            },
            1 => Command::PutUnique {
                key: self.data(0)?,
                value: self.data(0)?,
                expiry: None,
                who: p,
                req_id: 0,
                publisher: p,
            },
            2 => Command::PutUniqueResult {
                inserted: self.rng.next() % 2 != 0,
                who: p,
                req_id: 0,
                publisher: p,
            },
            3 => Command::Erase {
                key: self.data(0)?,
                publisher: p,
            },
            4 => Command::Expire {
                key: self.data(0)?,
                publisher: p,
            },
            5 => {
                let key = self.data(0)?;
                let value = self.data(0)?;
                // Version 1 records the initial type; version 2 does not (its value's type).
                let init_type = if self.version == 1 {
                    type_of(1, self.r.u8("generator add init type")?)?
                } else {
                    value.data_type()
                };
                Command::Add {
                    init_type,
                    key,
                    value,
                    expiry: None,
                    publisher: p,
                }
            }
            6 => Command::Subtract {
                key: self.data(0)?,
                value: self.data(0)?,
                expiry: None,
                publisher: p,
            },
            7 => Command::Clear { publisher: p },
            8 => Command::AttachWriter {
                offset: u64::from(self.rng.next()),
                heartbeat_interval: 1,
            },
            9 => Command::Keepalive {
                seq: u64::from(self.rng.next()),
            },
            10 => Command::CumulativeAck {
                seq: u64::from(self.rng.next()),
            },
            11 => {
                let n = self.size("generator nack size")?;
                self.spend(n.saturating_mul(8))?;
                Command::Nack {
                    seqs: (0..n).map(|_| u64::from(self.rng.next())).collect(),
                }
            }
            12 => Command::AckClone {
                offset: u64::from(self.rng.next()),
                heartbeat_interval: 1,
                state: BTreeMap::new(),
            },
            13 => Command::RetransmitFailed {
                seq: u64::from(self.rng.next()),
            },
            other => return Err(WireError::UnknownCommand(other)),
        }))
    }
}

fn random_address(rng: &mut MinStd) -> Address {
    let mut b = [0u8; 16];
    for x in &mut b {
        *x = rng.byte();
    }
    Address::from(std::net::Ipv6Addr::from(b))
}

/// What a generator file holds, as Broker's cluster benchmark's `dump-stats` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeneratorStats {
    /// The file's version.
    pub version: u8,
    /// Data entries.
    pub data_entries: u64,
    /// Command entries.
    pub command_entries: u64,
    /// Version-1 `none` commands (skipped on replay).
    pub skipped: u64,
    /// Entries by topic, in topic order.
    pub by_topic: BTreeMap<String, u64>,
}

impl GeneratorStats {
    /// Reads the whole file (making up content is the price of checking every entry).
    pub fn of(bytes: &[u8]) -> Result<GeneratorStats, WireError> {
        let mut r = GeneratorReader::new(bytes)?;
        let mut by_topic = BTreeMap::new();
        for e in r.by_ref() {
            let e = e?;
            *by_topic.entry(e.topic().as_str().to_owned()).or_insert(0) += 1;
        }
        Ok(GeneratorStats {
            version: r.version(),
            data_entries: r.data_entries(),
            command_entries: r.command_entries(),
            skipped: r.skipped(),
            by_topic,
        })
    }

    /// Data and command entries.
    pub fn entries(&self) -> u64 {
        self.data_entries + self.command_entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(version: u8, body: &[u8]) -> Vec<u8> {
        let mut out = generator_header(version).to_vec();
        out.extend_from_slice(body);
        out
    }

    /// A file introducing topic "t" followed by one data entry of `shape`.
    fn data_file(version: u8, shape: &[u8]) -> Vec<u8> {
        let mut body = vec![NEW_TOPIC, 1, b't', DATA_MESSAGE, 0, 0];
        body.extend_from_slice(shape);
        file(version, &body)
    }

    fn first(bytes: &[u8]) -> Result<GeneratorEntry, WireError> {
        let limits = GeneratorLimits {
            max_entry_size: 1 << 20,
            max_depth: 16,
        };
        GeneratorReader::with_limits(bytes, limits)?
            .next()
            .unwrap_or(Err(WireError::EmptyBatch))
    }

    #[test]
    fn hostile_files_get_their_error_and_nothing_is_allocated_on_a_declared_size() {
        let deep: Vec<u8> = std::iter::repeat_n([14u8, 0, 0, 0, 1], 40)
            .flatten()
            .collect();
        let cases: Vec<(&str, Vec<u8>, WireError)> = vec![
            (
                "short header",
                vec![0xde, 0xc0],
                WireError::truncated("generator file header", 5, 2),
            ),
            (
                "wrong magic",
                b"hello".to_vec(),
                WireError::NotAGeneratorFile(0x6c6c_6568),
            ),
            (
                "version 3",
                file(3, &[]),
                WireError::UnsupportedGeneratorVersion(3),
            ),
            (
                "entry type 3",
                file(2, &[3]),
                WireError::UnknownGeneratorEntry(3),
            ),
            (
                "topic 0 never introduced",
                file(2, &[DATA_MESSAGE, 0, 0, 0]),
                WireError::UnknownTopicId(0),
            ),
            (
                "topic longer than the file",
                file(2, &[NEW_TOPIC, 0x7f]),
                WireError::LengthBeyondInput {
                    context: "generator topic",
                    length: 127,
                    available: 0,
                },
            ),
            (
                "a 4 GiB string in nine bytes",
                data_file(2, &[5, 0xff, 0xff, 0xff, 0xff]),
                WireError::GeneratorEntryTooLarge,
            ),
            (
                "a vector of 4 billion",
                data_file(2, &[14, 0xff, 0xff, 0xff, 0xff]),
                WireError::GeneratorEntryTooLarge,
            ),
            (
                "nested deeper than the limit",
                data_file(2, &deep),
                WireError::TooDeep { max: 16 },
            ),
            (
                "a set of two nils",
                data_file(2, &[12, 0, 0, 0, 2, 0, 0]),
                WireError::GeneratorCannotDraw("set element"),
            ),
            (
                "data type 15",
                data_file(2, &[15]),
                WireError::UnknownDataTag(15),
            ),
            (
                "command 14",
                file(2, &[NEW_TOPIC, 1, b't', COMMAND_MESSAGE, 0, 0, 14]),
                WireError::UnknownCommand(14),
            ),
            (
                "truncated shape",
                data_file(2, &[5, 0, 0]),
                WireError::truncated("generator string length", 4, 2),
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(first(&bytes), Err(want), "{name}");
        }
    }

    #[test]
    fn a_reader_ends_after_an_error() {
        let bytes = file(2, &[9]);
        let mut r = GeneratorReader::new(&bytes).unwrap();
        assert!(r.next().unwrap().is_err());
        assert!(r.next().is_none());
        assert!(r.at_end());
    }

    #[test]
    fn version_one_numbers_types_alphabetically_and_two_in_model_order() {
        // A count: tag 2 in both; a string: 9 in version 1, 5 in version 2.
        for (version, string_tag) in [(1u8, 9u8), (2, 5)] {
            let mut w = GeneratorWriter::new(version);
            let t = Topic::new("t").unwrap();
            w.write_data(&t, &Data::from("abc")).unwrap();
            let bytes = w.take();
            assert_eq!(
                bytes[5..],
                [
                    NEW_TOPIC,
                    1,
                    b't',
                    DATA_MESSAGE,
                    0,
                    0,
                    string_tag,
                    0,
                    0,
                    0,
                    3
                ]
            );
            match first(&bytes).unwrap() {
                GeneratorEntry::Data { data, .. } => assert_eq!(data, Data::from("xxx")),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn sets_and_tables_get_distinct_members_of_the_recorded_shapes() {
        let value: Data = "{T, F}".parse().unwrap();
        let mut w = GeneratorWriter::new(2);
        let t = Topic::new("t").unwrap();
        w.write_data(&t, &value).unwrap();
        let tables: Data = "{{\"ab\" -> 1}, {\"cd\" -> 2}}".parse().unwrap();
        w.write_data(&t, &tables).unwrap();
        let bytes = w.take();
        let got: Vec<Data> = GeneratorReader::new(&bytes)
            .unwrap()
            .map(|e| match e.unwrap() {
                GeneratorEntry::Data { data, .. } => data,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got[0], value);
        let Data::Set(inner) = &got[1] else {
            panic!("{:?}", got[1])
        };
        assert_eq!(inner.len(), 2);
    }

    fn real(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/data/generator/{name}.dat",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn files_written_by_broker_read_completely_with_brokers_counts() {
        // Entries per node as Broker's generate-config counted them for this recording
        // (the logger received 33 messages from the manager and 16 from the proxy, which
        // are every entry but the proxy's two on the manager's and worker's node topics).
        for (name, data, commands) in [("logger", 3, 3), ("manager", 33, 9), ("proxy", 18, 3)] {
            let stats = GeneratorStats::of(&real(name)).unwrap();
            assert_eq!(stats.version, 1, "{name}");
            assert_eq!(
                (stats.data_entries, stats.command_entries, stats.skipped),
                (data, commands, 0),
                "{name}"
            );
        }
        let manager = GeneratorStats::of(&real("manager")).unwrap();
        assert_eq!(manager.by_topic["zeek/cluster/node/logger-1/"], 10);
        assert_eq!(manager.by_topic["zeek/logs/Broker::LOG"], 6);
    }

    #[test]
    fn rewind_replays_the_same_shapes_and_keeps_the_first_pass_counts() {
        let bytes = real("proxy");
        let mut r = GeneratorReader::new(&bytes).unwrap();
        let first: Vec<String> = r.by_ref().map(|e| e.unwrap().topic().to_string()).collect();
        r.rewind();
        let second: Vec<String> = r.by_ref().map(|e| e.unwrap().topic().to_string()).collect();
        assert_eq!(first, second);
        assert_eq!(r.data_entries() + r.command_entries(), first.len() as u64);
        assert_eq!(r.topics().len(), 11);
    }
}
