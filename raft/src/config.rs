//! Configuration of one Raft node. Time is measured in ticks: the runtime (or the
//! simulator) decides how long a tick is.

use crate::error::ConfigError;
use crate::types::NodeId;

/// Settings for one node's [`crate::core::RaftCore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id.
    pub id: NodeId,
    /// The bootstrap voters: the configuration until a snapshot or a configuration entry
    /// says otherwise (`core::membership`). A node not among them (joining a running
    /// cluster) never campaigns until a configuration makes it a voter.
    pub voters: Vec<NodeId>,
    /// Base election timeout. Each node waits a random number of ticks in
    /// `[election_timeout_ticks, 2 * election_timeout_ticks)` before campaigning.
    pub election_timeout_ticks: u32,
    /// How often a leader sends heartbeats. Must be less than `election_timeout_ticks`.
    pub heartbeat_interval_ticks: u32,
    /// Run a pre-vote round before becoming a candidate (thesis 9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a majority within an election timeout steps down;
    /// followers that heard from a leader within the election timeout refuse votes
    /// (thesis 6.2 / 9.6).
    pub check_quorum: bool,
    /// Serve lease reads (see [`crate::core::RaftCore::read_lease`]) from the leader's
    /// lease instead of a heartbeat round while the lease holds. Requires `check_quorum`
    /// and clocks whose rates differ by less than [`Config::LEASE_CLOCK_DRIFT_PERCENT`]
    /// percent. Also makes a freshly started node refuse votes for one election timeout,
    /// since it may have promised a lease before it restarted.
    pub lease_reads: bool,
    /// Most entries in one AppendEntries.
    pub max_entries_per_append: usize,
    /// Most entry bytes in one AppendEntries (at least one entry is always sent).
    pub max_bytes_per_append: usize,
    /// Most AppendEntries in flight to one peer in the replicate state (pipelining window).
    pub max_inflight_appends: usize,
    /// Size of one InstallSnapshot chunk.
    pub snapshot_chunk_bytes: usize,
    /// Largest proposal accepted.
    pub max_proposal_bytes: usize,
    /// Seed of the core's PRNG (randomized election timeouts).
    pub seed: u64,
}

impl Config {
    /// The clock-rate difference between any two nodes that the leader lease tolerates,
    /// in percent of the slower clock.
    pub const LEASE_CLOCK_DRIFT_PERCENT: u32 = 25;

    /// How many of the leader's ticks a lease lasts, counted from the tick at which the
    /// confirming heartbeat round was sent. A follower that answered the round refuses
    /// votes for at least `election_timeout_ticks - 1` of its own ticks after receiving
    /// it (its first tick may come at once); the lease is that, divided by the tolerated
    /// drift.
    pub fn lease_ticks(&self) -> u32 {
        let guaranteed = self.election_timeout_ticks.saturating_sub(1);
        guaranteed * 100 / (100 + Self::LEASE_CLOCK_DRIFT_PERCENT)
    }

    /// A configuration with sensible defaults for node `id` in a cluster of `voters`.
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Config {
        Config {
            id,
            voters,
            election_timeout_ticks: 10,
            heartbeat_interval_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
            max_entries_per_append: 1024,
            max_bytes_per_append: 1 << 20,
            max_inflight_appends: 64,
            snapshot_chunk_bytes: 1 << 20,
            max_proposal_bytes: 16 << 20,
            seed: id.0,
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == NodeId::ZERO {
            return Err(ConfigError("id must not be 0".into()));
        }
        // `id` need not be among `voters`: a node joining a running cluster starts outside
        // the bootstrap configuration and takes part once a configuration names it.
        if self.voters.is_empty() {
            return Err(ConfigError("voters must not be empty".into()));
        }
        let mut sorted = self.voters.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != self.voters.len() || sorted.contains(&NodeId::ZERO) {
            return Err(ConfigError(format!(
                "voters {:?} must be distinct and non-zero",
                self.voters
            )));
        }
        if self.heartbeat_interval_ticks == 0 {
            return Err(ConfigError(
                "heartbeat_interval_ticks must be at least 1".into(),
            ));
        }
        if self.election_timeout_ticks <= self.heartbeat_interval_ticks {
            return Err(ConfigError(format!(
                "election_timeout_ticks ({}) must exceed heartbeat_interval_ticks ({})",
                self.election_timeout_ticks, self.heartbeat_interval_ticks
            )));
        }
        if self.lease_reads && !self.check_quorum {
            return Err(ConfigError("lease_reads requires check_quorum".into()));
        }
        if self.lease_reads && self.lease_ticks() <= self.heartbeat_interval_ticks {
            return Err(ConfigError(format!(
                "lease_reads needs a lease ({} ticks, from election_timeout_ticks {}) longer than heartbeat_interval_ticks ({})",
                self.lease_ticks(),
                self.election_timeout_ticks,
                self.heartbeat_interval_ticks
            )));
        }
        if self.max_entries_per_append == 0 || self.max_bytes_per_append == 0 {
            return Err(ConfigError("append batch limits must be at least 1".into()));
        }
        if self.max_inflight_appends == 0 {
            return Err(ConfigError(
                "max_inflight_appends must be at least 1".into(),
            ));
        }
        if self.snapshot_chunk_bytes == 0 {
            return Err(ConfigError(
                "snapshot_chunk_bytes must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
