//! The checker's oracle of a node's disk: what the [`Storage`] contract says is written
//! and what is durable, learned from the calls the node's executor makes.
//!
//! The simulator runs the real `DiskStorage` over the crashable `SimFs`; the checker
//! needs to know, after every event, what each node holds durably (commit durability,
//! persistence before revealing, ...). Reading that back from the files after every
//! event would cost a recovery each time, so [`ObservedStorage`] wraps the storage and
//! keeps this model beside it: `append` and `set_hard_state` are *written*; `sync`
//! makes every write before it *durable*; `save_snapshot` is durable on return (and
//! syncs earlier writes first). The model decides nothing the node does.
//!
//! It is also checked against the real thing: when a crashed node restarts, what
//! `DiskStorage` recovers from the `SimFs` must be the durable state plus a prefix of
//! the writes made after the last sync (a torn write may keep some of them, and pages
//! written back out of order leave holes that recovery cuts at, so never out of order,
//! never less than what was synced) — [`StorageModel::check_recovered`]. A call
//! that failed (the disk lost power mid-operation) may or may not have taken effect: it
//! stays pending, and recovery may show it or not.
//!
//! Invariants: `written` is `durable` with every pending write applied, in order.

use crate::error::StorageError;
use crate::sim::invariants::Violation;
use crate::sim::streamed_copy::StreamedCopy;
use crate::storage::{SnapshotFileJob, SnapshotReader, SnapshotSource, Storage, StorageStats};
use crate::types::{
    Entry, HardState, InitialState, LogIndex, ReceivedSnapshot, Snapshot, SnapshotChunk,
    SnapshotMeta, Term,
};
use bytes::BytesMut;
use parking_lot::Mutex;
use std::sync::Arc;

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
}

/// One write that is not durable yet.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PendingWrite {
    Entries(Vec<Entry>),
    HardState(HardState),
    /// A snapshot save that failed part way (it syncs everything before it first).
    Snapshot(Snapshot),
}

/// What one node's storage holds, written and durable, per the `Storage` contract.
#[derive(Clone, Debug, Default)]
pub struct StorageModel {
    durable: DiskState,
    written: DiskState,
    /// Writes since the last sync, oldest first.
    pending: Vec<PendingWrite>,
    /// Entries written since the checker last looked, with the term before each batch.
    new_entries: Vec<(Option<Term>, Vec<Entry>)>,
    /// The durable state changed since the checker last looked.
    durable_changed: bool,
    /// A snapshot file written in the background and not adopted yet, and whether it is
    /// certainly durable (else the write failed part way and it may or may not be):
    /// recovery takes the newest snapshot file, adopted or not.
    snapshot_file: Option<(Snapshot, bool)>,
}

impl StorageModel {
    /// The model of a storage that recovered `state` (all of it durable).
    pub fn recovered(state: DiskState) -> StorageModel {
        StorageModel {
            durable: state.clone(),
            written: state,
            durable_changed: true,
            ..StorageModel::default()
        }
    }

    /// What is durable.
    pub fn durable(&self) -> &DiskState {
        &self.durable
    }

    /// What has been written (durable or not).
    pub fn written(&self) -> &DiskState {
        &self.written
    }

    /// Takes the entry batches written since the last call (for log matching).
    pub fn take_new_entries(&mut self) -> Vec<(Option<Term>, Vec<Entry>)> {
        std::mem::take(&mut self.new_entries)
    }

    /// Whether the durable state changed since the last call.
    pub fn take_durable_changed(&mut self) -> bool {
        std::mem::replace(&mut self.durable_changed, false)
    }

