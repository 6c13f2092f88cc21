//! The simulated cluster: N nodes (core + disk + application), the network and virtual time,
//! all decided by one seed; invariants are checked after every event.
//!
//! Time advances only by running events ([`Cluster::run_for_ms`]); tests act between runs
//! (propose, crash, partition...) at the current virtual instant, and a node handles the
//! Ready resulting from client inputs in a `Poll` event at that same instant (so inputs made
//! together are batched, as a runtime's driver loop would). Messages already in flight when
//! their sender crashes are still delivered (they were on the wire); messages to a crashed
//! node are lost. Each node ticks every
//! `tick_us` from a random phase, messages arrive after the network's delay, fsyncs finish
//! after the disk's delay. On any violation the run panics with `RAFTKV_SIM_SEED=<seed>`, the
//! scenario name and the last events.

use crate::config::Config;
use crate::core::{CoreStatus, Role};
use crate::message::Message;
use crate::sim::app::{CommandLog, SimStateMachine};
use crate::sim::config::SimConfig;
use crate::sim::events::{Event, EventQueue};
use crate::sim::invariants::{Checker, NodeObs, Violation};
use crate::sim::network::Network;
use crate::sim::node::{CompletedRead, DiskMode, NodeCtx, SimNode};
use crate::sim::rng::{mix_seed, SimRng};
use crate::sim::trace::{Fate, Trace};
use crate::types::{LogIndex, NodeId, Term};

/// Sees every message a node releases to the network (time in µs, message), for tests
/// that count or inspect traffic.
pub type MessageTap = Box<dyn FnMut(u64, &Message)>;

/// Makes a fresh application for a node at each (re)start.
pub type AppFactory<S> = Box<dyn FnMut(NodeId) -> S>;

/// N simulated Raft nodes on a simulated network.
pub struct Cluster<S: SimStateMachine = CommandLog> {
    pub(crate) config: SimConfig,
    pub(crate) nodes: Vec<SimNode<S>>,
    pub(crate) make_app: AppFactory<S>,
    pub(crate) network: Network,
    pub(crate) queue: EventQueue,
    pub(crate) checker: Checker,
    pub(crate) rng: SimRng,
    pub(crate) test_rng: SimRng,
    pub(crate) trace: Trace,
    pub(crate) roles: Vec<Option<(Role, Term)>>,
    pub(crate) applied_ever: Vec<LogIndex>,
    pub(crate) poll_scheduled: Vec<bool>,
    pub(crate) tick_period_us: Vec<u64>,
    pub(crate) tap: Option<MessageTap>,
    pub(crate) next_read_ctx: u64,
    pub(crate) completed_reads: Vec<CompletedRead>,
    pub(crate) events_run: u64,
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
    pub(crate) fn schedule_poll(&mut self, node: NodeId) {
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

    pub(crate) fn boot(&mut self, id: NodeId) {
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
}
