//! A node's simulated disk: the durable hard state, log and snapshot, plus the writes that
//! are not durable yet.
//!
//! Model: every write (an entries batch, a hard state) is an operation appended to a
//! volatile queue and applied at once to the *written* view (what the node reads back, like
//! the page cache). An fsync makes every operation written before it started durable. A
//! crash keeps the durable state and, with torn crashes enabled, a random prefix of the
//! volatile operations (a real disk may have written some of them; it never reorders them
//! and never tears one). Snapshots are durable on return, as `Storage::save_snapshot` says.
//!
//! Invariants: the durable state is always the written state as of some earlier moment at
//! or after the last completed fsync; `written` equals `durable` plus every queued operation.

use crate::sim::rng::SimRng;
use crate::types::{Entry, HardState, InitialState, LogIndex, Snapshot, Term};
use std::collections::VecDeque;

/// Hard state, snapshot and the log after it: what one node keeps on disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskState {
    /// The last hard state written.
    pub hard_state: HardState,
    /// The latest snapshot.
    pub snapshot: Option<Snapshot>,
    /// The entries after the snapshot, contiguous.
    pub entries: Vec<Entry>,
}

impl DiskState {
    /// Index covered by the snapshot (0 without one).
    pub fn snapshot_index(&self) -> LogIndex {
        self.snapshot.as_ref().map_or(LogIndex(0), |s| s.meta.index)
    }

    /// The last index held (in the log or the snapshot).
    pub fn last_index(&self) -> LogIndex {
        self.entries
            .last()
            .map_or(self.snapshot_index(), |e| e.index)
    }

    /// The entry at `index`, if it is in the log (not compacted, not beyond the end).
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let first = self.entries.first()?.index;
        if index < first {
            return None;
        }
        self.entries.get((index.0 - first.0) as usize)
    }

    /// The term of `index`: from the log, or the snapshot's term at its own index.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if let Some(e) = self.entry(index) {
            return Some(e.term);
        }
        match &self.snapshot {
            Some(s) if s.meta.index == index => Some(s.meta.term),
            None if index == LogIndex(0) => Some(Term(0)),
            _ => None,
        }
    }

    /// Whether `index` is covered by the snapshot or held in the log with term `term`.
    pub fn holds(&self, index: LogIndex, term: Term) -> bool {
        index <= self.snapshot_index() || self.entry(index).is_some_and(|e| e.term == term)
    }

    /// Truncate-then-append, as `Storage::append`; entries covered by the snapshot are skipped.
    pub fn append(&mut self, entries: &[Entry]) {
        let snap = self.snapshot_index();
        let new: Vec<&Entry> = entries.iter().filter(|e| e.index > snap).collect();
        let Some(first) = new.first().map(|e| e.index) else {
            return;
        };
        assert!(
            first <= self.last_index().next(),
            "disk append leaves a gap: first {first:?}, last {:?}",
            self.last_index()
        );
        if let Some(head) = self.entries.first().map(|e| e.index) {
            let keep = first.0.saturating_sub(head.0) as usize;
            self.entries.truncate(keep);
        }
        self.entries.extend(new.into_iter().cloned());
    }

    /// Installs a snapshot, as `Storage::save_snapshot`: later entries are kept if the log
    /// holds the snapshot's (index, term), otherwise the whole log goes.
    pub fn install_snapshot(&mut self, snapshot: &Snapshot) {
        if snapshot.meta.index <= self.snapshot_index() {
            return;
        }
        let meta = snapshot.meta;
        if self.entry(meta.index).is_some_and(|e| e.term == meta.term) {
            self.entries.retain(|e| e.index > meta.index);
        } else {
            self.entries.clear();
        }
        self.snapshot = Some(snapshot.clone());
    }

    /// What the core is restarted from.
    pub fn initial_state(&self) -> InitialState {
        InitialState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }

    fn apply(&mut self, op: &DiskOp) {
        match op {
            DiskOp::Entries(entries) => self.append(entries),
            DiskOp::HardState(hs) => self.hard_state = *hs,
        }
    }
}

/// One write that is not durable yet.
#[derive(Clone, Debug, PartialEq, Eq)]
enum DiskOp {
    Entries(Vec<Entry>),
    HardState(HardState),
}

