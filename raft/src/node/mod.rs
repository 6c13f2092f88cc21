//! `RaftNode`: the threaded runtime around the pure [`crate::core::RaftCore`].
//!
//! ```text
//!   callers (KV service, RaftService)          apply channel (crossbeam, bounded)
//!        | start / read_with / step_batch            ^ ApplyMsg, in log order
//!        v  input queue (bounded)                    |
//!   +---------- driver thread: the Executor (owns RaftCore and Storage) ----+
//!   | wait: input | tick due | room on the apply channel                     |
//!   | round: inputs -> overdue ticks -> Readies:                            |
//!   |   messages ----------------------------------> Transport (never blocks)
//!   |   write entries/hard state; ONE fsync (or the leader defers it)       |
//!   |   once durable: messages_after_persist ------> Transport              |
//!   |                 on_persist_ready(number) -> core                      |
//!   |   committed entries -> apply backlog ---------------------------------+
//!   +-----------------------------------------------------------------------+
//! ```
//!
//! Everything a node does lives in one executor of the Ready contract
//! (`executor.rs`), which the seeded simulator runs too, on virtual time and a crashable
//! file system: the driver thread (`driver.rs`) only waits and calls it. Persistence runs
//! on the driver thread (as in etcd's raft loop): the leader's AppendEntries leave before
//! its fsync starts (thesis 10.2.1), and everything that arrives during an fsync is
//! batched into the next Ready, so one fsync covers many writes without a storage thread
//! and its two wake-ups per write.
//!
//! The executor is the only owner of the core, so there are no locks around Raft state.
//! Ticks are counted by the clock (`tick_clock.rs`), so there is no ticker thread. The
//! executor keeps committed entries in a backlog and feeds the apply channel only as fast
//! as the application drains it, so a slow application never stops heartbeats.
//!
//! Files: `types` (the node's vocabulary), `handle` (the public [`RaftNode`]), `driver`
//! (the thread), `executor` and its parts (`input`, `clock`, `tick_clock`, `persister`,
//! `durability_queue`, `leader_sync`, `apply_queue`, `pending_reads`), `shared` (status
//! the handle reads), and the network side (`service`, `rpc_transport`, `wire`).

mod apply_queue;
pub(crate) mod background;
pub(crate) mod clock;
mod driver;
mod durability_queue;
pub(crate) mod executor;
mod handle;
pub(crate) mod input;
mod leader_sync;
mod pending_reads;
mod persister;
mod rpc_transport;
mod service;
pub(crate) mod shared;
mod snapshot_writes;
mod tick_clock;
mod types;
pub mod wire;

pub use clock::{Clock, SystemClock};
pub use handle::RaftNode;
pub use rpc_transport::{RpcTransport, RpcTransportConfig};
pub use service::RaftServiceImpl;
pub use types::{NodeConfig, NodeError, NodeState, ReadMode, StartError};

use crate::types::{LogIndex, NodeId, Term};
use bytes::Bytes;

/// What the node hands the application, in log order, over the apply channel.
#[derive(Debug)]
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
    /// A committed configuration change, which Raft has already taken into effect. It
    /// advances the applied index as a no-op does; `data` decodes with
    /// `core::membership::MembershipChange::decode` (its `context` is the application's).
    Membership {
        /// Its log index.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// The encoded change.
        data: Bytes,
    },
    /// Replace the application state with this snapshot (at start-up, or when the leader
    /// sent one because this node fell behind).
    Snapshot {
        /// The last index the snapshot covers.
        index: LogIndex,
        /// The term of that index.
        term: Term,
        /// The application's encoded state, read from the storage as a stream (no copy
        /// of it in memory).
        data: crate::storage::SnapshotReader,
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
