//! The node runtime's own policies, in the simulator: group commit, the leader's deferred
//! fsync, what a stalled driver does when it wakes, and a slow follower. Every node runs
//! the shipping executor over `DiskStorage`, so these are the policies that ship; timing
//! is virtual (10 ms ticks, election timeout 30 ticks), so the figures are exact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use raft::core::Role;
use raft::sim::{cmd, run_seeds, Cluster, FsyncLatency, SimConfig};
use raft::{LogIndex, NodeId};

const SEEDS: u64 = 20;

/// Three nodes on a network with a fixed 1 ms delay, so that messages between two nodes
/// arrive in order, as over the runtime's TCP connections (the default simulated network
/// reorders them, which sends followers back to probing and hides these policies).
fn cluster(seed: u64, scenario: &str, fsync: FsyncLatency) -> Cluster {
    let mut cfg = SimConfig::new(3, seed).scenario(scenario);
    cfg.fsync_latency = fsync;
    cfg.network.min_delay_us = 1_000;
    cfg.network.max_delay_us = 1_000;
    Cluster::new(cfg)
}

/// Proposes `per_ms` commands every millisecond for `ms` at `leader`; returns the commit
/// index reached a second later.
fn steady_load(c: &mut Cluster, leader: NodeId, per_ms: u64, ms: u64) -> LogIndex {
    for t in 0..ms {
        for k in 0..per_ms {
            c.start(leader, cmd(t * 1000 + k));
        }
        c.run_for_ms(1);
    }
    c.run_for_ms(1000);
    c.status(leader).map_or(LogIndex(0), |s| s.commit)
}

/// Group commit: while an fsync runs, proposals pile up in the input queue, and the next
/// Ready carries all of them to one fsync. With 3 ms fsyncs and 4 proposals per
/// millisecond, each node fsyncs far less often than once per entry.
#[test]
fn one_fsync_covers_every_proposal_that_arrived_during_the_previous_one() {
    run_seeds("group_commit", SEEDS, |seed| {
        let fsync = FsyncLatency {
            min_us: 3_000,
            max_us: 3_000,
        };
        let mut c = cluster(seed, "group_commit", fsync);
        let leader = c.check_one_leader();
        c.one(1, 3, false);
        let before: Vec<u64> = c.node_ids().iter().map(|id| c.node(*id).fsyncs()).collect();
        let start = c.status(leader).unwrap().commit;
        let end = steady_load(&mut c, leader, 4, 500);
        let entries = end.0 - start.0;
        c.ensure(entries >= 1500, || {
            format!("only {entries} entries committed")
        });
        for (i, id) in c.node_ids().into_iter().enumerate() {
            let syncs = c.node(id).fsyncs() - before[i];
            c.ensure(syncs * 4 < entries, || {
                format!("{id:?} did {syncs} fsyncs for {entries} entries")
            });
        }
    });
}

/// Thesis 10.2.1 plus the runtime's deferral (`leader_sync.rs`): while both followers
/// replicate, the leader writes its entries at once but fsyncs them only every
/// `leader_sync_delay` (10 ms); with a follower down the followers alone cannot commit,
/// and the leader syncs as often as it would without deferral.
#[test]
fn the_leader_defers_its_fsync_only_while_its_followers_alone_can_commit() {
    run_seeds("leader_sync", SEEDS, |seed| {
        let fsync = FsyncLatency {
            min_us: 100,
            max_us: 300,
        };
        let per_entry = |c: &mut Cluster, leader: NodeId| {
            c.one(1, 2, true);
            let syncs0 = c.node(leader).fsyncs();
            let start = c.status(leader).unwrap().commit;
            let end = steady_load(c, leader, 1, 400);
            let syncs = c.node(leader).fsyncs() - syncs0;
            (syncs, end.0 - start.0)
        };
        let mut both = cluster(seed, "leader_sync_both_followers", fsync);
        let leader = both.check_one_leader();
        let (deferred_syncs, deferred_entries) = per_entry(&mut both, leader);
        let mut one = cluster(seed, "leader_sync_one_follower", fsync);
        let leader = one.check_one_leader();
        one.crash(one.peer(leader, 1));
        let (syncs, entries) = per_entry(&mut one, leader);
        assert!(
            deferred_entries >= 300 && entries >= 300,
            "seed {seed}: {deferred_entries} / {entries} entries committed"
        );
        // At most one fsync per 10 ms of deferral (plus a few for term changes).
        assert!(
            deferred_syncs <= 400 / 10 + 10,
            "seed {seed}: the leader fsynced {deferred_syncs} times in 400 ms while both followers replicated"
        );
        assert!(
            syncs > 2 * deferred_syncs,
            "seed {seed}: with a follower down the leader fsynced {syncs} times, deferring {deferred_syncs}"
        );
    });
}

