//! Unit tests of the invariant checker: each invariant, fed a hand-made violating history,
//! must report it (and the matching legal history must pass). A checker that never fails
//! would make every simulation pass; these tests keep it honest.

use crate::core::{CoreStatus, ReadState, Role};
use crate::message::{
    AppendEntries, AppendEntriesResponse, Heartbeat, HeartbeatResponse, Message, MessageBody,
    RequestVote, RequestVoteResponse,
};
use crate::sim::invariants::{Checker, NodeObs, Violation};
use crate::sim::persistence_rules::check_release;
use crate::sim::storage_model::DiskState;
use crate::types::{Entry, EntryKind, HardState, LogIndex, NodeId, Term};
use bytes::Bytes;

fn entry(index: u64, term: u64, data: &'static [u8]) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        kind: EntryKind::Normal,
        data: Bytes::from_static(data),
    }
}

fn status(id: u64, role: Role, term: u64, commit: u64, last: u64) -> CoreStatus {
    CoreStatus {
        id: NodeId(id),
        role,
        term: Term(term),
        leader: None,
        commit: LogIndex(commit),
        applied: LogIndex(0),
        last_index: LogIndex(last),
        persisted: LogIndex(last),
        snapshot_index: LogIndex(0),
        // The checkers of these tests watch three voters.
        membership: std::sync::Arc::new(crate::core::Membership::from_voters(
            [1, 2, 3].map(NodeId),
        )),
        membership_index: LogIndex(0),
    }
}

fn disk(term: u64, vote: Option<u64>, entries: Vec<Entry>) -> DiskState {
    DiskState {
        hard_state: HardState {
            term: Term(term),
            vote: vote.map(NodeId),
            commit: LogIndex(0),
        },
        snapshot: None,
        entries,
    }
}

fn obs<'a>(id: u64, s: Option<CoreStatus>, d: &'a DiskState) -> NodeObs<'a> {
    NodeObs {
        id: NodeId(id),
        status: s,
        written: d,
        durable: d,
    }
}

fn msg(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body,
    }
}

#[test]
fn two_leaders_in_one_term_are_reported_even_at_different_times() {
    let mut c = Checker::new(3);
    let d = disk(2, None, vec![]);
    let first = [obs(1, Some(status(1, Role::Leader, 2, 0, 0)), &d)];
    assert!(c.after_event(&first).is_ok());
    let later = [
        obs(1, Some(status(1, Role::Follower, 3, 0, 0)), &d),
        obs(2, Some(status(2, Role::Leader, 2, 0, 0)), &d),
    ];
    let err = c.after_event(&later).unwrap_err();
    assert!(err.contains("election safety"), "{err}");
}

#[test]
fn log_matching_rejects_different_data_or_prefix_at_one_index_and_term() {
    let mut c = Checker::new(3);
    let d = disk(1, None, vec![entry(1, 1, b"a"), entry(2, 1, b"b")]);
    assert!(c.on_entries_written(Some(Term(0)), &d.entries).is_ok());
    let other = disk(1, None, vec![entry(1, 1, b"a"), entry(2, 1, b"X")]);
    assert!(c
        .on_entries_written(Some(Term(1)), &other.entries[1..])
        .unwrap_err()
        .contains("log matching"));
    // Same (index, term) after a different previous term.
    let append = AppendEntries {
        prev_log_index: LogIndex(1),
        prev_log_term: Term(5),
        entries: vec![entry(2, 1, b"b")],
        leader_commit: LogIndex(0),
    };
    let m = msg(1, 2, 1, MessageBody::AppendEntries(append));
    assert!(release(&mut c, &m, &disk(9, None, vec![]))
        .unwrap_err()
        .contains("log matching"));
}

