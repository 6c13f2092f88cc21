//! Log replication (paper 5.3, 5.4.2; thesis 10.2.1): batching, pipelining, flow control,
//! fast backtracking and the commit rules.

use super::*;
use crate::core::progress::ProgressState;
use crate::message::{AppendEntries, AppendEntriesResponse, Heartbeat, HeartbeatResponse};

fn append(
    from: u64,
    to: u64,
    term: u64,
    prev: (u64, u64),
    entries: Vec<Entry>,
    commit: u64,
) -> Message {
    msg(
        from,
        to,
        term,
        MessageBody::AppendEntries(AppendEntries {
            prev_log_index: i(prev.0),
            prev_log_term: t(prev.1),
            entries,
            leader_commit: i(commit),
        }),
    )
}

fn reject(from: u64, to: u64, term: u64, conflict: (u64, u64), last: u64) -> Message {
    msg(
        from,
        to,
        term,
        MessageBody::AppendEntriesResponse(AppendEntriesResponse {
            success: false,
            match_index: i(0),
            conflict_index: i(conflict.0),
            conflict_term: t(conflict.1),
            last_log_index: i(last),
        }),
    )
}

fn heartbeat_resp(from: u64, to: u64, term: u64, read_seq: u64) -> Message {
    msg(
        from,
        to,
        term,
        MessageBody::HeartbeatResponse(HeartbeatResponse { read_seq }),
    )
}

fn propose(core: &mut RaftCore, data: &'static [u8]) -> (LogIndex, Term) {
    core.propose(Bytes::from_static(data)).unwrap()
}

/// A leader of a fresh cluster in `term` whose log has entries with `terms` (indexes
/// 1..), ending with its own no-op; every peer in Probe with nothing outstanding.
fn leader_with_log(voters: u64, terms: &[u64]) -> RaftCore {
    let last_term = terms.last().copied().unwrap_or(0);
    let mut c = core_with_log(config(1, voters), last_term, terms);
    c.campaign(true);
    let term = c.term().0;
    for peer in 2..=voters {
        c.step(vote_grant(peer, 1, term));
    }
    ready_persisted(&mut c);
    for pr in c.progress.values_mut() {
        pr.probe_sent = false;
    }
    c
}

// Thesis 10.2.1: the leader sends new entries before its own write completes, but counts
// itself in the commit quorum only up to what it has persisted.
#[test]
fn leader_replicates_before_persisting_and_counts_itself_only_once_persisted() {
    let mut node = leader(3);
    let (index, _) = propose(&mut node, b"x");
    let rd = node.ready();
    assert_eq!(rd.entries, vec![entry(2, 1, b"x")]);
    assert_eq!(
        appends(&rd.messages),
        vec![(2, 1, 1, vec![2], 1), (3, 1, 1, vec![2], 1)]
    );
    node.step(append_ok(2, 1, 1, 2));
    assert_eq!(
        node.commit_index(),
        i(1),
        "one follower + an unpersisted leader is no majority"
    );
    persist(&mut node, &rd);
    assert_eq!(node.commit_index(), index);
    let rd = node.ready();
    assert_eq!(rd.committed, vec![entry(2, 1, b"x")]);
}

// A committed entry is durable on a majority without the leader's copy, so a leader
// hands it out for applying before its own write is durable (its fsync may wait);
// a follower applies only what its own disk holds.
#[test]
fn a_leader_applies_entries_the_followers_committed_before_its_own_write_is_durable() {
    let mut node = leader(3);
    let (index, _) = propose(&mut node, b"x");
    let rd = node.ready();
    assert_eq!(rd.entries, vec![entry(2, 1, b"x")]);
    node.step(append_ok(2, 1, 1, 2));
    node.step(append_ok(3, 1, 1, 2));
    assert_eq!(
        node.commit_index(),
        index,
        "both followers: a majority without the leader"
    );
    assert!(node.followers_can_commit());
    let rd2 = node.ready();
    assert_eq!(
        rd2.committed,
        vec![entry(2, 1, b"x")],
        "applied before the leader persisted"
    );
    persist(&mut node, &rd);
}

