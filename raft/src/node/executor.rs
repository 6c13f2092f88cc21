//! The executor of the Ready contract (crate docs, "The Ready contract"): the one piece of
//! code that turns a node's inputs into core calls and each [`Ready`] into sends, writes,
//! fsyncs, persistence reports, applies and read answers.
//!
//! Two things run it, so that what the simulator tests is what ships:
//! - the driver thread (`driver.rs`) on the system clock, a real disk and rpc-framework
//!   channels: it waits for input and calls [`Executor::run_round`];
//! - the simulator (`sim/host.rs`) on virtual time, `DiskStorage` over the crashable
//!   `SimFs` and a simulated network: it decides when a round runs (after a stall, an
//!   fsync's latency, a message's arrival) and calls the same methods.
//!
//! Time, the network, the disk and the application reach it only through seams: a
//! [`Clock`], a [`Transport`], a [`Storage`], and the bounded apply channel. The policies
//! live here and nowhere else: the order of a round (inputs, then overdue ticks, then
//! Readies), group commit (one fsync per Ready, everything that arrived meanwhile in the
//! next one), the leader's deferred fsync (`leader_sync.rs`), holding Readies until they
//! are durable (`durability_queue.rs`), the apply backlog (`apply_queue.rs`), tick
//! catch-up after a stall (`tick_clock.rs`) and read deadlines (`pending_reads.rs`).
//!
//! The executor owns the core: no locks around Raft state. A storage error is fatal: the
//! node cannot know what is durable, so it stops (and must restart from its disk).

use super::apply_queue::ApplyQueue;
use super::background::Background;
use super::clock::Clock;
use super::durability_queue::DurabilityQueue;
use super::input::{Arrived, NodeInput, ReadDone, SnapshotData};
use super::leader_sync::{LeaderSync, ReadyFacts};
use super::pending_reads::PendingReads;
use super::persister::Persister;
use super::shared::Shared;
use super::snapshot_writes::{SnapshotWrites, SnapshotWritten};
use super::tick_clock::TickClock;
use super::types::{NodeConfig, NodeError, ReadMode, StartError};
use super::ApplyMsg;
use crate::core::{chunk_end, RaftCore, Ready, Role};
use crate::error::{ConfigError, StorageError};
use crate::message::{Message, MessageBody};
use crate::storage::Storage;
use crate::transport::Transport;
use crate::types::{Entry, LogIndex, NodeId, Snapshot, Term};
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Inputs handled per round before the executor produces a Ready; bounds latency.
const MAX_INPUTS_PER_ROUND: usize = 256;
/// Readies processed per pass (a Ready's persistence can make another one: the leader
/// counting itself, a follower applying what it just stored).
const MAX_READIES_PER_PASS: usize = 4;

/// The seams an executor runs on.
pub(crate) struct ExecutorIo {
    /// The node's input queue (peer messages, proposals, reads, ...), each input stamped
    /// with the node's clock when it arrived.
    pub(crate) inbox: Receiver<Arrived>,
    /// Where messages to peers go.
    pub(crate) transport: Arc<dyn Transport>,
    /// The apply channel to the application.
    pub(crate) apply_tx: Sender<ApplyMsg>,
    /// The node's clock.
    pub(crate) clock: Arc<dyn Clock>,
    /// Status and counters published for the node's handle.
    pub(crate) shared: Arc<Shared>,
    /// Where snapshot files are written (off the executor's thread).
    pub(crate) background: Arc<dyn Background>,
}