#[test]
fn durable_vote_cannot_change_within_a_term_and_term_cannot_go_back() {
    let mut c = Checker::new(3);
    assert!(c
        .on_durable_change(NodeId(1), &disk(4, Some(2), vec![]))
        .is_ok());
    assert!(c
        .on_durable_change(NodeId(1), &disk(4, Some(2), vec![]))
        .is_ok());
    assert!(c
        .on_durable_change(NodeId(1), &disk(4, Some(3), vec![]))
        .unwrap_err()
        .contains("vote"));
    let mut c = Checker::new(3);
    assert!(c
        .on_durable_change(NodeId(1), &disk(4, None, vec![]))
        .is_ok());
    assert!(c
        .on_durable_change(NodeId(1), &disk(3, None, vec![]))
        .unwrap_err()
        .contains("term went back"));
}

#[test]
fn votes_and_acks_need_durable_state_before_they_leave() {
    let mut c = Checker::new(3);
    let grant = msg(
        2,
        1,
        5,
        MessageBody::RequestVoteResponse(RequestVoteResponse {
            pre_vote: false,
            granted: true,
            campaign: 0,
        }),
    );
    assert!(release(&mut c, &grant, &disk(5, Some(1), vec![])).is_ok());
    assert!(
        release(&mut c, &grant, &disk(5, None, vec![])).is_err(),
        "vote not durable"
    );
    assert!(
        release(&mut c, &grant, &disk(4, Some(1), vec![])).is_err(),
        "term not durable"
    );
    let ask = RequestVote {
        pre_vote: false,
        last_log_index: LogIndex(0),
        last_log_term: Term(0),
        leadership_transfer: false,
        campaign: 0,
    };
    let request = msg(1, 2, 5, MessageBody::RequestVote(ask));
    assert!(
        release(&mut c, &request, &disk(5, Some(2), vec![])).is_err(),
        "self-vote not durable"
    );
    let pre = msg(
        1,
        2,
        6,
        MessageBody::RequestVote(RequestVote {
            pre_vote: true,
            ..ask
        }),
    );
    assert!(
        release(&mut c, &pre, &disk(5, None, vec![])).is_ok(),
        "pre-votes speak of term + 1"
    );
    let ack = AppendEntriesResponse {
        success: true,
        match_index: LogIndex(2),
        conflict_index: LogIndex(0),
        conflict_term: Term(0),
        last_log_index: LogIndex(2),
    };
    let ack = msg(2, 1, 1, MessageBody::AppendEntriesResponse(ack));
    assert!(
        release(&mut c, &ack, &disk(1, None, vec![entry(1, 1, b"a")])).is_err(),
        "entry 2 not durable"
    );
    assert!(release(
        &mut c,
        &ack,
        &disk(1, None, vec![entry(1, 1, b"a"), entry(2, 1, b"b")])
    )
    .is_ok());
}

#[test]
fn figure_2_conformance_is_a_separate_switch() {
    let mut c = Checker::new(3);
    let reply = msg(
        2,
        1,
        7,
        MessageBody::HeartbeatResponse(HeartbeatResponse { read_seq: 0 }),
    );
    assert!(release(&mut c, &reply, &disk(6, None, vec![]))
        .unwrap_err()
        .contains("Figure 2"));
    c.set_strict_term_reveal(false);
    assert!(release(&mut c, &reply, &disk(6, None, vec![])).is_ok());
    let heartbeat = msg(
        1,
        2,
        7,
        MessageBody::Heartbeat(Heartbeat {
            commit: LogIndex(0),
            read_seq: 0,
        }),
    );
    assert!(
        release(&mut c, &heartbeat, &disk(6, None, vec![])).is_err(),
        "a leader's term is always checked"
    );
}

#[test]
fn commit_needs_a_durable_majority_and_agreement() {
    let mut c = Checker::new(3);
    let has = disk(1, None, vec![entry(1, 1, b"a")]);
    let lacks = disk(1, None, vec![]);
    let leader = status(1, Role::Leader, 1, 1, 1);
    let nodes = [
        obs(1, Some(leader.clone()), &has),
        obs(2, None, &lacks),
        obs(3, None, &lacks),
    ];
    assert!(c
        .after_event(&nodes)
        .unwrap_err()
        .contains("commit durability"));
    let mut c = Checker::new(3);
    let nodes = [
        obs(1, Some(leader), &has),
        obs(2, None, &has),
        obs(3, None, &lacks),
    ];
    assert!(c.after_event(&nodes).is_ok());
    let other = disk(2, None, vec![entry(1, 2, b"z")]);
    let follower = status(3, Role::Follower, 2, 1, 1);
    let nodes = [
        obs(1, None, &has),
        obs(2, None, &other),
        obs(3, Some(follower), &other),
    ];
    assert!(c
        .after_event(&nodes)
        .unwrap_err()
        .contains("state machine safety"));
}

