//! The leader's side of InstallSnapshot (paper 7): when a follower needs entries the
//! leader has compacted, send the leader's latest snapshot in chunks of
//! `snapshot_chunk_bytes`, at most `SNAPSHOT_WINDOW_CHUNKS` unacknowledged at a time.
//!
//! Recovery: a follower that sees a gap rejects with the offset it expects and the leader
//! rewinds there (once per offset, so the rejections of the chunks behind a lost one do
//! not rewind again and again). A transfer with no progress for
//! `SNAPSHOT_STALL_HEARTBEATS` heartbeat intervals is rewound to the last acknowledged
//! offset when the follower next answers a heartbeat (it is alive, so resending is not
//! wasted on a dead peer). If the leader compacts again meanwhile, the transfer restarts
//! with the new snapshot.
//!
//! Invariant: a transfer always refers to the leader's current snapshot. The core holds
//! no snapshot bytes: it sends each chunk with empty `data`, and the executor fills it from
//! the storage's snapshot file before it leaves (`Storage::read_snapshot_chunk`), so a
//! leader never keeps a second copy of a data set in memory to serve laggards.

use super::progress::{ProgressState, SnapshotTransfer};
use super::RaftCore;
use crate::message::{InstallSnapshot, InstallSnapshotResponse, MessageBody};
use crate::types::NodeId;

/// Chunks sent but not yet acknowledged, at most.
pub(crate) const SNAPSHOT_WINDOW_CHUNKS: u64 = 4;
/// Heartbeat intervals without progress before a transfer is resent.
pub(crate) const SNAPSHOT_STALL_HEARTBEATS: u32 = 3;

impl RaftCore {
    /// Starts sending the current snapshot to `peer` from offset 0.
    pub(super) fn start_snapshot_transfer(&mut self, peer: NodeId) {
        let (meta, bytes) = (self.log.snapshot_meta(), self.log.snapshot_bytes());
        let transfer = SnapshotTransfer::new(meta, bytes);
        tracing::info!(node = %self.id, %peer, index = %meta.index, bytes, "sending snapshot");
        let Some(pr) = self.progress.get_mut(&peer) else {
            return;
        };
        pr.become_snapshot(transfer);
        self.send_snapshot_chunks(peer);
    }

    /// Sends chunks while the window has room.
    pub(super) fn send_snapshot_chunks(&mut self, peer: NodeId) {
        let chunk_bytes = self.config.snapshot_chunk_bytes as u64;
        let window_bytes = chunk_bytes.saturating_mul(SNAPSHOT_WINDOW_CHUNKS);
        let current = self.log.snapshot_meta();
        loop {
            let Some(t) = self
                .progress
                .get_mut(&peer)
                .and_then(|p| p.snapshot.as_mut())
            else {
                return;
            };
            if t.meta != current {
                self.start_snapshot_transfer(peer);
                return;
            }
            if t.sent_all || t.sent_offset - t.acked_offset >= window_bytes {
                return;
            }
            let start = t.sent_offset;
            let end = chunk_end(start, t.total_bytes, chunk_bytes);
            t.sent_offset = end;
            t.sent_all = end == t.total_bytes;
            let chunk = InstallSnapshot {
                meta: t.meta,
                offset: start,
                total_bytes: t.total_bytes,
                data: bytes::Bytes::new(), // filled by the executor
                done: t.sent_all,
                conf: self.snapshot_conf.clone(),
            };
            self.send(peer, MessageBody::InstallSnapshot(chunk));
        }
    }

    /// A follower's answer to a snapshot chunk.
    pub(super) fn handle_snapshot_response(&mut self, from: NodeId, r: InstallSnapshotResponse) {
        if r.done {
            self.handle_snapshot_done(from, r);
            return;
        }
        let Some(t) = self
            .progress
            .get_mut(&from)
            .and_then(|p| p.snapshot.as_mut())
            .filter(|t| t.meta == r.meta)
        else {
            return;
        };
        if r.rejected {
            let offset = r.next_offset.min(t.total_bytes);
            if t.last_rewind == Some(offset) {
                return;
            }
            tracing::debug!(node = %self.id, peer = %from, offset, "snapshot chunk rejected; rewinding");
            t.rewind_to(offset);
            t.last_rewind = Some(offset);
        } else if r.next_offset > t.acked_offset {
            t.acked_offset = r.next_offset.min(t.total_bytes);
            t.sent_offset = t.sent_offset.max(t.acked_offset);
            t.stall_ticks = 0;
            t.last_rewind = None;
        }
        self.send_snapshot_chunks(from);
    }

    /// The follower holds the snapshot durably: it matches up to the snapshot's index.
    fn handle_snapshot_done(&mut self, from: NodeId, r: InstallSnapshotResponse) {
        let (first_index, last_index) = (self.log.first_index(), self.log.last_index());
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        if r.meta.index > last_index {
            return;
        }
        pr.maybe_update(r.meta.index);
        let finished = pr.snapshot.as_ref().is_some_and(|t| t.meta == r.meta)
            || pr.match_index.next() >= first_index;
        if pr.state == ProgressState::Snapshot && finished {
            tracing::info!(node = %self.id, peer = %from, index = %r.meta.index, "snapshot installed");
            pr.become_replicate();
        }
        self.maybe_commit();
        self.maybe_send_timeout_now(from);
        self.maybe_send_append(from, false);
    }

    /// Leader tick: count stalled transfers.
    pub(super) fn tick_snapshot_transfers(&mut self) {
        for t in self
            .progress
            .values_mut()
            .filter_map(|p| p.snapshot.as_mut())
        {
            t.stall_ticks = t.stall_ticks.saturating_add(1);
        }
    }

    /// The peer answered a heartbeat: if its transfer stalled, resend from the last
    /// acknowledged offset.
    pub(super) fn maybe_resume_stalled_snapshot(&mut self, peer: NodeId) {
        let limit = SNAPSHOT_STALL_HEARTBEATS.saturating_mul(self.config.heartbeat_interval_ticks);
        let Some(t) = self
            .progress
            .get_mut(&peer)
            .and_then(|p| p.snapshot.as_mut())
        else {
            return;
        };
        if t.stall_ticks >= limit {
            tracing::debug!(node = %self.id, %peer, offset = t.acked_offset, "snapshot transfer stalled; resending");
            t.rewind_to(t.acked_offset);
            t.last_rewind = None;
            self.send_snapshot_chunks(peer);
        }
    }

    /// After compaction: transfers of an older snapshot restart with the new one.
    pub(super) fn restart_stale_snapshot_transfers(&mut self) {
        let current = self.log.snapshot_meta();
        let stale: Vec<NodeId> = self
            .progress
            .iter()
            .filter(|(_, p)| p.snapshot.as_ref().is_some_and(|t| t.meta != current))
            .map(|(id, _)| *id)
            .collect();
        for peer in stale {
            self.start_snapshot_transfer(peer);
        }
    }
}

/// Where the chunk starting at `offset` of a snapshot of `total_bytes` ends, with chunks
/// of `chunk_bytes`: the leader's core cuts chunks this way, and whoever fills them (the
/// executor, from the storage) reads `offset..chunk_end(..)`.
pub fn chunk_end(offset: u64, total_bytes: u64, chunk_bytes: u64) -> u64 {
    offset.saturating_add(chunk_bytes).min(total_bytes)
}
