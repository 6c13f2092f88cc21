//! When to snapshot: once the Raft log since the last snapshot passes a fixed threshold
//! AND a multiple of the last snapshot's size (as Redis rewrites its AOF once it has grown
//! by a percentage since the last rewrite). PURE.
//!
//! Why the multiple: with a fixed threshold alone, a data set much larger than the
//! threshold is rewritten in full for every threshold's worth of writes (575 MB rewritten
//! per 64 MB of log: ~9x write amplification). Waiting for `log_percent`% of the
//! snapshot's size bounds the bytes written per byte of log to `1 + 100 / log_percent`
//! (2x at the default 100), at the cost of replaying up to that much log at restart.

/// The snapshot trigger (`[snapshot]` in the cluster file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Never snapshot before the log holds this many bytes.
    pub threshold_bytes: u64,
    /// Nor before the log holds this percentage of the last snapshot's size (0: off).
    pub log_percent: u32,
}

impl SnapshotPolicy {
    /// Whether a log of `log_bytes` since a snapshot of `last_snapshot_bytes` (0: none yet)
    /// calls for a new snapshot.
    pub fn due(&self, log_bytes: u64, last_snapshot_bytes: u64) -> bool {
        let scaled = last_snapshot_bytes.saturating_mul(u64::from(self.log_percent)) / 100;
        log_bytes >= self.threshold_bytes.max(scaled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_data_sets_snapshot_at_the_threshold_large_ones_at_the_ratio() {
        let policy = SnapshotPolicy {
            threshold_bytes: 64,
            log_percent: 100,
        };
        assert!(!policy.due(63, 0));
        assert!(policy.due(64, 0));
        assert!(
            policy.due(64, 10),
            "a small snapshot: the threshold decides"
        );
        assert!(
            !policy.due(64, 575),
            "a large one: wait for as much log as its size"
        );
        assert!(policy.due(575, 575));
        let fixed = SnapshotPolicy {
            log_percent: 0,
            ..policy
        };
        assert!(fixed.due(64, 575), "log_percent 0 is the threshold alone");
    }
}
