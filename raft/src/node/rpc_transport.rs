//! [`RpcTransport`]: the [`Transport`] over rpc-framework Channels, one per peer.
//!
//! Each peer has its own bounded queue and a small window of batches in flight, so a
//! slow or dead peer only ever fills its own queue (then its messages are dropped:
//! Raft retransmits) and never blocks the driver or the other peers. Messages queued
//! while a batch is in flight are coalesced into the next `RaftBatch` — one frame, one
//! syscall for many messages.

use super::wire::to_wire;
use crate::message::Message;
use crate::transport::Transport;
use crate::types::NodeId;
use parking_lot::Mutex;
use proto::raft::{RaftBatch, RaftServiceClient};
use rpc_framework::{CallOptions, Channel, ChannelConfig};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Settings of the peer connections.
#[derive(Clone, Debug)]
pub struct RpcTransportConfig {
    /// This cluster's id, sent with every batch; peers of another cluster reject it.
    pub cluster_id: String,
    /// This node.
    pub from: NodeId,
    /// Batches in flight per peer.
    pub max_inflight_batches: usize,
    /// Messages queued per peer beyond which new ones are dropped.
    pub max_queued_messages: usize,
    /// Deadline of one batch.
    pub batch_timeout: Duration,
    /// Channel settings.
    pub channel: ChannelConfig,
}

impl RpcTransportConfig {
    /// Defaults for node `from` of `cluster_id`.
    pub fn new(cluster_id: impl Into<String>, from: NodeId) -> RpcTransportConfig {
        RpcTransportConfig {
            cluster_id: cluster_id.into(),
            from,
            max_inflight_batches: 4,
            max_queued_messages: 4096,
            batch_timeout: Duration::from_secs(2),
            channel: ChannelConfig::default(),
        }
    }
}

/// Sends Raft messages to peers over rpc-framework.
#[derive(Debug)]
pub struct RpcTransport {
    peers: BTreeMap<NodeId, Arc<PeerSender>>,
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
                    queue: Mutex::new(PeerQueue::default()),
                };
                (*id, Arc::new(sender))
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
                Some(peer) => PeerSender::enqueue(peer, msgs),
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

#[derive(Debug, Default)]
struct PeerQueue {
    queued: VecDeque<Message>,
    inflight: usize,
    dropped: u64,
}

#[derive(Debug)]
struct PeerSender {
    peer: NodeId,
    client: RaftServiceClient,
    config: Arc<RpcTransportConfig>,
    queue: Mutex<PeerQueue>,
}

impl PeerSender {
    fn enqueue(this: &Arc<PeerSender>, msgs: Vec<Message>) {
        let batch = {
            let mut q = this.queue.lock();
            for m in msgs {
                if q.queued.len() >= this.config.max_queued_messages {
                    q.dropped += 1;
                    if q.dropped.is_power_of_two() {
                        tracing::warn!(peer = %this.peer, dropped = q.dropped, "peer queue full; dropping messages");
                    }
                    continue;
                }
                q.queued.push_back(m);
            }
            Self::take_batch(this, &mut q)
        };
        if let Some(batch) = batch {
            Self::send_batch(this, batch);
        }
    }

    /// Takes everything queued as one batch if the window has room.
    fn take_batch(this: &Arc<PeerSender>, q: &mut PeerQueue) -> Option<RaftBatch> {
        if q.queued.is_empty() || q.inflight >= this.config.max_inflight_batches {
            return None;
        }
        q.inflight += 1;
        let messages = q.queued.drain(..).map(to_wire).collect();
        Some(RaftBatch {
            cluster_id: this.config.cluster_id.clone(),
            from: this.config.from.0,
            messages,
        })
    }

    fn send_batch(this: &Arc<PeerSender>, batch: RaftBatch) {
        let options = CallOptions {
            timeout: Some(this.config.batch_timeout),
        };
        let me = this.clone();
        this.client.send_async(&batch, &options, move |result| {
            if let Err(e) = result {
                tracing::debug!(peer = %me.peer, error = %e, "raft batch failed");
            }
            let next = {
                let mut q = me.queue.lock();
                q.inflight -= 1;
                Self::take_batch(&me, &mut q)
            };
            if let Some(batch) = next {
                Self::send_batch(&me, batch);
            }
        });
    }
}
