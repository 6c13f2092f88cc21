//! Rebuilds the log from WAL records, in write order. PURE.
//!
//! Replay rules:
//! - `HardState`: the last one wins.
//! - `Entry` at index `i`: truncates the log at `i - 1` and appends. If `i` is not
//!   adjacent to the log (the log's start was purged with an older segment), the log
//!   restarts at `i`, and a later snapshot must cover the hole: [`WalReplay::finish`]
//!   fails if it does not, so missing data is never papered over.
//! - `SnapshotMarker`: the log becomes "after the snapshot": entries up to it are
//!   dropped and, if the marker says the log was not kept, all entries are dropped.
//!   Markers at or before the current snapshot (segment heads restating it) change
//!   nothing.
//! - `SyncedUpTo`: nothing (it says what was durable, for `scan.rs`).
//! - At the end, a snapshot FILE newer than every marker means a crash hit after the
//!   snapshot became durable but before its marker did; nothing was appended after it,
//!   so the same keep-or-discard rule as `save_snapshot` is applied to the replayed log.

use super::record::{SnapshotMarker, WalRecord};
use crate::types::{Entry, HardState, LogIndex, SnapshotMeta, Term};

/// The state recovered from the WAL and the snapshot file's position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Replayed {
    /// The last hard state.
    pub hard_state: HardState,
    /// Where the log starts (the snapshot in force), if any.
    pub snapshot: Option<SnapshotMeta>,
    /// The entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
    /// Set when the snapshot file was newer than every marker: the compaction replay
    /// applied for it, which the WAL does not record yet (the next segment head must).
    pub implicit_marker: Option<SnapshotMarker>,
}

/// Replay in progress.
#[derive(Debug)]
pub(crate) struct WalReplay {
    hard_state: HardState,
    snapshot: Option<SnapshotMeta>,
    /// Index of `entries[0]`, or where the next entry is expected when empty.
    log_start: LogIndex,
    entries: Vec<Entry>,
}

impl Default for WalReplay {
    fn default() -> Self {
        WalReplay {
            hard_state: HardState::default(),
            snapshot: None,
            log_start: LogIndex(1),
            entries: Vec::new(),
        }
    }
}

impl WalReplay {
    /// Applies one record.
    ///
    /// # Errors
    /// A description when the record contradicts what came before it (an entry at or
    /// before the snapshot in force).
    pub fn apply(&mut self, record: WalRecord) -> Result<(), String> {
        match record {
            WalRecord::HardState(hard_state) => self.hard_state = hard_state,
            WalRecord::Entry(entry) => self.apply_entry(entry)?,
            WalRecord::SnapshotMarker(marker) => self.apply_marker(marker),
            WalRecord::SyncedUpTo { .. } => {}
        }
        Ok(())
    }

    fn snapshot_index(&self) -> LogIndex {
        self.snapshot.map_or(LogIndex::ZERO, |s| s.index)
    }

    fn next_index(&self) -> LogIndex {
        LogIndex(self.log_start.get() + self.entries.len() as u64)
    }

    fn apply_entry(&mut self, entry: Entry) -> Result<(), String> {
        if entry.index <= self.snapshot_index() {
            return Err(format!(
                "entry {} is at or before the snapshot index {}",
                entry.index,
                self.snapshot_index()
            ));
        }
        if entry.index >= self.log_start && entry.index <= self.next_index() {
            let keep = usize::try_from(entry.index.get() - self.log_start.get()).unwrap_or(0);
            self.entries.truncate(keep);
        } else {
            self.entries.clear();
            self.log_start = entry.index;
        }
        self.entries.push(entry);
        Ok(())
    }

    fn apply_marker(&mut self, marker: SnapshotMarker) {
        let meta = marker.meta;
        if meta.index <= self.snapshot_index() {
            return;
        }
        let new_start = meta.index.next();
        if marker.log_kept && new_start > self.log_start {
            let drop =
                usize::try_from(new_start.get() - self.log_start.get()).unwrap_or(usize::MAX);
            self.entries.drain(..drop.min(self.entries.len()));
            self.log_start = new_start;
        } else if !marker.log_kept {
            self.entries.clear();
            self.log_start = new_start;
        }
        self.snapshot = Some(meta);
    }

    fn term_at(&self, index: LogIndex) -> Option<Term> {
        let offset = index.get().checked_sub(self.log_start.get())?;
        self.entries
            .get(usize::try_from(offset).ok()?)
            .map(|e| e.term)
    }

