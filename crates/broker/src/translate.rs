//! Pure translation between router messages and Broker's wire envelopes, both ways: what a
//! reader decoded becomes a router message (and runs of publications become batches), and what
//! the router sends becomes bytes for a peer of either protocol version. No I/O, no locks.

use std::sync::Arc;

use broker_data::SharedData;
use broker_routing::{Content, Message, PeerKind, Publication};
use broker_wire::{
    encode_envelope, encode_frame, encode_routed_batch, EndpointId, Envelope, Payload, PayloadRef,
    Topic,
};
use bytes::BytesMut;

use crate::error::ConnError;

/// Most values in one batch publication: batching pays off long before this, and a chunk for a
/// connection's writer (which takes whole batches) stays small.
pub(crate) const MAX_BATCH: usize = 64;

/// Turns a decoded envelope into a router message, or says why the peer misbehaved.
pub(crate) fn to_message(env: Envelope, kind: PeerKind) -> Result<Message, ConnError> {
    let Envelope {
        sender,
        receiver,
        ttl,
        topic,
        payload,
    } = env;
    let publication = |content: Content, origin: EndpointId, seq: u64| Publication {
        sender,
        receiver,
        origin,
        seq,
        ttl,
        topic,
        content,
    };
    Ok(match (payload, kind) {
        (Payload::Data(d), PeerKind::Broker) => Message::Publication(publication(
            Content::Data(SharedData::from(d)),
            EndpointId::NIL,
            0,
        )),
        (Payload::Command(c), PeerKind::Broker) => Message::Publication(publication(
            Content::Command(Arc::new(c)),
            EndpointId::NIL,
            0,
        )),
        (Payload::RoutingUpdate(f), PeerKind::Broker) => Message::RoutingUpdate(Arc::new(f)),
        (Payload::RoutedData { origin, seq, data }, PeerKind::Routed) => Message::Publication(
            publication(Content::Data(SharedData::from(data)), origin, seq),
        ),
        (
            Payload::RoutedCommand {
                origin,
                seq,
                command,
            },
            PeerKind::Routed,
        ) => Message::Publication(publication(
            Content::Command(Arc::new(command)),
            origin,
            seq,
        )),
        (Payload::LinkState(ls), PeerKind::Routed) => Message::LinkState(Arc::new(ls)),
        (
            Payload::RoutedBatch {
                origin,
                seq,
                mut values,
            },
            PeerKind::Routed,
        ) => {
            let content = match (values.len(), values.pop()) {
                (1, Some(one)) => Content::Data(one),
                (_, Some(last)) => {
                    values.push(last);
                    Content::Batch(Arc::new(values))
                }
                // The decoder refuses empty batches.
                (_, None) => return Err(ConnError::Misbehaved("an empty batch".into())),
            };
            Message::Publication(publication(content, origin, seq))
        }
        (Payload::Ping(b), _) => Message::Ping(b),
        (Payload::Pong(b), _) => Message::Pong(b),
        (p, k) => {
            return Err(ConnError::Misbehaved(format!(
                "{:?} message on a {k:?} connection",
                p.message_type()
            )))
        }
    })
}

/// Joins runs of publications that one batch could have carried — data from the same sender
/// to the same receiver with the same TTL and topic, with consecutive sequence numbers from a
/// routed peer (a plain Broker peer sends none) — into batches, so the core routes each run
/// once. Order and content are unchanged.
pub(crate) fn coalesce(msgs: Vec<Message>) -> Vec<Message> {
    fn joins(run: &Publication, n: usize, p: &Publication) -> bool {
        matches!(p.content, Content::Data(_))
            && n < MAX_BATCH
            && p.sender == run.sender
            && p.receiver == run.receiver
            && p.origin == run.origin
            && p.ttl == run.ttl
            && p.topic == run.topic
            && (p.seq == 0 && run.seq == 0 || p.seq == run.seq + n as u64)
    }
    fn close(out: &mut Vec<Message>, run: Option<(Publication, Vec<SharedData>)>) {
        if let Some((mut head, values)) = run {
            if values.len() > 1 {
                head.content = Content::Batch(Arc::new(values));
            }
            out.push(Message::Publication(head));
        }
    }
    if msgs.len() < 2 {
        return msgs;
    }
    let mut out = Vec::with_capacity(msgs.len());
    let mut run: Option<(Publication, Vec<SharedData>)> = None;
    for m in msgs {
        match m {
            Message::Publication(p) => {
                if let Some((head, values)) = &mut run {
                    if joins(head, values.len(), &p) {
                        if let Content::Data(d) = p.content {
                            values.push(d);
                        }
                        continue;
                    }
                }
                close(&mut out, run.take());
                match &p.content {
                    Content::Data(d) => {
                        let first = d.clone();
                        run = Some((p, vec![first]));
                    }
                    _ => out.push(Message::Publication(p)),
                }
            }
            other => {
                close(&mut out, run.take());
                out.push(other);
            }
        }
    }
    close(&mut out, run);
    out
}

/// About how many bytes of values one `routed_batch` frame carries before the next begins (a
/// batch of large values travels in several frames, each well below any peer's frame limit).
pub(crate) const BATCH_FRAME_BYTES: usize = 64 * 1024;

