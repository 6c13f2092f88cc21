//! How much work a check may do before it gives up with `CheckResult::Unknown`.
//!
//! Linearizability checking is NP-complete in general, so every check is bounded. A step is
//! one visit of one call or return entry by the search; steps are counted across all
//! partitions of one check. A step limit is deterministic (the same history always gets the
//! same answer), which is what tests should use; a time limit is an extra guard for
//! interactive use. `StepMeter` enforces a budget during one check.

use std::fmt;
use std::time::{Duration, Instant};

/// How many steps pass between two clock reads when a time limit is set.
const STEPS_PER_CLOCK_READ: u64 = 1024;

/// Limits on one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The most search steps the whole check may take.
    pub max_steps: u64,
    /// Optional wall-clock limit for the whole check. Makes the result depend on machine
    /// speed, so tests should prefer `max_steps` alone.
    pub time_limit: Option<Duration>,
}

impl Budget {
    /// The default step limit: far above what 6.824-sized histories need (typically well under
    /// a million steps), and still only a few seconds of work.
    pub const DEFAULT_MAX_STEPS: u64 = 50_000_000;

    /// A budget of `max_steps` search steps and no time limit.
    pub fn steps(max_steps: u64) -> Self {
        Self {
            max_steps,
            time_limit: None,
        }
    }

    /// The same budget, also limited to `time_limit` of wall-clock time.
    pub fn with_time_limit(self, time_limit: Duration) -> Self {
        Self {
            time_limit: Some(time_limit),
            ..self
        }
    }
}

impl Default for Budget {
    /// [`Budget::DEFAULT_MAX_STEPS`] steps, no time limit.
    fn default() -> Self {
        Self::steps(Self::DEFAULT_MAX_STEPS)
    }
}

/// Which limit of a [`Budget`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetLimit {
    /// `max_steps` was reached.
    Steps,
    /// `time_limit` passed.
    Time,
}

impl fmt::Display for BudgetLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Steps => f.write_str("step limit"),
            Self::Time => f.write_str("time limit"),
        }
    }
}

/// Counts steps and watches the clock across every partition of one check.
#[derive(Debug)]
pub(crate) struct StepMeter {
    max_steps: u64,
    deadline: Option<Instant>,
    /// Steps taken so far.
    pub steps: u64,
    /// Memo entries created so far.
    pub memo_entries: usize,
}

impl StepMeter {
    pub fn new(budget: &Budget) -> Self {
        let deadline = budget.time_limit.map(|limit| Instant::now() + limit);
        Self {
            max_steps: budget.max_steps,
            deadline,
            steps: 0,
            memo_entries: 0,
        }
    }

    /// Takes one step, or says which limit stops us.
    pub(crate) fn spend(&mut self) -> Result<(), BudgetLimit> {
        if self.steps >= self.max_steps {
            return Err(BudgetLimit::Steps);
        }
        self.steps += 1;
        if let Some(deadline) = self.deadline {
            if self.steps % STEPS_PER_CLOCK_READ == 0 && Instant::now() >= deadline {
                return Err(BudgetLimit::Time);
            }
        }
        Ok(())
    }
}
