//! Tests of the skip list: unit cases, an invariant checker over the arena, and a proptest
//! model check against `BTreeMap` whose operations include a `Restart` that round-trips the
//! whole map through the state-machine snapshot encoding.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use proptest::prelude::*;
use raft::LogIndex;

use super::node::{HEAD, NIL};
use super::{SkipList, SortedBuilder, MAX_HEIGHT};
use crate::sessions::Sessions;
use crate::snapshot;
use crate::state_machine::{Limits, StateMachine};

/// Checks every structural invariant of the list; panics with a description otherwise.
fn check_invariants<K: Ord + std::fmt::Debug, V>(list: &SkipList<K, V>) {
    let arena = &list.arena;
    assert!(
        (1..=MAX_HEIGHT).contains(&list.height),
        "height {} out of range",
        list.height
    );
    for level in list.height..MAX_HEIGHT {
        assert_eq!(
            arena.next(HEAD, level),
            NIL,
            "head level {level} above height not empty"
        );
    }
    let mut live = 0;
    for level in 0..list.height {
        let mut cur = arena.next(HEAD, level);
        let mut prev: Option<&K> = None;
        let mut count = 0;
        while cur != NIL {
            let height = arena.height(cur);
            assert!(
                height > level,
                "node {cur} of height {height} linked at level {level}"
            );
            let key = arena.key(cur);
            if let Some(prev) = prev {
                assert!(
                    prev < key,
                    "level {level} out of order: {prev:?} then {key:?}"
                );
            }
            prev = Some(key);
            count += 1;
            cur = arena.next(cur, level);
        }
        if level == 0 {
            live = count;
        }
    }
    assert_eq!(live, list.len(), "len disagrees with level 0");
    assert_eq!(live + arena.free_slots() + 1, arena.slots(), "slots leaked");
}

#[test]
fn empty_list_has_nothing() {
    let list: SkipList<u32, u32> = SkipList::new();
    assert!(list.is_empty());
    assert_eq!(list.get(&1), None);
    assert_eq!(list.first(), None);
    assert_eq!(list.last(), None);
    assert_eq!(list.iter().count(), 0);
    assert_eq!(list.range(1..5).count(), 0);
    check_invariants(&list);
}

#[test]
fn insert_replaces_and_returns_old_value() {
    let mut list = SkipList::new();
    assert_eq!(list.insert(3, "a"), None);
    assert_eq!(list.insert(3, "b"), Some("a"));
    assert_eq!(list.len(), 1);
    assert_eq!(list.get(&3), Some(&"b"));
    check_invariants(&list);
}

#[test]
fn iteration_is_in_key_order_and_exact_size() {
    let mut list = SkipList::with_seed(7);
    for key in [5u32, 1, 9, 3, 7, 2] {
        list.insert(key, key * 10);
    }
    let iter = list.iter();
    assert_eq!(iter.len(), 6);
    let keys: Vec<u32> = iter.map(|(k, _)| *k).collect();
    assert_eq!(keys, [1, 2, 3, 5, 7, 9]);
    assert_eq!(list.first(), Some((&1, &10)));
    assert_eq!(list.last(), Some((&9, &90)));
    check_invariants(&list);
}

#[test]
fn remove_returns_value_and_recycles_the_slot() {
    let mut list = SkipList::new();
    for key in 0..100u32 {
        list.insert(key, key);
    }
    let slots = list.arena.slots();
    for key in (0..100u32).step_by(2) {
        assert_eq!(list.remove(&key), Some(key));
        assert_eq!(list.remove(&key), None);
    }
    check_invariants(&list);
    for key in 100..150u32 {
        list.insert(key, key);
    }
    assert_eq!(
        list.arena.slots(),
        slots,
        "freed slots are reused before the arena grows"
    );
    check_invariants(&list);
}

#[test]
fn bytes_keys_are_queried_with_slices() {
    let mut list: SkipList<Bytes, Bytes> = SkipList::new();
    list.insert(Bytes::from_static(b"apple"), Bytes::from_static(b"1"));
    list.insert(Bytes::from_static(b"banana"), Bytes::from_static(b"2"));
    list.insert(Bytes::from_static(b"cherry"), Bytes::from_static(b"3"));
    assert_eq!(list.get(&b"banana"[..]), Some(&Bytes::from_static(b"2")));
    assert!(list.contains_key(&b"apple"[..]));
    if let Some(value) = list.get_mut(&b"apple"[..]) {
        *value = Bytes::from_static(b"one");
    }
    assert_eq!(list.get(&b"apple"[..]).map(|v| &v[..]), Some(&b"one"[..]));
    let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Included(b"b"), Bound::Excluded(b"cherry"));
    let keys: Vec<&[u8]> = list.range::<[u8], _>(bounds).map(|(k, _)| &k[..]).collect();
    assert_eq!(keys, [&b"banana"[..]]);
    assert_eq!(list.remove(&b"cherry"[..]), Some(Bytes::from_static(b"3")));
    check_invariants(&list);
}