// Paper 5.4.2 / Figure 8: a leader never commits an entry of an earlier term by counting
// replicas; it commits it indirectly with an entry of its own term.
#[test]
fn figure8_previous_term_entry_is_not_committed_by_counting_replicas() {
    let mut node = leader_with_log(3, &[1, 2]);
    assert_eq!((node.term(), node.log.last_index()), (t(3), i(3)));
    node.step(append_ok(2, 1, 3, 2));
    assert_eq!(
        node.commit_index(),
        i(0),
        "entry 2 (term 2) is on a majority but not committable"
    );
    node.step(append_ok(2, 1, 3, 3));
    assert_eq!(
        node.commit_index(),
        i(3),
        "the no-op of term 3 commits, and entry 2 with it"
    );
}

// Batching: proposals between two Readies leave as one AppendEntries per peer.
#[test]
fn proposals_between_readies_are_batched_into_one_append_per_peer() {
    let mut node = leader(3);
    for data in [&b"a"[..], b"b", b"c"] {
        propose(&mut node, data);
    }
    let rd = node.ready();
    assert_eq!(
        appends(&rd.messages),
        vec![(2, 1, 1, vec![2, 3, 4], 1), (3, 1, 1, vec![2, 3, 4], 1)]
    );
    assert!(!node.has_ready() || node.ready().messages.is_empty());
}

// Batching limits: at most max_entries_per_append entries and about max_bytes_per_append
// bytes per AppendEntries (but always at least one entry).
#[test]
fn append_batches_respect_entry_and_byte_limits() {
    let mut c = config(1, 2);
    c.max_entries_per_append = 2;
    let mut node = leader_with(c);
    for _ in 0..5 {
        propose(&mut node, b"e");
    }
    let rd = node.ready();
    assert_eq!(
        appends(&rd.messages),
        vec![
            (2, 1, 1, vec![2, 3], 1),
            (2, 3, 1, vec![4, 5], 1),
            (2, 5, 1, vec![6], 1)
        ]
    );

    let mut c = config(1, 2);
    c.max_bytes_per_append = 60; // each entry below counts 24 + 20 = 44 bytes
    let mut node = leader_with(c);
    for _ in 0..3 {
        propose(&mut node, b"01234567890123456789");
    }
    let rd = node.ready();
    assert_eq!(
        appends(&rd.messages),
        vec![
            (2, 1, 1, vec![2], 1),
            (2, 2, 1, vec![3], 1),
            (2, 3, 1, vec![4], 1)
        ]
    );
}

// Pipelining: in Replicate at most max_inflight_appends appends are outstanding; a full
// window stops sending and each acknowledgement frees room.
#[test]
fn inflight_window_full_stops_sending_and_responses_free_it() {
    let mut c = config(1, 2);
    c.max_entries_per_append = 1;
    c.max_inflight_appends = 2;
    let mut node = leader_with(c);
    for _ in 0..4 {
        propose(&mut node, b"e");
    }
    let rd = ready_persisted(&mut node);
    assert_eq!(
        appends(&rd.messages),
        vec![(2, 1, 1, vec![2], 1), (2, 2, 1, vec![3], 1)]
    );
    assert!(node.progress[&n(2)].is_paused());
    node.step(append_ok(2, 1, 1, 2));
    let rd = node.ready();
    assert_eq!(appends(&rd.messages), vec![(2, 3, 1, vec![4], 2)]);
    node.step(append_ok(2, 1, 1, 4));
    let rd = node.ready();
    assert_eq!(appends(&rd.messages), vec![(2, 4, 1, vec![5], 4)]);
}

// Probe: one append outstanding until the follower answers.
#[test]
fn probe_sends_one_append_until_a_response() {
    let mut node = core(1, 2);
    node.campaign(true);
    ready_persisted(&mut node); // the term and self-vote durable; the vote request leaves
    node.step(vote_grant(2, 1, 1));
    let rd = ready_persisted(&mut node);
    assert_eq!(appends(&rd.messages), vec![(2, 0, 0, vec![1], 0)]);
    propose(&mut node, b"a");
    assert!(
        appends(&node.ready().messages).is_empty(),
        "probe outstanding: nothing more"
    );
    node.step(append_ok(2, 1, 1, 1));
    assert_eq!(node.progress[&n(2)].state, ProgressState::Replicate);
    assert_eq!(appends(&node.ready().messages), vec![(2, 1, 1, vec![2], 1)]);
}

