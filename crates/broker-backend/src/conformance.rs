//! The conformance suite every backend runs in its own tests (feature `conformance`).
//!
//! [`run`] checks the behaviour of a fresh, empty backend; [`run_persistent`] additionally
//! checks that a backend reopened on the same files sees everything flushed before, expiry
//! times included. Both panic with a description of the first difference, as test helpers do.
//!
//! ```
//! # // The suite against a trivial map, to show the calling convention.
//! # use broker_backend::{conformance, Backend, Result};
//! # use broker_data::{Data, Timestamp};
//! # use std::collections::BTreeMap;
//! # #[derive(Default)]
//! # struct Map(BTreeMap<Data, (Data, Option<Timestamp>)>);
//! # impl Backend for Map {
//! #     fn put(&mut self, k: &Data, v: &Data, e: Option<Timestamp>) -> Result<()> { self.0.insert(k.clone(), (v.clone(), e)); Ok(()) }
//! #     fn get(&mut self, k: &Data) -> Result<Option<Data>> { Ok(self.0.get(k).map(|x| x.0.clone())) }
//! #     fn erase(&mut self, k: &Data) -> Result<bool> { Ok(self.0.remove(k).is_some()) }
//! #     fn clear(&mut self) -> Result<()> { self.0.clear(); Ok(()) }
//! #     fn expire(&mut self, k: &Data, now: Timestamp) -> Result<bool> {
//! #         if matches!(self.0.get(k), Some((_, Some(t))) if *t <= now) { self.0.remove(k); Ok(true) } else { Ok(false) } }
//! #     fn keys(&mut self) -> Result<Vec<Data>> { Ok(self.0.keys().cloned().collect()) }
//! #     fn size(&mut self) -> Result<u64> { Ok(self.0.len() as u64) }
//! #     fn snapshot(&mut self) -> Result<BTreeMap<Data, Data>> { Ok(self.0.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()) }
//! #     fn expiries(&mut self) -> Result<Vec<(Data, Timestamp)>> { Ok(self.0.iter().filter_map(|(k, v)| v.1.map(|t| (k.clone(), t))).collect()) }
//! # }
//! conformance::run(Map::default);
//! ```

use std::collections::BTreeMap;

use broker_data::{set, table, vector, Data, DataType, Timespan, Timestamp};

use crate::{Backend, BackendError};

fn t(ns: i64) -> Timestamp {
    Timestamp::from_nanos(ns)
}

/// Values of every type, nested ones included, used as keys and values.
pub fn sample_values() -> Vec<Data> {
    let mut v: Vec<Data> = vec![
        Data::None,
        Data::Boolean(true),
        Data::Count(42),
        Data::Integer(-7),
        Data::Real(2.5),
        "a string".into(),
        Data::String(vec![0xffu8, 0, 1].into()),
        "a string longer than twenty-three bytes, kept out of line".into(),
        Data::Timespan(Timespan::from_nanos(1_500)),
        Data::Timestamp(t(1_700_000_000_000_000_000)),
        "10.0.0.0/8".parse().unwrap_or_default(),
        set![1u64, "x"],
        table! {"k" => vector![1u64, 2u64]},
        vector![Data::None, vector![vector![]]],
    ];
    v.extend(
        ["1.2.3.4", "::1", "80/tcp"]
            .iter()
            .filter_map(|s| s.parse().ok()),
    );
    v
}

/// Runs every check against fresh backends from `make` (each must start empty).
pub fn run<B: Backend>(mut make: impl FnMut() -> B) {
    put_get_erase(&mut make());
    every_type_round_trips(&mut make());
    clear_keys_size_snapshot(&mut make());
    expiry(&mut make());
    additions(&mut make());
    subtractions(&mut make());
    failures_change_nothing(&mut make());
}

/// [`run`], then checks that a backend reopened by `open` on the same files keeps what was
/// flushed, including expiry times.
pub fn run_persistent<B: Backend>(mut make: impl FnMut() -> B, mut reopen: impl FnMut() -> B) {
    run(&mut make);
    let mut b = make();
    b.put(&"keep".into(), &Data::Count(1), None).unwrap();
    b.put(&"expiring".into(), &Data::Count(2), Some(t(99)))
        .unwrap();
    b.put(&"gone".into(), &Data::Count(3), None).unwrap();
    b.erase(&"gone".into()).unwrap();
    b.flush().unwrap();
    drop(b);
    let mut b = reopen();
    assert_eq!(b.get(&"keep".into()).unwrap(), Some(Data::Count(1)));
    assert_eq!(b.get(&"expiring".into()).unwrap(), Some(Data::Count(2)));
    assert_eq!(b.get(&"gone".into()).unwrap(), None);
    assert_eq!(b.expiries().unwrap(), vec![("expiring".into(), t(99))]);
    assert_eq!(b.size().unwrap(), 2);
}

