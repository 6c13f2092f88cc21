//! The randomized nemesis: random faults and client actions against a cluster, then healing
//! and a convergence check. Reusable with any application (kvserver's tests plug in their own
//! command generator).
//!
//! Faults: crashes (torn when the config says so), restarts, disconnections, two-way
//! partitions, one-way and pairwise link cuts, unreliable and long-reordering networks,
//! leadership transfers, and the runtime's own: driver stalls (a node's thread stops while
//! messages and ticks pile up), slow disks (fsyncs of 5-60 ms on one node) and slow nodes
//! (every round costs 1-15 ms), failing disks (I/O errors from some operation on; the node
//! stops and restarts from what reached the disk); client actions: proposals and ReadIndex or lease reads. Scenario knobs (snapshot interval, duplication,
//! PreVote/CheckQuorum, batching and pipelining limits, clock skew, network delay) come from
//! the seed through [`Nemesis::config`]. Every invariant is checked after every event by the
//! cluster itself; the nemesis adds the liveness check at the end.

use crate::core::membership::{MemberChange, MembershipChange, Transition};
use crate::sim::app::{cmd, SimStateMachine};
use crate::sim::cluster::Cluster;
use crate::sim::config::SimConfig;
use crate::sim::host::FsyncLatency;
use crate::sim::rng::SimRng;
use crate::types::{LogIndex, NodeId};
use bytes::Bytes;
use std::collections::BTreeSet;

/// Makes the commands the nemesis proposes.
pub type CommandMaker = Box<dyn FnMut(&mut SimRng) -> Bytes>;

/// A nemesis run: `steps` random actions separated by random pauses.
pub struct Nemesis {
    /// Number of random actions.
    pub steps: u32,
    /// Longest pause between two actions.
    pub max_pause_ms: u64,
    command: CommandMaker,
    /// Configuration changes among the actions ([`Nemesis::with_membership_changes`]).
    membership: Option<MembershipNemesis>,
}

