//! One simulated node: the node runtime's real executor (`node::executor::Executor`) over
//! `DiskStorage` on its own crashable [`SimFs`], a `SimClock`, the simulator's transport,
//! and the application on its own (simulated) thread at the other end of the apply
//! channel.
//!
//! Nothing here executes the Ready contract: the executor does, exactly as on the driver
//! thread. The host only decides *when* it runs (the cluster's events), feeds the checker
//! what the node revealed and made durable, and plays the application: it applies what
//! the apply channel carries, snapshots every `snapshot_interval` entries (6.824's
//! `applierSnap`) through the node's input queue, and serves reads once applied.
//!
//! A node's thread is busy from the start of a round until the virtual time the round
//! spent (fsync latencies, a slow CPU, a stall): inputs arriving meanwhile wait in its
//! queue, as they would for a driver thread blocked in `fdatasync`.
//!
//! Invariant: events of an older incarnation are ignored by the cluster; a crash drops
//! the executor (and with it every write not yet synced, as `SimFs` decides).

mod application;
mod lifecycle;

use crate::core::CoreStatus;
use crate::node::executor::Executor;
use crate::node::input::{Arrived, NodeInput};
use crate::node::{ApplyMsg, NodeConfig, NodeError};
use crate::sim::app::SimStateMachine;
use crate::sim::background::SimBackground;
use crate::sim::clock::SimClock;
use crate::sim::invariants::{Checker, Violation};
use crate::sim::rng::SimRng;
use crate::sim::storage_model::{DiskState, StorageModel};
use crate::sim::transport::Sent;
use crate::storage::sim_fs::SimFs;
use crate::storage::DiskOptions;
use crate::types::{LogIndex, NodeId};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How long an fsync takes on a node's simulated disk (uniform in the range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsyncLatency {
    /// Shortest fsync, in virtual microseconds.
    pub min_us: u64,
    /// Longest fsync.
    pub max_us: u64,
}

impl FsyncLatency {
    /// Instant fsyncs.
    pub const ZERO: FsyncLatency = FsyncLatency {
        min_us: 0,
        max_us: 0,
    };
}

/// A read that finished on a node: served by its application, or failed (leadership
/// lost, timed out, node overloaded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedRead {
    /// The node that handled it.
    pub node: NodeId,
    /// The read's context (from `Cluster::read_index` / `read_lease`).
    pub ctx: u64,
    /// The read index it was served at; `None` if it failed.
    pub index: Option<LogIndex>,
    /// When it finished (virtual time).
    pub at_us: u64,
}

/// What a node needs from the cluster while it runs.
#[derive(Debug)]
pub(crate) struct NodeCtx<'a> {
    /// Virtual time now.
    pub(crate) now_us: u64,
    /// The invariant checker.
    pub(crate) checker: &'a mut Checker,
    /// Messages the node sent, for the cluster to route.
    pub(crate) outbox: &'a mut Vec<Sent>,
}

/// Everything a node incarnation needs to start.
pub(crate) struct Boot<S> {
    pub(crate) config: NodeConfig,
    pub(crate) disk: DiskOptions,
    pub(crate) app: S,
    pub(crate) now_us: u64,
    /// Virtual microseconds per tick of the node's clock (its rate).
    pub(crate) tick_period_us: u64,
    pub(crate) apply_capacity: usize,
    pub(crate) strict_term_reveal: bool,
}

/// A read's answer from the executor.
type ReadAnswer = (u64, Result<LogIndex, NodeError>);

/// A running incarnation.
struct Running<S> {
    executor: Executor,
    clock: SimClock,
    inbox: Sender<Arrived>,
    apply_rx: Receiver<ApplyMsg>,
    sent: Arc<Mutex<Vec<Sent>>>,
    read_answers: Arc<Mutex<Vec<ReadAnswer>>>,
    app: S,
    snapshot_interval: u64,
    /// The executor's background jobs (snapshot files), run between its rounds.
    background: SimBackground,
    /// Confirmed reads waiting for their index to be applied: (ctx, index).
    waiting_reads: Vec<(u64, LogIndex)>,
    reads_in_flight: BTreeSet<u64>,
}

