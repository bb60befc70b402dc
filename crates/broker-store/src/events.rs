//! Store events in Broker's layout (`store_event.hh`): vectors published locally on
//! `<$>/local/data/store-events/<name>`.
//!
//! * `("insert", store, key, value, expiry, publisher endpoint, publisher object)`
//! * `("update", store, key, old value, new value, expiry, publisher endpoint, publisher object)`
//! * `("erase", store, key, publisher endpoint, publisher object)`
//! * `("expire", store, key, publisher endpoint, publisher object)`
//!
//! The expiry is a timespan or nil; the publisher endpoint is the UUID as a string and the
//! object a count, both nil when unknown.

use broker_data::{Data, Timespan};
use broker_wire::EntityId;

fn publisher(out: &mut Vec<Data>, p: &EntityId) {
    if p.endpoint.is_nil() {
        out.push(Data::None);
        out.push(Data::None);
    } else {
        out.push(Data::from(p.endpoint.to_string()));
        out.push(Data::Count(p.object));
    }
}

fn expiry(e: Option<Timespan>) -> Data {
    e.map_or(Data::None, Data::Timespan)
}

pub(crate) fn insert(
    store: &str,
    key: &Data,
    value: &Data,
    e: Option<Timespan>,
    p: &EntityId,
) -> Data {
    let mut v = Vec::with_capacity(7);
    v.extend([
        Data::from("insert"),
        Data::from(store),
        key.clone(),
        value.clone(),
        expiry(e),
    ]);
    publisher(&mut v, p);
    Data::Vector(v)
}

pub(crate) fn update(
    store: &str,
    key: &Data,
    old: &Data,
    new: &Data,
    e: Option<Timespan>,
    p: &EntityId,
) -> Data {
    let mut v = Vec::with_capacity(8);
    v.extend([
        Data::from("update"),
        Data::from(store),
        key.clone(),
        old.clone(),
        new.clone(),
        expiry(e),
    ]);
    publisher(&mut v, p);
    Data::Vector(v)
}

pub(crate) fn erase(store: &str, key: &Data, p: &EntityId) -> Data {
    removal("erase", store, key, p)
}

pub(crate) fn expire(store: &str, key: &Data, p: &EntityId) -> Data {
    removal("expire", store, key, p)
}

fn removal(kind: &str, store: &str, key: &Data, p: &EntityId) -> Data {
    let mut v = Vec::with_capacity(5);
    v.extend([Data::from(kind), Data::from(store), key.clone()]);
    publisher(&mut v, p);
    Data::Vector(v)
}
