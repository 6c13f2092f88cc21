//! Leader election (paper 5.2, 5.4.1), PreVote and CheckQuorum (thesis 9.6, 6.2).

use super::*;
use crate::message::{
    AppendEntries, AppendEntriesResponse, Heartbeat, RequestVote, RequestVoteResponse,
};

fn vote_req(from: u64, to: u64, term: u64, last_index: u64, last_term: u64) -> Message {
    msg(
        from,
        to,
        term,
        MessageBody::RequestVote(RequestVote {
            pre_vote: false,
            last_log_index: i(last_index),
            last_log_term: t(last_term),
            leadership_transfer: false,
            campaign: 0,
        }),
    )
}

fn pre_vote_req(from: u64, to: u64, term: u64, last_index: u64, last_term: u64) -> Message {
    let mut m = vote_req(from, to, term, last_index, last_term);
    if let MessageBody::RequestVote(rv) = &mut m.body {
        rv.pre_vote = true;
    }
    m
}

fn vote_resp(from: u64, to: u64, term: u64, pre_vote: bool, granted: bool) -> Message {
    msg(
        from,
        to,
        term,
        MessageBody::RequestVoteResponse(RequestVoteResponse {
            pre_vote,
            granted,
            campaign: 0,
        }),
    )
}

fn heartbeat(from: u64, to: u64, term: u64) -> Message {
    msg(
        from,
        to,
        term,
        MessageBody::Heartbeat(Heartbeat {
            commit: i(0),
            read_seq: 0,
        }),
    )
}

// Paper 5.2: "election timeouts are chosen randomly from a fixed interval".
#[test]
fn election_timeout_is_randomized_within_one_to_two_timeouts() {
    let mut seen = BTreeSet::new();
    for seed in 0..40 {
        let mut c = config(1, 3);
        c.seed = seed;
        let mut node = core_with(c);
        let mut ticks = 0;
        while node.role() == Role::Follower {
            node.tick();
            ticks += 1;
        }
        assert!(
            (10..20).contains(&ticks),
            "seed {seed}: campaigned after {ticks} ticks"
        );
        seen.insert(ticks);
    }
    assert!(
        seen.len() > 3,
        "timeouts should vary across seeds: {seen:?}"
    );
}

// Paper 5.2 + thesis 10.2.1: a candidate increments its term and votes for itself; its
// RequestVote may only leave once that is durable.
#[test]
fn candidate_requests_votes_only_after_its_term_and_vote_are_durable() {
    let mut node = core(1, 3);
    tick_until_campaign(&mut node);
    assert_eq!((node.role(), node.term()), (Role::Candidate, t(1)));
    let rd = node.ready();
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: t(1),
            vote: Some(n(1)),
            commit: i(0)
        })
    );
    assert!(rd.must_sync, "a term/vote change must be fsynced");
    assert!(rd.messages.is_empty());
    assert_eq!(
        sans_campaign(&rd.messages_after_persist),
        vec![vote_req(1, 2, 1, 0, 0), vote_req(1, 3, 1, 0, 0)]
    );
}

// Paper 5.1 ("servers retry RPCs if they do not receive a response in a timely manner"):
// once per heartbeat interval a candidate asks again the voters that have not answered.
#[test]
fn candidate_resends_vote_requests_only_to_voters_that_have_not_answered() {
    let mut c = config(1, 3);
    c.election_timeout_ticks = 10;
    c.heartbeat_interval_ticks = 2;
    let mut node = core_with(c);
    tick_until_campaign(&mut node);
    ready_persisted(&mut node);
    node.step(vote_resp(2, 1, 1, false, false)); // node 2 answers (no); node 3 is silent
    assert_eq!(node.role(), Role::Candidate);
    node.tick();
    let rd = ready_persisted(&mut node);
    assert!(rd.messages.is_empty() && rd.messages_after_persist.is_empty());
    node.tick(); // a heartbeat interval into the election
    let rd = ready_persisted(&mut node);
    let resent: Vec<Message> = rd
        .messages
        .iter()
        .chain(&rd.messages_after_persist)
        .cloned()
        .collect();
    assert_eq!(sans_campaign(&resent), vec![vote_req(1, 3, 1, 0, 0)]);
}

