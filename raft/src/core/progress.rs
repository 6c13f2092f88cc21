//! The leader's view of one follower: how much of the log it holds (`match_index`), what
//! to send next (`next_index`), and the flow-control state that decides whether sending
//! is allowed right now.
//!
//! States (as in etcd's tracker): **Probe** — the follower's position is unknown; at most
//! one AppendEntries is outstanding until a response arrives. **Replicate** — the
//! follower is known to match up to `match_index`; appends are pipelined optimistically,
//! at most `max_inflight_appends` outstanding. **Snapshot** — the entries the follower
//! needs are compacted; an InstallSnapshot transfer is running and no appends are sent.
//!
//! Invariants: `match_index < next_index`; in Replicate the in-flight window holds the
//! last index of each outstanding append, in increasing order, never more than its
//! capacity; a snapshot transfer exists exactly in the Snapshot state.

use crate::types::{LogIndex, SnapshotMeta};
use std::collections::VecDeque;

/// Flow-control state of one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProgressState {
    /// One append at a time until the follower's position is found.
    Probe,
    /// Pipelined appends within the in-flight window.
    Replicate,
    /// A snapshot is being sent; no appends.
    Snapshot,
}

/// The bounded window of outstanding appends: the last index of each.
#[derive(Clone, Debug)]
pub(crate) struct Inflights {
    last_indexes: VecDeque<LogIndex>,
    capacity: usize,
}

impl Inflights {
    pub(crate) fn new(capacity: usize) -> Inflights {
        Inflights {
            last_indexes: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.last_indexes.len() >= self.capacity
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.last_indexes.len()
    }

    /// Records an append ending at `last_index`.
    ///
    /// # Panics
    /// If the window is full or `last_index` does not grow: callers check `is_full` and
    /// only send forward.
    pub(crate) fn add(&mut self, last_index: LogIndex) {
        assert!(!self.is_full(), "inflight window overflow");
        assert!(
            self.last_indexes.back().is_none_or(|b| *b < last_index),
            "inflight appends must grow"
        );
        self.last_indexes.push_back(last_index);
    }

    /// Frees every append acknowledged by a match at `index`.
    pub(crate) fn free_up_to(&mut self, index: LogIndex) {
        while self.last_indexes.front().is_some_and(|f| *f <= index) {
            self.last_indexes.pop_front();
        }
    }

    /// Frees the oldest slot (its response is presumed lost).
    pub(crate) fn free_first(&mut self) {
        self.last_indexes.pop_front();
    }

    pub(crate) fn clear(&mut self) {
        self.last_indexes.clear();
    }
}

/// An InstallSnapshot transfer to one follower, in chunks with a bounded window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotTransfer {
    /// The snapshot being sent.
    pub(crate) meta: SnapshotMeta,
    /// Its size.
    pub(crate) total_bytes: u64,
    /// Offset of the next chunk to send.
    pub(crate) sent_offset: u64,
    /// The follower has acknowledged everything before this offset.
    pub(crate) acked_offset: u64,
    /// The last chunk has been sent (and not rewound since).
    pub(crate) sent_all: bool,
    /// The offset a rejection last rewound to, so duplicate rejections do not rewind again.
    pub(crate) last_rewind: Option<u64>,
    /// Leader ticks since the follower last reported progress.
    pub(crate) stall_ticks: u32,
}

impl SnapshotTransfer {
    pub(crate) fn new(meta: SnapshotMeta, total_bytes: u64) -> SnapshotTransfer {
        SnapshotTransfer {
            meta,
            total_bytes,
            sent_offset: 0,
            acked_offset: 0,
            sent_all: false,
            last_rewind: None,
            stall_ticks: 0,
        }
    }

    /// Starts sending again from `offset` (clamped to the snapshot).
    pub(crate) fn rewind_to(&mut self, offset: u64) {
        let offset = offset.min(self.total_bytes);
        self.sent_offset = offset;
        self.acked_offset = offset;
        self.sent_all = false;
        self.stall_ticks = 0;
    }
}

