//! What a node's executor takes from other threads: the input queue's items and the
//! callbacks that answer proposals, reads and transfers.
//!
//! Every item carries the time it arrived (the node's clock), so that after a stall the
//! executor hands the core the ticks and the inputs in the order they happened: a
//! heartbeat that arrived at the end of a stall is stepped after the ticks that fell due
//! before it, not before all of them (see `executor.rs`).
//!
//! Callbacks run on the executor's thread and must be quick: it waits for them.

use super::types::{NodeError, ReadMode};
use crate::message::Message;
use crate::storage::SnapshotSource;
use crate::types::{LogIndex, NodeId, Term};
use bytes::Bytes;
use std::time::Duration;

/// Answers a proposal with its (index, term) once accepted, or the refusal.
pub(crate) type ProposeDone = Box<dyn FnOnce(Result<(LogIndex, Term), NodeError>) + Send>;
/// Answers a read with the index to serve it at once leadership is confirmed.
pub(crate) type ReadDone = Box<dyn FnOnce(Result<LogIndex, NodeError>) + Send>;
/// Answers a leadership transfer request (started, or refused).
pub(crate) type TransferDone = Box<dyn FnOnce(Result<(), NodeError>) + Send>;

/// An application snapshot as handed over: its bytes, or a source that writes them into
/// the snapshot file itself.
pub(crate) enum SnapshotData {
    Bytes(Bytes),
    Streamed(SnapshotSource),
}

/// Everything the executor reacts to besides time.
pub(crate) enum NodeInput {
    /// Messages from peers.
    Messages(Vec<Message>),
    /// A command to replicate.
    Propose { data: Bytes, done: ProposeDone },
    /// A configuration change to replicate.
    ProposeMembership {
        change: crate::core::membership::MembershipChange,
        done: ProposeDone,
    },
    /// A linearizable read.
    Read { mode: ReadMode, done: ReadDone },
    /// The application snapshotted its state at `index`.
    Compact { index: LogIndex, data: SnapshotData },
    /// Hand leadership to `to`.
    Transfer { to: NodeId, done: TransferDone },
    /// Stop the node.
    Shutdown,
}

/// An input as queued: when it arrived, and what it is.
pub(crate) struct Arrived {
    /// The node's clock when the input was queued.
    pub(crate) at: Duration,
    pub(crate) input: NodeInput,
}

impl NodeInput {
    /// Answers the input's caller with `error` (the input was refused, e.g. the queue was
    /// full or the node stopped).
    pub(crate) fn refuse(self, error: NodeError) {
        match self {
            NodeInput::Propose { done, .. } | NodeInput::ProposeMembership { done, .. } => {
                done(Err(error))
            }
            NodeInput::Read { done, .. } => done(Err(error)),
            NodeInput::Transfer { done, .. } => done(Err(error)),
            NodeInput::Messages(_) | NodeInput::Compact { .. } | NodeInput::Shutdown => {}
        }
    }
}