// Paper 5.2: a candidate wins with votes from a majority; 5.4.2: a new leader commits a
// no-op of its own term. Its first AppendEntries goes out at once (10.2.1).
#[test]
fn candidate_with_majority_becomes_leader_and_appends_noop() {
    let mut node = core(1, 3);
    tick_until_campaign(&mut node);
    ready_persisted(&mut node); // the term and self-vote durable; the vote requests leave
    node.step(vote_resp(2, 1, 1, false, true));
    assert_eq!(node.role(), Role::Leader);
    let rd = node.ready();
    assert_eq!(rd.entries, vec![noop(1, 1)]);
    assert_eq!(
        appends(&rd.messages),
        vec![(2, 0, 0, vec![1], 0), (3, 0, 0, vec![1], 0)]
    );
    assert!(rd.messages_after_persist.is_empty());
}

// Paper 5.2: a candidate rejected by a majority cannot win and returns to following.
#[test]
fn candidate_rejected_by_majority_becomes_follower() {
    let mut node = core(1, 3);
    tick_until_campaign(&mut node);
    node.step(vote_resp(2, 1, 1, false, false));
    assert_eq!(
        node.role(),
        Role::Candidate,
        "one rejection of three is not decisive"
    );
    node.step(vote_resp(3, 1, 1, false, false));
    assert_eq!((node.role(), node.term()), (Role::Follower, t(1)));
}

// Paper 5.2: "each server will vote for at most one candidate in a given term".
#[test]
fn follower_grants_at_most_one_vote_per_term() {
    let mut node = core(1, 3);
    node.step(vote_req(2, 1, 1, 0, 0));
    node.step(vote_req(3, 1, 1, 0, 0));
    node.step(vote_req(2, 1, 1, 0, 0));
    let rd = node.ready();
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: t(1),
            vote: Some(n(2)),
            commit: i(0)
        })
    );
    assert_eq!(
        rd.messages_after_persist,
        vec![
            vote_resp(1, 2, 1, false, true),
            vote_resp(1, 3, 1, false, false),
            vote_resp(1, 2, 1, false, true)
        ],
        "all three answers reveal the new term, so all wait for the persist"
    );
}

// Paper 5.4.1: a voter denies its vote to a candidate whose log is less up-to-date.
#[test]
fn vote_denied_to_candidate_with_less_up_to_date_log() {
    let cases = [
        // (candidate last index, last term, granted) against a voter log of terms [1, 2].
        (2, 1, false),
        (1, 2, false),
        (2, 2, true),
        (3, 2, true),
        (1, 3, true),
    ];
    for (last_index, last_term, granted) in cases {
        let mut node = core_with_log(config(1, 3), 2, &[1, 2]);
        node.step(vote_req(2, 1, 3, last_index, last_term));
        let rd = node.ready();
        let expected = vote_resp(1, 2, 3, false, granted);
        assert_eq!(
            rd.messages_after_persist,
            vec![expected],
            "candidate ({last_index}, {last_term})"
        );
    }
}

// Thesis 10.2.1 / outbox rule: a rejection in an unchanged term reveals nothing
// unpersisted and goes out at once; a grant waits for the vote to be durable.
#[test]
fn vote_rejection_in_same_term_goes_out_immediately() {
    let mut node = core(1, 3);
    node.step(vote_req(2, 1, 1, 0, 0));
    ready_persisted(&mut node);
    node.step(vote_req(3, 1, 1, 0, 0));
    let rd = node.ready();
    assert_eq!(rd.messages, vec![vote_resp(1, 3, 1, false, false)]);
    assert!(rd.messages_after_persist.is_empty());
    assert_eq!(rd.hard_state, None);
}

// Paper 5.2 (Election Safety): with a split vote no one wins the term; a later term
// elects exactly one leader.
#[test]
fn split_vote_elects_no_leader_and_a_later_term_elects_exactly_one() {
    let mut net = Net::with_voters(4, |_| {});
    // 1 and 2 campaign in term 1 at the same moment; 3 hears 1 first, 4 hears 2 first.
    tick_until_campaign(net.core(1));
    tick_until_campaign(net.core(2));
    let r1 = net.core(1).ready();
    let r2 = net.core(2).ready();
    let to = |rd: &Ready, dest: u64| {
        rd.messages_after_persist
            .iter()
            .find(|m| m.to == n(dest))
            .unwrap()
            .clone()
    };
    for (dest, first, second) in [(3, to(&r1, 3), to(&r2, 3)), (4, to(&r2, 4), to(&r1, 4))] {
        net.core(dest).step(first);
        net.core(dest).step(second);
    }
    for (voter, winner) in [(3, 1), (4, 2)] {
        let rd = net.core(voter).ready();
        let granted: Vec<(u64, bool)> = rd
            .messages_after_persist
            .iter()
            .map(|m| match m.body {
                MessageBody::RequestVoteResponse(r) => (m.to.0, r.granted),
                _ => panic!("unexpected {m:?}"),
            })
            .collect();
        assert!(granted.contains(&(winner, true)) && granted.iter().filter(|g| g.1).count() == 1);
        for m in rd.messages_after_persist {
            net.core(m.to.0).step(m);
        }
    }
    // 1 and 2 rejected each other (both voted for themselves): 2 votes of 4 each.
    for (a, b) in [(1, 2), (2, 1)] {
        let rd = if a == 1 { &r1 } else { &r2 };
        net.core(b).step(to(rd, b));
    }
    net.settle();
    assert!(
        net.leaders().is_empty(),
        "no majority in term 1: {:?}",
        net.leaders()
    );
    net.elect(3);
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    assert_eq!(leaders[0], (n(3), t(2)));
}

