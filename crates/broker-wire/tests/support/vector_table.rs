//! The messages and literals behind the vectors of `docs/protocol.md`: used by the test that
//! checks the document (`tests/vectors.rs`) and by the example that prints the vectors as
//! the implementation encodes them (`examples/print_vectors.rs`, `cargo xtask vectors`).

use std::collections::BTreeMap;

use broker_data::{Data, DataType, Timespan};
use broker_wire::{
    bye_token, Command, EndpointId, EntityId, Envelope, Handshake, InternalCommand, LinkState,
    Payload, Topic, MAGIC,
};
use bytes::Bytes;

/// Bytes as spaced lowercase hex, as the document writes them.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) const DATA_LITERALS: &[&str] = &[
    "nil",
    "T",
    "F",
    "0",
    "1234567890",
    "18446744073709551615",
    "+1234567890",
    "-1234567890",
    "1.0",
    "-1.0",
    "-0.0",
    "\"\"",
    "\"hello world\"",
    "\"\\xff\\x00\"",
    "192.168.9.8",
    "2001:db8::1",
    "192.168.9.0/24",
    "2001:db8::/32",
    "8080/tcp",
    "9000/udp",
    "8/icmp",
    "0/?",
    "@1234567890ns",
    "1234567890ns",
    "-1ns",
    "foobar",
    "{}",
    "{F, 1, \"hello world\"}",
    "{->}",
    "{1 -> \"hello\", 2 -> \"world\"}",
    "()",
    "(F, 1, \"hello world\")",
    "((()))",
];

fn id(n: u8) -> EndpointId {
    EndpointId::from_bytes([n; 16])
}

fn entity(n: u8, object: u64) -> EntityId {
    EntityId {
        endpoint: id(n),
        object,
    }
}

fn internal(content: Command) -> InternalCommand {
    InternalCommand {
        seq: 7,
        sender: entity(0xaa, 1),
        receiver: entity(0xbb, 2),
        content,
    }
}

fn cmd(content: Command) -> Msg {
    Msg::Command(internal(content))
}

fn env(topic: &str, payload: Payload) -> Envelope {
    Envelope {
        sender: id(0xaa),
        receiver: EndpointId::NIL,
        ttl: 20,
        topic: Topic::new(topic).unwrap(),
        payload,
    }
}

pub(crate) enum Msg {
    Handshake(Handshake),
    Envelope(Envelope),
    Command(InternalCommand),
}

