//! State the executor publishes (from the driver thread) for the node's handle to read
//! without a round trip: the latest core status, the size of the log since the last
//! snapshot, fsync counters, and whether the node has stopped.

use crate::core::{CoreStatus, Role};
use crate::types::{LogIndex, NodeId, Term};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Published by the node's threads, read by [`super::RaftNode`].
#[derive(Debug)]
pub(crate) struct Shared {
    status: Mutex<CoreStatus>,
    /// Bytes of log entries persisted after the latest snapshot.
    pub(crate) log_bytes: AtomicU64,
    /// fsyncs done by the persister.
    pub(crate) syncs: AtomicU64,
    /// Entries persisted.
    pub(crate) entries_persisted: AtomicU64,
    /// Set when the node stopped (shutdown or a fatal storage error).
    stopped: AtomicBool,
    /// Why the node stopped, if it was a failure.
    pub(crate) fatal: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn new(id: NodeId) -> Shared {
        Shared {
            status: Mutex::new(CoreStatus {
                id,
                role: Role::Follower,
                term: Term::ZERO,
                leader: None,
                commit: LogIndex::ZERO,
                applied: LogIndex::ZERO,
                last_index: LogIndex::ZERO,
                persisted: LogIndex::ZERO,
                snapshot_index: LogIndex::ZERO,
                membership: Default::default(),
                membership_index: LogIndex::ZERO,
            }),
            log_bytes: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            entries_persisted: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            fatal: Mutex::new(None),
        }
    }

    pub(crate) fn status(&self) -> CoreStatus {
        self.status.lock().clone()
    }

    pub(crate) fn publish(&self, status: CoreStatus) {
        *self.status.lock() = status;
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    pub(crate) fn stop(&self, fatal: Option<String>) {
        if let Some(reason) = fatal {
            self.fatal.lock().get_or_insert(reason);
        }
        self.stopped.store(true, Ordering::Release);
    }
}
