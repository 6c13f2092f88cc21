//! The driver thread: the sole owner of the [`RaftCore`]. It turns inputs (messages,
//! proposals, reads, ticks) into core calls, and each resulting [`crate::core::Ready`]
//! into work for the transport, the persister (on this thread: see `persister.rs`) and
//! the application.

use super::handle::{NodeError, ReadMode};
use super::leader_sync::{LeaderSync, ReadyFacts};
use super::persister::{PersistWork, Persister};
use super::shared::Shared;
use super::tick_clock::TickClock;
use super::ApplyMsg;
use crate::core::{RaftCore, Ready, Role};
use crate::error::ProposeError;
use crate::message::Message;
use crate::transport::Transport;
use crate::types::{EntryKind, LogIndex, NodeId, Term};
use bytes::Bytes;
use crossbeam_channel::{Receiver, Select, Sender};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Called on the driver thread once a proposal is accepted (with its index and term)
/// or refused. It must be quick: the driver waits for it.
pub(crate) type ProposeDone = Box<dyn FnOnce(Result<(LogIndex, Term), NodeError>) + Send>;
/// Called on the driver thread with the read index once leadership is confirmed.
pub(crate) type ReadDone = Box<dyn FnOnce(Result<LogIndex, NodeError>) + Send>;
/// Called on the driver thread when a leadership transfer starts (or is refused).
pub(crate) type TransferDone = Box<dyn FnOnce(Result<(), NodeError>) + Send>;

/// Everything the driver reacts to, besides ticks.
pub(crate) enum DriverInput {
    /// Messages from peers.
    Messages(Vec<Message>),
    /// A command to replicate.
    Propose { data: Bytes, done: ProposeDone },
    /// A linearizable read.
    Read { mode: ReadMode, done: ReadDone },
    /// The application snapshotted its state at `index`.
    Compact { index: LogIndex, data: Bytes },
    /// Hand leadership to `to`.
    Transfer { to: NodeId, done: TransferDone },
    /// Stop the node.
    Shutdown,
}

/// Inputs handled per wake-up before the driver produces a Ready; bounds latency.
const MAX_INPUTS_PER_ROUND: usize = 256;
/// Readies processed per wake-up (a Ready's persistence can make another one: the leader
/// counting itself, a follower applying what it just stored).
const MAX_READIES_PER_ROUND: usize = 4;

/// A read waiting for its ReadState.
struct PendingRead {
    done: ReadDone,
    deadline: Instant,
}