    fn on_append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        let prev = self.written.term_at(first.index.prev());
        self.new_entries.push((prev, entries.to_vec()));
        self.written.append(entries);
        self.pending.push(PendingWrite::Entries(entries.to_vec()));
    }

    fn on_hard_state(&mut self, hard_state: HardState) {
        self.written.hard_state = hard_state;
        self.pending.push(PendingWrite::HardState(hard_state));
    }

    fn on_sync(&mut self) {
        for write in std::mem::take(&mut self.pending) {
            self.durable.apply(&write);
        }
        self.durable_changed = true;
    }

    fn on_snapshot(&mut self, snapshot: &Snapshot) {
        self.on_sync();
        self.durable.install_snapshot(snapshot);
        self.written.install_snapshot(snapshot);
        if self
            .snapshot_file
            .as_ref()
            .is_some_and(|(file, _)| file.meta.index <= snapshot.meta.index)
        {
            self.snapshot_file = None;
        }
    }

    fn on_snapshot_file(&mut self, snapshot: &Snapshot, certain: bool) {
        self.snapshot_file = Some((snapshot.clone(), certain));
    }

    /// Whether `recovered` is `candidate`, given a snapshot file written in the background
    /// (recovery installs it over the candidate: certainly if it is durable, perhaps if
    /// its write failed part way).
    fn recovers_as(&self, candidate: &DiskState, recovered: &DiskState) -> bool {
        let with_file = || {
            self.snapshot_file.as_ref().is_some_and(|(file, _)| {
                let mut with = candidate.clone();
                with.install_snapshot(file);
                with.same_as(recovered)
            })
        };
        match &self.snapshot_file {
            Some((_, true)) => with_file(),
            Some((_, false)) => candidate.same_as(recovered) || with_file(),
            None => candidate.same_as(recovered),
        }
    }

    /// Checks what a restarted node recovered against the model: the durable state plus
    /// a prefix of the pending writes (the last one possibly cut between two entries).
    ///
    /// # Errors
    /// When recovery lost a durable write, or produced a state no crash could leave.
    pub fn check_recovered(&self, recovered: &DiskState) -> Result<(), Violation> {
        let mut candidate = self.durable.clone();
        if self.recovers_as(&candidate, recovered) {
            return Ok(());
        }
        for write in &self.pending {
            match write {
                PendingWrite::Entries(entries) => {
                    for e in entries {
                        candidate.append(std::slice::from_ref(e));
                        if self.recovers_as(&candidate, recovered) {
                            return Ok(());
                        }
                    }
                }
                PendingWrite::HardState(_) | PendingWrite::Snapshot(_) => {
                    candidate.apply(write);
                    if self.recovers_as(&candidate, recovered) {
                        return Ok(());
                    }
                }
            }
        }
        Err(format!(
            "recovered state {} is not the durable state {} plus a prefix of the {} later writes",
            recovered.summary(),
            self.durable.summary(),
            self.pending.len()
        ))
    }
}

impl DiskState {
    fn apply(&mut self, write: &PendingWrite) {
        match write {
            PendingWrite::Entries(entries) => self.append(entries),
            PendingWrite::HardState(hs) => self.hard_state = *hs,
            PendingWrite::Snapshot(snapshot) => self.install_snapshot(snapshot),
        }
    }

    /// Equality, cheapest parts first.
    fn same_as(&self, other: &DiskState) -> bool {
        self.hard_state == other.hard_state
            && self.last_index() == other.last_index()
            && self.snapshot == other.snapshot
            && self.entries == other.entries
    }

    fn summary(&self) -> String {
        format!(
            "(hard state {:?}, snapshot {:?}, log {:?}..={:?})",
            self.hard_state,
            self.snapshot.as_ref().map(|s| s.meta),
            self.entries.first().map(|e| e.index),
            self.last_index()
        )
    }

    /// The state `initial_state` describes.
    pub fn from_initial(initial: InitialState) -> DiskState {
        DiskState {
            hard_state: initial.hard_state,
            snapshot: initial.snapshot,
            entries: initial.entries,
        }
    }
}

/// A [`Storage`] that keeps a [`StorageModel`] of what it wrote and made durable.
pub struct ObservedStorage {
    inner: Box<dyn Storage>,
    model: Arc<Mutex<StorageModel>>,
    /// The bytes of the last streamed snapshot written, for its adoption (which names
    /// only its position).
    streamed: Arc<Mutex<Option<Snapshot>>>,
    /// A copy of the snapshot being received, for the model when it is installed.
    incoming: Option<(SnapshotMeta, BytesMut)>,
}

impl std::fmt::Debug for ObservedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedStorage").finish_non_exhaustive()
    }
}

impl ObservedStorage {
    /// Wraps `inner`, recording into `model`.
    pub fn new(inner: Box<dyn Storage>, model: Arc<Mutex<StorageModel>>) -> ObservedStorage {
        ObservedStorage {
            inner,
            model,
            streamed: Arc::default(),
            incoming: None,
        }
    }

