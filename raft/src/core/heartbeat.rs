//! Heartbeats: the leader's timer (heartbeats, CheckQuorum, transfer and snapshot
//! timeouts) and the Heartbeat / HeartbeatResponse exchange, which also confirms
//! leadership for ReadIndex rounds (thesis 6.4) and restarts stalled replication.
//!
//! Invariants: a heartbeat's commit is `min(leader commit, peer match)`, so a follower
//! never commits an entry it is not known to share with the leader (a divergent tail
//! must never be committed); a heartbeat response depends on nothing unpersisted unless
//! this node's term changed in the same Ready (see `outbox`).

use super::progress::ProgressState;
use super::RaftCore;
use crate::message::{Heartbeat, HeartbeatResponse, MessageBody};
use crate::types::NodeId;

impl RaftCore {
    /// Leader ticks.
    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed_ticks += 1;
        self.election_elapsed_ticks += 1;
        if self.election_elapsed_ticks >= self.config.election_timeout_ticks {
            self.election_elapsed_ticks = 0;
            if self.config.check_quorum {
                self.check_quorum_active();
                if !self.is_leader() {
                    return;
                }
            }
        }
        self.tick_transfer();
        self.tick_snapshot_transfers();
        if self.heartbeat_elapsed_ticks >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed_ticks = 0;
            self.broadcast_heartbeat();
            // A leader leaving the configuration retries its hand-over.
            self.maybe_hand_off_leadership();
        }
    }

    /// Sends a heartbeat to every peer, carrying the current ReadIndex round. A read
    /// round that is queued but not started starts here (its seq rides along); with
    /// lease reads on, every heartbeat starts a round (maybe empty) to renew the lease.
    pub(super) fn broadcast_heartbeat(&mut self) {
        let renew_lease = self.config.lease_reads && !self.quorum_is_self();
        if !self.reads.round_in_flight() && (self.reads.has_queued() || renew_lease) {
            self.reads.start_round(self.ticks);
        }
        let read_seq = self.reads.current_seq();
        let commit = self.log.committed();
        for k in 0..self.peers.len() {
            let peer = self.peers[k];
            let Some(pr) = self.progress.get(&peer) else {
                continue;
            };
            let hb = Heartbeat {
                commit: commit.min(pr.match_index),
                read_seq,
            };
            self.send(peer, MessageBody::Heartbeat(hb));
        }
    }

    /// Follower: the leader is alive; take its (safe) commit index and echo the read seq.
    pub(super) fn handle_heartbeat(&mut self, from: NodeId, hb: Heartbeat) {
        self.log.commit_to(hb.commit);
        let reply = HeartbeatResponse {
            read_seq: hb.read_seq,
        };
        self.send(from, MessageBody::HeartbeatResponse(reply));
    }

    /// Leader: the peer is alive. Record its read ack, and unblock replication whose
    /// messages may have been lost:
    /// - Probe: probe again (the previous probe or its answer may be lost);
    /// - Replicate: if the match index did not move since the previous heartbeat response
    ///   although entries are outstanding, free one slot of a full window and send an
    ///   append (empty if everything was sent) whose answer reveals a lost tail;
    /// - Snapshot: resend a transfer that stalled.
    pub(super) fn handle_heartbeat_response(&mut self, from: NodeId, r: HeartbeatResponse) {
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.read_seq_acked = pr.read_seq_acked.max(r.read_seq);
        let behind = pr.match_index < last_index;
        let stalled = pr.match_index == pr.match_at_last_heartbeat;
        pr.match_at_last_heartbeat = pr.match_index;
        let send = match pr.state {
            ProgressState::Probe => {
                pr.probe_sent = false;
                behind
            }
            ProgressState::Replicate if behind && stalled => {
                if pr.inflights.is_full() {
                    pr.inflights.free_first();
                }
                true
            }
            ProgressState::Replicate => false,
            ProgressState::Snapshot => {
                self.maybe_resume_stalled_snapshot(from);
                false
            }
        };
        if send {
            self.maybe_send_append(from, true);
        }
        self.maybe_finish_read_round();
    }
}
