//! `KvServer`: the glue between the KV service, the Raft node and the state machine.
//!
//! ```text
//!  Write: service --start_with--> RaftNode --(index, term) on the driver thread--> waiter
//!         applier thread: ApplyMsg::Command(index, term) -> StateMachine::apply -> waiter at
//!         index: same term => the reply; other term => RETRY (another entry took the slot)
//!  Read:  service --read_with(mode)--> RaftNode --read index--> served once applied >= it
//! ```
//!
//! The state machine is owned by the applier thread in spirit: only it writes, under a
//! `RwLock` that readers share. Readers coming from the Raft driver thread only `try_read`,
//! so a long snapshot install never blocks Raft's heartbeats.

use crate::snapshot;
use crate::snapshot_policy::SnapshotPolicy;
use crate::state_machine::{Limits, StateMachine};
use crate::waiters::{kv_error, ReadWaiter, Waiters, WriteWaiter};
use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use parking_lot::{Mutex, RwLock};
use proto::kv::{ErrorCode, GetResponse, KvError, StatusResponse, WriteResponse};
use raft::core::Role;
use raft::node::{ApplyMsg, NodeError, RaftNode};
use raft::storage::SnapshotSource;
use raft::{LogIndex, NodeId, Term};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Settings of the KV layer on one node.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// This node.
    pub id: NodeId,
    /// Every node's client address, for leader hints.
    pub addrs: BTreeMap<NodeId, String>,
    /// Request limits.
    pub limits: Limits,
    /// Writes waiting for commit beyond this are refused with UNAVAILABLE.
    pub max_pending_writes: usize,
    /// Reads in flight beyond this are refused with UNAVAILABLE.
    pub max_pending_reads: usize,
    /// How long a write waits for its entry before answering TIMEOUT (outcome unknown).
    pub write_timeout: Duration,
    /// When to snapshot.
    pub snapshot_policy: SnapshotPolicy,
}

/// Applied commands per lock acquisition of the applier.
const MAX_APPLY_BATCH: usize = 512;
/// Writes folded back per applier round once a snapshot's view is released (a few
/// milliseconds at 2M keys; four times `MAX_APPLY_BATCH`, so folding outruns new writes).
const SETTLE_BUDGET: usize = 2048;

/// What applying one message means for the waiters.
enum Outcome {
    Applied {
        index: LogIndex,
        term: Term,
        reply: Option<WriteResponse>,
    },
    LostLeadership,
    Installed {
        index: LogIndex,
    },
}

/// The KV layer of one node. Implements the generated `KvService` (see `service.rs`).
#[derive(Debug)]
pub struct KvServer {
    pub(crate) config: ServerConfig,
    pub(crate) node: Arc<RaftNode>,
    pub(crate) sm: RwLock<StateMachine>,
    pub(crate) waiters: Waiters,
    /// The state machine's applied index, published after every apply batch (status
    /// reports read it without touching the state machine's lock).
    applied: std::sync::atomic::AtomicU64,
    /// Reads started and not yet answered (bounded by `max_pending_reads`).
    pub(crate) reads_in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Reads that found the state machine busy; the applier serves them next round.
    deferred_reads: Mutex<Vec<ReadWaiter>>,
    snapshot_requested_at: Mutex<LogIndex>,
    /// Size of the last snapshot taken or installed (0: none yet), for the trigger. Shared
    /// with the snapshot being written, which records its size once done.
    last_snapshot_bytes: Arc<AtomicU64>,
    stopping: AtomicBool,
    fatal: Mutex<Option<String>>,
    applier: Mutex<Option<JoinHandle<()>>>,
}

