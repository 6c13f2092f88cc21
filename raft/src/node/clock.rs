//! The executor's sense of time: a monotonic [`Duration`] since the node's clock began.
//!
//! Time enters the executor only here, so that the threaded runtime runs on the system
//! clock and the simulator on virtual time, through the same code: tick catch-up
//! (`tick_clock.rs`), the leader's deferred fsync (`leader_sync.rs`) and read deadlines
//! all read [`Clock::now`].

use std::time::{Duration, Instant};

/// A monotonic clock.
///
/// # Correctness
/// `now` never goes backwards. The leader lease counts ticks derived from it, so its rate
/// must stay within `Config::LEASE_CLOCK_DRIFT_PERCENT` of the other nodes' clocks.
pub trait Clock: Send + Sync {
    /// Time elapsed since the clock's origin.
    fn now(&self) -> Duration;
}

/// The system's monotonic clock, counted from when this value was made.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }

    /// The instant `at` after the origin (to wait for it).
    pub fn instant(&self, at: Duration) -> Instant {
        self.origin + at
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}