// Paper 5.1: a candidate that hears from a leader of its term (or newer) steps down.
#[test]
fn candidate_steps_down_on_append_from_leader_of_same_term() {
    let mut node = core(1, 3);
    tick_until_campaign(&mut node);
    let ae = AppendEntries {
        prev_log_index: i(0),
        prev_log_term: t(0),
        entries: vec![],
        leader_commit: i(0),
    };
    node.step(msg(2, 1, 1, MessageBody::AppendEntries(ae)));
    assert_eq!(
        (node.role(), node.term(), node.leader()),
        (Role::Follower, t(1), Some(n(2)))
    );
}

// Paper 5.1: a stale leader learns of the newer term from the response to its append,
// and steps down.
#[test]
fn stale_leader_learns_newer_term_from_append_response_and_steps_down() {
    let mut follower = core_with_log(config(2, 3), 3, &[1]);
    let ae = AppendEntries {
        prev_log_index: i(1),
        prev_log_term: t(1),
        entries: vec![],
        leader_commit: i(1),
    };
    follower.step(msg(1, 2, 2, MessageBody::AppendEntries(ae)));
    let rd = follower.ready();
    let reply = AppendEntriesResponse {
        success: false,
        match_index: i(0),
        conflict_index: i(0),
        conflict_term: t(0),
        last_log_index: i(1),
    };
    assert_eq!(
        rd.messages_after_persist,
        vec![msg(2, 1, 3, MessageBody::AppendEntriesResponse(reply))]
    );
    assert_eq!(
        follower.term(),
        t(3),
        "the follower ignores the stale append"
    );

    let mut stale = leader(3);
    stale.step(rd.messages_after_persist[0].clone());
    assert_eq!((stale.role(), stale.term()), (Role::Follower, t(3)));
}

// Thesis 9.6: a pre-vote request carries term + 1 but the pre-candidate's own term and
// vote stay unchanged, so it needs no persist and goes out at once.
#[test]
fn prevote_asks_for_next_term_without_changing_its_own() {
    let mut c = config(1, 3);
    c.pre_vote = true;
    let mut node = core_with_log(c, 4, &[1, 4]);
    ready_persisted(&mut node);
    tick_until_campaign(&mut node);
    assert_eq!((node.role(), node.term()), (Role::PreCandidate, t(4)));
    let rd = node.ready();
    assert_eq!(rd.hard_state, None);
    assert!(!rd.must_sync);
    assert_eq!(
        sans_campaign(&rd.messages),
        vec![pre_vote_req(1, 2, 5, 2, 4), pre_vote_req(1, 3, 5, 2, 4)]
    );
}

// Thesis 9.6: receivers never change their term on a pre-vote; a grant echoes the
// future term, a rejection carries the receiver's own.
#[test]
fn prevote_receivers_keep_their_term() {
    let mut node = core_with_log(config(2, 3), 4, &[1, 4]);
    ready_persisted(&mut node);
    node.step(pre_vote_req(1, 2, 5, 2, 4));
    node.step(pre_vote_req(3, 2, 5, 1, 1));
    assert_eq!((node.term(), node.status().leader), (t(4), None));
    let rd = node.ready();
    assert_eq!(rd.hard_state, None);
    assert_eq!(
        rd.messages,
        vec![
            vote_resp(2, 1, 5, true, true),
            vote_resp(2, 3, 4, true, false)
        ]
    );
}

// Thesis 9.6: winning the pre-vote starts the real election in term + 1.
#[test]
fn prevote_majority_starts_real_election() {
    let mut c = config(1, 3);
    c.pre_vote = true;
    let mut node = core_with(c);
    tick_until_campaign(&mut node);
    node.ready();
    node.step(vote_resp(2, 1, 1, true, true));
    assert_eq!((node.role(), node.term()), (Role::Candidate, t(1)));
    let rd = node.ready();
    assert_eq!(
        sans_campaign(&rd.messages_after_persist),
        vec![vote_req(1, 2, 1, 0, 0), vote_req(1, 3, 1, 0, 0)]
    );
}

