//! `RaftLog`: the in-memory log after the latest snapshot, with the watermarks the core
//! needs: `committed`, `persisted` (durable locally), `unsent` (first index not yet handed
//! out in a Ready) and `applied` (handed out for applying).
//!
//! Invariants:
//! - `entries` are contiguous from `snapshot.index + 1`, and their terms never decrease.
//! - `snapshot.index <= applied <= committed <= last_index` once any received snapshot is
//!   applied; while a received snapshot is not yet persisted, `persisted < snapshot.index`
//!   and `applied < snapshot.index` (nothing is handed out until it is).
//! - `persisted < unsent`: only entries handed out in a Ready can be durable.
//! - Entries at or below `committed` are never truncated (they match every later leader).

use crate::types::{Entry, EntryKind, LogIndex, SnapshotMeta, Term};
use std::collections::VecDeque;

/// Why an AppendEntries was rejected, for the leader's fast backtracking (paper 5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConflictHint {
    /// First index of `conflict_term` in this log (or last index + 1 when too short).
    pub(crate) index: LogIndex,
    /// Term at the rejected `prev_log_index` (0 when the log is too short).
    pub(crate) term: Term,
}

/// The log. See the module docs for its invariants.
#[derive(Clone, Debug)]
pub(crate) struct RaftLog {
    /// Where the log starts: the latest snapshot's last (index, term). The snapshot's
    /// bytes live in the storage (the leader's executor reads chunks from there).
    snapshot: SnapshotMeta,
    /// The latest snapshot's size in bytes.
    snapshot_bytes: u64,
    /// Unbounded in count, but the application bounds it by compacting (`compact`).
    entries: VecDeque<Entry>,
    committed: LogIndex,
    persisted: LogIndex,
    unsent: LogIndex,
    applied: LogIndex,
    /// Hand out committed entries before they are durable here (set while leading).
    apply_unpersisted: bool,
    /// The lowest index whose entry was removed since the core last asked
    /// ([`RaftLog::take_cut`]): acknowledgements of entries from there on are stale.
    cut_from: Option<LogIndex>,
}

impl RaftLog {
    /// A log recovered from durable state: everything given is already persisted.
    /// The caller has validated that `entries` follow `snapshot` contiguously and that
    /// `committed` is within the log.
    pub(crate) fn recovered(
        snapshot: SnapshotMeta,
        snapshot_bytes: u64,
        entries: Vec<Entry>,
        committed: LogIndex,
    ) -> Self {
        let snapshot_index = snapshot.index;
        let last = LogIndex(snapshot_index.0 + entries.len() as u64);
        RaftLog {
            snapshot,
            snapshot_bytes,
            entries: entries.into(),
            committed: committed.max(snapshot_index),
            persisted: last,
            unsent: last.next(),
            applied: snapshot_index,
            apply_unpersisted: false,
            cut_from: None,
        }
    }

    pub(crate) fn snapshot_meta(&self) -> SnapshotMeta {
        self.snapshot
    }

    /// The latest snapshot's size in bytes.
    pub(crate) fn snapshot_bytes(&self) -> u64 {
        self.snapshot_bytes
    }