    /// Records a call's effect on the model: `done` if it succeeded; if it failed, the
    /// `attempted` write stays pending (it may or may not have reached the disk).
    fn observe<T>(
        &mut self,
        result: Result<T, StorageError>,
        done: impl FnOnce(&mut StorageModel),
        attempted: Option<PendingWrite>,
    ) -> Result<T, StorageError> {
        let mut model = self.model.lock();
        match (&result, attempted) {
            (Ok(_), _) => done(&mut model),
            (Err(_), Some(write)) => model.pending.push(write),
            (Err(_), None) => {}
        }
        result
    }
}

impl Storage for ObservedStorage {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        self.inner.initial_state()
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let result = self.inner.append(entries);
        let attempted = PendingWrite::Entries(entries.to_vec());
        self.observe(result, |m| m.on_append(entries), Some(attempted))
    }

    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        let result = self.inner.set_hard_state(hard_state);
        let attempted = PendingWrite::HardState(hard_state);
        self.observe(result, |m| m.on_hard_state(hard_state), Some(attempted))
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        let result = self.inner.sync();
        self.observe(result, StorageModel::on_sync, None)
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        let result = self.inner.save_snapshot(snapshot);
        let attempted = PendingWrite::Snapshot(snapshot.clone());
        self.observe(result, |m| m.on_snapshot(snapshot), Some(attempted))
    }

    fn stats(&self) -> StorageStats {
        self.inner.stats()
    }

    fn take_freed_entries(&mut self) -> Vec<Vec<Entry>> {
        self.inner.take_freed_entries()
    }

    fn read_snapshot_chunk(
        &self,
        meta: SnapshotMeta,
        offset: u64,
        len: usize,
    ) -> Result<bytes::Bytes, StorageError> {
        self.inner.read_snapshot_chunk(meta, offset, len)
    }

    fn take_obsolete_files(&mut self) -> Option<crate::storage::FileCleanup> {
        self.inner.take_obsolete_files()
    }

    /// The inner write, copied for the model (which learns of the snapshot when it is
    /// installed: until then nothing of it is recovered).
    fn write_incoming_snapshot(&mut self, chunk: &SnapshotChunk) -> Result<(), StorageError> {
        self.inner.write_incoming_snapshot(chunk)?;
        if chunk.offset == 0 {
            self.incoming = Some((chunk.meta, BytesMut::new()));
        }
        if let Some((_, copy)) = &mut self.incoming {
            copy.extend_from_slice(&chunk.data);
        }
        Ok(())
    }

    fn install_incoming_snapshot(
        &mut self,
        received: ReceivedSnapshot,
    ) -> Result<(), StorageError> {
        let result = self.inner.install_incoming_snapshot(received.clone());
        if matches!(result, Err(StorageError::Contract(_))) {
            return result;
        }
        let data = match self.incoming.take() {
            Some((meta, copy)) if meta == received.meta => copy.freeze(),
            _ => {
                return Err(StorageError::Contract(format!(
                    "the model holds no copy of the incoming snapshot {received:?}"
                )))
            }
        };
        let snapshot = Snapshot {
            meta: received.meta,
            data,
            conf: received.conf.clone(),
        };
        let attempted = PendingWrite::Snapshot(snapshot.clone());
        self.observe(result, |m| m.on_snapshot(&snapshot), Some(attempted))
    }

    fn open_snapshot(&self, meta: SnapshotMeta) -> Result<SnapshotReader, StorageError> {
        self.inner.open_snapshot(meta)
    }

    /// The inner job, telling the model once the file is durable (or, if the write
    /// failed, that it may be).
    fn snapshot_file_job(&self, snapshot: &Snapshot) -> Option<SnapshotFileJob> {
        let job = self.inner.snapshot_file_job(snapshot)?;
        let model = self.model.clone();
        let snapshot = snapshot.clone();
        Some(SnapshotFileJob::new(move || {
            let result = job.run();
            model.lock().on_snapshot_file(&snapshot, result.is_ok());
            result
        }))
    }

    /// The inner job, its source's output copied for the model.
    fn streamed_snapshot_file_job(
        &self,
        position: &Snapshot,
        source: SnapshotSource,
    ) -> Result<SnapshotFileJob, SnapshotSource> {
        let copy = StreamedCopy::default();
        let job = self
            .inner
            .streamed_snapshot_file_job(position, copy.wrap(source))?;
        let (meta, conf) = (position.meta, position.conf.clone());
        let (model, streamed) = (self.model.clone(), self.streamed.clone());
        Ok(SnapshotFileJob::new(move || {
            let result = job.run();
            // Complete whenever the file can have been renamed into place: the source
            // finished before the file's last writes.
            let snapshot = Snapshot {
                meta,
                data: copy.take(),
                conf,
            };
            model.lock().on_snapshot_file(&snapshot, result.is_ok());
            *streamed.lock() = Some(snapshot);
            result
        }))
    }

    fn adopt_snapshot(
        &mut self,
        snapshot: &Snapshot,
        file_stats: StorageStats,
    ) -> Result<(), StorageError> {
        let streamed = self.streamed.lock().take();
        let snapshot = &match streamed {
            Some(full) if full.meta == snapshot.meta && snapshot.data.is_empty() => full,
            _ => snapshot.clone(),
        };
        let result = self.inner.adopt_snapshot(snapshot, file_stats);
        let attempted = PendingWrite::Snapshot(snapshot.clone());
        self.observe(result, |m| m.on_snapshot(snapshot), Some(attempted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;
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
            conf: None,
        }
    }

    fn hs(term: u64, commit: u64) -> HardState {
        HardState {
            term: Term(term),
            vote: None,
            commit: LogIndex(commit),
        }
    }

    fn observed() -> (ObservedStorage, Arc<Mutex<StorageModel>>) {
        let model = Arc::new(Mutex::new(StorageModel::default()));
        let storage = ObservedStorage::new(Box::new(MemStorage::new()), model.clone());
        (storage, model)
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
    fn a_sync_makes_every_earlier_write_durable_and_a_snapshot_syncs_first() {
        let (mut s, model) = observed();
        s.append(&entries(1..=2, 1)).unwrap();
        s.set_hard_state(hs(1, 0)).unwrap();
        assert_eq!(model.lock().written().last_index(), LogIndex(2));
        assert_eq!(model.lock().durable().last_index(), LogIndex(0));
        s.sync().unwrap();
        assert_eq!(model.lock().durable().last_index(), LogIndex(2));
        assert_eq!(model.lock().durable().hard_state, hs(1, 0));
        s.append(&entries(3..=3, 1)).unwrap();
        s.save_snapshot(&snapshot(3, 1)).unwrap();
        let m = model.lock();
        assert_eq!(m.durable().snapshot_index(), LogIndex(3));
        assert!(m.durable().entries.is_empty());
        assert_eq!(m.written(), m.durable());
    }

    #[test]
    fn recovery_must_keep_the_durable_state_and_a_prefix_of_later_writes() {
        let (mut s, model) = observed();
        s.append(&entries(1..=2, 1)).unwrap();
        s.set_hard_state(hs(1, 1)).unwrap();
        s.sync().unwrap();
        s.append(&entries(3..=5, 1)).unwrap();
        s.set_hard_state(hs(1, 4)).unwrap();
        let m = model.lock().clone();
        let durable = m.durable().clone();
        assert_eq!(m.check_recovered(&durable), Ok(()), "nothing unsynced kept");
        let mut torn = durable.clone();
        torn.append(&entries(3..=4, 1));
        assert_eq!(m.check_recovered(&torn), Ok(()), "cut between two entries");
        let mut all = torn.clone();
        all.append(&entries(5..=5, 1));
        all.hard_state = hs(1, 4);
        assert_eq!(m.check_recovered(&all), Ok(()), "everything kept");
        let mut lost = DiskState::default();
        lost.append(&entries(1..=1, 1));
        lost.hard_state = hs(1, 1);
        assert!(m.check_recovered(&lost).is_err(), "a synced entry lost");
        let mut reordered = durable;
        reordered.hard_state = hs(1, 4);
        assert!(
            m.check_recovered(&reordered).is_err(),
            "a later hard state without the entries written before it"
        );
    }
}
