//! One simulated node: a `RaftCore`, its disk and its application, driven exactly as the
//! crate docs' Ready contract says.
//!
//! For each Ready, in order: release `messages`; persist `snapshot` (durable on return),
//! `entries` and `hard_state` as volatile writes; queue the Ready until its writes are
//! durable (at once in [`DiskMode::Immediate`], after a simulated fsync otherwise, with group
//! commit: one fsync covers every Ready written before it started); when durable, release
//! `messages_after_persist` and report `on_persist_ready(number)`, strictly in Ready
//! order; apply `apply_snapshot` then `committed`; take an application snapshot every
//! `snapshot_interval` entries (6.824's `applierSnap`) through `compact`; serve `read_states`
//! once applied. Every step feeds the [`Checker`].
//!
//! Invariant: Ready numbers are consecutive within an incarnation, and a crash drops every
//! Ready that was not durable yet together with its `messages_after_persist`.

use crate::config::Config;
use crate::core::{RaftCore, ReadState, Ready};
use crate::error::ProposeError;
use crate::message::Message;
use crate::sim::app::SimStateMachine;
use crate::sim::disk::SimDisk;
use crate::sim::invariants::{Checker, Violation};
use crate::sim::rng::SimRng;
use crate::types::{Entry, LogIndex, NodeId, Snapshot, SnapshotMeta, Term};
use bytes::Bytes;
use std::collections::VecDeque;

/// How writes become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskMode {
    /// Every Ready is fsynced before the next input ("persist immediately").
    Immediate,
    /// An fsync takes `fsync_min_us..=fsync_max_us`; Readies written meanwhile wait for the
    /// next one (group commit). Use a large range for a "slow disk".
    Async {
        /// Shortest fsync.
        fsync_min_us: u64,
        /// Longest fsync.
        fsync_max_us: u64,
    },
}

/// A read that finished on a node: served by its application, or dropped by the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedRead {
    /// The node that handled it.
    pub node: NodeId,
    /// The caller's context.
    pub ctx: u64,
    /// The read index it was served at; `None` if the core dropped it (leadership lost).
    pub index: Option<LogIndex>,
    /// When it finished (virtual time).
    pub at_us: u64,
}

/// What a node needs from the cluster while it handles one input.
#[derive(Debug)]
pub struct NodeCtx<'a> {
    /// Virtual time now.
    pub now_us: u64,
    /// The invariant checker.
    pub checker: &'a mut Checker,
    /// Messages released to the network, in order.
    pub outbox: &'a mut Vec<Message>,
    /// Set when the node started an fsync; the cluster schedules its completion.
    pub fsync_started: bool,
}

#[derive(Debug)]
struct PendingReady {
    needs_sync: bool,
    covered: bool,
    messages: Vec<Message>,
    number: u64,
}

/// One node of the simulated cluster.
#[derive(Debug)]
pub struct SimNode<S> {
    id: NodeId,
    incarnation: u64,
    core: Option<RaftCore>,
    app: Option<S>,
    disk: SimDisk,
    disk_mode: DiskMode,
    snapshot_interval: u64,
    pending: VecDeque<PendingReady>,
    last_ready_number: u64,
    applied: LogIndex,
    applied_term: Term,
    waiting_reads: Vec<ReadState>,
    reads_in_flight: Vec<u64>,
    completed_reads: Vec<CompletedRead>,
}

