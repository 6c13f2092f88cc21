//! Live progress of a load run: the [`Phase`], the [`Progress`] samples handed to the
//! caller's callback (one line each via `Display`), and the ticker that paces them.

use super::shared::Shared;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The phase a run is in, as reported to the progress callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Writing every key once.
    Prefill,
    /// Unmeasured load.
    Warmup,
    /// Measured load.
    Measure,
}

/// A progress sample, about once per [`LoadSpec::progress_every`] and at each phase end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// The current phase.
    pub phase: Phase,
    /// Time since the phase started.
    pub phase_elapsed: Duration,
    /// Successful operations in this phase so far.
    pub ops: u64,
    /// Failed operations in this phase so far.
    pub errors: u64,
    /// Successful operations per second since the previous sample; in the last sample of
    /// a phase ([`Progress::phase_done`]), the average over the whole phase.
    pub interval_ops_per_sec: f64,
    /// Whether this is the last sample of its phase.
    pub phase_done: bool,
}

impl std::fmt::Display for Progress {
    /// `[measure   3.0s] 12345 ops, 4100 ops/s, 0 errors`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = match self.phase {
            Phase::Prefill => "prefill",
            Phase::Warmup => "warmup",
            Phase::Measure => "measure",
        };
        write!(
            f,
            "[{phase:>7} {:>5.1}s] {} ops, {:.0} ops/s{}, {} errors",
            self.phase_elapsed.as_secs_f64(),
            self.ops,
            self.interval_ops_per_sec,
            if self.phase_done {
                " (phase average)"
            } else {
                ""
            },
            self.errors
        )
    }
}

/// Emits [`Progress`] samples at the configured interval.
pub(super) struct ProgressTicker {
    phase: Phase,
    phase_start: Instant,
    every: Duration,
    last_at: Instant,
    last_ops: u64,
}

impl ProgressTicker {
    pub(super) fn new(phase: Phase, phase_start: Instant, every: Duration) -> ProgressTicker {
        ProgressTicker {
            phase,
            phase_start,
            every,
            last_at: phase_start,
            last_ops: 0,
        }
    }

    pub(super) fn maybe_emit(
        &mut self,
        shared: &Shared,
        phase_done: bool,
        cb: &mut dyn FnMut(&Progress),
    ) {
        let since = self.last_at.elapsed();
        if !phase_done && since < self.every {
            return;
        }
        let (ok, errors) = match self.phase {
            Phase::Warmup => (&shared.warmup_ok, &shared.warmup_errors),
            Phase::Prefill | Phase::Measure => (&shared.ok, &shared.errors),
        };
        let ops = ok.load(Ordering::Relaxed);
        let phase_elapsed = self.phase_start.elapsed();
        let (new_ops, over) = if phase_done {
            (ops, phase_elapsed)
        } else {
            (ops.saturating_sub(self.last_ops), since)
        };
        cb(&Progress {
            phase: self.phase,
            phase_elapsed,
            ops,
            errors: errors.load(Ordering::Relaxed),
            interval_ops_per_sec: new_ops as f64 / over.as_secs_f64().max(1e-9),
            phase_done,
        });
        self.last_at = Instant::now();
        self.last_ops = ops;
    }
}