/// The leader's record of one follower.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// Highest index known to be replicated (and durable) on the follower.
    pub(crate) match_index: LogIndex,
    /// Next index to send.
    pub(crate) next_index: LogIndex,
    /// Flow-control state.
    pub(crate) state: ProgressState,
    /// Probe only: an append is outstanding.
    pub(crate) probe_sent: bool,
    /// Replicate only: outstanding appends.
    pub(crate) inflights: Inflights,
    /// Snapshot only: the running transfer.
    pub(crate) snapshot: Option<SnapshotTransfer>,
    /// Heard from since the last CheckQuorum (thesis 6.2).
    pub(crate) recent_active: bool,
    /// Highest ReadIndex round this follower has acknowledged.
    pub(crate) read_seq_acked: u64,
    /// Replicate: the match index when the previous heartbeat response arrived. A match
    /// that did not move between two heartbeat responses while entries are outstanding
    /// means an append or its response was lost.
    pub(crate) match_at_last_heartbeat: LogIndex,
}

impl Progress {
    /// A follower whose position is unknown; probing starts at `next_index`.
    pub(crate) fn new(next_index: LogIndex, max_inflight: usize) -> Progress {
        Progress {
            match_index: LogIndex::ZERO,
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(max_inflight),
            snapshot: None,
            recent_active: false,
            read_seq_acked: 0,
            match_at_last_heartbeat: LogIndex::ZERO,
        }
    }

    /// Whether sending an append must wait.
    pub(crate) fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.is_full(),
            ProgressState::Snapshot => true,
        }
    }

    /// Back to probing from `next_index` (clamped after the match index).
    pub(crate) fn become_probe(&mut self, next_index: LogIndex) {
        self.state = ProgressState::Probe;
        self.next_index = next_index.max(self.match_index.next());
        self.probe_sent = false;
        self.inflights.clear();
        self.snapshot = None;
    }

    /// The follower's position is known: pipeline from just after the match.
    pub(crate) fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next_index = self.match_index.next();
        self.probe_sent = false;
        self.inflights.clear();
        self.snapshot = None;
    }

    /// Starts a snapshot transfer.
    pub(crate) fn become_snapshot(&mut self, transfer: SnapshotTransfer) {
        self.state = ProgressState::Snapshot;
        self.probe_sent = false;
        self.inflights.clear();
        self.snapshot = Some(transfer);
    }

    /// Raises the match index to `index` if it is newer; returns whether it moved.
    pub(crate) fn maybe_update(&mut self, index: LogIndex) -> bool {
        let updated = index > self.match_index;
        if updated {
            self.match_index = index;
        }
        self.next_index = self.next_index.max(index.next());
        self.inflights.free_up_to(index);
        updated
    }

    /// Records that an append ending at `last_index` was sent (`None`: it was empty).
    pub(crate) fn on_append_sent(&mut self, last_index: Option<LogIndex>) {
        match self.state {
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Replicate => {
                if let Some(last) = last_index {
                    self.next_index = last.next();
                    self.inflights.add(last);
                }
            }
            ProgressState::Snapshot => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflight_window_fills_and_frees_by_match() {
        let mut w = Inflights::new(3);
        w.add(LogIndex(2));
        w.add(LogIndex(4));
        w.add(LogIndex(6));
        assert!(w.is_full());
        w.free_up_to(LogIndex(4));
        assert_eq!(w.len(), 1);
        assert!(!w.is_full());
        w.free_first();
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn probe_pauses_after_one_append() {
        let mut p = Progress::new(LogIndex(5), 4);
        assert!(!p.is_paused());
        p.on_append_sent(Some(LogIndex(7)));
        assert!(p.is_paused());
        assert_eq!(
            p.next_index,
            LogIndex(5),
            "probing does not move next optimistically"
        );
    }

    #[test]
    fn replicate_moves_next_optimistically_until_window_full() {
        let mut p = Progress::new(LogIndex(5), 2);
        p.maybe_update(LogIndex(4));
        p.become_replicate();
        p.on_append_sent(Some(LogIndex(6)));
        assert_eq!(p.next_index, LogIndex(7));
        p.on_append_sent(Some(LogIndex(8)));
        assert!(p.is_paused());
        assert!(p.maybe_update(LogIndex(6)));
        assert!(!p.is_paused());
    }

    #[test]
    fn become_probe_never_goes_below_match() {
        let mut p = Progress::new(LogIndex(10), 2);
        p.maybe_update(LogIndex(8));
        p.become_probe(LogIndex(3));
        assert_eq!(p.next_index, LogIndex(9));
    }
}
