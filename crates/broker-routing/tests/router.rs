//! Direct tests of one router: overflow policies, slow-peer isolation, what a plain Broker peer
//! sees, pings, and status sequences.

use std::sync::Arc;
use std::time::Instant;

use broker_data::Data;
use broker_routing::{Config, Content, Event, Message, OverflowPolicy, PeerKind, PeerLoss, Router};
use broker_wire::{EndpointId, StatusCode, Topic};
use bytes::Bytes;

fn id(n: u8) -> EndpointId {
    EndpointId::from_bytes([n; 16])
}

fn topic(s: &str) -> Topic {
    Topic::new(s).unwrap()
}

fn data(n: u64) -> Content {
    Content::Data(Data::Count(n).into())
}

fn events(r: &mut Router) -> Vec<Event> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

fn statuses(r: &mut Router) -> Vec<(StatusCode, EndpointId)> {
    events(r)
        .into_iter()
        .filter_map(|e| match e {
            Event::Status { code, endpoint, .. } => Some((code, endpoint)),
            _ => None,
        })
        .collect()
}

/// A publication's payload numbers (a batch gives all of its values).
fn counts(content: &Content) -> Vec<u64> {
    match content {
        Content::Data(d) => d.as_count().into_iter().collect(),
        Content::Batch(values) => values.iter().filter_map(|d| d.as_count()).collect(),
        Content::Command(_) => Vec::new(),
    }
}

/// Publications queued for `peer`, as payload numbers.
fn queued(r: &mut Router, peer: EndpointId) -> Vec<u64> {
    std::iter::from_fn(|| r.poll_transmit_for(peer))
        .flat_map(|m| match m {
            Message::Publication(p) => counts(&p.content),
            _ => Vec::new(),
        })
        .collect()
}

fn batch(values: std::ops::Range<u64>) -> Content {
    Content::Batch(Arc::new(values.map(|n| Data::Count(n).into()).collect()))
}

/// A router with plain Broker peers (so their filters are known from the handshake).
fn with_broker_peers(config: Config, peers: &[(u8, &str)]) -> Router {
    let now = Instant::now();
    let mut r = Router::new(id(1), 1, config);
    for (n, filter) in peers {
        r.add_peer(now, id(*n), PeerKind::Broker, vec![topic(filter)]);
    }
    r
}

#[test]
fn overflow_disconnect_removes_the_peer_with_a_reason() {
    let now = Instant::now();
    let config = Config {
        peer_buffer_size: 4,
        ..Config::default()
    };
    let mut r = with_broker_peers(config, &[(2, "/t")]);
    while r.poll_transmit().is_some() {}
    events(&mut r);
    for i in 0..5 {
        r.publish(now, topic("/t"), data(i));
    }
    let evs = events(&mut r);
    assert!(evs.iter().any(|e| matches!(e, Event::Disconnect { peer, reason } if *peer == id(2) && reason.contains("backpressure overflow"))), "{evs:?}");
    assert!(evs.iter().any(|e| matches!(e, Event::Status { code: StatusCode::PeerRemoved, endpoint, message } if *endpoint == id(2) && message.contains("backpressure overflow"))), "{evs:?}");
    assert!(r.peer_stats(id(2)).is_none());
    assert_eq!(r.stats().overflow_dropped, 1);
}

/// A router whose one plain Broker peer never drains its 4-message buffer, after publishing
/// 10 messages under `policy`.
fn flooded(policy: OverflowPolicy) -> Router {
    let now = Instant::now();
    let config = Config {
        peer_buffer_size: 4,
        overflow_policy: policy,
        ..Config::default()
    };
    let mut r = with_broker_peers(config, &[(2, "/t")]);
    while r.poll_transmit().is_some() {}
    for i in 0..10 {
        r.publish(now, topic("/t"), data(i));
    }
    r
}

#[test]
fn overflow_drop_oldest_keeps_the_newest() {
    let mut r = flooded(OverflowPolicy::DropOldest);
    assert_eq!(r.peer_stats(id(2)).unwrap().dropped, 6);
    assert_eq!(queued(&mut r, id(2)), [6, 7, 8, 9]);
    assert!(events(&mut r)
        .iter()
        .any(|e| matches!(e, Event::Overflow { dropped: 6, .. })));
}

