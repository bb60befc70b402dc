//! The error type of this crate.

/// Why bytes could not be decoded (or a value could not be encoded).
///
/// Every problem with input from a peer is one of these; decoding never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ended before the value did.
    #[error("truncated input: {context} needs {needed} more bytes, {available} available")]
    Truncated {
        /// What was being read.
        context: &'static str,
        /// Bytes it needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A length field announces more than the input holds.
    #[error("{context} length {length} exceeds the {available} bytes left")]
    LengthBeyondInput {
        /// What the length belongs to.
        context: &'static str,
        /// The announced length (elements or bytes).
        length: u64,
        /// Bytes left in the input.
        available: usize,
    },
    /// A frame longer than the configured maximum.
    #[error("frame of {length} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's announced length.
        length: u64,
        /// The configured limit.
        max: usize,
    },
    /// A varint with more than 10 bytes.
    #[error("varint longer than 10 bytes")]
    VarintTooLong,
    /// A varint whose value does not fit in 64 bits.
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    /// Containers nested deeper than the configured limit.
    #[error("containers nested deeper than {max}")]
    TooDeep {
        /// The configured limit.
        max: usize,
    },
    /// A data tag outside 0..=14.
    #[error("unknown data type tag {0}")]
    UnknownDataTag(u8),
    /// A peer message type the protocol does not define (or not in this phase).
    #[error("unknown message type {0}")]
    UnknownMessageType(u8),
    /// A store command index outside the defined ones.
    #[error("unknown store command {0}")]
    UnknownCommand(u8),
    /// A port protocol outside 0..=3.
    #[error("unknown port protocol {0}")]
    UnknownProtocol(u8),
    /// A subnet prefix length over 128.
    #[error("subnet prefix length {0} exceeds 128")]
    InvalidPrefixLength(u8),
    /// An optional field's flag that is neither 0 nor 1.
    #[error("invalid optional flag {0}")]
    InvalidFlag(u8),
    /// A set holding one element twice, or a table holding one key twice.
    #[error("duplicate {0} in encoded {1}")]
    Duplicate(&'static str, &'static str),
    /// Bytes left over after a complete value.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// A topic that is not valid UTF-8.
    #[error("topic is not valid UTF-8")]
    TopicNotUtf8,
    /// A topic longer than the 65,535 bytes its length field allows.
    #[error("topic of {0} bytes exceeds 65535")]
    TopicTooLong(usize),
    /// Text that is not an endpoint id in UUID form.
    #[error("invalid endpoint id {0:?}")]
    InvalidId(String),
    /// A container or string too large to encode (lengths are 32-bit on Broker's wire).
    #[error("{0} too large to encode")]
    TooLarge(&'static str),
    /// A `routed_batch` that declares no values.
    #[error("a batch of no values")]
    EmptyBatch,
    /// A file that does not start with the generator file magic (read little-endian).
    #[error("not a generator file (magic {0:#010x}, expected 0x2eecc0de)")]
    NotAGeneratorFile(u32),
    /// A generator file of a version other than 1 or 2.
    #[error("generator file version {0} (this reader knows 1 and 2)")]
    UnsupportedGeneratorVersion(u8),
    /// A generator file entry type other than new topic, data or command.
    #[error("unknown generator file entry type {0}")]
    UnknownGeneratorEntry(u8),
    /// A generator file entry that names a topic number not yet introduced.
    #[error("generator file entry names topic {0}, which was never introduced")]
    UnknownTopicId(u16),
    /// More than 65,536 topics in one generator file (their numbers are 16-bit).
    #[error("more than 65536 topics in one generator file")]
    TooManyTopics,
    /// A recorded shape whose made-up content would exceed the reader's limit.
    #[error("a generator file entry declares more content than the limit allows")]
    GeneratorEntryTooLarge,
    /// A set or table shape with more elements than distinct values of their type.
    #[error("cannot make up a distinct {0} for the recorded shape")]
    GeneratorCannotDraw(&'static str),
    /// A command that a generator file of this version cannot record.
    #[error("{0} cannot be recorded in a version-{1} generator file")]
    NotInGeneratorVersion(&'static str, u8),
}

impl WireError {
    #[cold]
    pub(crate) fn truncated(context: &'static str, needed: usize, available: usize) -> Self {
        WireError::Truncated {
            context,
            needed,
            available,
        }
    }
}
