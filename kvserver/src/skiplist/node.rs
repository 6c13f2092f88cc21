//! The skip list's arena: nodes in one `Vec`, linked by `u32` indexes instead of pointers
//! (the workspace forbids `unsafe`), plus the seeded level generator.
//!
//! Layout, chosen by measurement (see `benches/skiplist.rs` and the module docs of
//! [`super`]): each node keeps its first [`INLINE_LINKS`] next-links inline, next to its key,
//! so a search step touches one node; the rare taller towers (1 in 4^INLINE_LINKS nodes with
//! p = 1/4) keep their upper links in fixed-size segments of a shared `overflow_links` vector.
//!
//! Invariants:
//! - node 0 is the head: no entry, full height, never freed;
//! - a node is either live (`entry` is `Some`, reachable at level 0) or on the free list
//!   (`entry` is `None`, chained through `links[0]`);
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

/// One arena slot.
#[derive(Clone)]
pub(super) struct Node<K, V> {
    /// Next-links for levels `0..min(height, INLINE_LINKS)`.
    pub(super) links: [u32; INLINE_LINKS],
    /// Start of this node's overflow segment, or `NIL` when `height <= INLINE_LINKS`.
    pub(super) overflow: u32,
    /// Tower height, `1..=MAX_HEIGHT`.
    pub(super) height: u8,
    /// The key's [`OrderPrefix`](super::OrderPrefix), compared before the key itself.
    pub(super) prefix: u64,
    /// The key and value; `None` while the slot is on the free list.
    pub(super) entry: Option<(K, V)>,
}

/// Nodes, overflow links and their free lists.
#[derive(Clone)]
pub(super) struct Arena<K, V> {
    pub(super) nodes: Vec<Node<K, V>>,
    overflow_links: Vec<u32>,
    free_node: u32,
    free_overflow: u32,
}

impl<K, V> Arena<K, V> {
    /// An arena holding only the head node, with room for `capacity` entries.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        let mut arena = Arena {
            nodes: Vec::with_capacity(capacity.saturating_add(1)),
            overflow_links: Vec::new(),
            free_node: NIL,
            free_overflow: NIL,
        };
        let head_overflow = arena.alloc_overflow();
        arena.nodes.push(Node {
            links: [NIL; INLINE_LINKS],
            overflow: head_overflow,
            height: MAX_HEIGHT as u8,
            prefix: 0,
            entry: None,
        });
        arena
    }

    /// Drops every entry, keeping the allocations.
    pub(super) fn clear(&mut self) {
        self.nodes.truncate(1);
        self.overflow_links.truncate(OVERFLOW_SEGMENT);
        self.overflow_links.fill(NIL);
        self.nodes[HEAD as usize].links = [NIL; INLINE_LINKS];
        self.free_node = NIL;
        self.free_overflow = NIL;
    }

    /// Slots in use or on the free list, including the head.
    #[cfg(test)]
    pub(super) fn slots(&self) -> usize {
        self.nodes.len()
    }

    /// Length of the node free list.
    #[cfg(test)]
    pub(super) fn free_slots(&self) -> usize {
        let mut count = 0;
        let mut cur = self.free_node;
        while cur != NIL {
            count += 1;
            cur = self.nodes[cur as usize].links[0];
        }
        count
    }

    /// The node after `node` at `level`. `level` must be below the node's height.
    #[inline]
    pub(super) fn next(&self, node: u32, level: usize) -> u32 {
        let n = &self.nodes[node as usize];
        if level < INLINE_LINKS {
            n.links[level]
        } else {
            self.overflow_links[n.overflow as usize + (level - INLINE_LINKS)]
        }
    }

    /// Points `node`'s link at `level` to `to`.
    #[inline]
    pub(super) fn set_next(&mut self, node: u32, level: usize, to: u32) {
        let n = &mut self.nodes[node as usize];
        if level < INLINE_LINKS {
            n.links[level] = to;
        } else {
            let at = n.overflow as usize + (level - INLINE_LINKS);
            self.overflow_links[at] = to;
        }
    }

    /// The key of a live node.
    ///
    /// # Panics
    /// If `node` is free: a link to a free node is a broken invariant.
    #[inline]
    pub(super) fn key(&self, node: u32) -> &K {
        match &self.nodes[node as usize].entry {
            Some((key, _)) => key,
            None => panic!("skip list invariant broken: node {node} is linked but free"),
        }
    }

    /// Compares a live node's key with `key`, whose prefix is `key_prefix`: the prefixes
    /// first, the keys only when the prefixes are equal (same panics as [`Arena::key`]).
    #[inline]
    pub(super) fn cmp_key<Q>(&self, node: u32, key: &Q, key_prefix: u64) -> Ordering
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let n = &self.nodes[node as usize];
        match n.prefix.cmp(&key_prefix) {
            Ordering::Equal => match &n.entry {
                Some((stored, _)) => stored.borrow().cmp(key),
                None => panic!("skip list invariant broken: node {node} is linked but free"),
            },
            unequal => unequal,
        }
    }

    /// The key and value of a live node (same panics as [`Arena::key`]).
    #[inline]
    pub(super) fn entry(&self, node: u32) -> (&K, &V) {
        match &self.nodes[node as usize].entry {
            Some((key, value)) => (key, value),
            None => panic!("skip list invariant broken: node {node} is linked but free"),
        }
    }

    /// The value of a live node, mutably (same panics as [`Arena::key`]).
    #[inline]
    pub(super) fn value_mut(&mut self, node: u32) -> &mut V {
        match &mut self.nodes[node as usize].entry {
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
        let node = Node {
            links: [NIL; INLINE_LINKS],
            overflow,
            height: height as u8,
            prefix,
            entry: Some((key, value)),
        };
        if self.free_node != NIL {
            let index = self.free_node;
            self.free_node = self.nodes[index as usize].links[0];
            self.nodes[index as usize] = node;
            return index;
        }
        let index = self.nodes.len();
        assert!(index < NIL as usize, "skip list is full ({index} nodes)");
        self.nodes.push(node);
        index as u32
    }

    /// Unlinked node `index` goes to the free list; returns its entry.
    pub(super) fn free(&mut self, index: u32) -> (K, V) {
        let node = &mut self.nodes[index as usize];
        let entry = match node.entry.take() {
            Some(entry) => entry,
            None => panic!("skip list invariant broken: node {index} freed twice"),
        };
        let segment = std::mem::replace(&mut node.overflow, NIL);
        node.links[0] = self.free_node;
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
