//! Our own scenarios for what 6.824 does not test: PreVote, CheckQuorum, ReadIndex,
//! leadership transfer, chunked snapshots and pipelining (thesis 9.6, 6.2, 6.4, 3.10,
//! paper section 7, thesis 10.2). Timing is virtual: 10 ms ticks, election timeout 30 ticks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use raft::core::Role;
use raft::node::NodeError;
use raft::sim::nemesis::Nemesis;
use raft::sim::{cmd, run_seeds, Cluster, FsyncLatency, SimConfig};
use raft::{LogIndex, Message, MessageBody, NodeId, Term};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

const SEEDS: u64 = 30;
/// The configured (base) election timeout: 30 ticks of 10 ms.
const ELECTION_TIMEOUT_MS: u64 = 300;

fn config(nodes: usize, seed: u64, scenario: &str) -> SimConfig {
    SimConfig::new(nodes, seed).scenario(scenario)
}

fn max_term(c: &Cluster) -> Term {
    c.node_ids()
        .into_iter()
        .filter_map(|id| c.status(id).map(|s| s.term))
        .max()
        .unwrap_or_default()
}

/// Thesis 9.6: a node partitioned away keeps timing out, but pre-vote rounds never change its
/// term; when it rejoins, the healthy leader keeps its leadership and its term.
#[test]
fn prevote_rejoining_node_does_not_disrupt_the_leader() {
    run_seeds(
        "prevote_rejoining_node_does_not_disrupt_the_leader",
        SEEDS,
        |seed| {
            let mut c = Cluster::new(config(5, seed, "prevote_rejoin"));
            let leader = c.check_one_leader();
            c.one(1, 5, false);
            let term = c.status(leader).unwrap().term;
            let isolated = c.peer(leader, 2);
            c.disconnect(isolated);
            for _ in 0..20 {
                c.run_for_ms(ELECTION_TIMEOUT_MS);
                let t = c.status(isolated).unwrap().term;
                c.ensure(t == term, || {
                    format!("isolated {isolated:?} moved to {t:?} (pre-vote must keep {term:?})")
                });
            }
            c.connect(isolated);
            let index = c.one(2, 5, true);
            c.run_for_ms(5 * ELECTION_TIMEOUT_MS);
            c.ensure(c.current_leader() == Some(leader), || {
                format!("leadership moved from {leader:?}")
            });
            c.ensure(max_term(&c) == term, || {
                format!("term moved from {term:?} to {:?}", max_term(&c))
            });
            c.ensure(c.n_committed(index).0 == 5, || {
                "the rejoined node did not catch up".into()
            });
        },
    );
}

/// Thesis 6.2 / 9.6: a leader cut off from the majority steps down within about two
/// election timeouts and then refuses proposals, while the majority elects a new leader.
#[test]
fn check_quorum_isolated_leader_steps_down() {
    run_seeds("check_quorum_isolated_leader_steps_down", SEEDS, |seed| {
        let mut c = Cluster::new(config(5, seed, "check_quorum"));
        let old = c.check_one_leader();
        c.one(1, 5, false);
        let follower = c.peer(old, 1);
        let majority: Vec<NodeId> = (2..=4).map(|k| c.peer(old, k)).collect();
        c.partition(&[vec![old, follower], majority.clone()]);
        let isolated_at = c.now_ms();
        let stepped_down = c.run_until(2 * ELECTION_TIMEOUT_MS + 20, 1, |c| {
            c.status(old).is_some_and(|s| s.role != Role::Leader)
        });
        c.ensure(stepped_down, || {
            format!(
                "{old:?} still leads {} ms after losing its majority",
                c.now_ms() - isolated_at
            )
        });
        let refused = c.propose(old, cmd(7));
        c.ensure(matches!(refused, Err(NodeError::NotLeader { .. })), || {
            format!("a stepped-down leader answered {refused:?}")
        });
        let new_leader = c.check_one_leader();
        c.ensure(majority.contains(&new_leader), || {
            format!("leader {new_leader:?} is not in the majority")
        });
        c.heal();
        c.one(3, 5, true);
    });
}

