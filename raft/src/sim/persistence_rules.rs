//! The persistence rules of the checker (invariants 6, 8 and 9 of [`crate::sim::invariants`]):
//! how a node's durable state may evolve, and what a node may reveal in a message given what
//! is durable on its disk at the moment the message leaves it.
//!
//! Safety-critical (always checked): a RequestVote or a vote grant needs the durable vote; an
//! append ack needs its entries durable; a final snapshot ack needs the snapshot durable; a
//! leader's messages, vote grants and acks need their term durable. Figure 2 conformance
//! (checked unless turned off): no other message carries a term above the durable one, except
//! pre-vote traffic, which by design speaks of a term nobody is in yet.

use crate::message::{Message, MessageBody};
use crate::sim::invariants::{check, Checker, Violation};
use crate::sim::storage_model::DiskState;
use crate::types::NodeId;

impl Checker {
    /// The durable state of `node` changed (fsync, snapshot, crash).
    ///
    /// # Errors
    /// When the durable term or commit went back, or a durable vote changed within a term.
    pub fn on_durable_change(
        &mut self,
        node: NodeId,
        durable: &DiskState,
    ) -> Result<(), Violation> {
        let hs = durable.hard_state;
        let view = self.view(node);
        check(hs.term >= view.durable_term, || {
            format!(
                "{node:?} durable term went back from {:?} to {:?}",
                view.durable_term, hs.term
            )
        })?;
        if hs.term == view.durable_term && view.durable_vote.is_some() {
            check(hs.vote == view.durable_vote, || {
                format!(
                    "{node:?} changed its durable vote in {:?} from {:?} to {:?}",
                    hs.term, view.durable_vote, hs.vote
                )
            })?;
        }
        check(hs.commit >= view.durable_commit, || {
            format!(
                "{node:?} durable commit went back from {:?} to {:?}",
                view.durable_commit, hs.commit
            )
        })?;
        check(hs.commit <= durable.last_index(), || {
            format!(
                "{node:?} durable commit {:?} beyond durable last index {:?}",
                hs.commit,
                durable.last_index()
            )
        })?;
        view.durable_term = hs.term;
        view.durable_vote = hs.vote;
        view.durable_commit = hs.commit;
        Ok(())
    }

    /// A message left its sender (already checked by `check_release` at that moment):
    /// feeds the entries it carries to the log-matching check.
    ///
    /// # Errors
    /// On a log matching violation.
    pub fn on_release(&mut self, msg: &Message) -> Result<(), Violation> {
        if let MessageBody::AppendEntries(a) = &msg.body {
            self.feed_log_matching(Some(a.prev_log_term), &a.entries)?;
        }
        Ok(())
    }
}

/// Checks, at the moment a message leaves its sender, that it reveals nothing that is not
/// durable there yet; `durable` is the sender's durable state then. With
/// `strict_term_reveal`, also Figure 2 conformance (invariant 9).
///
/// # Errors
/// The violated rule.
pub(crate) fn check_release(
    msg: &Message,
    durable: &DiskState,
    strict_term_reveal: bool,
) -> Result<(), Violation> {
    let critical = needs_durable_term(&msg.body);
    if critical || (strict_term_reveal && !is_pre_vote(&msg.body)) {
        let durable_term = durable.hard_state.term;
        check(msg.term <= durable_term, || {
            let what = if critical {
                ""
            } else {
                " (Figure 2 conformance)"
            };
            format!(
                "{:?} sent {msg:?} before its term was durable (durable {durable_term:?}){what}",
                msg.from
            )
        })?;
    }
    check_durable_body(msg, durable)
}

fn is_pre_vote(body: &MessageBody) -> bool {
    match body {
        MessageBody::RequestVote(r) => r.pre_vote,
        MessageBody::RequestVoteResponse(r) => r.pre_vote,
        _ => false,
    }
}

/// Messages whose term must be durable for safety (not merely for Figure 2 conformance).
fn needs_durable_term(body: &MessageBody) -> bool {
    match body {
        MessageBody::AppendEntries(_)
        | MessageBody::Heartbeat(_)
        | MessageBody::InstallSnapshot(_)
        | MessageBody::TimeoutNow => true,
        MessageBody::RequestVote(r) => !r.pre_vote,
        MessageBody::RequestVoteResponse(r) => r.granted && !r.pre_vote,
        MessageBody::AppendEntriesResponse(r) => r.success,
        MessageBody::InstallSnapshotResponse(r) => r.done && !r.rejected,
        MessageBody::HeartbeatResponse(_) => false,
    }
}

/// Votes, append acks and snapshot acks need what they acknowledge to be durable.
fn check_durable_body(msg: &Message, durable: &DiskState) -> Result<(), Violation> {
    let hs = durable.hard_state;
    let from = msg.from;
    let voted_for = |who: NodeId| hs.term > msg.term || hs.vote == Some(who);
    match &msg.body {
        MessageBody::RequestVote(r) if !r.pre_vote => check(voted_for(from), || {
            format!("{from:?} requested votes before its self-vote was durable: {hs:?}")
        }),
        MessageBody::RequestVoteResponse(r) if r.granted && !r.pre_vote => {
            check(voted_for(msg.to), || {
                format!(
                    "{from:?} granted a vote to {:?} in {:?} before it was durable: {hs:?}",
                    msg.to, msg.term
                )
            })
        }
        MessageBody::AppendEntriesResponse(r) if r.success => {
            check(durable.last_index() >= r.match_index, || {
                format!(
                    "{from:?} acked match {:?} with durable last index {:?}",
                    r.match_index,
                    durable.last_index()
                )
            })
        }
        MessageBody::InstallSnapshotResponse(r) if r.done && !r.rejected => {
            check(durable.holds(r.meta.index, r.meta.term), || {
                format!("{from:?} acked snapshot {:?} before it was durable", r.meta)
            })
        }
        _ => Ok(()),
    }
}