    /// Ends replay, reconciling with the newest valid snapshot file.
    ///
    /// # Errors
    /// A description when the WAL and the snapshot file disagree, or entries between the
    /// snapshot and the rest of the log are missing.
    pub fn finish(mut self, snapshot_file: Option<SnapshotMeta>) -> Result<Replayed, String> {
        let mut implicit_marker = None;
        match (self.snapshot, snapshot_file) {
            (Some(marker), None) => {
                return Err(format!(
                    "the WAL records a snapshot at {marker:?} but none is on disk"
                ))
            }
            (Some(marker), Some(file)) if file.index < marker.index => {
                return Err(format!(
                    "the WAL records a snapshot at {marker:?} but the newest valid snapshot \
                     file is at {file:?}"
                ));
            }
            (Some(marker), Some(file))
                if file.index == marker.index && file.term != marker.term =>
            {
                return Err(format!(
                    "the WAL records a snapshot at {marker:?} but the snapshot file is at {file:?}"
                ));
            }
            (_, Some(file)) if file.index > self.snapshot_index() => {
                let log_kept = self.term_at(file.index) == Some(file.term);
                let marker = SnapshotMarker {
                    meta: file,
                    log_kept,
                };
                self.apply_marker(marker);
                implicit_marker = Some(marker);
            }
            _ => {}
        }
        if !self.entries.is_empty() && self.log_start != self.snapshot_index().next() {
            return Err(format!(
                "log entries {} to {} are missing (the snapshot ends at {})",
                self.snapshot_index().next(),
                self.log_start.prev(),
                self.snapshot_index()
            ));
        }
        Ok(Replayed {
            hard_state: self.hard_state,
            snapshot: self.snapshot,
            entries: self.entries,
            implicit_marker,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> WalRecord {
        WalRecord::Entry(Entry {
            index: LogIndex(index),
            term: Term(term),
            ..Entry::default()
        })
    }

    fn marker(index: u64, term: u64, log_kept: bool) -> WalRecord {
        let meta = SnapshotMeta {
            index: LogIndex(index),
            term: Term(term),
        };
        WalRecord::SnapshotMarker(SnapshotMarker { meta, log_kept })
    }

    fn replay(records: Vec<WalRecord>, file: Option<(u64, u64)>) -> Result<Replayed, String> {
        let mut replay = WalReplay::default();
        for record in records {
            replay.apply(record)?;
        }
        replay.finish(file.map(|(i, t)| SnapshotMeta {
            index: LogIndex(i),
            term: Term(t),
        }))
    }

    fn indexes_terms(replayed: &Replayed) -> Vec<(u64, u64)> {
        replayed
            .entries
            .iter()
            .map(|e| (e.index.get(), e.term.get()))
            .collect()
    }

    #[test]
    fn overwrite_truncates_later_entries() {
        let r = replay(
            vec![entry(1, 1), entry(2, 1), entry(3, 1), entry(2, 2)],
            None,
        )
        .unwrap();
        assert_eq!(indexes_terms(&r), vec![(1, 1), (2, 2)]);
    }

    #[test]
    fn kept_marker_drops_only_covered_entries() {
        let records = vec![entry(1, 1), entry(2, 1), entry(3, 1), marker(2, 1, true)];
        let r = replay(records, Some((2, 1))).unwrap();
        assert_eq!(indexes_terms(&r), vec![(3, 1)]);
    }

    #[test]
    fn discarding_marker_then_new_entries_keeps_only_new_entries() {
        let records = vec![
            entry(1, 1),
            entry(2, 1),
            entry(3, 1),
            marker(2, 5, false),
            entry(3, 5),
        ];
        let r = replay(records, Some((2, 5))).unwrap();
        assert_eq!(indexes_terms(&r), vec![(3, 5)]);
    }

    #[test]
    fn snapshot_file_without_marker_applies_keep_or_discard() {
        let kept = replay(vec![entry(1, 1), entry(2, 1), entry(3, 1)], Some((2, 1))).unwrap();
        assert_eq!(indexes_terms(&kept), vec![(3, 1)]);
        let discarded = replay(vec![entry(1, 1), entry(2, 1), entry(3, 1)], Some((2, 2))).unwrap();
        assert!(discarded.entries.is_empty());
    }

    #[test]
    fn hole_covered_by_a_later_snapshot_is_fine() {
        let records = vec![
            marker(10, 1, true),
            entry(15, 1),
            entry(16, 1),
            marker(14, 1, true),
        ];
        let r = replay(records, Some((14, 1))).unwrap();
        assert_eq!(indexes_terms(&r), vec![(15, 1), (16, 1)]);
    }

    #[test]
    fn hole_not_covered_is_an_error() {
        let records = vec![marker(10, 1, true), entry(15, 1)];
        let err = replay(records, Some((10, 1))).unwrap_err();
        assert!(err.contains("11 to 14 are missing"), "{err}");
    }

    #[test]
    fn marker_beyond_the_snapshot_file_is_an_error() {
        let err = replay(vec![marker(10, 1, true)], Some((5, 1))).unwrap_err();
        assert!(err.contains("newest valid snapshot"), "{err}");
        assert!(replay(vec![marker(10, 1, true)], None).is_err());
    }

    #[test]
    fn entry_at_or_before_the_snapshot_is_an_error() {
        assert!(replay(vec![marker(10, 1, true), entry(10, 1)], Some((10, 1))).is_err());
    }

    #[test]
    fn last_hard_state_wins() {
        let hs = |t| {
            WalRecord::HardState(HardState {
                term: Term(t),
                ..HardState::default()
            })
        };
        let r = replay(vec![hs(1), hs(3), hs(2)], None).unwrap();
        assert_eq!(r.hard_state.term, Term(2));
    }
}
