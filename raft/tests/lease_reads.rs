//! Lease reads (thesis 6.4.1) against the fault the lease must survive: the leader is cut
//! off while it holds a lease, the others elect a new leader that commits and applies new
//! entries, and the old leader keeps being asked for lease reads. The simulator's checker
//! (invariant 10) fails a run that serves any read below an index already applied somewhere
//! when the read began. Timing is virtual: 10 ms ticks, election timeout 30 ticks,
//! heartbeats every 10, so the lease is 23 ticks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use raft::core::Role;
use raft::sim::{cmd, run_seeds, Cluster, SimConfig};
use raft::NodeId;
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

const SEEDS: u64 = 40;

/// What one run of the scenario saw.
struct Outcome {
    /// Lease reads the cut-off leader served (with an index) after the cut.
    served_after_cut: usize,
    /// Whether the majority side elected a leader and committed after the cut.
    new_leader_committed: bool,
}

/// Cuts the leader off once its lease is established, then for two seconds asks it for a
/// lease read every 2 ms while the majority side writes every 20 ms. `leader_tick_us`
/// slows the leader's clock (default 10 ms per tick).
fn cut_off_leader(seed: u64, leader_tick_us: Option<u64>) -> Outcome {
    let mut cfg = SimConfig::new(3, seed).scenario("lease_cut_off_leader");
    cfg.raft.check_quorum = true;
    cfg.raft.pre_vote = true;
    cfg.raft.lease_reads = true;
    let mut c = Cluster::new(cfg);
    let old = c.check_one_leader();
    if let Some(period) = leader_tick_us {
        c.set_tick_period_us(old, period);
    }
    c.one(1, 3, false);
    c.run_for_ms(300); // several acknowledged heartbeat rounds: the lease holds
    let others: Vec<NodeId> = c.node_ids().into_iter().filter(|id| *id != old).collect();
    let commit_before = c.status(others[0]).unwrap().commit;
    c.partition(&[vec![old], others.clone()]);
    let mut lease_reads = BTreeSet::new();
    let mut served_after_cut = 0;
    for step in 0..1000u64 {
        if c.status(old).is_some_and(|s| s.role == Role::Leader) {
            lease_reads.insert(c.read_lease(old).expect("the old leader still leads"));
        }
        if step % 10 == 0 {
            for id in &others {
                let _ = c.start(*id, cmd(1000 + step));
            }
        }
        c.run_for_ms(2);
        served_after_cut += c
            .take_completed_reads()
            .iter()
            .filter(|r| lease_reads.contains(&r.ctx) && r.index.is_some())
            .count();
    }
    let new_leader_committed = others
        .iter()
        .any(|id| c.status(*id).unwrap().commit > commit_before);
    Outcome {
        served_after_cut,
        new_leader_committed,
    }
}

/// With clocks in step, the cut-off leader serves lease reads for a while (the lease), then
/// only ReadIndex reads that never complete, and none of them is stale, although the
/// majority elects a new leader and commits.
#[test]
fn a_cut_off_leader_serves_no_stale_lease_read() {
    let mut served = 0;
    run_seeds(
        "a_cut_off_leader_serves_no_stale_lease_read",
        SEEDS,
        |seed| {
            let outcome = cut_off_leader(seed, None);
            assert!(
                outcome.new_leader_committed,
                "seed {seed}: the majority never committed after the cut"
            );
            served += outcome.served_after_cut;
        },
    );
    assert!(
        served > 0,
        "no lease read was served after the cut: the test checked nothing"
    );
}