impl KvServer {
    /// Starts the applier thread draining `apply_rx` from `node`.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn start(
        config: ServerConfig,
        node: Arc<RaftNode>,
        apply_rx: Receiver<ApplyMsg>,
    ) -> std::io::Result<Arc<KvServer>> {
        let sm = StateMachine::new(config.limits);
        let server = Arc::new(KvServer {
            config,
            node,
            sm: RwLock::new(sm),
            waiters: Waiters::default(),
            applied: std::sync::atomic::AtomicU64::new(0),
            reads_in_flight: Arc::default(),
            deferred_reads: Mutex::new(Vec::new()),
            snapshot_requested_at: Mutex::new(LogIndex::ZERO),
            last_snapshot_bytes: Arc::new(AtomicU64::new(0)),
            stopping: AtomicBool::new(false),
            fatal: Mutex::new(None),
            applier: Mutex::new(None),
        });
        let me = server.clone();
        let handle = std::thread::Builder::new()
            .name(format!("kv-apply-{}", server.config.id))
            .spawn(move || me.run_applier(apply_rx))?;
        *server.applier.lock() = Some(handle);
        Ok(server)
    }

    /// The Raft node underneath.
    pub fn node(&self) -> &Arc<RaftNode> {
        &self.node
    }

    /// Index of the last command applied to the state machine.
    pub fn applied_index(&self) -> LogIndex {
        LogIndex(self.applied.load(Ordering::Acquire))
    }

    /// Set when the server hit an unrecoverable error (e.g. a snapshot it cannot decode).
    pub fn fatal_error(&self) -> Option<String> {
        self.fatal.lock().clone()
    }

    /// Stops the applier (the Raft node is shut down separately) and fails what waits.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        if let Some(h) = self.applier.lock().take() {
            let _ = h.join();
        }
        for w in self.waiters.take_all_writes() {
            w.reply.ok(write_error(
                ErrorCode::Timeout,
                "server shutting down; outcome unknown",
            ));
        }
        for r in self
            .waiters
            .take_all_reads()
            .into_iter()
            .chain(self.deferred_reads.lock().drain(..))
        {
            r.reply.ok(get_error(kv_error(
                ErrorCode::Unavailable,
                "server shutting down",
            )));
        }
    }

    fn run_applier(self: Arc<Self>, apply_rx: Receiver<ApplyMsg>) {
        let mut batch = Vec::with_capacity(MAX_APPLY_BATCH);
        // Writes made while the last captured view was encoded are still to be folded in.
        let mut unsettled = false;
        while !self.stopping.load(Ordering::Acquire) {
            match apply_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(msg) => batch.push(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while batch.len() < MAX_APPLY_BATCH {
                match apply_rx.try_recv() {
                    Ok(msg) => batch.push(msg),
                    Err(_) => break,
                }
            }
            // Every reply of this round leaves with one write per connection.
            let replies = rpc_framework::ReplyBatch::begin();
            if !batch.is_empty() {
                let outcomes = self.apply_batch(&mut batch);
                if self.fatal.lock().is_some() {
                    break;
                }
                self.answer_writes(outcomes);
            }
            self.serve_ready_reads();
            drop(replies);
            self.expire_writes();
            if unsettled {
                unsettled = !self.sm.write().settle(SETTLE_BUDGET);
            }
            unsettled |= self.maybe_snapshot();
        }
    }

    /// Applies a batch under one write lock; returns what the waiters need to hear.
    fn apply_batch(&self, batch: &mut Vec<ApplyMsg>) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut sm = self.sm.write();
        for msg in batch.drain(..) {
            match msg {
                ApplyMsg::Command { index, term, data } => match sm.apply_entry(index, &data) {
                    Ok(reply) => outcomes.push(Outcome::Applied { index, term, reply }),
                    Err(e) => {
                        let reason = format!("cannot apply the log entry at index {index}: {e}");
                        tracing::error!(node = %self.config.id, %reason);
                        *self.fatal.lock() = Some(reason);
                        return outcomes;
                    }
                },
                // Raft has taken the configuration change into effect; for the state
                // machine it only advances the applied index.
                ApplyMsg::Noop { index, term } | ApplyMsg::Membership { index, term, .. } => {
                    sm.apply_noop(index);
                    outcomes.push(Outcome::Applied {
                        index,
                        term,
                        reply: None,
                    });
                }
                ApplyMsg::Snapshot { index, data, .. } => {
                    // Decoded from the storage's file as it is read, with the lock
                    // released (seconds for a large data set). The old state goes first:
                    // it is replaced whatever happens (a snapshot that does not decode
                    // stops the server), and keeping both would double the memory of a
                    // large install. Meanwhile the state is empty, and every read waits
                    // for the install (`hold_reads`; served once applied reaches its
                    // index, from the new state).
                    let len = data.len();
                    let limits = self.config.limits;
                    self.waiters.hold_reads();
                    let old = std::mem::replace(&mut *sm, StateMachine::new(limits));
                    let decoded = parking_lot::RwLockWriteGuard::unlocked(&mut sm, || {
                        drop(old);
                        snapshot::decode_from(data, len, limits)
                    });
                    match decoded {
                        Ok(restored) => {
                            *sm = restored;
                            self.last_snapshot_bytes.store(len, Ordering::Relaxed);
                            outcomes.push(Outcome::Installed { index });
                        }
                        Err(e) => {
                            let reason =
                                format!("cannot decode the snapshot at index {index}: {e}");
                            tracing::error!(node = %self.config.id, %reason);
                            *self.fatal.lock() = Some(reason);
                            return outcomes;
                        }
                    }
                }
                ApplyMsg::RoleChange { is_leader, .. } => {
                    if !is_leader {
                        outcomes.push(Outcome::LostLeadership);
                    }
                }
            }
        }
        outcomes
    }

    fn answer_writes(&self, outcomes: Vec<Outcome>) {
        for outcome in outcomes {
            match outcome {
                Outcome::Applied { index, term, reply } => {
                    let Some(waiter) = self.waiters.take_write(index) else {
                        continue;
                    };
                    match reply {
                        Some(reply) if waiter.term == term => waiter.reply.ok(reply),
                        _ => waiter.reply.ok(write_error(
                            ErrorCode::Retry,
                            "another entry was committed at this write's log index; it was not applied",
                        )),
                    }
                }
                Outcome::LostLeadership => {
                    for w in self.waiters.take_all_writes() {
                        w.reply.ok(write_error(
                            ErrorCode::LeadershipLost,
                            "leadership changed while the write was in flight; outcome unknown",
                        ));
                    }
                }
                Outcome::Installed { index } => {
                    for w in self.waiters.take_all_writes() {
                        w.reply.ok(write_error(
                            ErrorCode::LeadershipLost,
                            format!(
                                "a snapshot at index {index} replaced the state; outcome unknown"
                            ),
                        ));
                    }
                }
            }
        }
    }

    /// Serves reads whose index is now applied, and reads deferred by lock contention.
    fn serve_ready_reads(&self) {
        let applied = self.sm.read().applied_index();
        self.applied.store(applied.0, Ordering::Release);
        let mut ready = self.waiters.advance_applied(applied);
        ready.append(&mut self.deferred_reads.lock());
        if ready.is_empty() {
            return;
        }
        let sm = self.sm.read();
        for r in ready {
            r.reply.ok(found(sm.get(&r.key)));
        }
    }

    fn expire_writes(&self) {
        for w in self.waiters.take_expired_writes(Instant::now()) {
            w.reply.ok(write_error(
                ErrorCode::Timeout,
                "the write did not commit in time; outcome unknown",
            ));
        }
    }

    /// Snapshots the state machine once the Raft log has grown enough (`SnapshotPolicy`):
    /// captures a view (O(1), under the write lock for that long) and hands Raft a source
    /// that encodes it straight into the snapshot file on the node's background thread
    /// (`RaftNode::snapshot_streamed`): no encoded copy in memory, and neither this thread
    /// nor the driver waits for it. The view lives until it is written; no new one is
    /// taken before then and before its writes are folded back. Returns whether it captured.
    fn maybe_snapshot(&self) -> bool {
        let last_snapshot_bytes = self.last_snapshot_bytes.load(Ordering::Relaxed);
        if !self
            .config
            .snapshot_policy
            .due(self.node.log_bytes(), last_snapshot_bytes)
        {
            return false;
        }
        let mut requested = self.snapshot_requested_at.lock();
        // Wait for the previous snapshot to be taken up by Raft before asking again.
        if *requested > self.node.status().snapshot_index {
            return false;
        }
        if self.sm.read().applied_index() <= *requested {
            return false;
        }
        let Some(view) = self.sm.write().capture() else {
            return false; // the previous view is being written, or its writes folded in
        };
        let index = view.applied_index();
        let (node, size) = (self.config.id, self.last_snapshot_bytes.clone());
        let source = SnapshotSource::new(move |out| {
            let started = Instant::now();
            let bytes = snapshot::write_view(&view, out)?;
            drop(view);
            tracing::info!(%node, %index, bytes,
                encode_ms = started.elapsed().as_millis() as u64, "state machine snapshot written");
            size.store(bytes, Ordering::Relaxed);
            Ok(())
        });
        tracing::info!(node = %self.config.id, %index, "snapshotting the state machine");
        self.node.snapshot_streamed(index, source);
        *requested = index;
        true
    }

    /// Serves a read whose read index is confirmed, now or once applied (called on the
    /// Raft driver thread: never blocks on the state machine lock).
    pub(crate) fn serve_read_at(&self, index: LogIndex, key: Bytes, reply: proto_reply::GetReply) {
        let Some(waiter) = self.waiters.add_read(index, ReadWaiter { key, reply }) else {
            return;
        };
        match self.sm.try_read() {
            Some(sm) => waiter.reply.ok(found(sm.get(&waiter.key))),
            None => self.deferred_reads.lock().push(waiter),
        }
    }

    /// A NOT_LEADER error with the best leader hint we have.
    pub(crate) fn not_leader(&self, hint: Option<NodeId>) -> Option<KvError> {
        let hint = hint
            .or(self.node.state().leader)
            .filter(|l| *l != self.config.id);
        let addr = hint
            .and_then(|id| self.config.addrs.get(&id).cloned())
            .unwrap_or_default();
        Some(KvError {
            code: ErrorCode::NotLeader as i32,
            message: format!("node {} is not the leader", self.config.id),
            leader_id: hint.map_or(0, |h| h.0),
            leader_addr: addr,
        })
    }

    /// Maps a refused proposal or read to a KV error.
    pub(crate) fn node_error(&self, e: NodeError) -> Option<KvError> {
        match e {
            NodeError::NotLeader { leader_hint } => self.not_leader(leader_hint),
            NodeError::TransferInProgress => kv_error(
                ErrorCode::NotLeader,
                "leadership transfer in progress; retry",
            ),
            NodeError::TooLarge {
                size_bytes,
                max_bytes,
            } => kv_error(
                ErrorCode::InvalidArgument,
                format!("request of {size_bytes} bytes exceeds {max_bytes}"),
            ),
            // A configuration change refused (pending, stale, unsafe, removing the leader).
            NodeError::MembershipRefused(reason) => kv_error(ErrorCode::InvalidArgument, reason),
            NodeError::Busy => kv_error(ErrorCode::Unavailable, "server overloaded; retry"),
            NodeError::Timeout => kv_error(ErrorCode::Timeout, "leadership not confirmed in time"),
            NodeError::Stopped => kv_error(ErrorCode::Unavailable, "server stopped"),
        }
    }

    /// Registers a write accepted by Raft at (index, term).
    pub(crate) fn wait_for_write(
        &self,
        index: LogIndex,
        term: Term,
        reply: proto_reply::WriteReply,
    ) {
        let deadline = Instant::now() + self.config.write_timeout;
        if let Some(old) = self.waiters.add_write(
            index,
            WriteWaiter {
                term,
                reply,
                deadline,
            },
        ) {
            // This node lost leadership and regained it since `old` was proposed; its
            // entry left this log but may live on in others' and still commit there, so
            // its outcome is unknown (RETRY would tell the clerk it was not applied).
            old.reply.ok(write_error(
                ErrorCode::LeadershipLost,
                "leadership changed while the write was in flight; outcome unknown",
            ));
        }
    }

    /// This node's status.
    pub(crate) fn status(&self) -> StatusResponse {
        let s = self.node.status();
        let role = match s.role {
            Role::Leader => "leader",
            Role::Candidate | Role::PreCandidate => "candidate",
            Role::Follower => "follower",
        };
        let (persist_syncs, persisted_entries) = self.node.persist_counters();
        StatusResponse {
            id: s.id.0,
            role: role.into(),
            term: s.term.0,
            commit: s.commit.0,
            applied: self.applied.load(Ordering::Acquire),
            leader_id: s.leader.map_or(0, |l| l.0),
            addr: self.config.addrs.get(&s.id).cloned().unwrap_or_default(),
            last_log_index: s.last_index.0,
            snapshot_index: s.snapshot_index.0,
            persist_syncs,
            persisted_entries,
            voters: s.membership.voters.iter().map(|id| id.0).collect(),
            voters_outgoing: s.membership.voters_outgoing.iter().map(|id| id.0).collect(),
            learners: s.membership.learners.iter().map(|id| id.0).collect(),
            config_index: s.membership_index.0,
        }
    }
}

/// Reply types, named for readability.
pub(crate) mod proto_reply {
    /// The reply handle of a Get.
    pub(crate) type GetReply = crate::waiters::ReadReply;
    /// The reply handle of a Write.
    pub(crate) type WriteReply = rpc_framework::Reply<proto::kv::WriteResponse>;
}

pub(crate) fn write_error(code: ErrorCode, message: impl Into<String>) -> WriteResponse {
    WriteResponse {
        error: kv_error(code, message),
        swapped: false,
        client_id: 0,
    }
}

pub(crate) fn get_error(error: Option<KvError>) -> GetResponse {
    GetResponse {
        error,
        found: false,
        value: Bytes::new(),
    }
}

fn found(value: Option<Bytes>) -> GetResponse {
    match value {
        Some(value) => GetResponse {
            error: None,
            found: true,
            value,
        },
        None => GetResponse {
            error: None,
            found: false,
            value: Bytes::new(),
        },
    }
}
