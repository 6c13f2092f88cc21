//! O(n) construction of a [`SkipList`] from entries already in strictly increasing key order,
//! used when a snapshot is loaded (a million keys must load in well under a second).
//!
//! Invariant: `tails[level]` is the last node linked at `level` so far (the head when none),
//! so each push links the new node after the tails of its levels without any search.

use super::node::{DEFAULT_SEED, HEAD, MAX_HEIGHT};
use super::{OrderPrefix, SkipList};
use crate::error::OutOfOrderKey;

/// Builds a [`SkipList`] from sorted entries; see [`SkipList::from_sorted_iter`].
///
/// ```
/// use kvserver::skiplist::SortedBuilder;
///
/// let mut builder = SortedBuilder::with_capacity(2);
/// builder.push(1, "a").unwrap();
/// builder.push(2, "b").unwrap();
/// assert!(builder.push(2, "again").is_err());
/// let list = builder.finish();
/// assert_eq!(list.len(), 2);
/// ```
pub struct SortedBuilder<K, V> {
    list: SkipList<K, V>,
    tails: [u32; MAX_HEIGHT],
}

impl<K: Ord + OrderPrefix, V> SortedBuilder<K, V> {
    /// A builder with room for `capacity` entries before the arena grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_seed_and_capacity(DEFAULT_SEED, capacity)
    }

    /// A builder whose list uses the level-generator seed `seed`.
    pub fn with_seed_and_capacity(seed: u64, capacity: usize) -> Self {
        SortedBuilder {
            list: SkipList::with_seed_and_capacity(seed, capacity),
            tails: [HEAD; MAX_HEIGHT],
        }
    }

    /// Appends an entry whose key must be greater than every key pushed before.
    ///
    /// # Errors
    /// [`OutOfOrderKey`] when `key` is not greater than the previous key; the entry is
    /// dropped and the builder is unchanged.
    pub fn push(&mut self, key: K, value: V) -> Result<(), OutOfOrderKey> {
        let last = self.tails[0];
        if last != HEAD && *self.list.arena.key(last) >= key {
            return Err(OutOfOrderKey {
                position: self.list.len,
            });
        }
        let height = self.list.rng.random_height();
        let prefix = key.order_prefix();
        let node = self.list.arena.alloc(key, prefix, value, height);
        for (level, tail) in self.tails.iter_mut().enumerate().take(height) {
            self.list.arena.set_next(*tail, level, node);
            *tail = node;
        }
        self.list.height = self.list.height.max(height);
        self.list.len += 1;
        Ok(())
    }

    /// Entries pushed so far.
    pub fn len(&self) -> usize {
        self.list.len
    }

    /// Whether nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.list.len == 0
    }

    /// The finished list.
    pub fn finish(self) -> SkipList<K, V> {
        self.list
    }
}

impl<K, V> std::fmt::Debug for SortedBuilder<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SortedBuilder")
            .field("len", &self.list.len)
            .finish_non_exhaustive()
    }
}

impl<K: Ord + OrderPrefix, V> SkipList<K, V> {
    /// Builds a list in O(n) from entries in strictly increasing key order.
    ///
    /// # Errors
    /// [`OutOfOrderKey`] at the first entry whose key is not greater than the one before.
    pub fn from_sorted_iter<I>(iter: I) -> Result<Self, OutOfOrderKey>
    where
        I: IntoIterator<Item = (K, V)>,
    {
        let iter = iter.into_iter();
        let mut builder = SortedBuilder::with_capacity(iter.size_hint().0);
        for (key, value) in iter {
            builder.push(key, value)?;
        }
        Ok(builder.finish())
    }
}
