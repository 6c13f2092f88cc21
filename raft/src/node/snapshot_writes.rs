//! Application snapshots saved off the executor's thread. The executor asks the storage
//! for the file half of the save (`Storage::snapshot_file_job`), runs it on its
//! `Background`, and adopts the snapshot (core compaction, WAL marker, purge) when the
//! file is durable: the driver's rounds, and with them heartbeats, go on meanwhile.
//!
//! One write at a time. An application snapshot asked for while one is being written
//! waits (the newest replaces an older waiting one) and starts when the first is adopted.
//! The log entries a snapshot lets go (millions, after a large log) are freed, and the
//! files it made obsolete deleted, on the same background thread.

use super::background::Background;
use super::input::SnapshotData;
use crate::error::StorageError;
use crate::storage::{FileCleanup, SnapshotFileJob, WrittenFile};
use crate::types::{LogIndex, Snapshot};
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::sync::Arc;

/// A finished file write, back from the background. `snapshot.data` is empty when the
/// application streamed it into the file.
pub(crate) struct SnapshotWritten {
    pub(crate) snapshot: Snapshot,
    pub(crate) result: Result<WrittenFile, StorageError>,
}

/// The snapshot writes of one executor.
pub(crate) struct SnapshotWrites {
    background: Arc<dyn Background>,
    done_tx: Sender<SnapshotWritten>,
    done_rx: Receiver<SnapshotWritten>,
    writing: bool,
    waiting: Option<(LogIndex, SnapshotData)>,
}

impl SnapshotWrites {
    pub(crate) fn new(background: Arc<dyn Background>) -> SnapshotWrites {
        let (done_tx, done_rx) = unbounded();
        SnapshotWrites {
            background,
            done_tx,
            done_rx,
            writing: false,
            waiting: None,
        }
    }

    /// Whether a file is being written.
    pub(crate) fn is_writing(&self) -> bool {
        self.writing
    }

    /// Keeps the application's snapshot at `index` until the write in progress is done.
    pub(crate) fn wait(&mut self, index: LogIndex, data: SnapshotData) {
        self.waiting = Some((index, data));
    }

    /// The snapshot that waited for the previous write, if any.
    pub(crate) fn take_waiting(&mut self) -> Option<(LogIndex, SnapshotData)> {
        self.waiting.take()
    }

    /// Runs `job` (writing `snapshot`'s file) in the background.
    pub(crate) fn start(&mut self, snapshot: Snapshot, job: SnapshotFileJob) {
        self.writing = true;
        let done = self.done_tx.clone();
        self.background.spawn(Box::new(move || {
            let result = job.run();
            // The receiver lives as long as the executor; if it is gone, so is the node.
            let _ = done.send(SnapshotWritten { snapshot, result });
        }));
    }

    /// Deletes the files in `cleanup` on the background thread.
    pub(crate) fn delete_files(&self, cleanup: FileCleanup) {
        self.background.spawn(Box::new(move || cleanup.run()));
    }

    /// Drops `garbage` on the background thread (after the writes queued before it).
    pub(crate) fn free(&self, garbage: impl Send + 'static) {
        self.background.spawn(Box::new(move || drop(garbage)));
    }

    /// Finished writes' channel, for the driver to wait on.
    pub(crate) fn done_channel(&self) -> &Receiver<SnapshotWritten> {
        &self.done_rx
    }

    /// A finished write, if one is back.
    pub(crate) fn take_done(&mut self) -> Option<SnapshotWritten> {
        let done = self.done_rx.try_recv().ok()?;
        self.writing = false;
        Some(done)
    }
}
