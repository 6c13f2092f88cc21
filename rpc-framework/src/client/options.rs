//! The knobs of a `Channel` (`ChannelConfig`) and of one call (`CallOptions`), with their
//! defaults.

use std::time::{Duration, Instant};

use crate::frame::DEFAULT_MAX_FRAME_BYTES;

/// Limits and timings of a `Channel`.
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    /// How long one connect attempt may take.
    pub connect_timeout: Duration,
    /// Wait after the first failed connect attempt.
    pub reconnect_backoff_min: Duration,
    /// Cap of the doubling wait between failed attempts.
    pub reconnect_backoff_max: Duration,
    /// Largest frame sent or accepted (the length prefix's value).
    pub max_frame_bytes: usize,
    /// Calls pending at once; over it, calls fail with `Overloaded`.
    pub max_pending_calls: usize,
    /// Request bytes queued but not yet written; over it, calls fail with `Overloaded`.
    pub max_queued_request_bytes: usize,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            connect_timeout: Duration::from_secs(3),
            reconnect_backoff_min: Duration::from_millis(10),
            reconnect_backoff_max: Duration::from_secs(1),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_pending_calls: 16 * 1024,
            max_queued_request_bytes: 2 * DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

/// Per-call options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallOptions {
    /// How long to wait for the reply; `None` waits until the reply, a disconnect or
    /// shutdown.
    pub timeout: Option<Duration>,
}

impl CallOptions {
    /// The default timeout: 10 s.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Options with the given timeout.
    pub fn with_timeout(timeout: Duration) -> CallOptions {
        CallOptions {
            timeout: Some(timeout),
        }
    }

    pub(crate) fn deadline(&self, now: Instant) -> Option<Instant> {
        self.timeout.and_then(|timeout| now.checked_add(timeout))
    }
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions::with_timeout(CallOptions::DEFAULT_TIMEOUT)
    }
}
