//! The skip list's arena: nodes in one `Vec`, linked by `u32` indexes instead of pointers
//! (the workspace forbids `unsafe`), plus the seeded level generator.
//!
//! Layout, chosen by measurement (see the module docs of [`super`]): a node is split in two
//! parallel vectors. Its 32-byte tower (key prefix, the first [`INLINE_LINKS`] next-links,
//! height) is all a search step reads; its key and value sit in `entries`, read only when
//! prefixes tie. The rare taller towers (1 in 4^INLINE_LINKS nodes with p = 1/4) keep their
//! upper links in fixed-size segments of a shared `overflow_links` vector.
//!
//! Invariants:
//! - `towers` and `entries` have the same length; index i of both is node i;
//! - node 0 is the head: no entry, full height, never freed;
//! - a node is either live (entry `Some`, reachable at level 0) or on the free list
//!   (entry `None`, chained through `links[0]`);
//! - a node of height > `INLINE_LINKS` owns exactly one overflow segment, and freed
//!   segments are chained through their first slot.

use std::borrow::Borrow;
use std::cmp::Ordering;

/// The most levels a tower can have. With p = 1/4, 16 levels index 4^16 = 2^32 entries,
/// which is all that `u32` node indexes can address.
pub(crate) const MAX_HEIGHT: usize = 16;
/// Next-links stored inside the node itself; levels above live in an overflow segment.
pub(super) const INLINE_LINKS: usize = 4;
/// Links per overflow segment.
const OVERFLOW_SEGMENT: usize = MAX_HEIGHT - INLINE_LINKS;
/// log2(1/p): each extra level is kept with probability 1/4.
const LEVEL_BITS: u32 = 2;
/// The "no node" link.
pub(super) const NIL: u32 = u32::MAX;
/// The head node's index.
pub(super) const HEAD: u32 = 0;
/// Default seed of the level generator, so that a list's shape is reproducible.
pub(super) const DEFAULT_SEED: u64 = 0x5EED_5C1B_11A7_0001;

/// The part of a node a search reads: key prefix, links and height, 32 bytes, two per cache
/// line. Keys and values live in a parallel vector, touched only when prefixes tie and at
/// the end of a search.
#[derive(Clone, Copy)]
struct Tower {
    /// The key's [`OrderPrefix`](super::OrderPrefix), compared before the key itself.
    prefix: u64,
    /// Next-links for levels `0..min(height, INLINE_LINKS)`.
    links: [u32; INLINE_LINKS],
    /// Start of this node's overflow segment, or `NIL` when `height <= INLINE_LINKS`.
    overflow: u32,
    /// Tower height, `1..=MAX_HEIGHT`.
    height: u8,
}

/// Nodes (towers plus entries, same index), overflow links and their free lists.
#[derive(Clone)]
pub(super) struct Arena<K, V> {
    towers: Vec<Tower>,
    /// The key and value of each node; `None` for the head and for free slots.
    entries: Vec<Option<(K, V)>>,
    overflow_links: Vec<u32>,
    free_node: u32,
    free_overflow: u32,
}

