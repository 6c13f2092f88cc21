//! ReadIndex (thesis 6.4): linearizable reads without log entries. A read records the
//! commit index when it arrives; once a heartbeat round started after it is acknowledged
//! by a majority, the leader knows it was still the leader at that moment, and the read
//! may be served once the application has applied the recorded index.
//!
//! Batching: at most one round is in flight; every read queued before a round starts is
//! served by it, reads arriving during a round wait for the next one, which starts as
//! soon as the current one completes (at the next Ready) or at the next heartbeat.
//!
//! Invariants: no read is released before the leader has committed an entry of its own
//! term (until then its commit index may be stale); read seqs only grow; on losing
//! leadership every pending read is reported in `Ready::dropped_reads`. The queues hold
//! one entry per outstanding `read_index` call, which the runtime bounds.

use super::{RaftCore, ReadState};

/// One heartbeat round confirming leadership for a batch of reads.
#[derive(Clone, Debug)]
struct ReadRound {
    seq: u64,
    /// The leader's tick count when the round was sent (the start of the lease it gives).
    sent_at_tick: u64,
    reads: Vec<ReadState>,
}

/// The leader's pending reads.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReadQueue {
    /// Reads that arrived before the leader committed an entry of its term.
    awaiting_term_commit: Vec<u64>,
    /// Reads with their index, waiting for the next round.
    queued: Vec<ReadState>,
    round: Option<ReadRound>,
    last_seq: u64,
}

impl ReadQueue {
    pub(crate) fn round_in_flight(&self) -> bool {
        self.round.is_some()
    }

    pub(crate) fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// The seq heartbeats carry: the round in flight, else the last one.
    pub(crate) fn current_seq(&self) -> u64 {
        self.round.as_ref().map_or(self.last_seq, |r| r.seq)
    }

    /// Moves the queued reads into a new round.
    pub(crate) fn start_round(&mut self, now_tick: u64) {
        self.last_seq += 1;
        let reads = std::mem::take(&mut self.queued);
        self.round = Some(ReadRound {
            seq: self.last_seq,
            sent_at_tick: now_tick,
            reads,
        });
    }

    /// Every pending read's context, emptying the queue (leadership lost).
    pub(crate) fn drain_all(&mut self) -> Vec<u64> {
        let mut out = std::mem::take(&mut self.awaiting_term_commit);
        if let Some(round) = self.round.take() {
            out.extend(round.reads.iter().map(|r| r.ctx));
        }
        out.extend(self.queued.drain(..).map(|r| r.ctx));
        out
    }
}

impl RaftCore {
    /// Leader: a new read (see `read_index`).
    pub(super) fn enqueue_read(&mut self, ctx: u64) {
        if !self.committed_in_current_term() {
            self.reads.awaiting_term_commit.push(ctx);
            return;
        }
        let read = ReadState {
            ctx,
            index: self.log.committed(),
        };
        if self.quorum_is_self() {
            // A single voter is always the majority: no round needed.
            self.outbox.read_states.push(read);
        } else {
            self.reads.queued.push(read);
            self.flush.read_round = true;
        }
    }

    pub(super) fn committed_in_current_term(&self) -> bool {
        self.log.term(self.log.committed()) == Some(self.term)
    }

    /// The leader's first entry of its term (the no-op) committed: reads waiting for it
    /// get the commit index now.
    pub(super) fn on_first_commit_in_term(&mut self) {
        for ctx in std::mem::take(&mut self.reads.awaiting_term_commit) {
            self.enqueue_read(ctx);
        }
    }

    /// At a Ready: start a round for queued reads unless one is in flight.
    pub(super) fn maybe_start_read_round(&mut self) {
        if self.reads.round_in_flight() || !self.reads.has_queued() {
            return;
        }
        self.reads.start_round(self.ticks);
        self.broadcast_heartbeat();
    }

    /// After a heartbeat ack: release the round's reads once a majority (counting the
    /// leader) acknowledged its seq or a later one.
    pub(super) fn maybe_finish_read_round(&mut self) {
        let Some(seq) = self.reads.round.as_ref().map(|r| r.seq) else {
            return;
        };
        let confirmed = self.membership.has_quorum(|id| {
            id == self.id
                || self
                    .progress
                    .get(&id)
                    .is_some_and(|p| p.read_seq_acked >= seq)
        });
        if !confirmed {
            return;
        }
        if let Some(round) = self.reads.round.take() {
            self.extend_lease(round.sent_at_tick);
            self.outbox.read_states.extend(round.reads);
        }
        if self.reads.has_queued() {
            self.flush.read_round = true;
        }
    }
}
