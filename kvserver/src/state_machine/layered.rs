//! `LayeredMap`: the state machine's key-value data, with point-in-time views that cost
//! O(1) to take, so a snapshot of millions of keys never stops the applier.
//!
//! Why: encoding 2M keys (half a gigabyte) takes seconds. Encoded on the applier under the
//! state machine's lock, it held up every apply and every reply for that long (BENCHMARKS.md,
//! "Large data sets"). A deep copy costs as much memory as the data and still pauses for
//! the copy.
//!
//! Design: a frozen generation plus a delta. Taking a view ([`LayeredMap::freeze`]) shares
//! the current skip list (an `Arc` clone); while it is shared, writes go to a small ordered
//! delta in front of it (key -> value, or a tombstone) and reads look in the delta first.
//! Once every view is dropped, [`LayeredMap::settle`] folds the delta back into the skip
//! list a bounded number of entries at a time, so no single apply round pays for all the
//! writes made during the snapshot; meanwhile writes go straight to the skip list and drop
//! their key's delta entry, so a later fold never brings back an older value. The delta's
//! size is the number of distinct keys written while the snapshot was being encoded.
//!
//! Invariants:
//! - a key's delta entry, when there is one, is newer than its skip-list entry;
//! - while the skip list is shared (a view is alive) it is never modified;
//! - `len` is the number of live keys (the delta over the skip list);
//! - a view is only taken when the delta is empty, so the skip list alone is the state.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::iter::Peekable;
use std::sync::Arc;

use bytes::Bytes;

use crate::skiplist::{self, SkipList};

/// The data as of one moment, shared with whoever encodes it.
pub type FrozenData = Arc<SkipList<Bytes, Bytes>>;

/// An ordered map of byte strings with cheap point-in-time views (see the module docs).
pub(crate) struct LayeredMap {
    base: FrozenData,
    /// Writes made while `base` was shared: `None` is a deletion.
    delta: BTreeMap<Bytes, Option<Bytes>>,
    len: usize,
}

impl LayeredMap {
    /// A map holding `base`.
    pub(crate) fn new(base: SkipList<Bytes, Bytes>) -> Self {
        LayeredMap {
            len: base.len(),
            base: Arc::new(base),
            delta: BTreeMap::new(),
        }
    }

    /// Number of live keys.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The value under `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Bytes> {
        match self.delta.get(key) {
            Some(entry) => entry.as_ref(),
            None => self.base.get(key),
        }
    }

    /// Sets `key` to `value`; returns the previous value.
    pub(crate) fn insert(&mut self, key: Bytes, value: Bytes) -> Option<Bytes> {
        let previous = match Arc::get_mut(&mut self.base) {
            Some(base) => {
                let shadowed = self.delta.remove(&key[..]);
                let in_base = base.insert(key, value);
                shadowed.unwrap_or(in_base)
            }
            None => match self.delta.insert(key.clone(), Some(value)) {
                Some(shadowed) => shadowed,
                None => self.base.get(&key[..]).cloned(),
            },
        };
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// Removes `key`; returns its value if it had one.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Bytes> {
        let previous = match Arc::get_mut(&mut self.base) {
            Some(base) => {
                let shadowed = self.delta.remove(key);
                let in_base = base.remove(key);
                shadowed.unwrap_or(in_base)
            }
            None => {
                let previous = self.get(key).cloned();
                if previous.is_some() {
                    if self.base.contains_key(key) {
                        self.delta.insert(Bytes::copy_from_slice(key), None);
                    } else {
                        self.delta.remove(key);
                    }
                }
                previous
            }
        };
        if previous.is_some() {
            self.len -= 1;
        }
        previous
    }

    /// A view of the data as it is now, or `None` while an earlier view is alive or its
    /// writes are not folded back yet ([`LayeredMap::settle`]). O(1).
    pub(crate) fn freeze(&mut self) -> Option<FrozenData> {
        if !self.delta.is_empty() || Arc::get_mut(&mut self.base).is_none() {
            return None;
        }
        Some(self.base.clone())
    }

    /// Folds up to `budget` delta entries into the skip list once no view is alive.
    /// Returns whether the delta is now empty.
    pub(crate) fn settle(&mut self, budget: usize) -> bool {
        let Some(base) = Arc::get_mut(&mut self.base) else {
            return self.delta.is_empty();
        };
        for _ in 0..budget {
            match self.delta.pop_first() {
                Some((key, Some(value))) => {
                    base.insert(key, value);
                }
                Some((key, None)) => {
                    base.remove(&key[..]);
                }
                None => break,
            }
        }
        self.delta.is_empty()
    }

    /// Entries written since the last view and not yet folded back.
    #[cfg(test)]
    pub(crate) fn delta_len(&self) -> usize {
        self.delta.len()
    }

    /// The live entries in key order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        Iter {
            base: self.base.iter().peekable(),
            delta: self.delta.iter().peekable(),
        }
    }
}

impl Clone for LayeredMap {
    /// A deep copy: the clone shares nothing, so neither blocks the other's views.
    fn clone(&self) -> Self {
        LayeredMap {
            base: Arc::new(SkipList::clone(&self.base)),
            delta: self.delta.clone(),
            len: self.len,
        }
    }
}

impl PartialEq for LayeredMap {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for LayeredMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayeredMap")
            .field("len", &self.len)
            .field("delta_len", &self.delta.len())
            .field("views", &(Arc::strong_count(&self.base) - 1))
            .finish()
    }
}

