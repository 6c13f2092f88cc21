//! `LogState`: what a [`super::Storage`] holds (hard state, latest snapshot, the entries
//! after it), with the storage contract's checks. Shared by `DiskStorage` (its
//! in-memory index), `MemStorage` (both its written and its durable copy) and the
//! conformance suite's expectations, so every implementation enforces the same rules.
//!
//! # Invariants
//! - `entries` are contiguous and start at `snapshot_index + 1`.
//! - Entry terms never decrease along the log and are at least the snapshot's term.
//! - `hard_state.term` never decreases; the vote never changes within a term once cast.
//!
//! Entry `data` is `Bytes`, so keeping entries here shares the caller's buffers rather
//! than copying them.

use crate::error::StorageError;
use crate::types::{Entry, HardState, InitialState, LogIndex, Snapshot, SnapshotMeta, Term};

/// The stored state and its contract checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogState {
    /// The last hard state written.
    pub hard_state: HardState,
    /// The latest snapshot.
    pub snapshot: Option<Snapshot>,
    /// The entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

fn contract(message: String) -> StorageError {
    StorageError::Contract(message)
}

impl LogState {
    /// Where the log starts: the snapshot's (index, term), or zeros.
    pub fn snapshot_meta(&self) -> SnapshotMeta {
        self.snapshot.as_ref().map(|s| s.meta).unwrap_or_default()
    }

    /// The last index held (the snapshot index when there are no entries).
    pub fn last_index(&self) -> LogIndex {
        self.entries
            .last()
            .map_or(self.snapshot_meta().index, |e| e.index)
    }

    /// The term at `index`, if the log (or the snapshot point) holds it.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        let snap = self.snapshot_meta();
        if index == snap.index {
            return Some(snap.term);
        }
        let offset = index.get().checked_sub(snap.index.get() + 1)?;
        let offset = usize::try_from(offset).ok()?;
        self.entries.get(offset).map(|e| e.term)
    }

    /// Checks `append(entries)` against the contract.
    pub fn check_append(&self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let snap = self.snapshot_meta();
        if first.index <= snap.index {
            return Err(contract(format!(
                "append at index {} is not after the snapshot index {}",
                first.index, snap.index
            )));
        }
        let last = self.last_index();
        if first.index > last.next() {
            return Err(contract(format!(
                "append at index {} leaves a gap after the last index {last}",
                first.index
            )));
        }
        let mut prev_term = self.term_at(first.index.prev()).unwrap_or(snap.term);
        let mut expected_index = first.index;
        for entry in entries {
            if entry.index != expected_index {
                return Err(contract(format!(
                    "appended entries are not contiguous: expected index {expected_index}, got {}",
                    entry.index
                )));
            }
            if entry.term == Term::ZERO || entry.term < prev_term {
                return Err(contract(format!(
                    "entry {} has term {}, below the previous entry's term {prev_term}",
                    entry.index, entry.term
                )));
            }
            prev_term = entry.term;
            expected_index = expected_index.next();
        }
        Ok(())
    }

    /// Appends (truncating any entries at or after `entries[0].index`).
    ///
    /// # Panics
    /// When `entries` were not checked with [`LogState::check_append`] first.
    pub fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        let snap_index = self.snapshot_meta().index.get();
        let keep = first.index.get() - snap_index - 1;
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        assert!(
            keep <= self.entries.len(),
            "append was not checked: gap in the log"
        );
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
    }

    /// Checks `set_hard_state(hard_state)` against the contract.
    pub fn check_hard_state(&self, hard_state: &HardState) -> Result<(), StorageError> {
        let current = &self.hard_state;
        if hard_state.term < current.term {
            return Err(contract(format!(
                "hard state term went back from {} to {}",
                current.term, hard_state.term
            )));
        }
        if hard_state.term == current.term
            && current.vote.is_some()
            && hard_state.vote != current.vote
        {
            return Err(contract(format!(
                "vote changed within term {} from {:?} to {:?}",
                current.term, current.vote, hard_state.vote
            )));
        }
        Ok(())
    }

    /// Checks `save_snapshot(meta)` against the contract: it must move forward.
    pub fn check_snapshot(&self, meta: &SnapshotMeta) -> Result<(), StorageError> {
        let current = self.snapshot_meta();
        if meta.index <= current.index || meta.term < current.term || meta.term == Term::ZERO {
            return Err(contract(format!(
                "snapshot at {meta:?} does not move past the current snapshot at {current:?}"
            )));
        }
        Ok(())
    }

    /// Installs a (checked) snapshot: keeps the entries after it when the log holds its
    /// (index, term), else discards the whole log. Returns whether entries were kept.
    ///
    /// Returns whether the log was kept, and the entries it no longer holds: millions of
    /// them after a snapshot of a large log, which the caller may free on another thread.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> (bool, Vec<Entry>) {
        let meta = snapshot.meta;
        let log_kept =
            meta.index <= self.last_index() && self.term_at(meta.index) == Some(meta.term);
        let freed = if log_kept {
            let drop = meta.index.get() - self.snapshot_meta().index.get();
            let drop = usize::try_from(drop)
                .unwrap_or(usize::MAX)
                .min(self.entries.len());
            // The (few) entries after the snapshot move; the covered ones stay in place.
            let kept = self.entries.split_off(drop);
            std::mem::replace(&mut self.entries, kept)
        } else {
            std::mem::take(&mut self.entries)
        };
        self.snapshot = Some(snapshot);
        (log_kept, freed)
    }

    /// The state as an [`InitialState`] (clones share the entries' and snapshot's bytes).
    pub fn to_initial_state(&self) -> InitialState {
        InitialState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }
}
