//! Role transitions (paper Figure 2, "Rules for Servers"; thesis 9.6 for PreCandidate):
//! `become_follower`, `become_pre_candidate`, `become_candidate`, `become_leader`, and
//! the timer reset they share.
//!
//! Invariants: changing the term clears the vote; leaving the leader role drops its
//! per-peer progress, read rounds (reported in `Ready::dropped_reads`) and transfer; each
//! transition draws a fresh randomized election timeout in
//! `[election_timeout_ticks, 2 * election_timeout_ticks)`.

use super::{PendingFlush, RaftCore, Role};
use crate::core::progress::Progress;
use crate::types::{EntryKind, NodeId, Term};
use bytes::Bytes;

impl RaftCore {
    /// Restarts the election timer with a new random timeout.
    pub(super) fn reset_election_timer(&mut self) {
        self.election_elapsed_ticks = 0;
        let base = self.config.election_timeout_ticks;
        self.randomized_election_timeout_ticks = base + self.rng.below(base);
    }

    /// Becomes a follower in `term` (following `leader` if known).
    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        let was = self.role;
        self.leave_leadership();
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        if leader.is_some() {
            self.leader_heard_at_tick = Some(self.ticks);
        }
        self.votes.clear();
        self.reset_election_timer();
        if was != Role::Follower {
            tracing::info!(node = %self.id, term = %self.term, ?leader, from = ?was, "became follower");
        }
    }

    /// Adopts the newer term of a RequestVote without resetting the election timer: the
    /// paper's Figure 2 resets it only on hearing from the current leader or on granting a
    /// vote (which `handle_request_vote` does). Otherwise a stale candidate with a fast clock
    /// keeps every up-to-date node from ever timing out, and no leader is elected (found by
    /// the simulator: regressions.rs, seeds 2146 and 10422 with PreVote off).
    pub(super) fn become_follower_keeping_timer(&mut self, term: Term) {
        let elapsed = self.election_elapsed_ticks;
        let timeout = self.randomized_election_timeout_ticks;
        self.become_follower(term, None);
        if self.role == Role::Follower {
            self.election_elapsed_ticks = elapsed;
            self.randomized_election_timeout_ticks = timeout;
        }
    }

    /// Starts a pre-vote round: asks "would you vote for me in term + 1?" without
    /// changing term or vote (thesis 9.6).
    pub(super) fn become_pre_candidate(&mut self) {
        self.leave_leadership();
        self.next_campaign();
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.id, true);
        self.reset_election_timer();
        tracing::info!(node = %self.id, term = %self.term, "became pre-candidate");
    }

    /// Numbers a new campaign (0 is reserved for "unknown").
    fn next_campaign(&mut self) {
        self.campaign = self.campaign.wrapping_add(1).max(1);
    }

    /// Starts an election in the next term, voting for itself.
    pub(super) fn become_candidate(&mut self) {
        self.leave_leadership();
        self.next_campaign();
        self.term = self.term.next();
        self.vote = Some(self.id);
        self.role = Role::Candidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.id, true);
        self.reset_election_timer();
        tracing::info!(node = %self.id, term = %self.term, "became candidate");
    }

    /// Becomes the leader of the current term: every peer starts in Probe at the end of
    /// the log, and a no-op entry of the new term is appended so that earlier entries can
    /// commit (paper 5.4.2, 8).
    pub(super) fn become_leader(&mut self) {
        assert_eq!(
            self.role,
            Role::Candidate,
            "only a candidate can become leader"
        );
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.votes.clear();
        self.election_elapsed_ticks = 0;
        self.heartbeat_elapsed_ticks = 0;
        let next = self.log.last_index().next();
        let max_inflight = self.config.max_inflight_appends;
        self.progress = self
            .peers
            .iter()
            .map(|p| (*p, Progress::new(next, max_inflight)))
            .collect();
        self.flush = PendingFlush::default();
        self.reset_lease();
        self.log.set_apply_unpersisted(true);
        tracing::info!(node = %self.id, term = %self.term, last = %self.log.last_index(), "became leader");
        let (noop, _) = self.append_leader_entry(EntryKind::Noop, Bytes::new());
        self.term_start_index = noop;
    }

    /// Drops leader-only state (no-op on other roles).
    fn leave_leadership(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        self.progress.clear();
        self.log.set_apply_unpersisted(false);
        self.transfer = None;
        self.reset_lease();
        self.flush = PendingFlush::default();
        let dropped = self.reads.drain_all();
        self.outbox.dropped_reads.extend(dropped);
    }
}