#[test]
fn overflow_drop_newest_keeps_the_oldest() {
    let mut r = flooded(OverflowPolicy::DropNewest);
    assert_eq!(queued(&mut r, id(2)), [0, 1, 2, 3]);
    assert_eq!(r.stats().overflow_dropped, 6);
}

#[test]
fn a_slow_peer_never_holds_up_the_others() {
    let now = Instant::now();
    for policy in [
        OverflowPolicy::Disconnect,
        OverflowPolicy::DropOldest,
        OverflowPolicy::DropNewest,
    ] {
        let config = Config {
            peer_buffer_size: 8,
            overflow_policy: policy,
            ..Config::default()
        };
        let mut r = with_broker_peers(config, &[(2, "/t"), (3, "/t")]);
        while r.poll_transmit().is_some() {}
        let mut fast = Vec::new();
        for i in 0..100 {
            r.publish(now, topic("/t"), data(i));
            // Peer 3's writer keeps up; peer 2's never runs.
            fast.extend(queued(&mut r, id(3)));
        }
        assert_eq!(fast, (0..100).collect::<Vec<_>>(), "{policy:?}");
        assert!(
            r.peer_stats(id(2)).is_none_or(|s| s.queued <= 8),
            "{policy:?}"
        );
    }
}

#[test]
fn control_messages_survive_overflow() {
    let now = Instant::now();
    let config = Config {
        peer_buffer_size: 2,
        overflow_policy: OverflowPolicy::DropNewest,
        ..Config::default()
    };
    let mut r = with_broker_peers(config, &[(2, "")]);
    while r.poll_transmit().is_some() {}
    for i in 0..5 {
        r.publish(now, topic("/t"), data(i));
    }
    r.subscribe(1, topic("/new"));
    let msgs: Vec<Message> = std::iter::from_fn(|| r.poll_transmit_for(id(2))).collect();
    assert!(
        msgs.iter()
            .any(|m| matches!(m, Message::RoutingUpdate(f) if f.contains(&topic("/new")))),
        "{msgs:?}"
    );
}

#[test]
fn plain_broker_peers_get_only_version_one_messages() {
    let now = Instant::now();
    let mut r = with_broker_peers(Config::default(), &[(2, "/t")]);
    r.add_peer(now, id(3), PeerKind::Routed, vec![]);
    r.subscribe(1, topic("/mine"));
    r.publish(now, topic("/t/x"), data(1));
    let to_broker: Vec<Message> = std::iter::from_fn(|| r.poll_transmit_for(id(2))).collect();
    assert!(
        to_broker
            .iter()
            .all(|m| matches!(m, Message::Publication(_) | Message::RoutingUpdate(_))),
        "{to_broker:?}"
    );
    // It was told our subscription, and got the publication for its own.
    assert!(to_broker
        .iter()
        .any(|m| matches!(m, Message::RoutingUpdate(f) if f.contains(&topic("/mine")))));
    assert!(to_broker
        .iter()
        .any(|m| matches!(m, Message::Publication(p) if p.topic == topic("/t/x"))));
    // The routed peer got link states instead of routing updates.
    let to_routed: Vec<Message> = std::iter::from_fn(|| r.poll_transmit_for(id(3))).collect();
    assert!(to_routed.iter().any(|m| matches!(m, Message::LinkState(_))));
    assert!(!to_routed
        .iter()
        .any(|m| matches!(m, Message::RoutingUpdate(_))));
}

