//! The leader's side of log replication (paper 5.3, 5.4.2; thesis 10.2.1): sending
//! batched, pipelined AppendEntries per peer, handling their responses with fast
//! backtracking, and advancing the commit index.
//!
//! Invariants: an append carries at most `max_entries_per_append` entries and about
//! `max_bytes_per_append` bytes (at least one entry); a peer in Probe has at most one
//! append outstanding, in Replicate at most `max_inflight_appends`; the leader counts
//! itself only up to its persisted index; the commit index only moves to an entry of the
//! current term (Figure 8), and only forward.

use super::progress::ProgressState;
use super::{RaftCore, Role};
use crate::message::{AppendEntries, AppendEntriesResponse, MessageBody};
use crate::types::{LogIndex, NodeId};

impl RaftCore {
    /// Deferred leader work, done once per Ready: one AppendEntries per peer for all the
    /// proposals since the last Ready, and the next ReadIndex round.
    ///
    /// A commit advance alone sends nothing: followers learn the commit index from the
    /// next AppendEntries or heartbeat (at most a heartbeat interval later). That keeps
    /// one request per peer per batch of proposals; only the leader's clients wait for
    /// commits, and they wait on the leader.
    pub(super) fn flush_leader_work(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let flush = std::mem::take(&mut self.flush);
        if flush.appends {
            for k in 0..self.peers.len() {
                self.maybe_send_append(self.peers[k], false);
            }
        }
        if flush.read_round {
            self.maybe_start_read_round();
        }
    }

    /// Sends what `peer` needs next if its flow control allows: a snapshot when its next
    /// entry is compacted, else appends (pipelined in Replicate). With `allow_empty` an
    /// append without entries is sent too (to carry the commit index or to probe).
    pub(super) fn maybe_send_append(&mut self, peer: NodeId, allow_empty: bool) {
        let mut allow_empty = allow_empty;
        loop {
            let Some(pr) = self.progress.get(&peer) else {
                return;
            };
            if pr.state == ProgressState::Snapshot {
                self.send_snapshot_chunks(peer);
                return;
            }
            if pr.is_paused() {
                return;
            }
            if pr.next_index <= self.log.snapshot_meta().index {
                self.start_snapshot_transfer(peer);
                return;
            }
            let replicate = pr.state == ProgressState::Replicate;
            if !self.send_append(peer, allow_empty) || !replicate {
                return;
            }
            // Pipelining: keep filling the window while there are entries to send.
            allow_empty = false;
        }
    }

    /// Sends one AppendEntries from the peer's `next_index`; returns whether it sent.
    fn send_append(&mut self, peer: NodeId, allow_empty: bool) -> bool {
        let Some(pr) = self.progress.get(&peer) else {
            return false;
        };
        let next = pr.next_index;
        let prev_log_index = next.prev();
        let Some(prev_log_term) = self.log.term(prev_log_index) else {
            return false;
        };
        let entries = self.log.entries_from(
            next,
            self.config.max_entries_per_append,
            self.config.max_bytes_per_append,
        );
        if entries.is_empty() && !allow_empty {
            return false;
        }
        let last_sent = entries.last().map(|e| e.index);
        let leader_commit = self.log.committed();
        if let Some(pr) = self.progress.get_mut(&peer) {
            pr.on_append_sent(last_sent);
        }
        let ae = AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        };
        self.send(peer, MessageBody::AppendEntries(ae));
        true
    }

    /// A follower's answer to AppendEntries.
    pub(super) fn handle_append_response(&mut self, from: NodeId, r: AppendEntriesResponse) {
        if r.success {
            self.handle_append_success(from, r.match_index);
        } else {
            self.handle_append_reject(from, r);
        }
    }

    fn handle_append_success(&mut self, from: NodeId, match_index: LogIndex) {
        let (first_index, last_index) = (self.log.first_index(), self.log.last_index());
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        if match_index > last_index {
            tracing::warn!(node = %self.id, %from, %match_index, "append ack beyond my log; ignored");
            return;
        }
        let updated = pr.maybe_update(match_index);
        match pr.state {
            ProgressState::Probe if updated || pr.match_index == match_index => {
                pr.become_replicate();
            }
            // A late ack shows the follower already has what the snapshot would give it.
            ProgressState::Snapshot if pr.match_index.next() >= first_index => {
                pr.become_replicate();
            }
            _ => {}
        }
        if updated {
            self.maybe_commit();
            self.maybe_send_timeout_now(from);
        }
        self.maybe_send_append(from, false);
    }

    /// Fast backtracking (paper 5.3): jump past the whole conflicting term in one round
    /// trip. If the leader has `conflict_term`, the follower's entries of that term up to
    /// the leader's last one likely match, so retry just after it; otherwise skip the
    /// follower's whole term (`conflict_index`).
    fn handle_append_reject(&mut self, from: NodeId, r: AppendEntriesResponse) {
        let leader_last_of_term = if r.conflict_term == crate::types::Term::ZERO {
            None
        } else {
            self.log.last_index_of_term(r.conflict_term)
        };
        let hint = leader_last_of_term.map_or(r.conflict_index, LogIndex::next);
        let next = hint
            .min(r.last_log_index.saturating_next())
            .min(self.log.last_index().next());
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        if pr.state == ProgressState::Snapshot {
            return;
        }
        tracing::debug!(node = %self.id, %from, from_state = ?pr.state, %next, "append rejected; probing");
        pr.become_probe(next);
        self.maybe_send_append(from, true);
    }

    /// Advances the commit index to the highest index a majority holds, if that entry is
    /// from the current term (paper 5.4.2, Figure 8). The leader counts itself only up to
    /// its persisted index (thesis 10.2.1).
    pub(super) fn maybe_commit(&mut self) {
        let Some(candidate) = self.commit_candidate(self.log.persisted()) else {
            return;
        };
        let first_commit_in_term = self.log.term(self.log.committed()) != Some(self.term);
        self.log.commit_to(candidate);
        tracing::trace!(node = %self.id, commit = %candidate, "commit advanced");
        if first_commit_in_term {
            self.on_first_commit_in_term();
        }
    }

    /// The index a majority holds if this leader holds up to `own_match`, when that is a
    /// new commit index (above the current one, and of the current term: Figure 8).
    pub(super) fn commit_candidate(&mut self, own_match: LogIndex) -> Option<LogIndex> {
        let (id, progress) = (self.id, &self.progress);
        let match_of = |voter: NodeId| {
            if voter == id {
                own_match
            } else {
                progress
                    .get(&voter)
                    .map_or(LogIndex::ZERO, |p| p.match_index)
            }
        };
        let candidate = self
            .membership
            .committed_index(match_of, &mut self.match_scratch);
        (candidate > self.log.committed() && self.log.term(candidate) == Some(self.term))
            .then_some(candidate)
    }
}

trait SaturatingNext {
    fn saturating_next(self) -> Self;
}

impl SaturatingNext for LogIndex {
    fn saturating_next(self) -> LogIndex {
        LogIndex(self.0.saturating_add(1))
    }
}