/// One node of the simulated cluster.
pub struct SimNode<S> {
    id: NodeId,
    incarnation: u64,
    fs: SimFs,
    model: Arc<Mutex<StorageModel>>,
    fsync: Arc<Mutex<(FsyncLatency, SimRng)>>,
    /// Extra virtual time every round costs (a slow or starved CPU).
    round_cost_us: u64,
    busy_until_us: u64,
    /// The earliest wake-up scheduled, and its generation (later ones supersede it).
    next_wake_us: Option<u64>,
    wake_generation: u64,
    app_run_scheduled: bool,
    /// The thread took its inputs but has not finished the round (the rest runs at a
    /// wake-up at this same instant): its core is ahead of its storage meanwhile.
    mid_round: bool,
    snapshot_interval: u64,
    run: Option<Running<S>>,
    applied: LogIndex,
    completed_reads: Vec<CompletedRead>,
    /// Reads refused while being submitted (the caller gets the error instead).
    refusals: BTreeMap<u64, NodeError>,
    submitting: bool,
}

impl<S> std::fmt::Debug for SimNode<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNode")
            .field("id", &self.id)
            .field("incarnation", &self.incarnation)
            .field("up", &self.run.is_some())
            .field("busy_until_us", &self.busy_until_us)
            .finish_non_exhaustive()
    }
}

impl<S: SimStateMachine> SimNode<S> {
    /// A node with an empty disk, not started.
    pub(crate) fn new(id: NodeId, fsync: FsyncLatency, seed: u64, snapshot_interval: u64) -> Self {
        SimNode {
            id,
            incarnation: 0,
            fs: SimFs::new(),
            model: Arc::new(Mutex::new(StorageModel::default())),
            fsync: Arc::new(Mutex::new((fsync, SimRng::new(seed)))),
            round_cost_us: 0,
            busy_until_us: 0,
            next_wake_us: None,
            wake_generation: 0,
            app_run_scheduled: false,
            mid_round: false,
            snapshot_interval,
            run: None,
            applied: LogIndex(0),
            completed_reads: Vec::new(),
            refusals: BTreeMap::new(),
            submitting: false,
        }
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Increments at every start; events of older incarnations are ignored.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Whether the node runs (not crashed).
    pub fn is_up(&self) -> bool {
        self.run.is_some()
    }

    /// The core's status, while up.
    pub fn status(&self) -> Option<CoreStatus> {
        self.run.as_ref().map(|r| r.executor.core().status())
    }

    /// The core's status as the checker may see it: only between rounds (while up). In
    /// the middle of a round the core is ahead of its storage (it stepped messages whose
    /// entries the round has not written yet), which no other thread ever observes.
    pub(crate) fn status_between_rounds(&self) -> Option<CoreStatus> {
        if self.mid_round {
            return None;
        }
        self.status()
    }

    /// The application, while up.
    pub fn app(&self) -> Option<&S> {
        self.run.as_ref().map(|r| &r.app)
    }

    /// The last index applied in this incarnation.
    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    /// What the node's storage holds durably (per the `Storage` contract).
    pub fn durable(&self) -> DiskState {
        self.model.lock().durable().clone()
    }

    /// The node's storage model (for the checker).
    pub(crate) fn model(&self) -> &Arc<Mutex<StorageModel>> {
        &self.model
    }

    /// fsyncs (file data and directories) its disk has done, over all incarnations.
    pub fn fsyncs(&self) -> u64 {
        self.fs.syncs()
    }

    /// Until when the node's thread is busy (virtual time).
    pub fn busy_until_us(&self) -> u64 {
        self.busy_until_us
    }

    /// Whether the node's executor stopped on its own (a storage failure).
    pub(crate) fn stopped(&self) -> bool {
        self.run.as_ref().is_some_and(|r| !r.executor.is_running())
    }

    /// Why the executor stopped on its own, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        self.run.as_ref().and_then(|r| r.executor.failure())
    }