// Thesis 9.6: a node partitioned away does not inflate its term, so when it rejoins it
// does not disrupt the healthy leader.
#[test]
fn prevote_keeps_term_stable_for_a_rejoining_node() {
    let mut net = Net::with_voters(3, |c| {
        c.pre_vote = true;
        c.check_quorum = true;
    });
    net.elect(1);
    assert_eq!(net.leaders(), vec![(n(1), t(1))]);
    net.isolate(3);
    for _ in 0..100 {
        net.core(3).tick();
        net.settle();
    }
    assert_eq!(
        net.core(3).term(),
        t(1),
        "pre-votes failed, so the term did not grow"
    );
    net.heal();
    for _ in 0..30 {
        net.tick_all();
    }
    assert_eq!(
        net.leaders(),
        vec![(n(1), t(1))],
        "the leader was not disrupted"
    );
    assert_eq!(net.core(3).leader(), Some(n(1)));
}

// Contrast: without pre-vote the isolated node's term grows on every timeout.
#[test]
fn without_prevote_an_isolated_node_inflates_its_term() {
    let mut net = Net::with_voters(3, |_| {});
    net.elect(1);
    net.isolate(3);
    for _ in 0..100 {
        net.core(3).tick();
        net.settle();
    }
    assert!(net.core(3).term() > t(3), "term {}", net.core(3).term());
}

// Thesis 6.2: a leader that has not heard from a majority within an election timeout
// steps down.
#[test]
fn check_quorum_leader_without_majority_steps_down() {
    let mut c = config(1, 3);
    c.check_quorum = true;
    let mut node = leader_with(c);
    for _ in 0..9 {
        node.tick();
    }
    assert_eq!(node.role(), Role::Leader);
    node.tick();
    assert_eq!(
        node.role(),
        Role::Leader,
        "peers acked the no-op in this timeout"
    );
    for _ in 0..10 {
        node.tick();
    }
    assert_eq!(
        (node.role(), node.term(), node.leader()),
        (Role::Follower, t(1), None)
    );
}

// Thesis 6.2: any response counts as contact.
#[test]
fn check_quorum_leader_hearing_from_majority_stays() {
    use crate::message::HeartbeatResponse;
    let mut c = config(1, 3);
    c.check_quorum = true;
    let mut node = leader_with(c);
    for round in 0..5 {
        for _ in 0..10 {
            node.tick();
            node.step(msg(
                2,
                1,
                1,
                MessageBody::HeartbeatResponse(HeartbeatResponse { read_seq: 0 }),
            ));
        }
        assert_eq!(node.role(), Role::Leader, "round {round}");
    }
}

// Thesis 9.6 / 4.2.3: a follower that heard from its leader within the election timeout
// ignores a higher-term vote request (no answer, no term change).
#[test]
fn lease_follower_ignores_vote_requests_while_leader_is_alive() {
    let mut c = config(2, 3);
    c.check_quorum = true;
    let mut node = core_with(c);
    node.step(heartbeat(1, 2, 1));
    ready_persisted(&mut node);
    node.step(vote_req(3, 2, 2, 5, 1));
    node.step(pre_vote_req(3, 2, 2, 5, 1));
    assert_eq!((node.term(), node.leader()), (t(1), Some(n(1))));
    let rd = node.ready();
    assert!(
        rd.messages.is_empty() && rd.messages_after_persist.is_empty(),
        "{rd:?}"
    );
    // After an election timeout without hearing from the leader, the lease is over.
    let mut c = config(2, 3);
    c.check_quorum = true;
    let mut fresh = core_with(c);
    fresh.step(heartbeat(1, 2, 1));
    ready_persisted(&mut fresh);
    fresh.ticks += 10; // an election timeout passes without a tick's other effects
    fresh.step(vote_req(3, 2, 2, 5, 1));
    assert_eq!(fresh.term(), t(2));
    assert_eq!(
        fresh.ready().messages_after_persist,
        vec![vote_resp(2, 3, 2, false, true)]
    );
}