/// The executor of one node. See the module docs.
pub(crate) struct Executor {
    core: RaftCore,
    inbox: Receiver<Arrived>,
    persister: Persister,
    durability: DurabilityQueue,
    leader_sync: LeaderSync,
    transport: Arc<dyn Transport>,
    apply: ApplyQueue,
    clock: Arc<dyn Clock>,
    ticks: TickClock,
    reads: PendingReads,
    read_timeout: Duration,
    /// The core's InstallSnapshot chunk size (`chunk_end`), to fill its chunks.
    snapshot_chunk_bytes: u64,
    shared: Arc<Shared>,
    snapshots: SnapshotWrites,
    last_role: (Term, Role, Option<NodeId>),
    running: bool,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("status", &self.core.status())
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// Recovers the node's state from `storage` and builds its core.
    ///
    /// # Errors
    /// [`StartError`] when the durable state cannot be read or the configuration (or
    /// the recovered state) is invalid.
    pub(crate) fn start(
        config: &NodeConfig,
        storage: Box<dyn Storage>,
        io: ExecutorIo,
    ) -> Result<Executor, StartError> {
        if config.tick_interval.is_zero() {
            return Err(ConfigError("tick_interval must be positive".into()).into());
        }
        let initial = storage.initial_state()?;
        let persister = Persister::new(storage, io.shared.clone(), &initial);
        let core = RaftCore::new(config.raft.clone(), initial)?;
        let status = core.status();
        io.shared.publish(status.clone());
        let now = io.clock.now();
        Ok(Executor {
            core,
            inbox: io.inbox,
            persister,
            durability: DurabilityQueue::default(),
            leader_sync: LeaderSync::new(config.leader_sync_delay),
            transport: io.transport,
            apply: ApplyQueue::new(io.apply_tx),
            ticks: TickClock::new(
                config.tick_interval,
                config.raft.election_timeout_ticks,
                now,
            ),
            clock: io.clock,
            reads: PendingReads::default(),
            read_timeout: config.read_timeout,
            snapshot_chunk_bytes: config.raft.snapshot_chunk_bytes as u64,
            shared: io.shared,
            snapshots: SnapshotWrites::new(io.background),
            last_role: (status.term, status.role, status.leader),
            running: true,
        })
    }

    /// The core (the simulator reads its status).
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn core(&self) -> &RaftCore {
        &self.core
    }

    /// Whether the node still runs (not shut down, storage not failed).
    /// Why the executor stopped on its own, if it did (a storage failure).
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn failure(&self) -> Option<String> {
        self.shared.fatal.lock().clone()
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running
    }

    /// The input queue, to wait on.
    pub(crate) fn inbox(&self) -> &Receiver<Arrived> {
        &self.inbox
    }

    /// Where finished snapshot file writes come back, to wait on.
    pub(crate) fn snapshot_writes_done(&self) -> &Receiver<SnapshotWritten> {
        self.snapshots.done_channel()
    }

    /// The apply channel while committed entries wait for room in it, to wait on.
    pub(crate) fn apply_waiting_for_room(&self) -> Option<&Sender<ApplyMsg>> {
        self.apply.waiting_for_room()
    }

    /// When the executor must run next by itself (clock time): the next tick, or earlier
    /// when deferred writes fall due.
    pub(crate) fn next_deadline(&self) -> Duration {
        let tick = self.ticks.next_at();
        self.leader_sync.deadline().map_or(tick, |at| at.min(tick))
    }

    /// One round, everything a node does when it wakes up: hand the core the queued
    /// inputs and the ticks that fell due, in the order they happened, then process
    /// Readies, sync deferred writes that fell due, feed the application and time reads
    /// out.
    ///
    /// The order matters after a stall: a follower that steps a heartbeat which arrived
    /// at the end of a stall and only then counts the stalled time would believe it has
    /// not heard from its leader for an election timeout, and could grant a vote inside
    /// the lease its acknowledgement just gave the leader. Ticks that fell due before an
    /// input arrived go first; so a leader's CheckQuorum also sees the acknowledgements
    /// that arrived before it, and no later ones.
    pub(crate) fn run_round(&mut self) {
        self.ticks.begin_round(self.clock.now());
        self.drain_inbox();
        self.adopt_written_snapshot();
        self.catch_up_ticks();
        self.process_ready();
        self.maybe_sync_deferred();
        self.process_ready();
        self.apply.flush();
        self.reads.expire(self.clock.now());
        self.shared.publish(self.core.status());
    }

    /// Handles up to a round's worth of queued inputs, each after the ticks that fell due
    /// before it arrived (the first part of a round; the simulator also calls it alone, as
    /// a driver that was waiting takes an input at once).
    pub(crate) fn drain_inbox(&mut self) {
        for _ in 0..MAX_INPUTS_PER_ROUND {
            if !self.running {
                return;
            }
            let Ok(arrived) = self.inbox.try_recv() else {
                return;
            };
            self.deliver_ticks(arrived.at);
            self.handle(arrived.input);
        }
    }