#[test]
fn messages_from_plain_broker_peers_are_delivered_and_forwarded() {
    let now = Instant::now();
    let mut r = with_broker_peers(Config::default(), &[(2, ""), (3, "/t")]);
    r.subscribe(9, topic("/t"));
    while r.poll_transmit().is_some() {}
    events(&mut r);
    let p = broker_routing::Publication {
        sender: id(2),
        receiver: EndpointId::NIL,
        origin: EndpointId::NIL,
        seq: 0,
        ttl: 5,
        topic: topic("/t/x"),
        content: data(7),
    };
    r.handle_message(now, id(2), Message::Publication(p));
    let evs = events(&mut r);
    assert!(evs
        .iter()
        .any(|e| matches!(e, Event::Deliver { subscribers, .. } if subscribers[..] == [9])));
    let fwd: Vec<Message> = std::iter::from_fn(|| r.poll_transmit_for(id(3))).collect();
    match &fwd[..] {
        [Message::Publication(p)] => {
            // The router keeps the publisher; on the wire to a Broker peer the facade writes
            // itself as the last hop (and Broker's TTL).
            assert_eq!(p.sender, id(2), "the original sender is kept");
            assert_eq!(
                p.ttl,
                Config::default().ttl - 1,
                "injected with a fresh hop limit, as Broker does, then one hop less"
            );
        }
        other => panic!("expected one forwarded publication, got {other:?}"),
    }
    // Never back to where it came from.
    assert!(r.poll_transmit_for(id(2)).is_none());
}

#[test]
fn forwarding_disabled_delivers_but_does_not_forward() {
    let now = Instant::now();
    let config = Config {
        forwarding: false,
        ..Config::default()
    };
    let mut r = with_broker_peers(config, &[(2, ""), (3, "")]);
    r.subscribe(9, topic("/t"));
    while r.poll_transmit().is_some() {}
    let p = broker_routing::Publication {
        sender: id(2),
        receiver: EndpointId::NIL,
        origin: EndpointId::NIL,
        seq: 0,
        ttl: 5,
        topic: topic("/t"),
        content: data(7),
    };
    r.handle_message(now, id(2), Message::Publication(p));
    assert!(events(&mut r)
        .iter()
        .any(|e| matches!(e, Event::Deliver { .. })));
    assert!(r.poll_transmit_for(id(3)).is_none());
    // Its own publications still go out.
    r.publish(now, topic("/t"), data(1));
    assert!(r.poll_transmit_for(id(3)).is_some());
}

#[test]
fn pings_are_answered_and_pongs_reported() {
    let now = Instant::now();
    let mut r = with_broker_peers(Config::default(), &[(2, "")]);
    while r.poll_transmit().is_some() {}
    events(&mut r);
    r.handle_message(
        now,
        id(2),
        Message::Ping(Bytes::from_static(b"BYE12345678")),
    );
    assert_eq!(
        r.poll_transmit(),
        Some((id(2), Message::Pong(Bytes::from_static(b"BYE12345678"))))
    );
    r.handle_message(now, id(2), Message::Pong(Bytes::from_static(b"x")));
    assert_eq!(
        events(&mut r),
        [Event::Pong {
            peer: id(2),
            payload: Bytes::from_static(b"x")
        }]
    );
}

#[test]
fn status_sequences_of_peering_unpeering_and_loss() {
    let now = Instant::now();
    let mut r = Router::new(id(1), 1, Config::default());
    r.add_peer(now, id(2), PeerKind::Broker, vec![]);
    assert_eq!(
        statuses(&mut r),
        [
            (StatusCode::EndpointDiscovered, id(2)),
            (StatusCode::PeerAdded, id(2))
        ]
    );
    r.remove_peer(now, id(2), PeerLoss::Removed);
    assert_eq!(
        statuses(&mut r),
        [
            (StatusCode::PeerRemoved, id(2)),
            (StatusCode::EndpointUnreachable, id(2))
        ]
    );
    r.add_peer(now, id(3), PeerKind::Routed, vec![]);
    statuses(&mut r);
    r.remove_peer(now, id(3), PeerLoss::Lost("reset".into()));
    assert_eq!(
        statuses(&mut r),
        [
            (StatusCode::PeerLost, id(3)),
            (StatusCode::EndpointUnreachable, id(3))
        ]
    );
    // A message from a peer we do not know is ignored.
    r.handle_message(now, id(9), Message::Ping(Bytes::new()));
    assert!(r.poll_transmit().is_none());
}