#[test]
fn range_covers_every_bound_kind() {
    let list: SkipList<u32, ()> = (0..20u32).map(|k| (k * 2, ())).collect();
    let keys = |r: super::Range<'_, u32, ()>| r.map(|(k, _)| *k).collect::<Vec<_>>();
    assert_eq!(keys(list.range(4..10)), [4, 6, 8]);
    assert_eq!(keys(list.range(4..=10)), [4, 6, 8, 10]);
    assert_eq!(keys(list.range(5..11)), [6, 8, 10]);
    assert_eq!(
        keys(list.range((Bound::Excluded(4), Bound::Included(8)))),
        [6, 8]
    );
    assert_eq!(keys(list.range(..3)), [0, 2]);
    assert_eq!(keys(list.range(35..)), [36, 38]);
    assert_eq!(keys(list.range(100..)), Vec::<u32>::new());
    assert_eq!(list.range(..).count(), 20);
}

#[test]
fn inverted_or_empty_ranges_yield_nothing() {
    let list: SkipList<u32, ()> = (0..20u32).map(|k| (k, ())).collect();
    assert_eq!(
        list.range((Bound::Included(10), Bound::Included(5)))
            .count(),
        0
    );
    assert_eq!(
        list.range((Bound::Excluded(5), Bound::Excluded(5))).count(),
        0
    );
    assert_eq!(
        list.range((Bound::Included(5), Bound::Excluded(5))).count(),
        0
    );
    assert_eq!(
        list.range((Bound::Excluded(5), Bound::Included(6))).count(),
        1
    );
}

#[test]
fn clear_empties_and_the_list_stays_usable() {
    let mut list: SkipList<u32, u32> = (0..1000u32).map(|k| (k, k)).collect();
    list.clear();
    assert!(list.is_empty());
    check_invariants(&list);
    list.insert(1, 1);
    assert_eq!(list.get(&1), Some(&1));
    check_invariants(&list);
}

#[test]
fn same_seed_and_operations_build_the_same_shape() {
    let build = |seed| {
        let mut list = SkipList::with_seed(seed);
        for key in 0..500u32 {
            list.insert(key.wrapping_mul(2_654_435_761), key);
        }
        list.arena.heights()
    };
    assert_eq!(build(1), build(1));
    assert_ne!(build(1), build(2));
}

#[test]
fn tall_towers_use_overflow_links_correctly() {
    // Enough keys that some towers exceed the inline links.
    let mut list: SkipList<u32, u32> = SkipList::with_seed(3);
    for key in 0..20_000u32 {
        list.insert(key.wrapping_mul(2_654_435_761), key);
    }
    assert!(
        list.height > super::node::INLINE_LINKS,
        "test needs overflow towers"
    );
    check_invariants(&list);
    for key in 0..20_000u32 {
        assert_eq!(list.remove(&key.wrapping_mul(2_654_435_761)), Some(key));
    }
    check_invariants(&list);
    assert_eq!(list.height, 1, "height shrinks back when the list empties");
}

#[test]
fn sorted_builder_rejects_out_of_order_keys() {
    let mut builder = SortedBuilder::with_capacity(3);
    builder.push(1, ()).unwrap();
    builder.push(5, ()).unwrap();
    assert_eq!(builder.push(5, ()).unwrap_err().position, 2);
    assert_eq!(builder.push(3, ()).unwrap_err().position, 2);
    builder.push(6, ()).unwrap();
    let list = builder.finish();
    assert_eq!(list.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [1, 5, 6]);
    check_invariants(&list);
    assert!(SkipList::from_sorted_iter([(2, ()), (1, ())]).is_err());
}

#[test]
fn clone_and_equality_compare_contents() {
    let a: SkipList<u32, u32> = (0..100u32).map(|k| (k, k)).collect();
    let b = SkipList::from_sorted_iter((0..100u32).map(|k| (k, k))).unwrap();
    assert_eq!(a, b);
    let mut c = a.clone();
    assert_eq!(a, c);
    c.insert(1000, 0);
    assert_ne!(a, c);
    assert_eq!(format!("{:?}", SkipList::from_iter([(1, 2)])), "{1: 2}");
}

