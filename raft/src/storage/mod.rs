//! Durable storage of Raft state: the hard state, the log after the latest snapshot, and
//! the snapshot itself.
//!
//! The core never touches storage; the runtime (or the simulator) writes what each
//! [`crate::core::Ready`] asks for, calls [`Storage::sync`] once for a whole batch of
//! Readies (group commit), and only then sends the Readies' `messages_after_persist` and
//! reports `on_persist_ready`. At start-up, [`Storage::initial_state`] gives the core back
//! exactly what was durable.
//!
//! Two implementations: [`DiskStorage`] (write-ahead log + snapshot files, see
//! `disk.rs`, `wal.rs`, `record.rs`, `snapshot.rs`), which the node runtime and the
//! simulator use, and [`MemStorage`] (unit tests). Both enforce the same contract
//! (`log_state.rs`) and pass the same conformance suite (`conformance.rs`, with the `sim`
//! feature or in tests).
//!
//! ```text
//!  node executor (driver thread)                 disk
//!  ----------------------------------------------------------------------------
//!  append(entries) / set_hard_state(hs)  --> records buffered in memory
//!  ... more Readies ...                       (written early past 1 MiB)
//!  sync()                                --> ONE write() of the batch + ONE fdatasync
//!  save_snapshot(s)                      --> sync; snap .tmp, fsync, rename, fsync dir;
//!                                            marker + fdatasync; purge covered segments
//!  write_incoming_snapshot(chunk)        --> appended to snap .incoming.tmp (fdatasync
//!                                            every 4 MiB as it grows)
//!  install_incoming_snapshot(r)          --> as save_snapshot, the file already written
//!  open_snapshot(meta)                   --> a reader over the snapshot file (the
//!                                            application installs from it)
//! ```
//!
//! The file-system seam ([`fs::Fs`]) lets tests and the simulator run `DiskStorage` on
//! `SimFs`, an in-memory disk that loses (or tears) unsynced data on a simulated crash.

use crate::error::StorageError;
use crate::types::{
    Entry, HardState, InitialState, ReceivedSnapshot, Snapshot, SnapshotChunk, SnapshotMeta,
};
use bytes::Bytes;
use std::ops::Add;

mod cleanup;
#[cfg(any(test, feature = "sim"))]
pub mod conformance;
mod disk;
pub mod fs;
mod identity;
mod log_state;
mod mem;
pub mod record;
mod replay;
pub mod scan;
#[cfg(any(test, feature = "sim"))]
pub mod sim_fs;
mod snapshot;
mod snapshot_reader;
mod wal;

pub use cleanup::FileCleanup;
pub use disk::{DataDirIdentity, DiskOptions, DiskStorage};
pub use mem::MemStorage;
pub use snapshot_reader::SnapshotReader;

/// Counters of what a storage has done, for tests and benchmarks (fsyncs per committed
/// entry is a target metric).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// fsync-family calls issued: `fdatasync` of WAL segments and snapshot files, and
    /// directory fsyncs. 0 when `DiskOptions::fsync` is off. For `MemStorage`: syncs
    /// that had something to make durable, plus one per snapshot.
    pub syncs: u64,
    /// Bytes written to files (WAL and snapshots).
    pub bytes_written: u64,
    /// WAL records written (entries, hard states, snapshot markers, segment heads).
    pub records_written: u64,
}

impl Add for StorageStats {
    type Output = StorageStats;

    fn add(self, other: StorageStats) -> StorageStats {
        StorageStats {
            syncs: self.syncs + other.syncs,
            bytes_written: self.bytes_written + other.bytes_written,
            records_written: self.records_written + other.records_written,
        }
    }
}

/// The file half of an application snapshot save, to run off the executor's thread
/// (`Storage::snapshot_file_job`).
pub struct SnapshotFileJob {
    write: Box<dyn FnOnce() -> Result<WrittenFile, StorageError> + Send>,
}

/// What a [`SnapshotFileJob`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WrittenFile {
    /// Counters of the write.
    pub stats: StorageStats,
    /// The snapshot's size (its data, without the file's header and trailer).
    pub data_bytes: u64,
}

impl SnapshotFileJob {
    /// A job running `write`.
    pub fn new(write: impl FnOnce() -> Result<WrittenFile, StorageError> + Send + 'static) -> Self {
        SnapshotFileJob {
            write: Box::new(write),
        }
    }

