//! Lease reads (thesis 6.4.1): served from the leader's lease without a heartbeat round,
//! falling back to ReadIndex whenever the lease does not hold.

use super::*;
use crate::message::{Heartbeat, RequestVote};

fn lease_config(id: u64, voters: u64) -> Config {
    let mut c = config(id, voters);
    c.check_quorum = true;
    c.lease_reads = true;
    c
}

/// Node 3 asks node 2 for its vote in `term` (with an empty log).
fn vote_request_3_to_2(term: u64) -> Message {
    msg(
        3,
        2,
        term,
        MessageBody::RequestVote(RequestVote {
            pre_vote: false,
            last_log_index: i(0),
            last_log_term: t(0),
            leadership_transfer: false,
            campaign: 0,
        }),
    )
}

fn round_seqs(msgs: &[Message]) -> Vec<u64> {
    msgs.iter()
        .filter_map(|m| match m.body {
            MessageBody::Heartbeat(Heartbeat { read_seq, .. }) => Some(read_seq),
            _ => None,
        })
        .collect()
}

/// A 3-node leader whose first periodic heartbeat round (seq 1) was acknowledged.
fn leader_holding_lease() -> RaftCore {
    let mut node = leader_with(lease_config(1, 3));
    node.tick();
    let rd = node.ready();
    assert_eq!(
        round_seqs(&rd.messages),
        vec![1, 1],
        "the heartbeat starts a round"
    );
    node.step(hb_resp(2, 1, 1));
    node.ready();
    node
}

#[test]
fn config_requires_check_quorum_and_a_lease_longer_than_a_heartbeat() {
    let mut c = lease_config(1, 3);
    assert!(c.validate().is_ok());
    c.check_quorum = false;
    assert!(c.validate().unwrap_err().0.contains("check_quorum"));
    let mut c = lease_config(1, 3);
    c.election_timeout_ticks = 3;
    c.heartbeat_interval_ticks = 2;
    assert!(c.validate().unwrap_err().0.contains("lease"));
}

// The lease is the followers' guaranteed vote refusal (election timeout - 1 ticks) less
// the tolerated clock drift.
#[test]
fn lease_is_shorter_than_the_election_timeout_by_the_drift_margin() {
    let mut c = lease_config(1, 3);
    c.election_timeout_ticks = 50;
    assert_eq!(c.lease_ticks(), 39);
    c.election_timeout_ticks = 10;
    assert_eq!(c.lease_ticks(), 7);
}

#[test]
fn a_lease_read_is_served_at_once_while_the_lease_holds() {
    let mut node = leader_holding_lease();
    node.read_lease(9).unwrap();
    let rd = node.ready();
    assert_eq!(rd.read_states, vec![rs(9, 1)]);
    assert!(
        round_seqs(&rd.messages).is_empty(),
        "no heartbeat round needed"
    );
}

#[test]
fn without_a_confirmed_round_a_lease_read_waits_for_one() {
    let mut node = leader_with(lease_config(1, 3));
    node.read_lease(9).unwrap();
    let rd = node.ready();
    assert!(rd.read_states.is_empty());
    assert_eq!(round_seqs(&rd.messages), vec![1, 1]);
    node.step(hb_resp(3, 1, 1));
    assert_eq!(node.ready().read_states, vec![rs(9, 1)]);
}

// The lease counts from when the round was sent, not when it was acknowledged, and ends
// `lease_ticks` later unless a newer round renews it.
#[test]
fn the_lease_expires_lease_ticks_after_the_round_was_sent() {
    let mut node = leader_with(lease_config(1, 3));
    let lease = u64::from(node.config.lease_ticks());
    node.tick(); // tick 1: round 1 sent
    node.ready();
    for _ in 0..3 {
        node.tick(); // rounds stay in flight: no new round, no renewal
        node.ready();
    }
    node.step(hb_resp(2, 1, 1)); // acknowledged late, at tick 4
    node.ready();
    // Ticks 4 .. 1 + lease - 1: the lease holds.
    while node.ticks + 1 < 1 + lease {
        node.tick();
        node.ready();
    }
    node.read_lease(1).unwrap();
    assert_eq!(node.ready().read_states, vec![rs(1, 1)]);
    node.tick(); // tick 1 + lease: expired
    node.ready();
    node.read_lease(2).unwrap();
    assert!(
        node.ready().read_states.is_empty(),
        "fell back to ReadIndex"
    );
}

