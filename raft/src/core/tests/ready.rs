//! The Ready contract: must_sync, persistence reports, apply gating, restart.

use super::*;
use crate::message::{AppendEntries, Heartbeat};
use crate::types::{Snapshot, SnapshotMeta};

fn append(term: u64, prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Message {
    msg(
        1,
        2,
        term,
        MessageBody::AppendEntries(AppendEntries {
            prev_log_index: i(prev.0),
            prev_log_term: t(prev.1),
            entries,
            leader_commit: i(commit),
        }),
    )
}

fn heartbeat(term: u64, commit: u64) -> Message {
    msg(
        1,
        2,
        term,
        MessageBody::Heartbeat(Heartbeat {
            commit: i(commit),
            read_seq: 0,
        }),
    )
}

#[test]
fn must_sync_when_entries_are_appended() {
    let mut node = core(2, 3);
    node.step(append(1, (0, 0), vec![entry(1, 1, b"a")], 0));
    let rd = node.ready();
    assert_eq!(rd.entries, vec![entry(1, 1, b"a")]);
    assert!(rd.must_sync);
}

#[test]
fn must_sync_on_term_change_alone() {
    let mut node = core(2, 3);
    node.step(heartbeat(1, 0));
    let rd = node.ready();
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: t(1),
            vote: None,
            commit: i(0)
        })
    );
    assert!(rd.entries.is_empty());
    assert!(rd.must_sync);
}

#[test]
fn no_sync_when_only_the_commit_index_changed() {
    let mut node = core(2, 3);
    node.step(append(1, (0, 0), vec![entry(1, 1, b"a")], 0));
    ready_persisted(&mut node);
    node.step(heartbeat(1, 1));
    let rd = node.ready();
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: t(1),
            vote: None,
            commit: i(1)
        })
    );
    assert!(
        !rd.must_sync,
        "a commit-only hard state is written without fsync"
    );
    assert_eq!(rd.committed, vec![entry(1, 1, b"a")]);
    assert_eq!(
        rd.messages.len(),
        1,
        "the heartbeat response needs no persist"
    );
}

// Committed entries are handed out only up to the locally persisted index, so applying
// never runs ahead of the local disk.
#[test]
fn committed_entries_wait_for_the_local_persist() {
    let mut node = core(2, 3);
    node.step(append(
        1,
        (0, 0),
        vec![entry(1, 1, b"a"), entry(2, 1, b"b")],
        2,
    ));
    assert_eq!(node.commit_index(), i(2));
    let rd = node.ready();
    assert_eq!(rd.entries.len(), 2);
    assert!(rd.committed.is_empty(), "not durable yet");
    persist(&mut node, &rd);
    assert!(node.has_ready());
    assert_eq!(
        node.ready().committed,
        vec![entry(1, 1, b"a"), entry(2, 1, b"b")]
    );
    assert!(!node.has_ready());
}

// A persist report for a Ready whose entries were replaced in the meantime does not make
// the replacing entries durable.
#[test]
fn a_persist_report_for_replaced_entries_is_ignored() {
    let mut node = core(2, 3);
    node.step(append(
        1,
        (0, 0),
        vec![entry(1, 1, b"a"), entry(2, 1, b"b")],
        0,
    ));
    let first = node.ready();
    // A new leader of term 2 replaces entry 2 before the first write completes.
    node.step(append(2, (1, 1), vec![entry(2, 2, b"c")], 2));
    let second = node.ready();
    assert_eq!(second.entries, vec![entry(2, 2, b"c")]);
    persist(&mut node, &first);
    assert_eq!(
        node.status().persisted,
        i(0),
        "entry (2, 1) no longer exists"
    );
    assert!(node.ready().committed.is_empty());
    persist(&mut node, &second);
    assert_eq!(node.status().persisted, i(2));
    assert_eq!(
        node.ready().committed,
        vec![entry(1, 1, b"a"), entry(2, 2, b"c")]
    );
    let _ = first;
}

#[test]
fn ready_numbers_increase_and_idle_core_has_nothing() {
    let mut node = core(1, 3);
    assert!(!node.has_ready());
    assert_eq!(node.ready().number, 1);
    assert_eq!(node.ready().number, 2);
    assert!(node.ready().is_empty());
}

fn initial(
    snapshot_at: Option<(u64, u64)>,
    terms: &[u64],
    hs: (u64, Option<u64>, u64),
) -> InitialState {
    let start = snapshot_at.map_or(1, |s| s.0 + 1);
    InitialState {
        hard_state: HardState {
            term: t(hs.0),
            vote: hs.1.map(n),
            commit: i(hs.2),
        },
        snapshot: snapshot_at.map(|(index, term)| Snapshot {
            meta: SnapshotMeta {
                index: i(index),
                term: t(term),
            },
            data: Bytes::from_static(b"state"),
            conf: None,
        }),
        entries: terms
            .iter()
            .enumerate()
            .map(|(k, tm)| entry(start + k as u64, *tm, b"e"))
            .collect(),
    }
}

