//! The simulated cluster: N nodes (core + disk + application), the network and virtual time,
//! all decided by one seed; invariants are checked after every event.
//!
//! Time advances only by running events ([`Cluster::run_for_ms`]); tests act between runs
//! (propose, crash, partition...) at the current virtual instant. Each node ticks every
//! `tick_us` from a random phase, messages arrive after the network's delay, fsyncs finish
//! after the disk's delay. On any violation the run panics with `RAFTKV_SIM_SEED=<seed>`, the
//! scenario name and the last events.

use crate::config::Config;
use crate::core::{CoreStatus, Role};
use crate::error::ProposeError;
use crate::message::Message;
use crate::sim::app::{CommandLog, SimStateMachine};
use crate::sim::events::{Event, EventQueue};
use crate::sim::invariants::{Checker, NodeObs, Violation};
use crate::sim::network::{NetStats, Network, NetworkConfig};
use crate::sim::node::{CompletedRead, DiskMode, NodeCtx, SimNode};
use crate::sim::rng::{mix_seed, SimRng};
use crate::sim::trace::{Fate, Trace};
use crate::types::{LogIndex, NodeId, Term};
use bytes::Bytes;

/// Everything that shapes one simulated run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of nodes (ids `1..=nodes`).
    pub nodes: usize,
    /// The seed that decides everything.
    pub seed: u64,
    /// Scenario name, printed with the seed on failure.
    pub scenario: String,
    /// Virtual time per core tick.
    pub tick_us: u64,
    /// Clock skew: each incarnation's tick period is `tick_us` scaled by a random factor in
    /// `1 ± tick_skew_per_mille / 1000` (0 = perfect clocks).
    pub tick_skew_per_mille: u32,
    /// Template for every node's core config (`id`, `voters` and `seed` are filled in).
    pub raft: Config,
    /// The network.
    pub network: NetworkConfig,
    /// How writes become durable.
    pub disk_mode: DiskMode,
    /// A crash keeps a random prefix of unsynced writes (otherwise it loses them all).
    pub torn_crashes: bool,
    /// Applications snapshot every this many entries (6.824's SnapShotInterval; 0 = never).
    pub snapshot_interval: u64,
    /// Extra bytes in each [`CommandLog`] snapshot.
    pub snapshot_padding_bytes: usize,
    /// Check Figure 2 conformance for every message (see [`crate::sim::invariants`], 9). On
    /// by default; the safety-critical persistence checks (8) are always on.
    pub strict_term_reveal: bool,
}

/// 6.824-like timing: 10 ms ticks, heartbeats every 100 ms (10/s), elections after
/// 300..600 ms, small snapshot chunks so that 2D snapshots span several chunks.
pub fn default_raft_config() -> Config {
    let mut raft = Config::new(NodeId(1), vec![NodeId(1)]);
    raft.election_timeout_ticks = 30;
    raft.heartbeat_interval_ticks = 10;
    raft.snapshot_chunk_bytes = 1024;
    raft
}

impl SimConfig {
    /// Defaults for `nodes` nodes and `seed`. The disk mode rotates with the seed so every
    /// scenario runs with immediate, fast async (0.1..1 ms) and slow async (2..20 ms) fsyncs.
    pub fn new(nodes: usize, seed: u64) -> SimConfig {
        let disk_mode = match seed % 3 {
            0 => DiskMode::Immediate,
            1 => DiskMode::Async {
                fsync_min_us: 100,
                fsync_max_us: 1_000,
            },
            _ => DiskMode::Async {
                fsync_min_us: 2_000,
                fsync_max_us: 20_000,
            },
        };
        SimConfig {
            nodes,
            seed,
            scenario: String::new(),
            tick_us: 10_000,
            tick_skew_per_mille: 0,
            raft: default_raft_config(),
            network: NetworkConfig::default(),
            disk_mode,
            torn_crashes: true,
            snapshot_interval: 0,
            snapshot_padding_bytes: 0,
            strict_term_reveal: true,
        }
    }

    /// Sets the scenario name.
    pub fn scenario(mut self, name: &str) -> SimConfig {
        self.scenario = name.to_string();
        self
    }
}

/// Sees every message a node releases to the network (time in µs, message), for tests
/// that count or inspect traffic.
pub type MessageTap = Box<dyn FnMut(u64, &Message)>;

/// Makes a fresh application for a node at each (re)start.
pub type AppFactory<S> = Box<dyn FnMut(NodeId) -> S>;