/// The TTL C++ Broker writes on every message it sends (`defaults::ttl`; it never decrements
/// or checks it).
const BROKER_TTL: u16 = 16;

/// Appends the frames for `msg` to `out` (one, or one per value of a batch), in the peer's
/// protocol version.
pub(crate) fn encode_message(
    out: &mut BytesMut,
    me: EndpointId,
    peer: EndpointId,
    kind: PeerKind,
    msg: &Message,
) {
    let reserved = Topic::from_static(Topic::RESERVED).unwrap_or_default();
    let mut frame = |payload: PayloadRef<'_>, sender, receiver, ttl, topic: &Topic| {
        let _ = encode_frame(out, |b| {
            encode_envelope(b, sender, receiver, ttl, topic, payload)
        });
    };
    match msg {
        Message::Publication(p) => {
            // The `i`-th value published by `p`'s origin from its sequence number on.
            let data = |i: u64, d| match kind {
                PeerKind::Broker => PayloadRef::Data(d),
                PeerKind::Routed => PayloadRef::RoutedData {
                    origin: p.origin,
                    seq: p.seq + i,
                    data: d,
                },
            };
            // Towards a plain Broker peer we are a Broker relay: `sender` is the last hop (C++
            // Broker only uses it to avoid sending a message back where it came from, and
            // forwards anything whose sender is not the peer it would go to), and the TTL is
            // the one Broker writes on every message it sends.
            let (sender, ttl) = match kind {
                PeerKind::Broker => (me, BROKER_TTL),
                PeerKind::Routed => (p.sender, p.ttl),
            };
            let (receiver, topic) = (p.receiver, &p.topic);
            match &p.content {
                Content::Data(d) => frame(data(0, d), sender, receiver, ttl, topic),
                Content::Batch(values) => {
                    // Towards broker-rs: the header, origin and first sequence number once per
                    // frame of values (`routed_batch`).
                    let mut done = 0;
                    if kind == PeerKind::Routed {
                        while done < values.len() {
                            match encode_routed_batch(
                                out,
                                sender,
                                receiver,
                                ttl,
                                topic,
                                p.origin,
                                p.seq + done as u64,
                                &values[done..],
                                BATCH_FRAME_BYTES,
                            ) {
                                Ok(n) => done += n,
                                // Beyond 4 GiB: one frame per value, as below.
                                Err(_) => break,
                            }
                        }
                    }
                    let mut frame =
                        |payload: PayloadRef<'_>, sender, receiver, ttl, topic: &Topic| {
                            let _ = encode_frame(out, |b| {
                                encode_envelope(b, sender, receiver, ttl, topic, payload)
                            });
                        };
                    for (i, d) in (done as u64..).zip(values[done..].iter()) {
                        frame(data(i, d), sender, receiver, ttl, topic);
                    }
                }
                Content::Command(c) => {
                    let payload = match kind {
                        PeerKind::Broker => PayloadRef::Command(c),
                        PeerKind::Routed => PayloadRef::RoutedCommand {
                            origin: p.origin,
                            seq: p.seq,
                            command: c,
                        },
                    };
                    frame(payload, sender, receiver, ttl, topic);
                }
            }
        }
        // Addressed to the peer, as Broker addresses its routing updates.
        Message::RoutingUpdate(f) => frame(
            PayloadRef::RoutingUpdate(f),
            me,
            peer,
            BROKER_TTL,
            &reserved,
        ),
        Message::LinkState(ls) => {
            frame(PayloadRef::LinkState(ls), me, EndpointId::NIL, 1, &reserved)
        }
        Message::Ping(x) => frame(PayloadRef::Ping(x), me, peer, BROKER_TTL, &reserved),
        Message::Pong(x) => frame(PayloadRef::Pong(x), me, peer, BROKER_TTL, &reserved),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_data::Data;
    use bytes::Bytes;

    fn publication(sender: u8, topic: &str, seq: u64, value: u64) -> Message {
        Message::Publication(Publication {
            sender: EndpointId::from_bytes([sender; 16]),
            receiver: EndpointId::NIL,
            origin: EndpointId::from_bytes([sender; 16]),
            seq,
            ttl: 20,
            topic: Topic::new(topic).unwrap(),
            content: Content::Data(SharedData::from(Data::Count(value))),
        })
    }

    /// (sender byte, first seq, values) per message.
    fn shape(msgs: &[Message]) -> Vec<(u8, u64, Vec<u64>)> {
        msgs.iter()
            .map(|m| match m {
                Message::Publication(p) => {
                    let values = match &p.content {
                        Content::Data(d) => vec![d.as_count().unwrap()],
                        Content::Batch(b) => b.iter().map(|d| d.as_count().unwrap()).collect(),
                        Content::Command(_) => vec![],
                    };
                    (p.sender.as_bytes()[0], p.seq, values)
                }
                _ => (0, 0, vec![]),
            })
            .collect()
    }

    #[test]
    fn runs_become_batches_and_nothing_else_changes() {
        let msgs = vec![
            publication(1, "/a", 10, 0),
            publication(1, "/a", 11, 1),
            publication(1, "/a", 12, 2),
            publication(1, "/b", 13, 3), // other topic
            publication(1, "/b", 15, 4), // a gap in the numbering
            publication(2, "/b", 16, 5), // other sender
            Message::Ping(Bytes::from_static(b"x")),
            publication(2, "/b", 17, 6), // not across a control message
            publication(2, "/b", 18, 7),
        ];
        let out = coalesce(msgs);
        assert_eq!(
            shape(&out),
            [
                (1, 10, vec![0, 1, 2]),
                (1, 13, vec![3]),
                (1, 15, vec![4]),
                (2, 16, vec![5]),
                (0, 0, vec![]),
                (2, 17, vec![6, 7]),
            ]
        );
        // Plain Broker peers send no sequence numbers: runs join on everything else.
        let plain = coalesce(vec![publication(3, "/a", 0, 0), publication(3, "/a", 0, 1)]);
        assert_eq!(shape(&plain), [(3, 0, vec![0, 1])]);
        // Batches stay bounded.
        let long = coalesce((0..150).map(|i| publication(1, "/a", 1 + i, i)).collect());
        let sizes: Vec<usize> = shape(&long).iter().map(|s| s.2.len()).collect();
        assert_eq!(sizes, [MAX_BATCH, MAX_BATCH, 150 - 2 * MAX_BATCH]);
    }

    /// Decodes every frame in `bytes` into router messages of a routed connection.
    fn decode_all(mut bytes: BytesMut) -> Vec<Message> {
        let limits = broker_wire::Limits::default();
        let mut frames = broker_wire::FrameDecoder::new(limits.max_frame_len);
        let mut out = Vec::new();
        while let Some(frame) = frames.decode(&mut bytes).unwrap() {
            let env = Envelope::decode(&frame, &limits).unwrap();
            out.push(to_message(env, PeerKind::Routed).unwrap());
        }
        assert!(bytes.is_empty());
        out
    }

    fn batch_of(values: Vec<Data>, seq: u64) -> Message {
        let origin = EndpointId::from_bytes([9; 16]);
        Message::Publication(Publication {
            sender: origin,
            receiver: EndpointId::NIL,
            origin,
            seq,
            ttl: 20,
            topic: Topic::new("/bench/data").unwrap(),
            content: Content::Batch(Arc::new(values.into_iter().map(SharedData::from).collect())),
        })
    }

    #[test]
    fn a_batch_travels_to_broker_rs_in_one_frame_of_about_ten_bytes_a_value() {
        let me = EndpointId::from_bytes([1; 16]);
        let peer = EndpointId::from_bytes([2; 16]);
        let values: Vec<Data> = (0..MAX_BATCH as u64).map(Data::Count).collect();
        let msg = batch_of(values.clone(), 100);
        let mut out = BytesMut::new();
        encode_message(&mut out, me, peer, PeerKind::Routed, &msg);
        let per_value = out.len() as f64 / MAX_BATCH as f64;
        assert!(per_value <= 11.0, "{per_value} bytes a value");
        let got = decode_all(out);
        assert_eq!(shape(&got), [(9, 100, (0..MAX_BATCH as u64).collect())]);
        // Towards C++ Broker nothing changes: one data frame per value.
        let mut out = BytesMut::new();
        encode_message(&mut out, me, peer, PeerKind::Broker, &msg);
        let limits = broker_wire::Limits::default();
        let mut frames = broker_wire::FrameDecoder::new(limits.max_frame_len);
        let mut n = 0;
        while let Some(frame) = frames.decode(&mut out).unwrap() {
            let env = Envelope::decode(&frame, &limits).unwrap();
            assert!(matches!(env.payload, Payload::Data(Data::Count(_))));
            n += 1;
        }
        assert_eq!(n, MAX_BATCH);
    }

    #[test]
    fn a_batch_of_large_values_is_split_into_frames_with_consecutive_numbers() {
        let me = EndpointId::from_bytes([1; 16]);
        let peer = EndpointId::from_bytes([2; 16]);
        // Five values of 30,000 bytes: 64 KiB of values per frame makes three frames.
        let values: Vec<Data> = (0..5)
            .map(|i| Data::from(format!("{i}").repeat(30_000)))
            .collect();
        let msg = batch_of(values.clone(), 7);
        let mut out = BytesMut::new();
        encode_message(&mut out, me, peer, PeerKind::Routed, &msg);
        let got = decode_all(out);
        let seqs: Vec<(u64, usize)> = got
            .iter()
            .map(|m| match m {
                Message::Publication(p) => (p.seq, p.count()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seqs, [(7, 3), (10, 2)]);
        let again: Vec<Data> = got
            .iter()
            .flat_map(|m| match m {
                Message::Publication(Publication {
                    content: Content::Batch(b),
                    ..
                }) => b.iter().map(|d| (**d).clone()).collect::<Vec<_>>(),
                Message::Publication(Publication {
                    content: Content::Data(d),
                    ..
                }) => vec![(**d).clone()],
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(again, values);
    }
}