// Thesis 3.10: votes that follow a TimeoutNow override the lease.
#[test]
fn lease_is_ignored_for_leadership_transfer_votes() {
    let mut c = config(2, 3);
    c.check_quorum = true;
    let mut node = core_with(c);
    node.step(heartbeat(1, 2, 1));
    ready_persisted(&mut node);
    let mut req = vote_req(3, 2, 2, 0, 0);
    if let MessageBody::RequestVote(rv) = &mut req.body {
        rv.leadership_transfer = true;
    }
    node.step(req);
    assert_eq!(node.term(), t(2));
    assert_eq!(
        node.ready().messages_after_persist,
        vec![vote_resp(2, 3, 2, false, true)]
    );
}

// Paper 5.2 end to end: a 5-node cluster elects one leader and every node follows it.
#[test]
fn five_nodes_elect_one_leader_everyone_follows() {
    let mut net = Net::with_voters(5, |c| c.pre_vote = true);
    net.elect(4);
    assert_eq!(net.leaders(), vec![(n(4), t(1))]);
    for id in 1..=5 {
        assert_eq!(net.core(id).leader(), Some(n(4)), "node {id}");
    }
}

// Thesis 9.6: a pre-vote from an older term is answered with our term, so a stale
// pre-candidate catches up instead of retrying forever.
#[test]
fn stale_prevote_is_rejected_with_the_newer_term() {
    let mut node = core_with_log(config(2, 3), 5, &[1]);
    node.step(pre_vote_req(1, 2, 3, 9, 2));
    assert_eq!(node.ready().messages, vec![vote_resp(2, 1, 5, true, false)]);
    let mut c = config(1, 3);
    c.pre_vote = true;
    let mut stale = core_with_log(c, 2, &[1]);
    tick_until_campaign(&mut stale);
    stale.step(vote_resp(2, 1, 5, true, false));
    assert_eq!((stale.role(), stale.term()), (Role::Follower, t(5)));
}

// Thesis 9.6: successive pre-vote rounds ask about the same future term, so the term does
// not tell their answers apart. A grant that arrives late, from a round that already
// failed, must not count in the next one (it would start a needless election on the
// word of a voter that may since have heard from a leader); answers carry the round's
// campaign number.
#[test]
fn a_late_pre_vote_grant_from_an_earlier_round_is_not_counted() {
    let mut c = config(1, 5);
    c.pre_vote = true;
    let mut node = core_with(c);
    tick_until_campaign(&mut node);
    let first = node.ready();
    let round = |rd: &Ready| {
        rd.messages
            .iter()
            .find_map(|m| match &m.body {
                MessageBody::RequestVote(rv) if rv.pre_vote => Some(rv.campaign),
                _ => None,
            })
            .expect("pre-vote requests")
    };
    let first_round = round(&first);
    // The round fails: no answers within its timeout (resends ask again in the same
    // round); a second round starts.
    let mut second_round = first_round;
    for _ in 0..node.config.election_timeout_ticks * 2 {
        node.tick();
        let rd = node.ready();
        if rd
            .messages
            .iter()
            .any(|m| matches!(m.body, MessageBody::RequestVote(_)))
        {
            second_round = round(&rd);
        }
        if second_round != first_round {
            break;
        }
    }
    assert_eq!(node.role(), Role::PreCandidate);
    assert_ne!(first_round, second_round, "a second pre-vote round started");
    let grant = |from: u64, campaign: u64| {
        msg(
            from,
            1,
            1,
            MessageBody::RequestVoteResponse(RequestVoteResponse {
                pre_vote: true,
                granted: true,
                campaign,
            }),
        )
    };
    node.step(grant(2, first_round));
    node.step(grant(3, first_round));
    assert_eq!(
        node.role(),
        Role::PreCandidate,
        "two late grants of the first round are not a majority of the second"
    );
    node.step(grant(2, second_round));
    node.step(grant(3, second_round));
    assert_eq!((node.role(), node.term()), (Role::Candidate, t(1)));
}

// Figure 2: a vote request of a stale term is refused with the current term, so that the
// candidate can campaign again in a term that can win (found by the membership nemesis,
// seed 932: a candidate behind a learner, which never campaigns itself, was otherwise
// never told).
#[test]
fn a_stale_vote_request_is_refused_with_the_current_term() {
    let mut node = core(2, 3);
    node.step(vote_req(3, 2, 5, 0, 0));
    ready_persisted(&mut node);
    node.step(vote_req(1, 2, 3, 9, 1));
    let rd = ready_persisted(&mut node);
    let refusal = rd
        .messages
        .iter()
        .chain(&rd.messages_after_persist)
        .find(|m| m.to == n(1))
        .expect("the stale candidate hears back");
    assert_eq!(refusal.term, t(5));
    assert!(matches!(
        refusal.body,
        MessageBody::RequestVoteResponse(r) if !r.granted
    ));
}