/// Counters of disk activity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Completed fsyncs.
    pub fsyncs: u64,
    /// Entry batches written.
    pub entry_writes: u64,
    /// Snapshots saved.
    pub snapshots: u64,
    /// Volatile writes that survived a crash without an fsync (torn-crash model).
    pub survived_unsynced_ops: u64,
}

/// One node's disk: durable state, the volatile write queue and at most one fsync in flight.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    durable: DiskState,
    written: DiskState,
    /// Writes not yet durable, oldest first; `ops_base` is the sequence number of the first.
    ops: VecDeque<DiskOp>,
    ops_base: u64,
    /// The fsync in flight makes durable every op with sequence number below this.
    sync_upto: Option<u64>,
    stats: DiskStats,
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    /// What survives a crash right now.
    pub fn durable(&self) -> &DiskState {
        &self.durable
    }

    /// What the node has written (durable or not).
    pub fn written(&self) -> &DiskState {
        &self.written
    }

    /// Counters.
    pub fn stats(&self) -> DiskStats {
        self.stats
    }

    /// Whether some writes are not durable yet.
    pub fn has_unsynced(&self) -> bool {
        !self.ops.is_empty()
    }

    /// Whether an fsync is in flight.
    pub fn sync_in_flight(&self) -> bool {
        self.sync_upto.is_some()
    }

    /// Writes entries (truncate-then-append); volatile until an fsync.
    pub fn write_entries(&mut self, entries: &[Entry]) {
        if entries.is_empty() {
            return;
        }
        self.stats.entry_writes += 1;
        self.written.append(entries);
        self.ops.push_back(DiskOp::Entries(entries.to_vec()));
    }

    /// Writes the hard state; volatile until an fsync.
    pub fn write_hard_state(&mut self, hard_state: HardState) {
        self.written.hard_state = hard_state;
        self.ops.push_back(DiskOp::HardState(hard_state));
    }

    /// Starts an fsync covering every write so far.
    ///
    /// # Panics
    /// If an fsync is already in flight (the driver runs one at a time).
    pub fn start_sync(&mut self) {
        assert!(self.sync_upto.is_none(), "one fsync at a time");
        self.sync_upto = Some(self.ops_base + self.ops.len() as u64);
    }

    /// Completes the fsync in flight: the writes it covers become durable.
    pub fn finish_sync(&mut self) {
        let Some(upto) = self.sync_upto.take() else {
            return;
        };
        self.make_durable(upto);
        self.stats.fsyncs += 1;
    }

    /// Makes every write durable right now (a synchronous fsync). An fsync in flight then
    /// covers nothing more.
    pub fn sync_now(&mut self) {
        self.make_durable(self.ops_base + self.ops.len() as u64);
        self.stats.fsyncs += 1;
    }

    fn make_durable(&mut self, upto: u64) {
        while self.ops_base < upto {
            let Some(op) = self.ops.pop_front() else {
                break;
            };
            self.durable.apply(&op);
            self.ops_base += 1;
        }
    }

    /// Durably installs a snapshot received from the leader: earlier writes are synced first
    /// (the snapshot replaces the log they wrote), then the snapshot is saved.
    pub fn install_snapshot(&mut self, snapshot: &Snapshot) {
        self.sync_now();
        self.durable.install_snapshot(snapshot);
        self.written.install_snapshot(snapshot);
        self.stats.snapshots += 1;
    }

    /// Durably saves the application's snapshot at an applied index and drops the entries it
    /// covers. Earlier writes are synced first (as `DiskStorage::save_snapshot` does): a
    /// leader may have applied entries it had written but not yet fsynced.
    ///
    /// # Panics
    /// If the log does not hold the snapshot's (index, term): the application would be ahead
    /// of what this node ever wrote, which the core promises never happens.
    pub fn save_compaction_snapshot(&mut self, snapshot: &Snapshot) {
        self.make_durable(self.ops_base + self.ops.len() as u64);
        self.stats.fsyncs += 1;
        let meta = snapshot.meta;
        assert!(
            self.durable.holds(meta.index, meta.term),
            "compaction snapshot at {:?}/{:?} is not on the durable log (durable last {:?})",
            meta.index,
            meta.term,
            self.durable.last_index()
        );
        self.durable.install_snapshot(snapshot);
        self.written.install_snapshot(snapshot);
        self.stats.snapshots += 1;
    }

    /// A crash: unsynced writes are lost, except (when `torn` is set) a random prefix of them.
    /// The fsync in flight is lost.
    pub fn crash(&mut self, rng: &mut SimRng, torn: bool) {
        self.sync_upto = None;
        let survivors = if torn {
            rng.range_inclusive(0, self.ops.len() as u64)
        } else {
            0
        };
        self.stats.survived_unsynced_ops += survivors;
        self.make_durable(self.ops_base + survivors);
        self.ops_base += self.ops.len() as u64;
        self.ops.clear();
        self.written = self.durable.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{EntryKind, SnapshotMeta};
    use bytes::Bytes;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            kind: EntryKind::Normal,
            data: Bytes::from(vec![index as u8]),
        }
    }

    fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
        range.map(|i| entry(i, term)).collect()
    }

    fn snapshot(index: u64, term: u64) -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(index),
                term: Term(term),
            },
            data: Bytes::from_static(b"s"),
        }
    }

    #[test]
    fn append_truncates_conflicting_suffix() {
        let mut d = DiskState::default();
        d.append(&entries(1..=5, 1));
        d.append(&entries(3..=4, 2));
        assert_eq!(d.last_index(), LogIndex(4));
        assert_eq!(d.term_at(LogIndex(2)), Some(Term(1)));
        assert_eq!(d.term_at(LogIndex(3)), Some(Term(2)));
        assert_eq!(d.term_at(LogIndex(5)), None);
    }

    #[test]
    fn snapshot_keeps_matching_suffix_or_discards_log() {
        let mut d = DiskState::default();
        d.append(&entries(1..=5, 1));
        d.install_snapshot(&snapshot(3, 1));
        assert_eq!(d.entries.first().map(|e| e.index), Some(LogIndex(4)));
        assert_eq!(d.term_at(LogIndex(3)), Some(Term(1)));
        assert!(d.holds(LogIndex(2), Term(9)), "covered by the snapshot");
        d.install_snapshot(&snapshot(7, 2));
        assert!(d.entries.is_empty());
        assert_eq!(d.last_index(), LogIndex(7));
        d.append(&entries(6..=9, 2));
        assert_eq!(
            d.entries.first().map(|e| e.index),
            Some(LogIndex(8)),
            "covered entries skipped"
        );
    }

    #[test]
    fn fsync_makes_only_earlier_writes_durable() {
        let mut disk = SimDisk::new();
        disk.write_entries(&entries(1..=2, 1));
        disk.start_sync();
        disk.write_entries(&entries(3..=3, 1));
        assert_eq!(disk.written().last_index(), LogIndex(3));
        assert_eq!(disk.durable().last_index(), LogIndex(0));
        disk.finish_sync();
        assert_eq!(disk.durable().last_index(), LogIndex(2));
        assert!(disk.has_unsynced());
        let mut rng = SimRng::new(1);
        disk.crash(&mut rng, false);
        assert_eq!(
            disk.written().last_index(),
            LogIndex(2),
            "crash loses unsynced writes"
        );
        assert!(!disk.has_unsynced());
    }

    #[test]
    fn torn_crash_keeps_a_prefix_of_writes() {
        for seed in 0..50 {
            let mut disk = SimDisk::new();
            for i in 1..=5 {
                disk.write_entries(&entries(i..=i, 1));
                disk.write_hard_state(HardState {
                    term: Term(1),
                    vote: None,
                    commit: LogIndex(i),
                });
            }
            disk.crash(&mut SimRng::new(seed), true);
            let d = disk.durable();
            assert!(
                d.hard_state.commit <= d.last_index(),
                "prefix keeps writes in order"
            );
            assert!(d.last_index() <= d.hard_state.commit.next());
        }
    }

    #[test]
    fn install_snapshot_syncs_earlier_writes() {
        let mut disk = SimDisk::new();
        disk.write_hard_state(HardState {
            term: Term(3),
            vote: None,
            commit: LogIndex(0),
        });
        disk.install_snapshot(&snapshot(10, 2));
        assert_eq!(disk.durable().hard_state.term, Term(3));
        assert_eq!(disk.durable().last_index(), LogIndex(10));
        disk.write_entries(&entries(11..=11, 3));
        disk.sync_now();
        disk.save_compaction_snapshot(&snapshot(11, 3));
        assert!(disk.durable().entries.is_empty());
        assert_eq!(disk.written().snapshot_index(), LogIndex(11));
    }
}
