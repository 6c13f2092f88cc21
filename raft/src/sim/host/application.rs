//! The application side of a simulated node: what kvserver's applier thread does, on the
//! other end of the real apply channel. It applies committed entries and installs
//! snapshots (feeding the checker), snapshots itself every `snapshot_interval` entries
//! through the node's input queue (as `RaftNode::snapshot` does), and serves a confirmed
//! read once its index is applied.

use super::{CompletedRead, NodeCtx, SimNode};
use crate::core::ReadState;
use crate::node::input::{NodeInput, SnapshotData};
use crate::node::{ApplyMsg, NodeError};
use crate::sim::app::SimStateMachine;
use crate::sim::invariants::Violation;
use crate::storage::SnapshotSource;
use crate::types::{Entry, EntryKind, LogIndex, Snapshot, SnapshotMeta};

impl<S: SimStateMachine> SimNode<S> {
    pub(super) fn read_answered(
        &mut self,
        read_ctx: u64,
        result: Result<LogIndex, NodeError>,
        ctx: &mut NodeCtx<'_>,
    ) -> Result<(), Violation> {
        let Some(run) = &mut self.run else {
            return Ok(());
        };
        match result {
            Ok(index) => {
                let rs = ReadState {
                    ctx: read_ctx,
                    index,
                };
                ctx.checker.on_read_state(self.id, &rs)?;
                run.waiting_reads.push((read_ctx, index));
            }
            Err(e) if self.submitting => {
                run.reads_in_flight.remove(&read_ctx);
                ctx.checker.forget_reads([read_ctx]);
                self.refusals.insert(read_ctx, e);
            }
            Err(_) => {
                run.reads_in_flight.remove(&read_ctx);
                ctx.checker.on_read_dropped(self.id, read_ctx)?;
                self.completed_reads.push(CompletedRead {
                    node: self.id,
                    ctx: read_ctx,
                    index: None,
                    at_us: ctx.now_us,
                });
            }
        }
        Ok(())
    }

    /// The application's thread: applies what the apply channel holds, snapshots when
    /// due, serves reads. Returns whether the node's thread must wake (a snapshot to take
    /// in, or a backlog waiting for room in the channel).
    pub(crate) fn run_app(&mut self, ctx: &mut NodeCtx<'_>) -> Result<bool, Violation> {
        let mut wake = false;
        loop {
            let Some(run) = &mut self.run else {
                return Ok(false);
            };
            let Ok(msg) = run.apply_rx.try_recv() else {
                break;
            };
            wake |= self.apply(msg, ctx)?;
        }
        self.serve_reads(ctx.now_us);
        let backlog = self
            .run
            .as_ref()
            .is_some_and(|r| r.executor.apply_waiting_for_room().is_some());
        Ok(wake || backlog)
    }

    /// Applies one message; returns whether it submitted a snapshot to the node.
    fn apply(&mut self, msg: ApplyMsg, ctx: &mut NodeCtx<'_>) -> Result<bool, Violation> {
        let entry = match msg {
            ApplyMsg::Snapshot { index, term, data } => {
                let meta = SnapshotMeta { index, term };
                // Read from the storage's file, checked against its checksum as it goes.
                let data = data
                    .into_bytes()
                    .map_err(|e| format!("{:?} cannot read the snapshot {meta:?}: {e}", self.id))?;
                let snapshot = Snapshot::new(meta, data);
                self.apply_snapshot(&snapshot, ctx)?;
                return Ok(false);
            }
            ApplyMsg::RoleChange { .. } => return Ok(false),
            ApplyMsg::Command { index, term, data } => Entry {
                index,
                term,
                kind: EntryKind::Normal,
                data,
            },
            ApplyMsg::Noop { index, term } => Entry {
                index,
                term,
                kind: EntryKind::Noop,
                data: bytes::Bytes::new(),
            },
            ApplyMsg::Membership { index, term, data } => Entry {
                index,
                term,
                kind: EntryKind::Membership,
                data,
            },
        };
        self.apply_entry(&entry, ctx)
    }

    fn apply_snapshot(
        &mut self,
        snapshot: &Snapshot,
        ctx: &mut NodeCtx<'_>,
    ) -> Result<(), Violation> {
        let id = self.id;
        let durable = self.model.lock().durable().clone();
        let Some(run) = &mut self.run else {
            return Ok(());
        };
        run.app
            .restore(snapshot)
            .map_err(|e| format!("{id:?} cannot restore {:?}: {e}", snapshot.meta))?;
        ctx.checker
            .on_apply_snapshot(id, snapshot, &durable, &run.app)?;
        self.applied = snapshot.meta.index;
        Ok(())
    }

    /// Applies a committed entry; snapshots the application when due.
    fn apply_entry(&mut self, entry: &Entry, ctx: &mut NodeCtx<'_>) -> Result<bool, Violation> {
        let Some(run) = &mut self.run else {
            return Ok(false);
        };
        let term = run.executor.core().term();
        ctx.checker
            .on_apply(self.id, entry, term, self.model.lock().written())?;
        run.app.apply(entry);
        self.applied = entry.index;
        let interval = run.snapshot_interval;
        if interval == 0 || (entry.index.0 + 1) % interval != 0 {
            return Ok(false);
        }
        let data = run.app.snapshot();
        let input = NodeInput::Compact {
            index: entry.index,
            data: SnapshotData::Streamed(SnapshotSource::new(move |out| out.write_all(&data))),
        };
        // As `RaftNode::snapshot_streamed`, the KV server's way: the snapshot writes itself
        // into its file on the background thread.
        self.submit(input, ctx.now_us);
        Ok(true)
    }

    pub(super) fn serve_reads(&mut self, now_us: u64) {
        let applied = self.applied;
        let Some(run) = &mut self.run else { return };
        let (ready, waiting): (Vec<_>, Vec<_>) = run
            .waiting_reads
            .drain(..)
            .partition(|(_, index)| *index <= applied);
        run.waiting_reads = waiting;
        for (ctx, index) in ready {
            run.reads_in_flight.remove(&ctx);
            self.completed_reads.push(CompletedRead {
                node: self.id,
                ctx,
                index: Some(index),
                at_us: now_us,
            });
        }
    }
}
