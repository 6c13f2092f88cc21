//! The follower's side of InstallSnapshot (paper 7): assemble chunks in order, then
//! install the snapshot.
//!
//! - A chunk at the expected offset is appended and acknowledged with the next offset.
//! - A chunk already received is acknowledged again (the leader resent it); a chunk past
//!   a gap is rejected with the offset expected, so the leader resumes there.
//! - Offset 0 of a snapshot from another leader, term or position starts over.
//! - On the last chunk: if the log already holds the snapshot's last entry (same index
//!   and term), the log is kept and the commit index moves up to it; otherwise the log
//!   is replaced (`Ready::snapshot` to persist; `Ready::apply_snapshot` once the persist
//!   is reported). Either way the final acknowledgement goes after the persist.
//! - A snapshot not beyond our commit index is acknowledged as done at once: we hold
//!   everything it covers.
//!
//! Invariant: the assembly buffer grows only by data actually received, never by the
//! `total_bytes` the sender claims.

use super::RaftCore;
use crate::message::{InstallSnapshot, InstallSnapshotResponse, MessageBody};
use crate::types::{NodeId, Snapshot, SnapshotMeta, Term};
use bytes::{Bytes, BytesMut};

/// A snapshot being received.
#[derive(Clone, Debug)]
pub(crate) struct IncomingSnapshot {
    from: NodeId,
    term: Term,
    meta: SnapshotMeta,
    total_bytes: u64,
    buf: BytesMut,
}

/// What to do with a chunk.
enum ChunkOutcome {
    /// Acknowledge, expecting `next_offset`.
    Ack(u64),
    /// Reject; the leader should resume at `next_offset`.
    Reject(u64),
    /// The snapshot is complete.
    Complete(Snapshot),
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
        if chunk.offset == 0 && chunk.done {
            // A single-chunk snapshot: no assembly, no copy.
            self.incoming_snapshot = None;
            return ChunkOutcome::Complete(Snapshot {
                meta: chunk.meta,
                data: chunk.data,
            });
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
                buf: BytesMut::new(),
            });
        }
        let Some(incoming) = self.incoming_snapshot.as_mut() else {
            return ChunkOutcome::Reject(0);
        };
        let have = incoming.buf.len() as u64;
        if chunk.offset > have {
            return ChunkOutcome::Reject(have);
        }
        let end = chunk.offset + chunk.data.len() as u64;
        if end > have {
            let skip = usize::try_from(have - chunk.offset).unwrap_or(0);
            incoming.buf.extend_from_slice(&chunk.data[skip..]);
        }
        let have = incoming.buf.len() as u64;
        if have < incoming.total_bytes {
            return ChunkOutcome::Ack(have);
        }
        let meta = incoming.meta;
        let data: Bytes = std::mem::take(&mut incoming.buf).freeze();
        self.incoming_snapshot = None;
        ChunkOutcome::Complete(Snapshot { meta, data })
    }

    /// Installs a complete snapshot.
    fn install_snapshot(&mut self, snapshot: Snapshot) {
        let meta = snapshot.meta;
        if self.log.match_term(meta.index, meta.term) {
            tracing::info!(node = %self.id, index = %meta.index, "snapshot matches my log; fast-forwarding commit");
            self.log.commit_to(meta.index);
            return;
        }
        tracing::info!(node = %self.id, index = %meta.index, term = %meta.term, "installing snapshot");
        self.log.restore(meta, snapshot.data.len() as u64);
        self.retract_stale_append_acks();
        self.snapshot_to_persist = Some(snapshot.clone());
        self.snapshot_received = Some(snapshot);
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
