//! Retry pacing: an optional overall deadline and a capped exponential backoff that
//! starts once a whole round through the servers has failed.

use std::time::{Duration, Instant};

/// Paces the attempts of one operation.
#[derive(Debug)]
pub(crate) struct Retry {
    deadline: Option<Instant>,
    backoff: Duration,
    backoff_max: Duration,
    failures_this_round: usize,
    servers: usize,
}

impl Retry {
    pub(crate) fn new(
        timeout: Option<Duration>,
        min: Duration,
        max: Duration,
        servers: usize,
    ) -> Retry {
        Retry {
            deadline: timeout.map(|t| Instant::now() + t),
            backoff: min,
            backoff_max: max,
            failures_this_round: 0,
            servers: servers.max(1),
        }
    }

    /// Time left before the deadline (`None`: no deadline).
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Whether the deadline passed.
    pub(crate) fn expired(&self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }

    /// The timeout for the next attempt: `per_attempt`, cut to the time left.
    pub(crate) fn attempt_timeout(&self, per_attempt: Duration) -> Duration {
        match self.remaining() {
            Some(left) => per_attempt.min(left).max(Duration::from_millis(1)),
            None => per_attempt,
        }
    }

    /// An attempt failed in a way that moves on to another server. Sleeps once every
    /// server has failed in this round (never past the deadline), doubling the pause up
    /// to the cap.
    pub(crate) fn failed(&mut self) {
        self.failures_this_round += 1;
        if self.failures_this_round < self.servers {
            return;
        }
        self.failures_this_round = 0;
        self.pause();
    }

    /// Sleeps for the current backoff (e.g. the server asked to retry).
    pub(crate) fn pause(&mut self) {
        let pause = match self.remaining() {
            Some(left) => self.backoff.min(left),
            None => self.backoff,
        };
        std::thread::sleep(pause);
        self.backoff = (self.backoff * 2).min(self.backoff_max);
    }
}