#[test]
fn unicast_goes_to_one_endpoint_only() {
    let mut r = with_broker_peers(Config::default(), &[(2, "/store"), (3, "/store")]);
    while r.poll_transmit().is_some() {}
    r.publish_to(id(3), topic("/store"), data(1));
    assert!(r.poll_transmit_for(id(2)).is_none());
    assert!(
        matches!(r.poll_transmit_for(id(3)), Some(Message::Publication(p)) if p.receiver == id(3))
    );
    events(&mut r);
    r.publish_to(id(42), topic("/store"), data(2));
    assert_eq!(r.stats().unroutable, 1);
    assert!(
        matches!(&events(&mut r)[..], [Event::Error { code: broker_wire::ErrorCode::NoPathToPeer, endpoint, .. }] if *endpoint == id(42))
    );
}

/// Passes messages between routers 1 (`a`) and 2 (`b`) until both are quiet.
fn exchange(now: Instant, a: &mut Router, b: &mut Router) {
    loop {
        let mut moved = false;
        while let Some((_, m)) = a.poll_transmit() {
            b.handle_message(now, id(1), m);
            moved = true;
        }
        while let Some((_, m)) = b.poll_transmit() {
            a.handle_message(now, id(2), m);
            moved = true;
        }
        if !moved {
            break;
        }
    }
}

/// Two routed routers `a` (id 1) and `b` (id 2), peered, with link states exchanged; `b` has
/// subscriber 7 on `/t`.
fn routed_pair() -> (Router, Router) {
    let now = Instant::now();
    let mut a = Router::new(id(1), 1, Config::default());
    let mut b = Router::new(id(2), 1, Config::default());
    b.subscribe(7, topic("/t"));
    a.add_peer(now, id(2), PeerKind::Routed, vec![]);
    b.add_peer(now, id(1), PeerKind::Routed, vec![topic("/t")]);
    exchange(now, &mut a, &mut b);
    events(&mut a);
    events(&mut b);
    (a, b)
}

