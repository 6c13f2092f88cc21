//! `Ready`: everything the core wants done after a batch of inputs, and the order in
//! which the driver must do it (see the crate docs, "The Ready contract").
//!
//! Invariant: a `Ready` is self-contained. Messages in `messages` depend on nothing
//! unpersisted; `messages_after_persist` may depend on everything this and earlier
//! Readies ask to persist.

use crate::message::Message;
use crate::types::{Entry, HardState, LogIndex, Snapshot, Term};

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
    /// A snapshot received from the leader, to persist before `entries`. It replaces the
    /// whole log up to its index.
    pub snapshot: Option<Snapshot>,
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
    /// A snapshot the application must install before applying `committed`. It is
    /// already durable.
    pub apply_snapshot: Option<Snapshot>,
    /// Committed entries to apply, in order. They are already durable locally.
    pub committed: Vec<Entry>,
    /// Reads that are now safe to serve once their index is applied.
    pub read_states: Vec<ReadState>,
    /// Contexts of pending reads dropped because this node stopped being the leader
    /// (or the leader it relied on): answer them "not leader" so the client retries.
    pub dropped_reads: Vec<u64>,
}

impl Ready {
    /// The last (index, term) this Ready persists, to report back through
    /// [`crate::core::RaftCore::on_persisted`] once durable.
    pub fn persist_target(&self) -> Option<(LogIndex, Term)> {
        if let Some(last) = self.entries.last() {
            return Some((last.index, last.term));
        }
        self.snapshot.as_ref().map(|s| (s.meta.index, s.meta.term))
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
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
