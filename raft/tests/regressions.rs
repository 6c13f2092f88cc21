//! Pinned failing seeds, each with a one-line postmortem (sled style). A seed stays here
//! forever once found, so the bug it exposed cannot come back unnoticed.
//!
//! The nemesis seeds below were found before the simulator ran the node runtime's own
//! executor over `DiskStorage`; the same seed now drives a different schedule, so each bug
//! is guarded by the minimal reproduction next to it, and the seeds stay as extra nemesis
//! runs. Seeds pinned since then replay exactly (for example
//! `seed_15_stalled_follower_acked_then_voted_inside_the_lease` in `lease_reads.rs`, next
//! to the scenario it needs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use raft::sim::nemesis::Nemesis;
use raft::sim::{Cluster, SimConfig};
use raft::{
    Config, Entry, EntryKind, HardState, InitialState, LogIndex, NodeId, RaftCore, Snapshot,
    SnapshotMeta, Term,
};

fn replay_nemesis(scenario: &str, nodes: usize, seed: u64) {
    let mut c = Cluster::new(Nemesis::config(seed, nodes, scenario));
    Nemesis::new(300).run(&mut c);
}

/// Postmortem: a follower took entries of a new term; the crash kept the entries record but
/// not the hard-state record written after it (the Ready order), and `RaftCore::new` refused
/// "entry term above current term", so the node could never restart.
#[test]
fn seed_14426_nemesis_three_nodes_restart_after_torn_term_change() {
    replay_nemesis("nemesis_three_nodes", 3, 14426);
}

/// Postmortem: same as seed 14426 (entries of term 8 durable, hard state still at term 7).
#[test]
fn seed_8279_nemesis_three_nodes_restart_after_torn_term_change() {
    replay_nemesis("nemesis_three_nodes", 3, 8279);
}

/// Postmortem: same as seed 14426 (entry 14 of term 8 durable, hard state at term 7).
#[test]
fn seed_13019_nemesis_three_nodes_restart_after_torn_term_change() {
    replay_nemesis("nemesis_three_nodes", 3, 13019);
}

/// Postmortem: same as seed 14426, found again after the core's Figure 2 change (entry 61 of
/// term 4 durable, hard state at term 3; 7 nodes).
#[test]
fn seed_929_nemesis_seven_nodes_restart_after_torn_term_change() {
    replay_nemesis("nemesis_seven_nodes", 7, 929);
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        kind: EntryKind::Normal,
        data: Bytes::from_static(b"x"),
    }
}

/// The minimal reproduction of the seeds above: the Ready contract persists entries before
/// the hard state, so a crash between the two records leaves entries of a term newer than the
/// durable hard state. That state is legal and the node must start from it.
#[test]
fn recovery_accepts_entries_newer_than_the_durable_term() {
    let config = Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)]);
    let initial = InitialState {
        hard_state: HardState {
            term: Term(7),
            vote: Some(NodeId(2)),
            commit: LogIndex(2),
        },
        snapshot: None,
        entries: vec![entry(1, 5), entry(2, 7), entry(3, 8)],
    };
    let core = RaftCore::new(config, initial);
    assert!(
        core.is_ok(),
        "a legal crash state was refused: {:?}",
        core.err()
    );
}

/// Same for a snapshot: the contract makes `rd.snapshot` durable before `rd.hard_state`, so a
/// crash in between leaves a snapshot of a term newer than the durable hard state.
#[test]
fn recovery_accepts_a_snapshot_newer_than_the_durable_term() {
    let config = Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)]);
    let initial = InitialState {
        hard_state: HardState {
            term: Term(3),
            vote: None,
            commit: LogIndex(0),
        },
        snapshot: Some(Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(10),
                term: Term(4),
            },
            data: Bytes::from_static(b"snap"),
            conf: None,
        }),
        entries: Vec::new(),
    };
    let core = RaftCore::new(config, initial);
    assert!(
        core.is_ok(),
        "a legal crash state was refused: {:?}",
        core.err()
    );
}

/// Postmortem: 7 nodes, PreVote off, clock skew: a node with an empty log and the fastest
/// clock campaigned every ~250 ms; the up-to-date nodes rejected it but reset their election
/// timers on every higher-term RequestVote, so none of them ever timed out: no leader for 10 s.
#[test]
fn seed_10422_nemesis_seven_nodes_stale_candidate_livelock() {
    replay_nemesis("nemesis_seven_nodes", 7, 10422);
}

/// Postmortem: same as seed 10422 with 3 nodes: a stale node (log at 81) campaigns without
/// PreVote every ~400 ms and keeps resetting the only electable node's timer (log at 103).
#[test]
fn seed_2146_nemesis_three_nodes_stale_candidate_livelock() {
    replay_nemesis("nemesis_three_nodes", 3, 2146);
}

/// The minimal reproduction of seed 10422. Paper Figure 2 (Rules for Servers, Followers):
/// only AppendEntries from the current leader or GRANTING a vote resets the election timer.
/// A stale node with a fast clock (PreVote off) must not keep the up-to-date majority from
/// electing a leader by resetting their timers with RequestVotes they reject.
#[test]
fn stale_fast_clock_candidate_cannot_block_elections_without_prevote() {
    let mut cfg = SimConfig::new(5, 1).scenario("stale_fast_clock_candidate");
    cfg.raft.pre_vote = false;
    cfg.raft.check_quorum = false;
    let mut c = Cluster::new(cfg);
    let leader = c.check_one_leader();
    let stale = c.peer(leader, 1);
    c.disconnect(stale);
    for v in 0..5 {
        c.one(v, 4, true);
    }
    // The stale node's clock runs 2.5 times as fast: its election timeout (120..240 ms)
    // always fires before anyone else's (300..600 ms).
    c.set_tick_period_us(stale, 4_000);
    c.crash(leader);
    c.connect(stale);
    // Let the stale node disrupt for a while, then the majority must still make progress.
    c.run_for_ms(2_000);
    c.one(100, 3, true);
}

/// Postmortem: n3, leader of term 95, stalled 738 ms; it woke to an append of the term-96
/// leader (entries to 98) and then one of the term-98 leader that replaced entries from 91,
/// both handled before one Ready. The ack of entry 98 left after the fsync of the log that
/// no longer held it. Acks of entries removed before their Ready is written are now
/// withdrawn (`core/append.rs` `retract_stale_append_acks`; minimal reproduction in the
/// core's `an_ack_of_entries_replaced_in_the_same_ready_is_withdrawn`).
#[test]
fn seed_3585_nemesis_seven_nodes_ack_of_entries_replaced_in_the_same_ready() {
    replay_nemesis("nemesis_seven_nodes", 7, 3585);
}

/// Postmortem (a harness bug, not Raft's): after healing, the convergence check waited
/// until each node had *handed out* its committed entries, then checked what its
/// application had *applied*; the application runs behind the node (after the round's
/// fsync, 2-20 ms here) and had not caught up yet. The check now waits for the application.
#[test]
fn seed_2645_nemesis_five_nodes_convergence_waits_for_the_application() {
    replay_nemesis("nemesis_five_nodes", 5, 2645);
}