fn put_get_erase(b: &mut impl Backend) {
    let k: Data = "key".into();
    assert_eq!(b.get(&k).unwrap(), None);
    assert!(!b.exists(&k).unwrap());
    b.put(&k, &Data::Count(1), None).unwrap();
    assert_eq!(b.get(&k).unwrap(), Some(Data::Count(1)));
    assert!(b.exists(&k).unwrap());
    b.put(&k, &"two".into(), None).unwrap();
    assert_eq!(b.get(&k).unwrap(), Some("two".into()), "put overwrites");
    assert_eq!(b.size().unwrap(), 1);
    assert!(b.erase(&k).unwrap());
    assert!(!b.erase(&k).unwrap(), "erasing an absent key reports false");
    assert_eq!(b.get(&k).unwrap(), None);
    assert_eq!(b.size().unwrap(), 0);
}

fn every_type_round_trips(b: &mut impl Backend) {
    let values = sample_values();
    for (i, k) in values.iter().enumerate() {
        let v = &values[(i + 3) % values.len()];
        b.put(k, v, None).unwrap();
    }
    for (i, k) in values.iter().enumerate() {
        let v = &values[(i + 3) % values.len()];
        assert_eq!(b.get(k).unwrap().as_ref(), Some(v), "value at {k:?}");
    }
    // Keys that are equal in Broker's order are one key (-0.0 == 0.0).
    b.put(&Data::Real(0.0), &Data::Count(1), None).unwrap();
    b.put(&Data::Real(-0.0), &Data::Count(2), None).unwrap();
    assert_eq!(b.get(&Data::Real(0.0)).unwrap(), Some(Data::Count(2)));
    // A count and an integer of the same number are different keys.
    b.put(&Data::Count(5), &"count".into(), None).unwrap();
    b.put(&Data::Integer(5), &"integer".into(), None).unwrap();
    assert_eq!(b.get(&Data::Count(5)).unwrap(), Some("count".into()));
}

fn clear_keys_size_snapshot(b: &mut impl Backend) {
    let mut want = BTreeMap::new();
    for i in (0..50u64).rev() {
        b.put(&Data::Count(i), &Data::Count(i * 2), None).unwrap();
        want.insert(Data::Count(i), Data::Count(i * 2));
    }
    b.put(&"s".into(), &Data::None, None).unwrap();
    want.insert("s".into(), Data::None);
    assert_eq!(b.size().unwrap(), 51);
    let mut keys = b.keys().unwrap();
    keys.sort();
    assert_eq!(keys, want.keys().cloned().collect::<Vec<_>>());
    assert_eq!(b.snapshot().unwrap(), want);
    b.clear().unwrap();
    assert_eq!(b.size().unwrap(), 0);
    assert!(b.keys().unwrap().is_empty());
    assert!(b.snapshot().unwrap().is_empty());
    assert!(b.expiries().unwrap().is_empty());
}

fn expiry(b: &mut impl Backend) {
    let k: Data = "k".into();
    b.put(&k, &Data::Count(1), Some(t(100))).unwrap();
    b.put(&"other".into(), &Data::Count(1), None).unwrap();
    assert_eq!(b.expiries().unwrap(), vec![(k.clone(), t(100))]);
    assert!(!b.expire(&k, t(99)).unwrap(), "not yet");
    assert!(b.exists(&k).unwrap());
    // A later put moves the expiry; the old time no longer removes it.
    b.put(&k, &Data::Count(2), Some(t(200))).unwrap();
    assert!(!b.expire(&k, t(150)).unwrap());
    assert!(b.expire(&k, t(200)).unwrap(), "expires at its time");
    assert!(!b.exists(&k).unwrap());
    assert!(
        !b.expire(&k, t(300)).unwrap(),
        "an absent key does not expire"
    );
    // A put without expiry removes it; entries without expiry never expire.
    b.put(&k, &Data::Count(3), Some(t(10))).unwrap();
    b.put(&k, &Data::Count(4), None).unwrap();
    assert!(!b.expire(&k, t(i64::MAX)).unwrap());
    assert!(!b.expire(&"other".into(), t(i64::MAX)).unwrap());
    assert!(b.expiries().unwrap().is_empty());
    // An addition with an expiry sets it; one without clears it (as Broker).
    b.add(&k, &Data::Count(1), DataType::Count, Some(t(50)))
        .unwrap();
    assert_eq!(b.expiries().unwrap(), vec![(k.clone(), t(50))]);
    b.subtract(&k, &Data::Count(1), None).unwrap();
    assert!(b.expiries().unwrap().is_empty());
}