    pub(crate) fn first_index(&self) -> LogIndex {
        self.snapshot.index.next()
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot.index.0 + self.entries.len() as u64)
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.back().map_or(self.snapshot.term, |e| e.term)
    }

    pub(crate) fn committed(&self) -> LogIndex {
        self.committed
    }

    pub(crate) fn persisted(&self) -> LogIndex {
        self.persisted
    }

    pub(crate) fn applied(&self) -> LogIndex {
        self.applied
    }

    /// Position of `index` in `entries`, if it is there.
    fn offset_of(&self, index: LogIndex) -> Option<usize> {
        if index < self.first_index() || index > self.last_index() {
            return None;
        }
        usize::try_from(index.0 - self.first_index().0).ok()
    }

    /// The term of the entry at `index`: known for the snapshot's last entry and every
    /// entry in memory; `None` when compacted or beyond the end.
    pub(crate) fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.offset_of(index).map(|o| self.entries[o].term)
    }

    pub(crate) fn match_term(&self, index: LogIndex, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Election restriction (paper 5.4.1): a log ending at `(last_index, last_term)` is
    /// at least as up-to-date as this one.
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Entries from `lo` to the end, at most `max_count` of them and `max_bytes` of data,
    /// but at least one if there is any. `lo` must be at least `first_index`.
    pub(crate) fn entries_from(
        &self,
        lo: LogIndex,
        max_count: usize,
        max_bytes: usize,
    ) -> Vec<Entry> {
        let Some(start) = self.offset_of(lo) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(max_count.min(self.entries.len() - start));
        let mut bytes = 0usize;
        for entry in self.entries.range(start..) {
            bytes = bytes.saturating_add(entry.size_bytes());
            if out.len() == max_count || (!out.is_empty() && bytes > max_bytes) {
                break;
            }
            out.push(entry.clone());
        }
        out
    }

    /// Whether an entry of `kind` lies in `(after, upto]` (the part still in the log).
    pub(crate) fn has_kind_in(&self, after: LogIndex, upto: LogIndex, kind: EntryKind) -> bool {
        let lo = after.next().max(self.first_index());
        let (Some(start), Some(end)) = (self.offset_of(lo), self.offset_of(upto)) else {
            return false;
        };
        self.entries.range(start..=end).any(|e| e.kind == kind)
    }

    /// The leader appends its own new entry at `last_index + 1`.
    pub(crate) fn append_new(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index().next(),
            "leader appends must be contiguous"
        );
        self.entries.push_back(entry);
    }

    /// A follower's AppendEntries consistency check and append (paper 5.3). `entries`
    /// must be contiguous from `prev_index + 1` (the caller checks). Returns the last
    /// index now known to match the leader, or a conflict hint.
    pub(crate) fn maybe_append(
        &mut self,
        prev_index: LogIndex,
        prev_term: Term,
        mut entries: Vec<Entry>,
    ) -> Result<LogIndex, ConflictHint> {
        if prev_index < self.committed {
            // Entries up to `committed` are committed, so they match every leader's
            // (Leader Completeness); skip them instead of re-checking.
            let skip = usize::try_from(self.committed.0 - prev_index.0).unwrap_or(usize::MAX);
            if skip >= entries.len() {
                return Ok(self.committed);
            }
            entries.drain(..skip);
        } else if !self.match_term(prev_index, prev_term) {
            return Err(self.conflict_hint(prev_index));
        }
        let Some(last_new) = entries.last().map(|e| e.index) else {
            return Ok(prev_index.max(self.committed));
        };
        let first_new = entries
            .iter()
            .position(|e| self.term(e.index) != Some(e.term))
            .unwrap_or(entries.len());
        if first_new < entries.len() {
            let from = entries[first_new].index;
            debug_assert!(from > self.committed, "never truncate committed entries");
            self.truncate_from(from);
            entries.drain(..first_new);
            self.entries.extend(entries);
        }
        Ok(last_new)
    }

    /// The hint for a rejected `prev_index` (fast backtracking, paper 5.3 end).
    fn conflict_hint(&self, prev_index: LogIndex) -> ConflictHint {
        match self.term(prev_index) {
            Some(term) if prev_index <= self.last_index() => ConflictHint {
                index: self.first_index_of_term(term).max(self.committed.next()),
                term,
            },
            _ => ConflictHint {
                index: self.last_index().next(),
                term: Term::ZERO,
            },
        }
    }

    /// The first in-memory index whose term is `term` (terms never decrease, so this is a
    /// binary search). Falls back to `first_index` when the term starts in the snapshot.
    fn first_index_of_term(&self, term: Term) -> LogIndex {
        let pos = self.entries.partition_point(|e| e.term < term);
        LogIndex(self.first_index().0 + pos as u64)
    }

    /// The leader's last index with term `term`, if it holds that term.
    pub(crate) fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        let pos = self.entries.partition_point(|e| e.term <= term);
        if pos > 0 {
            let index = LogIndex(self.first_index().0 + pos as u64 - 1);
            return (self.entries[pos - 1].term == term).then_some(index);
        }
        (self.snapshot.term == term && term != Term::ZERO).then_some(self.snapshot.index)
    }

    /// Drops entries at and after `from` (and lowers the watermarks with them).
    fn truncate_from(&mut self, from: LogIndex) {
        if let Some(offset) = self.offset_of(from) {
            self.entries.truncate(offset);
        }
        self.note_cut(from);
        self.unsent = self.unsent.min(from);
        self.persisted = self.persisted.min(from.prev());
    }

    fn note_cut(&mut self, from: LogIndex) {
        self.cut_from = Some(self.cut_from.map_or(from, |c| c.min(from)));
    }

    /// The lowest index whose entry was removed (replaced by a new leader's, or discarded
    /// for a snapshot) since the last call.
    pub(crate) fn take_cut(&mut self) -> Option<LogIndex> {
        self.cut_from.take()
    }

    /// Raises the commit index (never lowers it, never past the last index).
    pub(crate) fn commit_to(&mut self, index: LogIndex) -> bool {
        let index = index.min(self.last_index());
        if index > self.committed {
            self.committed = index;
            return true;
        }
        false
    }

    pub(crate) fn has_unsent(&self) -> bool {
        self.unsent <= self.last_index()
    }

    /// Entries not yet handed out in a Ready (to persist), and marks them handed out.
    pub(crate) fn take_unsent(&mut self) -> Vec<Entry> {
        let out = match self.offset_of(self.unsent) {
            Some(start) => self.entries.range(start..).cloned().collect(),
            None => Vec::new(),
        };
        self.unsent = self.last_index().next();
        out
    }

    /// The runtime reports `(index, term)` durable. Ignored unless the log still holds
    /// that entry (a truncation or snapshot since then makes the report stale).
    pub(crate) fn persisted_to(&mut self, index: LogIndex, term: Term) -> bool {
        if index <= self.persisted || index >= self.unsent || !self.match_term(index, term) {
            return false;
        }
        self.persisted = index;
        true
    }

    /// Whether a received snapshot is installed in memory but not yet durable.
    pub(crate) fn snapshot_unpersisted(&self) -> bool {
        self.persisted < self.snapshot.index
    }

    /// What may be handed out to apply: committed entries that are durable here, or, on a
    /// leader, every committed entry. A leader commits an entry once a majority holds it
    /// durably, its own disk included only once that is durable (thesis 10.2.1), so a
    /// committed entry survives without the leader's copy; the state machine is volatile,
    /// and a snapshot of it is saved only after the log it covers (the driver's storage
    /// syncs before saving a snapshot). A leader that applies without waiting for its own
    /// fsync can defer that fsync while its followers commit without it.
    fn apply_limit(&self) -> LogIndex {
        if self.apply_unpersisted {
            self.committed
        } else {
            self.committed.min(self.persisted)
        }
    }

    /// Whether committed entries may be handed out before they are durable here.
    pub(crate) fn set_apply_unpersisted(&mut self, on: bool) {
        self.apply_unpersisted = on;
    }

    pub(crate) fn has_committed_to_apply(&self) -> bool {
        self.applied >= self.snapshot.index && self.applied < self.apply_limit()
    }

    /// Committed, locally durable entries not yet handed out; marks them handed out.
    pub(crate) fn take_committed(&mut self) -> Vec<Entry> {
        if !self.has_committed_to_apply() {
            return Vec::new();
        }
        let limit = self.apply_limit();
        let (Some(start), Some(end)) = (self.offset_of(self.applied.next()), self.offset_of(limit))
        else {
            return Vec::new();
        };
        self.applied = limit;
        self.entries.range(start..=end).cloned().collect()
    }

    /// The snapshot was handed to the application to install.
    pub(crate) fn snapshot_applied(&mut self) {
        self.applied = self.applied.max(self.snapshot.index);
    }

    /// Replaces the whole log with a received snapshot (paper 7: the snapshot's last
    /// entry is not in this log, so the log is discarded). Nothing is durable until the
    /// Ready carrying it is persisted.
    pub(crate) fn restore(&mut self, snapshot: SnapshotMeta, snapshot_bytes: u64) {
        let index = snapshot.index;
        if !self.entries.is_empty() {
            self.note_cut(self.first_index());
        }
        self.entries.clear();
        self.snapshot = snapshot;
        self.snapshot_bytes = snapshot_bytes;
        self.committed = index;
        self.unsent = index.next();
        self.persisted = self.persisted.min(index.prev());
        self.applied = self.applied.min(index.prev());
    }

    /// The snapshot `compact(index, ..)` would make: `index` applied, past the current
    /// snapshot, and in the log.
    pub(crate) fn compaction_meta(&self, index: LogIndex) -> Option<SnapshotMeta> {
        if index <= self.snapshot.index || index > self.applied {
            return None;
        }
        self.offset_of(index)?;
        let term = self.term(index)?;
        Some(SnapshotMeta { index, term })
    }

    /// The application snapshotted its state at `index` (<= applied), `snapshot_bytes`
    /// long: drop entries up to it. Returns the entries dropped (for the
    /// caller to free where it likes: millions after a large log), `None` when ignored.
    pub(crate) fn compact(
        &mut self,
        index: LogIndex,
        snapshot_bytes: u64,
    ) -> Option<VecDeque<Entry>> {
        let SnapshotMeta { term, .. } = self.compaction_meta(index)?;
        let offset = self.offset_of(index)?;
        // The (few) entries after `index` move; the covered ones stay where they are.
        let kept = self.entries.split_off(offset + 1);
        let freed = std::mem::replace(&mut self.entries, kept);
        self.snapshot = SnapshotMeta { index, term };
        self.snapshot_bytes = snapshot_bytes;
        Some(freed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            ..Entry::default()
        }
    }

    fn log_with_terms(terms: &[u64]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, t)| ent(i as u64 + 1, *t))
            .collect();
        RaftLog::recovered(SnapshotMeta::default(), 0, entries, LogIndex::ZERO)
    }

    #[test]
    fn term_lookup_covers_snapshot_and_entries() {
        let snap = SnapshotMeta {
            index: LogIndex(5),
            term: Term(2),
        };
        let log = RaftLog::recovered(snap, 0, vec![ent(6, 2), ent(7, 3)], LogIndex(5));
        assert_eq!(log.term(LogIndex(4)), None);
        assert_eq!(log.term(LogIndex(5)), Some(Term(2)));
        assert_eq!(log.term(LogIndex(7)), Some(Term(3)));
        assert_eq!(log.term(LogIndex(8)), None);
        assert_eq!(
            (log.first_index(), log.last_index()),
            (LogIndex(6), LogIndex(7))
        );
    }

    #[test]
    fn append_with_matching_prev_appends_and_reports_last_new_index() {
        let mut log = log_with_terms(&[1, 1]);
        assert_eq!(
            log.maybe_append(LogIndex(2), Term(1), vec![ent(3, 2), ent(4, 2)]),
            Ok(LogIndex(4))
        );
        assert_eq!(log.last_index(), LogIndex(4));
    }

    #[test]
    fn conflicting_suffix_is_truncated_and_watermarks_drop() {
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        assert_eq!(
            log.take_unsent().len(),
            0,
            "recovered entries are already durable"
        );
        assert_eq!(
            log.maybe_append(LogIndex(2), Term(1), vec![ent(3, 3)]),
            Ok(LogIndex(3))
        );
        assert_eq!(log.last_index(), LogIndex(3));
        assert_eq!(log.term(LogIndex(3)), Some(Term(3)));
        assert_eq!(log.persisted(), LogIndex(2));
        assert_eq!(log.take_unsent(), vec![ent(3, 3)]);
    }

    #[test]
    fn matching_entries_do_not_truncate_a_longer_log() {
        // A delayed, shorter AppendEntries must not cut entries it does not contradict.
        let mut log = log_with_terms(&[1, 1, 1, 1]);
        assert_eq!(
            log.maybe_append(LogIndex(1), Term(1), vec![ent(2, 1)]),
            Ok(LogIndex(2))
        );
        assert_eq!(log.last_index(), LogIndex(4));
    }

    #[test]
    fn reject_hints_first_index_of_conflicting_term() {
        let mut log = log_with_terms(&[1, 2, 2, 2]);
        let hint = log.maybe_append(LogIndex(4), Term(3), vec![]).unwrap_err();
        assert_eq!(
            hint,
            ConflictHint {
                index: LogIndex(2),
                term: Term(2)
            }
        );
    }

    #[test]
    fn reject_hints_last_plus_one_when_too_short() {
        let mut log = log_with_terms(&[1]);
        let hint = log.maybe_append(LogIndex(5), Term(1), vec![]).unwrap_err();
        assert_eq!(
            hint,
            ConflictHint {
                index: LogIndex(2),
                term: Term::ZERO
            }
        );
    }

    #[test]
    fn append_below_commit_skips_committed_prefix() {
        let mut log = log_with_terms(&[1, 1, 1]);
        log.commit_to(LogIndex(3));
        assert_eq!(
            log.maybe_append(LogIndex(1), Term(1), vec![ent(2, 1)]),
            Ok(LogIndex(3))
        );
        let got = log.maybe_append(LogIndex(1), Term(1), vec![ent(2, 1), ent(3, 1), ent(4, 2)]);
        assert_eq!(got, Ok(LogIndex(4)));
    }

    #[test]
    fn last_index_of_term_finds_end_of_term() {
        let log = log_with_terms(&[1, 1, 3, 3, 3, 5]);
        assert_eq!(log.last_index_of_term(Term(3)), Some(LogIndex(5)));
        assert_eq!(log.last_index_of_term(Term(1)), Some(LogIndex(2)));
        assert_eq!(log.last_index_of_term(Term(2)), None);
        assert_eq!(log.last_index_of_term(Term(6)), None);
    }

    #[test]
    fn entries_from_respects_count_and_bytes_but_sends_at_least_one() {
        let mut log = log_with_terms(&[]);
        for i in 1..=5 {
            log.append_new(Entry {
                index: LogIndex(i),
                term: Term(1),
                data: Bytes::from(vec![0; 100]),
                ..Entry::default()
            });
        }
        assert_eq!(log.entries_from(LogIndex(1), 3, usize::MAX).len(), 3);
        assert_eq!(log.entries_from(LogIndex(1), 10, 250).len(), 2);
        assert_eq!(log.entries_from(LogIndex(1), 10, 1).len(), 1);
        assert_eq!(log.entries_from(LogIndex(6), 10, 1).len(), 0);
    }

    #[test]
    fn stale_persist_reports_are_ignored() {
        let mut log = log_with_terms(&[]);
        log.append_new(ent(1, 1));
        log.append_new(ent(2, 1));
        assert_eq!(log.take_unsent().len(), 2);
        // Truncated and replaced before the first write finished.
        assert_eq!(
            log.maybe_append(LogIndex(1), Term(1), vec![ent(2, 2)]),
            Ok(LogIndex(2))
        );
        assert!(
            !log.persisted_to(LogIndex(2), Term(1)),
            "entry (2, 1) is gone"
        );
        assert!(
            !log.persisted_to(LogIndex(2), Term(2)),
            "entry (2, 2) not handed out yet"
        );
        assert_eq!(log.take_unsent(), vec![ent(2, 2)]);
        assert!(log.persisted_to(LogIndex(2), Term(2)));
    }

    #[test]
    fn committed_entries_are_handed_out_only_up_to_persisted() {
        let mut log = log_with_terms(&[]);
        for i in 1..=3 {
            log.append_new(ent(i, 1));
        }
        log.take_unsent();
        log.commit_to(LogIndex(3));
        assert!(log.take_committed().is_empty());
        log.persisted_to(LogIndex(2), Term(1));
        assert_eq!(log.take_committed(), vec![ent(1, 1), ent(2, 1)]);
        log.persisted_to(LogIndex(3), Term(1));
        assert_eq!(log.take_committed(), vec![ent(3, 1)]);
    }

    #[test]
    fn compact_drops_applied_prefix_only() {
        let mut log = log_with_terms(&[1, 1, 2]);
        log.commit_to(LogIndex(3));
        assert!(log.compact(LogIndex(2), 0).is_none(), "nothing applied yet");
        log.take_committed();
        let freed = log.compact(LogIndex(2), 1).unwrap();
        assert_eq!(
            freed.iter().map(|e| e.index).collect::<Vec<_>>(),
            [LogIndex(1), LogIndex(2)],
            "the dropped entries go back to the caller"
        );
        assert_eq!(log.first_index(), LogIndex(3));
        assert_eq!(
            log.snapshot_meta(),
            SnapshotMeta {
                index: LogIndex(2),
                term: Term(1)
            }
        );
        assert!(log.compact(LogIndex(2), 0).is_none(), "not newer");
    }
}