impl std::fmt::Debug for Nemesis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nemesis")
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl Nemesis {
    /// A nemesis proposing random 8-byte integer commands.
    pub fn new(steps: u32) -> Nemesis {
        Nemesis {
            steps,
            max_pause_ms: 250,
            command: Box::new(|rng| cmd(rng.next_u64())),
            membership: None,
        }
    }

    /// Adds configuration changes to the actions: learners added from the spare nodes
    /// (those outside the bootstrap voters), promoted, demoted and removed, voters removed
    /// (the leader among them) and replaced through joint configurations, left
    /// automatically or explicitly, some with a stale expected index. A removed id is
    /// never added again.
    pub fn with_membership_changes(mut self) -> Nemesis {
        self.membership = Some(MembershipNemesis::default());
        self
    }

    /// Uses `make` to create the commands it proposes.
    pub fn with_commands(mut self, make: CommandMaker) -> Nemesis {
        self.command = make;
        self
    }

    /// A cluster configuration whose knobs are chosen by `seed`.
    pub fn config(seed: u64, nodes: usize, scenario: &str) -> SimConfig {
        let mut cfg = SimConfig::new(nodes, seed).scenario(scenario);
        let mut knobs = SimRng::new(seed ^ 0xA5A5_5A5A);
        cfg.snapshot_interval = [0, 7, 25][knobs.index(3)];
        cfg.snapshot_padding_bytes = [0, 3000][knobs.index(2)];
        cfg.network.duplicate_per_mille = [0, 20, 100][knobs.index(3)];
        cfg.raft.check_quorum = knobs.chance(800);
        cfg.raft.pre_vote = knobs.chance(800);
        cfg.raft.max_entries_per_append = [2, 16, 1024][knobs.index(3)];
        cfg.raft.max_inflight_appends = [1, 4, 64][knobs.index(3)];
        cfg.tick_skew_per_mille = [0, 50, 300][knobs.index(3)];
        // Raft needs broadcast time << election timeout (300..600 ms here): at most 40 ms
        // one way, on top of which unreliable mode adds up to 27 ms.
        cfg.network.max_delay_us = [5_000, 15_000, 40_000][knobs.index(3)];
        // Lease reads assume clock rates within `Config::LEASE_CLOCK_DRIFT_PERCENT`: only
        // with the small skew (5% each way, so rates differ by at most ~11%).
        cfg.raft.lease_reads =
            knobs.chance(500) && cfg.raft.check_quorum && cfg.tick_skew_per_mille <= 50;
        cfg
    }

    /// Runs the chaos, heals everything and checks that the cluster converges.
    pub fn run<S: SimStateMachine>(&mut self, c: &mut Cluster<S>) {
        for _ in 0..self.steps {
            self.act(c);
            let pause_ms = c.rng().range_inclusive(1, self.max_pause_ms);
            c.run_for_ms(pause_ms);
        }
        heal_everything(c);
        self.check_convergence(c);
    }

    /// One random fault or client action.
    fn act<S: SimStateMachine>(&mut self, c: &mut Cluster<S>) {
        // Without configuration changes the draw stays what it was, so that pinned seeds
        // replay the same runs.
        let extra = if self.membership.is_some() { 14 } else { 0 };
        let roll = c.rng().below(112 + extra);
        if roll >= 112 {
            if let Some(m) = &mut self.membership {
                m.act(c);
            }
            return;
        }
        match roll {
            0..=34 => {
                // Mostly at the node that believes it leads (so that entries commit), else
                // anywhere (stale leaders, refusals).
                let leader = c.current_leader();
                for _ in 0..=c.rng().below(8) {
                    let id = match leader {
                        Some(l) if c.rng().chance(700) => l,
                        _ => random_node(c),
                    };
                    let data = (self.command)(c.rng());
                    c.start(id, data);
                }
            }
            35..=44 => {
                let id = random_node(c);
                if c.is_up(id) {
                    // The extra draw only with lease reads on keeps the pinned seeds'
                    // runs (regressions.rs) unchanged.
                    if c.config().raft.lease_reads && c.rng().chance(500) {
                        let _ = c.read_lease(id);
                    } else {
                        let _ = c.read_index(id);
                    }
                }
            }
            45..=51 => {
                let id = random_node(c);
                c.crash(id);
            }
            52..=61 => {
                let id = random_node(c);
                if !c.is_up(id) {
                    c.restart(id);
                }
                c.connect(id);
            }
            62..=67 => {
                let id = random_node(c);
                c.disconnect(id);
            }
            68..=73 => random_partition(c),
            74..=81 => c.heal(),
            82..=86 => {
                let on = c.rng().chance(500);
                c.set_unreliable(on);
            }
            87..=88 => {
                let on = c.rng().chance(300);
                c.set_long_reordering(on);
            }
            89..=99 => {
                if let Some(leader) = c.current_leader() {
                    let to = random_node(c);
                    if to != leader {
                        let _ = c.transfer_leader(leader, to);
                    }
                }
            }
            _ => runtime_fault(c),
        }
    }

    /// After healing: one more command commits everywhere, then every node has the same
    /// commit index, last index and applied index, and no read is left pending.
    fn check_convergence<S: SimStateMachine>(&mut self, c: &mut Cluster<S>) {
        // Late messages from a long-reordering period may still be in flight.
        c.run_for_ms(2_500);
        let members = match &self.membership {
            Some(_) => MembershipNemesis::settle(c),
            None => c.node_ids(),
        };
        let n = members.len();
        let data = (self.command)(c.rng());
        let index = c.one_bytes(data, n, true);
        // Within a few heartbeat intervals every node learns the final commit index.
        c.run_until(5_000, 10, |c| {
            let s: Vec<_> = members.iter().filter_map(|id| c.status(*id)).collect();
            // The application runs behind the node: wait for what it applied, not for
            // what the node handed out.
            s.len() == n
                && s.iter().all(|x| {
                    x.commit == s[0].commit
                        && x.last_index == s[0].last_index
                        && c.node(x.id).applied() == x.commit
                })
        });
        let statuses: Vec<_> = members.iter().filter_map(|id| c.status(*id)).collect();
        c.ensure(statuses.len() == n, || {
            "a node is down after healing".into()
        });
        let first = &statuses[0];
        for s in &statuses {
            c.ensure(s.commit == first.commit && s.commit >= index, || {
                format!("commit did not converge: {statuses:?}")
            });
            c.ensure(s.last_index == first.last_index, || {
                format!("logs did not converge: {statuses:?}")
            });
            let applied = c.node(s.id).applied();
            c.ensure(applied == s.commit, || {
                format!("{:?} applied {applied:?} of {:?}", s.id, s.commit)
            });
        }
        let pending = c.checker().pending_reads();
        c.ensure(pending == 0, || {
            format!("{pending} reads never finished after healing")
        });
    }
}

