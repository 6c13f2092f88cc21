//! `SkipList<K, V>`: the ordered map behind the KV state machine.
//!
//! A classic skip list (Pugh 1990) over an index arena (`node.rs`): no `unsafe`, no pointer
//! juggling, removed nodes recycled through a free list, and a seeded level generator so the
//! same operations from the same seed always build the same shape.
//!
//! Design choices (numbers in `benches/skiplist.rs` and the task report):
//! - each node stores an [`OrderPrefix`] of its key (the first 8 bytes of a byte string), so
//!   most comparisons are one integer compare in the node already loaded instead of a cache
//!   miss on the key's heap bytes (about 20% faster gets and inserts at 1M random keys; no
//!   gain, no loss, for keys sharing a long prefix);
//! - p = 1/4, at most 16 levels: fewer links than p = 1/2 for about the same number of key
//!   comparisons, and 4^16 covers the whole `u32` index space;
//! - nodes are split into two parallel vectors: 32-byte towers (key prefix, the first four
//!   next-links, height; two per cache line) that searches walk, and the keys and values,
//!   read only on a prefix tie and at the end. Against whole 96-byte nodes this made cold
//!   gets at 1M keys up to 40% faster and inserts about 25% faster (min-of-N timings, both
//!   layouts in one process); the rare taller towers (1 node in 256) keep their upper links
//!   in a shared overflow vector;
//! - a search remembers the node it last found greater than the key, so it does not compare
//!   against the same node again one level down;
//! - insert and remove walk once, recording the predecessor at every level (the update
//!   path), and allocate nothing but the node itself (amortized: the arena is a `Vec`);
//! - [`SkipList::from_sorted_iter`] builds a list from sorted input in O(n) (snapshot load),
//!   which also lays the nodes out in key order, the best case for scans.
//!
//! Known trade-offs, measured at 1M random keys: a cold point get visits ~30 scattered nodes
//! and is 2-3x slower than `BTreeMap` (which reads 11 keys per node); nodes inserted in
//! random order sit at random arena positions, so a range scan costs about one cache miss
//! per entry (tens of times slower than `BTreeMap`'s leaves). At 10k keys gets are within 2x.
//!
//! Invariants: at every level the live nodes are in strictly increasing key order; a node
//! of height h is linked at levels 0..h; `len` counts the nodes reachable at level 0; the
//! head's levels at and above `height` are empty; each node's prefix is its key's
//! `order_prefix()`.

mod builder;
mod iter;
mod node;
mod prefix;
#[cfg(test)]
mod tests;

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::ops::{Bound, RangeBounds};

pub use builder::SortedBuilder;
pub use iter::{Iter, Range};
pub(crate) use node::MAX_HEIGHT;
use node::{Arena, LevelRng, DEFAULT_SEED, HEAD, NIL};
pub use prefix::OrderPrefix;

/// An ordered map from `K` to `V`, implemented as a skip list.
///
/// Lookups take any borrowed form of the key (`&[u8]` for `Bytes` keys), as `BTreeMap` does.
/// Ordered operations need `K: Ord + OrderPrefix`; [`OrderPrefix`] is implemented for byte
/// strings (`[u8]`, `Bytes`, `Vec<u8>`), strings and integers.
///
/// ```
/// use kvserver::skiplist::SkipList;
///
/// let mut list = SkipList::new();
/// list.insert("b", 2);
/// list.insert("a", 1);
/// assert_eq!(list.get("a"), Some(&1));
/// assert_eq!(list.iter().map(|(k, _)| *k).collect::<Vec<_>>(), ["a", "b"]);
/// ```
#[derive(Clone)]
pub struct SkipList<K, V> {
    arena: Arena<K, V>,
    /// Levels in use: the head's links at `height..` are all `NIL`. At least 1.
    height: usize,
    len: usize,
    rng: LevelRng,
}

impl<K, V> SkipList<K, V> {
    /// An empty list with the default (fixed) seed.
    pub fn new() -> Self {
        Self::with_seed(DEFAULT_SEED)
    }

