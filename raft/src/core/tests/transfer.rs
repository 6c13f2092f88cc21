//! Leadership transfer (thesis 3.10).

use super::*;
use crate::error::ProposeError;
use crate::message::RequestVote;

fn timeout_nows(msgs: &[Message]) -> Vec<u64> {
    msgs.iter()
        .filter(|m| m.body == MessageBody::TimeoutNow)
        .map(|m| m.to.0)
        .collect()
}

#[test]
fn transfer_to_an_up_to_date_follower_sends_timeout_now_at_once() {
    let mut node = leader(3);
    node.transfer_leader(n(2)).unwrap();
    let rd = node.ready();
    assert_eq!(timeout_nows(&rd.messages), vec![2]);
    assert!(rd.messages_after_persist.is_empty());
}

// Thesis 3.10: the leader first brings the target up to date, then sends TimeoutNow.
#[test]
fn transfer_to_a_lagging_follower_catches_it_up_first() {
    let mut node = leader(3);
    node.propose(Bytes::from_static(b"x")).unwrap();
    ready_persisted(&mut node);
    node.step(append_ok(3, 1, 1, 2));
    ready_persisted(&mut node);
    node.transfer_leader(n(2)).unwrap();
    let rd = node.ready();
    assert!(timeout_nows(&rd.messages).is_empty());
    // Entry 2 is already in flight to node 2 (Replicate); an empty append asks for its ack.
    assert_eq!(appends(&rd.messages), vec![(2, 2, 1, vec![], 2)]);
    node.step(append_ok(2, 1, 1, 2));
    assert_eq!(timeout_nows(&node.ready().messages), vec![2]);
}

// Thesis 3.10: the leader stops accepting proposals during a transfer; an unfinished
// transfer aborts after an election timeout and proposals resume.
#[test]
fn proposals_are_refused_during_a_transfer_until_it_times_out() {
    let mut node = leader(3);
    node.step(append_ok(2, 1, 1, 0));
    node.progress.get_mut(&n(2)).unwrap().match_index = i(0);
    node.transfer_leader(n(2)).unwrap();
    assert_eq!(
        node.propose(Bytes::from_static(b"x")),
        Err(ProposeError::TransferInProgress)
    );
    for _ in 0..9 {
        node.tick();
        node.step(append_ok(3, 1, 1, 1));
    }
    assert_eq!(
        node.propose(Bytes::from_static(b"x")),
        Err(ProposeError::TransferInProgress)
    );
    node.tick();
    assert!(node.is_leader());
    assert_eq!(node.propose(Bytes::from_static(b"x")), Ok((i(2), t(1))));
}

#[test]
fn transfer_on_a_follower_is_refused() {
    let mut node = core(2, 3);
    assert_eq!(
        node.transfer_leader(n(3)),
        Err(ProposeError::NotLeader { leader_hint: None })
    );
}

// Thesis 3.10: the target starts an election at once, skipping the pre-vote, and marks
// its requests so voters ignore their leader lease.
#[test]
fn timeout_now_makes_the_target_campaign_at_once_without_prevote() {
    let mut c = config(2, 3);
    c.pre_vote = true;
    c.check_quorum = true;
    let mut node = core_with(c);
    node.step(msg(1, 2, 1, MessageBody::TimeoutNow));
    assert_eq!((node.role(), node.term()), (Role::Candidate, t(2)));
    let rd = node.ready();
    let rv = RequestVote {
        pre_vote: false,
        last_log_index: i(0),
        last_log_term: t(0),
        leadership_transfer: true,
        campaign: 0,
    };
    assert_eq!(
        sans_campaign(&rd.messages_after_persist),
        vec![
            msg(2, 1, 2, MessageBody::RequestVote(rv)),
            msg(2, 3, 2, MessageBody::RequestVote(rv))
        ]
    );
}

// End to end with PreVote and CheckQuorum on: leadership moves to the target even though
// every follower is inside its leader lease.
#[test]
fn transfer_moves_leadership_despite_leases() {
    let mut net = Net::with_voters(3, |c| {
        c.pre_vote = true;
        c.check_quorum = true;
    });
    net.elect(1);
    net.core(1).propose(Bytes::from_static(b"x")).unwrap();
    net.settle();
    net.core(1).transfer_leader(n(3)).unwrap();
    net.settle();
    assert_eq!(net.leaders(), vec![(n(3), t(2))]);
    assert_eq!(net.core(1).leader(), Some(n(3)));
}