impl<S: SimStateMachine> SimNode<S> {
    /// A node with an empty disk, not started.
    pub fn new(id: NodeId, disk_mode: DiskMode, snapshot_interval: u64) -> SimNode<S> {
        SimNode {
            id,
            incarnation: 0,
            core: None,
            app: None,
            disk: SimDisk::new(),
            disk_mode,
            snapshot_interval,
            pending: VecDeque::new(),
            last_ready_number: 0,
            applied: LogIndex(0),
            applied_term: Term(0),
            waiting_reads: Vec::new(),
            reads_in_flight: Vec::new(),
            completed_reads: Vec::new(),
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
        self.core.is_some()
    }

    /// The core, while up.
    pub fn core(&self) -> Option<&RaftCore> {
        self.core.as_ref()
    }

    /// The application, while up.
    pub fn app(&self) -> Option<&S> {
        self.app.as_ref()
    }

    /// The disk (survives crashes).
    pub fn disk(&self) -> &SimDisk {
        &self.disk
    }

    /// The last index applied in this incarnation.
    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    /// The disk mode.
    pub fn disk_mode(&self) -> DiskMode {
        self.disk_mode
    }

    /// Changes the disk mode (effective for the next Ready).
    pub fn set_disk_mode(&mut self, mode: DiskMode) {
        self.disk_mode = mode;
    }

    /// Takes the reads served since the last call.
    pub fn take_completed_reads(&mut self) -> Vec<CompletedRead> {
        std::mem::take(&mut self.completed_reads)
    }

    /// Starts (or restarts) the node from its durable disk.
    ///
    /// # Errors
    /// When the core refuses the durable state, or the checker objects to the restart.
    pub fn start(
        &mut self,
        config: Config,
        app: S,
        checker: &mut Checker,
    ) -> Result<(), Violation> {
        let initial = self.disk.durable().initial_state();
        let core = RaftCore::new(config, initial)
            .map_err(|e| format!("{:?} failed to start from its durable state: {e}", self.id))?;
        checker.on_restart(self.id, &core.status(), self.disk.durable())?;
        self.incarnation += 1;
        self.core = Some(core);
        self.app = Some(app);
        self.last_ready_number = 0;
        self.applied = LogIndex(0);
        self.applied_term = Term(0);
        Ok(())
    }

    /// Crashes the node: volatile state and unsynced writes are lost (a prefix of them
    /// survives when `torn`).
    ///
    /// # Errors
    /// When the surviving durable state breaks a durable-state invariant.
    pub fn crash(
        &mut self,
        rng: &mut SimRng,
        torn: bool,
        checker: &mut Checker,
    ) -> Result<(), Violation> {
        self.core = None;
        self.app = None;
        self.pending.clear();
        self.waiting_reads.clear();
        checker.forget_reads(self.reads_in_flight.drain(..));
        self.disk.crash(rng, torn);
        checker.on_crash(self.id);
        checker.on_durable_change(self.id, self.disk.durable())
    }

    fn core_mut(&mut self) -> &mut RaftCore {
        match self.core.as_mut() {
            Some(core) => core,
            None => panic!("{:?} is down", self.id),
        }
    }

    /// One clock tick.
    ///
    /// # Errors
    /// The first invariant violation.
    pub fn tick(&mut self, ctx: &mut NodeCtx<'_>) -> Result<(), Violation> {
        self.core_mut().tick();
        self.drain(ctx)
    }

    /// Delivers a message.
    ///
    /// # Errors
    /// The first invariant violation.
    pub fn step(&mut self, msg: Message, ctx: &mut NodeCtx<'_>) -> Result<(), Violation> {
        self.core_mut().step(msg);
        self.drain(ctx)
    }

    /// Proposes a command (6.824 `Start`). The Ready is handled by a later [`SimNode::poll`].
    ///
    /// # Errors
    /// The core's refusal.
    pub fn propose(&mut self, data: Bytes) -> Result<(LogIndex, Term), ProposeError> {
        self.core_mut().propose(data)
    }

    /// Starts a ReadIndex read (or a lease read, with `lease`) with context `read_ctx`.
    /// The Ready is handled by a later [`SimNode::poll`].
    ///
    /// # Errors
    /// The core's refusal (inner), or an invariant violation (outer).
    pub fn start_read(
        &mut self,
        read_ctx: u64,
        lease: bool,
        ctx: &mut NodeCtx<'_>,
    ) -> Result<Result<(), ProposeError>, Violation> {
        let result = if lease {
            self.core_mut().read_lease(read_ctx)
        } else {
            self.core_mut().read_index(read_ctx)
        };
        if result.is_ok() {
            ctx.checker.on_read_started(self.id, read_ctx);
            self.reads_in_flight.push(read_ctx);
        }
        Ok(result)
    }

    /// Starts a leadership transfer. The Ready is handled by a later [`SimNode::poll`].
    ///
    /// # Errors
    /// The core's refusal.
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), ProposeError> {
        self.core_mut().transfer_leader(to)
    }

