//! The executor's tick clock: how many core ticks are due by the node's clock.
//!
//! The core's sense of time is the ticks it is given. Elections and heartbeats tolerate a
//! clock that lags, but the leader lease does not: a leader whose driver was busy or
//! paused for a second must not believe only one tick passed. So ticks are not "one per
//! timer wake-up" (a ticker channel drops the ones nobody received) but "one per
//! `interval` elapsed", delivered late if need be. After a long stall at most `max_burst`
//! are delivered at once (the executor passes an election timeout, which outlasts any
//! lease and lets elections run), the rest are skipped, so a suspended process does not
//! wake up to a storm of heartbeats.

use std::time::Duration;

/// Due ticks by the clock (times are [`super::clock::Clock::now`] values).
#[derive(Debug)]
pub(crate) struct TickClock {
    interval: Duration,
    next_at: Duration,
    max_burst: u32,
}

impl TickClock {
    /// The first tick is due one `interval` after `now`. `interval` must be non-zero.
    pub(crate) fn new(interval: Duration, max_burst: u32, now: Duration) -> TickClock {
        TickClock {
            interval,
            next_at: now + interval,
            max_burst: max_burst.max(1),
        }
    }

    /// When the next tick is due (to wake up for it).
    pub(crate) fn next_at(&self) -> Duration {
        self.next_at
    }

    /// The number of ticks to deliver at `now` (at most `max_burst`); the clock moves on
    /// past all of those due, delivered or skipped.
    pub(crate) fn take_due(&mut self, now: Duration) -> u32 {
        if now < self.next_at {
            return 0;
        }
        let behind = (now - self.next_at).as_nanos();
        let due = behind / self.interval.as_nanos().max(1) + 1;
        let step = u32::try_from(due).unwrap_or(u32::MAX);
        // Advance by whole intervals so ticks stay on their original grid.
        self.next_at += self.interval.saturating_mul(step);
        step.min(self.max_burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn no_tick_is_due_before_the_first_interval() {
        let t0 = 5 * MS;
        let mut c = TickClock::new(10 * MS, 50, t0);
        assert_eq!(c.take_due(t0), 0);
        assert_eq!(c.take_due(t0 + 9 * MS), 0);
        assert_eq!(c.next_at(), t0 + 10 * MS);
    }

    #[test]
    fn each_elapsed_interval_is_one_tick_even_when_read_late() {
        let t0 = Duration::ZERO;
        let mut c = TickClock::new(10 * MS, 50, t0);
        assert_eq!(c.take_due(t0 + 10 * MS), 1);
        assert_eq!(c.take_due(t0 + 45 * MS), 3, "ticks at 20, 30 and 40 ms");
        assert_eq!(c.next_at(), t0 + 50 * MS, "the grid is kept");
        assert_eq!(c.take_due(t0 + 49 * MS), 0);
    }

    #[test]
    fn a_long_stall_delivers_at_most_a_burst_and_skips_the_rest() {
        let t0 = Duration::ZERO;
        let mut c = TickClock::new(10 * MS, 50, t0);
        assert_eq!(c.take_due(t0 + Duration::from_secs(3600)), 50);
        assert_eq!(c.take_due(t0 + Duration::from_secs(3600)), 0);
        assert_eq!(c.next_at(), t0 + Duration::from_secs(3600) + 10 * MS);
    }
}
