//! Broker's error codes (`ec`) and status codes (`sc`), with Broker's numbering and names.
//!
//! Error codes travel on the wire in `drop_conn`; both appear in the status and error events
//! endpoints report.

use std::fmt;

/// Broker's error codes (`broker::ec`), numbered as in Broker.
///
/// ```
/// use broker_wire::ErrorCode;
/// assert_eq!(ErrorCode::from_u8(2), Some(ErrorCode::PeerIncompatible));
/// assert_eq!(ErrorCode::PeerIncompatible.name(), "peer_incompatible");
/// assert_eq!(ErrorCode::NoSuchKey as u8, 9);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `none`
    None = 0,
    /// `unspecified`
    Unspecified = 1,
    /// `peer_incompatible`
    PeerIncompatible = 2,
    /// `peer_invalid`
    PeerInvalid = 3,
    /// `peer_unavailable`
    PeerUnavailable = 4,
    /// `peer_disconnect_during_handshake`
    PeerDisconnectDuringHandshake = 5,
    /// `peer_timeout`
    PeerTimeout = 6,
    /// `master_exists`
    MasterExists = 7,
    /// `no_such_master`
    NoSuchMaster = 8,
    /// `no_such_key`
    NoSuchKey = 9,
    /// `request_timeout`
    RequestTimeout = 10,
    /// `type_clash`
    TypeClash = 11,
    /// `invalid_data`
    InvalidData = 12,
    /// `backend_failure`
    BackendFailure = 13,
    /// `stale_data`
    StaleData = 14,
    /// `cannot_open_file`
    CannotOpenFile = 15,
    /// `cannot_write_file`
    CannotWriteFile = 16,
    /// `invalid_topic_key`
    InvalidTopicKey = 17,
    /// `end_of_file`
    EndOfFile = 18,
    /// `invalid_tag`
    InvalidTag = 19,
    /// `invalid_message`
    InvalidMessage = 20,
    /// `invalid_status`
    InvalidStatus = 21,
    /// `conversion_failed`
    ConversionFailed = 22,
    /// `consumer_exists`
    ConsumerExists = 23,
    /// `connection_timeout`
    ConnectionTimeout = 24,
    /// `bad_member_function_call`
    BadMemberFunctionCall = 25,
    /// `repeated_request_id`
    RepeatedRequestId = 26,
    /// `broken_clone`
    BrokenClone = 27,
    /// `shutting_down`
    ShuttingDown = 28,
    /// `invalid_peering_request`
    InvalidPeeringRequest = 29,
    /// `repeated_peering_handshake_request`
    RepeatedPeeringHandshakeRequest = 30,
    /// `unexpected_handshake_message`
    UnexpectedHandshakeMessage = 31,
    /// `invalid_handshake_state`
    InvalidHandshakeState = 32,
    /// `no_path_to_peer`
    NoPathToPeer = 33,
    /// `no_connector_available`
    NoConnectorAvailable = 34,
    /// `cannot_open_resource`
    CannotOpenResource = 35,
    /// `serialization_failed`
    SerializationFailed = 36,
    /// `deserialization_failed`
    DeserializationFailed = 37,
    /// `wrong_magic_number`
    WrongMagicNumber = 38,
    /// `redundant_connection`
    RedundantConnection = 39,
    /// `logic_error`
    LogicError = 40,
    /// `invalid_json`
    InvalidJson = 41,
}

impl ErrorCode {
    /// The code for Broker's number, if it names one.
    pub fn from_u8(n: u8) -> Option<ErrorCode> {
        Some(match n {
            0 => ErrorCode::None,
            1 => ErrorCode::Unspecified,
            2 => ErrorCode::PeerIncompatible,
            3 => ErrorCode::PeerInvalid,
            4 => ErrorCode::PeerUnavailable,
            5 => ErrorCode::PeerDisconnectDuringHandshake,
            6 => ErrorCode::PeerTimeout,
            7 => ErrorCode::MasterExists,
            8 => ErrorCode::NoSuchMaster,
            9 => ErrorCode::NoSuchKey,
            10 => ErrorCode::RequestTimeout,
            11 => ErrorCode::TypeClash,
            12 => ErrorCode::InvalidData,
            13 => ErrorCode::BackendFailure,
            14 => ErrorCode::StaleData,
            15 => ErrorCode::CannotOpenFile,
            16 => ErrorCode::CannotWriteFile,
            17 => ErrorCode::InvalidTopicKey,
            18 => ErrorCode::EndOfFile,
            19 => ErrorCode::InvalidTag,
            20 => ErrorCode::InvalidMessage,
            21 => ErrorCode::InvalidStatus,
            22 => ErrorCode::ConversionFailed,
            23 => ErrorCode::ConsumerExists,
            24 => ErrorCode::ConnectionTimeout,
            25 => ErrorCode::BadMemberFunctionCall,
            26 => ErrorCode::RepeatedRequestId,
            27 => ErrorCode::BrokenClone,
            28 => ErrorCode::ShuttingDown,
            29 => ErrorCode::InvalidPeeringRequest,
            30 => ErrorCode::RepeatedPeeringHandshakeRequest,
            31 => ErrorCode::UnexpectedHandshakeMessage,
            32 => ErrorCode::InvalidHandshakeState,
            33 => ErrorCode::NoPathToPeer,
            34 => ErrorCode::NoConnectorAvailable,
            35 => ErrorCode::CannotOpenResource,
            36 => ErrorCode::SerializationFailed,
            37 => ErrorCode::DeserializationFailed,
            38 => ErrorCode::WrongMagicNumber,
            39 => ErrorCode::RedundantConnection,
            40 => ErrorCode::LogicError,
            41 => ErrorCode::InvalidJson,
            _ => return None,
        })
    }

