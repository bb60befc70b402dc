//! The value operations of Broker's store mutations, shared by every backend.
//!
//! * [`add`] is Broker's "adder": numbers (count, integer, real, timespan) add a number of the
//!   same type; a timestamp adds a timespan; a string appends a string; a vector pushes the
//!   operand; a set inserts it; a table takes a `(key, value)` pair. An absent key starts from
//!   the empty value of `init_type` (`increment` passes the amount's type, `append` string,
//!   `insert_into` set or table, `push` vector); with `init_type` none it is `no_such_key`.
//! * [`subtract`] is Broker's "remover": numbers subtract, a timestamp subtracts a timespan, a
//!   set or table removes the operand, a vector drops its last element (`pop`, and Broker's
//!   `remove_from` on a vector).
//! * [`retrieve`] answers `get_index_from_value`.
//!
//! Counts and integers wrap around on overflow, as Broker's C++ arithmetic does; timestamps
//! saturate. One deliberate refinement of Broker: `insert_into(key, index, value)` on a
//! *vector* (sent as an addition of the pair `(index, value)` with `init_type` table) inserts
//! `value` at position `index`, as the manual describes, instead of pushing the pair.

use broker_data::{Data, DataType, Timespan, Timestamp};

use crate::{BackendError, Result};

/// The empty value of a type, where an addition starts when the key is absent.
pub fn initial_value(t: DataType) -> Data {
    match t {
        DataType::None => Data::None,
        DataType::Boolean => Data::Boolean(false),
        DataType::Count => Data::Count(0),
        DataType::Integer => Data::Integer(0),
        DataType::Real => Data::Real(0.0),
        DataType::String => Data::String(Default::default()),
        DataType::Address => Data::Address(Default::default()),
        DataType::Subnet => Data::Subnet(Default::default()),
        DataType::Port => Data::Port(Default::default()),
        DataType::Timestamp => Data::Timestamp(Timestamp::EPOCH),
        DataType::Timespan => Data::Timespan(Timespan::ZERO),
        DataType::EnumValue => Data::EnumValue(Default::default()),
        DataType::Set => Data::Set(Default::default()),
        DataType::Table => Data::Table(Default::default()),
        DataType::Vector => Data::Vector(Default::default()),
    }
}

fn clash(what: &str, operand: &Data, target: &Data) -> BackendError {
    BackendError::TypeClash(format!(
        "cannot {what} a {} {} a {}",
        operand.data_type().name(),
        if what == "add" { "to" } else { "from" },
        target.data_type().name()
    ))
}

/// `old + operand`, starting from `init_type`'s empty value when `old` is absent.
pub fn add(old: Option<&Data>, operand: &Data, init_type: DataType) -> Result<Data> {
    let start;
    let target = match old {
        Some(v) => v,
        None if init_type == DataType::None => return Err(BackendError::NoSuchKey),
        None => {
            start = initial_value(init_type);
            &start
        }
    };
    let out = match (target, operand) {
        (Data::Count(a), Data::Count(b)) => Data::Count(a.wrapping_add(*b)),
        (Data::Integer(a), Data::Integer(b)) => Data::Integer(a.wrapping_add(*b)),
        (Data::Real(a), Data::Real(b)) => Data::Real(a + b),
        (Data::Timespan(a), Data::Timespan(b)) => Data::Timespan(Timespan::from_nanos(
            a.as_nanos().wrapping_add(b.as_nanos()),
        )),
        (Data::Timestamp(a), Data::Timespan(b)) => Data::Timestamp(*a + *b),
        (Data::String(a), Data::String(b)) => {
            let mut s = Vec::with_capacity(a.len() + b.len());
            s.extend_from_slice(a);
            s.extend_from_slice(b);
            Data::String(s.into())
        }
        (Data::Vector(v), x) => {
            let mut v = v.clone();
            match (init_type, x) {
                (DataType::Table, Data::Vector(pair)) if pair.len() == 2 => {
                    let index = match &pair[0] {
                        Data::Count(i) => usize::try_from(*i).ok(),
                        Data::Integer(i) => usize::try_from(*i).ok(),
                        _ => None,
                    }
                    .filter(|i| *i <= v.len())
                    .ok_or_else(|| {
                        BackendError::InvalidData(format!(
                            "index {} is not a position in a vector of {} elements",
                            pair[0],
                            v.len()
                        ))
                    })?;
                    v.insert(index, pair[1].clone());
                }
                _ => v.push(x.clone()),
            }
            Data::Vector(v)
        }
        (Data::Set(s), x) => {
            let mut s = s.clone();
            s.insert(x.clone());
            Data::Set(s)
        }
        (Data::Table(t), Data::Vector(pair)) => {
            if pair.len() != 2 {
                return Err(BackendError::InvalidData(format!(
                    "a table takes a (key, value) pair, not {} elements",
                    pair.len()
                )));
            }
            let mut t = t.clone();
            t.insert(pair[0].clone(), pair[1].clone());
            Data::Table(t)
        }
        (t, x) => return Err(clash("add", x, t)),
    };
    Ok(out)
}

