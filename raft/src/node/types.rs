//! The node's vocabulary: its settings ([`NodeConfig`]), how reads confirm leadership
//! ([`ReadMode`]), why calls fail ([`NodeError`], [`StartError`]) and what callers see of
//! leadership ([`NodeState`]). Shared by the handle, the executor and the driver thread,
//! so that none of them imports another for its types.

use crate::config::Config;
use crate::error::{ConfigError, ProposeError, StorageError};
use crate::types::{NodeId, Term};
use std::time::Duration;

/// Settings of the runtime around the core.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The core's settings (ids, timeouts in ticks, batching limits).
    pub raft: Config,
    /// Wall-clock length of one tick.
    pub tick_interval: Duration,
    /// How long a read waits for leadership confirmation before failing with `Timeout`.
    pub read_timeout: Duration,
    /// How long a leader may hold back the fsync of entries it wrote while its followers
    /// alone can commit them (see `leader_sync.rs`). Zero disables this.
    pub leader_sync_delay: Duration,
    /// Capacity of the node's input queue. Peer messages beyond it are dropped (Raft
    /// tolerates loss); proposals beyond it fail with `Busy`.
    pub inbox_capacity: usize,
}

impl NodeConfig {
    /// Defaults for a node: 10 ms ticks, heartbeats every 50 ms, elections after 500-1000 ms.
    pub fn new(raft: Config) -> NodeConfig {
        NodeConfig {
            raft: Config {
                election_timeout_ticks: 50,
                heartbeat_interval_ticks: 5,
                ..raft
            },
            tick_interval: Duration::from_millis(10),
            read_timeout: Duration::from_secs(2),
            leader_sync_delay: Duration::from_millis(10),
            inbox_capacity: 16 * 1024,
        }
    }
}

/// How a read confirms that this node is still the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// A heartbeat round acknowledged by a majority (thesis 6.4); batched across reads.
    #[default]
    ReadIndex,
    /// The leader lease when it holds (thesis 6.4.1; `Config::lease_reads`), else
    /// ReadIndex. Saves a round trip; relies on bounded clock drift.
    Lease,
}

/// Why a node call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// This node is not the leader; `leader_hint` is the leader it knows of.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The current leader, when known.
        leader_hint: Option<NodeId>,
    },
    /// A leadership transfer is in progress.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// The command exceeds the configured maximum.
    #[error("command of {size_bytes} bytes exceeds the limit of {max_bytes}")]
    TooLarge {
        /// Its size.
        size_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// A configuration change was refused (pending, stale, not ready or unsafe: the
    /// message says which).
    #[error("{0}")]
    MembershipRefused(String),
    /// The node's input queue is full.
    #[error("node is overloaded")]
    Busy,
    /// The read was not confirmed in time.
    #[error("timed out")]
    Timeout,
    /// The node has stopped (shut down, or its storage failed).
    #[error("node stopped")]
    Stopped,
}

impl From<ProposeError> for NodeError {
    fn from(e: ProposeError) -> NodeError {
        match e {
            ProposeError::NotLeader { leader_hint } => NodeError::NotLeader { leader_hint },
            ProposeError::TransferInProgress => NodeError::TransferInProgress,
            ProposeError::TooLarge {
                size_bytes,
                max_bytes,
            } => NodeError::TooLarge {
                size_bytes,
                max_bytes,
            },
            e @ (ProposeError::MembershipChangePending { .. }
            | ProposeError::LeaderNotReady
            | ProposeError::StaleMembership { .. }
            | ProposeError::MembershipChangeRefused(_)) => {
                NodeError::MembershipRefused(e.to_string())
            }
        }
    }
}

/// The node's view of leadership, as in 6.824's `GetState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeState {
    /// Current term.
    pub term: Term,
    /// Whether this node is the leader.
    pub is_leader: bool,
    /// The known leader.
    pub leader: Option<NodeId>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Reading the durable state failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The configuration or the recovered state is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A thread could not be spawned.
    #[error("spawning a thread failed: {0}")]
    Spawn(#[from] std::io::Error),
}
