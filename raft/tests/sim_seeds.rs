//! The randomized nemesis ([`raft::sim::nemesis`]) over many seeds: random partitions,
//! disconnections, crashes (torn: a random prefix of unsynced writes survives), restarts,
//! unreliable and long-reordering networks with duplication, clock skew, proposals, ReadIndex
//! reads and leadership transfers, with every invariant checked after every event; then
//! everything heals and the cluster must converge (6.824 `one` on all nodes, identical
//! commit/applied/last index everywhere, every pending read finished).
//!
//! Default: 300 seeds for 3 and 5 nodes, 60 for 7 (about 20 s in debug on 2 cores). Long mode:
//! `RAFTKV_SIM_SEEDS=5000 cargo test --release -p raft --test sim_seeds` (or a range `a..b`;
//! add `RAFTKV_SIM_KEEP_GOING=1` to list every failing seed). Replay: `RAFTKV_SIM_SEED=<n>`.

use raft::sim::nemesis::Nemesis;
use raft::sim::{run_seeds, Cluster};

fn nemesis(scenario: &str, nodes: usize, default_seeds: u64) {
    run_seeds(scenario, default_seeds, |seed| {
        let mut c = Cluster::new(Nemesis::config(seed, nodes, scenario));
        Nemesis::new(300).run(&mut c);
    });
}

#[test]
fn nemesis_three_nodes() {
    nemesis("nemesis_three_nodes", 3, 300);
}

#[test]
fn nemesis_five_nodes() {
    nemesis("nemesis_five_nodes", 5, 300);
}

#[test]
fn nemesis_seven_nodes() {
    nemesis("nemesis_seven_nodes", 7, 60);
}
