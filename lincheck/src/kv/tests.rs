//! Unit tests of the KV model's sequential semantics, hashing and partitioning.

use super::*;
use std::hash::{Hash, Hasher};

fn state_of(value: Option<&str>) -> KvState {
    match value {
        None => KvState::absent(),
        Some(value) => KvState::present(value.as_bytes()),
    }
}

fn step(state: &KvState, input: KvInput, output: KvOutput) -> Option<KvState> {
    KvModel.step(state, &input, &output)
}

fn hash_of(state: &KvState) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    state.hash(&mut hasher);
    hasher.finish()
}

#[test]
fn get_accepts_only_the_current_value() {
    let absent = state_of(None);
    assert!(step(&absent, KvInput::get("k"), KvOutput::not_found()).is_some());
    assert!(step(&absent, KvInput::get("k"), KvOutput::found("")).is_none());
    let present = state_of(Some("v"));
    assert_eq!(
        step(&present, KvInput::get("k"), KvOutput::found("v")),
        Some(present.clone())
    );
    assert!(step(&present, KvInput::get("k"), KvOutput::found("w")).is_none());
    assert!(step(&present, KvInput::get("k"), KvOutput::not_found()).is_none());
}

#[test]
fn writes_set_append_and_delete() {
    let absent = state_of(None);
    let put = step(&absent, KvInput::put("k", "a"), KvOutput::Ok).unwrap();
    assert_eq!(put.value(), Some(b"a".to_vec()));
    let appended = step(&put, KvInput::append("k", "bc"), KvOutput::Ok).unwrap();
    assert_eq!(appended.value(), Some(b"abc".to_vec()));
    let created = step(&absent, KvInput::append("k", "x"), KvOutput::Ok).unwrap();
    assert_eq!(created.value(), Some(b"x".to_vec()));
    assert_eq!(
        step(&appended, KvInput::delete("k"), KvOutput::Ok),
        Some(absent.clone())
    );
}

#[test]
fn delete_reporting_existence_must_match_the_state() {
    let absent = state_of(None);
    let present = state_of(Some("v"));
    assert!(step(&present, KvInput::delete("k"), KvOutput::Swapped(true)).is_some());
    assert!(step(&present, KvInput::delete("k"), KvOutput::Swapped(false)).is_none());
    assert!(step(&absent, KvInput::delete("k"), KvOutput::Swapped(false)).is_some());
    assert!(step(&absent, KvInput::delete("k"), KvOutput::Swapped(true)).is_none());
}

#[test]
fn cas_swaps_iff_current_value_equals_expected() {
    let present = state_of(Some("v"));
    let swapped = step(
        &present,
        KvInput::cas("k", "v", "w"),
        KvOutput::Swapped(true),
    )
    .unwrap();
    assert_eq!(swapped.value(), Some(b"w".to_vec()));
    assert!(step(
        &present,
        KvInput::cas("k", "v", "w"),
        KvOutput::Swapped(false)
    )
    .is_none());
    let kept = step(
        &present,
        KvInput::cas("k", "x", "w"),
        KvOutput::Swapped(false),
    )
    .unwrap();
    assert_eq!(kept, present);
    assert!(step(
        &present,
        KvInput::cas("k", "x", "w"),
        KvOutput::Swapped(true)
    )
    .is_none());
}

#[test]
fn cas_with_empty_expected_means_absent() {
    let absent = state_of(None);
    let created = step(&absent, KvInput::cas("k", "", "w"), KvOutput::Swapped(true)).unwrap();
    assert_eq!(created.value(), Some(b"w".to_vec()));
    let empty = state_of(Some(""));
    assert!(
        step(&empty, KvInput::cas("k", "", "w"), KvOutput::Swapped(true)).is_none(),
        "a present empty value is not 'absent'"
    );
    assert!(step(&empty, KvInput::cas("k", "", "w"), KvOutput::Swapped(false)).is_some());
}

#[test]
fn unknown_outputs_are_accepted_from_any_state_and_apply_the_write() {
    let present = state_of(Some("v"));
    assert_eq!(
        step(&present, KvInput::get("k"), KvOutput::Unknown),
        Some(present.clone())
    );
    let put = step(&present, KvInput::put("k", "p"), KvOutput::Unknown).unwrap();
    assert_eq!(put.value(), Some(b"p".to_vec()));
    let appended = step(&present, KvInput::append("k", "a"), KvOutput::Unknown).unwrap();
    assert_eq!(appended.value(), Some(b"va".to_vec()));
    let deleted = step(&present, KvInput::delete("k"), KvOutput::Unknown).unwrap();
    assert_eq!(deleted.value(), None);
    let swapped = step(&present, KvInput::cas("k", "v", "w"), KvOutput::Unknown).unwrap();
    assert_eq!(swapped.value(), Some(b"w".to_vec()));
    let unchanged = step(&present, KvInput::cas("k", "x", "w"), KvOutput::Unknown).unwrap();
    assert_eq!(unchanged, present);
}

