//! Leader election (paper 5.2, 5.4.1), PreVote (thesis 9.6) and CheckQuorum with the
//! leader lease it gives followers (thesis 6.2, 9.6).
//!
//! Invariants: a node grants at most one vote per term, only to a candidate whose log is
//! at least as up-to-date as its own, and only after the vote is durable (grants go in
//! `messages_after_persist`); pre-votes change nobody's term or vote; a follower that
//! heard from a live leader within the election timeout ignores (pre-)vote requests with
//! a higher term unless they follow a leadership transfer.

use super::quorum::VoteOutcome;
use super::{RaftCore, Role};
use crate::message::{MessageBody, RequestVote, RequestVoteResponse};
use crate::types::{NodeId, Term};

impl RaftCore {
    /// Follower and candidate ticks: campaign when the election timer runs out.
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed_ticks += 1;
        if !self.membership.is_voter(self.id) {
            // A learner (or a node removed from the configuration) never campaigns.
            return;
        }
        if self.election_elapsed_ticks >= self.randomized_election_timeout_ticks {
            tracing::debug!(node = %self.id, term = %self.term, "election timeout");
            self.campaign(false);
        } else if self.election_elapsed_ticks % self.config.heartbeat_interval_ticks == 0 {
            self.resend_vote_requests();
        }
    }

    /// Candidates and pre-candidates, once per heartbeat interval: ask again the voters
    /// that have not answered, since the request or its answer may have been lost (the
    /// paper: servers retry RPCs that get no timely response). Answering is idempotent:
    /// a voter grants its vote again to the candidate it already voted for. Without this,
    /// lossy links with long delays could make every election time out (found by the
    /// simulator: figure_8_unreliable, seeds 36, 1451, 2602).
    fn resend_vote_requests(&mut self) {
        let pre_vote = match self.role {
            Role::PreCandidate => true,
            Role::Candidate => false,
            Role::Follower | Role::Leader => return,
        };
        let silent: Vec<NodeId> = self
            .peers
            .iter()
            .copied()
            .filter(|p| self.membership.is_voter(*p) && !self.votes.contains_key(p))
            .collect();
        self.request_votes_from(&silent, pre_vote, self.campaign_is_transfer);
    }

    /// Starts an election: a pre-vote round first when configured, unless this follows
    /// a leadership transfer (the old leader asked us to take over at once).
    pub(super) fn campaign(&mut self, leadership_transfer: bool) {
        if !self.membership.is_voter(self.id) {
            tracing::warn!(node = %self.id, "not campaigning: not a voter");
            return;
        }
        if self.has_unapplied_membership_change() {
            tracing::warn!(node = %self.id, term = %self.term,
                "not campaigning: a committed configuration change is not applied yet");
            self.reset_election_timer();
            return;
        }
        if self.config.pre_vote && !leadership_transfer {
            self.become_pre_candidate();
            self.campaign_is_transfer = false;
            self.request_votes(true, false);
        } else {
            self.become_candidate();
            self.campaign_is_transfer = leadership_transfer;
            self.request_votes(false, leadership_transfer);
        }
        self.check_vote_outcome();
    }

    /// Sends (pre-)vote requests to every other voter.
    fn request_votes(&mut self, pre_vote: bool, leadership_transfer: bool) {
        let voters: Vec<NodeId> = self
            .membership
            .all_voters()
            .into_iter()
            .filter(|v| *v != self.id)
            .collect();
        self.request_votes_from(&voters, pre_vote, leadership_transfer);
    }

    /// Sends (pre-)vote requests to `peers`.
    fn request_votes_from(&mut self, peers: &[NodeId], pre_vote: bool, leadership_transfer: bool) {
        let term = if pre_vote {
            self.term.next()
        } else {
            self.term
        };
        let request = RequestVote {
            pre_vote,
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            leadership_transfer,
            campaign: self.campaign,
        };
        for peer in peers {
            self.send_with_term(*peer, term, MessageBody::RequestVote(request));
        }
    }

    /// Whether this node heard from a live leader within the election timeout (the
    /// follower side of CheckQuorum: such a node refuses to help depose that leader), or
    /// started too recently to know (with lease reads, see `lease.rs`). A leader counts
    /// itself live until its own CheckQuorum says otherwise.
    ///
    /// The follower's side is counted from when it last heard a leader, not from its
    /// current term's leader: a higher-term message that is not a vote request (a delayed
    /// pre-vote rejection, say) makes it a follower of that term with no known leader,
    /// and its promise to the leader it heard must survive that (a vote granted in the
    /// new term inside the promise would let a new leader commit under an old leader's
    /// lease).
    pub(super) fn in_leader_lease(&self) -> bool {
        let timeout = u64::from(self.config.election_timeout_ticks);
        let heard_leader = match self.role {
            Role::Leader => self.election_elapsed_ticks < self.config.election_timeout_ticks,
            _ => self
                .leader_heard_at_tick
                .is_some_and(|at| self.ticks.saturating_sub(at) < timeout),
        };
        self.config.check_quorum && (heard_leader || self.in_boot_guard())
    }

    /// A (pre-)vote request in a term at least ours (lower terms were answered or
    /// dropped by `step`; a real vote's higher term was already adopted).
    pub(super) fn handle_request_vote(&mut self, from: NodeId, msg_term: Term, rv: RequestVote) {
        let future_pre_vote = rv.pre_vote && msg_term > self.term;
        // Higher-term requests inside the lease were dropped in `step`; this one may be of
        // a term we took from another message while the lease we promised still runs.
        let in_lease = !rv.leadership_transfer && self.in_leader_lease();
        let can_vote = !in_lease
            && (self.vote == Some(from)
                || (self.vote.is_none() && self.leader.is_none())
                || future_pre_vote);
        let granted = can_vote && self.log.is_up_to_date(rv.last_log_index, rv.last_log_term);
        tracing::debug!(node = %self.id, %from, term = %msg_term, pre_vote = rv.pre_vote, granted,
            "vote request");
        let response = MessageBody::RequestVoteResponse(RequestVoteResponse {
            pre_vote: rv.pre_vote,
            granted,
            campaign: rv.campaign,
        });
        if rv.pre_vote {
            // A grant echoes the future term so the pre-candidate counts it; a rejection
            // carries ours so a stale pre-candidate catches up.
            let term = if granted { msg_term } else { self.term };
            self.send_with_term(from, term, response);
            return;
        }
        if granted {
            self.vote = Some(from);
            self.reset_election_timer();
        }
        self.send(from, response);
    }

    /// A (pre-)vote response. Higher-term rejections already made us a follower.
    pub(super) fn handle_vote_response(
        &mut self,
        from: NodeId,
        msg_term: Term,
        r: RequestVoteResponse,
    ) {
        let this_campaign = r.campaign == 0 || r.campaign == self.campaign;
        let counts = this_campaign
            && match self.role {
                Role::PreCandidate => r.pre_vote,
                Role::Candidate => !r.pre_vote && msg_term == self.term,
                Role::Follower | Role::Leader => false,
            };
        if !counts {
            return;
        }
        self.votes.entry(from).or_insert(r.granted);
        self.check_vote_outcome();
    }

    /// Acts on the tally: a won pre-vote starts the real election, a won election makes
    /// us leader, a lost one sends us back to following.
    fn check_vote_outcome(&mut self) {
        match self.membership.vote_outcome(&self.votes) {
            VoteOutcome::Pending => {}
            VoteOutcome::Won if self.role == Role::PreCandidate => {
                self.become_candidate();
                self.request_votes(false, false);
                self.check_vote_outcome();
            }
            VoteOutcome::Won => self.become_leader(),
            VoteOutcome::Lost => {
                tracing::info!(node = %self.id, term = %self.term, role = ?self.role, "election lost");
                self.become_follower(self.term, None);
            }
        }
    }

    /// Leader side of CheckQuorum, run once per election timeout: step down unless a
    /// majority (counting itself) was heard from since the previous check.
    pub(super) fn check_quorum_active(&mut self) {
        let quorum_active = self.membership.has_quorum(|id| {
            id == self.id || self.progress.get(&id).is_some_and(|p| p.recent_active)
        });
        let active = 1 + self.progress.values().filter(|p| p.recent_active).count();
        for pr in self.progress.values_mut() {
            pr.recent_active = false;
        }
        if !quorum_active {
            tracing::info!(node = %self.id, term = %self.term, active, "lost contact with a quorum; stepping down");
            self.become_follower(self.term, None);
        }
    }
}