    /// The node stops: writes a leader deferred are synced (unless the storage failed),
    /// pending reads fail, the transport shuts down, queued inputs are refused. Call once,
    /// when the executor will not run again.
    pub(crate) fn stop(&mut self) {
        if !self.shared.is_stopped() && self.durability.awaiting_sync() {
            self.sync();
        }
        self.running = false;
        self.reads.fail_all(&NodeError::Stopped);
        while let Ok(arrived) = self.inbox.try_recv() {
            arrived.input.refuse(NodeError::Stopped);
        }
        self.transport.shutdown();
    }

    fn handle(&mut self, input: NodeInput) {
        match input {
            NodeInput::Messages(messages) => {
                for msg in messages {
                    self.core.step(msg);
                }
            }
            NodeInput::Propose { data, done } => {
                done(self.core.propose(data).map_err(NodeError::from));
            }
            NodeInput::ProposeMembership { change, done } => {
                done(
                    self.core
                        .propose_membership(change)
                        .map_err(NodeError::from),
                );
            }
            NodeInput::Read { mode, done } => self.start_read(mode, done),
            NodeInput::Compact { index, data } => self.compact(index, data),
            NodeInput::Transfer { to, done } => {
                done(self.core.transfer_leader(to).map_err(NodeError::from));
            }
            NodeInput::Shutdown => self.running = false,
        }
    }

    /// Delivers the ticks due by the clock now (see `tick_clock.rs`).
    fn catch_up_ticks(&mut self) {
        self.deliver_ticks(self.clock.now());
    }

    /// Delivers the ticks that fell due by `at` (clock time).
    fn deliver_ticks(&mut self, at: Duration) {
        for _ in 0..self.ticks.take_due(at) {
            self.core.tick();
        }
    }

    fn start_read(&mut self, mode: ReadMode, done: ReadDone) {
        let ctx = self.reads.next_ctx();
        let started = match mode {
            ReadMode::ReadIndex => self.core.read_index(ctx),
            ReadMode::Lease => {
                // The lease is counted in ticks: deliver any the executor fell behind on.
                self.catch_up_ticks();
                self.core.read_lease(ctx)
            }
        };
        match started {
            Ok(()) => {
                let deadline = self.clock.now() + self.read_timeout;
                self.reads.started(ctx, done, deadline);
            }
            Err(e) => done(Err(NodeError::from(e))),
        }
    }

    /// The application snapshotted its state at `index`: its file is written in the
    /// background when the storage allows (`snapshot_writes.rs`), else here. A streamed
    /// snapshot writes itself into the file; a storage without files gets its bytes.
    fn compact(&mut self, index: LogIndex, data: SnapshotData) {
        if self.snapshots.is_writing() {
            return self.snapshots.wait(index, data);
        }
        let Some(meta) = self.core.compaction_meta(index) else {
            return;
        };
        // The configuration in effect at `index` goes into the snapshot: the entries that
        // made it are compacted away.
        let conf = self.core.conf_at(index);
        let data = match data {
            SnapshotData::Bytes(data) => data,
            SnapshotData::Streamed(source) => {
                let position = Snapshot {
                    meta,
                    data: Bytes::new(),
                    conf: conf.clone(),
                };
                match self.persister.streamed_snapshot_file_job(&position, source) {
                    Ok(job) => return self.snapshots.start(position, job),
                    Err(source) => match source.into_bytes() {
                        Ok(data) => data,
                        Err(e) => {
                            tracing::warn!(%index, error = %e, "the application could not encode its snapshot");
                            return;
                        }
                    },
                }
            }
        };
        let snapshot = Snapshot { meta, data, conf };
        match self.persister.snapshot_file_job(&snapshot) {
            Some(job) => self.snapshots.start(snapshot, job),
            None => self.compact_now(snapshot),
        }
    }

