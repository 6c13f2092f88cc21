//! Lease reads (thesis 6.4.1): a leader that a majority confirmed recently serves a read
//! from its commit index at once, without a heartbeat round of its own.
//!
//! Why it is safe: CheckQuorum makes a follower ignore (pre-)vote requests for an election
//! timeout after it last heard from its leader (`in_leader_lease`). A heartbeat round that
//! a majority acknowledged therefore means that no other node can win an election until
//! at least `election_timeout_ticks - 1` ticks of those followers' clocks after they
//! received it; the leader holds the lease for `Config::lease_ticks` of its own ticks from
//! the tick it sent the round, which is shorter by the tolerated clock drift. While the
//! lease holds, no newer leader exists, so every acknowledged write is at or below this
//! leader's commit index, and reading at that index is linearizable.
//!
//! What would break it, and what closes each hole:
//! - A follower that restarts forgets whom it heard from: with lease reads on, a node
//!   refuses votes for one election timeout after it starts (`in_boot_guard`).
//! - Leadership transfer lets the target's election bypass followers' leases: once this
//!   leader sends TimeoutNow it gives up the lease for the rest of its term (a TimeoutNow
//!   may arrive long after the transfer was abandoned).
//! - A leader whose clock stalls (a paused process) would count a lease too long: the
//!   runtime must deliver missed ticks (at least an election timeout's worth) before it
//!   asks for a lease read after a stall.
//! - A follower whose thread stalls must count the stalled time *before* a heartbeat that
//!   arrived at the end of the stall, not after it: otherwise it acknowledges the round
//!   (extending the lease) and at once believes an election timeout has passed since, and
//!   grants a vote inside that lease. The runtime hands the core ticks and messages in
//!   the order they happened (`node/executor.rs`, `run_round`).
//! - A follower that moves to a higher term on a message that is not a vote request (a
//!   delayed pre-vote rejection) forgets its leader; its promise is kept by the tick it
//!   last heard a leader, not by the current term's leader (`in_leader_lease`), and vote
//!   requests of the new term are refused inside it (`handle_request_vote`).
//! - Reads before the leader committed an entry of its term would use a stale commit
//!   index: such reads fall back to ReadIndex, which waits for that commit.
//!
//! A lease read that cannot be served from the lease falls back to ReadIndex, so it is
//! never less safe than `read_index`; only its latency changes.

use super::{RaftCore, ReadState};

/// The leader's lease, in its own ticks.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Lease {
    /// Lease reads are served while the core's tick count is below this.
    expires_at_tick: u64,
    /// Set when TimeoutNow was sent: no lease for the rest of this leadership.
    revoked: bool,
}

impl RaftCore {
    /// Leader: serve `ctx` from the lease if it holds, else through a ReadIndex round.
    pub(super) fn enqueue_lease_read(&mut self, ctx: u64) {
        if self.lease_holds() {
            let read = ReadState {
                ctx,
                index: self.log.committed(),
            };
            self.outbox.read_states.push(read);
        } else {
            self.enqueue_read(ctx);
        }
    }

    /// Whether a read may be served from the lease now.
    pub(super) fn lease_holds(&self) -> bool {
        self.config.lease_reads
            && !self.lease.revoked
            && self.transfer.is_none()
            && self.ticks < self.lease.expires_at_tick
            && self.committed_in_current_term()
    }

    /// A heartbeat round sent at tick `sent_at_tick` was acknowledged by a majority.
    pub(super) fn extend_lease(&mut self, sent_at_tick: u64) {
        if !self.config.lease_reads || self.lease.revoked {
            return;
        }
        let until = sent_at_tick + u64::from(self.config.lease_ticks());
        self.lease.expires_at_tick = self.lease.expires_at_tick.max(until);
    }

    /// Gives up the lease until this node next becomes leader.
    pub(super) fn revoke_lease(&mut self) {
        self.lease = Lease {
            expires_at_tick: 0,
            revoked: true,
        };
    }

    /// Forgets the lease (leadership ended or began).
    pub(super) fn reset_lease(&mut self) {
        self.lease = Lease::default();
    }

    /// With lease reads on, a node refuses votes during its first election timeout: before
    /// it started it may have acknowledged a leader whose lease still runs.
    pub(super) fn in_boot_guard(&self) -> bool {
        self.config.lease_reads && self.ticks < u64::from(self.config.election_timeout_ticks)
    }
}
