//! Leadership transfer (thesis 3.10): the leader stops accepting proposals, brings the
//! target's log up to date, then sends it TimeoutNow; the target campaigns at once,
//! skipping the pre-vote, with `leadership_transfer` set so voters ignore their lease.
//!
//! Invariants: only a leader has a transfer; TimeoutNow is sent only when the target's
//! match index equals the leader's last index (then any vote it asks for is granted on
//! the log check); the transfer aborts after an election timeout, and proposals resume.

use super::{RaftCore, Role};
use crate::message::MessageBody;
use crate::types::NodeId;

/// A transfer in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Transfer {
    pub(crate) target: NodeId,
    pub(crate) elapsed_ticks: u32,
}

impl RaftCore {
    /// Leader: starts (or restarts, for a different target) a transfer to `to`.
    pub(super) fn start_transfer(&mut self, to: NodeId) {
        if to == self.id || !self.membership.is_voter(to) {
            tracing::warn!(node = %self.id, %to, "leadership transfer target is not another voter; ignored");
            return;
        }
        if self.transfer.as_ref().is_some_and(|t| t.target == to) {
            return;
        }
        tracing::info!(node = %self.id, term = %self.term, %to, "leadership transfer started");
        self.transfer = Some(Transfer {
            target: to,
            elapsed_ticks: 0,
        });
        if !self.maybe_send_timeout_now(to) {
            self.maybe_send_append(to, true);
        }
    }

    /// Sends TimeoutNow if `peer` is the transfer target and fully caught up.
    pub(super) fn maybe_send_timeout_now(&mut self, peer: NodeId) -> bool {
        let is_target = self.transfer.as_ref().is_some_and(|t| t.target == peer);
        let caught_up = self
            .progress
            .get(&peer)
            .is_some_and(|pr| pr.match_index == self.log.last_index());
        if is_target && caught_up {
            tracing::debug!(node = %self.id, %peer, "sending TimeoutNow");
            // The target's election will not respect followers' leases.
            self.revoke_lease();
            self.send(peer, MessageBody::TimeoutNow);
            return true;
        }
        false
    }

    /// Leader tick: give up on a transfer that did not finish within an election timeout.
    pub(super) fn tick_transfer(&mut self) {
        let Some(transfer) = self.transfer.as_mut() else {
            return;
        };
        transfer.elapsed_ticks += 1;
        if transfer.elapsed_ticks >= self.config.election_timeout_ticks {
            tracing::info!(node = %self.id, target = %transfer.target, "leadership transfer timed out");
            self.transfer = None;
        }
    }

    /// The leader asks us to take over: campaign now (no pre-vote).
    pub(super) fn handle_timeout_now(&mut self, from: NodeId) {
        if self.role == Role::Leader {
            return;
        }
        tracing::info!(node = %self.id, %from, term = %self.term, "TimeoutNow: campaigning");
        self.campaign(true);
    }
}