/// The messages the document's vectors name.
pub(crate) fn message(name: &str) -> Option<Msg> {
    let key = || Data::from("foo");
    let value = || Data::from("bar");
    let publisher = entity(0xaa, 42);
    let store = "foo/<$>/data/master";
    Some(match name {
        "hello" => Msg::Handshake(Handshake::hello(id(0xaa), 1, 1)),
        "probe" => Msg::Handshake(Handshake::probe()),
        "version_select" => Msg::Handshake(Handshake::VersionSelect {
            magic: MAGIC,
            sender: id(0xaa),
            version: 1,
        }),
        "drop_conn" => Msg::Handshake(Handshake::DropConn {
            magic: MAGIC,
            sender: id(0xaa),
            code: 8,
            description: Bytes::from_static(b"bye"),
        }),
        "originator_syn" => Msg::Handshake(Handshake::OriginatorSyn {
            filter: vec![Topic::new("/a").unwrap(), Topic::new("zeek/").unwrap()],
        }),
        "responder_syn_ack" => Msg::Handshake(Handshake::ResponderSynAck { filter: vec![] }),
        "originator_ack" => Msg::Handshake(Handshake::OriginatorAck),
        "data" => Msg::Envelope(env("/test", Payload::Data(Data::Count(42)))),
        "routing_update" => Msg::Envelope(env(
            "<$>",
            Payload::RoutingUpdate(vec![Topic::new("/a").unwrap()]),
        )),
        "ping" => Msg::Envelope(Envelope {
            receiver: id(0xbb),
            ..env("<$>", Payload::Ping(bye_token(1)))
        }),
        "pong" => Msg::Envelope(Envelope {
            receiver: id(0xbb),
            ..env("<$>", Payload::Pong(bye_token(1)))
        }),
        "command" => Msg::Envelope(env(
            store,
            Payload::Command(internal(Command::Clear { publisher })),
        )),
        "routed_data" => Msg::Envelope(env(
            "/test",
            Payload::RoutedData {
                origin: id(0xcc),
                seq: 5,
                data: Data::Count(42),
            },
        )),
        "routed_batch" => Msg::Envelope(env(
            "/test",
            Payload::RoutedBatch {
                origin: id(0xcc),
                seq: 7,
                values: vec![Data::Count(42).into(), Data::Count(43).into()],
            },
        )),
        "routed_command" => Msg::Envelope(env(
            store,
            Payload::RoutedCommand {
                origin: id(0xcc),
                seq: 6,
                command: internal(Command::Clear { publisher }),
            },
        )),
        "link_state" => Msg::Envelope(env(
            "<$>",
            Payload::LinkState(LinkState {
                origin: id(0xaa),
                incarnation: 1,
                version: 2,
                forwarding: true,
                neighbors: vec![id(0xbb)],
                filter: vec![Topic::new("/a").unwrap()],
                stubs: vec![(id(0xdd), vec![Topic::new("zeek/").unwrap()])],
            }),
        )),
        "command/put" => cmd(Command::Put {
            key: key(),
            value: value(),
            expiry: None,
            publisher,
        }),
        "command/put_unique" => cmd(Command::PutUnique {
            key: key(),
            value: value(),
            expiry: Some(Timespan::from_nanos(2500)),
            who: entity(0xaa, 42),
            req_id: 12345,
            publisher: entity(0xaa, 23),
        }),
        "command/put_unique_result" => cmd(Command::PutUniqueResult {
            inserted: true,
            who: entity(0xaa, 42),
            req_id: 12345,
            publisher: entity(0xaa, 23),
        }),
        "command/erase" => cmd(Command::Erase {
            key: key(),
            publisher,
        }),
        "command/expire" => cmd(Command::Expire {
            key: key(),
            publisher,
        }),
        "command/add" => cmd(Command::Add {
            key: key(),
            value: Data::Integer(1),
            init_type: DataType::Integer,
            expiry: None,
            publisher,
        }),
        "command/subtract" => cmd(Command::Subtract {
            key: key(),
            value: Data::Integer(1),
            expiry: None,
            publisher,
        }),
        "command/clear" => cmd(Command::Clear { publisher }),
        "command/attach_writer" => cmd(Command::AttachWriter {
            offset: 111,
            heartbeat_interval: 222,
        }),
        "command/keepalive" => cmd(Command::Keepalive { seq: 42 }),
        "command/cumulative_ack" => cmd(Command::CumulativeAck { seq: 111 }),
        "command/nack" => cmd(Command::Nack {
            seqs: vec![111, 222, 333],
        }),
        "command/ack_clone" => cmd(Command::AckClone {
            offset: 111,
            heartbeat_interval: 222,
            state: BTreeMap::from([(key(), value())]),
        }),
        "command/retransmit_failed" => cmd(Command::RetransmitFailed { seq: 42 }),
        _ => return None,
    })
}

pub(crate) const MESSAGE_NAMES: &[&str] = &[
    "hello",
    "probe",
    "version_select",
    "drop_conn",
    "originator_syn",
    "responder_syn_ack",
    "originator_ack",
    "data",
    "command",
    "routing_update",
    "ping",
    "pong",
    "command/put",
    "command/put_unique",
    "command/put_unique_result",
    "command/erase",
    "command/expire",
    "command/add",
    "command/subtract",
    "command/clear",
    "command/attach_writer",
    "command/keepalive",
    "command/cumulative_ack",
    "command/nack",
    "command/ack_clone",
    "command/retransmit_failed",
    "routed_data",
    "routed_command",
    "link_state",
    "routed_batch",
];

pub(crate) fn encode_msg(m: &Msg) -> Vec<u8> {
    let mut out = Vec::new();
    match m {
        Msg::Handshake(h) => h.encode(&mut out),
        Msg::Envelope(e) => e.encode(&mut out),
        Msg::Command(c) => c.encode(&mut out),
    }
    out
}
