//! In-order iterators over a [`SkipList`](super::SkipList): they walk level 0 of the arena.
//!
//! Invariant: an iterator borrows the list, so the links it follows cannot change under it;
//! [`Range`] stops at a node found up front (the first node past the end bound), so it never
//! compares keys while iterating.

use std::iter::FusedIterator;

use super::node::{Arena, NIL};

/// Iterator over all entries in key order; see [`SkipList::iter`](super::SkipList::iter).
pub struct Iter<'a, K, V> {
    arena: &'a Arena<K, V>,
    next: u32,
    remaining: usize,
}

impl<'a, K, V> Iter<'a, K, V> {
    pub(super) fn new(arena: &'a Arena<K, V>, first: u32, len: usize) -> Self {
        Iter {
            arena,
            next: first,
            remaining: len,
        }
    }
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.next == NIL {
            return None;
        }
        let node = self.next;
        self.next = self.arena.next(node, 0);
        self.remaining -= 1;
        Some(self.arena.entry(node))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {}
impl<K, V> FusedIterator for Iter<'_, K, V> {}

impl<K, V> Clone for Iter<'_, K, V> {
    fn clone(&self) -> Self {
        Iter {
            arena: self.arena,
            next: self.next,
            remaining: self.remaining,
        }
    }
}

impl<K, V> std::fmt::Debug for Iter<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("remaining", &self.remaining)
            .finish()
    }
}

/// Iterator over the entries of a key range in key order; see
/// [`SkipList::range`](super::SkipList::range).
pub struct Range<'a, K, V> {
    arena: &'a Arena<K, V>,
    next: u32,
    /// The first node not in the range (`NIL` when the range runs to the end).
    stop: u32,
}

impl<'a, K, V> Range<'a, K, V> {
    pub(super) fn new(arena: &'a Arena<K, V>, start: u32, stop: u32) -> Self {
        Range {
            arena,
            next: start,
            stop,
        }
    }
}

impl<'a, K, V> Iterator for Range<'a, K, V> {
    type Item = (&'a K, &'a V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.next == self.stop || self.next == NIL {
            return None;
        }
        let node = self.next;
        self.next = self.arena.next(node, 0);
        Some(self.arena.entry(node))
    }
}

impl<K, V> FusedIterator for Range<'_, K, V> {}

impl<K, V> Clone for Range<'_, K, V> {
    fn clone(&self) -> Self {
        Range {
            arena: self.arena,
            next: self.next,
            stop: self.stop,
        }
    }
}

impl<K, V> std::fmt::Debug for Range<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Range").finish_non_exhaustive()
    }
}
