//! `step`: the entry point for peer messages. First the term rules (paper Figure 2 "All
//! Servers"; thesis 9.6 for pre-votes and the leader lease), then dispatch by message and
//! role to the handler that owns the concern.
//!
//! Invariants: a message from a higher term makes this node a follower of that term
//! before it is handled, except (pre-)vote requests refused by the leader lease, pre-vote
//! requests and pre-vote grants (which never change anyone's term); a message from a
//! lower term is never acted on, only answered where the answer tells a stale leader or
//! pre-candidate about the newer term.

use super::{RaftCore, Role};
use crate::message::{
    AppendEntriesResponse, HeartbeatResponse, InstallSnapshotResponse, Message, MessageBody,
    RequestVoteResponse,
};
use crate::types::{LogIndex, NodeId, Term};

impl RaftCore {
    pub(super) fn step_message(&mut self, msg: Message) {
        // Any other node may write to us: configurations change through the log, so a
        // lagging member (or one joining) must hear a leader it does not know of yet.
        // What a non-member says counts for nothing: votes and acknowledgements are
        // counted only for members (`membership/joint.rs`, the leader's progress map).
        if msg.to != self.id || msg.from == self.id || msg.from == NodeId::ZERO {
            tracing::warn!(node = %self.id, from = %msg.from, to = %msg.to, "dropping misaddressed message");
            return;
        }
        if is_absurd(&msg) {
            tracing::warn!(node = %self.id, from = %msg.from, term = %msg.term, "dropping message with absurd term or index");
            return;
        }
        if msg.term > self.term {
            if !self.step_higher_term(&msg) {
                return;
            }
        } else if msg.term < self.term {
            self.step_lower_term(msg);
            return;
        }
        self.dispatch(msg);
    }

    /// Applies the rules for a message from a newer term; returns whether to handle it.
    fn step_higher_term(&mut self, msg: &Message) -> bool {
        match &msg.body {
            MessageBody::RequestVote(rv) => {
                if !rv.leadership_transfer && self.in_leader_lease() {
                    tracing::debug!(node = %self.id, from = %msg.from, term = %msg.term,
                        "ignoring vote request: leader lease");
                    return false;
                }
                if !rv.pre_vote {
                    self.become_follower_keeping_timer(msg.term);
                }
                true
            }
            MessageBody::RequestVoteResponse(r) if r.pre_vote && r.granted => true,
            MessageBody::AppendEntries(_)
            | MessageBody::Heartbeat(_)
            | MessageBody::InstallSnapshot(_) => {
                self.become_follower(msg.term, Some(msg.from));
                true
            }
            _ => {
                self.become_follower(msg.term, None);
                true
            }
        }
    }

    /// Answers a message from an older term where that helps the sender catch up: a
    /// stale leader learns the new term from the response and steps down (etcd does the
    /// same; without it a leader cut off by a partition with a higher-term node would
    /// never hear of it under CheckQuorum), and a stale pre-candidate learns it too.
    fn step_lower_term(&mut self, msg: Message) {
        let reply = match msg.body {
            MessageBody::AppendEntries(_) => {
                MessageBody::AppendEntriesResponse(AppendEntriesResponse {
                    success: false,
                    match_index: LogIndex::ZERO,
                    conflict_index: LogIndex::ZERO,
                    conflict_term: Term::ZERO,
                    last_log_index: self.log.last_index(),
                })
            }
            MessageBody::Heartbeat(_) => {
                MessageBody::HeartbeatResponse(HeartbeatResponse { read_seq: 0 })
            }
            MessageBody::InstallSnapshot(s) => {
                MessageBody::InstallSnapshotResponse(InstallSnapshotResponse {
                    meta: s.meta,
                    next_offset: 0,
                    done: false,
                    rejected: true,
                })
            }
            // A candidate of a stale term hears the current one (paper, Figure 2: "reply
            // false if term < currentTerm"), so that it can campaign again in a term that
            // can win. Otherwise a candidate behind a node that never campaigns itself (a
            // learner, in its own view) would campaign in stale terms forever.
            MessageBody::RequestVote(rv) => MessageBody::RequestVoteResponse(RequestVoteResponse {
                pre_vote: rv.pre_vote,
                granted: false,
                campaign: rv.campaign,
            }),
            _ => {
                tracing::debug!(node = %self.id, from = %msg.from, term = %msg.term, "ignoring stale message");
                return;
            }
        };
        self.send(msg.from, reply);
    }

    /// Handles a message of the current term (or a pre-vote message of a future term).
    fn dispatch(&mut self, msg: Message) {
        let from = msg.from;
        if self.role == Role::Leader {
            if let Some(pr) = self.progress.get_mut(&from) {
                pr.recent_active = true;
            }
        }
        match msg.body {
            MessageBody::RequestVote(rv) => self.handle_request_vote(from, msg.term, rv),
            MessageBody::RequestVoteResponse(r) => self.handle_vote_response(from, msg.term, r),
            MessageBody::AppendEntries(ae) => {
                if self.accept_leader(from) {
                    self.handle_append_entries(from, ae);
                }
            }
            MessageBody::Heartbeat(hb) => {
                if self.accept_leader(from) {
                    self.handle_heartbeat(from, hb);
                }
            }
            MessageBody::InstallSnapshot(chunk) => {
                if self.accept_leader(from) {
                    self.handle_install_snapshot(from, chunk);
                }
            }
            MessageBody::AppendEntriesResponse(r) if self.role == Role::Leader => {
                self.handle_append_response(from, r);
            }
            MessageBody::HeartbeatResponse(r) if self.role == Role::Leader => {
                self.handle_heartbeat_response(from, r);
            }
            MessageBody::InstallSnapshotResponse(r) if self.role == Role::Leader => {
                self.handle_snapshot_response(from, r);
            }
            MessageBody::TimeoutNow => self.handle_timeout_now(from),
            MessageBody::AppendEntriesResponse(_)
            | MessageBody::HeartbeatResponse(_)
            | MessageBody::InstallSnapshotResponse(_) => {}
        }
    }

    /// A leader's message in our term: follow it (a candidate gives up, paper 5.2).
    /// Returns false if we are the leader ourselves (two leaders in one term cannot
    /// happen; the message is dropped and logged).
    fn accept_leader(&mut self, from: crate::types::NodeId) -> bool {
        match self.role {
            Role::Leader => {
                tracing::error!(node = %self.id, %from, term = %self.term,
                    "another leader in my term; dropping its message");
                false
            }
            Role::PreCandidate | Role::Candidate => {
                self.become_follower(self.term, Some(from));
                true
            }
            Role::Follower => {
                self.leader = Some(from);
                self.leader_heard_at_tick = Some(self.ticks);
                self.election_elapsed_ticks = 0;
                true
            }
        }
    }
}

/// Terms and snapshot positions this large cannot come from a real cluster; accepting
/// them would let arithmetic on them overflow later.
fn is_absurd(msg: &Message) -> bool {
    const LIMIT: u64 = u64::MAX / 4;
    let meta = match &msg.body {
        MessageBody::InstallSnapshot(s) => Some(s.meta),
        MessageBody::InstallSnapshotResponse(r) => Some(r.meta),
        _ => None,
    };
    msg.term.0 >= LIMIT || meta.is_some_and(|m| m.index.0 >= LIMIT || m.term.0 >= LIMIT)
}
