//! The knobs of one simulated run: cluster size, seed, timing, core config template,
//! network, disk and application settings.

use crate::config::Config;
use crate::sim::host::FsyncLatency;
use crate::sim::network::NetworkConfig;
use crate::types::NodeId;

/// Everything that shapes one simulated run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of nodes (ids `1..=nodes`).
    pub nodes: usize,
    /// The bootstrap voters are nodes `1..=bootstrap_voters`; the others start outside the
    /// configuration, spares for membership changes to add (default: every node).
    pub bootstrap_voters: usize,
    /// The seed that decides everything.
    pub seed: u64,
    /// Scenario name, printed with the seed on failure.
    pub scenario: String,
    /// Virtual time per core tick (the node runtime's `tick_interval`).
    pub tick_us: u64,
    /// Clock skew: each incarnation's clock runs at a random rate in
    /// `1 ± tick_skew_per_mille / 1000` (0 = perfect clocks).
    pub tick_skew_per_mille: u32,
    /// Template for every node's core config (`id`, `voters` and `seed` are filled in).
    pub raft: Config,
    /// The network.
    pub network: NetworkConfig,
    /// How long an fsync takes on every node's disk.
    pub fsync_latency: FsyncLatency,
    /// A crash keeps a random prefix of unsynced writes, or a random subset of their
    /// pages (out-of-order writeback); otherwise it loses them all.
    pub torn_crashes: bool,
    /// Applications snapshot every this many entries (6.824's SnapShotInterval; 0 = never).
    pub snapshot_interval: u64,
    /// Extra bytes in each [`CommandLog`](crate::sim::CommandLog) snapshot.
    pub snapshot_padding_bytes: usize,
    /// Check Figure 2 conformance for every message (see [`crate::sim::invariants`], 9). On
    /// by default; the safety-critical persistence checks (8) are always on.
    pub strict_term_reveal: bool,
    /// The node runtime's `leader_sync_delay` (0 disables the leader's deferred fsync).
    pub leader_sync_delay_us: u64,
    /// The node runtime's `read_timeout`.
    pub read_timeout_ms: u64,
    /// Capacity of each node's apply channel (small, so that the backlog is exercised).
    pub apply_capacity: usize,
    /// The WAL's segment size (small, so that segments rotate and get purged).
    pub wal_segment_bytes: u64,
    /// WAL bytes buffered before a write reaches the file system (small: torn crashes
    /// then cut through records on disk).
    pub wal_write_buffer_bytes: usize,
}

/// 6.824-like timing: 10 ms ticks, heartbeats every 100 ms (10/s), elections after
/// 300..600 ms, small snapshot chunks so that 2D snapshots span several chunks.
pub fn default_raft_config() -> Config {
    let mut raft = Config::new(NodeId(1), vec![NodeId(1)]);
    raft.election_timeout_ticks = 30;
    raft.heartbeat_interval_ticks = 10;
    raft.snapshot_chunk_bytes = 1024;
    raft
}

impl SimConfig {
    /// Defaults for `nodes` nodes and `seed`. The disk rotates with the seed so every
    /// scenario runs with instant, fast (0.1..1 ms) and slow (2..20 ms) fsyncs, and the WAL
    /// with small and large write buffers.
    pub fn new(nodes: usize, seed: u64) -> SimConfig {
        let fsync_latency = match seed % 3 {
            0 => FsyncLatency::ZERO,
            1 => FsyncLatency {
                min_us: 100,
                max_us: 1_000,
            },
            _ => FsyncLatency {
                min_us: 2_000,
                max_us: 20_000,
            },
        };
        SimConfig {
            nodes,
            bootstrap_voters: nodes,
            seed,
            scenario: String::new(),
            tick_us: 10_000,
            tick_skew_per_mille: 0,
            raft: default_raft_config(),
            network: NetworkConfig::default(),
            fsync_latency,
            torn_crashes: true,
            snapshot_interval: 0,
            snapshot_padding_bytes: 0,
            strict_term_reveal: true,
            leader_sync_delay_us: 10_000,
            read_timeout_ms: 2_000,
            apply_capacity: 64,
            wal_segment_bytes: 64 * 1024,
            wal_write_buffer_bytes: if seed % 2 == 0 { 512 } else { 1 << 20 },
        }
    }

    /// Sets the scenario name.
    pub fn scenario(mut self, name: &str) -> SimConfig {
        self.scenario = name.to_string();
        self
    }
}