#[test]
fn outputs_of_the_wrong_kind_are_impossible() {
    let absent = state_of(None);
    assert!(step(&absent, KvInput::get("k"), KvOutput::Ok).is_none());
    assert!(step(&absent, KvInput::put("k", "v"), KvOutput::Swapped(true)).is_none());
    assert!(step(&absent, KvInput::append("k", "v"), KvOutput::not_found()).is_none());
    assert!(step(&absent, KvInput::cas("k", "", "v"), KvOutput::Ok).is_none());
}

#[test]
fn equal_values_built_differently_are_equal_with_equal_hashes() {
    let by_put = state_of(Some("abc"));
    let by_appends = state_of(None).appended(b"a").appended(b"").appended(b"bc");
    assert_eq!(by_put, by_appends);
    assert_eq!(hash_of(&by_put), hash_of(&by_appends));
    let empty_put = state_of(Some(""));
    let empty_append = state_of(None).appended(b"");
    assert_eq!(empty_put, empty_append);
    assert_eq!(hash_of(&empty_put), hash_of(&empty_append));
    assert_ne!(
        empty_put,
        state_of(None),
        "present-empty differs from absent"
    );
    assert_ne!(by_put, state_of(Some("abd")));
}

#[test]
fn partition_groups_by_key_in_key_order_and_drops_unknown_reads() {
    let history = vec![
        KvOperation::new(1, KvInput::put("b", "1"), KvOutput::Ok, 1, 2),
        KvOperation::new(1, KvInput::get("a"), KvOutput::not_found(), 3, 4),
        KvOperation::unknown(2, KvInput::get("b"), KvOutput::Unknown, 5),
        KvOperation::unknown(2, KvInput::append("b", "x"), KvOutput::Unknown, 6),
        KvOperation::new(3, KvInput::cas("a", "", "1"), KvOutput::Swapped(true), 7, 8),
    ];
    assert_eq!(KvModel.partition(&history), vec![vec![1, 4], vec![0, 3]]);
}

#[test]
fn debug_shows_bytes_as_text_and_shortens_long_values() {
    assert_eq!(
        format!("{:?}", KvInput::put("k", "v\n")),
        r#"Put("k", "v\n")"#
    );
    assert_eq!(
        format!("{:?}", KvInput::cas("k", "", "w")),
        r#"Cas("k", "", "w")"#
    );
    assert_eq!(format!("{:?}", KvOutput::found("x")), r#"Value(Some("x"))"#);
    assert_eq!(format!("{:?}", KvOutput::not_found()), "Value(None)");
    assert_eq!(format!("{:?}", state_of(None)), "None");
    let long = "x".repeat(200);
    let shown = format!("{:?}", state_of(Some(&long)));
    assert!(shown.contains("(200 bytes)"), "{shown}");
    assert!(shown.len() < 120, "{shown}");
    assert!(format!("{:#?}", KvInput::put("k", long.clone())).contains(&long));
}

#[test]
fn chunk_chains_compare_by_content_whatever_their_shape() {
    let ab_c = state_of(None).appended(b"ab").appended(b"c");
    let a_bc = state_of(None).appended(b"a").appended(b"bc");
    let abc = state_of(Some("abc"));
    assert_eq!(ab_c, a_bc);
    assert_eq!(a_bc, abc);
    assert_eq!(abc, ab_c);
    assert_ne!(
        ab_c,
        state_of(None).appended(b"a").appended(b"bd"),
        "same length, last byte differs"
    );
    assert_ne!(
        ab_c,
        state_of(None).appended(b"x").appended(b"bc"),
        "same length, first byte differs"
    );
    // Shared prefix node, different suffixes.
    let shared = state_of(Some("prefix-"));
    assert_eq!(shared.appended(b"x").appended(b"y"), shared.appended(b"xy"));
    assert_ne!(shared.appended(b"x"), shared.appended(b"y"));
}

#[test]
fn reads_and_cas_compare_against_the_whole_chain() {
    let state = state_of(None).appended(b"ab").appended(b"").appended(b"cd");
    assert!(state.holds(Some(b"abcd")));
    assert!(!state.holds(Some(b"abce")));
    assert!(!state.holds(Some(b"abc")));
    assert!(!state.holds(None));
    assert!(state.matches_expected(b"abcd"));
    assert!(!state.matches_expected(b"xbcd"));
    assert_eq!(state.value(), Some(b"abcd".to_vec()));
}

#[test]
fn very_long_append_chains_build_compare_and_drop_without_recursion() {
    let mut state = state_of(None);
    for _ in 0..200_000 {
        state = state.appended(b"x");
    }
    let flat = state_of(Some(&"x".repeat(200_000)));
    assert_eq!(state, flat);
    assert_eq!(hash_of(&state), hash_of(&flat));
    let other = state.clone();
    drop(state);
    assert!(other.holds(Some("x".repeat(200_000).as_bytes())));
}
