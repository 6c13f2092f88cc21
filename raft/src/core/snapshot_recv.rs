//! The follower's side of InstallSnapshot (paper 7): take chunks in order, then install
//! the snapshot.
//!
//! - A chunk at the expected offset is handed out for writing (`Ready::snapshot_chunks`)
//!   and acknowledged with the next offset.
//! - A chunk already received is acknowledged again (the leader resent it); a chunk past
//!   a gap is rejected with the offset expected, so the leader resumes there.
//! - Offset 0 of a snapshot from another leader, term or position starts over (the
//!   storage starts a new incoming snapshot at every offset-0 chunk).
//! - On the last chunk: if the log already holds the snapshot's last entry (same index
//!   and term), the log is kept and the commit index moves up to it; otherwise the log
//!   is replaced (`Ready::snapshot` to install; `Ready::apply_snapshot` once the install
//!   is reported persisted). Either way the final acknowledgement goes after the persist.
//! - A snapshot not beyond our commit index is acknowledged as done at once: we hold
//!   everything it covers.
//!
//! - While a completed snapshot waits for its Ready, further chunks are dropped (the
//!   storage writes a Ready's chunks before installing its snapshot).
//!
//! Invariant: the core holds no snapshot bytes. A chunk's data passes straight through
//! to the Ready (only what was not received before), so a snapshot of any size costs the
//! follower a chunk of memory, not the snapshot.

use super::RaftCore;
use crate::message::{InstallSnapshot, InstallSnapshotResponse, MessageBody};
use crate::types::{NodeId, ReceivedSnapshot, SnapshotChunk, SnapshotMeta, Term};

/// A snapshot being received.
#[derive(Clone, Debug)]
pub(crate) struct IncomingSnapshot {
    from: NodeId,
    term: Term,
    meta: SnapshotMeta,
    total_bytes: u64,
    /// Bytes handed out for writing so far.
    received: u64,
}

/// What to do with a chunk.
enum ChunkOutcome {
    /// Acknowledge, expecting `next_offset`.
    Ack(u64),
    /// Reject; the leader should resume at `next_offset`.
    Reject(u64),
    /// The snapshot is complete.
    Complete(ReceivedSnapshot),
}

impl RaftCore {
    pub(super) fn handle_install_snapshot(&mut self, from: NodeId, chunk: InstallSnapshot) {
        let end = chunk.offset.checked_add(chunk.data.len() as u64);
        if end.is_none_or(|e| e > chunk.total_bytes)
            || (chunk.done && end != Some(chunk.total_bytes))
        {
            tracing::warn!(node = %self.id, %from, offset = chunk.offset, "dropping malformed snapshot chunk");
            return;
        }
        let (meta, total_bytes) = (chunk.meta, chunk.total_bytes);
        if self.snapshot_to_persist.is_some() {
            // A snapshot completed in this batch is not handed out yet: a chunk of another
            // would start a new incoming file before that one is installed (the storage
            // takes a Ready's chunks before its snapshot). Dropped; the leader resends
            // after the stall (`core/snapshot_send.rs`).
            tracing::debug!(node = %self.id, %from, "snapshot chunk while one waits to be installed; dropped");
            return;
        }
        if meta.index <= self.log.committed() {
            self.incoming_snapshot = None;
            self.reply_snapshot_done(from, meta, total_bytes);
            return;
        }
        match self.accept_chunk(from, chunk) {
            ChunkOutcome::Ack(next_offset) => self.reply_snapshot(from, meta, next_offset, false),
            ChunkOutcome::Reject(next_offset) => {
                tracing::debug!(node = %self.id, %from, next_offset, "snapshot chunk out of order");
                self.reply_snapshot(from, meta, next_offset, true);
            }
            ChunkOutcome::Complete(snapshot) => {
                self.install_snapshot(snapshot);
                self.reply_snapshot_done(from, meta, total_bytes);
            }
        }
    }