    /// Fills the InstallSnapshot chunks the core sends empty (it keeps no snapshot
    /// bytes) from the storage's snapshot. A chunk that cannot be read is dropped, with a
    /// warning: the transfer resumes from the follower's last acknowledgement once it
    /// counts as stalled (`core/snapshot_send.rs`).
    fn fill_snapshot_chunks(&self, mut messages: Vec<Message>) -> Vec<Message> {
        messages.retain_mut(|message| {
            let MessageBody::InstallSnapshot(chunk) = &mut message.body else {
                return true;
            };
            let end = chunk_end(chunk.offset, chunk.total_bytes, self.snapshot_chunk_bytes);
            let len = usize::try_from(end.saturating_sub(chunk.offset)).unwrap_or(usize::MAX);
            if !chunk.data.is_empty() || len == 0 {
                return true;
            }
            match self
                .persister
                .read_snapshot_chunk(chunk.meta, chunk.offset, len)
            {
                Ok(data) => {
                    chunk.data = data;
                    true
                }
                Err(e) => {
                    tracing::warn!(to = %message.to, offset = chunk.offset, error = %e,
                        "cannot read a snapshot chunk; dropped");
                    false
                }
            }
        });
        messages
    }

    /// Compacts the core's log and saves `snapshot` on this thread.
    fn compact_now(&mut self, snapshot: Snapshot) {
        let data_bytes = snapshot.data.len() as u64;
        self.compact_and_persist(&snapshot, data_bytes, |p| p.save_snapshot(&snapshot));
    }

    /// Compacts the core's log to `snapshot` and, if it took it, runs `persist` (which
    /// makes every earlier write durable, as a sync does) and frees the dropped entries.
    /// Returns false when the core did not take the snapshot (overtaken meanwhile).
    fn compact_and_persist(
        &mut self,
        snapshot: &Snapshot,
        data_bytes: u64,
        persist: impl FnOnce(&mut Persister) -> Result<(), StorageError>,
    ) -> bool {
        let freed = self.core.compact(snapshot.meta.index, data_bytes);
        if self.core.snapshot_meta() != snapshot.meta {
            return false;
        }
        if let Err(e) = persist(&mut self.persister) {
            self.fail_storage(&e);
            return true;
        }
        self.free_in_background(freed);
        self.synced();
        true
    }

    /// Frees log entries a snapshot dropped (the core's, and the storage's in-memory
    /// copies) on the background thread: millions after a large log, which would hold
    /// this thread, and heartbeats, for a good fraction of an election timeout.
    fn free_in_background(&mut self, core_freed: VecDeque<Entry>) {
        if let Some(cleanup) = self.persister.take_obsolete_files() {
            self.snapshots.delete_files(cleanup);
        }
        let storage_freed = self.persister.take_freed_entries();
        if core_freed.is_empty() && storage_freed.is_empty() {
            return;
        }
        self.snapshots.free((core_freed, storage_freed));
    }

    /// Adopts a snapshot whose file came back durable: the core compacts, the storage
    /// records it (WAL marker, purge). A snapshot overtaken meanwhile (one from the
    /// leader installed past it) is dropped: its file is older than the one in force,
    /// and recovery, which takes the newest, ignores it until the next save deletes it.
    fn adopt_written_snapshot(&mut self) {
        let Some(written) = self.snapshots.take_done() else {
            return;
        };
        let file = match written.result {
            Ok(file) => file,
            Err(e) => return self.fail_storage(&e),
        };
        let snapshot = written.snapshot;
        let adopted = self.compact_and_persist(&snapshot, file.data_bytes, |p| {
            p.adopt_snapshot(&snapshot, file.stats)
        });
        if !adopted {
            tracing::debug!(meta = ?snapshot.meta, "snapshot overtaken while its file was written");
        }
        if !self.running {
            return;
        }
        if let Some((index, data)) = self.snapshots.take_waiting() {
            self.compact(index, data);
        }
    }

    /// Takes the core's Readies and carries each out, in the order the contract requires.
    fn process_ready(&mut self) {
        for _ in 0..MAX_READIES_PER_PASS {
            if !self.running || !self.core.has_ready() {
                break;
            }
            let rd = self.core.ready();
            self.execute(rd);
        }
        self.note_role_change();
    }