/// Thesis 6.4: reads interleaved with writes, elections and partitions on an unreliable
/// network; the checker fails any ReadState whose index is below a commit applied before the
/// read began. Every confirmed read is eventually served.
#[test]
fn read_index_is_never_stale() {
    run_seeds("read_index_is_never_stale", SEEDS, |seed| {
        let mut c = Cluster::new(config(5, seed, "read_index_is_never_stale"));
        c.set_unreliable(true);
        let mut confirmed = 0;
        let mut started = 0;
        for round in 0..60 {
            if round % 15 == 7 {
                let a = NodeId(c.rng().below(5) + 1);
                let b = c.peer(a, 1);
                let rest: Vec<_> = (2..=4).map(|k| c.peer(a, k)).collect();
                c.partition(&[vec![a, b], rest]);
            }
            if round % 15 == 12 {
                c.heal();
            }
            for id in c.node_ids() {
                let v = c.rng().next_u64();
                c.start(id, cmd(v));
                if c.read_index(id).is_ok() {
                    started += 1;
                }
            }
            let pause_ms = c.rng().range_inclusive(5, 150);
            c.run_for_ms(pause_ms);
            confirmed += c
                .take_completed_reads()
                .iter()
                .filter(|r| r.index.is_some())
                .count();
        }
        c.heal();
        c.set_unreliable(false);
        c.run_for_ms(2000);
        confirmed += c
            .take_completed_reads()
            .iter()
            .filter(|r| r.index.is_some())
            .count();
        c.ensure(confirmed > 0, || {
            format!("none of {started} reads was served")
        });
    });
}

/// Thesis 6.4: a leader partitioned into a minority (CheckQuorum off, so it keeps believing
/// it leads) never confirms a read after the majority committed a newer write: the read
/// times out (the runtime's read timeout) or is dropped, and is never served.
#[test]
fn read_index_on_partitioned_stale_leader() {
    run_seeds("read_index_on_partitioned_stale_leader", SEEDS, |seed| {
        let mut cfg = config(5, seed, "read_index_stale_leader");
        cfg.raft.check_quorum = false;
        let mut c = Cluster::new(cfg);
        let old = c.check_one_leader();
        c.one(1, 5, false);
        let minority = vec![old, c.peer(old, 1)];
        let majority: Vec<NodeId> = (2..=4).map(|k| c.peer(old, k)).collect();
        c.partition(&[minority, majority]);
        let write = c.one(2, 3, true);
        c.ensure(
            c.status(old).is_some_and(|s| s.role == Role::Leader),
            || "old leader stepped down".into(),
        );
        let ctx = c
            .read_index(old)
            .expect("the stale leader still believes it leads");
        c.run_for_ms(3000);
        c.heal();
        c.run_for_ms(2000);
        let reads = c.take_completed_reads();
        let ours: Vec<_> = reads.iter().filter(|r| r.ctx == ctx).collect();
        c.ensure(ours.len() == 1 && ours[0].index.is_none(), || {
            format!("read {ctx} (stale leader, newer write at {write:?}) ended as {ours:?}")
        });
    });
}

/// Thesis 6.4: reads queued together are confirmed by ONE heartbeat round: ten reads at one
/// instant start a single read round (one new `read_seq`), and all are served within a few
/// network round trips (not after a heartbeat interval).
#[test]
fn read_index_batches_reads_into_one_heartbeat_round() {
    run_seeds(
        "read_index_batches_reads_into_one_heartbeat_round",
        SEEDS,
        |seed| {
            let mut c = Cluster::new(config(3, seed, "read_index_batching"));
            let leader = c.check_one_leader();
            c.one(1, 3, false);
            let read_rounds = Rc::new(RefCell::new(std::collections::BTreeSet::new()));
            let seen = Rc::clone(&read_rounds);
            c.set_message_tap(Some(Box::new(move |_, m: &Message| {
                if let MessageBody::Heartbeat(h) = &m.body {
                    if h.read_seq > 0 {
                        seen.borrow_mut().insert(h.read_seq);
                    }
                }
            })));
            let ctxs: Vec<u64> = (0..10)
                .map(|_| c.read_index(leader).expect("leader reads"))
                .collect();
            c.run_for_ms(60); // several network round trips, far less than a heartbeat interval
            let done: Vec<u64> = c
                .take_completed_reads()
                .iter()
                .filter(|r| r.index.is_some())
                .map(|r| r.ctx)
                .collect();
            c.ensure(ctxs.iter().all(|x| done.contains(x)), || {
                format!("reads {ctxs:?} served only {done:?}")
            });
            let rounds = read_rounds.borrow().len();
            c.ensure(rounds == 1, || {
                format!("{rounds} read rounds for 10 reads at one instant")
            });
        },
    );
}