pub(crate) struct Driver {
    pub(crate) core: RaftCore,
    pub(crate) inbox: Receiver<DriverInput>,
    persister: Persister,
    leader_sync: LeaderSync,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) apply_tx: Sender<ApplyMsg>,
    pub(crate) shared: Arc<Shared>,
    ticks: TickClock,
    pub(crate) read_timeout: Duration,
    apply_backlog: VecDeque<ApplyMsg>,
    pending_reads: BTreeMap<u64, PendingRead>,
    next_read_ctx: u64,
    last_role: (Term, Role, Option<NodeId>),
    running: bool,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        core: RaftCore,
        inbox: Receiver<DriverInput>,
        persister: Persister,
        leader_sync: LeaderSync,
        transport: Arc<dyn Transport>,
        apply_tx: Sender<ApplyMsg>,
        shared: Arc<Shared>,
        tick_interval: Duration,
        max_tick_burst: u32,
        read_timeout: Duration,
    ) -> Driver {
        let status = core.status();
        Driver {
            core,
            inbox,
            persister,
            leader_sync,
            transport,
            apply_tx,
            shared,
            ticks: TickClock::new(tick_interval, max_tick_burst, Instant::now()),
            read_timeout,
            apply_backlog: VecDeque::new(),
            pending_reads: BTreeMap::new(),
            next_read_ctx: 1,
            last_role: (status.term, status.role, status.leader),
            running: true,
        }
    }

    /// The thread body: runs until shutdown or a fatal error.
    pub(crate) fn run(mut self) {
        self.process_ready();
        while self.running {
            self.wait_for_input();
            self.drain_inbox();
            // After the inbox: a peer's queued answers count before a late tick's
            // CheckQuorum looks for them.
            self.catch_up_ticks();
            self.process_ready();
            self.maybe_sync_deferred();
            self.process_ready();
            self.flush_apply_backlog();
            self.expire_reads();
            self.shared.publish(self.core.status());
        }
        self.fail_all_reads(NodeError::Stopped);
        self.transport.shutdown();
    }

    /// Delivers the ticks due by the wall clock (see `tick_clock.rs`).
    fn catch_up_ticks(&mut self) {
        for _ in 0..self.ticks.take_due(Instant::now()) {
            self.core.tick();
        }
    }

    /// Blocks until there is an input, a tick is due, or there is room for the next
    /// applied entry.
    fn wait_for_input(&mut self) {
        let mut select = Select::new();
        let inbox_op = select.recv(&self.inbox);
        let apply_op = if self.apply_backlog.is_empty() {
            None
        } else {
            Some(select.send(&self.apply_tx))
        };
        let Ok(op) = select.select_deadline(self.ticks.next_at()) else {
            return; // a tick is due: the caller delivers it
        };
        match op.index() {
            i if i == inbox_op => match op.recv(&self.inbox) {
                Ok(input) => self.handle(input),
                Err(_) => self.running = false,
            },
            i if Some(i) == apply_op => {
                if let Some(msg) = self.apply_backlog.pop_front() {
                    if op.send(&self.apply_tx, msg).is_err() {
                        // The application is gone; nothing more to apply.
                        self.apply_backlog.clear();
                    }
                }
            }
            _ => unreachable!("select returned an operation that was not registered"),
        }
    }

    fn drain_inbox(&mut self) {
        for _ in 0..MAX_INPUTS_PER_ROUND {
            match self.inbox.try_recv() {
                Ok(input) => self.handle(input),
                Err(_) => break,
            }
        }
    }

    fn handle(&mut self, input: DriverInput) {
        match input {
            DriverInput::Messages(messages) => {
                for msg in messages {
                    self.core.step(msg);
                }
            }
            DriverInput::Propose { data, done } => {
                let result = self.core.propose(data).map_err(NodeError::from);
                done(result);
            }
            DriverInput::Read { mode, done } => self.start_read(mode, done),
            DriverInput::Compact { index, data } => self.compact(index, data),
            DriverInput::Transfer { to, done } => {
                done(self.core.transfer_leader(to).map_err(NodeError::from));
            }
            DriverInput::Shutdown => self.running = false,
        }
    }

    fn start_read(&mut self, mode: ReadMode, done: ReadDone) {
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        let started = match mode {
            ReadMode::ReadIndex => self.core.read_index(ctx),
            ReadMode::Lease => {
                // The lease is counted in ticks: deliver any the driver fell behind on.
                self.catch_up_ticks();
                self.core.read_lease(ctx)
            }
        };
        match started {
            Ok(()) => {
                let deadline = Instant::now() + self.read_timeout;
                self.pending_reads
                    .insert(ctx, PendingRead { done, deadline });
            }
            Err(e) => done(Err(NodeError::from(e))),
        }
    }

    fn compact(&mut self, index: LogIndex, data: Bytes) {
        let before = self.core.status().snapshot_index;
        self.core.compact(index, data.clone());
        let meta = self.core.snapshot_meta();
        if meta.index > before && meta.index == index {
            let snapshot = crate::types::Snapshot { meta, data };
            if let Err(e) = self.persister.save_snapshot(&snapshot) {
                self.fail_storage(&e);
            }
        }
    }

    /// Takes the core's Ready and hands its parts out, in the order the contract requires.
    fn process_ready(&mut self) {
        for _ in 0..MAX_READIES_PER_ROUND {
            if !self.running || !self.core.has_ready() {
                break;
            }
            let rd = self.core.ready();
            self.dispatch(rd);
        }
        self.note_role_change();
    }

    fn dispatch(&mut self, rd: Ready) {
        let Ready {
            number,
            hard_state,
            snapshot,
            entries,
            must_sync,
            messages,
            messages_after_persist,
            apply_snapshot,
            committed,
            read_states,
            dropped_reads,
        } = rd;
        if !messages.is_empty() {
            self.transport.send(messages);
        }
        let defer = must_sync
            && self.leader_sync.may_defer(ReadyFacts {
                followers_can_commit: self.core.followers_can_commit(),
                hard_state: hard_state.as_ref(),
                has_snapshot: snapshot.is_some(),
                has_after_persist: !messages_after_persist.is_empty(),
            });
        let work = PersistWork {
            hard_state,
            snapshot: snapshot.as_ref(),
            entries: &entries,
            must_sync: must_sync && !defer,
        };
        if let Err(e) = self.persister.persist(work) {
            // Nothing after this point may be sent: it would claim state that is not durable.
            self.fail_storage(&e);
            return;
        }
        if defer {
            self.leader_sync.deferred(number, Instant::now());
        } else {
            if must_sync {
                // This fsync also covered every earlier deferred write.
                self.leader_sync.synced(hard_state.as_ref());
            }
            if !messages_after_persist.is_empty() {
                self.transport.send(messages_after_persist);
            }
            self.core.on_persist_ready(number);
        }
        if let Some(snap) = apply_snapshot {
            self.apply_backlog.push_back(ApplyMsg::Snapshot {
                index: snap.meta.index,
                term: snap.meta.term,
                data: snap.data,
            });
        }
        for entry in committed {
            self.apply_backlog.push_back(match entry.kind {
                EntryKind::Normal => ApplyMsg::Command {
                    index: entry.index,
                    term: entry.term,
                    data: entry.data,
                },
                EntryKind::Noop => ApplyMsg::Noop {
                    index: entry.index,
                    term: entry.term,
                },
            });
        }
        // Reads answered here (by the application's callbacks) leave one write per
        // connection, not one per read.
        let _replies = rpc_framework::ReplyBatch::begin();
        for rs in read_states {
            if let Some(read) = self.pending_reads.remove(&rs.ctx) {
                (read.done)(Ok(rs.index));
            }
        }
        for ctx in dropped_reads {
            if let Some(read) = self.pending_reads.remove(&ctx) {
                (read.done)(Err(NodeError::NotLeader {
                    leader_hint: self.core.status().leader,
                }));
            }
        }
    }

    /// Fsyncs the leader's deferred writes when they are due (see `leader_sync.rs`), and
    /// tells the core they are durable.
    fn maybe_sync_deferred(&mut self) {
        let due = self.leader_sync.due(
            self.inbox.is_empty(),
            self.core.followers_can_commit(),
            Instant::now(),
        );
        if !due {
            return;
        }
        if let Err(e) = self.persister.sync() {
            return self.fail_storage(&e);
        }
        if let Some(number) = self.leader_sync.synced(None) {
            self.core.on_persist_ready(number);
        }
    }

    /// A storage error is fatal: the node cannot know what is durable, so it stops.
    fn fail_storage(&mut self, e: &crate::error::StorageError) {
        let reason = format!("storage failed: {e}");
        tracing::error!(node = %self.core.status().id, %reason, "stopping");
        self.shared.stop(Some(reason));
        self.running = false;
    }

    /// Tells the application (in order with the entries) when leadership changes, and
    /// fails reads a deposed leader can no longer serve.
    fn note_role_change(&mut self) {
        let status = self.core.status();
        let now = (status.term, status.role, status.leader);
        if now == self.last_role {
            return;
        }
        let was_leader = self.last_role.1 == Role::Leader;
        self.last_role = now;
        let is_leader = status.role == Role::Leader;
        tracing::info!(node = %status.id, term = %status.term, role = ?status.role, leader = ?status.leader, "role change");
        if was_leader && !is_leader {
            self.fail_all_reads(NodeError::NotLeader {
                leader_hint: status.leader,
            });
        }
        self.apply_backlog.push_back(ApplyMsg::RoleChange {
            term: status.term,
            is_leader,
            leader: status.leader,
        });
    }

    fn flush_apply_backlog(&mut self) {
        while let Some(msg) = self.apply_backlog.pop_front() {
            match self.apply_tx.try_send(msg) {
                Ok(()) => {}
                Err(crossbeam_channel::TrySendError::Full(msg)) => {
                    self.apply_backlog.push_front(msg);
                    break;
                }
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                    self.apply_backlog.clear();
                    break;
                }
            }
        }
    }

    fn expire_reads(&mut self) {
        if self.pending_reads.is_empty() {
            return;
        }
        let now = Instant::now();
        let expired: Vec<u64> = self
            .pending_reads
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(ctx, _)| *ctx)
            .collect();
        for ctx in expired {
            if let Some(read) = self.pending_reads.remove(&ctx) {
                (read.done)(Err(NodeError::Timeout));
            }
        }
    }

    fn fail_all_reads(&mut self, error: NodeError) {
        for (_, read) in std::mem::take(&mut self.pending_reads) {
            (read.done)(Err(error.clone()));
        }
    }
}

impl From<ProposeError> for NodeError {
    fn from(e: ProposeError) -> NodeError {
        match e {
            ProposeError::NotLeader { leader_hint } => NodeError::NotLeader { leader_hint },
            ProposeError::TransferInProgress => NodeError::TransferInProgress,
            ProposeError::TooLarge {
                size_bytes,
                max_bytes,
            } => NodeError::TooLarge {
                size_bytes,
                max_bytes,
            },
        }
    }
}
