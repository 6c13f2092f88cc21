//! The persister thread: group commit. It takes every persist job queued since its last
//! round, writes them all in order, makes them durable with ONE `Storage::sync`, and only
//! then sends the jobs' after-persist messages (votes, append acknowledgements) and tells
//! the driver what is durable. One fsync thus covers as many Readies as arrived while the
//! previous fsync ran.

use super::driver::DriverInput;
use super::shared::Shared;
use crate::error::StorageError;
use crate::message::Message;
use crate::storage::Storage;
use crate::transport::Transport;
use crate::types::{Entry, HardState, LogIndex, Snapshot, Term};
use crossbeam_channel::{Receiver, Sender};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The durable part of one Ready.
#[derive(Debug)]
pub(crate) struct PersistJob {
    pub(crate) hard_state: Option<HardState>,
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) must_sync: bool,
    pub(crate) after_persist: Vec<Message>,
    pub(crate) target: Option<(LogIndex, Term)>,
}

/// Work for the persister, in the order the driver produced it.
#[derive(Debug)]
pub(crate) enum PersistTask {
    /// Persist a Ready.
    Ready(PersistJob),
    /// Durably store an application snapshot and drop the log it covers.
    SaveSnapshot(Snapshot),
}

/// Most tasks folded into one fsync.
const MAX_TASKS_PER_SYNC: usize = 1024;

pub(crate) struct Persister {
    pub(crate) storage: Box<dyn Storage>,
    pub(crate) tasks: Receiver<PersistTask>,
    pub(crate) driver: Sender<DriverInput>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) shared: Arc<Shared>,
    /// (index, size) of every persisted entry after the latest snapshot, to report the
    /// log's size (the application snapshots when it grows too large).
    entry_sizes: VecDeque<(LogIndex, u64)>,
    log_bytes: u64,
}

impl Persister {
    pub(crate) fn new(
        storage: Box<dyn Storage>,
        tasks: Receiver<PersistTask>,
        driver: Sender<DriverInput>,
        transport: Arc<dyn Transport>,
        shared: Arc<Shared>,
        initial_entries: &[Entry],
    ) -> Persister {
        let mut p = Persister {
            storage,
            tasks,
            driver,
            transport,
            shared,
            entry_sizes: VecDeque::new(),
            log_bytes: 0,
        };
        p.track_append(initial_entries);
        p
    }

    /// The thread body: runs until the driver drops its sender.
    pub(crate) fn run(mut self) {
        while let Ok(first) = self.tasks.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_TASKS_PER_SYNC {
                match self.tasks.try_recv() {
                    Ok(task) => batch.push(task),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.persist_batch(batch) {
                let reason = e.to_string();
                tracing::error!(%reason, "persisting Raft state failed");
                self.shared.stop(Some(reason.clone()));
                let _ = self.driver.send(DriverInput::PersisterFailed(reason));
                return;
            }
        }
    }

    fn persist_batch(&mut self, batch: Vec<PersistTask>) -> Result<(), StorageError> {
        let mut need_sync = false;
        for task in &batch {
            match task {
                PersistTask::Ready(job) => need_sync |= self.write_job(job)?,
                PersistTask::SaveSnapshot(snapshot) => self.save_snapshot(snapshot)?,
            }
        }
        if need_sync {
            self.storage.sync()?;
            self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        }
        let mut targets = Vec::new();
        for task in batch {
            if let PersistTask::Ready(job) = task {
                if !job.after_persist.is_empty() {
                    self.transport.send(job.after_persist);
                }
                targets.extend(job.target);
            }
        }
        if !targets.is_empty() {
            // The driver may be gone during shutdown; nothing to report then.
            let _ = self.driver.send(DriverInput::Persisted(targets));
        }
        Ok(())
    }

    /// Writes one job; returns whether it needs an fsync.
    fn write_job(&mut self, job: &PersistJob) -> Result<bool, StorageError> {
        if let Some(snapshot) = &job.snapshot {
            // A snapshot from the leader may replace the whole log; count it all gone
            // (an undercount only delays the application's next snapshot).
            self.storage.save_snapshot(snapshot)?;
            self.track_compaction(LogIndex(u64::MAX));
        }
        if !job.entries.is_empty() {
            self.storage.append(&job.entries)?;
            self.track_append(&job.entries);
            self.shared
                .entries_persisted
                .fetch_add(job.entries.len() as u64, Ordering::Relaxed);
        }
        if let Some(hs) = job.hard_state {
            self.storage.set_hard_state(hs)?;
        }
        Ok(job.must_sync)
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.storage.save_snapshot(snapshot)?;
        self.track_compaction(snapshot.meta.index);
        Ok(())
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
