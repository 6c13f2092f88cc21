//! The persister: writes what a Ready must make durable through the [`Storage`] seam, and
//! counts what it did (fsyncs, entries, the log's size since the latest snapshot).
//!
//! It runs on the executor's thread, between sending a Ready's `messages` and its
//! `messages_after_persist` — the shape etcd's raft loop has. There is no hand-off to a
//! storage thread and no "persisted" notice back (two thread wake-ups per write saved on
//! every node), and group commit comes for free: while one fsync runs, the input queue
//! fills, and the next Ready carries everything that arrived (one fsync for the batch).
//! The leader still writes its log in parallel with replication (thesis 10.2.1): its
//! AppendEntries are in `messages`, on the wire before the fsync starts.

use super::shared::Shared;
use crate::error::StorageError;
use crate::storage::{
    FileCleanup, SnapshotFileJob, SnapshotReader, SnapshotSource, Storage, StorageStats,
};
use crate::types::{
    Entry, HardState, InitialState, LogIndex, ReceivedSnapshot, Snapshot, SnapshotChunk,
    SnapshotMeta,
};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub(crate) struct Persister {
    storage: Box<dyn Storage>,
    shared: Arc<Shared>,
    /// (index, size) of every persisted entry after the latest snapshot, to report the
    /// log's size (the application snapshots when it grows too large).
    entry_sizes: VecDeque<(LogIndex, u64)>,
    log_bytes: u64,
}

impl std::fmt::Debug for Persister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persister")
            .field("log_bytes", &self.log_bytes)
            .finish_non_exhaustive()
    }
}

impl Persister {
    /// Wraps `storage`, which recovered `initial`.
    pub(crate) fn new(
        storage: Box<dyn Storage>,
        shared: Arc<Shared>,
        initial: &InitialState,
    ) -> Persister {
        let mut p = Persister {
            storage,
            shared,
            entry_sizes: VecDeque::new(),
            log_bytes: 0,
        };
        p.track_append(&initial.entries);
        p
    }

    /// Writes one Ready's durable part, in the contract's order (incoming snapshot
    /// chunks; the received snapshot, durable on return; then entries; then the hard
    /// state). Durable only after [`Persister::sync`] (or a snapshot install).
    pub(crate) fn write(
        &mut self,
        hard_state: Option<HardState>,
        snapshot_chunks: &[SnapshotChunk],
        snapshot: Option<ReceivedSnapshot>,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        for chunk in snapshot_chunks {
            self.storage.write_incoming_snapshot(chunk)?;
        }
        if let Some(snapshot) = snapshot {
            // A snapshot from the leader may replace the whole log; count it all gone
            // (an undercount only delays the application's next snapshot).
            self.storage.install_incoming_snapshot(snapshot)?;
            self.track_compaction(LogIndex(u64::MAX));
            self.publish_syncs();
        }
        if !entries.is_empty() {
            self.storage.append(entries)?;
            self.track_append(entries);
            self.shared
                .entries_persisted
                .fetch_add(entries.len() as u64, Ordering::Relaxed);
        }
        if let Some(hs) = hard_state {
            self.storage.set_hard_state(hs)?;
        }
        Ok(())
    }