/// Thesis 3.10: the target of a transfer becomes leader of a higher term quickly (well before
/// an election timeout), the old leader refuses proposals meanwhile, and nothing committed
/// is lost.
#[test]
fn leadership_transfer_hands_over_quickly() {
    run_seeds("leadership_transfer_hands_over_quickly", SEEDS, |seed| {
        let mut c = Cluster::new(config(5, seed, "leadership_transfer"));
        let old = c.check_one_leader();
        let index = c.one(1, 5, false);
        let term = c.status(old).unwrap().term;
        let target = c.peer(old, 3);
        c.transfer_leader(old, target)
            .expect("the leader starts a transfer");
        let during = c.propose(old, cmd(2));
        c.ensure(during == Err(NodeError::TransferInProgress), || {
            format!("proposal during transfer: {during:?}")
        });
        let moved = c.run_until(ELECTION_TIMEOUT_MS, 1, |c| {
            c.status(target).is_some_and(|s| s.role == Role::Leader)
        });
        c.ensure(moved, || {
            format!("{target:?} did not take over within {ELECTION_TIMEOUT_MS} ms")
        });
        let new_term = c.status(target).unwrap().term;
        c.ensure(new_term > term, || {
            format!("new leader's term {new_term:?} is not above {term:?}")
        });
        let after = c.one(3, 5, true);
        c.ensure(after > index, || "log went backwards".into());
        let leader = c.check_one_leader();
        c.ensure(leader == target, || {
            "leadership did not stay with the target".into()
        });
    });
}

/// Thesis 3.10: a transfer to an unreachable node is abandoned after an election timeout, and
/// the old leader serves proposals again in its old term.
#[test]
fn leadership_transfer_to_unreachable_node_aborts() {
    run_seeds(
        "leadership_transfer_to_unreachable_node_aborts",
        SEEDS,
        |seed| {
            let mut c = Cluster::new(config(5, seed, "leadership_transfer_abort"));
            let old = c.check_one_leader();
            c.one(1, 5, false);
            let term = c.status(old).unwrap().term;
            let target = c.peer(old, 2);
            c.disconnect(target);
            c.transfer_leader(old, target)
                .expect("the leader starts a transfer");
            c.run_for_ms(3 * ELECTION_TIMEOUT_MS);
            let s = c.status(old).unwrap();
            c.ensure(s.role == Role::Leader && s.term == term, || {
                format!("old leader now {s:?}")
            });
            let accepted = c.propose(old, cmd(5));
            c.ensure(accepted.is_ok(), || {
                format!("old leader answers {accepted:?} after the abort")
            });
            c.connect(target);
            c.one(6, 5, true);
        },
    );
}

/// Paper section 7: a snapshot many chunks long reaches a lagging follower intact over an
/// unreliable network (lost chunks are resent), and the follower's state equals the leader's.
#[test]
fn chunked_snapshot_survives_an_unreliable_network() {
    run_seeds(
        "chunked_snapshot_survives_an_unreliable_network",
        SEEDS,
        |seed| {
            let mut cfg = config(3, seed, "chunked_snapshot");
            cfg.snapshot_interval = 10;
            cfg.snapshot_padding_bytes = 12 * 1024; // >= 12 chunks of 1 KiB
            let mut c = Cluster::new(cfg);
            let leader = c.check_one_leader();
            let lagger = c.peer(leader, 1);
            c.disconnect(lagger);
            for v in 0..40 {
                c.one(v, 2, true);
            }
            c.set_unreliable(true);
            c.connect(lagger);
            let chunks0 = c.net_stats().snapshot_chunks;
            let last = c.one(1000, 3, true);
            c.set_unreliable(false);
            let chunks = c.net_stats().snapshot_chunks - chunks0;
            c.ensure(chunks >= 12, || {
                format!("only {chunks} snapshot chunks sent")
            });
            let snap = c.node(lagger).durable().snapshot;
            c.ensure(snap.is_some(), || {
                "the lagging follower never installed a snapshot".into()
            });
            c.ensure(c.n_committed(last).0 == 3, || {
                "the follower did not catch up after the snapshot".into()
            });
        },
    );
}