// Restart: the first Ready hands out the recovered snapshot to restore, then the
// committed entries after it; nothing is re-persisted.
#[test]
fn restart_hands_out_snapshot_then_committed_entries() {
    let init = initial(Some((5, 2)), &[2, 3, 3], (3, Some(1), 7));
    let mut node = RaftCore::new(config(1, 3), init.clone()).unwrap();
    let status = node.status();
    assert_eq!(
        (
            status.term,
            status.commit,
            status.applied,
            status.persisted,
            status.last_index
        ),
        (t(3), i(7), i(5), i(8), i(8))
    );
    let rd = node.ready();
    assert_eq!(rd.apply_snapshot, init.snapshot.map(|s| s.meta));
    assert_eq!(rd.committed, vec![entry(6, 2, b"e"), entry(7, 3, b"e")]);
    assert_eq!(
        (rd.hard_state, rd.entries.len(), rd.must_sync),
        (None, 0, false)
    );
    assert_eq!(node.status().applied, i(7));
}

// Restart keeps the vote: a node never votes twice in one term, even across a crash.
#[test]
fn restart_keeps_term_and_vote() {
    use crate::message::RequestVote;
    let mut node = RaftCore::new(config(1, 3), initial(None, &[], (4, Some(2), 0))).unwrap();
    let rv = RequestVote {
        pre_vote: false,
        last_log_index: i(9),
        last_log_term: t(4),
        leadership_transfer: false,
        campaign: 0,
    };
    node.step(msg(3, 1, 4, MessageBody::RequestVote(rv)));
    let rd = node.ready();
    assert_eq!(rd.messages.len(), 1);
    assert!(matches!(rd.messages[0].body, MessageBody::RequestVoteResponse(r) if !r.granted));
}

/// A Ready persists entries (and a snapshot) before the hard state, so a crash between the
/// records leaves a log newer than the durable term. The node starts in the newest term,
/// with no vote, and its first Ready makes that term durable (fsynced).
#[test]
fn a_log_newer_than_the_durable_term_is_recovered_in_the_newest_term() {
    let mut node = RaftCore::new(config(1, 3), initial(None, &[1, 2], (1, Some(2), 0))).unwrap();
    assert_eq!(node.term(), Term(2));
    let rd = node.ready();
    let hs = rd.hard_state.expect("the raised term must be persisted");
    assert_eq!((hs.term, hs.vote), (Term(2), None));
    assert!(rd.must_sync);
    let snap = RaftCore::new(config(1, 3), initial(Some((3, 5)), &[], (4, None, 3))).unwrap();
    assert_eq!(snap.term(), Term(5));
}

#[test]
fn inconsistent_initial_state_is_a_config_error() {
    let bad = [
        (
            "gap after snapshot",
            InitialState {
                entries: vec![entry(7, 2, b"")],
                ..initial(Some((5, 2)), &[], (2, None, 5))
            },
        ),
        ("commit beyond log", initial(None, &[1, 1], (1, None, 3))),
        ("terms decrease", initial(None, &[2, 1], (2, None, 0))),
    ];
    // A vote for a node the bootstrap voters do not list is fine: the configuration
    // may have changed through the log since.
    assert!(RaftCore::new(config(1, 3), initial(None, &[], (1, Some(9), 0))).is_ok());
    for (what, init) in bad {
        assert!(RaftCore::new(config(1, 3), init).is_err(), "{what}");
    }
    assert!(RaftCore::new(config(1, 3), initial(Some((3, 2)), &[2, 4], (4, None, 4))).is_ok());
    let mut c = config(1, 3);
    c.heartbeat_interval_ticks = 0;
    assert!(
        RaftCore::new(c, InitialState::default()).is_err(),
        "config is validated too"
    );
}

// The status accessors agree with status().
#[test]
fn accessors_match_status() {
    let node = leader(3);
    let s = node.status();
    assert_eq!(
        (
            node.id(),
            node.role(),
            node.term(),
            node.leader(),
            node.commit_index()
        ),
        (s.id, s.role, s.term, s.leader, s.commit)
    );
    assert!(node.is_leader());
}

// Outbox rule (Figure 2): a heartbeat response reveals the follower's term; until the
// Ready that changed the term is reported durable, responses wait for the persist; after
// that they go out at once.
#[test]
fn heartbeat_response_waits_until_the_new_term_is_reported_durable() {
    let mut node = core(2, 3);
    node.step(heartbeat(1, 0));
    let first = node.ready();
    assert!(first.messages.is_empty());
    assert_eq!(first.messages_after_persist.len(), 1);
    assert!(
        first.must_sync && first.has_persist_work(),
        "a term change alone must be persisted and reported too"
    );
    node.step(heartbeat(1, 0));
    let rd = node.ready();
    assert!(
        rd.messages.is_empty(),
        "term 1 handed out but not yet durable"
    );
    assert_eq!(rd.messages_after_persist.len(), 1);
    persist(&mut node, &first);
    node.step(heartbeat(1, 0));
    let rd = node.ready();
    assert_eq!(rd.messages.len(), 1);
    assert!(rd.messages_after_persist.is_empty());
}