    /// An empty list whose level generator starts from `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Self::with_seed_and_capacity(seed, 0)
    }

    /// An empty list with room for `capacity` entries before the arena grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_seed_and_capacity(DEFAULT_SEED, capacity)
    }

    fn with_seed_and_capacity(seed: u64, capacity: usize) -> Self {
        SkipList {
            arena: Arena::with_capacity(capacity),
            height: 1,
            len: 0,
            rng: LevelRng::new(seed),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every entry (the arena keeps its allocation).
    pub fn clear(&mut self) {
        self.arena.clear();
        self.height = 1;
        self.len = 0;
    }

    /// The entries in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter::new(&self.arena, self.arena.next(HEAD, 0), self.len)
    }

    /// The entry with the smallest key.
    pub fn first(&self) -> Option<(&K, &V)> {
        let first = self.arena.next(HEAD, 0);
        (first != NIL).then(|| self.arena.entry(first))
    }

    /// The entry with the largest key (O(log n)).
    pub fn last(&self) -> Option<(&K, &V)> {
        let mut cur = HEAD;
        for level in (0..self.height).rev() {
            loop {
                let next = self.arena.next(cur, level);
                if next == NIL {
                    break;
                }
                cur = next;
            }
        }
        (cur != HEAD).then(|| self.arena.entry(cur))
    }
}

impl<K: Ord + OrderPrefix, V> SkipList<K, V> {
    /// The value stored under `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + OrderPrefix + ?Sized,
    {
        let node = self.find(key);
        (node != NIL).then(|| self.arena.entry(node).1)
    }

    /// The value stored under `key`, mutably.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + OrderPrefix + ?Sized,
    {
        let node = self.find(key);
        (node != NIL).then(|| self.arena.value_mut(node))
    }

    /// Whether `key` is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + OrderPrefix + ?Sized,
    {
        self.find(key) != NIL
    }