#[test]
fn sending_timeout_now_gives_up_the_lease_for_the_term() {
    let mut node = leader_holding_lease();
    node.transfer_leader(n(2)).unwrap(); // node 2 is caught up: TimeoutNow goes out now
    let rd = node.ready();
    assert!(rd
        .messages
        .iter()
        .any(|m| matches!(m.body, MessageBody::TimeoutNow)));
    // The transfer times out; a later acknowledged round must not bring the lease back.
    for _ in 0..node.config.election_timeout_ticks {
        node.tick();
        node.step(hb_resp(2, 1, node.reads.current_seq()));
        node.ready();
    }
    assert_eq!(node.role(), Role::Leader);
    node.read_lease(1).unwrap();
    assert!(node.ready().read_states.is_empty());
}

#[test]
fn a_new_leader_starts_without_a_lease() {
    let mut node = leader_holding_lease();
    node.step(msg(
        2,
        1,
        2,
        MessageBody::Heartbeat(Heartbeat {
            commit: i(1),
            read_seq: 0,
        }),
    ));
    assert_eq!(node.role(), Role::Follower);
    assert!(!node.lease_holds());
}

// A node that just started may have acknowledged a lease before it restarted: it refuses
// votes for an election timeout.
#[test]
fn a_freshly_started_node_refuses_votes_for_an_election_timeout() {
    let mut node = core_with(lease_config(2, 3));
    let request = vote_request_3_to_2;
    node.step(request(1));
    assert_eq!(node.term(), t(0), "ignored during the boot guard");
    assert!(node.ready().messages.is_empty());
    for _ in 0..node.config.election_timeout_ticks {
        node.tick();
    }
    node.step(request(1));
    assert_eq!(node.term(), t(1));
    assert_eq!(node.vote, Some(n(3)));
}

// Thesis 6.4.1 / 9.6: a follower's promise not to help elect anyone for an election
// timeout after hearing its leader must survive a term change caused by a message that is
// not a vote request (here a delayed pre-vote rejection of a higher term, which makes it a
// follower of that term with no known leader): a vote request of that term inside the
// promise is not granted. Afterwards, once the promise has run out, it is.
#[test]
fn a_higher_term_non_vote_message_does_not_end_the_followers_lease_promise() {
    let mut node = core_with(lease_config(2, 3));
    for _ in 0..node.config.election_timeout_ticks {
        node.tick(); // past the boot guard
    }
    node.step(msg(
        1,
        2,
        1,
        MessageBody::Heartbeat(Heartbeat {
            commit: i(0),
            read_seq: 1,
        }),
    ));
    assert_eq!(node.leader(), Some(n(1)));
    node.ready();
    let late_rejection = msg(
        3,
        2,
        2,
        MessageBody::RequestVoteResponse(crate::message::RequestVoteResponse {
            pre_vote: true,
            granted: false,
            campaign: 0,
        }),
    );
    node.step(late_rejection);
    assert_eq!((node.term(), node.leader()), (t(2), None));
    let vote_request = || vote_request_3_to_2(2);
    node.step(vote_request());
    assert_eq!(node.vote, None, "no vote inside the promise to leader 1");
    let granted = |rd: &Ready| {
        rd.messages
            .iter()
            .chain(&rd.messages_after_persist)
            .any(|m| matches!(m.body, MessageBody::RequestVoteResponse(r) if r.granted))
    };
    assert!(!granted(&node.ready()));
    let before = node.term();
    for _ in 0..node.config.election_timeout_ticks {
        node.tick();
    }
    node.step(vote_request());
    assert!(
        node.vote == Some(n(3)) || node.term() > before,
        "after the promise ran out the node votes (or campaigns itself)"
    );
}
