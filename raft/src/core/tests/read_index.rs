//! ReadIndex (thesis 6.4): leadership confirmation by one heartbeat round per batch.

use super::*;
use crate::error::ProposeError;
use crate::message::Heartbeat;

/// The heartbeats in `msgs` as (to, commit, read_seq).
fn heartbeats(msgs: &[Message]) -> Vec<(u64, u64, u64)> {
    msgs.iter()
        .filter_map(|m| match m.body {
            MessageBody::Heartbeat(Heartbeat { commit, read_seq }) => {
                Some((m.to.0, commit.0, read_seq))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn read_index_on_a_follower_is_refused_with_a_leader_hint() {
    let mut node = core(2, 3);
    node.step(msg(
        1,
        2,
        1,
        MessageBody::Heartbeat(Heartbeat {
            commit: i(0),
            read_seq: 0,
        }),
    ));
    assert_eq!(
        node.read_index(5),
        Err(ProposeError::NotLeader {
            leader_hint: Some(n(1))
        })
    );
}

// Thesis 6.4 step 1: until the leader has committed an entry of its term its commit
// index may be stale, so reads wait for the no-op to commit.
#[test]
fn read_before_the_noop_commits_waits_for_it() {
    let mut node = core(1, 3);
    node.campaign(true);
    node.step(vote_grant(2, 1, 1));
    node.read_index(7).unwrap();
    let rd = ready_persisted(&mut node);
    assert!(
        heartbeats(&rd.messages).is_empty(),
        "no round before the term's first commit"
    );
    node.step(append_ok(2, 1, 1, 1));
    assert_eq!(node.commit_index(), i(1));
    let rd = node.ready();
    assert!(rd.read_states.is_empty());
    assert_eq!(heartbeats(&rd.messages), vec![(2, 1, 1), (3, 0, 1)]);
    node.step(hb_resp(3, 1, 1));
    assert_eq!(node.ready().read_states, vec![rs(7, 1)]);
}

// Thesis 6.4 batching: one heartbeat round serves every read queued before it.
#[test]
fn two_reads_are_confirmed_by_one_heartbeat_round() {
    let mut node = leader(3);
    node.read_index(1).unwrap();
    node.read_index(2).unwrap();
    let rd = node.ready();
    assert_eq!(
        heartbeats(&rd.messages),
        vec![(2, 1, 1), (3, 1, 1)],
        "one heartbeat per peer, not per read"
    );
    assert!(rd.read_states.is_empty());
    node.step(hb_resp(2, 1, 1));
    assert_eq!(node.ready().read_states, vec![rs(1, 1), rs(2, 1)]);
}

// At most one round in flight: reads arriving during a round go into the next one, which
// starts as soon as the current completes.
#[test]
fn reads_during_a_round_wait_for_the_next_round() {
    let mut node = leader(3);
    node.read_index(1).unwrap();
    assert_eq!(heartbeats(&node.ready().messages).len(), 2);
    node.read_index(2).unwrap();
    assert!(
        heartbeats(&node.ready().messages).is_empty(),
        "round 1 still in flight"
    );
    node.step(hb_resp(2, 1, 0));
    assert!(
        node.ready().read_states.is_empty(),
        "an ack of an older seq confirms nothing new"
    );
    node.step(hb_resp(2, 1, 1));
    let rd = node.ready();
    assert_eq!(rd.read_states, vec![rs(1, 1)]);
    assert_eq!(
        heartbeats(&rd.messages),
        vec![(2, 1, 2), (3, 1, 2)],
        "round 2 starts right away"
    );
    node.step(hb_resp(3, 1, 2));
    assert_eq!(node.ready().read_states, vec![rs(2, 1)]);
}

// A lost round is retried by the periodic heartbeat, which carries the round's seq.
#[test]
fn periodic_heartbeats_carry_the_round_in_flight() {
    let mut node = leader(3);
    node.read_index(1).unwrap();
    node.ready();
    node.tick();
    assert_eq!(
        heartbeats(&node.ready().messages),
        vec![(2, 1, 1), (3, 1, 1)]
    );
}

// The read index is the commit index when the read arrived.
#[test]
fn read_index_is_the_commit_index_at_request_time() {
    let mut node = leader(3);
    node.read_index(1).unwrap();
    node.propose(Bytes::from_static(b"x")).unwrap();
    ready_persisted(&mut node);
    node.step(append_ok(2, 1, 1, 2));
    assert_eq!(node.commit_index(), i(2));
    node.read_index(2).unwrap();
    node.step(hb_resp(2, 1, 1));
    node.step(hb_resp(2, 1, 2));
    let mut got = node.ready().read_states;
    node.step(hb_resp(2, 1, 2));
    got.extend(node.ready().read_states);
    assert_eq!(got, vec![rs(1, 1), rs(2, 2)]);
}

#[test]
fn single_node_read_is_served_immediately() {
    let mut node = core(1, 1);
    node.campaign(true);
    ready_persisted(&mut node);
    assert_eq!(node.commit_index(), i(1));
    node.read_index(9).unwrap();
    assert_eq!(node.ready().read_states, vec![rs(9, 1)]);
}

// Pending reads are dropped when leadership is lost, and reported so the runtime can
// answer "not leader".
#[test]
fn pending_reads_are_dropped_on_step_down() {
    let mut node = core(1, 3);
    node.campaign(true);
    node.step(vote_grant(2, 1, 1));
    node.read_index(1).unwrap();
    ready_persisted(&mut node);
    node.step(append_ok(2, 1, 1, 1));
    node.read_index(2).unwrap();
    node.ready();
    node.read_index(3).unwrap();
    node.step(msg(
        3,
        1,
        2,
        MessageBody::Heartbeat(Heartbeat {
            commit: i(0),
            read_seq: 0,
        }),
    ));
    assert_eq!(node.role(), Role::Follower);
    let rd = node.ready();
    assert_eq!(rd.dropped_reads, vec![1, 2, 3]);
    assert!(rd.read_states.is_empty());
}
