//! The checker stays cheap on 6.824-sized histories. Cost is asserted in search steps (a
//! deterministic measure, the same on every machine), never in wall-clock time; the criterion
//! benchmark `benches/checker.rs` measures time.
//!
//! Each test's budget is far above what the history needs today (see the numbers in the
//! comments, measured with `check_with_stats`), so a failure means the search got much worse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod util;

use lincheck::{check_with_stats, Budget, CheckResult, KvModel, KvOutput};
use util::Workload;

#[test]
fn six_824_sized_append_history_checks_within_a_small_step_budget() {
    // 5 clients x 2000 ops over 10 keys: ~1000 ops per key. Needs ~23k steps.
    let history = util::simulate(Workload::appends(5, 10, 2000), 11);
    let (result, stats) = check_with_stats(&KvModel, &history, Budget::steps(1_000_000));
    println!("{stats:?}");
    assert!(result.is_ok(), "{result}");
    assert_eq!(stats.operations, 10_000);
    assert!(
        stats.largest_partition >= 900,
        "~1000 ops per key: {stats:?}"
    );
}

#[test]
fn occasional_unknown_outcomes_stay_within_budget() {
    // 1% of replies lost after the write applied, 1% of writes never applied. Needs ~25k.
    let mut workload = Workload::appends(5, 10, 2000);
    workload.unknown_applied_percent = 1;
    workload.unknown_dropped_percent = 1;
    let history = util::simulate(workload, 12);
    assert!(history.iter().any(|op| op.is_outcome_unknown()));
    let (result, stats) = check_with_stats(&KvModel, &history, Budget::steps(2_000_000));
    println!("{stats:?}");
    assert!(result.is_ok(), "{result}");
}

#[test]
fn long_appended_values_stay_cheap() {
    // Appends and reads only, 100-byte values: the value grows past 150 KB. Needs ~9k.
    let mut workload = Workload::appends(3, 1, 1000);
    workload.value_padding_bytes = 100;
    (workload.get_percent, workload.append_percent) = (50, 50);
    (workload.put_percent, workload.cas_percent) = (0, 0);
    let history = util::simulate(workload, 5);
    let longest_read = history
        .iter()
        .filter_map(|op| match &op.output {
            KvOutput::Value(Some(value)) => Some(value.len()),
            _ => None,
        })
        .max()
        .unwrap();
    assert!(longest_read > 100_000, "{longest_read}");
    let (result, stats) = check_with_stats(&KvModel, &history, Budget::steps(500_000));
    println!("{stats:?}");
    assert!(result.is_ok(), "{result}");
}

#[test]
fn one_corrupted_read_in_a_large_history_is_found() {
    let mut history = util::simulate(Workload::appends(5, 10, 2000), 13);
    let last_read = history
        .iter()
        .rposition(|op| matches!(op.output, KvOutput::Value(Some(_))))
        .unwrap();
    history[last_read].output = KvOutput::found("#never written#");
    let (result, stats) = check_with_stats(&KvModel, &history, Budget::steps(1_000_000));
    println!("{stats:?}");
    match result {
        CheckResult::Illegal { explanation, .. } => assert_eq!(explanation.blocked, last_read),
        other => panic!("expected Illegal, got: {other}"),
    }
}

/// Soak: many seeds of heavier loads. `cargo test -p lincheck --release -- --ignored`.
#[test]
#[ignore = "soak test; run explicitly"]
fn soak_many_seeds_of_concurrent_append_histories() {
    for seed in 0..200 {
        let mut workload = Workload::appends(1 + seed % 8, 1 + seed % 3, 300);
        workload.unknown_applied_percent = seed % 4;
        workload.unknown_dropped_percent = seed % 3;
        let history = util::simulate(workload, seed);
        let (result, stats) = check_with_stats(&KvModel, &history, Budget::default());
        assert!(result.is_ok(), "seed {seed} {workload:?}: {result}");
        println!("seed {seed}: {stats:?}");
    }
}