    /// Writes the file; durable when it returns `Ok`.
    ///
    /// # Errors
    /// The I/O failure; the file is then not (known to be) durable.
    pub fn run(self) -> Result<WrittenFile, StorageError> {
        (self.write)()
    }
}

/// An application snapshot that writes itself: the storage hands it the file (through
/// `std::io::Write`) and it encodes its state straight into it, so no encoded copy of a
/// large data set is ever held in memory (`RaftNode::snapshot_streamed`).
pub struct SnapshotSource {
    write: Box<WriteSnapshot>,
}

/// What a [`SnapshotSource`] runs: it writes the snapshot's data into the given writer.
type WriteSnapshot = dyn FnOnce(&mut dyn std::io::Write) -> std::io::Result<()> + Send;

impl SnapshotSource {
    /// A source whose data `write` produces.
    pub fn new(
        write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()> + Send + 'static,
    ) -> Self {
        SnapshotSource {
            write: Box::new(write),
        }
    }

    /// Writes the data into `out`.
    ///
    /// # Errors
    /// What `out` or the application's encoder returned.
    pub fn write_to(self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        (self.write)(out)
    }

    /// The data, collected in memory (for storages without a file step).
    ///
    /// # Errors
    /// What the application's encoder returned.
    pub fn into_bytes(self) -> std::io::Result<Bytes> {
        let mut out = Vec::new();
        self.write_to(&mut out)?;
        Ok(Bytes::from(out))
    }
}

impl std::fmt::Debug for SnapshotSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotSource").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SnapshotFileJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFileJob").finish_non_exhaustive()
    }
}

/// The error for a chunk asked of a snapshot that is not the latest.
pub(crate) fn not_latest(meta: SnapshotMeta) -> StorageError {
    StorageError::Contract(format!(
        "snapshot {meta:?} is not the latest: its chunks cannot be read"
    ))
}

/// The error for an incoming snapshot chunk that does not continue what was received.
pub(crate) fn incoming_gap(chunk: &SnapshotChunk) -> StorageError {
    StorageError::Contract(format!(
        "snapshot chunk {chunk:?} does not continue the incoming snapshot"
    ))
}

/// The error for installing an incoming snapshot that is not the one received (`held`:
/// the position and length of what was, if anything).
pub(crate) fn not_received(
    received: &ReceivedSnapshot,
    held: Option<(SnapshotMeta, u64)>,
) -> StorageError {
    StorageError::Contract(format!(
        "cannot install {received:?}: the incoming snapshot is {held:?}"
    ))
}

/// Durable Raft state.
///
/// # Correctness
/// - Writes (`append`, `set_hard_state`) need not be durable until `sync` returns; after
///   `sync` returns `Ok`, everything written before it survives a crash.
/// - `save_snapshot` is durable when it returns, and only then may log entries it
///   covers be removed from disk.
/// - After a crash, `initial_state` returns a prefix-consistent state: the hard state
///   and entries as of some point at or after the last successful `sync` (writes after
///   it may or may not survive, but never partially: a torn record is cut off).
/// - `save_snapshot` also makes every earlier write durable, as `sync` does.
/// - Contract checks (violations are `StorageError::Contract`, nothing is written):
///   appended entries are contiguous, start after the snapshot and no later than
///   last index + 1, and their terms are >= 1 and never decrease along the log; the
///   hard state's term never decreases and its vote never changes within a term once
///   cast; a snapshot must be past the current one (higher index, term not lower).
/// - After an I/O error (`Io`), a `DiskStorage` refuses all further calls
///   (`StorageError::Poisoned`): the node must restart and recover.
pub trait Storage: Send {
    /// What is durable now: hard state, latest snapshot, and the entries after it.
    ///
    /// # Errors
    /// [`StorageError`] when the state cannot be read or is corrupt before its tail.
    fn initial_state(&self) -> Result<InitialState, StorageError>;

    /// Appends entries. Entries at or after `entries[0].index` already in the log are
    /// replaced (truncate, then append). `entries` must be contiguous, start no later
    /// than the last index + 1, and after the snapshot index.
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure or a broken contract.
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError>;

    /// Records the hard state.
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure.
    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError>;

    /// Makes every earlier write durable (one fsync for the whole batch).
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure. The node must stop: it cannot know what is durable.
    fn sync(&mut self) -> Result<(), StorageError>;

    /// Durably stores a snapshot, then drops log entries it covers. If the log holds the
    /// snapshot's (index, term), later entries are kept; otherwise the whole log is
    /// discarded (an installed snapshot replaces a divergent log).
    ///
    /// # Errors
    /// [`StorageError`] on I/O failure.
    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError>;

