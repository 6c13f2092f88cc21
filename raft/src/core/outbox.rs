//! The outbox: messages and read results produced since the last Ready, and the rule
//! that decides whether a message may be sent at once or only after the Ready's state is
//! durable (thesis 10.2.1, DESIGN "Durability").
//!
//! The rule (also in the crate docs):
//! - `messages` (send now): a leader's AppendEntries, Heartbeat, InstallSnapshot and
//!   TimeoutNow (the leader writes its log in parallel with sending it; it counts itself
//!   in the commit quorum only up to its persisted index); pre-vote requests; and any
//!   other response sent while the node's term and vote are known durable (heartbeat
//!   responses, vote rejections, snapshot chunk acknowledgements).
//! - `messages_after_persist`: a candidate's RequestVote (its new term and self-vote must
//!   be durable first), vote grants, AppendEntries responses (they acknowledge entries),
//!   the final snapshot acknowledgement, and any message produced while the term or vote
//!   is not yet known durable (see `durability`) — a leader's requests included: a
//!   single voter wins by its own vote before its term is durable, and with learners it
//!   has someone to send to.
//!
//! Invariant: everything in here is bounded by the work done since the last `ready()`;
//! the driver drains it on every Ready.

use crate::core::ReadState;
use crate::message::{Message, MessageBody};

/// Output collected between two Readies.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) messages: Vec<Message>,
    pub(crate) messages_after_persist: Vec<Message>,
    pub(crate) read_states: Vec<ReadState>,
    pub(crate) dropped_reads: Vec<u64>,
}

impl Outbox {
    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.messages_after_persist.is_empty()
            && self.read_states.is_empty()
            && self.dropped_reads.is_empty()
    }

    /// Takes everything, leaving the outbox empty.
    pub(crate) fn take(&mut self) -> Outbox {
        std::mem::take(self)
    }

    /// Withdraws the acknowledgements not yet handed out that claim entries from `from` on:
    /// those entries were removed since (a newer leader replaced them, or a snapshot
    /// discarded them), so the Ready that would make the acknowledgement true never comes.
    /// Returns how many were withdrawn. (A follower handling a batch of messages may ack
    /// one leader's append and then take a newer leader's, which truncates, before the
    /// Ready is written.)
    pub(crate) fn retract_append_acks_from(&mut self, from: crate::types::LogIndex) -> usize {
        let before = self.messages_after_persist.len();
        self.messages_after_persist.retain(|m| {
            !matches!(&m.body, MessageBody::AppendEntriesResponse(r) if r.success && r.match_index >= from)
        });
        before - self.messages_after_persist.len()
    }

    /// Queues `msg`; `term_or_vote_unpersisted` says whether this node's current term or
    /// vote is not yet known durable.
    pub(crate) fn push(&mut self, msg: Message, term_or_vote_unpersisted: bool) {
        // A leader's requests carry its term too: usually durable before it could win (it
        // asked for votes only then), but a single voter wins by its own vote at once, and
        // with learners to replicate to it must not reveal the term before it is durable
        // (restarted in the old term, it could lead the new term a second time).
        if needs_persist(&msg.body) || term_or_vote_unpersisted {
            self.messages_after_persist.push(msg);
        } else {
            self.messages.push(msg);
        }
    }
}

/// Messages that acknowledge durable state by their nature.
fn needs_persist(body: &MessageBody) -> bool {
    match body {
        MessageBody::RequestVote(rv) => !rv.pre_vote,
        MessageBody::RequestVoteResponse(r) => r.granted && !r.pre_vote,
        MessageBody::AppendEntriesResponse(_) => true,
        MessageBody::InstallSnapshotResponse(r) => r.done,
        _ => false,
    }
}

impl crate::core::RaftCore {
    /// Sends `body` to `to` in the current term.
    pub(super) fn send(&mut self, to: crate::types::NodeId, body: MessageBody) {
        self.send_with_term(to, self.term, body);
    }

    /// Sends `body` to `to` with an explicit term (a pre-vote carries the term the
    /// candidate would campaign in; a pre-vote grant echoes it).
    pub(super) fn send_with_term(
        &mut self,
        to: crate::types::NodeId,
        term: crate::types::Term,
        body: MessageBody,
    ) {
        tracing::debug!(node = %self.id, %to, %term, ?body, "send");
        let msg = Message {
            from: self.id,
            to,
            term,
            body,
        };
        let unpersisted = self.term_or_vote_unpersisted();
        self.outbox.push(msg, unpersisted);
    }
}
