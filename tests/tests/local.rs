//! Endpoints of one process peered directly: values pass as shared pointers.

use std::time::Duration;

use broker::{Configuration, Endpoint, StatusCode, StatusEvent};
use broker_data::{Data, SharedData};

const WAIT: Duration = Duration::from_secs(10);

fn endpoint() -> Endpoint {
    Endpoint::new(Configuration::default()).unwrap()
}

fn expect_status(s: &broker::StatusSubscriber, code: StatusCode) {
    let end = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < end {
        if let Some(StatusEvent::Status { code: c, .. }) = s.get_timeout(Duration::from_millis(100))
        {
            if c == code {
                return;
            }
        }
    }
    panic!("no {code} status");
}

#[test]
fn values_are_shared_not_serialized() {
    // As in Broker, a publisher's own subscribers do not receive its messages: two other
    // endpoints receive the same one.
    let (a, b, c) = (endpoint(), endpoint(), endpoint());
    let at_a = a.make_subscriber(&["/t"], None).unwrap();
    let at_b = b.make_subscriber(&["/t"], None).unwrap();
    let at_c = c.make_subscriber(&["/t"], None).unwrap();
    a.peer_local(&b).unwrap();
    a.peer_local(&c).unwrap();
    a.publish("/t", Data::from(vec!["x".repeat(100)])).unwrap();
    let (mb, mc) = (
        at_b.get_timeout(WAIT).unwrap(),
        at_c.get_timeout(WAIT).unwrap(),
    );
    assert!(
        SharedData::ptr_eq(&mb.data, &mc.data),
        "both endpoints hold the very same value"
    );
    // A long string is not a container, but its bytes are shared all the same.
    a.publish("/t", Data::from("y".repeat(100))).unwrap();
    let (mb, mc) = (
        at_b.get_timeout(WAIT).unwrap(),
        at_c.get_timeout(WAIT).unwrap(),
    );
    let bytes = |d: &Data| match d {
        Data::String(s) => s.as_bytes().as_ptr(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        bytes(&mb.data),
        bytes(&mc.data),
        "the string's bytes are shared"
    );
    assert!(at_a.get_timeout(Duration::from_millis(100)).is_none());
    // And the other way.
    b.publish("/t", Data::Count(2)).unwrap();
    assert_eq!(*at_a.get_timeout(WAIT).unwrap().data, Data::Count(2));
}

#[test]
fn local_and_socket_peerings_mix() {
    let (a, b, c) = (endpoint(), endpoint(), endpoint());
    let port = c.listen("127.0.0.1", 0).unwrap();
    let sub = c.make_subscriber(&["/mix"], None).unwrap();
    a.peer_local(&b).unwrap();
    b.peer("127.0.0.1", port, None).unwrap();
    let end = std::time::Instant::now() + WAIT;
    let mut got = None;
    while got.is_none() && std::time::Instant::now() < end {
        a.publish("/mix", Data::Count(9)).unwrap();
        got = sub.get_timeout(Duration::from_millis(50));
    }
    assert_eq!(*got.expect("through B to C").data, Data::Count(9));
}

#[test]
fn statuses_and_floods() {
    let (a, b) = (endpoint(), endpoint());
    let (sa, sb) = (
        a.make_status_subscriber(true).unwrap(),
        b.make_status_subscriber(true).unwrap(),
    );
    let sub = b.make_subscriber(&["/f"], Some(1_000_000)).unwrap();
    a.peer_local(&b).unwrap();
    expect_status(&sa, StatusCode::PeerAdded);
    expect_status(&sb, StatusCode::PeerAdded);
    assert!(
        a.peer_local(&b).is_err(),
        "no second peering between the same endpoints"
    );
    let n = 300_000u64;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        a.publish_batch(chunk.iter().map(|i| ("/f", Data::Count(*i))))
            .unwrap();
    }
    let mut next = 0;
    while next < n {
        for m in sub.get_n(100_000, Some(WAIT)) {
            assert_eq!(*m.data, Data::Count(next));
            next += 1;
        }
    }
    assert!(a.unpeer_local(&b).unwrap());
    // As over sockets (Broker's rule): the side that ends it peer_removed, the other peer_lost.
    expect_status(&sa, StatusCode::PeerRemoved);
    expect_status(&sb, StatusCode::PeerLost);
    assert!(!a.unpeer_local(&b).unwrap());
    // A peer that shuts down is lost.
    a.peer_local(&b).unwrap();
    expect_status(&sa, StatusCode::PeerAdded);
    b.shutdown();
    expect_status(&sa, StatusCode::PeerLost);
}