    fn accept_chunk(&mut self, from: NodeId, chunk: InstallSnapshot) -> ChunkOutcome {
        let same_transfer = self
            .incoming_snapshot
            .as_ref()
            .is_some_and(|s| s.from == from && s.term == self.term && s.meta == chunk.meta);
        let complete = ReceivedSnapshot {
            meta: chunk.meta,
            data_bytes: chunk.total_bytes,
            conf: chunk.conf.clone(),
        };
        if chunk.offset == 0 && chunk.done {
            // A single-chunk snapshot.
            self.incoming_snapshot = None;
            self.hand_out_chunk(chunk.meta, 0, chunk.data);
            return ChunkOutcome::Complete(complete);
        }
        if !same_transfer {
            if chunk.offset != 0 {
                return ChunkOutcome::Reject(0);
            }
            self.incoming_snapshot = Some(IncomingSnapshot {
                from,
                term: self.term,
                meta: chunk.meta,
                total_bytes: chunk.total_bytes,
                received: 0,
            });
        }
        let Some(incoming) = self.incoming_snapshot.as_mut() else {
            return ChunkOutcome::Reject(0);
        };
        let have = incoming.received;
        if chunk.offset > have {
            return ChunkOutcome::Reject(have);
        }
        let end = chunk.offset + chunk.data.len() as u64;
        // Offset 0 is handed out even when empty: it starts the incoming snapshot.
        if end > have || chunk.offset == 0 && !same_transfer {
            incoming.received = end.max(have);
            let total_bytes = incoming.total_bytes;
            let skip = usize::try_from(have - chunk.offset).unwrap_or(0);
            self.hand_out_chunk(chunk.meta, have, chunk.data.slice(skip..));
            if end < total_bytes {
                return ChunkOutcome::Ack(end);
            }
        } else if have < incoming.total_bytes {
            return ChunkOutcome::Ack(have);
        }
        self.incoming_snapshot = None;
        ChunkOutcome::Complete(complete)
    }

    /// Hands `data` (at `offset` of the snapshot at `meta`) out for writing.
    fn hand_out_chunk(&mut self, meta: SnapshotMeta, offset: u64, data: bytes::Bytes) {
        self.snapshot_chunks_to_write
            .push(SnapshotChunk { meta, offset, data });
    }

    /// Installs a complete snapshot.
    fn install_snapshot(&mut self, snapshot: ReceivedSnapshot) {
        let meta = snapshot.meta;
        if self.log.match_term(meta.index, meta.term) {
            tracing::info!(node = %self.id, index = %meta.index, "snapshot matches my log; fast-forwarding commit");
            self.log.commit_to(meta.index);
            return;
        }
        tracing::info!(node = %self.id, index = %meta.index, term = %meta.term, "installing snapshot");
        self.log.restore(meta, snapshot.data_bytes);
        self.retract_stale_append_acks();
        // The snapshot replaces the state up to its index, the configuration included
        // (a snapshot that recorded none leaves the bootstrap voters as they are).
        if let Some(conf) = &snapshot.conf {
            self.set_membership(conf.membership.clone());
            self.membership_index = conf.index;
        }
        self.snapshot_conf = snapshot.conf.clone();
        self.conf_history.clear();
        self.snapshot_to_persist = Some(snapshot);
        self.snapshot_received = Some(meta);
        self.snapshot_to_apply = None;
    }

    fn reply_snapshot(&mut self, to: NodeId, meta: SnapshotMeta, next_offset: u64, rejected: bool) {
        let r = InstallSnapshotResponse {
            meta,
            next_offset,
            done: false,
            rejected,
        };
        self.send(to, MessageBody::InstallSnapshotResponse(r));
    }

    /// The final acknowledgement: goes out after this Ready is durable.
    fn reply_snapshot_done(&mut self, to: NodeId, meta: SnapshotMeta, total_bytes: u64) {
        let r = InstallSnapshotResponse {
            meta,
            next_offset: total_bytes,
            done: true,
            rejected: false,
        };
        self.send(to, MessageBody::InstallSnapshotResponse(r));
    }
}
