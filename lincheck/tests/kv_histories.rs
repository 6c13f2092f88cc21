//! Hand-written KV histories with a known verdict: each test names the claim it proves about
//! the checker. Times are small integers; `[call, ret]` intervals that touch overlap.
//! Linearizability as defined by Herlihy and Wing (1990); locality (their Theorem 1) is why
//! per-key partitioning is sound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use lincheck::{check, Budget, CheckResult, Explanation, KvInput, KvModel, KvOperation, KvOutput};
use util::{op, timed_out};

fn verdict(history: &[KvOperation]) -> CheckResult {
    check(&KvModel, history, Budget::default())
}

fn assert_linearizable(history: &[KvOperation]) {
    let result = verdict(history);
    assert!(result.is_ok(), "expected linearizable, got: {result}");
}

fn assert_not_linearizable(history: &[KvOperation]) -> Explanation {
    match verdict(history) {
        CheckResult::Illegal { explanation, .. } => explanation,
        other => panic!("expected Illegal, got: {other}"),
    }
}

fn get(key: &str) -> KvInput {
    KvInput::get(key)
}

fn put(key: &str, value: &str) -> KvInput {
    KvInput::put(key, value)
}

fn append(key: &str, value: &str) -> KvInput {
    KvInput::append(key, value)
}

fn found(value: &str) -> KvOutput {
    KvOutput::found(value)
}

// ---- Linearizable histories ---------------------------------------------------------------

#[test]
fn empty_history_is_linearizable() {
    assert_linearizable(&[]);
}

#[test]
fn sequential_history_following_the_model_is_linearizable() {
    assert_linearizable(&[
        op(1, get("x"), KvOutput::not_found(), 0, 1),
        op(1, put("x", "a"), KvOutput::Ok, 2, 3),
        op(1, append("x", "b"), KvOutput::Ok, 4, 5),
        op(1, get("x"), found("ab"), 6, 7),
        op(
            1,
            KvInput::cas("x", "ab", "c"),
            KvOutput::Swapped(true),
            8,
            9,
        ),
        op(1, KvInput::delete("x"), KvOutput::Ok, 10, 11),
        op(1, get("x"), KvOutput::not_found(), 12, 13),
    ]);
}

#[test]
fn concurrent_puts_may_be_ordered_either_way() {
    // Both puts overlap everything; readers fix the order differently in each history.
    for (first, second) in [("a", "b"), ("b", "a")] {
        assert_linearizable(&[
            op(1, put("x", "a"), KvOutput::Ok, 0, 100),
            op(2, put("x", "b"), KvOutput::Ok, 0, 100),
            op(3, get("x"), found(first), 10, 20),
            op(3, get("x"), found(second), 30, 40),
            op(4, get("x"), found(second), 110, 120),
        ]);
    }
}

#[test]
fn read_concurrent_with_a_write_may_see_the_old_or_the_new_value() {
    assert_linearizable(&[
        op(1, put("x", "1"), KvOutput::Ok, 0, 10),
        op(1, put("x", "2"), KvOutput::Ok, 20, 40),
        op(2, get("x"), found("1"), 25, 30),
        op(3, get("x"), found("2"), 26, 35),
        op(4, get("x"), found("1"), 15, 45),
    ]);
}

#[test]
fn concurrent_appends_may_land_in_either_order() {
    for seen in ["ab", "ba"] {
        assert_linearizable(&[
            op(1, append("x", "a"), KvOutput::Ok, 0, 10),
            op(2, append("x", "b"), KvOutput::Ok, 0, 10),
            op(3, get("x"), found(seen), 20, 30),
        ]);
    }
}

#[test]
fn concurrent_cas_with_the_same_expected_value_lets_exactly_one_win() {
    assert_linearizable(&[
        op(1, put("x", "v0"), KvOutput::Ok, 0, 10),
        op(
            2,
            KvInput::cas("x", "v0", "a"),
            KvOutput::Swapped(false),
            20,
            30,
        ),
        op(
            3,
            KvInput::cas("x", "v0", "b"),
            KvOutput::Swapped(true),
            20,
            30,
        ),
        op(4, get("x"), found("b"), 40, 50),
    ]);
}

#[test]
fn ops_on_different_keys_do_not_constrain_each_other() {
    // If keys shared one register, the read of y would have to see "1". Per key it is fine.
    assert_linearizable(&[
        op(1, put("x", "1"), KvOutput::Ok, 0, 10),
        op(2, get("y"), KvOutput::not_found(), 20, 30),
        op(1, put("y", "2"), KvOutput::Ok, 40, 50),
        op(2, get("x"), found("1"), 60, 70),
    ]);
}

// ---- Non-linearizable histories -----------------------------------------------------------

