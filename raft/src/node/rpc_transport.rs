//! [`RpcTransport`]: the [`Transport`] over rpc-framework Channels, one per peer.
//!
//! The messages for one peer from one `send` (a Ready's worth) go out as `RaftBatch`
//! frames of at most `max_batch_bytes` each (a full window of maximum-size appends would
//! otherwise exceed the frame limit and be dropped whole, heartbeats with it), the small
//! control messages (heartbeats, votes, acknowledgements) in the first frame, ahead of
//! the bulky appends and snapshot chunks. Frames are sent one-way: Raft acknowledges at its own level (every request has a response
//! message), so a reply frame per batch would only cost the receiver a write and the
//! sender a wake-up of its channel thread. A slow or dead peer only fills its own
//! connection's send queue; once that is full its messages are dropped (Raft retransmits)
//! and neither the driver nor the other peers ever wait.

use super::wire::to_wire;
use crate::message::Message;
use crate::transport::Transport;
use crate::types::NodeId;
use proto::raft::{self as pb, RaftBatch, RaftServiceClient};
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
    /// Largest `RaftBatch` frame, in encoded message bytes (default 8 MiB; at most the
    /// channel's frame limit). A single message larger than this goes alone.
    pub max_batch_bytes: usize,
    /// The digest of the settings all members must share, sent with every batch (see
    /// [`crate::node::RaftServiceImpl::with_settings_digest`]); 0 = none.
    pub settings_digest: u64,
}

impl RpcTransportConfig {
    /// Defaults for node `from` of `cluster_id`.
    pub fn new(cluster_id: impl Into<String>, from: NodeId) -> RpcTransportConfig {
        RpcTransportConfig {
            cluster_id: cluster_id.into(),
            from,
            channel: ChannelConfig::default(),
            max_batch_bytes: 8 * 1024 * 1024,
            settings_digest: 0,
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
        let max_bytes = self
            .config
            .max_batch_bytes
            .min(self.config.channel.max_frame_bytes / 2)
            .max(1);
        for messages in split_into_batches(msgs.into_iter().map(to_wire).collect(), max_bytes) {
            let batch = RaftBatch {
                cluster_id: self.config.cluster_id.clone(),
                from: self.config.from.0,
                messages,
                settings_digest: self.config.settings_digest,
            };
            if let Err(e) = self.client.send_one_way(&batch) {
                let dropped = self.dropped_batches.fetch_add(1, Ordering::Relaxed) + 1;
                if let rpc_framework::RpcError::FrameTooLarge { .. } = e {
                    // Batches are split below the frame limit: this is a bug, say so.
                    tracing::warn!(peer = %self.peer, dropped, error = %e, "raft batch dropped");
                } else if dropped.is_power_of_two() {
                    tracing::debug!(peer = %self.peer, dropped, error = %e, "raft batch dropped");
                }
            }
        }
    }
}

/// Groups one peer's messages into batches of at most `max_bytes` of encoded messages
/// (a larger message goes alone): control messages first, in their order, then the
/// appends and snapshot chunks, in theirs.
fn split_into_batches(
    messages: Vec<pb::RaftMessage>,
    max_bytes: usize,
) -> Vec<Vec<pb::RaftMessage>> {
    let (control, bulk): (Vec<_>, Vec<_>) = messages.into_iter().partition(|m| !is_bulk(m));
    let mut batches: Vec<Vec<pb::RaftMessage>> = Vec::new();
    let mut batch_bytes = 0usize;
    for msg in control.into_iter().chain(bulk) {
        let bytes = prost::Message::encoded_len(&msg);
        let fits =
            batches.last().is_some_and(|b| !b.is_empty()) && batch_bytes + bytes <= max_bytes;
        if fits {
            batch_bytes += bytes;
            if let Some(last) = batches.last_mut() {
                last.push(msg);
            }
        } else {
            batch_bytes = bytes;
            batches.push(vec![msg]);
        }
    }
    batches
}

fn is_bulk(msg: &pb::RaftMessage) -> bool {
    matches!(
        msg.body,
        Some(pb::raft_message::Body::AppendEntries(_) | pb::raft_message::Body::InstallSnapshot(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{AppendEntries, Heartbeat, MessageBody};
    use crate::types::{Entry, EntryKind, LogIndex, Term};
    use bytes::Bytes;

    fn message(body: MessageBody) -> pb::RaftMessage {
        to_wire(Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(1),
            body,
        })
    }

    fn append(index: u64, bytes: usize) -> pb::RaftMessage {
        message(MessageBody::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(index - 1),
            prev_log_term: Term(1),
            entries: vec![Entry {
                index: LogIndex(index),
                term: Term(1),
                kind: EntryKind::Normal,
                data: Bytes::from(vec![7u8; bytes]),
            }],
            leader_commit: LogIndex(0),
        }))
    }

    fn first_index(m: &pb::RaftMessage) -> Option<u64> {
        match &m.body {
            Some(pb::raft_message::Body::AppendEntries(a)) => Some(a.prev_log_index + 1),
            _ => None,
        }
    }

    // A full window of maximum-size appends (64 x 1 MiB) plus a heartbeat: one frame
    // would pass the 64 MiB limit and be dropped whole. Split, every frame stays under the
    // budget, the heartbeat leaves first, and the appends keep their order.
    #[test]
    fn a_window_of_large_appends_is_split_and_control_messages_go_first() {
        let mut msgs: Vec<pb::RaftMessage> = (1..=64).map(|i| append(i, 1 << 20)).collect();
        msgs.push(message(MessageBody::Heartbeat(Heartbeat {
            commit: LogIndex(0),
            read_seq: 3,
        })));
        let max = 8 << 20;
        let batches = split_into_batches(msgs, max);
        assert!(batches.len() >= 8, "{} batches", batches.len());
        for b in &batches {
            let bytes: usize = b.iter().map(prost::Message::encoded_len).sum();
            assert!(bytes <= max, "a batch of {bytes} bytes");
        }
        assert!(matches!(
            batches[0][0].body,
            Some(pb::raft_message::Body::Heartbeat(_))
        ));
        let order: Vec<u64> = batches.iter().flatten().filter_map(first_index).collect();
        assert_eq!(order, (1..=64).collect::<Vec<u64>>());
    }

    #[test]
    fn a_message_larger_than_the_budget_goes_alone() {
        let batches = split_into_batches(vec![append(1, 10), append(2, 100), append(3, 10)], 50);
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
        let batches = split_into_batches(vec![append(1, 1), append(2, 1)], 1 << 20);
        assert_eq!(batches.len(), 1);
        assert!(split_into_batches(Vec::new(), 10).is_empty());
    }
}