// Probe after reject: a rejection sends a Replicate peer back to Probe, resuming from
// the follower's hint.
#[test]
fn rejection_sends_peer_back_to_probe_at_the_hint() {
    let mut node = leader(2);
    for _ in 0..3 {
        propose(&mut node, b"e");
    }
    ready_persisted(&mut node);
    assert_eq!(node.progress[&n(2)].state, ProgressState::Replicate);
    // The follower lost the append (its log ends at 1).
    node.step(reject(2, 1, 1, (2, 0), 1));
    let pr = &node.progress[&n(2)];
    assert_eq!(
        (pr.state, pr.next_index, pr.probe_sent),
        (ProgressState::Probe, i(2), true)
    );
    assert_eq!(
        appends(&node.ready().messages),
        vec![(2, 1, 1, vec![2, 3, 4], 1)]
    );
}

/// Pumps messages between a leader (node 1) and one follower (node 2) until quiet;
/// returns the number of rejections the follower sent.
fn pump(leader: &mut RaftCore, follower: &mut RaftCore) -> usize {
    let mut rejects = 0;
    // A heartbeat starts the exchange: its response makes the leader probe.
    leader.broadcast_heartbeat();
    for _ in 0..100 {
        let rd = ready_persisted(leader);
        let to_follower: Vec<Message> = rd
            .messages
            .into_iter()
            .chain(rd.messages_after_persist)
            .filter(|m| m.to == n(2))
            .collect();
        for m in to_follower {
            follower.step(m);
        }
        let rd = ready_persisted(follower);
        let replies: Vec<Message> = rd
            .messages
            .into_iter()
            .chain(rd.messages_after_persist)
            .collect();
        if replies.is_empty() && !leader.has_ready() {
            return rejects;
        }
        for m in replies {
            if let MessageBody::AppendEntriesResponse(r) = &m.body {
                rejects += usize::from(!r.success);
            }
            leader.step(m);
        }
    }
    panic!("did not converge");
}

fn terms_of(core: &RaftCore) -> Vec<u64> {
    (1..=core.log.last_index().0)
        .map(|k| core.log.term(i(k)).unwrap().0)
        .collect()
}

// Paper 5.3 (fast backtracking): with the conflicting term and its first index in the
// rejection, the leader skips a whole conflicting term per round trip, not one entry.
// Figure 7 (f): the follower has terms 2 and 3 the leader never saw.
#[test]
fn fast_backtracking_skips_a_whole_conflicting_term_per_round_trip() {
    let leader_log = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let mut leader = leader_with_log(2, &leader_log);
    let mut follower = core_with_log(config(2, 2), 3, &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]);
    let rejects = pump(&mut leader, &mut follower);
    assert_eq!(rejects, 2, "one rejection per conflicting term (3, then 2)");
    assert_eq!(terms_of(&follower), [&leader_log[..], &[7]].concat());
}

// Paper 5.3: when the leader has the conflicting term, it resumes right after its last
// entry of that term. Figure 7 (e): the follower has extra term-4 entries.
#[test]
fn fast_backtracking_uses_leaders_last_entry_of_the_conflicting_term() {
    let leader_log = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let mut leader = leader_with_log(2, &leader_log);
    let mut follower = core_with_log(config(2, 2), 4, &[1, 1, 1, 4, 4, 4, 4]);
    // First probe (prev 10): too short -> hint 8. Second (prev 7, term 5): conflict term
    // 4, which the leader has up to 5 -> next 6, which matches.
    leader.ready();
    follower.step(append(1, 2, 7, (10, 6), vec![], 0));
    let rd = ready_persisted(&mut follower);
    assert_eq!(rd.messages_after_persist, vec![reject(2, 1, 7, (8, 0), 7)]);
    leader.step(rd.messages_after_persist[0].clone());
    assert_eq!(leader.progress[&n(2)].next_index, i(8));
    let rd = ready_persisted(&mut leader);
    follower.step(rd.messages[0].clone());
    let rd = ready_persisted(&mut follower);
    assert_eq!(rd.messages_after_persist, vec![reject(2, 1, 7, (4, 4), 7)]);
    leader.step(rd.messages_after_persist[0].clone());
    assert_eq!(leader.progress[&n(2)].next_index, i(6));
    assert_eq!(pump(&mut leader, &mut follower), 0);
    assert_eq!(terms_of(&follower), [&leader_log[..], &[7]].concat());
}