    /// Broker's name of the code (`peer_incompatible`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Unspecified => "unspecified",
            Self::PeerIncompatible => "peer_incompatible",
            Self::PeerInvalid => "peer_invalid",
            Self::PeerUnavailable => "peer_unavailable",
            Self::PeerDisconnectDuringHandshake => "peer_disconnect_during_handshake",
            Self::PeerTimeout => "peer_timeout",
            Self::MasterExists => "master_exists",
            Self::NoSuchMaster => "no_such_master",
            Self::NoSuchKey => "no_such_key",
            Self::RequestTimeout => "request_timeout",
            Self::TypeClash => "type_clash",
            Self::InvalidData => "invalid_data",
            Self::BackendFailure => "backend_failure",
            Self::StaleData => "stale_data",
            Self::CannotOpenFile => "cannot_open_file",
            Self::CannotWriteFile => "cannot_write_file",
            Self::InvalidTopicKey => "invalid_topic_key",
            Self::EndOfFile => "end_of_file",
            Self::InvalidTag => "invalid_tag",
            Self::InvalidMessage => "invalid_message",
            Self::InvalidStatus => "invalid_status",
            Self::ConversionFailed => "conversion_failed",
            Self::ConsumerExists => "consumer_exists",
            Self::ConnectionTimeout => "connection_timeout",
            Self::BadMemberFunctionCall => "bad_member_function_call",
            Self::RepeatedRequestId => "repeated_request_id",
            Self::BrokenClone => "broken_clone",
            Self::ShuttingDown => "shutting_down",
            Self::InvalidPeeringRequest => "invalid_peering_request",
            Self::RepeatedPeeringHandshakeRequest => "repeated_peering_handshake_request",
            Self::UnexpectedHandshakeMessage => "unexpected_handshake_message",
            Self::InvalidHandshakeState => "invalid_handshake_state",
            Self::NoPathToPeer => "no_path_to_peer",
            Self::NoConnectorAvailable => "no_connector_available",
            Self::CannotOpenResource => "cannot_open_resource",
            Self::SerializationFailed => "serialization_failed",
            Self::DeserializationFailed => "deserialization_failed",
            Self::WrongMagicNumber => "wrong_magic_number",
            Self::RedundantConnection => "redundant_connection",
            Self::LogicError => "logic_error",
            Self::InvalidJson => "invalid_json",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Broker's status codes (`broker::sc`), numbered as in Broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum StatusCode {
    /// `unspecified`
    Unspecified = 0,
    /// `peer_added`
    PeerAdded = 1,
    /// `peer_removed`
    PeerRemoved = 2,
    /// `peer_lost`
    PeerLost = 3,
    /// `endpoint_discovered`
    EndpointDiscovered = 4,
    /// `endpoint_unreachable`
    EndpointUnreachable = 5,
}

impl StatusCode {
    /// Broker's name of the code (`peer_added`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::PeerAdded => "peer_added",
            Self::PeerRemoved => "peer_removed",
            Self::PeerLost => "peer_lost",
            Self::EndpointDiscovered => "endpoint_discovered",
            Self::EndpointUnreachable => "endpoint_unreachable",
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_round_trips() {
        for n in 0..=41u8 {
            let code = ErrorCode::from_u8(n).unwrap();
            assert_eq!(code as u8, n);
        }
        assert_eq!(ErrorCode::from_u8(42), None);
        assert_eq!(ErrorCode::RequestTimeout as u8, 10);
        assert_eq!(ErrorCode::InvalidMessage as u8, 20);
        assert_eq!(ErrorCode::RepeatedPeeringHandshakeRequest as u8, 30);
        assert_eq!(ErrorCode::LogicError as u8, 40);
        assert_eq!(StatusCode::EndpointUnreachable as u8, 5);
    }
}
