//! Broker's documented multi-hop cases on a chain of four endpoints A–B–C–D, each with
//! routed (version 2) links and with plain Broker (version 1) links between the endpoints.

mod sim;

use std::collections::BTreeSet;

use broker_routing::{Config, PeerKind};
use sim::{topic, Sim};

struct Case {
    name: &'static str,
    /// Which of A..D subscribe to `/t`.
    subscribers: &'static [usize],
    /// Endpoint with forwarding disabled, if any.
    no_forward: Option<usize>,
    /// A's TTL.
    ttl: u16,
    /// Who must receive A's publication on `/t/x`.
    receivers: &'static [usize],
    /// Who must receive it when the links are plain Broker links, where that differs: C++
    /// Broker never checks the TTL and writes a fresh one (16) on every hop, and an endpoint
    /// behind a plain link is a Broker relay.
    plain: Option<&'static [usize]>,
}

const CASES: &[Case] = &[
    Case {
        name: "every hop subscribes",
        subscribers: &[1, 2, 3],
        no_forward: None,
        ttl: 20,
        receivers: &[1, 2, 3],
        plain: None,
    },
    // Beyond Broker 1.x: hops that do not subscribe still carry the message.
    Case {
        name: "only the far end subscribes",
        subscribers: &[3],
        no_forward: None,
        ttl: 20,
        receivers: &[3],
        plain: None,
    },
    Case {
        name: "forwarding disabled at B",
        subscribers: &[1, 2, 3],
        no_forward: Some(1),
        ttl: 20,
        receivers: &[1],
        plain: None,
    },
    Case {
        name: "forwarding disabled at C",
        subscribers: &[1, 3],
        no_forward: Some(2),
        ttl: 20,
        receivers: &[1],
        plain: None,
    },
    Case {
        name: "ttl=2 stops after two hops",
        subscribers: &[1, 2, 3],
        no_forward: None,
        ttl: 2,
        receivers: &[1, 2],
        plain: Some(&[1, 2, 3]),
    },
    Case {
        name: "ttl=1 reaches the first hop only",
        subscribers: &[3, 1],
        no_forward: None,
        ttl: 1,
        receivers: &[1],
        plain: Some(&[1, 3]),
    },
    Case {
        name: "the publisher's own subscribers do not get it (as in Broker's core)",
        subscribers: &[0, 3],
        no_forward: None,
        ttl: 20,
        receivers: &[3],
        plain: None,
    },
];

fn run(case: &Case, kind: PeerKind) {
    let mut s = Sim::new(7, 4, Config::default());
    s.configure(
        0,
        Config {
            ttl: case.ttl,
            ..Config::default()
        },
    );
    if let Some(k) = case.no_forward {
        s.configure(
            k,
            Config {
                forwarding: false,
                ..Config::default()
            },
        );
    }
    for &i in case.subscribers {
        s.subscribe(i, 1, topic("/t"));
    }
    for i in 1..4 {
        s.connect_as(i - 1, i, kind);
    }
    s.settle(0);
    let n = s.publish(0, topic("/t/x"), false);
    s.settle(0);
    let receivers = match (kind, case.plain) {
        (PeerKind::Broker, Some(plain)) => plain,
        _ => case.receivers,
    };
    let want: BTreeSet<usize> = receivers.iter().copied().collect();
    assert_eq!(s.receivers(n), want, "{} ({kind:?} links)", case.name);
    // Nothing else was delivered, and nothing twice.
    assert_eq!(
        s.deliveries.len(),
        want.len(),
        "{} ({kind:?} links)",
        case.name
    );
}

#[test]
fn chain_of_four_routed() {
    for case in CASES {
        run(case, PeerKind::Routed);
    }
}

#[test]
fn chain_of_four_plain_broker() {
    for case in CASES {
        run(case, PeerKind::Broker);
    }
}

#[test]
fn ttl_expiry_is_counted() {
    let mut s = Sim::new(1, 4, Config::default());
    s.configure(
        0,
        Config {
            ttl: 2,
            ..Config::default()
        },
    );
    s.subscribe(3, 1, topic("/t"));
    for i in 1..4 {
        s.connect(i - 1, i);
    }
    s.settle(0);
    s.publish(0, topic("/t"), false);
    s.settle(0);
    assert_eq!(s.nodes[2].router.stats().ttl_expired, 1);
    assert!(s.deliveries.is_empty());
}
