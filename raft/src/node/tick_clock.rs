//! The executor's tick clock: how many core ticks are due by the node's clock.
//!
//! The core's sense of time is the ticks it is given. Elections and heartbeats tolerate a
//! clock that lags, but the leader lease does not: a leader whose driver was busy or
//! paused for a second must not believe only one tick passed. So ticks are not "one per
//! timer wake-up" (a ticker channel drops the ones nobody received) but "one per
//! `interval` elapsed", delivered late if need be, interleaved with the inputs that
//! arrived meanwhile in the order they happened. After a long stall at most `max_burst`
//! are delivered in a round (the executor passes an election timeout, which outlasts
//! any lease and lets elections run); the older ones are skipped, so a suspended process
//! does not wake up to a storm of heartbeats. Skipping only makes the node believe less
//! time passed since the inputs it already had, never more time since those it steps
//! after the remaining ticks.

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

    /// The number of ticks due by `at`; the clock moves on past them.
    fn due_by(&self, at: Duration) -> u32 {
        if at < self.next_at {
            return 0;
        }
        let behind = (at - self.next_at).as_nanos();
        let due = behind / self.interval.as_nanos().max(1) + 1;
        u32::try_from(due).unwrap_or(u32::MAX)
    }

    /// At the start of a round at `now`: skips the oldest due ticks beyond `max_burst`.
    pub(crate) fn begin_round(&mut self, now: Duration) {
        let excess = self.due_by(now).saturating_sub(self.max_burst);
        // Advance by whole intervals so ticks stay on their original grid.
        self.next_at += self.interval.saturating_mul(excess);
    }

    /// The number of ticks to deliver that fell due by `at`; the clock moves on past them.
    pub(crate) fn take_due(&mut self, at: Duration) -> u32 {
        let due = self.due_by(at);
        self.next_at += self.interval.saturating_mul(due);
        due
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
    fn a_long_stall_delivers_at_most_a_burst_and_skips_the_oldest() {
        let t0 = Duration::ZERO;
        let hour = Duration::from_secs(3600);
        let mut c = TickClock::new(10 * MS, 50, t0);
        c.begin_round(t0 + hour);
        assert_eq!(c.take_due(t0 + hour - 100 * MS), 40, "the newest 50 remain");
        assert_eq!(c.take_due(t0 + hour), 10);
        assert_eq!(c.take_due(t0 + hour), 0);
        assert_eq!(c.next_at(), t0 + hour + 10 * MS);
    }

    #[test]
    fn ticks_can_be_taken_in_steps_up_to_each_input() {
        let t0 = Duration::ZERO;
        let mut c = TickClock::new(10 * MS, 50, t0);
        c.begin_round(t0 + 100 * MS);
        assert_eq!(c.take_due(t0 + 35 * MS), 3, "due at 10, 20, 30 ms");
        assert_eq!(c.take_due(t0 + 35 * MS), 0);
        assert_eq!(c.take_due(t0 + 20 * MS), 0, "an earlier time takes nothing");
        assert_eq!(c.take_due(t0 + 100 * MS), 7);
    }
}
