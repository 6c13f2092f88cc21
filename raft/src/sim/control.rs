//! Test-facing controls of the simulated cluster: faults (crash, restart, disconnection,
//! partitions, network modes, clock rates, driver stalls, slow disks, slow nodes, failing
//! disks) and
//! client actions (proposals, reads, leadership transfers), which go through each node's
//! input queue as the node runtime's handle sends them. Every action is recorded in the
//! trace and followed by an invariant check.

use crate::core::membership::MembershipChange;
use crate::node::input::NodeInput;
use crate::node::{NodeError, ReadMode};
use crate::sim::app::SimStateMachine;
use crate::sim::cluster::{Cluster, MessageTap};
use crate::sim::host::{CompletedRead, FsyncLatency};
use crate::sim::network::{NetStats, NetworkConfig};
use crate::types::{LogIndex, NodeId, Term};
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::Arc;

/// Longest a blocking client call waits for a busy node, in events (a guard against a
/// test bug; a node runs its round when its thread is free).
const MAX_EVENTS_WAITING_FOR_A_NODE: u32 = 1_000_000;

impl<S: SimStateMachine> Cluster<S> {
    /// Sets a node's clock rate (virtual microseconds per tick) from now on, until it
    /// restarts.
    pub fn set_tick_period_us(&mut self, id: NodeId, period_us: u64) {
        self.note(format!("{id:?} ticks every {period_us} us"));
        self.node_mut(id).set_tick_period_us(period_us);
    }

    /// 6.824 `crash1`: disconnects the node and kills it; its disk survives with what was
    /// durable (and, with torn crashes, a random prefix of its unsynced writes or a random
    /// subset of their pages).
    pub fn crash(&mut self, id: NodeId) {
        self.network.disconnect(id);
        if !self.is_up(id) {
            return;
        }
        self.note(format!("crash {id:?}"));
        let mode = self.crash_mode();
        let i = id.0 as usize - 1;
        self.nodes[i].crash(mode, &mut self.checker);
        self.roles[i] = None;
        self.after_event();
    }

    /// 6.824 `start1`: kills the node if it runs, then starts a new incarnation from its
    /// disk. The node stays disconnected until [`Cluster::connect`].
    pub fn restart(&mut self, id: NodeId) {
        self.crash(id);
        self.note(format!("restart {id:?}"));
        self.boot(id);
        self.after_event();
    }

    /// The node's thread stops for `ms` (a GC pause, a SIGSTOP, a blocked disk): messages,
    /// inputs and ticks pile up, and it resumes with one round that handles them in the
    /// runtime's order.
    pub fn stall(&mut self, id: NodeId, ms: u64) {
        if !self.is_up(id) {
            return;
        }
        self.note(format!("stall {id:?} for {ms} ms"));
        let now = self.now_us();
        self.node_mut(id).stall(now, ms * 1000);
    }

    /// Sets how long fsyncs take on one node's disk from now on (a slow disk).
    pub fn set_fsync_latency(&mut self, id: NodeId, latency: FsyncLatency) {
        self.note(format!("{id:?} fsyncs take {latency:?}"));
        self.node_mut(id).set_fsync_latency(latency);
    }

    /// One node's disk fails after `mutations` more mutating operations (its storage then
    /// returns I/O errors, the node stops, and the simulator crashes it: what reached the
    /// disk survives as a power cut leaves it).
    pub fn fail_disk_after(&mut self, id: NodeId, mutations: u64) {
        if !self.is_up(id) {
            return;
        }
        self.note(format!(
            "{id:?} disk fails after {mutations} more operations"
        ));
        self.node_mut(id).fail_disk_after(mutations);
    }

    /// Cancels a disk failure announced by [`Cluster::fail_disk_after`] that has not
    /// happened yet.
    pub fn repair_disk(&mut self, id: NodeId) {
        self.node_mut(id).repair_disk();
    }

    /// Makes every round of one node cost `us` of extra virtual time from now on (a slow,
    /// CPU-starved node; 0 restores it).
    pub fn set_round_cost_us(&mut self, id: NodeId, us: u64) {
        self.note(format!("{id:?} rounds cost {us} us"));
        self.node_mut(id).set_round_cost_us(us);
    }