/// What `b`'s subscribers received, in order.
fn delivered(r: &mut Router) -> Vec<u64> {
    events(r)
        .into_iter()
        .flat_map(|e| match e {
            Event::Deliver { publication, .. } => counts(&publication.content),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_batch_is_routed_as_one_and_counted_as_many() {
    let now = Instant::now();
    let (mut a, mut b) = routed_pair();
    a.publish(now, topic("/t"), data(0));
    a.publish(now, topic("/t"), batch(1..5));
    a.publish(now, topic("/t"), batch(5..5)); // empty: ignored
    a.publish(now, topic("/t"), data(5));
    assert_eq!(a.stats().published, 6);
    assert_eq!(a.peer_stats(id(2)).unwrap().queued, 6);
    let before = a.peer_stats(id(2)).unwrap().taken;
    let msgs: Vec<Message> = std::iter::from_fn(|| a.poll_transmit_for(id(2))).collect();
    assert_eq!(msgs.len(), 3, "the batch travels as one message");
    let stats = a.peer_stats(id(2)).unwrap();
    assert_eq!(
        (stats.queued, stats.taken - before),
        (0, 6),
        "taken counts messages"
    );
    let seqs: Vec<(u64, usize)> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Publication(p) => Some((p.seq, p.count())),
            _ => None,
        })
        .collect();
    let first = seqs[0].0;
    assert_eq!(seqs, [(first, 1), (first + 1, 4), (first + 5, 1)]);
    for m in msgs.iter().cloned() {
        b.handle_message(now, id(1), m);
    }
    assert_eq!(delivered(&mut b), [0, 1, 2, 3, 4, 5]);
    assert_eq!(b.stats().received, 6);
    assert_eq!(b.stats().delivered, 6);
    // The same messages again (another path): every one is a duplicate.
    for m in msgs {
        b.handle_message(now, id(1), m);
    }
    assert!(delivered(&mut b).is_empty());
    assert_eq!(b.stats().duplicates, 6);
}

#[test]
fn a_batch_overlapping_what_was_seen_delivers_only_its_new_tail() {
    let now = Instant::now();
    let (mut a, mut b) = routed_pair();
    a.publish(now, topic("/t"), batch(0..3));
    let Some(Message::Publication(p)) = a.poll_transmit_for(id(2)) else {
        panic!("no publication");
    };
    // b saw the first two of the three already (as single messages).
    for (i, n) in [0u64, 1].into_iter().enumerate() {
        let mut single = p.clone();
        single.seq = p.seq + i as u64;
        single.content = data(n);
        b.handle_message(now, id(1), Message::Publication(single));
    }
    b.handle_message(now, id(1), Message::Publication(p));
    assert_eq!(delivered(&mut b), [0, 1, 2]);
    assert_eq!(b.stats().duplicates, 2);
}

#[test]
fn overflow_policies_count_the_messages_of_batches() {
    let now = Instant::now();
    for policy in [
        OverflowPolicy::DropOldest,
        OverflowPolicy::DropNewest,
        OverflowPolicy::Disconnect,
    ] {
        let config = Config {
            peer_buffer_size: 4,
            overflow_policy: policy,
            ..Config::default()
        };
        let mut r = with_broker_peers(config, &[(2, "/t")]);
        while r.poll_transmit().is_some() {}
        events(&mut r);
        r.publish(now, topic("/t"), batch(0..3));
        r.publish(now, topic("/t"), batch(3..5));
        match policy {
            OverflowPolicy::DropOldest => {
                assert_eq!(queued(&mut r, id(2)), [3, 4], "the older batch gave way");
                assert_eq!(r.peer_stats(id(2)).unwrap().dropped, 3);
            }
            OverflowPolicy::DropNewest => {
                assert_eq!(queued(&mut r, id(2)), [0, 1, 2]);
                assert_eq!(r.peer_stats(id(2)).unwrap().dropped, 2);
            }
            OverflowPolicy::Disconnect => {
                assert!(r.peer_stats(id(2)).is_none());
                assert_eq!(r.stats().overflow_dropped, 2);
            }
        }
        // An empty buffer takes a batch larger than itself (the facade never makes one).
        if policy != OverflowPolicy::Disconnect {
            r.publish(now, topic("/t"), batch(10..16));
            assert_eq!(r.peer_stats(id(2)).unwrap().queued, 6);
        }
    }
}

#[test]
fn a_batch_from_a_plain_broker_peer_gets_consecutive_sequence_numbers() {
    let now = Instant::now();
    let mut r = with_broker_peers(Config::default(), &[(2, "/t"), (3, "/t")]);
    while r.poll_transmit().is_some() {}
    events(&mut r);
    let p = broker_routing::Publication {
        sender: id(2),
        receiver: EndpointId::NIL,
        origin: id(2),
        seq: 0,
        ttl: 5,
        topic: topic("/t"),
        content: batch(0..3),
    };
    r.handle_message(now, id(2), Message::Publication(p));
    assert_eq!(queued(&mut r, id(3)), [0, 1, 2]);
    assert!(queued(&mut r, id(2)).is_empty(), "not sent back");
    assert_eq!(r.stats().received, 3);
}

/// Routers 1 and 2, peered with each other (routed) and both with plain Broker peer 5, with
/// link states exchanged until quiet. Router 2 subscribes to `/t`; peer 5 to `/t` too.
fn multi_homed() -> (Router, Router, Vec<Message>, Vec<Message>) {
    let now = Instant::now();
    let (mut r1, mut r2) = (
        Router::new(id(1), 1, Config::default()),
        Router::new(id(2), 1, Config::default()),
    );
    r2.subscribe(9, topic("/t"));
    r1.add_peer(now, id(2), PeerKind::Routed, vec![]);
    r2.add_peer(now, id(1), PeerKind::Routed, vec![]);
    r1.add_peer(now, id(5), PeerKind::Broker, vec![topic("/t")]);
    r2.add_peer(now, id(5), PeerKind::Broker, vec![topic("/t")]);
    let (mut to5_from1, mut to5_from2) = (Vec::new(), Vec::new());
    loop {
        let mut moved = false;
        while let Some((to, m)) = r1.poll_transmit() {
            moved = true;
            match to.as_bytes()[0] {
                2 => r2.handle_message(now, id(1), m),
                _ => to5_from1.push(m),
            }
        }
        while let Some((to, m)) = r2.poll_transmit() {
            moved = true;
            match to.as_bytes()[0] {
                1 => r1.handle_message(now, id(2), m),
                _ => to5_from2.push(m),
            }
        }
        if !moved {
            break;
        }
    }
    events(&mut r1);
    events(&mut r2);
    (r1, r2, to5_from1, to5_from2)
}

fn last_update(msgs: &[Message]) -> Option<Vec<Topic>> {
    msgs.iter().rev().find_map(|m| match m {
        Message::RoutingUpdate(f) => Some(f.to_vec()),
        _ => None,
    })
}

#[test]
fn a_broker_peer_of_several_endpoints_is_heard_and_served_through_one() {
    let now = Instant::now();
    let (mut r1, mut r2, to5_from1, to5_from2) = multi_homed();
    // Endpoint 1 (the smaller id) is the designated attachment: it announces what is
    // reachable through it; endpoint 2 ends up announcing nothing.
    assert!(last_update(&to5_from1).is_some_and(|f| f.contains(&topic("/t"))));
    assert_eq!(last_update(&to5_from2), Some(vec![]));
    assert!(r1.announced_filter(id(5)).contains(&topic("/t")));
    assert!(r2.announced_filter(id(5)).is_empty());

    // A publication of 5's heard at 2 anyway (on its way while things changed) is dropped and
    // counted; heard at 1 it is injected and reaches 2's subscriber once.
    let from5 = |n| {
        Message::Publication(broker_routing::Publication {
            sender: id(5),
            receiver: EndpointId::NIL,
            origin: EndpointId::NIL,
            seq: 0,
            ttl: 16,
            topic: topic("/t/x"),
            content: data(n),
        })
    };
    r2.handle_message(now, id(5), from5(1));
    assert!(!events(&mut r2)
        .iter()
        .any(|e| matches!(e, Event::Deliver { .. })));
    assert_eq!(r2.stats().redundant, 1);
    r1.handle_message(now, id(5), from5(2));
    let (to, m) = r1.poll_transmit().expect("routed on to 2");
    assert_eq!(to, id(2));
    assert!(
        r1.poll_transmit().is_none(),
        "and nowhere else, not back to 5"
    );
    r2.handle_message(now, id(1), m);
    let delivered: Vec<u64> = events(&mut r2)
        .into_iter()
        .filter_map(|e| match e {
            Event::Deliver { publication, .. } => Some(counts(&publication.content)),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(delivered, [2]);
    assert!(r2.poll_transmit().is_none(), "2 sends nothing to 5");

    // What 2 publishes reaches 5 once, through 1.
    r2.publish(now, topic("/t/y"), data(3));
    let mut to5 = Vec::new();
    while let Some((to, m)) = r2.poll_transmit() {
        assert_eq!(to, id(1), "2 leaves 5 to 1");
        r1.handle_message(now, id(2), m);
    }
    while let Some((to, m)) = r1.poll_transmit() {
        assert_eq!(to, id(5));
        to5.push(m);
    }
    assert_eq!(to5.len(), 1);

    // Unicast to 2 comes straight from 5 (Broker sends it to the receiver itself): delivered.
    r2.handle_message(
        now,
        id(5),
        Message::Publication(broker_routing::Publication {
            receiver: id(2),
            ..match from5(4) {
                Message::Publication(p) => p,
                _ => unreachable!(),
            }
        }),
    );
    assert!(events(&mut r2)
        .iter()
        .any(|e| matches!(e, Event::Deliver { .. })));

    // When 1 loses 5, 2 takes over: it announces again and hears 5 itself.
    r1.remove_peer(now, id(5), PeerLoss::Lost("cut".into()));
    while let Some((to, m)) = r1.poll_transmit() {
        if to == id(2) {
            r2.handle_message(now, id(1), m);
        }
    }
    let mut to5 = Vec::new();
    while let Some((to, m)) = r2.poll_transmit() {
        if to == id(5) {
            to5.push(m);
        }
    }
    assert!(last_update(&to5).is_some_and(|f| f.contains(&topic("/t"))));
    events(&mut r2);
    r2.handle_message(now, id(5), from5(5));
    assert!(events(&mut r2)
        .iter()
        .any(|e| matches!(e, Event::Deliver { .. })));
}

#[test]
fn a_filter_older_than_the_peering_is_brought_up_to_date_at_once() {
    // The handshake sent the peer an empty filter; by the time the peer is added we subscribe
    // to /t: an update follows at once, and only then.
    let now = Instant::now();
    let mut r = Router::new(id(1), 1, Config::default());
    r.subscribe(9, topic("/t"));
    r.add_peer(now, id(2), PeerKind::Broker, vec![]);
    assert!(
        r.poll_transmit_for(id(2)).is_none(),
        "nothing while nothing changed"
    );
    r.announced_in_handshake(id(2), vec![]);
    match r.poll_transmit_for(id(2)) {
        Some(Message::RoutingUpdate(f)) => assert_eq!(f[..], [topic("/t")]),
        other => panic!("expected a routing update, got {other:?}"),
    }
    // A handshake that already carried the current filter needs none.
    r.add_peer(now, id(3), PeerKind::Broker, vec![]);
    r.announced_in_handshake(id(3), vec![topic("/t")]);
    assert!(r.poll_transmit_for(id(3)).is_none());
}

#[test]
fn who_subscribes_counts_only_reachable_endpoints() {
    // A subscribes to a store's master topic and peers with B; B loses A: A's link state
    // lingers at B until purged, but names no subscriber any more.
    let now = Instant::now();
    let (mut a, mut b) = (
        Router::new(id(1), 1, Config::default()),
        Router::new(id(2), 1, Config::default()),
    );
    let master = topic("s/<$>/data/master");
    a.subscribe(1, master.clone());
    a.add_peer(now, id(2), PeerKind::Routed, vec![]);
    b.add_peer(now, id(1), PeerKind::Routed, vec![]);
    exchange(now, &mut a, &mut b);
    assert_eq!(b.subscribed_exactly(&master), [id(1)]);
    b.remove_peer(now, id(1), PeerLoss::Lost("gone".into()));
    assert!(b.known_endpoints().contains(&id(1)), "not yet purged");
    assert!(b.subscribed_exactly(&master).is_empty());
    // Two refresh periods later it is purged, its tombstone kept for a while, then gone.
    let period = Config::default().link_state_refresh;
    let t = b.poll_timeout().unwrap();
    b.handle_timeout(t);
    b.handle_timeout(t + period);
    assert_eq!(b.known_endpoints(), [id(2)]);
    assert_eq!(b.tombstones(), 1);
    b.handle_timeout(t + period * 12);
    assert_eq!(b.tombstones(), 0);
}

/// What a clone waiting for its master hangs on: every change of another endpoint's
/// subscriptions is announced (a plain peer's routing update, a link state with a new filter),
/// and nothing is announced when a filter arrives unchanged.
#[test]
fn changed_subscriptions_elsewhere_are_announced() {
    let now = Instant::now();
    let changed = |r: &mut Router| -> Vec<EndpointId> {
        events(r)
            .into_iter()
            .filter_map(|e| match e {
                Event::SubscriptionsChanged { endpoint } => Some(endpoint),
                _ => None,
            })
            .collect()
    };
    let mut r = with_broker_peers(Config::default(), &[(2, "/a")]);
    events(&mut r);
    let update = |f: &str| Message::RoutingUpdate(Arc::new(vec![topic(f)]));
    r.handle_message(now, id(2), update("/b"));
    assert_eq!(changed(&mut r), vec![id(2)]);
    r.handle_message(now, id(2), update("/b"));
    assert_eq!(changed(&mut r), vec![], "the same filter again");

    r.add_peer(now, id(3), PeerKind::Routed, vec![]);
    events(&mut r);
    let ls = |version: u64, f: &str| {
        Message::LinkState(Arc::new(broker_wire::LinkState {
            origin: id(4),
            incarnation: 1,
            version,
            forwarding: true,
            neighbors: vec![id(3)],
            filter: vec![topic(f)],
            stubs: vec![],
        }))
    };
    r.handle_message(now, id(3), ls(1, "/m"));
    assert_eq!(changed(&mut r), vec![id(4)], "a new endpoint's filter");
    r.handle_message(now, id(3), ls(2, "/m"));
    assert_eq!(changed(&mut r), vec![], "a newer link state, same filter");
    r.handle_message(now, id(3), ls(3, "/n"));
    assert_eq!(changed(&mut r), vec![id(4)]);
}