/// The live entries of a [`LayeredMap`] in key order: a merge of the skip list and the
/// delta in which the delta wins and tombstones hide.
pub(crate) struct Iter<'a> {
    base: Peekable<skiplist::Iter<'a, Bytes, Bytes>>,
    delta: Peekable<std::collections::btree_map::Iter<'a, Bytes, Option<Bytes>>>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Bytes, &'a Bytes);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let order = match (self.base.peek(), self.delta.peek()) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((base_key, _)), Some((delta_key, _))) => base_key.cmp(delta_key),
            };
            if order == Ordering::Less {
                return self.base.next();
            }
            if order == Ordering::Equal {
                self.base.next();
            }
            if let Some((key, Some(value))) = self.delta.next() {
                return Some((key, value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn map_of(pairs: &[(&str, &str)]) -> LayeredMap {
        let mut map = LayeredMap::new(SkipList::new());
        for (k, v) in pairs {
            map.insert(b(k), b(v));
        }
        map
    }

    fn entries<'a>(iter: impl Iterator<Item = (&'a Bytes, &'a Bytes)>) -> Vec<(Bytes, Bytes)> {
        iter.map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    #[test]
    fn a_view_never_sees_later_writes_and_never_misses_earlier_ones() {
        let mut map = map_of(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let view = map.freeze().expect("nothing else holds a view");
        map.insert(b("a"), b("changed"));
        map.insert(b("d"), b("new"));
        assert_eq!(map.remove(b"b"), Some(b("2")));
        assert_eq!(map.remove(b"zz"), None);
        assert_eq!(
            entries(view.iter()),
            vec![(b("a"), b("1")), (b("b"), b("2")), (b("c"), b("3"))]
        );
        assert_eq!(
            entries(map.iter()),
            vec![(b("a"), b("changed")), (b("c"), b("3")), (b("d"), b("new"))]
        );
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(b"b"), None);
        assert_eq!(map.get(b"a"), Some(&b("changed")));
    }

    #[test]
    fn a_second_view_waits_for_the_first_and_for_the_fold() {
        let mut map = map_of(&[("a", "1")]);
        let view = map.freeze().unwrap();
        assert!(map.freeze().is_none(), "one view at a time");
        map.insert(b("b"), b("2"));
        assert!(!map.settle(100), "cannot fold while the view is alive");
        drop(view);
        assert!(map.freeze().is_none(), "the delta is not folded yet");
        assert!(map.settle(100));
        let view = map.freeze().unwrap();
        assert_eq!(
            entries(view.iter()),
            vec![(b("a"), b("1")), (b("b"), b("2"))]
        );
    }

    #[test]
    fn writes_during_a_partial_fold_are_not_undone_by_it() {
        let mut map = map_of(&[("a", "1"), ("b", "1"), ("c", "1")]);
        let view = map.freeze().unwrap();
        map.insert(b("a"), b("2"));
        map.remove(b"b");
        map.insert(b("c"), b("2"));
        drop(view);
        assert!(!map.settle(1)); // folds "a" only
        map.insert(b("b"), b("3"));
        map.remove(b"c");
        assert!(map.settle(10));
        assert_eq!(
            entries(map.iter()),
            vec![(b("a"), b("2")), (b("b"), b("3"))]
        );
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn a_key_added_and_removed_under_a_view_leaves_nothing_behind() {
        let mut map = map_of(&[("a", "1")]);
        let view = map.freeze().unwrap();
        map.insert(b("x"), b("1"));
        assert_eq!(map.remove(b"x"), Some(b("1")));
        assert_eq!(map.delta_len(), 0);
        assert_eq!(map.len(), 1);
        drop(view);
    }

    /// Random operations against a `BTreeMap` model, with views taken, checked and
    /// released, and folds of random sizes, at random points.
    #[test]
    fn agrees_with_a_model_and_every_view_is_its_moment() {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for _round in 0..20 {
            let mut map = LayeredMap::new(SkipList::new());
            let mut model: BTreeMap<Bytes, Bytes> = BTreeMap::new();
            let mut view: Option<(FrozenData, BTreeMap<Bytes, Bytes>)> = None;
            for step in 0..3000 {
                let key = Bytes::from(format!("k{:03}", next(200)));
                match next(100) {
                    0..=44 => {
                        let value = Bytes::from(format!("v{step}"));
                        assert_eq!(
                            map.insert(key.clone(), value.clone()),
                            model.insert(key, value)
                        );
                    }
                    45..=74 => assert_eq!(map.remove(&key), model.remove(&key)),
                    75..=89 => assert_eq!(map.get(&key), model.get(&key)),
                    90..=94 => {
                        if view.is_none() {
                            if let Some(frozen) = map.freeze() {
                                view = Some((frozen, model.clone()));
                            }
                        }
                    }
                    95..=97 => {
                        if let Some((frozen, at_freeze)) = view.take() {
                            assert!(frozen.iter().eq(at_freeze.iter()));
                        }
                    }
                    _ => {
                        map.settle(next(50) as usize);
                    }
                }
                assert_eq!(map.len(), model.len());
            }
            assert!(map.iter().eq(model.iter()));
            if let Some((frozen, at_freeze)) = view {
                assert!(frozen.iter().eq(at_freeze.iter()));
            }
        }
    }
}
