//! `RaftNode`: the threaded runtime around the pure [`crate::core::RaftCore`].
//!
//! ```text
//!   callers (KV service, RaftService)          apply channel (crossbeam, bounded)
//!        | start / read_index / step                 ^ ApplyMsg, in log order
//!        v                                          |
//!   +---------- driver thread (owns RaftCore and Storage) ---+
//!   | select: inbox | tick | room on the apply channel       |
//!   | ready() -> messages ---------------------> Transport (never blocks)
//!   |         -> persist: append, ONE fsync (group commit)  |
//!   |         -> messages_after_persist -------> Transport  |
//!   |         -> committed entries -> apply backlog ---------+
//!   +--------------------------------------------------------+
//! ```
//!
//! Persistence runs on the driver thread (as in etcd's raft loop): the leader's
//! AppendEntries leave before its fsync starts (thesis 10.2.1), and everything that
//! arrives during an fsync is batched into the next Ready, so one fsync covers many
//! writes without a storage thread and its two wake-ups per write.
//!
//! The driver is the only owner of the core, so there are no locks around Raft state.
//! Ticks come from a crossbeam `tick` channel, so there is no separate ticker thread. The
//! driver keeps committed entries in a backlog and feeds the apply channel only as fast
//! as the application drains it, so a slow application never stops heartbeats.

mod driver;
mod handle;
mod leader_sync;
mod persister;
mod rpc_transport;
mod service;
mod shared;
mod tick_clock;
pub mod wire;

pub use handle::{NodeConfig, NodeError, NodeState, RaftNode, ReadMode, StartError};
pub use rpc_transport::{RpcTransport, RpcTransportConfig};
pub use service::RaftServiceImpl;

use crate::types::{LogIndex, NodeId, Term};
use bytes::Bytes;

/// What the node hands the application, in log order, over the apply channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyMsg {
    /// A committed command.
    Command {
        /// Its log index.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// The command bytes given to [`RaftNode::start`].
        data: Bytes,
    },
    /// A committed no-op (a new leader's first entry). Carries no command, but advances
    /// the applied index: reads waiting for it, and writes waiting on this index (which
    /// lost their slot), need to know.
    Noop {
        /// Its log index.
        index: LogIndex,
        /// Its term.
        term: Term,
    },
    /// Replace the application state with this snapshot (at start-up, or when the leader
    /// sent one because this node fell behind).
    Snapshot {
        /// The last index the snapshot covers.
        index: LogIndex,
        /// The term of that index.
        term: Term,
        /// The application's encoded state.
        data: Bytes,
    },
    /// This node's view of leadership changed. Sent in order with the entries, so the
    /// application can fail the writes it is waiting on when it loses leadership.
    RoleChange {
        /// The current term.
        term: Term,
        /// Whether this node is now the leader.
        is_leader: bool,
        /// The known leader, if any.
        leader: Option<NodeId>,
    },
}