    /// Makes every earlier write durable (one fsync).
    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        self.storage.sync()?;
        self.publish_syncs();
        Ok(())
    }

    /// Publishes the fsyncs the storage really issued (none when it runs with fsync off).
    fn publish_syncs(&self) {
        self.shared
            .syncs
            .store(self.storage.stats().syncs, Ordering::Relaxed);
    }

    /// Durably stores an application snapshot and drops the log it covers. Like a sync,
    /// it makes every earlier write durable.
    pub(crate) fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.storage.save_snapshot(snapshot)?;
        self.track_compaction(snapshot.meta.index);
        self.publish_syncs();
        Ok(())
    }

    /// The file half of an application snapshot save, to run elsewhere (`None`: the
    /// storage has none; use [`Persister::save_snapshot`]).
    pub(crate) fn snapshot_file_job(&self, snapshot: &Snapshot) -> Option<SnapshotFileJob> {
        self.storage.snapshot_file_job(snapshot)
    }

    /// The file half of saving a streamed application snapshot, if the storage has one.
    pub(crate) fn streamed_snapshot_file_job(
        &self,
        position: &Snapshot,
        source: SnapshotSource,
    ) -> Result<SnapshotFileJob, SnapshotSource> {
        self.storage.streamed_snapshot_file_job(position, source)
    }

    /// Adopts a snapshot whose file a job made durable; like a sync, it makes every
    /// earlier write durable.
    pub(crate) fn adopt_snapshot(
        &mut self,
        snapshot: &Snapshot,
        file_stats: StorageStats,
    ) -> Result<(), StorageError> {
        self.storage.adopt_snapshot(snapshot, file_stats)?;
        self.track_compaction(snapshot.meta.index);
        self.publish_syncs();
        Ok(())
    }

    /// The latest snapshot's data, for the application to install.
    pub(crate) fn open_snapshot(&self, meta: SnapshotMeta) -> Result<SnapshotReader, StorageError> {
        self.storage.open_snapshot(meta)
    }

    /// Entries snapshots dropped from the storage's memory, to free elsewhere.
    pub(crate) fn take_freed_entries(&mut self) -> Vec<Vec<Entry>> {
        self.storage.take_freed_entries()
    }

    /// A chunk of the latest snapshot, read from the storage.
    pub(crate) fn read_snapshot_chunk(
        &self,
        meta: SnapshotMeta,
        offset: u64,
        len: usize,
    ) -> Result<bytes::Bytes, StorageError> {
        self.storage.read_snapshot_chunk(meta, offset, len)
    }

    /// Files snapshots made obsolete, to delete off the executor's thread.
    pub(crate) fn take_obsolete_files(&mut self) -> Option<FileCleanup> {
        self.storage.take_obsolete_files()
    }

    fn track_append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        while let Some(&(index, size)) = self.entry_sizes.back() {
            if index < first.index {
                break;
            }
            self.entry_sizes.pop_back();
            self.log_bytes -= size;
        }
        for e in entries {
            let size = e.size_bytes() as u64;
            self.entry_sizes.push_back((e.index, size));
            self.log_bytes += size;
        }
        self.shared
            .log_bytes
            .store(self.log_bytes, Ordering::Relaxed);
    }

    fn track_compaction(&mut self, upto: LogIndex) {
        while let Some(&(index, size)) = self.entry_sizes.front() {
            if index > upto {
                break;
            }
            self.entry_sizes.pop_front();
            self.log_bytes -= size;
        }
        self.shared
            .log_bytes
            .store(self.log_bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{DiskOptions, DiskStorage};
    use crate::types::{EntryKind, NodeId, Term};

    fn entry(index: u64) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(1),
            kind: EntryKind::Normal,
            data: bytes::Bytes::from_static(b"x"),
        }
    }

    fn syncs_after_two_writes(fsync: bool) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut options = DiskOptions::new("c", NodeId(1));
        options.fsync = fsync;
        let storage = DiskStorage::open(dir.path(), options).unwrap();
        let initial = storage.initial_state().unwrap();
        let shared = Arc::new(Shared::new(NodeId(1)));
        let mut p = Persister::new(Box::new(storage), shared.clone(), &initial);
        for i in 1..=2 {
            p.write(None, &[], None, &[entry(i)]).unwrap();
            p.sync().unwrap();
        }
        shared.syncs.load(Ordering::Relaxed)
    }

    // The node's fsync counter (kvctl status, bench) reports fsyncs the disk really did:
    // none when the storage runs with fsync off.
    #[test]
    fn the_fsync_counter_counts_real_fsyncs_only() {
        assert_eq!(syncs_after_two_writes(false), 0);
        assert!(syncs_after_two_writes(true) >= 2);
    }
}