    // ----- network ------------------------------------------------------------------------

    /// Reattaches a node to the network.
    pub fn connect(&mut self, id: NodeId) {
        self.note(format!("connect {id:?}"));
        self.network.connect(id);
    }

    /// Cuts a node off the network.
    pub fn disconnect(&mut self, id: NodeId) {
        self.note(format!("disconnect {id:?}"));
        self.network.disconnect(id);
    }

    /// Whether a node is attached to the network (and up, as 6.824's `connected`).
    pub fn is_connected(&self, id: NodeId) -> bool {
        self.network.is_connected(id) && self.is_up(id)
    }

    /// Splits the network into groups (nodes in no group are isolated).
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        self.note(format!("partition {groups:?}"));
        self.network.partition(groups);
    }

    /// Cuts the link from `from` to `to` (one way; messages from `to` to `from` still
    /// cross). Undone by [`Cluster::heal`].
    pub fn cut_link(&mut self, from: NodeId, to: NodeId) {
        self.note(format!("cut {from:?} -> {to:?}"));
        self.network.cut_link(from, to);
    }

    /// Cuts the links between `a` and `b` both ways, leaving their other links up (a
    /// partial partition). Undone by [`Cluster::heal`].
    pub fn cut_between(&mut self, a: NodeId, b: NodeId) {
        self.cut_link(a, b);
        self.cut_link(b, a);
    }

    /// Removes the partition and every cut link.
    pub fn heal(&mut self) {
        self.note("heal partition".into());
        self.network.heal();
    }

    /// 6.824 `setunreliable`.
    pub fn set_unreliable(&mut self, unreliable: bool) {
        self.note(format!("unreliable={unreliable}"));
        self.network.config_mut().reliable = !unreliable;
    }

    /// 6.824 `setlongreordering`.
    pub fn set_long_reordering(&mut self, on: bool) {
        self.note(format!("long_reordering={on}"));
        self.network.config_mut().long_reordering = on;
    }

    /// The network configuration, to change delays, loss or duplication.
    pub fn network_config_mut(&mut self) -> &mut NetworkConfig {
        self.network.config_mut()
    }

    /// Installs (or removes) a tap that sees every message released to the network.
    pub fn set_message_tap(&mut self, tap: Option<MessageTap>) {
        self.tap = tap;
    }

    /// Network counters.
    pub fn net_stats(&self) -> &NetStats {
        self.network.stats()
    }

    /// Request messages sent so far (6.824's RPC count; responses are not counted because a
    /// 6.824 RPC carries its reply).
    pub fn rpc_count(&self) -> u64 {
        self.network.stats().requests
    }

    /// Approximate bytes of every message sent so far.
    pub fn bytes_total(&self) -> u64 {
        self.network.stats().bytes
    }

    // ----- client actions -----------------------------------------------------------------

    /// Proposes `data` on `node` (6.824 `Start` with the refusal reason), as
    /// `RaftNode::start` does: it returns once the node's thread took the proposal, which
    /// for a busy node means running the simulation until it is free.
    ///
    /// # Errors
    /// The node's [`NodeError`] (`Stopped` if it is down or crashes meanwhile).
    pub fn propose(&mut self, node: NodeId, data: Bytes) -> Result<(LogIndex, Term), NodeError> {
        let slot = Arc::new(Mutex::new(None));
        let answer = slot.clone();
        let input = NodeInput::Propose {
            data,
            done: Box::new(move |r| *answer.lock() = Some(r)),
        };
        let result = self.call(node, input, || slot.lock().take());
        if let Ok((index, term)) = result {
            self.note(format!(
                "{node:?} accepted a proposal at {index:?}/{term:?}"
            ));
        }
        result
    }

    /// Proposes a configuration change on `node`, as `RaftNode::propose_membership_with`
    /// does (returns once the node's thread took it).
    ///
    /// # Errors
    /// The node's [`NodeError`] (a refused change is `MembershipRefused`).
    pub fn propose_membership(
        &mut self,
        node: NodeId,
        change: MembershipChange,
    ) -> Result<(LogIndex, Term), NodeError> {
        let slot = Arc::new(Mutex::new(None));
        let answer = slot.clone();
        let described = format!("{change:?}");
        let input = NodeInput::ProposeMembership {
            change,
            done: Box::new(move |r| *answer.lock() = Some(r)),
        };
        let result = self.call(node, input, || slot.lock().take());
        self.note(format!(
            "{node:?} membership change {described}: {result:?}"
        ));
        result
    }

    /// Starts a ReadIndex read on `node`; returns its context.
    ///
    /// # Errors
    /// The node's refusal, when its thread was free to refuse at once (a busy node's
    /// refusal shows up later as a [`CompletedRead`] without an index).
    pub fn read_index(&mut self, node: NodeId) -> Result<u64, NodeError> {
        self.start_read(node, ReadMode::ReadIndex)
    }

    /// Starts a lease read on `node` (a ReadIndex read unless the leader's lease holds);
    /// returns its context.
    ///
    /// # Errors
    /// As [`Cluster::read_index`].
    pub fn read_lease(&mut self, node: NodeId) -> Result<u64, NodeError> {
        self.start_read(node, ReadMode::Lease)
    }

    fn start_read(&mut self, node: NodeId, mode: ReadMode) -> Result<u64, NodeError> {
        if !self.is_up(node) {
            return Err(NodeError::Stopped);
        }
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        self.checker.on_read_started(node, ctx);
        let now = self.now_us();
        self.node_mut(node).submit_read(ctx, mode, now);
        self.take_inputs_if_idle(node);
        let result = match self.node_mut(node).take_refusal(ctx) {
            Some(e) => Err(e),
            None => Ok(ctx),
        };
        self.note(format!("{mode:?} read {ctx} on {node:?}: {result:?}"));
        self.after_event();
        result
    }

    /// Asks `node` to hand leadership to `to`.
    ///
    /// # Errors
    /// The node's [`NodeError`].
    pub fn transfer_leader(&mut self, node: NodeId, to: NodeId) -> Result<(), NodeError> {
        let slot = Arc::new(Mutex::new(None));
        let answer = slot.clone();
        let input = NodeInput::Transfer {
            to,
            done: Box::new(move |r| *answer.lock() = Some(r)),
        };
        let result = self.call(node, input, || slot.lock().take());
        self.note(format!("transfer {node:?} -> {to:?}: {result:?}"));
        result
    }

    /// Reads finished since the last call, in the order they finished.
    pub fn take_completed_reads(&mut self) -> Vec<CompletedRead> {
        std::mem::take(&mut self.completed_reads)
    }

    /// Submits `input` to `node` and waits (in virtual time) until `answer` has the
    /// node's answer, as a blocking call on the node's handle would.
    fn call<T>(
        &mut self,
        node: NodeId,
        input: NodeInput,
        mut answer: impl FnMut() -> Option<Result<T, NodeError>>,
    ) -> Result<T, NodeError> {
        if !self.is_up(node) {
            return Err(NodeError::Stopped);
        }
        let now = self.now_us();
        self.node_mut(node).submit(input, now);
        self.take_inputs_if_idle(node);
        for _ in 0..MAX_EVENTS_WAITING_FOR_A_NODE {
            if let Some(result) = answer() {
                self.after_event();
                return result;
            }
            if !self.is_up(node) || !self.run_next_event() {
                return Err(NodeError::Stopped);
            }
        }
        self.fail(&format!("{node:?} never took a call"))
    }

    /// A node whose thread is waiting takes its queued inputs now (the first part of its
    /// round; the rest runs at a wake-up at this same instant, after the other inputs of
    /// the instant, so that proposals made together leave as one batch).
    fn take_inputs_if_idle(&mut self, node: NodeId) {
        let now = self.now_us();
        if self.node(node).is_idle(now) {
            self.with_node(node, |n, ctx| n.take_inputs(ctx));
        }
        self.schedule_wake(node, now);
    }
}