    /// Carries out one Ready: send, write, sync (or defer), release what is durable,
    /// apply, answer reads.
    fn execute(&mut self, rd: Ready) {
        let Ready {
            number,
            hard_state,
            snapshot_chunks,
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
            let messages = self.fill_snapshot_chunks(messages);
            self.transport.send(messages);
        }
        let defer = must_sync
            && self.leader_sync.may_defer(ReadyFacts {
                followers_can_commit: self.core.followers_can_commit(),
                has_snapshot: snapshot.is_some(),
                has_after_persist: !messages_after_persist.is_empty(),
            });
        let has_snapshot = snapshot.is_some();
        let written = self
            .persister
            .write(hard_state, &snapshot_chunks, snapshot, &entries);
        if let Err(e) = written {
            // Nothing after this point may be sent: it would claim state that is not durable.
            return self.fail_storage(&e);
        }
        if has_snapshot {
            self.free_in_background(VecDeque::new());
        }
        self.durability
            .written(number, must_sync, messages_after_persist);
        if defer {
            self.leader_sync.deferred(self.clock.now());
        } else if must_sync && !self.sync() {
            return;
        }
        self.release_durable();
        if let Some(meta) = apply_snapshot {
            match self.persister.open_snapshot(meta) {
                Ok(data) => self.apply.push_snapshot(meta, data),
                Err(e) => return self.fail_storage(&e),
            }
        }
        self.apply.push_entries(committed);
        self.answer_reads(read_states, dropped_reads);
    }

    /// Serves confirmed reads and fails dropped ones. Reads answered here (by the
    /// application's callbacks) leave one write per connection, not one per read.
    fn answer_reads(&mut self, read_states: Vec<crate::core::ReadState>, dropped: Vec<u64>) {
        let _replies = rpc_framework::ReplyBatch::begin();
        for rs in read_states {
            self.reads.finish(rs.ctx, Ok(rs.index));
        }
        let leader_hint = self.core.leader();
        for ctx in dropped {
            self.reads
                .finish(ctx, Err(NodeError::NotLeader { leader_hint }));
        }
    }

    /// Syncs everything written; false (and the node stopped) on a storage error.
    fn sync(&mut self) -> bool {
        if let Err(e) = self.persister.sync() {
            self.fail_storage(&e);
            return false;
        }
        self.synced();
        true
    }

    /// Everything written is durable now.
    fn synced(&mut self) {
        self.durability.synced();
        self.leader_sync.synced();
        self.release_durable();
    }

    /// Sends the after-persist messages of the Readies that are durable and tells the
    /// core (Ready contract, step 4).
    fn release_durable(&mut self) {
        let Some(durable) = self.durability.take_durable() else {
            return;
        };
        if !durable.messages_after_persist.is_empty() {
            self.transport.send(durable.messages_after_persist);
        }
        self.core.on_persist_ready(durable.number);
    }

    /// Syncs the leader's deferred writes when they are due (see `leader_sync.rs`).
    fn maybe_sync_deferred(&mut self) {
        if !self.running || !self.durability.awaiting_sync() {
            return;
        }
        let now = self.clock.now();
        self.leader_sync
            .note_on_path(self.core.own_sync_would_commit(), now);
        let due =
            self.leader_sync
                .due(self.inbox.is_empty(), self.core.followers_can_commit(), now);
        if due {
            self.sync();
        }
    }

    /// A storage error is fatal: the node cannot know what is durable, so it stops.
    fn fail_storage(&mut self, e: &StorageError) {
        let reason = format!("storage failed: {e}");
        tracing::error!(node = %self.core.id(), %reason, "stopping");
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
        tracing::info!(node = %status.id, term = %status.term, role = ?status.role,
            leader = ?status.leader, "role change");
        if was_leader && !is_leader {
            let error = NodeError::NotLeader {
                leader_hint: status.leader,
            };
            self.reads.fail_all(&error);
        }
        self.apply.push(ApplyMsg::RoleChange {
            term: status.term,
            is_leader,
            leader: status.leader,
        });
    }
}
