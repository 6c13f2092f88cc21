//! The node's `RaftService` (generated from proto/raft.proto): receives batches of Raft
//! messages from peers and hands them to the driver. Registered inline on the Provider:
//! it only decodes and enqueues, never blocks.

use super::handle::RaftNode;
use super::wire::from_wire;
use crate::types::NodeId;
use proto::raft::{RaftBatch, RaftBatchAck};
use rpc_framework::{Code, Reply, Status};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Implements the generated `proto::raft::RaftService` for one node.
#[derive(Debug)]
pub struct RaftServiceImpl {
    node: Arc<RaftNode>,
    cluster_id: String,
    voters: Vec<NodeId>,
    settings_digest: u64,
    rejected: AtomicU64,
}

impl RaftServiceImpl {
    /// A service delivering to `node`, accepting only batches of `cluster_id` from `voters`.
    pub fn new(node: Arc<RaftNode>, cluster_id: impl Into<String>, voters: Vec<NodeId>) -> Self {
        RaftServiceImpl {
            node,
            cluster_id: cluster_id.into(),
            voters,
            settings_digest: 0,
            rejected: AtomicU64::new(0),
        }
    }

    /// Also rejects batches whose settings digest is not `digest`: the settings every
    /// member must share (timing and lease settings, limits, the member ids) are checked at
    /// every batch, so a node configured differently can neither lead nor vote nor
    /// acknowledge. 0 checks nothing.
    pub fn with_settings_digest(mut self, digest: u64) -> Self {
        self.settings_digest = digest;
        self
    }

    fn reject(&self, reply: Reply<RaftBatchAck>, code: Code, reason: String) {
        let n = self.rejected.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(node = %self.node.id(), rejected = n, %reason, "rejected raft batch");
        }
        reply.err(Status::new(code, reason));
    }
}

impl proto::raft::RaftService for RaftServiceImpl {
    fn send(&self, request: RaftBatch, reply: Reply<RaftBatchAck>) {
        if request.cluster_id != self.cluster_id {
            let reason = format!(
                "peer {} belongs to cluster {:?}, this node to {:?}",
                request.from, request.cluster_id, self.cluster_id
            );
            return self.reject(reply, Code::FailedPrecondition, reason);
        }
        if self.settings_digest != 0 && request.settings_digest != self.settings_digest {
            let reason = format!(
                "peer {} runs with cluster settings digest {:016x}, this node with {:016x}: \
                 [raft] timing and lease settings, [limits] and the node ids must be the same \
                 on every node (each logs its settings at start-up)",
                request.from, request.settings_digest, self.settings_digest
            );
            return self.reject(reply, Code::FailedPrecondition, reason);
        }
        let from = NodeId(request.from);
        if !self.voters.contains(&from) {
            let reason = format!(
                "node {from} is not a member of cluster {:?}",
                self.cluster_id
            );
            return self.reject(reply, Code::FailedPrecondition, reason);
        }
        let mut messages = Vec::with_capacity(request.messages.len());
        for wire in request.messages {
            match from_wire(wire) {
                Ok(m) if m.from == from && m.to == self.node.id() => messages.push(m),
                Ok(m) => {
                    let reason =
                        format!("message from {} to {} in a batch from {from}", m.from, m.to);
                    return self.reject(reply, Code::InvalidArgument, reason);
                }
                Err(e) => return self.reject(reply, Code::InvalidArgument, e.to_string()),
            }
        }
        // A member of this cluster, with our settings: its connection gets the reserved
        // path (never evicted by a flood of clients, the reserved memory budget).
        reply.promote_connection();
        self.node.step_batch(messages);
        reply.ok(RaftBatchAck {});
    }
}
