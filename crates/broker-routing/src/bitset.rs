//! A small growable bitset over endpoint indices.

/// A set of small integers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Bitset(Vec<u64>);

impl Bitset {
    pub(crate) fn with_capacity(bits: usize) -> Self {
        Bitset(vec![0; bits.div_ceil(64)])
    }

    pub(crate) fn insert(&mut self, i: usize) {
        let w = i / 64;
        if w >= self.0.len() {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << (i % 64);
    }

    pub(crate) fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub(crate) fn union_with(&mut self, other: &Bitset) {
        if other.0.len() > self.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }

    pub(crate) fn intersects(&self, other: &Bitset) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }
}
