//! [`RpcTransport`]: the [`Transport`] over rpc-framework Channels, one per peer.
//!
//! The messages for one peer from one `send` (a Ready's worth) go out as one `RaftBatch`
//! frame, sent one-way: Raft acknowledges at its own level (every request has a response
//! message), so a reply frame per batch would only cost the receiver a write and the
//! sender a wake-up of its channel thread. A slow or dead peer only fills its own
//! connection's send queue; once that is full its messages are dropped (Raft retransmits)
//! and neither the driver nor the other peers ever wait.

use super::wire::to_wire;
use crate::message::Message;
use crate::transport::Transport;
use crate::types::NodeId;
use proto::raft::{RaftBatch, RaftServiceClient};
use rpc_framework::{Channel, ChannelConfig};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Settings of the peer connections.
#[derive(Clone, Debug)]
pub struct RpcTransportConfig {
    /// This cluster's id, sent with every batch; peers of another cluster reject it.
    pub cluster_id: String,
    /// This node.
    pub from: NodeId,
    /// Channel settings (`max_queued_bytes` bounds what waits for a slow peer).
    pub channel: ChannelConfig,
}

impl RpcTransportConfig {
    /// Defaults for node `from` of `cluster_id`.
    pub fn new(cluster_id: impl Into<String>, from: NodeId) -> RpcTransportConfig {
        RpcTransportConfig {
            cluster_id: cluster_id.into(),
            from,
            channel: ChannelConfig::default(),
        }
    }
}

/// Sends Raft messages to peers over rpc-framework.
#[derive(Debug)]
pub struct RpcTransport {
    peers: BTreeMap<NodeId, PeerSender>,
}

impl RpcTransport {
    /// Connects (lazily) to every peer in `peers` (id -> "host:port"), except `config.from`.
    pub fn new(config: RpcTransportConfig, peers: &BTreeMap<NodeId, String>) -> RpcTransport {
        let shared = Arc::new(config);
        let peers = peers
            .iter()
            .filter(|(id, _)| **id != shared.from)
            .map(|(id, addr)| {
                let channel = Channel::new(addr.clone(), shared.channel.clone());
                let sender = PeerSender {
                    peer: *id,
                    client: RaftServiceClient::new(channel),
                    config: shared.clone(),
                    dropped_batches: AtomicU64::new(0),
                };
                (*id, sender)
            })
            .collect();
        RpcTransport { peers }
    }
}

impl Transport for RpcTransport {
    fn send(&self, messages: Vec<Message>) {
        let mut by_peer: BTreeMap<NodeId, Vec<Message>> = BTreeMap::new();
        for msg in messages {
            by_peer.entry(msg.to).or_default().push(msg);
        }
        for (to, msgs) in by_peer {
            match self.peers.get(&to) {
                Some(peer) => peer.send(msgs),
                None => tracing::warn!(peer = %to, "message for an unknown peer dropped"),
            }
        }
    }

    fn shutdown(&self) {
        for peer in self.peers.values() {
            peer.client.channel().shutdown();
        }
    }
}

#[derive(Debug)]
struct PeerSender {
    peer: NodeId,
    client: RaftServiceClient,
    config: Arc<RpcTransportConfig>,
    dropped_batches: AtomicU64,
}

impl PeerSender {
    fn send(&self, msgs: Vec<Message>) {
        let batch = RaftBatch {
            cluster_id: self.config.cluster_id.clone(),
            from: self.config.from.0,
            messages: msgs.into_iter().map(to_wire).collect(),
        };
        if let Err(e) = self.client.send_one_way(&batch) {
            let dropped = self.dropped_batches.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::debug!(peer = %self.peer, dropped, error = %e, "raft batch dropped");
            }
        }
    }
}