// A vote rejection by a candidate whose new term is handed out but not yet durable waits
// for the persist too (found by the simulator's Figure 2 conformance check).
#[test]
fn candidate_rejection_waits_until_its_term_is_durable() {
    use crate::message::RequestVote;
    let mut node = core(3, 3);
    tick_until_campaign(&mut node);
    let campaign = node.ready();
    let rv = RequestVote {
        pre_vote: false,
        last_log_index: i(0),
        last_log_term: t(0),
        leadership_transfer: false,
        campaign: 0,
    };
    node.step(msg(1, 3, 1, MessageBody::RequestVote(rv)));
    let rd = node.ready();
    assert!(rd.messages.is_empty());
    assert_eq!(rd.messages_after_persist.len(), 1);
    persist(&mut node, &campaign);
    node.step(msg(1, 3, 1, MessageBody::RequestVote(rv)));
    assert_eq!(node.ready().messages.len(), 1);
}

#[test]
fn oversized_proposal_is_refused() {
    use crate::error::ProposeError;
    let mut c = config(1, 1);
    c.max_proposal_bytes = 4;
    let mut node = core_with(c);
    node.campaign(true);
    assert_eq!(
        node.propose(Bytes::from_static(b"12345")),
        Err(ProposeError::TooLarge {
            size_bytes: 5,
            max_bytes: 4
        })
    );
    assert!(node.propose(Bytes::from_static(b"1234")).is_ok());
}

// Messages not addressed to us, from ourselves, from non-voters or with absurd terms are
// dropped without effect.
#[test]
fn misaddressed_and_absurd_messages_are_dropped() {
    let mut node = core(2, 3);
    for m in [
        heartbeat(1, 0),
        heartbeat(1, 0),
        heartbeat(1, 0),
        heartbeat(u64::MAX, 0),
    ]
    .into_iter()
    .enumerate()
    .map(|(k, mut m)| {
        match k {
            0 => m.to = n(3),
            1 => m.from = n(2),
            // (A node the configuration does not list is heard: it may lead a newer
            // configuration this node has not applied yet. Id 0 is nobody.)
            2 => m.from = n(0),
            _ => {}
        }
        m
    }) {
        node.step(m);
    }
    assert_eq!((node.term(), node.leader()), (t(0), None));
    assert!(!node.has_ready());
}

// Malformed AppendEntries (non-contiguous entries) is dropped, never a panic.
#[test]
fn malformed_append_is_dropped() {
    let mut node = core(2, 3);
    node.step(append(
        1,
        (0, 0),
        vec![entry(1, 1, b"a"), entry(3, 1, b"c")],
        0,
    ));
    node.step(append(1, (u64::MAX, 1), vec![entry(1, 1, b"a")], 0));
    let rd = node.ready();
    assert!(rd.entries.is_empty());
    assert!(rd.messages_after_persist.is_empty());
}

// Paper 5.3 and Figure 2 ("updated on stable storage before responding"): a follower that
// handles a batch of messages before its next Ready may acknowledge one leader's entries
// and then take a newer leader's append that replaces them. The first acknowledgement
// would leave after the Ready that writes the *replaced* log: it must be withdrawn
// (found by the simulator: a stalled node woke to both appends, seed 3585 of the 7-node
// nemesis). The newer leader's acknowledgement stays.
#[test]
fn an_ack_of_entries_replaced_in_the_same_ready_is_withdrawn() {
    let mut node = core(2, 3);
    node.step(append(1, (0, 0), vec![entry(1, 1, b"a")], 1));
    let rd = node.ready();
    persist(&mut node, &rd);
    // Leader 1 of term 2 sends entries 2-3; leader 3 of term 3 then replaces them.
    node.step(append(
        2,
        (1, 1),
        vec![entry(2, 2, b"b"), entry(3, 2, b"c")],
        1,
    ));
    let newer = msg(
        3,
        2,
        3,
        MessageBody::AppendEntries(AppendEntries {
            prev_log_index: i(1),
            prev_log_term: t(1),
            entries: vec![entry(2, 3, b"x")],
            leader_commit: i(1),
        }),
    );
    node.step(newer);
    let rd = node.ready();
    assert_eq!(rd.entries, vec![entry(2, 3, b"x")]);
    let acks: Vec<(u64, u64)> = rd
        .messages_after_persist
        .iter()
        .filter_map(|m| match &m.body {
            MessageBody::AppendEntriesResponse(r) if r.success => Some((m.to.0, r.match_index.0)),
            _ => None,
        })
        .collect();
    assert_eq!(
        acks,
        vec![(3, 2)],
        "only the newer leader's ack, for entry 2"
    );
}
