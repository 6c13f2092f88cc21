//! The search's memory: the set of linearized operations, and every `(linearized set,
//! state)` configuration reached so far (Lowe's memoization), so none is explored twice.
//!
//! Invariant: `LinearizedSet::hash` is always the XOR of the Zobrist keys of the operations
//! in the set, so it is maintained in O(1) per insert or remove.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};

/// The set of linearized operations, with an incrementally maintained Zobrist hash.
#[derive(Debug)]
pub(super) struct LinearizedSet {
    words: Vec<u64>,
    keys: Vec<u64>,
    hash: u64,
}

impl LinearizedSet {
    pub(super) fn new(len: usize) -> Self {
        let keys = (0..len as u64)
            .map(|i| mix64(i.wrapping_add(0x5eed)))
            .collect();
        Self {
            words: vec![0; len.div_ceil(64)],
            keys,
            hash: 0,
        }
    }

    pub(super) fn insert(&mut self, op: usize) {
        self.words[op / 64] |= 1 << (op % 64);
        self.hash ^= self.keys[op];
    }

    pub(super) fn remove(&mut self, op: usize) {
        self.words[op / 64] &= !(1 << (op % 64));
        self.hash ^= self.keys[op];
    }
}

/// A `Hasher` for keys that are already well-mixed `u64`s.
#[derive(Debug, Default)]
struct PremixedHasher(u64);

impl Hasher for PremixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = mix64(self.0 ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Marks the end of a memo bucket's chain.
const NO_ENTRY: usize = usize::MAX;

/// One memoized configuration; its set is `Memo::sets[index * words ..][.. words]`.
#[derive(Debug)]
struct MemoEntry<S> {
    /// The previous entry with the same hash key, or `NO_ENTRY`.
    next: usize,
    state: S,
}

/// Every `(linearized set, state)` configuration the search has reached.
///
/// Stored in flat arrays (a hash table of chain heads, one entry array, one array of set
/// words) so that a step allocates nothing besides the state it creates.
#[derive(Debug)]
pub(super) struct Memo<S> {
    words: usize,
    // Unbounded on purpose, like `entries` and `sets`: the step budget bounds how many
    // configurations can be added.
    heads: HashMap<u64, usize, BuildHasherDefault<PremixedHasher>>,
    entries: Vec<MemoEntry<S>>,
    sets: Vec<u64>,
}

impl<S: Eq + Hash + Clone> Memo<S> {
    pub(super) fn new(words: usize) -> Self {
        Self {
            words,
            heads: HashMap::default(),
            entries: Vec::new(),
            sets: Vec::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Records the configuration; returns false if it was already recorded.
    pub(super) fn insert_if_new(&mut self, set: &LinearizedSet, state: &S) -> bool {
        let mut hasher = DefaultHasher::new();
        state.hash(&mut hasher);
        let key = mix64(set.hash ^ hasher.finish().rotate_left(29));
        let head = self.heads.get(&key).copied().unwrap_or(NO_ENTRY);
        let mut cursor = head;
        while cursor != NO_ENTRY {
            let entry = &self.entries[cursor];
            let words = &self.sets[cursor * self.words..(cursor + 1) * self.words];
            if words == set.words.as_slice() && entry.state == *state {
                return false;
            }
            cursor = entry.next;
        }
        self.heads.insert(key, self.entries.len());
        self.entries.push(MemoEntry {
            next: head,
            state: state.clone(),
        });
        self.sets.extend_from_slice(&set.words);
        true
    }
}

/// SplitMix64's finalizer: a cheap, well-distributed 64-bit mix.
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zobrist_hash_depends_only_on_the_set() {
        let mut set = LinearizedSet::new(130);
        set.insert(3);
        set.insert(129);
        let both = set.hash;
        set.remove(3);
        set.insert(64);
        set.remove(64);
        set.insert(3);
        assert_eq!(set.hash, both);
        set.remove(3);
        set.remove(129);
        assert_eq!(set.hash, 0);
        assert!(set.words.iter().all(|&w| w == 0));
    }

    #[test]
    fn memo_rejects_a_configuration_seen_before() {
        let mut memo = Memo::new(1);
        let mut set = LinearizedSet::new(10);
        set.insert(1);
        assert!(memo.insert_if_new(&set, &7u32));
        assert!(!memo.insert_if_new(&set, &7u32));
        assert!(memo.insert_if_new(&set, &8u32), "same set, different state");
        set.insert(2);
        assert!(memo.insert_if_new(&set, &7u32), "same state, different set");
    }
}