#[test]
fn stale_read_after_a_completed_write_is_illegal() {
    let explanation = assert_not_linearizable(&[
        op(1, put("x", "1"), KvOutput::Ok, 0, 10),
        op(1, put("x", "2"), KvOutput::Ok, 20, 30),
        op(2, get("x"), found("1"), 40, 50),
    ]);
    assert_eq!(explanation.blocked, 2, "{explanation}");
    assert_eq!(explanation.linearized, vec![0, 1], "{explanation}");
    assert_eq!(explanation.candidates.len(), 1, "{explanation}");
    assert!(
        !explanation.candidates[0].accepted_by_model,
        "{explanation}"
    );
    assert_eq!(explanation.state_after, r#"Some("2")"#);
    let text = explanation.to_string();
    assert!(
        text.contains(r#"#2 client 2 [call 40, ret 50] Get("x") -> Value(Some("1"))"#),
        "{text}"
    );
}

#[test]
fn read_of_a_value_never_written_is_illegal() {
    let explanation = assert_not_linearizable(&[
        op(1, put("x", "1"), KvOutput::Ok, 0, 10),
        op(2, get("x"), found("7"), 5, 15),
    ]);
    assert_eq!(explanation.blocked, 1, "{explanation}");
}

#[test]
fn lost_append_is_illegal() {
    for seen in ["a", "b"] {
        assert_not_linearizable(&[
            op(1, append("x", "a"), KvOutput::Ok, 0, 10),
            op(1, append("x", "b"), KvOutput::Ok, 20, 30),
            op(2, get("x"), found(seen), 40, 50),
        ]);
    }
}

#[test]
fn duplicated_append_is_illegal() {
    assert_not_linearizable(&[
        op(1, append("x", "x"), KvOutput::Ok, 0, 10),
        op(2, get("x"), found("xx"), 20, 30),
    ]);
    assert_not_linearizable(&[
        op(1, append("x", "a"), KvOutput::Ok, 0, 10),
        op(2, append("x", "b"), KvOutput::Ok, 0, 10),
        op(3, get("x"), found("aab"), 20, 30),
    ]);
}

#[test]
fn cas_success_by_two_clients_for_the_same_expected_value_is_illegal() {
    let explanation = assert_not_linearizable(&[
        op(1, put("x", "v0"), KvOutput::Ok, 0, 10),
        op(
            2,
            KvInput::cas("x", "v0", "a"),
            KvOutput::Swapped(true),
            20,
            30,
        ),
        op(
            3,
            KvInput::cas("x", "v0", "b"),
            KvOutput::Swapped(true),
            20,
            30,
        ),
    ]);
    // One swap fits; the other is then rejected by the model.
    assert_eq!(explanation.linearized.len(), 2, "{explanation}");
    assert!(
        explanation.candidates.iter().all(|c| !c.accepted_by_model),
        "{explanation}"
    );
}

#[test]
fn read_that_goes_back_in_time_is_illegal() {
    let put_a = op(1, put("x", "a"), KvOutput::Ok, 0, 10);
    let put_b = op(1, put("x", "b"), KvOutput::Ok, 20, 100);
    // Both reads overlap the put of b, so each alone is fine, but not new-then-old.
    assert_not_linearizable(&[
        put_a.clone(),
        put_b.clone(),
        op(2, get("x"), found("b"), 30, 40),
        op(3, get("x"), found("a"), 50, 60),
    ]);
    assert_linearizable(&[
        put_a,
        put_b,
        op(2, get("x"), found("a"), 30, 40),
        op(3, get("x"), found("b"), 50, 60),
    ]);
}

#[test]
fn real_time_order_within_a_key_is_enforced() {
    // The same shape as `ops_on_different_keys_do_not_constrain_each_other`, on one key.
    let explanation = assert_not_linearizable(&[
        op(1, put("x", "1"), KvOutput::Ok, 0, 10),
        op(2, get("x"), KvOutput::not_found(), 20, 30),
    ]);
    assert_eq!(explanation.blocked, 1);
}

#[test]
fn cross_key_anomaly_is_caught_through_the_key_it_shows_up_on() {
    // Independent reads of independent writes (IRIW): readers 3 and 4 see the two writes in
    // opposite orders. By locality the violation must appear on one key, here x.
    let history = [
        op(1, put("x", "1"), KvOutput::Ok, 0, 100),
        op(2, put("y", "1"), KvOutput::Ok, 0, 100),
        op(3, get("x"), found("1"), 10, 20),
        op(3, get("y"), KvOutput::not_found(), 30, 40),
        op(4, get("y"), found("1"), 10, 20),
        op(4, get("x"), KvOutput::not_found(), 30, 40),
    ];
    match verdict(&history) {
        CheckResult::Illegal {
            partition: 0,
            explanation,
        } => {
            assert_eq!(explanation.partition_len, 3, "{explanation}");
        }
        other => panic!("expected Illegal on partition 0 (key x), got: {other}"),
    }
}

#[test]
fn illegal_partition_is_reported_by_its_position_in_key_order() {
    let history = [
        op(1, put("b", "1"), KvOutput::Ok, 0, 10),
        op(2, get("b"), found("2"), 20, 30),
        op(1, put("a", "1"), KvOutput::Ok, 0, 10),
        op(2, get("a"), found("1"), 20, 30),
    ];
    match verdict(&history) {
        CheckResult::Illegal {
            partition,
            explanation,
        } => {
            assert_eq!(partition, 1, "key b sorts after key a");
            assert_eq!(explanation.blocked, 1);
        }
        other => panic!("expected Illegal, got: {other}"),
    }
}

// ---- Operations with unknown outcome ------------------------------------------------------

#[test]
fn unknown_write_that_took_effect_is_linearizable() {
    assert_linearizable(&[
        timed_out(1, put("x", "a"), 0),
        op(2, get("x"), found("a"), 10, 20),
        op(2, get("x"), found("a"), 30, 40),
    ]);
}

#[test]
fn unknown_write_that_never_took_effect_is_linearizable() {
    assert_linearizable(&[
        timed_out(1, put("x", "a"), 0),
        op(2, get("x"), KvOutput::not_found(), 10, 20),
        op(2, get("x"), KvOutput::not_found(), 30, 40),
    ]);
}

#[test]
fn unknown_write_may_take_effect_long_after_its_call() {
    assert_linearizable(&[
        timed_out(1, put("x", "a"), 0),
        op(2, get("x"), KvOutput::not_found(), 10, 20),
        op(2, get("x"), found("a"), 1000, 1010),
    ]);
}

#[test]
fn unknown_write_cannot_be_undone_once_seen() {
    assert_not_linearizable(&[
        timed_out(1, put("x", "a"), 0),
        op(2, get("x"), found("a"), 10, 20),
        op(2, get("x"), KvOutput::not_found(), 30, 40),
    ]);
}

#[test]
fn unknown_write_cannot_take_effect_before_its_call() {
    assert_not_linearizable(&[
        op(2, get("x"), found("a"), 0, 5),
        timed_out(1, put("x", "a"), 10),
    ]);
}

#[test]
fn unknown_append_takes_effect_at_most_once() {
    for (seen, legal) in [(None, true), (Some("x"), true), (Some("xx"), false)] {
        let history = [
            timed_out(1, append("k", "x"), 0),
            op(2, get("k"), KvOutput::Value(seen.map(Into::into)), 10, 20),
        ];
        assert_eq!(verdict(&history).is_ok(), legal, "read {seen:?}");
    }
}

#[test]
fn unknown_append_may_land_between_later_writes_but_not_before_its_call() {
    let base = [
        op(1, put("k", "1"), KvOutput::Ok, 0, 10),
        timed_out(2, append("k", "x"), 5),
        op(1, put("k", "2"), KvOutput::Ok, 20, 30),
    ];
    for (seen, legal) in [("2", true), ("2x", true), ("1x", false), ("x", false)] {
        let mut history = base.to_vec();
        history.push(op(3, get("k"), found(seen), 40, 50));
        assert_eq!(verdict(&history).is_ok(), legal, "read {seen:?}");
    }
}

#[test]
fn unknown_cas_swaps_only_if_it_would_have() {
    let swap_seen = [
        op(1, put("k", "old"), KvOutput::Ok, 0, 10),
        timed_out(2, KvInput::cas("k", "old", "new"), 20),
        op(3, get("k"), found("new"), 30, 40),
    ];
    assert_linearizable(&swap_seen);
    let wrong_expected = [
        op(1, put("k", "other"), KvOutput::Ok, 0, 10),
        timed_out(2, KvInput::cas("k", "old", "new"), 20),
        op(3, get("k"), found("new"), 30, 40),
    ];
    assert_not_linearizable(&wrong_expected);
}

#[test]
fn unknown_read_constrains_nothing() {
    assert_linearizable(&[
        op(1, put("x", "a"), KvOutput::Ok, 0, 10),
        timed_out(2, get("x"), 20),
        op(3, get("x"), found("a"), 30, 40),
    ]);
}

// ---- Budget -------------------------------------------------------------------------------

#[test]
fn exhausted_step_budget_is_unknown_never_ok() {
    let history = util::simulate(util::Workload::appends(3, 1, 20), 1);
    let result = check(&KvModel, &history, Budget::steps(10));
    assert!(result.is_unknown(), "{result}");
    assert!(!result.is_ok());
    let text = result.to_string();
    assert!(
        text.contains("UNKNOWN") && text.contains("not a pass"),
        "{text}"
    );
}

#[test]
fn exhausted_time_budget_is_unknown_never_ok() {
    // A zero time limit is already over at the first clock read (after 1024 steps).
    let history = util::simulate(util::Workload::appends(3, 1, 2000), 2);
    let budget = Budget::steps(u64::MAX).with_time_limit(std::time::Duration::ZERO);
    match check(&KvModel, &history, budget) {
        CheckResult::Unknown { limit, .. } => assert_eq!(limit, lincheck::BudgetLimit::Time),
        other => panic!("expected Unknown, got: {other}"),
    }
}