// ---- Model test against BTreeMap -------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Insert(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
    Get(Vec<u8>),
    Range(Bound<Vec<u8>>, Bound<Vec<u8>>),
    Iter,
    Len,
    FirstLast,
    /// Round-trips the map through the snapshot encoding, as a node restart does.
    Restart,
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    // A small alphabet and short keys make collisions (overwrites, removes of present keys)
    // common.
    prop::collection::vec(0u8..4, 0..4)
}

fn bound_strategy() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        key_strategy().prop_map(Bound::Included),
        key_strategy().prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (key_strategy(), prop::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(k, v)| Op::Insert(k, v)),
        3 => key_strategy().prop_map(Op::Remove),
        2 => key_strategy().prop_map(Op::Get),
        2 => (bound_strategy(), bound_strategy()).prop_map(|(a, b)| Op::Range(a, b)),
        1 => Just(Op::Iter),
        1 => Just(Op::Len),
        1 => Just(Op::FirstLast),
        1 => Just(Op::Restart),
    ]
}

fn restart(list: SkipList<Bytes, Bytes>) -> SkipList<Bytes, Bytes> {
    let limits = Limits::default();
    let sessions = Sessions::new(limits.max_sessions, limits.max_replies_per_session);
    let state = StateMachine::from_parts(list, sessions, LogIndex(7), limits);
    let encoded = snapshot::encode(&state);
    let decoded = snapshot::decode(&encoded).unwrap();
    assert_eq!(decoded, state);
    SkipList::from_sorted_iter(decoded.iter().map(|(k, v)| (k.clone(), v.clone()))).unwrap()
}

fn as_slice_bound(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(k) => Bound::Included(&k[..]),
        Bound::Excluded(k) => Bound::Excluded(&k[..]),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn run_model(seed: u64, ops: Vec<Op>) {
    let mut list: SkipList<Bytes, Bytes> = SkipList::with_seed(seed);
    let mut model: BTreeMap<Bytes, Bytes> = BTreeMap::new();
    for op in ops {
        match op {
            Op::Insert(k, v) => {
                let (k, v) = (Bytes::from(k), Bytes::from(v));
                assert_eq!(list.insert(k.clone(), v.clone()), model.insert(k, v));
            }
            Op::Remove(k) => assert_eq!(list.remove(&k[..]), model.remove(&k[..])),
            Op::Get(k) => {
                assert_eq!(list.get(&k[..]), model.get(&k[..]));
                assert_eq!(list.contains_key(&k[..]), model.contains_key(&k[..]));
            }
            Op::Range(start, end) => {
                let bounds = (as_slice_bound(&start), as_slice_bound(&end));
                let got: Vec<_> = list.range::<[u8], _>(bounds).collect();
                let want: Vec<_> = model
                    .iter()
                    .filter(|(k, _)| std::ops::RangeBounds::<[u8]>::contains(&bounds, &k[..]))
                    .collect();
                assert_eq!(got, want);
            }
            Op::Iter => assert!(list.iter().eq(model.iter())),
            Op::Len => assert_eq!(list.len(), model.len()),
            Op::FirstLast => {
                assert_eq!(list.first(), model.first_key_value());
                assert_eq!(list.last(), model.last_key_value());
            }
            Op::Restart => list = restart(list),
        }
    }
    check_invariants(&list);
    assert!(list.iter().eq(model.iter()));
}

proptest! {
    #[test]
    fn skiplist_matches_btreemap(seed in any::<u64>(), ops in prop::collection::vec(op_strategy(), 0..200)) {
        run_model(seed, ops);
    }

    #[test]
    fn from_sorted_iter_matches_btreemap(
        entries in prop::collection::btree_map(any::<u16>(), any::<u8>(), 0..300),
        removals in prop::collection::vec(any::<u16>(), 0..50),
    ) {
        let mut list = SkipList::from_sorted_iter(entries.clone()).unwrap();
        let mut model = entries;
        check_invariants(&list);
        prop_assert!(list.iter().eq(model.iter()));
        for key in removals {
            prop_assert_eq!(list.remove(&key), model.remove(&key));
            list.insert(key.wrapping_add(1), 0);
            model.insert(key.wrapping_add(1), 0);
        }
        check_invariants(&list);
        prop_assert!(list.iter().eq(model.iter()));
    }
}