    /// Takes the reads finished since the last call.
    pub(crate) fn take_completed_reads(&mut self) -> Vec<CompletedRead> {
        std::mem::take(&mut self.completed_reads)
    }

    /// Sets how long this node's fsyncs take from now on (a slow disk).
    pub(crate) fn set_fsync_latency(&mut self, latency: FsyncLatency) {
        self.fsync.lock().0 = latency;
    }

    /// The node's disk loses power after `mutations` more writes, syncs, creates, renames
    /// or removes: every later operation fails (until the crash that follows).
    pub(crate) fn fail_disk_after(&mut self, mutations: u64) {
        self.fs.cut_power_after(mutations);
    }

    /// Cancels a disk failure announced by [`SimNode::fail_disk_after`] that no operation
    /// has run into yet (one that has stopped the node, which the cluster then crashed).
    pub(crate) fn repair_disk(&mut self) {
        self.fs.cancel_power_cut();
    }

    /// Sets the extra virtual time each round costs from now on (a slow node).
    pub(crate) fn set_round_cost_us(&mut self, us: u64) {
        self.round_cost_us = us;
    }

    /// Sets the node's clock rate from now on (virtual microseconds per tick).
    pub(crate) fn set_tick_period_us(&mut self, period_us: u64) {
        if let Some(run) = &self.run {
            run.clock.set_period_us(period_us);
        }
    }

    /// The node's thread stops for `us` from `now_us` (or from the end of its current
    /// work): inputs and ticks pile up meanwhile.
    pub(crate) fn stall(&mut self, now_us: u64, us: u64) {
        self.busy_until_us = self.busy_until_us.max(now_us) + us;
    }

    /// Asks for a wake-up at `at_us`: the generation to schedule it with, or `None` when
    /// an earlier one is already scheduled (or the node is down).
    pub(crate) fn request_wake(&mut self, at_us: u64) -> Option<u64> {
        if !self.is_up() || self.next_wake_us.is_some_and(|t| t <= at_us) {
            return None;
        }
        self.wake_generation += 1;
        self.next_wake_us = Some(at_us);
        Some(self.wake_generation)
    }

    /// A wake-up fired: whether it is the one that counts (then it is used up).
    pub(crate) fn take_wake(&mut self, generation: u64) -> bool {
        if generation != self.wake_generation || self.next_wake_us.is_none() {
            return false;
        }
        self.next_wake_us = None;
        true
    }

    /// Asks for a run of the application: true when one must be scheduled.
    pub(crate) fn request_app_run(&mut self) -> bool {
        let wanted = self.has_apply_work() && !self.app_run_scheduled;
        self.app_run_scheduled |= wanted;
        wanted
    }

    /// The scheduled application run is happening.
    pub(crate) fn app_run_started(&mut self) {
        self.app_run_scheduled = false;
    }

    /// Whether the node's thread is free at `now_us` (it would take an input at once).
    pub(crate) fn is_idle(&self, now_us: u64) -> bool {
        self.run.is_some() && self.busy_until_us <= now_us
    }

    /// Queues an input arriving at virtual time `now_us`; a full queue refuses it (as
    /// `RaftNode` does).
    pub(crate) fn submit(&mut self, input: NodeInput, now_us: u64) {
        let Some(run) = &self.run else {
            return input.refuse(NodeError::Stopped);
        };
        let arrived = Arrived {
            at: run.clock.local_at(now_us),
            input,
        };
        match run.inbox.try_send(arrived) {
            Ok(()) => {}
            Err(TrySendError::Full(a)) => a.input.refuse(NodeError::Busy),
            Err(TrySendError::Disconnected(a)) => a.input.refuse(NodeError::Stopped),
        }
    }

