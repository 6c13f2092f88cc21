//! `MemStorage`: a [`Storage`] in memory, for tests and the simulator. It enforces the
//! same contract as `DiskStorage` and models durability: writes are held as pending
//! until `sync`, and [`MemStorage::crash`] forgets whatever was not synced, as a power
//! loss would.
//!
//! # Invariants
//! - `durable` is the state as of the last `sync` (or `save_snapshot`);
//!   `written` = `durable` + `pending` applied in order.
//! - `pending` only grows between syncs: bounded by the caller's batch size.

use super::log_state::LogState;
use super::{not_latest, SnapshotReader, Storage, StorageStats};
use crate::error::StorageError;
use crate::types::{
    Entry, HardState, InitialState, ReceivedSnapshot, Snapshot, SnapshotChunk, SnapshotMeta,
};
use bytes::{Bytes, BytesMut};

/// A write not yet synced.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PendingWrite {
    Append(Vec<Entry>),
    HardState(HardState),
}

/// In-memory storage with a durable/written split.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    written: LogState,
    durable: LogState,
    pending: Vec<PendingWrite>,
    stats: StorageStats,
    /// The snapshot being received from the leader, assembled (it is all memory here).
    incoming: Option<(SnapshotMeta, BytesMut)>,
}

impl MemStorage {
    /// Empty storage.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Storage that starts with `initial` durable (e.g. to seed a test).
    ///
    /// # Errors
    /// `Contract` when `initial` breaks the storage invariants (entries not contiguous
    /// after the snapshot, decreasing terms).
    pub fn with_initial_state(initial: InitialState) -> Result<MemStorage, StorageError> {
        let mut state = LogState {
            hard_state: initial.hard_state,
            ..LogState::default()
        };
        if let Some(snapshot) = initial.snapshot {
            state.check_snapshot(&snapshot.meta)?;
            let _ = state.apply_snapshot(snapshot);
        }
        state.check_append(&initial.entries)?;
        state.append(&initial.entries);
        Ok(MemStorage {
            written: state.clone(),
            durable: state,
            ..MemStorage::default()
        })
    }

    /// A power loss: every write since the last sync is forgotten.
    pub fn crash(&mut self) {
        self.pending.clear();
        self.incoming = None;
        self.written = self.durable.clone();
    }

    /// What would survive a crash now.
    pub fn durable_state(&self) -> InitialState {
        self.durable.to_initial_state()
    }

    fn apply_pending(&mut self) {
        for write in self.pending.drain(..) {
            match write {
                PendingWrite::Append(entries) => self.durable.append(&entries),
                PendingWrite::HardState(hard_state) => self.durable.hard_state = hard_state,
            }
        }
    }
}

impl Storage for MemStorage {
    /// What has been written (in a fresh or just-crashed `MemStorage`, what was durable).
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        Ok(self.written.to_initial_state())
    }

    fn read_snapshot_chunk(
        &self,
        meta: SnapshotMeta,
        offset: u64,
        len: usize,
    ) -> Result<Bytes, StorageError> {
        let data = match &self.written.snapshot {
            Some(snapshot) if snapshot.meta == meta => &snapshot.data,
            _ => return Err(not_latest(meta)),
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        if start.saturating_add(len) > data.len() {
            return Err(StorageError::Contract(format!(
                "snapshot chunk {offset}+{len} is beyond the snapshot's {} bytes",
                data.len()
            )));
        }
        Ok(data.slice(start..start + len))
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.written.check_append(entries)?;
        if entries.is_empty() {
            return Ok(());
        }
        self.written.append(entries);
        self.pending.push(PendingWrite::Append(entries.to_vec()));
        self.stats.records_written += entries.len() as u64;
        self.stats.bytes_written += entries.iter().map(|e| e.size_bytes() as u64).sum::<u64>();
        Ok(())
    }

    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        self.written.check_hard_state(&hard_state)?;
        self.written.hard_state = hard_state;
        self.pending.push(PendingWrite::HardState(hard_state));
        self.stats.records_written += 1;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        if !self.pending.is_empty() {
            self.apply_pending();
            self.stats.syncs += 1;
        }
        Ok(())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.written.check_snapshot(&snapshot.meta)?;
        self.sync()?;
        let _ = self.written.apply_snapshot(snapshot.clone());
        let _ = self.durable.apply_snapshot(snapshot.clone());
        self.stats.syncs += 1;
        self.stats.bytes_written += snapshot.data.len() as u64;
        Ok(())
    }

    fn stats(&self) -> StorageStats {
        self.stats
    }

    fn write_incoming_snapshot(&mut self, chunk: &SnapshotChunk) -> Result<(), StorageError> {
        if chunk.offset == 0 {
            self.incoming = Some((chunk.meta, BytesMut::new()));
        }
        match &mut self.incoming {
            Some((meta, data)) if *meta == chunk.meta && data.len() as u64 == chunk.offset => {
                data.extend_from_slice(&chunk.data);
                Ok(())
            }
            _ => Err(super::incoming_gap(chunk)),
        }
    }

    fn install_incoming_snapshot(
        &mut self,
        received: ReceivedSnapshot,
    ) -> Result<(), StorageError> {
        match self.incoming.take() {
            Some((meta, data))
                if meta == received.meta && data.len() as u64 == received.data_bytes =>
            {
                let snapshot = Snapshot {
                    meta,
                    data: data.freeze(),
                    conf: received.conf.clone(),
                };
                self.save_snapshot(&snapshot).inspect_err(|_| {
                    self.incoming = Some((meta, BytesMut::from(&snapshot.data[..])));
                })
            }
            other => {
                let held = other.as_ref().map(|(m, d)| (*m, d.len() as u64));
                self.incoming = other;
                Err(super::not_received(&received, held))
            }
        }
    }

    fn open_snapshot(&self, meta: SnapshotMeta) -> Result<SnapshotReader, StorageError> {
        match &self.written.snapshot {
            Some(snapshot) if snapshot.meta == meta => {
                Ok(SnapshotReader::from_bytes(snapshot.data.clone()))
            }
            _ => Err(not_latest(meta)),
        }
    }
}
