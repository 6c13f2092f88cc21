//! The public handle of a running node: starts its driver thread, forwards calls to
//! the node's input queue, and joins the thread on shutdown.

use super::background::BackgroundThread;
use super::clock::Clock;
use super::clock::SystemClock;
use super::executor::{Executor, ExecutorIo};
use super::input::{Arrived, NodeInput, SnapshotData};
use super::shared::Shared;
use super::types::{NodeConfig, NodeError, NodeState, ReadMode, StartError};
use super::ApplyMsg;
use crate::core::{CoreStatus, Role};
use crate::message::Message;
use crate::storage::{SnapshotSource, Storage};
use crate::transport::Transport;
use crate::types::{LogIndex, NodeId, Term};
use bytes::Bytes;
use crossbeam_channel::{bounded, Sender, TrySendError};
use parking_lot::Mutex;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running Raft node. Cheap to share behind an `Arc`; every method is thread-safe.
#[derive(Debug)]
pub struct RaftNode {
    id: NodeId,
    inbox: Sender<Arrived>,
    /// The driver's clock, to stamp inputs with their arrival.
    clock: SystemClock,
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl RaftNode {
    /// Recovers the node's state from `storage` and starts its threads. Committed entries
    /// (and, first, the latest snapshot) arrive on `apply_tx`.
    ///
    /// # Errors
    /// [`StartError`] when the durable state cannot be read, the configuration is
    /// invalid, or threads cannot be spawned.
    pub fn new(
        config: NodeConfig,
        storage: Box<dyn Storage>,
        transport: Arc<dyn Transport>,
        apply_tx: Sender<ApplyMsg>,
    ) -> Result<RaftNode, StartError> {
        let id = config.raft.id;
        let shared = Arc::new(Shared::new(id));
        let (inbox_tx, inbox_rx) = bounded(config.inbox_capacity);
        let clock = SystemClock::new();
        let (background, snapshot_thread) = BackgroundThread::start(format!("raft-snap-{id}"))?;
        let io = ExecutorIo {
            inbox: inbox_rx,
            transport,
            apply_tx,
            clock: Arc::new(clock),
            shared: shared.clone(),
            background: Arc::new(background),
        };
        let executor = Executor::start(&config, storage, io)?;
        let driver_thread = std::thread::Builder::new()
            .name(format!("raft-driver-{id}"))
            .spawn(move || super::driver::run(executor, clock))?;
        Ok(RaftNode {
            id,
            inbox: inbox_tx,
            clock,
            shared,
            // The driver first: the snapshot thread ends once the executor is gone.
            threads: Mutex::new(vec![driver_thread, snapshot_thread]),
        })
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Proposes `command`; blocks until the leader accepted it (not until it commits) and
    /// returns its (index, term). Watch the apply channel for that (index, term).
    ///
    /// # Errors
    /// [`NodeError::NotLeader`] and friends.
    pub fn start(&self, command: Bytes) -> Result<(LogIndex, Term), NodeError> {
        let (tx, rx) = bounded(1);
        self.start_with(command, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or(Err(NodeError::Stopped))
    }

    /// Proposes `command`; `done` runs on the driver thread with its (index, term) — before
    /// the entry can possibly be applied — or the refusal. `done` must be quick.
    pub fn start_with(
        &self,
        command: Bytes,
        done: impl FnOnce(Result<(LogIndex, Term), NodeError>) + Send + 'static,
    ) {
        self.submit(NodeInput::Propose {
            data: command,
            done: Box::new(done),
        });
    }

    /// Proposes a configuration change (`RaftCore::propose_membership`); `done` runs on the
    /// driver thread with its (index, term), or the refusal. The change takes effect when
    /// applied: watch the apply channel for `ApplyMsg::Membership` at that (index, term).
    pub fn propose_membership_with(
        &self,
        change: crate::core::membership::MembershipChange,
        done: impl FnOnce(Result<(LogIndex, Term), NodeError>) + Send + 'static,
    ) {
        self.submit(NodeInput::ProposeMembership {
            change,
            done: Box::new(done),
        });
    }

    /// Confirms leadership (ReadIndex); `done` runs with the index the application must
    /// have applied before serving a linearizable read. `done` must be quick.
    pub fn read_index_with(&self, done: impl FnOnce(Result<LogIndex, NodeError>) + Send + 'static) {
        self.read_with(ReadMode::ReadIndex, done);
    }

    /// Like [`RaftNode::read_index_with`], confirming leadership as `mode` says.
    pub fn read_with(
        &self,
        mode: ReadMode,
        done: impl FnOnce(Result<LogIndex, NodeError>) + Send + 'static,
    ) {
        self.submit(NodeInput::Read {
            mode,
            done: Box::new(done),
        });
    }

    /// Blocking form of [`RaftNode::read_index_with`].
    ///
    /// # Errors
    /// [`NodeError::NotLeader`], [`NodeError::Timeout`], ...
    pub fn read_index(&self) -> Result<LogIndex, NodeError> {
        let (tx, rx) = bounded(1);
        self.read_index_with(move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or(Err(NodeError::Stopped))
    }

    /// The application has a snapshot of its state at `index` (an index it has applied):
    /// Raft stores it durably and drops the log it covers.
    pub fn snapshot(&self, index: LogIndex, data: Bytes) {
        self.compact(index, SnapshotData::Bytes(data));
    }

    /// As [`RaftNode::snapshot`], for a snapshot that writes itself: `source` encodes the
    /// application's state at `index` straight into the snapshot file, on the node's
    /// background thread (`raft-snap-<id>`), so no encoded copy of the state is held in
    /// memory and neither this thread nor the driver waits for it. The source may hold a
    /// view of the state (it is dropped once written, or if the snapshot is overtaken).
    pub fn snapshot_streamed(&self, index: LogIndex, source: SnapshotSource) {
        self.compact(index, SnapshotData::Streamed(source));
    }

    fn compact(&self, index: LogIndex, data: SnapshotData) {
        // Blocking send: a snapshot must not be lost to a full queue.
        let _ = self
            .inbox
            .send(self.arrived(NodeInput::Compact { index, data }));
    }

    /// Asks the leader to hand leadership to `to`.
    ///
    /// # Errors
    /// [`NodeError::NotLeader`] when this node is not the leader.
    pub fn transfer_leader(&self, to: NodeId) -> Result<(), NodeError> {
        let (tx, rx) = bounded(1);
        self.transfer_leader_with(to, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or(Err(NodeError::Stopped))
    }

    /// As [`RaftNode::transfer_leader`], answering through `done` (on the driver thread,
    /// or on the caller's when the node refuses at once). `done` must be quick.
    pub fn transfer_leader_with(
        &self,
        to: NodeId,
        done: impl FnOnce(Result<(), NodeError>) + Send + 'static,
    ) {
        self.submit(NodeInput::Transfer {
            to,
            done: Box::new(done),
        });
    }

    /// Delivers messages from peers (called by the RaftService or a test router). Dropped
    /// when the node is overloaded: Raft retransmits.
    pub fn step_batch(&self, messages: Vec<Message>) {
        match self
            .inbox
            .try_send(self.arrived(NodeInput::Messages(messages)))
        {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                tracing::debug!(node = %self.id, "inbox full; dropping peer messages");
            }
        }
    }

    /// Term, leadership and leader, without a round trip to the driver.
    pub fn state(&self) -> NodeState {
        let s = self.shared.status();
        NodeState {
            term: s.term,
            is_leader: s.role == Role::Leader,
            leader: s.leader,
        }
    }

    /// The core's latest published status.
    pub fn status(&self) -> CoreStatus {
        self.shared.status()
    }

    /// Bytes of log persisted since the latest snapshot (the "Raft state size").
    pub fn log_bytes(&self) -> u64 {
        self.shared.log_bytes.load(Ordering::Relaxed)
    }

    /// fsync-family calls the storage issued so far (0 with fsync off), and entries
    /// persisted so far.
    pub fn persist_counters(&self) -> (u64, u64) {
        (
            self.shared.syncs.load(Ordering::Relaxed),
            self.shared.entries_persisted.load(Ordering::Relaxed),
        )
    }

    /// Whether the node stopped, and why if it failed.
    pub fn stopped(&self) -> (bool, Option<String>) {
        (self.shared.is_stopped(), self.shared.fatal.lock().clone())
    }

    /// Stops the node and joins its threads. Idempotent.
    pub fn shutdown(&self) {
        let _ = self.inbox.send(self.arrived(NodeInput::Shutdown));
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            if t.join().is_err() {
                tracing::error!(node = %self.id, "a raft thread panicked");
            }
        }
        self.shared.stop(None);
    }

    fn submit(&self, input: NodeInput) {
        match self.inbox.try_send(self.arrived(input)) {
            Ok(()) => {}
            Err(TrySendError::Full(a)) => a.input.refuse(NodeError::Busy),
            Err(TrySendError::Disconnected(a)) => a.input.refuse(NodeError::Stopped),
        }
    }

    /// Stamps `input` with the time it arrives.
    fn arrived(&self, input: NodeInput) -> Arrived {
        Arrived {
            at: self.clock.now(),
            input,
        }
    }
}

impl Drop for RaftNode {
    fn drop(&mut self) {
        self.shutdown();
    }
}