impl<K, V> Arena<K, V> {
    /// An arena holding only the head node, with room for `capacity` entries.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        let mut arena = Arena {
            towers: Vec::with_capacity(capacity.saturating_add(1)),
            entries: Vec::with_capacity(capacity.saturating_add(1)),
            overflow_links: Vec::new(),
            free_node: NIL,
            free_overflow: NIL,
        };
        let head_overflow = arena.alloc_overflow();
        arena.towers.push(Tower {
            prefix: 0,
            links: [NIL; INLINE_LINKS],
            overflow: head_overflow,
            height: MAX_HEIGHT as u8,
        });
        arena.entries.push(None);
        arena
    }

    /// Drops every entry, keeping the allocations.
    pub(super) fn clear(&mut self) {
        self.towers.truncate(1);
        self.entries.truncate(1);
        self.overflow_links.truncate(OVERFLOW_SEGMENT);
        self.overflow_links.fill(NIL);
        self.towers[HEAD as usize].links = [NIL; INLINE_LINKS];
        self.free_node = NIL;
        self.free_overflow = NIL;
    }

    /// Slots in use or on the free list, including the head.
    #[cfg(test)]
    pub(super) fn slots(&self) -> usize {
        self.towers.len()
    }

    /// Length of the node free list.
    #[cfg(test)]
    pub(super) fn free_slots(&self) -> usize {
        let mut count = 0;
        let mut cur = self.free_node;
        while cur != NIL {
            count += 1;
            cur = self.towers[cur as usize].links[0];
        }
        count
    }

    /// The tower height of `node`.
    #[inline]
    pub(super) fn height(&self, node: u32) -> usize {
        usize::from(self.towers[node as usize].height)
    }

    /// The node after `node` at `level`. `level` must be below the node's height.
    #[inline]
    pub(super) fn next(&self, node: u32, level: usize) -> u32 {
        let tower = &self.towers[node as usize];
        if level < INLINE_LINKS {
            tower.links[level]
        } else {
            self.overflow_links[tower.overflow as usize + (level - INLINE_LINKS)]
        }
    }

    /// Points `node`'s link at `level` to `to`.
    #[inline]
    pub(super) fn set_next(&mut self, node: u32, level: usize, to: u32) {
        let tower = &mut self.towers[node as usize];
        if level < INLINE_LINKS {
            tower.links[level] = to;
        } else {
            let at = tower.overflow as usize + (level - INLINE_LINKS);
            self.overflow_links[at] = to;
        }
    }

    /// The key of a live node.
    ///
    /// # Panics
    /// If `node` is free: a link to a free node is a broken invariant.
    #[inline]
    pub(super) fn key(&self, node: u32) -> &K {
        self.entry(node).0
    }

    /// Compares a live node's key with `key`, whose prefix is `key_prefix`: the prefixes
    /// first, the keys only when the prefixes are equal (same panics as [`Arena::key`]).
    #[inline]
    pub(super) fn cmp_key<Q>(&self, node: u32, key: &Q, key_prefix: u64) -> Ordering
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.towers[node as usize].prefix.cmp(&key_prefix) {
            Ordering::Equal => self.key(node).borrow().cmp(key),
            unequal => unequal,
        }
    }

    /// The key and value of a live node (same panics as [`Arena::key`]).
    #[inline]
    pub(super) fn entry(&self, node: u32) -> (&K, &V) {
        match &self.entries[node as usize] {
            Some((key, value)) => (key, value),
            None => panic!("skip list invariant broken: node {node} is linked but free"),
        }
    }

    /// The value of a live node, mutably (same panics as [`Arena::key`]).
    #[inline]
    pub(super) fn value_mut(&mut self, node: u32) -> &mut V {
        match &mut self.entries[node as usize] {
            Some((_, value)) => value,
            None => panic!("skip list invariant broken: node {node} is linked but free"),
        }
    }

    /// A new unlinked node (all links `NIL`), reusing a free slot when there is one.
    ///
    /// # Panics
    /// When the arena would exceed `u32::MAX - 1` nodes.
    pub(super) fn alloc(&mut self, key: K, prefix: u64, value: V, height: usize) -> u32 {
        let overflow = if height > INLINE_LINKS {
            self.alloc_overflow()
        } else {
            NIL
        };
        let tower = Tower {
            prefix,
            links: [NIL; INLINE_LINKS],
            overflow,
            height: height as u8,
        };
        if self.free_node != NIL {
            let index = self.free_node;
            self.free_node = self.towers[index as usize].links[0];
            self.towers[index as usize] = tower;
            self.entries[index as usize] = Some((key, value));
            return index;
        }
        let index = self.towers.len();
        assert!(index < NIL as usize, "skip list is full ({index} nodes)");
        self.towers.push(tower);
        self.entries.push(Some((key, value)));
        index as u32
    }

    /// Unlinked node `index` goes to the free list; returns its entry.
    pub(super) fn free(&mut self, index: u32) -> (K, V) {
        let entry = match self.entries[index as usize].take() {
            Some(entry) => entry,
            None => panic!("skip list invariant broken: node {index} freed twice"),
        };
        let tower = &mut self.towers[index as usize];
        let segment = std::mem::replace(&mut tower.overflow, NIL);
        tower.links[0] = self.free_node;
        self.free_node = index;
        if segment != NIL {
            self.overflow_links[segment as usize] = self.free_overflow;
            self.free_overflow = segment;
        }
        entry
    }

    fn alloc_overflow(&mut self) -> u32 {
        if self.free_overflow != NIL {
            let segment = self.free_overflow;
            self.free_overflow = self.overflow_links[segment as usize];
            self.overflow_links[segment as usize..segment as usize + OVERFLOW_SEGMENT].fill(NIL);
            return segment;
        }
        let segment = self.overflow_links.len();
        assert!(segment < NIL as usize, "skip list overflow links are full");
        self.overflow_links.resize(segment + OVERFLOW_SEGMENT, NIL);
        segment as u32
    }

    /// Every slot's height, in arena order (tests compare shapes).
    #[cfg(test)]
    pub(super) fn heights(&self) -> Vec<u8> {
        self.towers.iter().map(|t| t.height).collect()
    }
}

/// The level generator: splitmix64, seeded, so every list built by the same sequence of
/// operations from the same seed has the same shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct LevelRng {
    state: u64,
}

impl LevelRng {
    pub(super) fn new(seed: u64) -> Self {
        LevelRng { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A tower height in `1..=MAX_HEIGHT`; each extra level with probability 1/4.
    pub(super) fn random_height(&mut self) -> usize {
        let zeros = self.next_u64().trailing_zeros() / LEVEL_BITS;
        (1 + zeros as usize).min(MAX_HEIGHT)
    }
}
