//! The simulated cluster: N nodes, each running the node runtime's real executor over
//! `DiskStorage` on its own crashable `SimFs`, on a simulated network, in virtual time,
//! all decided by one seed; invariants are checked after every event.
//!
//! Time advances only by running events ([`Cluster::run_for_ms`]); tests act between runs
//! (propose, crash, partition, stall...) at the current virtual instant. A node's thread
//! wakes up for its next tick, when an input arrives, or when its application made room
//! in the apply channel, and then runs one round of its executor; what the round spends
//! (fsync latency, a slow CPU) keeps the thread busy, and inputs arriving meanwhile wait
//! in its queue, as on a real driver thread. Messages leave at the instant the thread
//! sent them; messages already in flight when their sender crashes are still delivered
//! (they were on the wire); messages to a crashed node are lost. On any violation the run
//! panics with `RAFTKV_SIM_SEED=<seed>`, the scenario name and the last events.

use crate::core::{CoreStatus, Role};
use crate::message::Message;
use crate::node::NodeConfig;
use crate::sim::app::{CommandLog, SimStateMachine};
use crate::sim::config::SimConfig;
use crate::sim::events::{Event, EventQueue};
use crate::sim::host::{Boot, CompletedRead, NodeCtx, SimNode};
use crate::sim::invariants::{Checker, NodeObs, Violation};
use crate::sim::network::Network;
use crate::sim::rng::{mix_seed, SimRng};
use crate::sim::trace::{Fate, Trace};
use crate::sim::transport::Sent;
use crate::storage::sim_fs::CrashMode;
use crate::storage::DiskOptions;
use crate::types::{LogIndex, NodeId, Term};
use std::time::Duration;

/// Sees every message a node releases to the network (time in µs, message), for tests
/// that count or inspect traffic.
pub type MessageTap = Box<dyn FnMut(u64, &Message)>;

/// Makes a fresh application for a node at each (re)start.
pub type AppFactory<S> = Box<dyn FnMut(NodeId) -> S>;

/// N simulated Raft nodes on a simulated network.
pub struct Cluster<S: SimStateMachine = CommandLog> {
    config: SimConfig,
    pub(crate) nodes: Vec<SimNode<S>>,
    make_app: AppFactory<S>,
    pub(crate) network: Network,
    queue: EventQueue,
    pub(crate) checker: Checker,
    rng: SimRng,
    test_rng: SimRng,
    trace: Trace,
    pub(crate) roles: Vec<Option<(Role, Term)>>,
    applied_ever: Vec<LogIndex>,
    pub(crate) tap: Option<MessageTap>,
    pub(crate) next_read_ctx: u64,
    pub(crate) completed_reads: Vec<CompletedRead>,
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
    /// connected, within the first tick.
    pub fn with_app(config: SimConfig, make_app: AppFactory<S>) -> Cluster<S> {
        let n = config.nodes;
        assert!(n >= 1, "a cluster needs at least one node");
        let mut rng = SimRng::new(config.seed);
        let test_rng = rng.fork();
        let nodes = (1..=n as u64)
            .map(|id| {
                let seed = mix_seed(&[config.seed, id, 0xD15C]);
                SimNode::new(
                    NodeId(id),
                    config.fsync_latency,
                    seed,
                    config.snapshot_interval,
                )
            })
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
            tap: None,
            next_read_ctx: 1,
            completed_reads: Vec::new(),
            events_run: 0,
        };
        let tick = cluster.config.tick_us.max(1);
        for id in cluster.node_ids() {
            let phase = cluster.rng.below(tick);
            cluster.queue.schedule(phase, Event::Boot { node: id });
        }
        cluster.run_until_us(tick);
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

