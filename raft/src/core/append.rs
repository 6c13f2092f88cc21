//! The follower's side of log replication: the AppendEntries consistency check, append,
//! commit, and the response with fast-backtracking hints (paper 5.3).
//!
//! Invariants: the response acknowledges only what this Ready makes durable (it goes in
//! `messages_after_persist`, and is withdrawn if a later message in the same batch
//! replaces the entries it acknowledges); `match_index` in a success is the last index known to match
//! the leader (`prev_log_index + entries`), never the follower's possibly longer,
//! unverified tail; the commit index never passes that verified match.

use super::RaftCore;
use crate::message::{AppendEntries, AppendEntriesResponse, MessageBody};
use crate::types::{LogIndex, NodeId, Term};

impl RaftCore {
    pub(super) fn handle_append_entries(&mut self, from: NodeId, ae: AppendEntries) {
        if !entries_are_well_formed(&ae, self.term) {
            tracing::warn!(node = %self.id, %from, prev = %ae.prev_log_index,
                "dropping AppendEntries with non-contiguous entries or bad terms");
            return;
        }
        let leader_commit = ae.leader_commit;
        let response = match self
            .log
            .maybe_append(ae.prev_log_index, ae.prev_log_term, ae.entries)
        {
            Ok(match_index) => {
                self.retract_stale_append_acks();
                self.log.commit_to(leader_commit.min(match_index));
                AppendEntriesResponse {
                    success: true,
                    match_index,
                    conflict_index: LogIndex::ZERO,
                    conflict_term: Term::ZERO,
                    last_log_index: self.log.last_index(),
                }
            }
            Err(hint) => {
                tracing::debug!(node = %self.id, %from, prev = %ae.prev_log_index,
                    conflict_index = %hint.index, conflict_term = %hint.term, "append rejected");
                AppendEntriesResponse {
                    success: false,
                    match_index: LogIndex::ZERO,
                    conflict_index: hint.index,
                    conflict_term: hint.term,
                    last_log_index: self.log.last_index(),
                }
            }
        };
        self.send(from, MessageBody::AppendEntriesResponse(response));
    }

    /// If entries were removed from the log, withdraws the queued acknowledgements of
    /// them (see `Outbox::retract_append_acks_from`).
    pub(super) fn retract_stale_append_acks(&mut self) {
        if let Some(from) = self.log.take_cut() {
            let n = self.outbox.retract_append_acks_from(from);
            if n > 0 {
                tracing::debug!(node = %self.id, %from, withdrawn = n,
                    "entries replaced before being written: their acknowledgements withdrawn");
            }
        }
    }
}

/// Entries must be contiguous from `prev_log_index + 1`, with terms that never decrease,
/// start at or after `prev_log_term` and do not exceed the leader's term.
fn entries_are_well_formed(ae: &AppendEntries, leader_term: Term) -> bool {
    if ae
        .prev_log_index
        .0
        .checked_add(ae.entries.len() as u64 + 1)
        .is_none()
    {
        return false;
    }
    let mut expected = ae.prev_log_index.next();
    let mut prev_term = ae.prev_log_term;
    for entry in &ae.entries {
        if entry.index != expected || entry.term < prev_term || entry.term > leader_term {
            return false;
        }
        expected = expected.next();
        prev_term = entry.term;
    }
    true
}
