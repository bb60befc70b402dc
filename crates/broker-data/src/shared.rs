//! Values shared between many holders (subscribers, peers, a batch) without an allocation
//! for the small ones.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use crate::Data;

/// An immutable [`Data`] that is cheap to clone: what a publication carries from its
/// publisher through the router to every subscriber.
///
/// A value without containers (a count, a string, an address, …) is held in place: making,
/// cloning and dropping it touches no allocator (a short string is inline, a long one a
/// reference-counted buffer, see [`ByteString`](crate::ByteString)). A set, table or vector
/// is held behind one reference count, so a clone never copies its elements. Either way the
/// holder sees a `&Data` ([`Deref`]).
///
/// ```
/// use broker_data::{Data, SharedData};
/// let n = SharedData::from(Data::Count(42));
/// assert_eq!(*n, Data::Count(42));
/// assert!(n.is_inline()); // no allocation
/// let v = SharedData::from(Data::from(vec![1u64, 2, 3]));
/// assert!(!v.is_inline());
/// let w = v.clone(); // the elements are not copied
/// assert_eq!(*w, Data::from(vec![1u64, 2, 3]));
/// assert_eq!(w.into_data(), Data::from(vec![1u64, 2, 3]));
/// ```
#[derive(Clone)]
pub struct SharedData(Repr);

#[derive(Clone)]
enum Repr {
    /// A value whose clone costs no allocation.
    Inline(Data),
    /// A container, shared.
    Shared(Arc<Data>),
}

/// Whether cloning `d` is as cheap as sharing it (no container to copy).
fn cheap_to_clone(d: &Data) -> bool {
    !matches!(d, Data::Set(_) | Data::Table(_) | Data::Vector(_))
}

impl SharedData {
    /// Whether the value is held in place (cloned without a reference count of its own).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline(_))
    }

    /// The value, unshared: moved out when this is its only holder, else copied.
    pub fn into_data(self) -> Data {
        match self.0 {
            Repr::Inline(d) => d,
            Repr::Shared(a) => Arc::try_unwrap(a).unwrap_or_else(|a| (*a).clone()),
        }
    }

    /// Whether both hold the very same container (not merely equal values); always false
    /// for values held in place.
    pub fn ptr_eq(a: &SharedData, b: &SharedData) -> bool {
        match (&a.0, &b.0) {
            (Repr::Shared(x), Repr::Shared(y)) => Arc::ptr_eq(x, y),
            _ => false,
        }
    }

    /// The value.
    pub fn data(&self) -> &Data {
        match &self.0 {
            Repr::Inline(d) => d,
            Repr::Shared(a) => a,
        }
    }
}

impl Default for SharedData {
    fn default() -> Self {
        SharedData(Repr::Inline(Data::None))
    }
}

impl From<Data> for SharedData {
    fn from(d: Data) -> Self {
        if cheap_to_clone(&d) {
            SharedData(Repr::Inline(d))
        } else {
            SharedData(Repr::Shared(Arc::new(d)))
        }
    }
}

impl From<Arc<Data>> for SharedData {
    /// Keeps the reference count of a container; a value without one is taken out of it.
    fn from(a: Arc<Data>) -> Self {
        if cheap_to_clone(&a) {
            SharedData(Repr::Inline(
                Arc::try_unwrap(a).unwrap_or_else(|a| (*a).clone()),
            ))
        } else {
            SharedData(Repr::Shared(a))
        }
    }
}

impl From<SharedData> for Data {
    fn from(s: SharedData) -> Data {
        s.into_data()
    }
}

impl Deref for SharedData {
    type Target = Data;

    fn deref(&self) -> &Data {
        self.data()
    }
}

impl AsRef<Data> for SharedData {
    fn as_ref(&self) -> &Data {
        self.data()
    }
}

impl Borrow<Data> for SharedData {
    fn borrow(&self) -> &Data {
        self.data()
    }
}

impl PartialEq for SharedData {
    fn eq(&self, other: &Self) -> bool {
        self.data() == other.data()
    }
}

impl PartialEq<Data> for SharedData {
    fn eq(&self, other: &Data) -> bool {
        self.data() == other
    }
}

impl Eq for SharedData {}

impl PartialOrd for SharedData {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SharedData {
    fn cmp(&self, other: &Self) -> Ordering {
        self.data().cmp(other.data())
    }
}

impl Hash for SharedData {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.data().hash(state);
    }
}

impl fmt::Debug for SharedData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.data(), f)
    }
}

impl fmt::Display for SharedData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.data(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Address, ByteString, Port, Protocol, Set, Timespan};

    /// Every value without a container is held in place, every container shared; either
    /// way the value reads back equal, in order and hash, to the plain one.
    #[test]
    fn small_values_in_place_containers_shared() {
        let inline = [
            Data::None,
            Data::Boolean(true),
            Data::Count(7),
            Data::Integer(-7),
            Data::Real(1.5),
            Data::String(ByteString::from("a string longer than twenty-three bytes")),
            Data::Address(Address::from(std::net::Ipv4Addr::LOCALHOST)),
            Data::Port(Port::new(80, Protocol::Tcp)),
            Data::Timespan(Timespan::from_nanos(5)),
        ];
        for d in inline {
            let s = SharedData::from(d.clone());
            assert!(s.is_inline(), "{d:?}");
            assert_eq!(*s, d);
            assert_eq!(s.clone().into_data(), d);
            let hash = |x: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                x(&mut h);
                h.finish()
            };
            assert_eq!(hash(&|h| s.hash(h)), hash(&|h| d.hash(h)));
            // Taken out of an Arc, it is in place too.
            assert!(SharedData::from(Arc::new(d.clone())).is_inline());
        }
        for d in [
            Data::from(vec![1u64]),
            Data::Set(Set::new()),
            Data::Table(Default::default()),
        ] {
            let s = SharedData::from(d.clone());
            assert!(!s.is_inline(), "{d:?}");
            let t = s.clone();
            assert!(SharedData::ptr_eq(&s, &t));
            assert!(!SharedData::ptr_eq(&s, &SharedData::from(d.clone())));
            assert_eq!(t, s);
            assert_eq!(s.cmp(&t), Ordering::Equal);
            assert_eq!(t.into_data(), d);
            // The last holder's value is moved out, not copied.
            assert_eq!(s.into_data(), d);
        }
        let (one, two) = (
            SharedData::from(Data::Count(1)),
            SharedData::from(Data::Count(2)),
        );
        assert!(one < two);
        assert_eq!(SharedData::default(), Data::None);
    }
}