    /// Handles whatever the core has pending (e.g. the first Ready after a start).
    ///
    /// # Errors
    /// The first invariant violation.
    pub fn poll(&mut self, ctx: &mut NodeCtx<'_>) -> Result<(), Violation> {
        self.drain(ctx)
    }

    /// The fsync in flight completed.
    ///
    /// # Errors
    /// The first invariant violation.
    pub fn fsync_done(&mut self, ctx: &mut NodeCtx<'_>) -> Result<(), Violation> {
        self.disk.finish_sync();
        ctx.checker
            .on_durable_change(self.id, self.disk.durable())?;
        for p in self.pending.iter_mut().filter(|p| p.covered) {
            p.needs_sync = false;
        }
        self.complete_durable_prefix(ctx)?;
        self.drain(ctx)
    }

    /// Handles Readies until the core has nothing more, then starts an fsync if one is due.
    fn drain(&mut self, ctx: &mut NodeCtx<'_>) -> Result<(), Violation> {
        while self.core.as_ref().is_some_and(RaftCore::has_ready) {
            let rd = self.core_mut().ready();
            self.handle_ready(rd, ctx)?;
        }
        let wants_sync = self.pending.iter().any(|p| p.needs_sync && !p.covered);
        if wants_sync && !self.disk.sync_in_flight() {
            self.disk.start_sync();
            self.pending.iter_mut().for_each(|p| p.covered = true);
            ctx.fsync_started = true;
        }
        Ok(())
    }

    fn handle_ready(&mut self, rd: Ready, ctx: &mut NodeCtx<'_>) -> Result<(), Violation> {
        if rd.number != self.last_ready_number + 1 {
            return Err(format!(
                "{:?} Ready number {} after {}",
                self.id, rd.number, self.last_ready_number
            ));
        }
        self.last_ready_number = rd.number;
        for msg in rd.messages {
            ctx.checker.on_release(&msg, self.disk.durable())?;
            ctx.outbox.push(msg);
        }
        self.persist(&rd.snapshot, &rd.entries, rd.hard_state, ctx)?;
        self.pending.push_back(PendingReady {
            needs_sync: rd.must_sync,
            covered: false,
            messages: rd.messages_after_persist,
            number: rd.number,
        });
        if self.disk_mode == DiskMode::Immediate {
            self.disk.sync_now();
            ctx.checker
                .on_durable_change(self.id, self.disk.durable())?;
            self.pending.iter_mut().for_each(|p| p.needs_sync = false);
        }
        self.complete_durable_prefix(ctx)?;
        if let Some(snapshot) = rd.apply_snapshot {
            self.apply_snapshot(&snapshot, ctx)?;
        }
        for entry in &rd.committed {
            self.apply_entry(entry, ctx)?;
        }
        for rs in rd.read_states {
            ctx.checker.on_read_state(self.id, &rs)?;
            self.waiting_reads.push(rs);
        }
        for read_ctx in rd.dropped_reads {
            ctx.checker.on_read_dropped(self.id, read_ctx)?;
            self.reads_in_flight.retain(|c| *c != read_ctx);
            self.completed_reads.push(CompletedRead {
                node: self.id,
                ctx: read_ctx,
                index: None,
                at_us: ctx.now_us,
            });
        }
        self.serve_reads(ctx.now_us);
        Ok(())
    }