/// The configuration-change part of a nemesis run.
#[derive(Debug, Default)]
struct MembershipNemesis {
    /// Ids ever proposed for removal: never added again (a node id is never reused).
    removed: BTreeSet<NodeId>,
}

impl MembershipNemesis {
    /// One random change, proposed at the node that believes it leads.
    fn act<S: SimStateMachine>(&mut self, c: &mut Cluster<S>) {
        let Some(leader) = c.current_leader() else {
            return;
        };
        let Some(status) = c.status(leader) else {
            return;
        };
        let m = status.membership.clone();
        let voters: Vec<NodeId> = m.voters.iter().copied().collect();
        let learners: Vec<NodeId> = m.learners.iter().copied().collect();
        let spares: Vec<NodeId> = c
            .node_ids()
            .into_iter()
            .filter(|id| !m.contains(*id) && !self.removed.contains(id))
            .collect();
        let pick = |c: &mut Cluster<S>, ids: &[NodeId]| -> Option<NodeId> {
            (!ids.is_empty()).then(|| ids[c.rng().index(ids.len())])
        };
        use MemberChange::{AddLearner, AddVoter, Remove};
        let (transition, changes) = if m.is_joint() {
            (Transition::LeaveJoint, Vec::new())
        } else {
            match c.rng().below(7) {
                0 | 1 => match pick(c, &spares) {
                    Some(s) => (Transition::Simple, vec![AddLearner(s)]),
                    None => return,
                },
                2 => match pick(c, &learners) {
                    Some(l) => (Transition::Simple, vec![AddVoter(l)]),
                    None => return,
                },
                3 => match pick(c, &voters) {
                    Some(v) if voters.len() > 1 => (Transition::Simple, vec![Remove(v)]),
                    _ => return,
                },
                4 => match pick(c, &voters) {
                    Some(v) if voters.len() > 1 => (Transition::Simple, vec![AddLearner(v)]),
                    _ => return,
                },
                5 => match pick(c, &learners) {
                    Some(l) => (Transition::Simple, vec![Remove(l)]),
                    None => return,
                },
                _ => {
                    // Replace a voter by a learner or a spare, as one joint change.
                    let incoming = [learners.as_slice(), spares.as_slice()].concat();
                    match (pick(c, &voters), pick(c, &incoming)) {
                        (Some(v), Some(new)) => {
                            let auto_leave = c.rng().chance(700);
                            (
                                Transition::EnterJoint { auto_leave },
                                vec![Remove(v), AddVoter(new)],
                            )
                        }
                        _ => return,
                    }
                }
            }
        };
        let expected_index = match c.rng().below(10) {
            0 => LogIndex::ZERO,
            1 => LogIndex(status.membership_index.0.saturating_sub(1)),
            _ => status.membership_index,
        };
        let change = MembershipChange {
            transition,
            changes: changes.clone(),
            expected_index,
            context: Bytes::new(),
        };
        if c.propose_membership(leader, change).is_ok() {
            for ch in changes {
                if let Remove(id) = ch {
                    self.removed.insert(id);
                }
            }
        }
    }