/// Thesis 10.2: with a slow network, the leader keeps several appends in flight to a
/// follower, and commits more in a fixed time than with `max_inflight_appends = 1`.
#[test]
fn pipelining_beats_stop_and_wait() {
    run_seeds("pipelining_beats_stop_and_wait", SEEDS, |seed| {
        let (pipelined, max_in_flight) = throughput(seed, 64);
        let (stop_and_wait, _) = throughput(seed, 1);
        assert!(
            max_in_flight > 1,
            "seed {seed}: at most {max_in_flight} appends were ever in flight"
        );
        assert!(
            pipelined > 2 * stop_and_wait,
            "seed {seed}: pipelined committed {pipelined}, stop-and-wait {stop_and_wait}"
        );
    });
}

/// Entries committed in 3 s of steady proposals (one every 2 ms) over a 40..50 ms network,
/// and the most appends ever in flight from the leader to one follower.
fn throughput(seed: u64, max_inflight_appends: usize) -> (u64, i64) {
    let mut cfg = config(3, seed, "pipelining");
    cfg.raft.max_inflight_appends = max_inflight_appends;
    cfg.raft.max_entries_per_append = 4;
    cfg.network.min_delay_us = 40_000;
    cfg.network.max_delay_us = 50_000;
    cfg.fsync_latency = FsyncLatency {
        min_us: 100,
        max_us: 1_000,
    };
    let mut c = Cluster::new(cfg);
    let leader = c.check_one_leader();
    c.one(0, 3, false);
    let in_flight = Rc::new(RefCell::new((BTreeMap::<NodeId, i64>::new(), 0i64)));
    let tap_state = Rc::clone(&in_flight);
    c.set_message_tap(Some(Box::new(move |_, m: &Message| {
        let mut st = tap_state.borrow_mut();
        match &m.body {
            MessageBody::AppendEntries(a) if m.from == leader && !a.entries.is_empty() => {
                let n = st.0.entry(m.to).or_default();
                *n += 1;
                let n = *n;
                st.1 = st.1.max(n);
            }
            MessageBody::AppendEntriesResponse(_) if m.to == leader => {
                *st.0.entry(m.from).or_default() -= 1;
            }
            _ => {}
        }
    })));
    let start = c.status(leader).unwrap().commit;
    for i in 0..1500 {
        if c.start(leader, cmd(i)).is_none() {
            break;
        }
        c.run_for_ms(2);
    }
    let end = c.status(leader).map_or(LogIndex(0), |s| s.commit);
    let max = in_flight.borrow().1;
    (end.0 - start.0, max)
}

/// Figure 2 ("updated on stable storage before responding to RPCs") and the core brief ("vote
/// grants and anything that reveals a term/vote change not yet durable go after persist"):
/// with a slow disk, no message other than pre-vote traffic may carry a term that is still in
/// an unsynced write. (Every scenario checks this by default; this one stresses it with a
/// slow disk and the nemesis.)
#[test]
fn figure_2_no_message_reveals_an_unpersisted_term() {
    run_seeds(
        "figure_2_no_message_reveals_an_unpersisted_term",
        30,
        |seed| {
            let mut cfg =
                Nemesis::config(seed, 3, "figure_2_no_message_reveals_an_unpersisted_term");
            cfg.strict_term_reveal = true;
            cfg.fsync_latency = FsyncLatency {
                min_us: 2_000,
                max_us: 30_000,
            };
            let mut c = Cluster::new(cfg);
            Nemesis::new(150).run(&mut c);
        },
    );
}