fn additions(b: &mut impl Backend) {
    let k: Data = "n".into();
    assert_eq!(
        b.add(&k, &Data::Count(2), DataType::Count, None),
        Ok(Data::Count(2))
    );
    assert_eq!(
        b.add(&k, &Data::Count(3), DataType::Count, None),
        Ok(Data::Count(5))
    );
    assert_eq!(b.get(&k).unwrap(), Some(Data::Count(5)));
    let s: Data = "s".into();
    b.add(&s, &"ab".into(), DataType::String, None).unwrap();
    b.add(&s, &"cd".into(), DataType::String, None).unwrap();
    assert_eq!(b.get(&s).unwrap(), Some("abcd".into()));
    let set_key: Data = "set".into();
    b.add(&set_key, &Data::Count(1), DataType::Set, None)
        .unwrap();
    b.add(&set_key, &Data::Count(2), DataType::Set, None)
        .unwrap();
    assert_eq!(b.get(&set_key).unwrap(), Some(set![1u64, 2u64]));
    let tk: Data = "table".into();
    b.add(&tk, &vector!["a", 1u64], DataType::Table, None)
        .unwrap();
    assert_eq!(b.get(&tk).unwrap(), Some(table! {"a" => 1u64}));
    let vk: Data = "vec".into();
    b.add(&vk, &Data::Count(1), DataType::Vector, None).unwrap();
    b.add(&vk, &Data::Count(3), DataType::Vector, None).unwrap();
    b.add(&vk, &vector![1u64, 2u64], DataType::Table, None)
        .unwrap();
    assert_eq!(b.get(&vk).unwrap(), Some(vector![1u64, 2u64, 3u64]));
    let tsk: Data = "time".into();
    b.add(
        &tsk,
        &Data::Timespan(Timespan::from_nanos(5)),
        DataType::Timestamp,
        None,
    )
    .unwrap();
    assert_eq!(b.get(&tsk).unwrap(), Some(Data::Timestamp(t(5))));
}

fn subtractions(b: &mut impl Backend) {
    let k: Data = "n".into();
    assert_eq!(
        b.subtract(&k, &Data::Integer(1), None),
        Err(BackendError::NoSuchKey)
    );
    b.put(&k, &Data::Integer(10), None).unwrap();
    assert_eq!(
        b.subtract(&k, &Data::Integer(3), None),
        Ok(Data::Integer(7))
    );
    b.put(&"set".into(), &set![1u64, 2u64], None).unwrap();
    b.subtract(&"set".into(), &Data::Count(1), None).unwrap();
    assert_eq!(b.get(&"set".into()).unwrap(), Some(set![2u64]));
    b.put(&"vec".into(), &vector![1u64, 2u64], None).unwrap();
    b.subtract(&"vec".into(), &"vec".into(), None).unwrap();
    assert_eq!(b.get(&"vec".into()).unwrap(), Some(vector![1u64]));
}

fn failures_change_nothing(b: &mut impl Backend) {
    let k: Data = "s".into();
    b.put(&k, &"text".into(), Some(t(1_000))).unwrap();
    let clash = b.add(&k, &Data::Count(1), DataType::Count, None);
    assert!(
        matches!(clash, Err(BackendError::TypeClash(_))),
        "{clash:?}"
    );
    let clash = b.subtract(&k, &Data::Count(1), None);
    assert!(
        matches!(clash, Err(BackendError::TypeClash(_))),
        "{clash:?}"
    );
    assert_eq!(b.get(&k).unwrap(), Some("text".into()));
    assert_eq!(
        b.expiries().unwrap(),
        vec![(k, t(1_000))],
        "expiry untouched"
    );
    let absent: Data = "absent".into();
    assert_eq!(
        b.add(&absent, &Data::Count(1), DataType::None, None),
        Err(BackendError::NoSuchKey)
    );
    assert!(
        !b.exists(&absent).unwrap(),
        "a failed addition creates nothing"
    );
}
