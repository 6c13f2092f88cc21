//! The checker's entry points: partition the history, search each part, report.
//!
//! P-compositionality (Lowe 2017; for a KV store it is Herlihy and Wing's locality per key):
//! the history is linearizable iff every partition the model returns is. Partitions are
//! searched one after another in the model's order, sharing one [`Budget`]; the first
//! partition found not linearizable ends the check.
//!
//! The answer is three-valued on purpose: [`CheckResult::Unknown`] means the budget ran out,
//! and must never be read as success.

use std::fmt;

use crate::budget::StepMeter;
use crate::budget::{Budget, BudgetLimit};
use crate::history::Operation;
use crate::model::Model;
use crate::report::{describe, Explanation};
use crate::search::{search_partition, SearchOutcome};

/// The verdict on a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckResult {
    /// Every partition has a linearization.
    Ok,
    /// A partition has no linearization.
    Illegal {
        /// Position of the failing partition in the model's partition list.
        partition: usize,
        /// Where the search got furthest, and what blocked it.
        explanation: Explanation,
    },
    /// The budget ran out first. Treat as a failure (or retry with a larger budget).
    Unknown {
        /// Position of the partition being searched when the budget ran out.
        partition: usize,
        /// Which limit ran out.
        limit: BudgetLimit,
        /// Search steps taken by the whole check.
        steps: u64,
        /// One operation of that partition, described (e.g. to show its key).
        sample_op: String,
    },
}

impl CheckResult {
    /// Whether the history was proven linearizable.
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Ok)
    }

    /// Whether the history was proven not linearizable.
    pub fn is_illegal(&self) -> bool {
        matches!(self, Self::Illegal { .. })
    }

    /// Whether the budget ran out before an answer.
    pub fn is_unknown(&self) -> bool {
        matches!(self, Self::Unknown { .. })
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("linearizable"),
            Self::Illegal {
                partition,
                explanation,
            } => {
                writeln!(f, "NOT linearizable: partition {partition}")?;
                write!(f, "{explanation}")
            }
            Self::Unknown {
                partition,
                limit,
                steps,
                sample_op,
            } => write!(
                f,
                "UNKNOWN: the {limit} ran out after {steps} steps while checking partition \
                 {partition} (which holds {sample_op}); not a pass: retry with a larger budget"
            ),
        }
    }
}

/// What a check cost. Partitions after the first failing one are not searched and not
/// counted in `operations` or `largest_partition`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckStats {
    /// Partitions the model produced.
    pub partitions: usize,
    /// Operations in the partitions searched (excludes operations the model left out).
    pub operations: usize,
    /// Operations in the largest partition searched.
    pub largest_partition: usize,
    /// Search steps taken.
    pub steps: u64,
    /// Memoized configurations created.
    pub memo_entries: usize,
}

/// Checks that `history` is linearizable with respect to `model`, within `budget`.
///
/// # Panics
/// If an operation has `call > ret`, or the model's partition repeats an operation or names
/// one outside the history: both are bugs in the test or the model, not properties of the
/// system under test.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: Budget,
) -> CheckResult {
    check_with_stats(model, history, budget).0
}

/// Like [`check`], and also reports what the check cost.
///
/// # Panics
/// As [`check`].
pub fn check_with_stats<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    budget: Budget,
) -> (CheckResult, CheckStats) {
    assert_intervals_valid(history);
    let partitions = model.partition(history);
    assert_partitions_valid(&partitions, history.len());
    let mut stats = CheckStats {
        partitions: partitions.len(),
        ..CheckStats::default()
    };
    let mut meter = StepMeter::new(&budget);
    let mut result = CheckResult::Ok;
    for (position, partition) in partitions.iter().enumerate() {
        stats.operations += partition.len();
        stats.largest_partition = stats.largest_partition.max(partition.len());
        let ops: Vec<&Operation<M::Input, M::Output>> =
            partition.iter().map(|&index| &history[index]).collect();
        match search_partition(model, &ops, &mut meter) {
            SearchOutcome::Linearizable => continue,
            SearchOutcome::NotLinearizable(deepest) => {
                let explanation = Explanation::new(model, history, partition, &deepest);
                result = CheckResult::Illegal {
                    partition: position,
                    explanation,
                };
            }
            SearchOutcome::OutOfBudget(limit) => {
                let sample_op = partition
                    .first()
                    .map_or_else(String::new, |&i| describe(history, i));
                let steps = meter.steps;
                result = CheckResult::Unknown {
                    partition: position,
                    limit,
                    steps,
                    sample_op,
                };
            }
        }
        break;
    }
    stats.steps = meter.steps;
    stats.memo_entries = meter.memo_entries;
    (result, stats)
}

fn assert_intervals_valid<I, O>(history: &[Operation<I, O>]) {
    for (index, op) in history.iter().enumerate() {
        assert!(
            op.call <= op.ret,
            "lincheck: operation #{index} returns ({}) before it is called ({})",
            op.ret,
            op.call
        );
    }
}

fn assert_partitions_valid(partitions: &[Vec<usize>], history_len: usize) {
    let mut seen = vec![false; history_len];
    for &index in partitions.iter().flatten() {
        assert!(
            index < history_len,
            "lincheck: partition names operation #{index} of {history_len}"
        );
        assert!(
            !seen[index],
            "lincheck: operation #{index} is in two partitions"
        );
        seen[index] = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{KvInput, KvModel, KvOperation, KvOutput};

    /// A register model whose partition wrongly lists one operation twice.
    struct OverlappingPartitions;

    impl Model for OverlappingPartitions {
        type Input = u8;
        type Output = u8;
        type State = u8;

        fn init(&self) -> u8 {
            0
        }

        fn step(&self, state: &u8, _input: &u8, _output: &u8) -> Option<u8> {
            Some(*state)
        }

        fn partition(&self, _history: &[Operation<u8, u8>]) -> Vec<Vec<usize>> {
            vec![vec![0], vec![0]]
        }
    }

    #[test]
    #[should_panic(expected = "returns (1) before it is called (5)")]
    fn operation_returning_before_its_call_is_rejected_as_a_test_bug() {
        let history = [KvOperation::new(
            1,
            KvInput::get("k"),
            KvOutput::not_found(),
            5,
            1,
        )];
        let _ = check(&KvModel, &history, Budget::default());
    }

    #[test]
    #[should_panic(expected = "is in two partitions")]
    fn partition_listing_an_operation_twice_is_rejected_as_a_model_bug() {
        let history = [Operation::new(1, 0u8, 0u8, 1, 2)];
        let _ = check(&OverlappingPartitions, &history, Budget::default());
    }

    #[test]
    fn stats_count_partitions_operations_and_steps() {
        let history = [
            KvOperation::new(1, KvInput::put("a", "1"), KvOutput::Ok, 1, 2),
            KvOperation::new(1, KvInput::get("a"), KvOutput::found("1"), 3, 4),
            KvOperation::new(2, KvInput::get("b"), KvOutput::not_found(), 1, 4),
        ];
        let (result, stats) = check_with_stats(&KvModel, &history, Budget::default());
        assert!(result.is_ok(), "{result}");
        assert_eq!(stats.partitions, 2);
        assert_eq!(stats.operations, 3);
        assert_eq!(stats.largest_partition, 2);
        assert!(stats.steps >= 3, "{stats:?}");
        assert_eq!(
            stats.memo_entries, 3,
            "one configuration per linearized operation"
        );
    }
}
