//! `Ready`: everything the core wants done after a batch of inputs, and the order in
//! which the driver must do it (see the crate docs, "The Ready contract").
//!
//! Invariant: a `Ready` is self-contained. Messages in `messages` depend on nothing
//! unpersisted; `messages_after_persist` may depend on everything this and earlier
//! Readies ask to persist.

use super::{RaftCore, Role};
use crate::message::Message;
use crate::types::{Entry, HardState, LogIndex, ReceivedSnapshot, SnapshotChunk, SnapshotMeta};

/// A read that may be served once the application has applied `index` (ReadIndex,
/// thesis 6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's context from [`crate::core::RaftCore::read_index`].
    pub ctx: u64,
    /// Serve the read once applied >= index.
    pub index: LogIndex,
}

/// The output of the core since the previous `ready()` call. See the crate docs for
/// the order in which its parts must be handled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Monotonic number of this Ready (1, 2, ...). Persistence happens in this order.
    pub number: u64,
    /// Hard state to persist, if it changed.
    pub hard_state: Option<HardState>,
    /// Chunks of a snapshot being received from the leader, to write (in order, before
    /// `snapshot`) into the storage's incoming snapshot; they need no sync of their own.
    pub snapshot_chunks: Vec<SnapshotChunk>,
    /// A snapshot received whole from the leader (its chunks handed out in this or
    /// earlier Readies), to install durably before `entries`. It replaces the whole log
    /// up to its index.
    pub snapshot: Option<ReceivedSnapshot>,
    /// Entries to append. Any persisted entry at or after `entries[0].index` is
    /// replaced (truncate, then append).
    pub entries: Vec<Entry>,
    /// The persisted state must be fsynced before `messages_after_persist` are sent
    /// (false when only the commit index changed).
    pub must_sync: bool,
    /// Messages that may be sent right away.
    pub messages: Vec<Message>,
    /// Messages that may be sent only after this Ready's state is durable (votes,
    /// append acknowledgements).
    pub messages_after_persist: Vec<Message>,
    /// A snapshot the application must install before applying `committed` (its data
    /// is read from the storage). It is already durable.
    pub apply_snapshot: Option<SnapshotMeta>,
    /// Committed entries to apply, in order. Durable locally on a follower; on a leader,
    /// durable on a majority of followers (its own fsync may still be pending).
    pub committed: Vec<Entry>,
    /// Reads that are now safe to serve once their index is applied.
    pub read_states: Vec<ReadState>,
    /// Contexts of pending reads dropped because this node stopped being the leader
    /// (or the leader it relied on): answer them "not leader" so the client retries.
    pub dropped_reads: Vec<u64>,
}

impl Ready {
    /// Whether this Ready asks to persist anything (entries, a snapshot or its chunks, or
    /// a hard state).
    pub fn has_persist_work(&self) -> bool {
        self.hard_state.is_some()
            || self.snapshot.is_some()
            || !self.snapshot_chunks.is_empty()
            || !self.entries.is_empty()
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.snapshot_chunks.is_empty()
            && self.snapshot.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.messages_after_persist.is_empty()
            && self.apply_snapshot.is_none()
            && self.committed.is_empty()
            && self.read_states.is_empty()
            && self.dropped_reads.is_empty()
    }
}

impl RaftCore {
    /// Whether a Ready would carry anything (see `RaftCore::has_ready`).
    pub(super) fn has_pending_output(&self) -> bool {
        let flush = self.role == Role::Leader && (self.flush.appends || self.flush.read_round);
        flush
            || self.hard_state() != self.last_hard_state
            || self.log.has_unsent()
            || !self.snapshot_chunks_to_write.is_empty()
            || self.snapshot_to_persist.is_some()
            || self.snapshot_to_apply.is_some()
            || self.log.has_committed_to_apply()
            || !self.outbox.is_empty()
    }

    /// Builds the next Ready: flushes deferred leader work, then takes the changed hard
    /// state, the unsent entries, the received snapshot, what may be applied, and the
    /// outbox.
    pub(super) fn take_ready(&mut self) -> Ready {
        self.flush_leader_work();
        self.ready_number += 1;
        let hard_state = self.hard_state();
        let term_or_vote_changed = hard_state.term != self.last_hard_state.term
            || hard_state.vote != self.last_hard_state.vote;
        let changed_hard_state = (hard_state != self.last_hard_state).then_some(hard_state);
        self.last_hard_state = hard_state;
        let snapshot_chunks = std::mem::take(&mut self.snapshot_chunks_to_write);
        let snapshot = self.snapshot_to_persist.take();
        let entries = self.log.take_unsent();
        let apply_snapshot = self.snapshot_to_apply.take();
        if apply_snapshot.is_some() {
            self.log.snapshot_applied();
        }
        let committed = self.log.take_committed();
        self.apply_membership_entries(&committed);
        let must_sync = !entries.is_empty() || snapshot.is_some() || term_or_vote_changed;
        let out = self.outbox.take();
        let rd = Ready {
            number: self.ready_number,
            hard_state: changed_hard_state,
            snapshot_chunks,
            snapshot,
            entries,
            must_sync,
            messages: out.messages,
            messages_after_persist: out.messages_after_persist,
            apply_snapshot,
            committed,
            read_states: out.read_states,
            dropped_reads: out.dropped_reads,
        };
        if must_sync {
            // Commit-only changes need no mark: they make nothing new durable that the
            // core relies on.
            let log_to = (self.log.last_index(), self.log.last_term());
            self.persist
                .handed_out(rd.number, self.term, self.vote, log_to);
        }
        rd
    }
}