// Paper 5.3: a follower answers only after the entries are durable, and acknowledges
// only what it verified (prev + entries), not a longer unverified tail.
#[test]
fn follower_acks_after_persist_with_the_verified_match_index() {
    let mut node = core_with_log(config(2, 3), 1, &[1, 1, 1, 1]);
    node.step(append(1, 2, 1, (1, 1), vec![noop(2, 1)], 0));
    let rd = node.ready();
    assert!(rd.messages.is_empty());
    let ack = AppendEntriesResponse {
        success: true,
        match_index: i(2),
        conflict_index: i(0),
        conflict_term: t(0),
        last_log_index: i(4),
    };
    assert_eq!(
        rd.messages_after_persist,
        vec![msg(2, 1, 1, MessageBody::AppendEntriesResponse(ack))]
    );
}

// Paper 5.3: a follower commits min(leader commit, last verified index), so a divergent
// tail is never committed.
#[test]
fn follower_commit_is_bounded_by_the_verified_match() {
    let mut node = core_with_log(config(2, 3), 2, &[1, 1, 2, 2]);
    node.step(append(1, 2, 3, (1, 1), vec![noop(2, 1)], 10));
    assert_eq!(node.commit_index(), i(2));
    assert_eq!(
        node.log.last_index(),
        i(4),
        "entries 3-4 do not conflict with anything sent yet"
    );
}

// Heartbeats carry min(leader commit, peer match): the follower may take it as is.
#[test]
fn heartbeat_commit_is_capped_at_the_peers_match_index() {
    let mut node = leader(3);
    for _ in 0..3 {
        propose(&mut node, b"e");
    }
    ready_persisted(&mut node);
    node.step(append_ok(2, 1, 1, 4));
    assert_eq!(node.commit_index(), i(4));
    ready_persisted(&mut node);
    node.heartbeat_elapsed_ticks = 0;
    node.tick();
    let rd = node.ready();
    let beats: Vec<(u64, u64)> = rd
        .messages
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::Heartbeat(hb) => Some((m.to.0, hb.commit.0)),
            _ => None,
        })
        .collect();
    assert_eq!(beats, vec![(2, 4), (3, 1)]);
}

// A follower with a divergent uncommitted tail must not commit it from a heartbeat.
#[test]
fn heartbeat_never_commits_a_divergent_tail() {
    let mut node = core_with_log(config(2, 3), 2, &[1, 1, 2]);
    node.step(msg(
        1,
        2,
        3,
        MessageBody::Heartbeat(Heartbeat {
            commit: i(2),
            read_seq: 0,
        }),
    ));
    assert_eq!(node.commit_index(), i(2), "not 3: entry 3 may be replaced");
}

// A commit advance alone sends no extra request (one request per peer per batch);
// followers learn the new commit index from the next heartbeat.
#[test]
fn commit_advance_reaches_followers_with_the_next_heartbeat() {
    let mut node = leader(3);
    node.propose(Bytes::from_static(b"x")).unwrap();
    ready_persisted(&mut node);
    node.step(append_ok(2, 1, 1, 2));
    assert_eq!(node.commit_index(), i(2));
    assert!(node.ready().messages.is_empty());
    node.tick();
    let beats: Vec<(u64, u64)> = node
        .ready()
        .messages
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::Heartbeat(hb) => Some((m.to.0, hb.commit.0)),
            _ => None,
        })
        .collect();
    assert_eq!(
        beats,
        vec![(2, 2), (3, 1)],
        "node 3 has not acknowledged entry 2 yet"
    );
}

// A heartbeat response lets a paused Probe peer be probed again (the probe was lost).
#[test]
fn heartbeat_response_reprobes_a_probing_peer() {
    let mut node = leader_with_log(2, &[1]);
    let rd = node.ready();
    assert!(
        appends(&rd.messages).is_empty(),
        "probe of the election already handed out"
    );
    node.progress.get_mut(&n(2)).unwrap().probe_sent = true;
    propose(&mut node, b"x");
    assert!(appends(&node.ready().messages).is_empty());
    node.step(heartbeat_resp(2, 1, 2, 0));
    assert_eq!(
        appends(&node.ready().messages),
        vec![(2, 1, 1, vec![2, 3], 0)]
    );
}

