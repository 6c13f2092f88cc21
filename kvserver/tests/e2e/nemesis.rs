//! The crash test's nemesis: SIGKILLs nodes and restarts them from their data
//! directories, freezes nodes with SIGSTOP then thaws them with SIGCONT, and stops nodes
//! with SIGTERM (which must exit 0) then restarts them; often the leader, otherwise a
//! random node. Never more than a minority is down or frozen at once,
//! so the cluster can always make progress once the current fault heals.
//!
//! A node that dies on its own is a bug and fails the test (with its log), unless it
//! failed to bind its port (then it is restarted and counted).

use super::cluster::ProcessCluster;
use super::process::Signal;
use super::rng::Rng;
use std::time::{Duration, Instant};

/// What the nemesis did.
#[derive(Debug, Default)]
pub struct NemesisReport {
    /// SIGKILLs (each followed by a restart).
    pub kills: u64,
    /// SIGSTOP/SIGCONT pairs.
    pub pauses: u64,
    /// SIGTERMs (each followed by a restart).
    pub terminations: u64,
    /// Faults aimed at the node that reported itself leader.
    pub leader_faults: u64,
    /// Restarts that failed to bind their port and were retried.
    pub port_retries: u64,
    /// Times every node was SIGKILLed at once and restarted.
    pub whole_cluster_crashes: u64,
}

/// The fault schedule of one run.
#[derive(Debug)]
pub struct Nemesis {
    rng: Rng,
    /// Most nodes down or frozen at once: a minority.
    max_faulty: usize,
    /// The report so far.
    pub report: NemesisReport,
}

impl Nemesis {
    /// A nemesis for a cluster of `nodes`.
    pub fn new(nodes: usize, rng: Rng) -> Nemesis {
        Nemesis {
            rng,
            max_faulty: (nodes - 1) / 2,
            report: NemesisReport::default(),
        }
    }

    /// Injects and heals faults until `duration` has passed, then heals everything.
    pub fn run(&mut self, cluster: &mut ProcessCluster, duration: Duration) {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            self.check_deaths(cluster);
            let faulty = faulty_nodes(cluster);
            if faulty.len() < self.max_faulty && (faulty.is_empty() || self.rng.chance(50)) {
                self.inject(cluster);
            } else if !faulty.is_empty() {
                let victim = faulty[self.rng.below(faulty.len() as u64) as usize];
                heal(cluster, victim);
            }
            std::thread::sleep(Duration::from_millis(self.rng.between(100, 1500)));
        }
        self.heal_all(cluster);
    }

    /// SIGKILLs every node at once (a whole-cluster crash, beyond the minority rule:
    /// it checks recovery, not availability), then restarts them all.
    pub fn crash_all(&mut self, cluster: &mut ProcessCluster) {
        self.check_deaths(cluster);
        for i in 0..cluster.len() {
            cluster.kill(i);
        }
        for i in 0..cluster.len() {
            cluster.spawn(i);
        }
        self.report.whole_cluster_crashes += 1;
    }

    /// Restarts every killed node and thaws every frozen one.
    pub fn heal_all(&mut self, cluster: &mut ProcessCluster) {
        self.check_deaths(cluster);
        for i in faulty_nodes(cluster) {
            heal(cluster, i);
        }
    }

    fn inject(&mut self, cluster: &mut ProcessCluster) {
        let healthy: Vec<usize> = (0..cluster.len())
            .filter(|&i| cluster.is_started(i) && !cluster.is_paused(i))
            .collect();
        let leader = if self.rng.chance(60) {
            cluster.leader()
        } else {
            None
        };
        let target = match leader.filter(|l| healthy.contains(l)) {
            Some(l) => {
                self.report.leader_faults += 1;
                l
            }
            None => healthy[self.rng.below(healthy.len() as u64) as usize],
        };
        match self.rng.below(100) {
            0..=54 => {
                cluster.kill(target);
                self.report.kills += 1;
            }
            55..=79 => {
                cluster.pause(target);
                self.report.pauses += 1;
            }
            _ => {
                let status = cluster.stop_with(target, Signal::Term);
                let tail = cluster.log_tail(target, 3);
                assert!(
                    status.success(),
                    "node {} on SIGTERM: {status}\n{tail}",
                    target + 1
                );
                self.report.terminations += 1;
            }
        }
    }

    /// Fails on a node that exited on its own; restarts one that lost its port.
    fn check_deaths(&mut self, cluster: &mut ProcessCluster) {
        for i in 0..cluster.len() {
            let Some(status) = cluster.exited(i) else {
                continue;
            };
            let tail = cluster.log_tail(i, 1);
            if tail.contains("cannot listen") {
                self.report.port_retries += 1;
                cluster.spawn(i);
                continue;
            }
            panic!("node {} exited on its own ({status}): {tail}", i + 1);
        }
    }
}

/// Nodes that are killed (not started) or frozen.
fn faulty_nodes(cluster: &ProcessCluster) -> Vec<usize> {
    (0..cluster.len())
        .filter(|&i| !cluster.is_started(i) || cluster.is_paused(i))
        .collect()
}

fn heal(cluster: &mut ProcessCluster, i: usize) {
    if cluster.is_paused(i) {
        cluster.resume(i);
    } else if !cluster.is_started(i) {
        cluster.spawn(i);
    }
}