/// A leader whose driver stalls for longer than an election timeout is replaced: the
/// others elect a new leader and commit, and when the old one wakes (handling its queued
/// messages and overdue ticks in order) it steps down instead of serving.
#[test]
fn a_stalled_leader_is_replaced_and_steps_down_when_it_wakes() {
    run_seeds("stalled_leader", SEEDS, |seed| {
        let mut c = cluster(seed, "stalled_leader", FsyncLatency::ZERO);
        let old = c.check_one_leader();
        c.one(1, 3, false);
        c.stall(old, 3_000);
        let others: Vec<NodeId> = c.node_ids().into_iter().filter(|id| *id != old).collect();
        // A split vote can take a second election: allow most of the stall for it.
        let elected = c.run_until(2_500, 10, |c| {
            others
                .iter()
                .any(|id| c.status(*id).is_some_and(|s| s.role == Role::Leader))
        });
        c.ensure(elected, || "no new leader during the stall".into());
        let new = others
            .iter()
            .copied()
            .find(|id| c.status(*id).is_some_and(|s| s.role == Role::Leader));
        let new_term = new
            .and_then(|id| c.status(id))
            .map(|s| s.term)
            .unwrap_or_default();
        let index = c.one(2, 2, true);
        let wake_us = c.node(old).busy_until_us();
        let now_us = c.now_us();
        c.run_for_ms(wake_us.saturating_sub(now_us).div_ceil(1000) + 1_000);
        let s = c.status(old).unwrap();
        c.ensure(s.role == Role::Follower && s.term >= new_term, || {
            format!("the old leader woke as {s:?}; the new leader took {new_term:?}")
        });
        c.ensure(c.n_committed(index).0 == 3, || {
            "the old leader did not catch up".into()
        });
    });
}

/// A follower with a slow disk (50 ms fsyncs) and a slow CPU (10 ms per round) does not
/// hold back commits: the leader and the other follower form the majority, so commands
/// commit about as fast as with three healthy nodes, and the slow one catches up.
#[test]
fn a_slow_follower_does_not_hold_back_commits() {
    run_seeds("slow_follower", SEEDS, |seed| {
        let commit_time_ms = |slow: bool| {
            let fsync = FsyncLatency {
                min_us: 500,
                max_us: 1_000,
            };
            let mut c = cluster(seed, "slow_follower", fsync);
            let leader = c.check_one_leader();
            c.one(1, 3, false);
            let follower = c.peer(leader, 1);
            if slow {
                c.set_fsync_latency(
                    follower,
                    FsyncLatency {
                        min_us: 50_000,
                        max_us: 50_000,
                    },
                );
                c.set_round_cost_us(follower, 10_000);
            }
            let t0 = c.now_ms();
            let mut last = LogIndex(0);
            for v in 0..50 {
                last = c.one(100 + v, 2, true);
            }
            let elapsed = c.now_ms() - t0;
            c.run_for_ms(3_000);
            c.ensure(c.n_committed(last).0 == 3, || {
                format!("the slow follower did not catch up (slow = {slow})")
            });
            elapsed
        };
        let healthy = commit_time_ms(false);
        let with_slow = commit_time_ms(true);
        assert!(
            with_slow <= healthy + healthy / 2,
            "seed {seed}: 50 commits took {with_slow} ms with a slow follower, {healthy} ms without"
        );
    });
}

/// The leader defers its own fsync only while its followers alone can commit; when one
/// follower is slow (its rounds take 20 ms), the fast follower and the leader's own copy
/// form the majority, so the leader must not sit on its deferred fsync: a command commits
/// about as fast as with two fast followers (measured one command at a time, to the
/// millisecond of virtual time).
#[test]
fn a_slow_follower_does_not_hold_the_leaders_deferred_fsync() {
    run_seeds("slow_follower_leader_sync", SEEDS, |seed| {
        let commit_ms = |slow: bool| {
            let fsync = FsyncLatency {
                min_us: 200,
                max_us: 200,
            };
            let mut c = cluster(seed, "slow_follower_leader_sync", fsync);
            let leader = c.check_one_leader();
            c.one(1, 3, false);
            if slow {
                c.set_round_cost_us(c.peer(leader, 1), 20_000);
            }
            c.run_for_ms(200);
            let mut total_us = 0;
            for v in 0..20 {
                let (index, _) = c.start(leader, cmd(100 + v)).expect("the leader accepts");
                let t0 = c.now_us();
                let committed = c.run_until(1_000, 1, |c| {
                    c.status(leader).is_some_and(|s| s.commit >= index)
                });
                c.ensure(committed, || format!("command {v} did not commit"));
                total_us += c.now_us() - t0;
                c.run_for_ms(7);
            }
            total_us / 20
        };
        let healthy = commit_ms(false);
        let with_slow = commit_ms(true);
        assert!(
            with_slow <= healthy + 2_000,
            "seed {seed}: a command took {with_slow} us to commit with a slow follower, {healthy} us without"
        );
    });
}
