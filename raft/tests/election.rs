//! MIT 6.824 Lab 2A (leader election), ported to the seeded simulator. Each scenario runs
//! over a range of seeds (`RAFTKV_SIM_SEEDS` for more, `RAFTKV_SIM_SEED` to replay one).
//! Budgets are 6.824's: a leader within 5 s (`check_one_leader`), 1 s = `ELECTION_TIMEOUT_MS`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use raft::sim::{run_seeds, Cluster, SimConfig};
use raft::Term;

/// 6.824's `RaftElectionTimeout`.
const ELECTION_TIMEOUT_MS: u64 = 1000;
const SEEDS: u64 = 50;

fn cluster(nodes: usize, seed: u64, scenario: &str) -> Cluster {
    Cluster::new(SimConfig::new(nodes, seed).scenario(scenario))
}

// TestInitialElection2A
#[test]
fn initial_election() {
    run_seeds("initial_election", SEEDS, |seed| {
        let mut c = cluster(3, seed, "initial_election");
        c.check_one_leader();
        c.run_for_ms(50);
        let term1 = c.check_terms();
        c.ensure(term1 >= Term(1), || {
            format!("term is {term1:?}, but should be at least 1")
        });
        // 6.824 only warns here; the simulated network has no failures and no scheduling
        // hiccups, so a term change would be a real bug and we fail on it.
        c.run_for_ms(2 * ELECTION_TIMEOUT_MS);
        let term2 = c.check_terms();
        c.ensure(term1 == term2, || {
            format!("term changed from {term1:?} to {term2:?} without failures")
        });
        c.check_one_leader();
    });
}

// TestReElection2A
#[test]
fn re_election() {
    run_seeds("re_election", SEEDS, |seed| {
        let mut c = cluster(3, seed, "re_election");
        let servers = c.len();
        let leader1 = c.check_one_leader();
        // If the leader disconnects, a new one should be elected.
        c.disconnect(leader1);
        c.check_one_leader();
        // If the old leader rejoins, that shouldn't disturb the new leader.
        c.connect(leader1);
        let leader2 = c.check_one_leader();
        // If there's no quorum, no new leader should be elected.
        c.disconnect(leader2);
        c.disconnect(c.peer(leader2, 1));
        c.run_for_ms(ELECTION_TIMEOUT_MS);
        c.check_no_leader();
        // If a quorum arises, it should elect a leader.
        c.connect(c.peer(leader2, 1));
        c.check_one_leader();
        // Re-join of last node shouldn't prevent leader from existing.
        c.connect(leader2);
        c.check_one_leader();
        assert_eq!(servers, 3);
    });
}

// TestManyElections2A
#[test]
fn many_elections() {
    run_seeds("many_elections", SEEDS, |seed| {
        let mut c = cluster(7, seed, "many_elections");
        let ids = c.node_ids();
        c.check_one_leader();
        for _ in 1..10 {
            // Disconnect three nodes (possibly the same one twice, as in 6.824).
            let victims: Vec<_> = (0..3).map(|_| ids[c.rng().index(ids.len())]).collect();
            for v in &victims {
                c.disconnect(*v);
            }
            // Either the current leader should still be alive, or the remaining four should
            // elect a new one.
            c.check_one_leader();
            for v in &victims {
                c.connect(*v);
            }
        }
        c.check_one_leader();
    });
}