/// `old - operand`.
pub fn subtract(old: &Data, operand: &Data) -> Result<Data> {
    let out = match (old, operand) {
        (Data::Count(a), Data::Count(b)) => Data::Count(a.wrapping_sub(*b)),
        (Data::Integer(a), Data::Integer(b)) => Data::Integer(a.wrapping_sub(*b)),
        (Data::Real(a), Data::Real(b)) => Data::Real(a - b),
        (Data::Timespan(a), Data::Timespan(b)) => Data::Timespan(Timespan::from_nanos(
            a.as_nanos().wrapping_sub(b.as_nanos()),
        )),
        (Data::Timestamp(a), Data::Timespan(b)) => Data::Timestamp(Timestamp::from_nanos(
            a.as_nanos().saturating_sub(b.as_nanos()),
        )),
        (Data::Vector(v), _) => {
            let mut v = v.clone();
            v.pop();
            Data::Vector(v)
        }
        (Data::Set(s), x) => {
            let mut s = s.clone();
            s.remove(x);
            Data::Set(s)
        }
        (Data::Table(t), x) => {
            let mut t = t.clone();
            t.remove(x);
            Data::Table(t)
        }
        (t, x) => return Err(clash("subtract", x, t)),
    };
    Ok(out)
}

/// `get_index_from_value`: a vector's element at a count (or non-negative integer) index, a
/// table's value at a key (`no_such_key` when absent), whether a set holds the index; any other
/// value is returned whole, as Broker does.
pub fn retrieve(value: &Data, index: &Data) -> Result<Data> {
    match value {
        Data::Vector(v) => {
            let i = match index {
                Data::Count(i) => usize::try_from(*i).unwrap_or(usize::MAX),
                Data::Integer(i) if *i >= 0 => usize::try_from(*i).unwrap_or(usize::MAX),
                _ => {
                    return Err(BackendError::TypeClash(format!(
                        "a vector index must be a count, not a {}",
                        index.data_type().name()
                    )))
                }
            };
            v.get(i).cloned().ok_or(BackendError::NoSuchKey)
        }
        Data::Set(s) => Ok(Data::Boolean(s.contains(index))),
        Data::Table(t) => t.get(index).cloned().ok_or(BackendError::NoSuchKey),
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_data::{set, table, vector};

    fn ts(ns: i64) -> Data {
        Data::Timespan(Timespan::from_nanos(ns))
    }

    #[test]
    fn additions() {
        let cases: Vec<(Option<Data>, Data, DataType, Result<Data>)> = vec![
            (
                Some(Data::Count(1)),
                Data::Count(2),
                DataType::Count,
                Ok(Data::Count(3)),
            ),
            (None, Data::Count(2), DataType::Count, Ok(Data::Count(2))),
            (
                None,
                Data::Integer(-2),
                DataType::Integer,
                Ok(Data::Integer(-2)),
            ),
            (
                Some(Data::Real(1.5)),
                Data::Real(1.0),
                DataType::Real,
                Ok(Data::Real(2.5)),
            ),
            (Some(ts(5)), ts(6), DataType::Timestamp, Ok(ts(11))),
            (
                None,
                ts(7),
                DataType::Timestamp,
                Ok(Data::Timestamp(Timestamp::from_nanos(7))),
            ),
            (
                Some("ab".into()),
                "cd".into(),
                DataType::String,
                Ok("abcd".into()),
            ),
            (None, "x".into(), DataType::String, Ok("x".into())),
            (None, Data::Count(1), DataType::Set, Ok(set![1u64])),
            (
                Some(set![1u64]),
                Data::Count(1),
                DataType::Set,
                Ok(set![1u64]),
            ),
            (None, Data::Count(1), DataType::Vector, Ok(vector![1u64])),
            (
                Some(vector![1u64, 3u64]),
                vector![1u64, 2u64],
                DataType::Table,
                Ok(vector![1u64, 2u64, 3u64]),
            ),
            (
                Some(vector![1u64]),
                vector![5u64, 2u64],
                DataType::Table,
                Err(BackendError::InvalidData(
                    "index 5 is not a position in a vector of 1 elements".into(),
                )),
            ),
            (
                None,
                vector!["k", 1u64],
                DataType::Table,
                Ok(table! {"k" => 1u64}),
            ),
            (
                Some(table! {}),
                Data::Count(1),
                DataType::Table,
                Err(BackendError::TypeClash(
                    "cannot add a count to a table".into(),
                )),
            ),
            (
                Some(table! {}),
                vector![1u64],
                DataType::Table,
                Err(BackendError::InvalidData(
                    "a table takes a (key, value) pair, not 1 elements".into(),
                )),
            ),
            (
                None,
                Data::Count(1),
                DataType::None,
                Err(BackendError::NoSuchKey),
            ),
            (
                Some(Data::Count(1)),
                Data::Integer(1),
                DataType::Integer,
                Err(BackendError::TypeClash(
                    "cannot add a integer to a count".into(),
                )),
            ),
            (
                Some("s".into()),
                Data::Count(1),
                DataType::Count,
                Err(BackendError::TypeClash(
                    "cannot add a count to a string".into(),
                )),
            ),
            (
                Some(Data::Count(u64::MAX)),
                Data::Count(1),
                DataType::Count,
                Ok(Data::Count(0)),
            ),
        ];
        for (old, operand, init, want) in cases {
            assert_eq!(
                add(old.as_ref(), &operand, init),
                want,
                "{old:?} + {operand:?}"
            );
        }
    }

    #[test]
    fn subtractions() {
        let cases: Vec<(Data, Data, Result<Data>)> = vec![
            (Data::Count(3), Data::Count(2), Ok(Data::Count(1))),
            (Data::Integer(3), Data::Integer(5), Ok(Data::Integer(-2))),
            (Data::Real(3.0), Data::Real(0.5), Ok(Data::Real(2.5))),
            (ts(3), ts(1), Ok(ts(2))),
            (
                Data::Timestamp(Timestamp::from_nanos(10)),
                ts(3),
                Ok(Data::Timestamp(Timestamp::from_nanos(7))),
            ),
            (vector![1u64, 2u64], Data::None, Ok(vector![1u64])),
            (vector![], Data::None, Ok(vector![])),
            (set![1u64, 2u64], Data::Count(1), Ok(set![2u64])),
            (table! {1u64 => 2u64}, Data::Count(1), Ok(table! {})),
            (
                "s".into(),
                "s".into(),
                Err(BackendError::TypeClash(
                    "cannot subtract a string from a string".into(),
                )),
            ),
        ];
        for (old, operand, want) in cases {
            assert_eq!(subtract(&old, &operand), want, "{old:?} - {operand:?}");
        }
    }

    #[test]
    fn retrievals() {
        let v = vector![10u64, 20u64];
        assert_eq!(retrieve(&v, &Data::Count(1)), Ok(Data::Count(20)));
        assert_eq!(retrieve(&v, &Data::Integer(0)), Ok(Data::Count(10)));
        assert_eq!(retrieve(&v, &Data::Count(2)), Err(BackendError::NoSuchKey));
        assert!(matches!(
            retrieve(&v, &Data::Integer(-1)),
            Err(BackendError::TypeClash(_))
        ));
        let s = set![1u64];
        assert_eq!(retrieve(&s, &Data::Count(1)), Ok(Data::Boolean(true)));
        assert_eq!(retrieve(&s, &Data::Count(2)), Ok(Data::Boolean(false)));
        let t = table! {"a" => 1u64};
        assert_eq!(retrieve(&t, &"a".into()), Ok(Data::Count(1)));
        assert_eq!(retrieve(&t, &"b".into()), Err(BackendError::NoSuchKey));
        assert_eq!(retrieve(&Data::Count(4), &Data::None), Ok(Data::Count(4)));
    }
}