#[test]
fn a_new_leader_must_hold_every_entry_committed_in_earlier_terms() {
    let mut c = Checker::new(3);
    let has = disk(1, None, vec![entry(1, 1, b"a")]);
    let nodes = [
        obs(1, Some(status(1, Role::Leader, 1, 1, 1)), &has),
        obs(2, None, &has),
        obs(3, None, &has),
    ];
    assert!(c.after_event(&nodes).is_ok());
    let empty = disk(2, None, vec![]);
    let nodes = [
        obs(1, None, &has),
        obs(2, None, &has),
        obs(3, Some(status(3, Role::Leader, 2, 0, 0)), &empty),
    ];
    assert!(c
        .after_event(&nodes)
        .unwrap_err()
        .contains("leader completeness"));
}

#[test]
fn applying_must_be_contiguous_and_durable() {
    let mut c = Checker::new(3);
    let d = disk(1, None, vec![entry(1, 1, b"a"), entry(2, 1, b"b")]);
    assert!(
        c.on_apply(NodeId(1), &entry(2, 1, b"b"), Term(1), &d)
            .is_err(),
        "skipped index 1"
    );
    let mut c = Checker::new(3);
    assert!(c
        .on_apply(NodeId(1), &entry(1, 1, b"a"), Term(1), &d)
        .is_ok());
    let short = disk(1, None, vec![entry(1, 1, b"a")]);
    assert!(c
        .on_apply(NodeId(1), &entry(2, 1, b"b"), Term(1), &short)
        .unwrap_err()
        .contains("not in its log"));
}

#[test]
fn a_read_below_an_already_applied_index_is_stale() {
    let mut c = Checker::new(3);
    let d = disk(1, None, vec![entry(1, 1, b"a"), entry(2, 1, b"b")]);
    c.on_apply(NodeId(2), &entry(1, 1, b"a"), Term(1), &d)
        .unwrap();
    c.on_apply(NodeId(2), &entry(2, 1, b"b"), Term(1), &d)
        .unwrap();
    c.on_read_started(NodeId(1), 7);
    let stale = ReadState {
        ctx: 7,
        index: LogIndex(1),
    };
    assert!(c
        .on_read_state(NodeId(1), &stale)
        .unwrap_err()
        .contains("stale read"));
    c.on_read_started(NodeId(1), 8);
    assert!(c
        .on_read_state(
            NodeId(1),
            &ReadState {
                ctx: 8,
                index: LogIndex(2)
            }
        )
        .is_ok());
    assert!(
        c.on_read_state(
            NodeId(1),
            &ReadState {
                ctx: 8,
                index: LogIndex(2)
            }
        )
        .is_err(),
        "served twice"
    );
}

#[test]
fn term_and_commit_never_go_back_within_an_incarnation() {
    let mut c = Checker::new(1);
    let d = disk(3, None, vec![entry(1, 1, b"a")]);
    let mut leader = status(1, Role::Leader, 3, 1, 1);
    leader.membership = std::sync::Arc::new(crate::core::Membership::from_voters([NodeId(1)]));
    assert!(c.after_event(&[obs(1, Some(leader), &d)]).is_ok());
    let err = c
        .after_event(&[obs(1, Some(status(1, Role::Follower, 2, 1, 1)), &d)])
        .unwrap_err();
    assert!(err.contains("term went back"), "{err}");
}

/// A message leaves its sender: the persistence rules at that instant, then log matching.
fn release(c: &mut Checker, msg: &Message, durable: &DiskState) -> Result<(), Violation> {
    check_release(msg, durable, c.strict_term_reveal)?;
    c.on_release(msg)
}