/// N simulated Raft nodes on a simulated network.
pub struct Cluster<S: SimStateMachine = CommandLog> {
    pub(crate) config: SimConfig,
    pub(crate) nodes: Vec<SimNode<S>>,
    make_app: AppFactory<S>,
    pub(crate) network: Network,
    queue: EventQueue,
    pub(crate) checker: Checker,
    rng: SimRng,
    test_rng: SimRng,
    trace: Trace,
    roles: Vec<Option<(Role, Term)>>,
    pub(crate) applied_ever: Vec<LogIndex>,
    poll_scheduled: Vec<bool>,
    tick_period_us: Vec<u64>,
    tap: Option<MessageTap>,
    next_read_ctx: u64,
    completed_reads: Vec<CompletedRead>,
    events_run: u64,
}

impl<S: SimStateMachine> std::fmt::Debug for Cluster<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("scenario", &self.config.scenario)
            .field("seed", &self.config.seed)
            .field("now_us", &self.queue.now_us())
            .finish_non_exhaustive()
    }
}

impl Cluster<CommandLog> {
    /// A cluster running 6.824's tester application ([`CommandLog`]).
    pub fn new(config: SimConfig) -> Cluster<CommandLog> {
        let padding = config.snapshot_padding_bytes;
        Cluster::with_app(config, Box::new(move |_| CommandLog::new(padding)))
    }
}

impl<S: SimStateMachine> Cluster<S> {
    /// A cluster whose nodes run the applications `make_app` creates; all nodes start
    /// connected.
    pub fn with_app(config: SimConfig, make_app: AppFactory<S>) -> Cluster<S> {
        let n = config.nodes;
        assert!(n >= 1, "a cluster needs at least one node");
        let mut rng = SimRng::new(config.seed);
        let test_rng = rng.fork();
        let nodes = (1..=n as u64)
            .map(|id| SimNode::new(NodeId(id), config.disk_mode, config.snapshot_interval))
            .collect();
        let mut checker = Checker::new(n);
        checker.set_strict_term_reveal(config.strict_term_reveal);
        let mut cluster = Cluster {
            network: Network::new(n, config.network.clone()),
            config,
            nodes,
            make_app,
            queue: EventQueue::new(),
            checker,
            rng,
            test_rng,
            trace: Trace::default(),
            roles: vec![None; n],
            applied_ever: vec![LogIndex(0); n],
            poll_scheduled: vec![false; n],
            tick_period_us: vec![0; n],
            tap: None,
            next_read_ctx: 1,
            completed_reads: Vec::new(),
            events_run: 0,
        };
        for id in cluster.node_ids() {
            cluster.boot(id);
        }
        cluster.after_event();
        cluster
    }

    // ----- identity and time ------------------------------------------------------------

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Node ids `1..=n`.
    pub fn node_ids(&self) -> Vec<NodeId> {
        (1..=self.nodes.len() as u64).map(NodeId).collect()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes (never: at least one is required).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `base` shifted by `offset` positions around the ring of ids (6.824's `(i + k) % n`).
    pub fn peer(&self, base: NodeId, offset: usize) -> NodeId {
        let n = self.nodes.len() as u64;
        NodeId((base.0 - 1 + offset as u64) % n + 1)
    }

    /// Virtual time now, in milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.queue.now_us() / 1000
    }

    /// Virtual time now, in microseconds.
    pub fn now_us(&self) -> u64 {
        self.queue.now_us()
    }

    /// Events run so far.
    pub fn events_run(&self) -> u64 {
        self.events_run
    }

    /// The test's own seeded random generator (independent of the network's).
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.test_rng
    }