    fn persist(
        &mut self,
        snapshot: &Option<Snapshot>,
        entries: &[Entry],
        hard_state: Option<crate::types::HardState>,
        ctx: &mut NodeCtx<'_>,
    ) -> Result<(), Violation> {
        if let Some(snap) = snapshot {
            // Durable on return; it syncs every earlier write, so earlier Readies are durable.
            self.disk.install_snapshot(snap);
            ctx.checker
                .on_durable_change(self.id, self.disk.durable())?;
            self.pending.iter_mut().for_each(|p| p.needs_sync = false);
            self.complete_durable_prefix(ctx)?;
        }
        if !entries.is_empty() {
            self.disk.write_entries(entries);
            ctx.checker
                .on_entries_written(entries, self.disk.written())?;
        }
        if let Some(hs) = hard_state {
            self.disk.write_hard_state(hs);
        }
        Ok(())
    }

    /// Completes queued Readies from the front while they need no more durability.
    fn complete_durable_prefix(&mut self, ctx: &mut NodeCtx<'_>) -> Result<(), Violation> {
        while self.pending.front().is_some_and(|p| !p.needs_sync) {
            let Some(done) = self.pending.pop_front() else {
                break;
            };
            for msg in done.messages {
                ctx.checker.on_release(&msg, self.disk.durable())?;
                ctx.outbox.push(msg);
            }
            self.core_mut().on_persist_ready(done.number);
        }
        Ok(())
    }

    fn apply_snapshot(
        &mut self,
        snapshot: &Snapshot,
        ctx: &mut NodeCtx<'_>,
    ) -> Result<(), Violation> {
        let id = self.id;
        let Some(app) = self.app.as_mut() else {
            return Ok(());
        };
        app.restore(snapshot)
            .map_err(|e| format!("{id:?} cannot restore {snapshot:?}: {e}"))?;
        ctx.checker
            .on_apply_snapshot(id, snapshot, self.disk.durable(), app)?;
        self.applied = snapshot.meta.index;
        self.applied_term = snapshot.meta.term;
        Ok(())
    }

    fn apply_entry(&mut self, entry: &Entry, ctx: &mut NodeCtx<'_>) -> Result<(), Violation> {
        let core = self.core.as_ref();
        let term = core.map_or(Term(0), |c| c.status().term);
        // A leader may apply committed entries it has written but not yet fsynced (they are
        // durable on a majority of followers); everyone else applies only what is durable.
        let holding = if core.is_some_and(|c| c.is_leader()) {
            self.disk.written()
        } else {
            self.disk.durable()
        };
        ctx.checker.on_apply(self.id, entry, term, holding)?;
        let Some(app) = self.app.as_mut() else {
            return Ok(());
        };
        app.apply(entry);
        self.applied = entry.index;
        self.applied_term = entry.term;
        if self.snapshot_interval > 0 && (entry.index.0 + 1) % self.snapshot_interval == 0 {
            let data = app.snapshot();
            self.compact(data, ctx)?;
        }
        Ok(())
    }

    /// 6.824's `applierSnap`: snapshot the application at the applied index and let the
    /// core drop the log before it.
    fn compact(&mut self, data: Bytes, ctx: &mut NodeCtx<'_>) -> Result<(), Violation> {
        let meta = SnapshotMeta {
            index: self.applied,
            term: self.applied_term,
        };
        if meta.index <= self.disk.durable().snapshot_index() {
            return Ok(());
        }
        let snapshot = Snapshot {
            meta,
            data: data.clone(),
        };
        self.disk.save_compaction_snapshot(&snapshot);
        ctx.checker
            .on_durable_change(self.id, self.disk.durable())?;
        self.core_mut().compact(meta.index, data);
        Ok(())
    }

    fn serve_reads(&mut self, now_us: u64) {
        let applied = self.applied;
        let id = self.id;
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .waiting_reads
            .drain(..)
            .partition(|rs| rs.index <= applied);
        self.waiting_reads = waiting;
        for rs in ready {
            self.reads_in_flight.retain(|c| *c != rs.ctx);
            self.completed_reads.push(CompletedRead {
                node: id,
                ctx: rs.ctx,
                index: Some(rs.index),
                at_us: now_us,
            });
        }
    }
}
