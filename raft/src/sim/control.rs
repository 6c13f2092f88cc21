//! Test-facing controls of the simulated cluster: faults (crash, restart, disconnection,
//! partitions, network modes, clock rates) and client actions (proposals, reads, leadership
//! transfers). Every action is recorded in the trace and followed by an invariant check.

use crate::error::ProposeError;
use crate::sim::app::SimStateMachine;
use crate::sim::cluster::{Cluster, MessageTap};
use crate::sim::network::{NetStats, NetworkConfig};
use crate::sim::node::{CompletedRead, DiskMode};
use crate::types::{LogIndex, NodeId, Term};
use bytes::Bytes;

impl<S: SimStateMachine> Cluster<S> {
    /// Sets a node's tick period (its clock rate) from its next tick on, until it restarts.
    pub fn set_tick_period_us(&mut self, id: NodeId, period_us: u64) {
        self.note(format!("{id:?} ticks every {period_us} us"));
        self.tick_period_us[id.0 as usize - 1] = period_us.max(1);
    }

    /// 6.824 `crash1`: disconnects the node and kills it; its durable disk survives (and,
    /// with torn crashes, a random prefix of its unsynced writes).
    pub fn crash(&mut self, id: NodeId) {
        self.network.disconnect(id);
        if !self.is_up(id) {
            return;
        }
        self.note(format!("crash {id:?}"));
        let torn = self.config.torn_crashes;
        let i = id.0 as usize - 1;
        if let Err(v) = self.nodes[i].crash(&mut self.rng, torn, &mut self.checker) {
            self.fail(&v);
        }
        self.roles[i] = None;
        self.poll_scheduled[i] = false;
        self.after_event();
    }

    /// 6.824 `start1`: kills the node if it runs, then starts a new incarnation from its
    /// durable disk. The node stays disconnected until [`Cluster::connect`].
    pub fn restart(&mut self, id: NodeId) {
        self.crash(id);
        self.note(format!("restart {id:?}"));
        self.boot(id);
        self.after_event();
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

    /// Removes the partition.
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

    /// Changes every node's disk mode.
    pub fn set_disk_mode(&mut self, mode: DiskMode) {
        self.nodes.iter_mut().for_each(|n| n.set_disk_mode(mode));
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

    /// Proposes `data` on `node` (6.824 `Start` with the refusal reason).
    ///
    /// # Errors
    /// The core's [`ProposeError`].
    ///
    /// # Panics
    /// If the node is down (a test bug).
    pub fn propose(&mut self, node: NodeId, data: Bytes) -> Result<(LogIndex, Term), ProposeError> {
        let result = self.with_node(node, |n, _| Ok(n.propose(data)));
        if let Ok((index, term)) = result {
            self.note(format!(
                "{node:?} accepted a proposal at {index:?}/{term:?}"
            ));
        }
        self.schedule_poll(node);
        self.after_event();
        result
    }

    /// Starts a ReadIndex read on `node`; returns its context.
    ///
    /// # Errors
    /// The core's [`ProposeError`].
    pub fn read_index(&mut self, node: NodeId) -> Result<u64, ProposeError> {
        self.start_read(node, false)
    }

    /// Starts a lease read on `node` (a ReadIndex read unless the leader's lease holds);
    /// returns its context.
    ///
    /// # Errors
    /// The core's [`ProposeError`].
    pub fn read_lease(&mut self, node: NodeId) -> Result<u64, ProposeError> {
        self.start_read(node, true)
    }

    fn start_read(&mut self, node: NodeId, lease: bool) -> Result<u64, ProposeError> {
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        let result = self.with_node(node, |n, c| n.start_read(ctx, lease, c));
        let kind = if lease { "lease read" } else { "read" };
        self.note(format!("{kind} {ctx} on {node:?}: {result:?}"));
        self.schedule_poll(node);
        self.after_event();
        result.map(|()| ctx)
    }

    /// Asks `node` to hand leadership to `to`.
    ///
    /// # Errors
    /// The core's [`ProposeError`].
    pub fn transfer_leader(&mut self, node: NodeId, to: NodeId) -> Result<(), ProposeError> {
        let result = self.with_node(node, |n, _| Ok(n.transfer_leader(to)));
        self.note(format!("transfer {node:?} -> {to:?}: {result:?}"));
        self.schedule_poll(node);
        self.after_event();
        result
    }

    /// Reads served since the last call, in the order they were served.
    pub fn take_completed_reads(&mut self) -> Vec<CompletedRead> {
        std::mem::take(&mut self.completed_reads)
    }
}