// A full window whose responses were lost: once the match index stays put between two
// heartbeat responses, one slot is freed, so replication cannot stall forever.
#[test]
fn heartbeat_response_frees_a_slot_of_a_stalled_full_window() {
    let mut c = config(1, 2);
    c.max_entries_per_append = 1;
    c.max_inflight_appends = 1;
    let mut node = leader_with(c);
    propose(&mut node, b"a");
    propose(&mut node, b"b");
    let rd = ready_persisted(&mut node);
    assert_eq!(appends(&rd.messages), vec![(2, 1, 1, vec![2], 1)]);
    node.step(heartbeat_resp(2, 1, 1, 0));
    assert!(
        appends(&node.ready().messages).is_empty(),
        "first look: match 1 is news"
    );
    node.step(heartbeat_resp(2, 1, 1, 0));
    assert_eq!(appends(&node.ready().messages), vec![(2, 2, 1, vec![3], 1)]);
}

// While the match index keeps moving, heartbeat responses add no extra appends.
#[test]
fn heartbeat_responses_add_no_appends_while_replication_progresses() {
    let mut node = leader(2);
    for k in 0..5u64 {
        propose(&mut node, b"e");
        ready_persisted(&mut node);
        node.step(append_ok(2, 1, 1, 2 * k + 2));
        propose(&mut node, b"f");
        ready_persisted(&mut node);
        node.step(heartbeat_resp(2, 1, 1, 0));
        assert!(
            appends(&node.ready().messages)
                .iter()
                .all(|a| !a.3.is_empty()),
            "round {k}"
        );
        node.step(append_ok(2, 1, 1, 2 * k + 3));
        node.ready();
    }
}

// A delayed, older acknowledgement never moves the match index back.
#[test]
fn stale_append_ack_does_not_regress_match() {
    let mut node = leader(2);
    propose(&mut node, b"a");
    ready_persisted(&mut node);
    node.step(append_ok(2, 1, 1, 2));
    node.step(append_ok(2, 1, 1, 1));
    assert_eq!(node.progress[&n(2)].match_index, i(2));
}

// A conflicting suffix is replaced: the Ready's entries start at the first conflict.
#[test]
fn follower_truncates_conflicting_suffix_and_persists_from_the_conflict() {
    let mut node = core_with_log(config(2, 2), 2, &[1, 2, 2]);
    node.step(append(1, 2, 3, (1, 1), vec![noop(2, 3)], 0));
    let rd = node.ready();
    assert_eq!(rd.entries, vec![noop(2, 3)]);
    assert_eq!(node.log.last_index(), i(2));
}

// Paper 5.3 end to end: entries proposed on the leader reach every state machine, in
// the same order.
#[test]
fn three_nodes_apply_the_same_entries_in_order() {
    let mut net = Net::with_voters(3, |c| c.pre_vote = true);
    net.elect(1);
    for k in 0..20u8 {
        net.core(1).propose(Bytes::from(vec![k])).unwrap();
        if k % 3 == 0 {
            net.settle();
        }
    }
    net.settle();
    net.tick_all();
    let expected: Vec<Bytes> = (0..20u8).map(|k| Bytes::from(vec![k])).collect();
    for id in 1..=3 {
        let got: Vec<Bytes> = net.applied[&n(id)]
            .iter()
            .filter(|e| e.kind == EntryKind::Normal)
            .map(|e| e.data.clone())
            .collect();
        assert_eq!(got, expected, "node {id}");
    }
}

// Request budget (6.824 TestCount2B): with a healthy network, agreeing on a command
// costs one AppendEntries per peer, nothing more (no commit-only broadcasts).
#[test]
fn each_command_costs_one_request_per_peer() {
    let mut net = Net::with_voters(3, |c| c.pre_vote = true);
    net.elect(1);
    let before = net.delivered.iter().filter(|m| m.is_request()).count();
    for k in 0..10u8 {
        net.core(1).propose(Bytes::from(vec![k])).unwrap();
        net.settle();
    }
    let requests = net.delivered.iter().filter(|m| m.is_request()).count() - before;
    assert_eq!(requests, 20);
    assert_eq!(net.core(1).commit_index(), i(11));
}