    /// Stores `value` under `key`; returns the value it replaced. The key already stored is
    /// kept when the key was present (as `BTreeMap` does).
    ///
    /// # Panics
    /// When the list would hold more than `u32::MAX - 1` entries.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let mut update = [HEAD; MAX_HEIGHT];
        let found = self.find_path(&key, &mut update, false);
        if found != NIL {
            return Some(std::mem::replace(self.arena.value_mut(found), value));
        }
        let height = self.rng.random_height();
        // Levels above the current height have the head as predecessor: `update` starts
        // filled with HEAD.
        self.height = self.height.max(height);
        let prefix = key.order_prefix();
        let node = self.arena.alloc(key, prefix, value, height);
        for (level, &prev) in update.iter().enumerate().take(height) {
            let next = self.arena.next(prev, level);
            self.arena.set_next(node, level, next);
            self.arena.set_next(prev, level, node);
        }
        self.len += 1;
        None
    }

    /// Removes `key`; returns its value if it was present.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + OrderPrefix + ?Sized,
    {
        self.remove_entry(key).map(|(_, value)| value)
    }

    /// Removes `key`; returns the stored key and value if it was present.
    pub fn remove_entry<Q>(&mut self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Ord + OrderPrefix + ?Sized,
    {
        let mut update = [HEAD; MAX_HEIGHT];
        let found = self.find_path(key, &mut update, true);
        if found == NIL {
            return None;
        }
        let height = self.arena.height(found);
        for (level, &prev) in update.iter().enumerate().take(height) {
            let next = self.arena.next(found, level);
            self.arena.set_next(prev, level, next);
        }
        while self.height > 1 && self.arena.next(HEAD, self.height - 1) == NIL {
            self.height -= 1;
        }
        self.len -= 1;
        Some(self.arena.free(found))
    }

    /// The entries whose keys fall in `range`, in key order. A range whose start is after
    /// its end is empty (where `BTreeMap` would panic).
    pub fn range<Q, R>(&self, range: R) -> Range<'_, K, V>
    where
        K: Borrow<Q>,
        Q: Ord + OrderPrefix + ?Sized,
        R: RangeBounds<Q>,
    {
        let start = match range.start_bound() {
            Bound::Included(key) => self.lower_bound(key, true),
            Bound::Excluded(key) => self.lower_bound(key, false),
            Bound::Unbounded => self.arena.next(HEAD, 0),
        };
        let (stop, start_in_range) = match range.end_bound() {
            Bound::Included(key) => (
                self.lower_bound(key, false),
                start == NIL || self.arena.key(start).borrow() <= key,
            ),
            Bound::Excluded(key) => (
                self.lower_bound(key, true),
                start == NIL || self.arena.key(start).borrow() < key,
            ),
            Bound::Unbounded => (NIL, true),
        };
        let start = if start_in_range { start } else { stop };
        Range::new(&self.arena, start, stop)
    }

    /// The live node holding `key`, or `NIL`.
    #[inline]
    fn find<Q>(&self, key: &Q) -> u32
    where
        K: Borrow<Q>,
        Q: Ord + OrderPrefix + ?Sized,
    {
        let key_prefix = key.order_prefix();
        let mut cur = HEAD;
        let mut known_greater = NIL;
        for level in (0..self.height).rev() {
            loop {
                let next = self.arena.next(cur, level);
                if next == NIL || next == known_greater {
                    break;
                }
                match self.arena.cmp_key(next, key, key_prefix) {
                    Ordering::Less => cur = next,
                    Ordering::Equal => return next,
                    Ordering::Greater => {
                        known_greater = next;
                        break;
                    }
                }
            }
        }
        NIL
    }

    /// Like [`SkipList::find`], and records in `update[level]` the last node before `key` at
    /// every level below `self.height`. When the key is found and `full_path` is false, it
    /// returns at once and `update` is incomplete.
    fn find_path<Q>(&self, key: &Q, update: &mut [u32; MAX_HEIGHT], full_path: bool) -> u32
    where
        K: Borrow<Q>,
        Q: Ord + OrderPrefix + ?Sized,
    {
        let key_prefix = key.order_prefix();
        let mut cur = HEAD;
        let mut known_greater = NIL;
        let mut found = NIL;
        for level in (0..self.height).rev() {
            loop {
                let next = self.arena.next(cur, level);
                if next == NIL || next == known_greater || next == found {
                    break;
                }
                if found != NIL {
                    // Every node before `found` is smaller: no need to compare.
                    cur = next;
                    continue;
                }
                match self.arena.cmp_key(next, key, key_prefix) {
                    Ordering::Less => cur = next,
                    Ordering::Equal if !full_path => return next,
                    Ordering::Equal => {
                        found = next;
                        break;
                    }
                    Ordering::Greater => {
                        known_greater = next;
                        break;
                    }
                }
            }
            update[level] = cur;
        }
        found
    }

    /// The first node whose key is `>= key` (`inclusive`) or `> key`, or `NIL`.
    fn lower_bound<Q>(&self, key: &Q, inclusive: bool) -> u32
    where
        K: Borrow<Q>,
        Q: Ord + OrderPrefix + ?Sized,
    {
        let key_prefix = key.order_prefix();
        let mut cur = HEAD;
        let mut known_after = NIL;
        for level in (0..self.height).rev() {
            loop {
                let next = self.arena.next(cur, level);
                if next == NIL || next == known_after {
                    break;
                }
                let before = match self.arena.cmp_key(next, key, key_prefix) {
                    Ordering::Less => true,
                    Ordering::Equal => !inclusive,
                    Ordering::Greater => false,
                };
                if !before {
                    known_after = next;
                    break;
                }
                cur = next;
            }
        }
        self.arena.next(cur, 0)
    }
}

impl<K, V> Default for SkipList<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SkipList<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Two lists are equal when they hold the same entries (shape and seed do not matter).
impl<K: PartialEq, V: PartialEq> PartialEq for SkipList<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<K: Eq, V: Eq> Eq for SkipList<K, V> {}

impl<K: Ord + OrderPrefix, V> Extend<(K, V)> for SkipList<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (key, value) in iter {
            self.insert(key, value);
        }
    }
}

impl<K: Ord + OrderPrefix, V> FromIterator<(K, V)> for SkipList<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut list = SkipList::new();
        list.extend(iter);
        list
    }
}

impl<'a, K, V> IntoIterator for &'a SkipList<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