    /// Counters of what this storage has done (fsyncs, bytes, records).
    fn stats(&self) -> StorageStats;

    /// Entries a snapshot dropped from this storage's memory since the last call (a large
    /// log's snapshot frees millions of them: the caller may free them off its thread).
    /// Dropping the result frees them; the default holds none.
    fn take_freed_entries(&mut self) -> Vec<Vec<Entry>> {
        Vec::new()
    }

    /// `len` bytes of the latest snapshot's data from `offset`, a chunk for a laggard
    /// (the core keeps no snapshot bytes). `meta` must be the latest snapshot's.
    ///
    /// # Errors
    /// [`StorageError`] when `meta` is not the latest snapshot, the range is outside it,
    /// or the read fails. Nothing about the storage changes; the caller drops the chunk.
    fn read_snapshot_chunk(
        &self,
        meta: SnapshotMeta,
        offset: u64,
        len: usize,
    ) -> Result<Bytes, StorageError>;

    /// Writes a chunk of a snapshot being received from the leader into this storage's
    /// incoming snapshot (`Ready::snapshot_chunks`). A chunk at offset 0 starts a new
    /// incoming snapshot, dropping any other; the others continue it, in order and
    /// without gaps. Nothing of it need be durable before
    /// [`Storage::install_incoming_snapshot`].
    ///
    /// # Errors
    /// `Contract` for a chunk that does not continue the incoming snapshot (nothing
    /// changes); an I/O error otherwise.
    fn write_incoming_snapshot(&mut self, chunk: &SnapshotChunk) -> Result<(), StorageError>;

    /// Installs the incoming snapshot, now whole (`Ready::snapshot`): as `save_snapshot`
    /// would with its data.
    ///
    /// # Errors
    /// `Contract` when the incoming snapshot is not `received` (another position, or
    /// another length): nothing changes; else as `save_snapshot`.
    fn install_incoming_snapshot(&mut self, received: ReceivedSnapshot)
        -> Result<(), StorageError>;

    /// The data of the latest snapshot (at `meta`), for the application to install
    /// (`Ready::apply_snapshot`), read from where the storage keeps it. The reader does
    /// not borrow the storage: it may be read on another thread, and stays readable if a
    /// newer snapshot replaces this one meanwhile.
    ///
    /// # Errors
    /// `Contract` when `meta` is not the latest snapshot; an I/O or corruption error.
    fn open_snapshot(&self, meta: SnapshotMeta) -> Result<SnapshotReader, StorageError>;

    /// Files snapshots made obsolete since the last call, to delete on any thread
    /// ([`FileCleanup::run`]). The default has none.
    fn take_obsolete_files(&mut self) -> Option<FileCleanup> {
        None
    }

    /// Splits saving an application snapshot in two so that the slow part can run off the
    /// caller's thread: the returned job writes `snapshot`'s file durably and touches
    /// nothing else of this storage (run it anywhere, once); [`Storage::adopt_snapshot`]
    /// then records it and drops the log it covers. Until adopted, the storage behaves as
    /// if the job had not run, except that a crash may recover the snapshot (its file is
    /// durable). `None` (the default): no separate file step; call `save_snapshot`.
    fn snapshot_file_job(&self, _snapshot: &Snapshot) -> Option<SnapshotFileJob> {
        None
    }

    /// As [`Storage::snapshot_file_job`], for a snapshot the application streams: the job
    /// writes the data into the file as `source` produces it (`position`: the snapshot's
    /// position and configuration, its `data` empty). `Err(source)` (the default) when this
    /// storage has no file step: the caller then collects the data in memory.
    fn streamed_snapshot_file_job(
        &self,
        _position: &Snapshot,
        source: SnapshotSource,
    ) -> Result<SnapshotFileJob, SnapshotSource> {
        Err(source)
    }

    /// Adopts a snapshot whose file a [`Storage::snapshot_file_job`] (or
    /// [`Storage::streamed_snapshot_file_job`]: then `snapshot.data` is empty, only its
    /// `meta` counts) made durable (its counters in `file_stats`): as `save_snapshot`,
    /// without writing the file again.
    ///
    /// # Errors
    /// As `save_snapshot`.
    fn adopt_snapshot(
        &mut self,
        snapshot: &Snapshot,
        _file_stats: StorageStats,
    ) -> Result<(), StorageError> {
        self.save_snapshot(snapshot)
    }
}