    /// After healing: waits for a configuration that is not joint (leaving it explicitly
    /// if nothing will), and returns its members, the nodes that must converge.
    fn settle<S: SimStateMachine>(c: &mut Cluster<S>) -> Vec<NodeId> {
        for _ in 0..50 {
            c.run_for_ms(200);
            let Some(leader) = c.current_leader() else {
                continue;
            };
            let Some(status) = c.status(leader) else {
                continue;
            };
            if !status.membership.is_joint() {
                return status.membership.members().into_iter().collect();
            }
            if !status.membership.auto_leave {
                let _ = c.propose_membership(leader, MembershipChange::leave_joint());
            }
        }
        let nodes: Vec<String> = c
            .node_ids()
            .into_iter()
            .map(|id| match c.status(id) {
                Some(s) => format!(
                    "{id:?} {:?} {:?} commit {:?} applied {:?} last {:?} [{}] at {:?}",
                    s.role,
                    s.term,
                    s.commit,
                    s.applied,
                    s.last_index,
                    s.membership,
                    s.membership_index
                ),
                None => format!("{id:?} down"),
            })
            .collect();
        c.fail(&format!(
            "no leader with a settled configuration after healing: {nodes:#?}"
        ))
    }
}

fn random_node<S: SimStateMachine>(c: &mut Cluster<S>) -> NodeId {
    let n = c.len() as u64;
    NodeId(c.rng().below(n) + 1)
}

/// A fault of the node runtime or a partial partition.
fn runtime_fault<S: SimStateMachine>(c: &mut Cluster<S>) {
    let id = random_node(c);
    match c.rng().below(5) {
        0 => {
            // Mostly shorter than an election timeout, sometimes well beyond it.
            let ms = if c.rng().chance(500) {
                c.rng().range_inclusive(10, 250)
            } else {
                c.rng().range_inclusive(250, 1500)
            };
            c.stall(id, ms);
        }
        1 => {
            let latency = if c.rng().chance(600) {
                let min_us = c.rng().range_inclusive(5_000, 20_000);
                let max_us = min_us + c.rng().range_inclusive(0, 40_000);
                FsyncLatency { min_us, max_us }
            } else {
                c.config().fsync_latency
            };
            c.set_fsync_latency(id, latency);
        }
        2 => {
            let us = if c.rng().chance(600) {
                c.rng().range_inclusive(1_000, 15_000)
            } else {
                0
            };
            c.set_round_cost_us(id, us);
        }
        3 => {
            let mutations = c.rng().below(40);
            c.fail_disk_after(id, mutations);
        }
        _ => {
            let other = random_node(c);
            if other != id {
                if c.rng().chance(500) {
                    c.cut_link(id, other);
                } else {
                    c.cut_between(id, other);
                }
            }
        }
    }
}

fn random_partition<S: SimStateMachine>(c: &mut Cluster<S>) {
    let mut ids = c.node_ids();
    c.rng().shuffle(&mut ids);
    let cut = 1 + c.rng().index(ids.len() - 1);
    let (a, b) = ids.split_at(cut);
    c.partition(&[a.to_vec(), b.to_vec()]);
}

/// Heals the network, makes it reliable, gives every node its normal (working) disk and speed back,
/// restarts and reconnects every node.
pub fn heal_everything<S: SimStateMachine>(c: &mut Cluster<S>) {
    c.heal();
    c.set_unreliable(false);
    c.set_long_reordering(false);
    let latency = c.config().fsync_latency;
    for id in c.node_ids() {
        c.set_fsync_latency(id, latency);
        c.set_round_cost_us(id, 0);
        c.repair_disk(id);
        if !c.is_up(id) {
            c.restart(id);
        }
        c.connect(id);
    }
}
