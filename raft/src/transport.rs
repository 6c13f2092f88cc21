//! The seam between a node's executor and the network: the executor hands it messages to
//! deliver; something else (the node's `RaftService`, or a test router) delivers incoming
//! messages with [`crate::node::RaftNode::step_batch`].
//!
//! Implementations: [`crate::node::RpcTransport`] over rpc-framework Channels, the
//! simulator's (which stamps each message with the virtual instant it left and checks what
//! it reveals), and in-process routers in tests.

use crate::message::Message;

/// Delivers Raft messages to peers.
///
/// # Correctness
/// Delivery is best effort: messages may be lost, duplicated or reordered, and Raft stays
/// safe. But `send` must never block on a slow or dead peer: it is called from the node's
/// driver thread, which also persists and ticks.
pub trait Transport: Send + Sync + 'static {
    /// Queues `messages` (possibly for several peers, in the order produced) for delivery.
    fn send(&self, messages: Vec<Message>);

    /// Stops sending; later `send` calls may be dropped. Called once at node shutdown.
    fn shutdown(&self) {}
}