    /// Runs the next event, whenever it is due; false if nothing is scheduled.
    pub(crate) fn run_next_event(&mut self) -> bool {
        match self.queue.pop_until(u64::MAX) {
            Some(event) => {
                self.run_event(event);
                true
            }
            None => false,
        }
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
            Event::Wake {
                node,
                incarnation,
                generation,
            } => self.wake(node, incarnation, generation),
            Event::Deliver { msg } => self.deliver(msg),
            Event::Release {
                node,
                incarnation,
                msg,
            } => {
                if self.is_current(node, incarnation) {
                    self.send(msg);
                }
            }
            Event::RunApp { node, incarnation } => {
                self.node_mut(node).app_run_started();
                if self.is_current(node, incarnation) {
                    let wake = self.with_node(node, |n, ctx| n.run_app(ctx));
                    if wake {
                        self.schedule_wake(node, self.now_us());
                    }
                }
            }
            Event::Boot { node } => self.boot(node),
        }
        self.after_event();
    }

    fn wake(&mut self, node: NodeId, incarnation: u64, generation: u64) {
        if !self.is_current(node, incarnation) || !self.node_mut(node).take_wake(generation) {
            return;
        }
        let busy_until = self.node(node).busy_until_us();
        if busy_until > self.now_us() {
            return self.schedule_wake(node, busy_until);
        }
        self.with_node(node, |n, ctx| n.run_round(ctx));
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
            let input = crate::node::input::NodeInput::Messages(vec![msg]);
            self.node_mut(to).submit(input, now);
            self.schedule_wake(to, now);
        }
    }

    /// Runs `f` on a node with a context, then routes what it sent and schedules what it
    /// needs next (its next wake-up, its application's run); a node whose storage failed
    /// is crashed.
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
        };
        let result = f(&mut self.nodes[i], &mut ctx);
        let value = match result {
            Ok(v) => v,
            Err(violation) => self.fail(&violation),
        };
        self.route(node, outbox);
        self.after_node(node);
        value
    }

    fn route(&mut self, node: NodeId, outbox: Vec<Sent>) {
        let now = self.queue.now_us();
        let incarnation = self.node(node).incarnation();
        for Sent { at_us, msg, .. } in outbox {
            if at_us <= now {
                self.send(msg);
            } else {
                let release = Event::Release {
                    node,
                    incarnation,
                    msg,
                };
                self.queue.schedule(at_us - now, release);
            }
        }
    }

    fn after_node(&mut self, node: NodeId) {
        if self.node(node).stopped() {
            let reason = self.node(node).failure().unwrap_or_default();
            self.note(format!("{node:?} stopped: {reason}"));
            return self.crash(node);
        }
        let now = self.queue.now_us();
        if self.node_mut(node).request_app_run() {
            let n = self.node(node);
            let at = n.busy_until_us().max(now);
            let incarnation = n.incarnation();
            self.queue
                .schedule(at - now, Event::RunApp { node, incarnation });
        }
        if let Some(at) = self.node(node).next_wake_at(now) {
            self.schedule_wake(node, at);
        }
    }

    /// Makes `node` wake up at `at_us` (not before its thread is free), unless an earlier
    /// wake-up is already scheduled.
    pub(crate) fn schedule_wake(&mut self, node: NodeId, at_us: u64) {
        let now = self.queue.now_us();
        let n = self.node_mut(node);
        let at = at_us.max(now).max(n.busy_until_us());
        let Some(generation) = n.request_wake(at) else {
            return;
        };
        let wake = Event::Wake {
            node,
            incarnation: n.incarnation(),
            generation,
        };
        self.queue.schedule(at - now, wake);
    }

    pub(crate) fn send(&mut self, msg: Message) {
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
        let statuses: Vec<Option<CoreStatus>> = self
            .nodes
            .iter()
            .map(SimNode::status_between_rounds)
            .collect();
        let models: Vec<_> = self.nodes.iter().map(|n| n.model().lock()).collect();
        let obs: Vec<NodeObs<'_>> = self
            .nodes
            .iter()
            .zip(&models)
            .zip(statuses)
            .map(|((n, m), status)| NodeObs {
                id: n.id(),
                status,
                written: m.written(),
                durable: m.durable(),
            })
            .collect();
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
        drop(models);
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

    pub(crate) fn node_mut(&mut self, id: NodeId) -> &mut SimNode<S> {
        &mut self.nodes[id.0 as usize - 1]
    }

    /// A node's core status, if it is up.
    pub fn status(&self, id: NodeId) -> Option<CoreStatus> {
        self.node(id).status()
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

    /// The node runtime's settings for node `id`'s next incarnation.
    fn node_config(&self, id: NodeId, incarnation: u64) -> NodeConfig {
        let mut raft = self.config.raft.clone();
        raft.id = id;
        raft.voters = self
            .node_ids()
            .into_iter()
            .take(self.config.bootstrap_voters.max(1))
            .collect();
        raft.seed = mix_seed(&[self.config.seed, id.0, incarnation]);
        NodeConfig {
            raft,
            tick_interval: Duration::from_micros(self.config.tick_us.max(1)),
            read_timeout: Duration::from_millis(self.config.read_timeout_ms),
            leader_sync_delay: Duration::from_micros(self.config.leader_sync_delay_us),
            // Far more than a simulated node ever queues; the runtime's 16 Ki slots would
            // cost a large allocation at every boot.
            inbox_capacity: 1024,
        }
    }

    fn disk_options(&self, id: NodeId) -> DiskOptions {
        DiskOptions {
            segment_bytes: self.config.wal_segment_bytes,
            write_buffer_bytes: self.config.wal_write_buffer_bytes,
            ..DiskOptions::new("sim", id)
        }
    }

    /// A random clock rate within the configured skew, as a tick period.
    fn skewed_tick_period_us(&mut self) -> u64 {
        let base = self.config.tick_us.max(1);
        let skew = u64::from(self.config.tick_skew_per_mille.min(900));
        let scale = 1000 - skew + self.rng.range_inclusive(0, 2 * skew);
        (base * scale / 1000).max(1)
    }

    /// Starts a new incarnation of `id` from its disk and runs its first round.
    pub(crate) fn boot(&mut self, id: NodeId) {
        let incarnation = self.node(id).incarnation() + 1;
        let boot = Boot {
            config: self.node_config(id, incarnation),
            disk: self.disk_options(id),
            app: (self.make_app)(id),
            now_us: self.queue.now_us(),
            tick_period_us: self.skewed_tick_period_us(),
            apply_capacity: self.config.apply_capacity,
            strict_term_reveal: self.config.strict_term_reveal,
        };
        let i = id.0 as usize - 1;
        if let Err(v) = self.nodes[i].boot(boot, &mut self.checker) {
            self.fail(&v);
        }
        // The first round hands out the recovered snapshot and committed entries.
        self.with_node(id, |n, ctx| n.run_round(ctx));
    }

    /// How a crash treats what is not durable, drawn from the run's seed. Half of the
    /// torn crashes write unsynced pages back out of order: 4 KiB pages, 512-byte
    /// sectors, or 64-byte pieces (smaller than any disk's unit, so that the short
    /// unsynced tails the simulated nodes leave get holes too). The choice comes from
    /// the crash's own seed, so that the run's other draws stay as they were.
    pub(crate) fn crash_mode(&mut self) -> CrashMode {
        if !self.config.torn_crashes {
            return CrashMode::DropUnsynced;
        }
        let seed = self.rng.next_u64();
        let zero_fill = self.rng.chance(500);
        let keep_unsynced_names = self.rng.chance(500);
        let out_of_order = |page_bytes| CrashMode::OutOfOrderWriteback {
            seed,
            page_bytes,
            keep_unsynced_names,
        };
        match seed % 6 {
            0 => out_of_order(4096),
            1 => out_of_order(512),
            2 => out_of_order(64),
            _ => CrashMode::TornWrites {
                seed,
                zero_fill,
                keep_unsynced_names,
            },
        }
    }
}
