//! A simulated node's clocks: where its driver thread is in virtual time, and the local
//! time its executor reads (the `Clock` seam), which may run fast or slow.
//!
//! Virtual time is the event queue's. A node's thread runs a round starting at the
//! event's instant; what the round does may take time (an fsync's latency, a stall): the
//! thread's position moves on, the node is busy until then, and whatever it sends leaves
//! at that later instant. The executor's clock maps the thread's position to local time
//! at the node's rate (`period_us` of virtual time per `tick_us` of local time), so a
//! skewed clock delivers more or fewer ticks through the executor's own tick catch-up.
//!
//! Invariants: the thread's position never goes back; local time is monotonic in it.

use crate::node::Clock;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
struct ClockState {
    /// Where the node's thread is, in virtual microseconds.
    thread_us: u64,
    /// Local time at `anchor_thread_us`.
    anchor_local_us: u64,
    anchor_thread_us: u64,
    /// Local time runs `tick_us` per `period_us` of virtual time.
    tick_us: u64,
    period_us: u64,
}

impl ClockState {
    fn local_at(&self, thread_us: u64) -> u64 {
        let elapsed = u128::from(thread_us.saturating_sub(self.anchor_thread_us));
        let scaled = elapsed * u128::from(self.tick_us) / u128::from(self.period_us);
        self.anchor_local_us + u64::try_from(scaled).unwrap_or(u64::MAX / 2)
    }
}

/// One node incarnation's thread position and local clock. Clones share them.
#[derive(Clone, Debug)]
pub struct SimClock {
    state: Arc<Mutex<ClockState>>,
}

impl SimClock {
    /// A clock starting at virtual time `now_us` (local time 0), running `tick_us` of
    /// local time per `period_us` of virtual time.
    pub fn new(now_us: u64, tick_us: u64, period_us: u64) -> SimClock {
        SimClock {
            state: Arc::new(Mutex::new(ClockState {
                thread_us: now_us,
                anchor_local_us: 0,
                anchor_thread_us: now_us,
                tick_us: tick_us.max(1),
                period_us: period_us.max(1),
            })),
        }
    }

    /// Where the node's thread is in virtual time.
    pub fn thread_us(&self) -> u64 {
        self.state.lock().thread_us
    }

    /// The thread starts work at virtual time `now_us` (if it is not already past it).
    pub fn begin_at(&self, now_us: u64) {
        let mut s = self.state.lock();
        s.thread_us = s.thread_us.max(now_us);
    }

    /// Runs `f`, whose time is another thread's (a background job's fsyncs): the node's
    /// thread is where it was before.
    pub fn detached<T>(&self, f: impl FnOnce() -> T) -> T {
        let at = self.thread_us();
        let out = f();
        self.state.lock().thread_us = at;
        out
    }

    /// The thread spends `us` (an fsync, a stall, a slow round).
    pub fn spend(&self, us: u64) {
        self.state.lock().thread_us += us;
    }

    /// From the thread's current position on, local time runs `tick_us` per `period_us`.
    pub fn set_period_us(&self, period_us: u64) {
        let mut s = self.state.lock();
        s.anchor_local_us = s.local_at(s.thread_us);
        s.anchor_thread_us = s.thread_us;
        s.period_us = period_us.max(1);
    }

    /// The node's local time at virtual time `at_us` (to stamp an input that arrives
    /// then, whatever its thread is doing).
    pub fn local_at(&self, at_us: u64) -> Duration {
        Duration::from_micros(self.state.lock().local_at(at_us))
    }

    /// The earliest virtual time at which local time reaches `local` (to wake up then).
    pub fn virtual_at(&self, local: Duration) -> u64 {
        let s = self.state.lock();
        let local_us = u64::try_from(local.as_micros()).unwrap_or(u64::MAX / 2);
        let ahead = u128::from(local_us.saturating_sub(s.anchor_local_us));
        let tick = u128::from(s.tick_us);
        let scaled = (ahead * u128::from(s.period_us)).div_ceil(tick);
        s.anchor_thread_us + u64::try_from(scaled).unwrap_or(u64::MAX / 2)
    }
}

impl Clock for SimClock {
    fn now(&self) -> Duration {
        let s = self.state.lock();
        Duration::from_micros(s.local_at(s.thread_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_follows_the_thread_at_the_clock_rate() {
        let c = SimClock::new(1_000, 10_000, 20_000); // half speed
        assert_eq!(c.now(), Duration::ZERO);
        c.begin_at(21_000);
        assert_eq!(c.now(), Duration::from_micros(10_000));
        c.spend(2_000);
        assert_eq!(c.thread_us(), 23_000);
        c.begin_at(5_000);
        assert_eq!(c.thread_us(), 23_000, "the thread never goes back");
        assert_eq!(c.virtual_at(Duration::from_micros(20_000)), 41_000);
        c.set_period_us(10_000);
        assert_eq!(c.now(), Duration::from_micros(11_000));
        assert_eq!(c.virtual_at(Duration::from_micros(21_000)), 33_000);
        let t = c.virtual_at(Duration::from_micros(11_001));
        c.begin_at(t);
        assert!(
            c.now() >= Duration::from_micros(11_001),
            "waking at virtual_at is late enough"
        );
    }
}