    /// Fails the run: panics with the seed, the scenario, the time and the recent events.
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "RAFTKV_SIM_SEED={} scenario={} at {}ms: {msg}\n--- last events (oldest first) ---\n{}",
            self.config.seed,
            self.config.scenario,
            self.now_ms(),
            self.trace.render()
        )
    }

    /// Fails the run with `msg()` unless `cond` holds.
    pub fn ensure(&self, cond: bool, msg: impl FnOnce() -> String) {
        if !cond {
            self.fail(&msg());
        }
    }

    /// Records a test action in the trace.
    pub fn note(&mut self, what: String) {
        self.trace.action(self.queue.now_us(), what);
    }

    // ----- running ------------------------------------------------------------------------

    /// Runs every event due within the next `ms` milliseconds.
    pub fn run_for_ms(&mut self, ms: u64) {
        let deadline = self.queue.now_us() + ms * 1000;
        self.run_until_us(deadline);
    }

    fn run_until_us(&mut self, deadline_us: u64) {
        while let Some(event) = self.queue.pop_until(deadline_us) {
            self.run_event(event);
        }
        self.queue.advance_to(deadline_us);
    }

    /// Runs until `done` holds (checked every `poll_ms`) or `budget_ms` passed; returns
    /// whether it held.
    pub fn run_until(
        &mut self,
        budget_ms: u64,
        poll_ms: u64,
        mut done: impl FnMut(&Self) -> bool,
    ) -> bool {
        let end = self.now_ms() + budget_ms;
        loop {
            if done(self) {
                return true;
            }
            if self.now_ms() >= end {
                return false;
            }
            self.run_for_ms(poll_ms.min(end - self.now_ms()).max(1));
        }
    }

    fn run_event(&mut self, event: Event) {
        self.events_run += 1;
        match event {
            Event::Tick { node, incarnation } => {
                if self.is_current(node, incarnation) {
                    self.with_node(node, |n, ctx| n.tick(ctx));
                    let tick = self.tick_period_us[node.0 as usize - 1];
                    self.queue.schedule(tick, Event::Tick { node, incarnation });
                }
            }
            Event::Deliver { msg } => self.deliver(msg),
            Event::Poll { node, incarnation } => {
                self.poll_scheduled[node.0 as usize - 1] = false;
                if self.is_current(node, incarnation) {
                    self.with_node(node, |n, ctx| n.poll(ctx));
                }
            }
            Event::FsyncDone { node, incarnation } => {
                if self.is_current(node, incarnation) {
                    self.with_node(node, |n, ctx| n.fsync_done(ctx));
                }
            }
        }
        self.after_event();
    }

    fn is_current(&self, node: NodeId, incarnation: u64) -> bool {
        let n = self.node(node);
        n.is_up() && n.incarnation() == incarnation
    }

    fn deliver(&mut self, msg: Message) {
        let now = self.queue.now_us();
        if !self.network.link_up(msg.from, msg.to) {
            self.network.count_dropped_on_arrival();
            self.trace.message(now, &msg, Fate::LinkDown);
        } else if !self.node(msg.to).is_up() {
            self.network.count_dropped_on_arrival();
            self.trace.message(now, &msg, Fate::NodeDown);
        } else {
            self.trace.message(now, &msg, Fate::Delivered);
            let to = msg.to;
            self.with_node(to, |n, ctx| n.step(msg, ctx));
        }
    }

    /// Runs `f` on a node with a context, then sends what it released and schedules its fsync.
    pub(crate) fn with_node<T>(
        &mut self,
        node: NodeId,
        f: impl FnOnce(&mut SimNode<S>, &mut NodeCtx<'_>) -> Result<T, Violation>,
    ) -> T {
        let mut outbox = Vec::new();
        let i = node.0 as usize - 1;
        let mut ctx = NodeCtx {
            now_us: self.queue.now_us(),
            checker: &mut self.checker,
            outbox: &mut outbox,
            fsync_started: false,
        };
        let result = f(&mut self.nodes[i], &mut ctx);
        let fsync_started = ctx.fsync_started;
        let value = match result {
            Ok(v) => v,
            Err(violation) => self.fail(&violation),
        };
        if fsync_started {
            self.schedule_fsync(node);
        }
        for msg in outbox {
            self.send(msg);
        }
        value
    }

    /// Makes `node` handle its Ready at this instant, after the other inputs of the instant.
    fn schedule_poll(&mut self, node: NodeId) {
        let i = node.0 as usize - 1;
        if !self.poll_scheduled[i] {
            self.poll_scheduled[i] = true;
            let incarnation = self.nodes[i].incarnation();
            self.queue.schedule(0, Event::Poll { node, incarnation });
        }
    }

    fn schedule_fsync(&mut self, node: NodeId) {
        let (mode, incarnation) = (self.node(node).disk_mode(), self.node(node).incarnation());
        let delay = match mode {
            DiskMode::Immediate => 0,
            DiskMode::Async {
                fsync_min_us,
                fsync_max_us,
            } => self.rng.range_inclusive(fsync_min_us, fsync_max_us),
        };
        self.queue
            .schedule(delay, Event::FsyncDone { node, incarnation });
    }

    fn send(&mut self, msg: Message) {
        if let Some(tap) = self.tap.as_mut() {
            tap(self.queue.now_us(), &msg);
        }
        let mut deliveries = self.network.route(&msg, &mut self.rng);
        let last = deliveries.pop();
        for delay in deliveries {
            self.queue
                .schedule(delay, Event::Deliver { msg: msg.clone() });
        }
        match last {
            Some(delay) => self.queue.schedule(delay, Event::Deliver { msg }),
            None => self.trace.message(self.queue.now_us(), &msg, Fate::Lost),
        }
    }

    /// Checks the invariants and traces role changes; runs after every event and action.
    pub(crate) fn after_event(&mut self) {
        let mut obs = Vec::with_capacity(self.nodes.len());
        for n in &self.nodes {
            obs.push(NodeObs {
                id: n.id(),
                status: n.core().map(|c| c.status()),
                written: n.disk().written(),
                durable: n.disk().durable(),
            });
        }
        let result = self.checker.after_event(&obs);
        let now = self.queue.now_us();
        for (i, o) in obs.iter().enumerate() {
            let Some(s) = &o.status else { continue };
            if self.roles[i] != Some((s.role, s.term)) {
                self.roles[i] = Some((s.role, s.term));
                self.trace.role(now, s);
            }
        }
        drop(obs);
        if let Err(violation) = result {
            self.fail(&violation);
        }
        for (i, n) in self.nodes.iter_mut().enumerate() {
            self.applied_ever[i] = self.applied_ever[i].max(n.applied());
            self.completed_reads.extend(n.take_completed_reads());
        }
    }

    // ----- nodes --------------------------------------------------------------------------

    /// A node.
    pub fn node(&self, id: NodeId) -> &SimNode<S> {
        &self.nodes[id.0 as usize - 1]
    }

    /// A node's core status, if it is up.
    pub fn status(&self, id: NodeId) -> Option<CoreStatus> {
        self.node(id).core().map(|c| c.status())
    }

    /// Whether the node runs.
    pub fn is_up(&self, id: NodeId) -> bool {
        self.node(id).is_up()
    }

    /// The node's application, while up.
    pub fn app(&self, id: NodeId) -> Option<&S> {
        self.node(id).app()
    }

    /// The highest index the node has applied in any incarnation.
    pub fn applied_ever(&self, id: NodeId) -> LogIndex {
        self.applied_ever[id.0 as usize - 1]
    }

    /// The checker (committed entries, leaders by term).
    pub fn checker(&self) -> &Checker {
        &self.checker
    }

    fn core_config(&self, id: NodeId, incarnation: u64) -> Config {
        let mut c = self.config.raft.clone();
        c.id = id;
        c.voters = self.node_ids();
        c.seed = mix_seed(&[self.config.seed, id.0, incarnation]);
        c
    }

    fn boot(&mut self, id: NodeId) {
        let i = id.0 as usize - 1;
        let config = self.core_config(id, self.nodes[i].incarnation() + 1);
        let app = (self.make_app)(id);
        if let Err(v) = self.nodes[i].start(config, app, &mut self.checker) {
            self.fail(&v);
        }
        let base = self.config.tick_us.max(1);
        let skew = u64::from(self.config.tick_skew_per_mille.min(900));
        let scale = 1000 - skew + self.rng.range_inclusive(0, 2 * skew);
        self.tick_period_us[i] = (base * scale / 1000).max(1);
        let phase = self.rng.below(base);
        let incarnation = self.nodes[i].incarnation();
        self.queue.schedule(
            phase,
            Event::Tick {
                node: id,
                incarnation,
            },
        );
        // The first Ready hands out the durable snapshot and committed entries.
        self.with_node(id, |n, ctx| n.poll(ctx));
    }

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
        let result = self.with_node(node, |n, ctx| n.propose(data, ctx));
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
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        let result = self.with_node(node, |n, c| n.read_index(ctx, c));
        self.note(format!("read {ctx} on {node:?}: {result:?}"));
        self.schedule_poll(node);
        self.after_event();
        result.map(|()| ctx)
    }

    /// Asks `node` to hand leadership to `to`.
    ///
    /// # Errors
    /// The core's [`ProposeError`].
    pub fn transfer_leader(&mut self, node: NodeId, to: NodeId) -> Result<(), ProposeError> {
        let result = self.with_node(node, |n, ctx| n.transfer_leader(to, ctx));
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
