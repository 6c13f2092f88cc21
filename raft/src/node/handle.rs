//! The public handle of a running node: starts its threads, forwards calls to the
//! driver, and joins everything on shutdown.

use super::driver::{Driver, DriverInput};
use super::leader_sync::LeaderSync;
use super::persister::Persister;
use super::shared::Shared;
use super::ApplyMsg;
use crate::config::Config;
use crate::core::{CoreStatus, RaftCore, Role};
use crate::error::{ConfigError, StorageError};
use crate::message::Message;
use crate::storage::Storage;
use crate::transport::Transport;
use crate::types::{LogIndex, NodeId, Term};
use bytes::Bytes;
use crossbeam_channel::{bounded, Sender, TrySendError};
use parking_lot::Mutex;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Settings of the runtime around the core.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The core's settings (ids, timeouts in ticks, batching limits).
    pub raft: Config,
    /// Wall-clock length of one tick.
    pub tick_interval: Duration,
    /// How long a read waits for leadership confirmation before failing with `Timeout`.
    pub read_timeout: Duration,
    /// How long a leader may hold back the fsync of entries it wrote while its followers
    /// alone can commit them (see `leader_sync.rs`). Zero disables this.
    pub leader_sync_delay: Duration,
    /// Capacity of the driver's input queue. Peer messages beyond it are dropped (Raft
    /// tolerates loss); proposals beyond it fail with `Busy`.
    pub inbox_capacity: usize,
}

impl NodeConfig {
    /// Defaults for a node: 10 ms ticks, heartbeats every 50 ms, elections after 500-1000 ms.
    pub fn new(raft: Config) -> NodeConfig {
        NodeConfig {
            raft: Config {
                election_timeout_ticks: 50,
                heartbeat_interval_ticks: 5,
                ..raft
            },
            tick_interval: Duration::from_millis(10),
            read_timeout: Duration::from_secs(2),
            leader_sync_delay: Duration::from_millis(10),
            inbox_capacity: 16 * 1024,
        }
    }
}

/// How a read confirms that this node is still the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// A heartbeat round acknowledged by a majority (thesis 6.4); batched across reads.
    #[default]
    ReadIndex,
    /// The leader lease when it holds (thesis 6.4.1; `Config::lease_reads`), else
    /// ReadIndex. Saves a round trip; relies on bounded clock drift.
    Lease,
}

/// Why a node call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// This node is not the leader; `leader_hint` is the leader it knows of.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The current leader, when known.
        leader_hint: Option<NodeId>,
    },
    /// A leadership transfer is in progress.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// The command exceeds the configured maximum.
    #[error("command of {size_bytes} bytes exceeds the limit of {max_bytes}")]
    TooLarge {
        /// Its size.
        size_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// The node's input queue is full.
    #[error("node is overloaded")]
    Busy,
    /// The read was not confirmed in time.
    #[error("timed out")]
    Timeout,
    /// The node has stopped (shut down, or its storage failed).
    #[error("node stopped")]
    Stopped,
}

/// The node's view of leadership, as in 6.824's `GetState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeState {
    /// Current term.
    pub term: Term,
    /// Whether this node is the leader.
    pub is_leader: bool,
    /// The known leader.
    pub leader: Option<NodeId>,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Reading the durable state failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The configuration or the recovered state is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A thread could not be spawned.
    #[error("spawning a thread failed: {0}")]
    Spawn(#[from] std::io::Error),
}

/// A running Raft node. Cheap to share behind an `Arc`; every method is thread-safe.
#[derive(Debug)]
pub struct RaftNode {
    id: NodeId,
    inbox: Sender<DriverInput>,
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
        if config.tick_interval.is_zero() {
            return Err(ConfigError("tick_interval must be positive".into()).into());
        }
        let initial = storage.initial_state()?;
        let initial_entries = initial.entries.clone();
        let durable_hard_state = initial.hard_state;
        let core = RaftCore::new(config.raft.clone(), initial)?;
        let shared = Arc::new(Shared::new(id));
        shared.publish(core.status());
        let (inbox_tx, inbox_rx) = bounded(config.inbox_capacity);
        let persister = Persister::new(storage, shared.clone(), &initial_entries);
        let leader_sync = LeaderSync::new(config.leader_sync_delay, &durable_hard_state);
        let driver = Driver::new(
            core,
            inbox_rx,
            persister,
            leader_sync,
            transport,
            apply_tx,
            shared.clone(),
            config.tick_interval,
            config.raft.election_timeout_ticks,
            config.read_timeout,
        );
        let driver_thread = std::thread::Builder::new()
            .name(format!("raft-driver-{id}"))
            .spawn(move || driver.run())?;
        Ok(RaftNode {
            id,
            inbox: inbox_tx,
            shared,
            threads: Mutex::new(vec![driver_thread]),
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
        self.submit(
            DriverInput::Propose {
                data: command,
                done: Box::new(done),
            },
            |input| {
                if let DriverInput::Propose { done, .. } = input {
                    done(Err(NodeError::Busy));
                }
            },
        );
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
        self.submit(
            DriverInput::Read {
                mode,
                done: Box::new(done),
            },
            |input| {
                if let DriverInput::Read { done, .. } = input {
                    done(Err(NodeError::Busy));
                }
            },
        );
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
        // Blocking send: a snapshot must not be lost to a full queue.
        let _ = self.inbox.send(DriverInput::Compact { index, data });
    }

    /// Asks the leader to hand leadership to `to`.
    ///
    /// # Errors
    /// [`NodeError::NotLeader`] when this node is not the leader.
    pub fn transfer_leader(&self, to: NodeId) -> Result<(), NodeError> {
        let (tx, rx) = bounded(1);
        let done = Box::new(move |r| {
            let _ = tx.send(r);
        });
        if self.inbox.send(DriverInput::Transfer { to, done }).is_err() {
            return Err(NodeError::Stopped);
        }
        rx.recv().unwrap_or(Err(NodeError::Stopped))
    }

    /// Delivers messages from peers (called by the RaftService or a test router). Dropped
    /// when the node is overloaded: Raft retransmits.
    pub fn step_batch(&self, messages: Vec<Message>) {
        match self.inbox.try_send(DriverInput::Messages(messages)) {
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

    /// fsyncs done so far, and entries persisted so far.
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
        let _ = self.inbox.send(DriverInput::Shutdown);
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            if t.join().is_err() {
                tracing::error!(node = %self.id, "a raft thread panicked");
            }
        }
        self.shared.stop(None);
    }

    fn submit(&self, input: DriverInput, refuse: impl FnOnce(DriverInput)) {
        match self.inbox.try_send(input) {
            Ok(()) => {}
            Err(TrySendError::Full(input)) => refuse(input),
            Err(TrySendError::Disconnected(input)) => match input {
                DriverInput::Propose { done, .. } => done(Err(NodeError::Stopped)),
                DriverInput::Read { done, .. } => done(Err(NodeError::Stopped)),
                _ => {}
            },
        }
    }
}

impl Drop for RaftNode {
    fn drop(&mut self) {
        self.shutdown();
    }
}
