//! [`LoadArgs`]: the command-line flags of a load generator, shared by `kvctl bench` and
//! `bench/etcd-load` so that both tools take the same options with the same defaults.

use super::{LoadSpec, StopAfter};
use std::time::Duration;

/// The load-shape flags (`#[command(flatten)]` them into a tool's own arguments).
#[derive(Clone, Debug, clap::Args)]
pub struct LoadArgs {
    /// Concurrent clients (threads), each with one operation in flight.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Connections the clients share (default: min(clients, 8)).
    #[arg(long)]
    pub connections: Option<usize>,
    /// Measure for this many seconds (after the warm-up).
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Stop after exactly this many measured operations instead.
    #[arg(long)]
    pub ops: Option<u64>,
    /// Warm-up seconds, not measured.
    #[arg(long, default_value_t = 1)]
    pub warmup_secs: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Key size in bytes (keys are `k` + zero-padded index).
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Number of distinct keys (each operation picks one uniformly).
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Fraction of reads (0.0 = all writes, 1.0 = all reads).
    #[arg(long, default_value_t = 0.0)]
    pub read_ratio: f64,
    /// Write every key once before the warm-up (so that reads find values).
    #[arg(long)]
    pub prefill: bool,
    /// Seed of key choice and value bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the final report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// No live progress on stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl LoadArgs {
    /// The engine's description of this load.
    pub fn spec(&self) -> LoadSpec {
        LoadSpec {
            clients: self.clients,
            prefill: self.prefill,
            warmup: Duration::from_secs(self.warmup_secs),
            stop_after: match self.ops {
                Some(n) => StopAfter::Ops(n),
                None => StopAfter::Elapsed(Duration::from_secs(self.duration_secs)),
            },
            keys: self.keys,
            key_bytes: self.key_size,
            value_bytes: self.value_size,
            read_ratio: self.read_ratio,
            seed: self.seed,
            progress_every: Duration::from_secs(1),
        }
    }

    /// How many connections to open: `--connections`, else min(clients, 8); at least one
    /// and at most one per client.
    pub fn connection_count(&self) -> usize {
        self.connections
            .unwrap_or(self.clients.min(8))
            .clamp(1, self.clients.max(1))
    }
}