/// The lease is only as good as its clock assumption: with the leader's clock at half speed
/// (beyond the tolerated 25% drift) the same scenario serves stale reads, and the checker
/// catches them. This keeps the scenario above honest: it can fail.
#[test]
fn a_leader_clock_beyond_the_drift_bound_is_caught_serving_stale_reads() {
    let stale = (0..SEEDS).any(|seed| {
        let result = catch_unwind(AssertUnwindSafe(|| cut_off_leader(seed, Some(20_000))));
        match result {
            Ok(_) => false,
            Err(payload) => {
                let text = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    text.contains("stale read"),
                    "seed {seed} failed for another reason: {text}"
                );
                true
            }
        }
    });
    assert!(
        stale,
        "no seed served a stale read with a 2x slow leader clock"
    );
}

/// The runtime's own schedule against the lease (thesis 6.4.1). Three nodes L, F, X; X's
/// clock runs 1.19x fast (inside the tolerated drift). F's driver thread stalls for just
/// over an election timeout; meanwhile X acknowledges a heartbeat round, so L starts a new
/// one, and then X is cut off from L. The new round's heartbeat waits in F's input queue.
/// When F wakes it acknowledges that round, which gives L a fresh lease; L's next
/// heartbeats to F are lost. F promised, by acknowledging, not to vote for anyone for an
/// election timeout after it *received* the heartbeat; if it counts the time it spent
/// stalled *after* the heartbeat (overdue ticks delivered after queued messages), it
/// grants X's vote at once, X commits and applies, and L's lease reads miss X's entries.
/// The checker fails any read below an index applied before it began. Phases, stall
/// lengths and fsync latencies vary with the seed.
fn stalled_follower(seed: u64) {
    let mut cfg = SimConfig::new(3, seed).scenario("lease_stalled_follower");
    cfg.raft.check_quorum = true;
    cfg.raft.pre_vote = seed % 2 == 0;
    cfg.raft.lease_reads = true;
    let mut c = Cluster::new(cfg);
    let leader = c.check_one_leader();
    c.one(1, 3, false);
    c.run_for_ms(300); // the lease holds
    let follower = c.peer(leader, 1);
    let other = c.peer(leader, 2);
    c.set_tick_period_us(other, 8_400);
    let phase_ms = c.rng().below(100);
    c.run_for_ms(phase_ms);
    let stall_ms = 300 + c.rng().range_inclusive(1, 200);
    c.stall(follower, stall_ms);
    let before_cut_ms = c.rng().range_inclusive(50, stall_ms - 10);
    c.run_for_ms(before_cut_ms);
    c.cut_between(leader, other);
    let wake_us = c.node(follower).busy_until_us();
    let now_us = c.now_us();
    c.run_for_ms(wake_us.saturating_sub(now_us).div_ceil(1000));
    c.cut_link(leader, follower);
    for step in 0..600u64 {
        if c.status(leader).is_some_and(|s| s.role == Role::Leader) {
            let _ = c.read_lease(leader);
        }
        if step % 5 == 0 {
            for id in [follower, other] {
                let _ = c.start(id, cmd(5000 + step));
            }
        }
        c.run_for_ms(1);
    }
    c.heal();
    c.one(9999, 3, true);
}

#[test]
fn lease_reads_survive_a_follower_driver_stall() {
    run_seeds(
        "lease_reads_survive_a_follower_driver_stall",
        300,
        stalled_follower,
    );
}

/// Postmortem (pinned from `lease_reads_survive_a_follower_driver_stall`, 27 of its first
/// 300 seeds failed before the fix): n1 stalled 354 ms; n3 (leader) started round 8 at
/// 1191 ms after n2 acknowledged round 7, and n2 was then cut off. n1 woke at 1285 ms,
/// stepped round 8's queued heartbeat, then took 30 overdue ticks and acknowledged: n3's
/// lease ran to 1421 ms while n1 already counted itself out of it. n2 (clock 1.19x) was
/// elected with n1's vote at 1411 ms and applied its no-op; n3 served a lease read at
/// index 2 < 3 at 1415 ms. The executor now hands the core inputs and overdue ticks in
/// the order they happened (inputs carry their arrival time).
#[test]
fn seed_15_stalled_follower_acked_then_voted_inside_the_lease() {
    stalled_follower(15);
}