    /// Submits a read with context `ctx` at virtual time `now_us`; its answer feeds the
    /// checker.
    pub(crate) fn submit_read(&mut self, ctx: u64, mode: crate::node::ReadMode, now_us: u64) {
        let Some(run) = &mut self.run else { return };
        run.reads_in_flight.insert(ctx);
        let answers = run.read_answers.clone();
        let input = NodeInput::Read {
            mode,
            done: Box::new(move |result| answers.lock().push((ctx, result))),
        };
        self.submit(input, now_us);
    }

    /// Takes the refusal of read `ctx`, if it was refused while being submitted.
    pub(crate) fn take_refusal(&mut self, ctx: u64) -> Option<NodeError> {
        self.refusals.remove(&ctx)
    }

    /// The thread, waiting for input, takes what is queued at once (the first part of a
    /// round; the rest follows at the wake-up scheduled for this instant).
    pub(crate) fn take_inputs(&mut self, ctx: &mut NodeCtx<'_>) -> Result<(), Violation> {
        let Some(run) = &mut self.run else {
            return Ok(());
        };
        run.clock.begin_at(ctx.now_us);
        run.executor.drain_inbox();
        self.mid_round = true;
        self.submitting = true;
        let result = self.collect(ctx);
        self.submitting = false;
        result
    }

    /// One round of the executor, starting now.
    pub(crate) fn run_round(&mut self, ctx: &mut NodeCtx<'_>) -> Result<(), Violation> {
        let Some(run) = &mut self.run else {
            return Ok(());
        };
        run.clock.begin_at(ctx.now_us);
        run.clock.spend(self.round_cost_us);
        run.executor.run_round();
        self.mid_round = false;
        self.busy_until_us = run.clock.thread_us();
        // The background thread writes while the driver waits for its next round.
        let background = run.background.clone();
        run.clock.detached(|| background.run_queued());
        self.collect(ctx)
    }

    /// When the node next needs to run by itself: its next tick, or at once when inputs
    /// (or finished snapshot writes) are queued; never before its thread is free.
    pub(crate) fn next_wake_at(&self, now_us: u64) -> Option<u64> {
        let run = self.run.as_ref()?;
        let at = if run.inbox.is_empty() && run.executor.snapshot_writes_done().is_empty() {
            run.clock.virtual_at(run.executor.next_deadline())
        } else {
            now_us
        };
        Some(at.max(now_us).max(self.busy_until_us))
    }

    /// Whether the application has entries to take from the apply channel.
    pub(crate) fn has_apply_work(&self) -> bool {
        self.run.as_ref().is_some_and(|r| !r.apply_rx.is_empty())
    }

    /// Hands the checker what the node made durable, wrote and sent, and what its reads
    /// answered, since the last call.
    fn collect(&mut self, ctx: &mut NodeCtx<'_>) -> Result<(), Violation> {
        self.collect_storage(ctx)?;
        let Some(run) = &mut self.run else {
            return Ok(());
        };
        for sent in std::mem::take(&mut *run.sent.lock()) {
            if let Some(violation) = sent.violation {
                return Err(violation);
            }
            ctx.checker.on_release(&sent.msg)?;
            ctx.outbox.push(sent);
        }
        let answers = std::mem::take(&mut *run.read_answers.lock());
        for (read_ctx, result) in answers {
            self.read_answered(read_ctx, result, ctx)?;
        }
        self.serve_reads(ctx.now_us);
        Ok(())
    }

    fn collect_storage(&mut self, ctx: &mut NodeCtx<'_>) -> Result<(), Violation> {
        let mut model = self.model.lock();
        for (prev, entries) in model.take_new_entries() {
            ctx.checker.on_entries_written(prev, &entries)?;
        }
        if model.take_durable_changed() {
            ctx.checker.on_durable_change(self.id, model.durable())?;
        }
        Ok(())
    }
}
