//! State the engine's client threads share with the calling thread: phase, counters,
//! the start gate and the count of live clients, plus the constants both sides use.
//!
//! Invariants: clients read the phase only after the gate opened, so none starts before
//! the calling thread has chosen the first phase; `running` counts a client out even
//! when it unwinds, so the calling thread never waits for a dead client.

use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

/// Stack of a client thread: targets block on one call at a time, so little is needed.
pub(super) const CLIENT_STACK_BYTES: usize = 512 << 10;
/// Pause after a failed operation, so a dead target does not turn clients into spinners.
pub(super) const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// How often the calling thread checks the clock and the counters.
pub(super) const POLL_EVERY: Duration = Duration::from_millis(20);

pub(super) const PHASE_WARMUP: u8 = 0;
pub(super) const PHASE_MEASURE: u8 = 1;
pub(super) const PHASE_STOP: u8 = 2;

/// Counters the clients share with the calling thread.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) phase: AtomicU8,
    /// Measured operations claimed (used with [`StopAfter::Ops`]).
    pub(super) tickets: AtomicU64,
    /// Measured (or prefill) operations that succeeded / failed.
    pub(super) ok: AtomicU64,
    pub(super) errors: AtomicU64,
    /// Warm-up operations that succeeded / failed.
    pub(super) warmup_ok: AtomicU64,
    pub(super) warmup_errors: AtomicU64,
    /// Client threads that have not returned (or unwound) yet.
    pub(super) running: AtomicUsize,
    /// Closed until the calling thread has set the first phase: no client starts early.
    pub(super) gate: Gate,
}

/// A one-shot gate: threads wait until it is opened.
#[derive(Debug, Default)]
pub(super) struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    pub(super) fn open(&self) {
        *self.open.lock() = true;
        self.opened.notify_all();
    }

    pub(super) fn wait(&self) {
        let mut open = self.open.lock();
        while !*open {
            self.opened.wait(&mut open);
        }
    }
}

/// Counts a client thread out when it returns or unwinds.
pub(super) struct RunningGuard<'a>(pub(super) &'a AtomicUsize);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
