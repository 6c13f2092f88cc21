//! Durable storage of Raft state: the hard state, the log after the latest snapshot, and
//! the snapshot itself.
//!
//! The core never touches storage; the runtime (or the simulator) writes what each
//! [`crate::core::Ready`] asks for, calls [`Storage::sync`] once for a whole batch of
//! Readies (group commit), and only then sends the Readies' `messages_after_persist` and
//! reports `on_persisted`. At start-up, [`Storage::initial_state`] gives the core back
//! exactly what was durable.

use crate::error::StorageError;
use crate::types::{Entry, HardState, InitialState, Snapshot};

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
}
