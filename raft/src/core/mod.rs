//! `RaftCore`: the pure Raft state machine (sans-IO). It owns the role, term, vote, log
//! and per-peer progress, takes inputs (`tick`, `step`, `propose`, `read_index`,
//! `transfer_leader`, `on_persist_ready`, `compact`) and hands out everything else through
//! [`Ready`]. The crate docs state the contract the driver follows.
//!
//! No threads, clocks, sockets, files or ambient randomness in here: time is `tick()`,
//! randomness is a PRNG seeded from `Config::seed`, maps are `BTreeMap` so message order
//! is deterministic. One protocol concern per file: `election` (+PreVote, CheckQuorum),
//! `replication` (leader), `append` (follower), `heartbeat`, `read_index`, `transfer`,
//! `snapshot_send`/`snapshot_recv`, `role` (transitions), `step` (dispatch by term and
//! role), `outbox` (which queue each message goes to), `persist` (which Readies, hence
//! which term, vote and log, are on disk), `ready` (building a Ready), `recovery`
//! (checking the recovered state).
//!
//! Invariants kept across all files: `term` never decreases; `vote` is only set in the
//! current term; a leader's `progress` has one entry per other voter; only the leader
//! has a `transfer`, read rounds or pending flushes.

mod append;
mod election;
mod heartbeat;
mod lease;
mod log;
pub mod membership;
mod outbox;
mod persist;
mod progress;
mod quorum;
mod read_index;
mod ready;
mod reconfigure;
mod recovery;
mod replication;
mod rng;
mod role;
mod snapshot_recv;
mod snapshot_send;
mod step;
mod transfer;

#[cfg(test)]
mod tests;

pub use membership::Membership;
pub use ready::{ReadState, Ready};
pub use snapshot_send::chunk_end;

use crate::config::Config;
use crate::error::{ConfigError, ProposeError};
use crate::message::Message;
use crate::types::{
    ConfState, Entry, EntryKind, HardState, InitialState, LogIndex, NodeId, ReceivedSnapshot,
    SnapshotChunk, SnapshotMeta, Term,
};
use bytes::Bytes;
use lease::Lease;
use log::RaftLog;
use outbox::Outbox;
use persist::PersistQueue;
use progress::Progress;
use read_index::ReadQueue;
use rng::SplitMix64;
use snapshot_recv::IncomingSnapshot;
use std::collections::BTreeMap;
use transfer::Transfer;

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Running a pre-vote round; its term has not changed.
    PreCandidate,
    /// Campaigning in its term.
    Candidate,
    /// The leader of its term.
    Leader,
}

/// A snapshot of the core's state for status reports and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreStatus {
    /// This node.
    pub id: NodeId,
    /// Current role.
    pub role: Role,
    /// Current term.
    pub term: Term,
    /// The leader this node follows (itself when leader), if known.
    pub leader: Option<NodeId>,
    /// Highest committed index.
    pub commit: LogIndex,
    /// Highest index handed out in `Ready::committed` (or covered by a snapshot).
    pub applied: LogIndex,
    /// Last index in the log.
    pub last_index: LogIndex,
    /// Last index known durable.
    pub persisted: LogIndex,
    /// Index covered by the latest snapshot (the log starts after it).
    pub snapshot_index: LogIndex,
    /// The configuration in effect (shared: a status is published every round).
    pub membership: std::sync::Arc<Membership>,
    /// The index of the entry that made it (zero: the bootstrap voters).
    pub membership_index: LogIndex,
}

/// Mixed into the seed that draws the first campaign number (not the election-timeout
/// generator's sequence, which the seed alone decides).
const CAMPAIGN_SALT: u64 = 0x6361_6d70_6169_676e;

/// Leader-only work deferred to the next `ready()` so that everything proposed between
/// two Readies goes out in one AppendEntries per peer.
#[derive(Clone, Copy, Debug, Default)]
struct PendingFlush {
    /// New entries to replicate.
    appends: bool,
    /// Queued reads wait for a ReadIndex heartbeat round.
    read_round: bool,
}

/// The pure Raft state machine. See the crate docs for its contract.
#[derive(Debug)]
pub struct RaftCore {
    id: NodeId,
    config: Config,
    /// The cluster's configuration: who votes, who learns, what a quorum is (shared with
    /// the status published every round, so that costs no copy).
    membership: std::sync::Arc<Membership>,
    /// The index of the entry that made `membership` (zero: the bootstrap voters).
    membership_index: LogIndex,
    /// The configuration at the snapshot's index (`None`: the snapshot recorded none, the
    /// bootstrap voters apply), for the snapshots this node sends and the ones it takes.
    snapshot_conf: Option<ConfState>,
    /// Configurations applied after the snapshot's index, in order: the one in effect at
    /// a later compaction index goes into that snapshot.
    conf_history: Vec<ConfState>,
    /// Leader only: the index of the last configuration entry it appended.
    pending_membership_index: LogIndex,
    /// Leader only: the index of its first entry of the term (its no-op).
    term_start_index: LogIndex,
    /// The other members (voters and learners), sorted: whom a leader replicates to.
    peers: Vec<NodeId>,
    role: Role,
    term: Term,
    vote: Option<NodeId>,
    leader: Option<NodeId>,
    log: RaftLog,
    rng: SplitMix64,
    /// Ticks since this core was created (the clock of the leader lease and boot guard).
    ticks: u64,
    /// The tick at which this node last heard from a leader (of any term): its promise
    /// not to help elect anyone else for an election timeout (the follower lease) runs
    /// from here, whatever term changes happen meanwhile.
    leader_heard_at_tick: Option<u64>,
    election_elapsed_ticks: u32,
    heartbeat_elapsed_ticks: u32,
    randomized_election_timeout_ticks: u32,
    /// (Pre-)vote responses of the running election (voter -> granted).
    votes: BTreeMap<NodeId, bool>,
    /// The running campaign's number (a pre-vote round or an election): requests carry it
    /// and only answers that echo it are counted. Starts at a value drawn from the seed,
    /// so that answers to a campaign before a restart do not match one after it.
    campaign: u64,
    /// Whether the running election follows a leadership transfer (its requests say so).
    campaign_is_transfer: bool,
    /// Leader only: one entry per peer.
    progress: BTreeMap<NodeId, Progress>,
    reads: ReadQueue,
    /// Leader only: how long lease reads may skip the heartbeat round.
    lease: Lease,
    transfer: Option<Transfer>,
    incoming_snapshot: Option<IncomingSnapshot>,
    flush: PendingFlush,
    outbox: Outbox,
    /// Chunks of an incoming snapshot to hand out in `Ready::snapshot_chunks`.
    snapshot_chunks_to_write: Vec<SnapshotChunk>,
    /// A received snapshot to hand out in `Ready::snapshot`.
    snapshot_to_persist: Option<ReceivedSnapshot>,
    /// A received snapshot, kept until it is durable and handed to the application.
    snapshot_received: Option<SnapshotMeta>,
    /// A durable snapshot to hand out in `Ready::apply_snapshot`.
    snapshot_to_apply: Option<SnapshotMeta>,
    /// The hard state last handed out (or recovered).
    last_hard_state: HardState,
    /// The Readies handed out and not yet reported durable; the durable term and vote.
    persist: PersistQueue,
    ready_number: u64,
    /// Reused buffer for commit-index calculation (keeps the hot path allocation-free).
    match_scratch: Vec<LogIndex>,
}

impl RaftCore {
    /// Creates a core from its configuration and recovered durable state. It starts as a
    /// follower; its first `ready()` hands out the recovered snapshot (`apply_snapshot`)
    /// and the committed entries after it.
    ///
    /// # Errors
    /// A [`ConfigError`] when the configuration or the recovered state is invalid.
    pub fn new(config: Config, initial: InitialState) -> Result<RaftCore, ConfigError> {
        config.validate()?;
        recovery::validate_initial_state(&initial)?;
        let running = recovery::current_term(&initial);
        let InitialState {
            hard_state,
            snapshot,
            entries,
        } = initial;
        let (meta, bytes) = snapshot
            .as_ref()
            .map_or((Default::default(), 0), |s| (s.meta, s.data.len() as u64));
        let log = RaftLog::recovered(meta, bytes, entries, hard_state.commit);
        // Handed to the application by the first Ready (the runtime reads its data from the
        // storage, as it does the chunks it sends to laggards).
        let snapshot_to_apply = snapshot.as_ref().map(|s| s.meta);
        let snapshot_conf = snapshot.and_then(|s| s.conf);
        let (membership, membership_index) = match &snapshot_conf {
            Some(conf) => (conf.membership.clone(), conf.index),
            None => (
                Membership::from_voters(config.voters.iter().copied()),
                LogIndex::ZERO,
            ),
        };
        let membership = std::sync::Arc::new(membership);
        let peers = membership
            .members()
            .into_iter()
            .filter(|m| *m != config.id)
            .collect();
        let mut core = RaftCore {
            id: config.id,
            rng: SplitMix64::new(config.seed, config.id.0),
            match_scratch: Vec::with_capacity(config.voters.len()),
            membership,
            membership_index,
            snapshot_conf,
            conf_history: Vec::new(),
            pending_membership_index: LogIndex::ZERO,
            term_start_index: LogIndex::ZERO,
            peers,
            role: Role::Follower,
            term: running.term,
            vote: running.vote,
            leader: None,
            log,
            ticks: 0,
            leader_heard_at_tick: None,
            election_elapsed_ticks: 0,
            heartbeat_elapsed_ticks: 0,
            randomized_election_timeout_ticks: config.election_timeout_ticks,
            votes: BTreeMap::new(),
            campaign: SplitMix64::new(config.seed ^ CAMPAIGN_SALT, config.id.0).next_u64() >> 1,
            campaign_is_transfer: false,
            progress: BTreeMap::new(),
            reads: ReadQueue::default(),
            lease: Lease::default(),
            transfer: None,
            incoming_snapshot: None,
            flush: PendingFlush::default(),
            outbox: Outbox::default(),
            snapshot_chunks_to_write: Vec::new(),
            snapshot_to_persist: None,
            snapshot_received: None,
            snapshot_to_apply,
            last_hard_state: hard_state,
            persist: PersistQueue::recovered(&hard_state),
            ready_number: 0,
            config,
        };
        if running == hard_state {
            core.last_hard_state = core.hard_state();
        }
        // Otherwise the raised term differs from `last_hard_state` (the durable one), so
        // the first Ready persists it, and `persist` keeps it unrevealed until then.
        core.reset_election_timer();
        tracing::info!(node = %core.id, term = %core.term, last = %core.log.last_index(),
            commit = %core.log.committed(), "raft core started");
        Ok(core)
    }

    /// Advances logical time by one tick: election timeouts for followers and
    /// candidates; heartbeats, CheckQuorum and transfer timeouts for the leader.
    pub fn tick(&mut self) {
        self.ticks += 1;
        match self.role {
            Role::Leader => self.tick_leader(),
            Role::Follower | Role::PreCandidate | Role::Candidate => self.tick_election(),
        }
    }

    /// Handles a message from a peer. Malformed or misaddressed messages are dropped
    /// (logged), never a panic.
    pub fn step(&mut self, msg: Message) {
        self.step_message(msg);
    }

    /// Proposes a command; returns where it will be committed if it commits. The entry
    /// goes out to followers at the next `ready()` (batched with other proposals).
    ///
    /// # Errors
    /// [`ProposeError::NotLeader`] on a non-leader, [`ProposeError::TransferInProgress`]
    /// during a leadership transfer, [`ProposeError::TooLarge`] over
    /// `Config::max_proposal_bytes`.
    pub fn propose(&mut self, data: Bytes) -> Result<(LogIndex, Term), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader_hint: self.leader,
            });
        }
        if self.transfer.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        if data.len() > self.config.max_proposal_bytes {
            return Err(ProposeError::TooLarge {
                size_bytes: data.len(),
                max_bytes: self.config.max_proposal_bytes,
            });
        }
        Ok(self.append_leader_entry(EntryKind::Normal, data))
    }

    /// Starts a linearizable read (thesis 6.4); a [`ReadState`] with `ctx` comes out of
    /// a later Ready once leadership is confirmed, or `ctx` shows up in
    /// `Ready::dropped_reads` if this node stops leading first.
    ///
    /// # Errors
    /// [`ProposeError::NotLeader`] when this node is not the leader.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader_hint: self.leader,
            });
        }
        self.enqueue_read(ctx);
        Ok(())
    }

    /// Starts a lease read: like [`RaftCore::read_index`], but while the leader's lease
    /// holds (`Config::lease_reads`, see `lease.rs`) the [`ReadState`] comes out of the
    /// next Ready at once, without a heartbeat round. Without a lease it is a ReadIndex
    /// read. Linearizable as long as clock rates differ by less than
    /// [`Config::LEASE_CLOCK_DRIFT_PERCENT`] and the runtime ticks without falling behind
    /// real time.
    ///
    /// # Errors
    /// [`ProposeError::NotLeader`] when this node is not the leader.
    pub fn read_lease(&mut self, ctx: u64) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader_hint: self.leader,
            });
        }
        self.enqueue_lease_read(ctx);
        Ok(())
    }

    /// Starts a leadership transfer to `to` (thesis 3.10). Proposals are refused until it
    /// completes or aborts (after an election timeout). Transferring to this node itself
    /// or to a non-voter is ignored.
    ///
    /// # Errors
    /// [`ProposeError::NotLeader`] when this node is not the leader.
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader_hint: self.leader,
            });
        }
        self.start_transfer(to);
        Ok(())
    }

    /// Reports that Ready `number` and every earlier one are durable (raft-rs's
    /// `on_persist_ready`): their entries, snapshot, term and vote. Reporting a number
    /// again, or one older than an earlier report, changes nothing.
    pub fn on_persist_ready(&mut self, number: u64) {
        let Some((index, term)) = self.persist.persisted(number) else {
            return;
        };
        if !self.log.persisted_to(index, term) {
            tracing::trace!(node = %self.id, number, %index, %term, "no new log position durable");
        }
        let snapshot_index = self.log.snapshot_meta().index;
        if self.snapshot_to_persist.is_none()
            && self.snapshot_to_apply.is_none()
            && self.log.applied() < snapshot_index
            && !self.log.snapshot_unpersisted()
        {
            // The received snapshot is durable now: the application may install it.
            self.snapshot_to_apply = self.snapshot_received.take();
        }
        if self.role == Role::Leader {
            self.maybe_commit();
        }
    }

    /// The snapshot [`RaftCore::compact`] would make at `index`, if it would make one
    /// (`index` applied, past the current snapshot, still in the log).
    pub fn compaction_meta(&self, index: LogIndex) -> Option<crate::types::SnapshotMeta> {
        self.log.compaction_meta(index)
    }

    /// The configuration in effect at `index` (at or after the snapshot's, at most the
    /// applied index), to record in a snapshot taken there. `None`: the bootstrap voters,
    /// no configuration entry applied since the snapshot recorded none.
    pub fn conf_at(&self, index: LogIndex) -> Option<ConfState> {
        self.conf_history
            .iter()
            .rev()
            .find(|c| c.index <= index)
            .or(self.snapshot_conf.as_ref())
            .cloned()
    }

    /// The application snapshotted its state at `index`, `snapshot_bytes` long, and the
    /// storage holds it durably; the log up to it is dropped from memory. The core keeps
    /// no snapshot bytes: the chunks it sends to laggards are empty, for the caller to fill
    /// from its storage ([`chunk_end`]). Ignored if `index` is not newer than the current
    /// snapshot or not yet applied.
    ///
    /// Returns the entries dropped from memory (empty when ignored): after a large log
    /// that is millions of them, which the caller may free off its thread.
    pub fn compact(
        &mut self,
        index: LogIndex,
        snapshot_bytes: u64,
    ) -> std::collections::VecDeque<Entry> {
        let conf = self.conf_at(index);
        let Some(freed) = self.log.compact(index, snapshot_bytes) else {
            return std::collections::VecDeque::new();
        };
        self.snapshot_conf = conf;
        self.conf_history.retain(|c| c.index > index);
        tracing::debug!(node = %self.id, %index, "log compacted");
        self.restart_stale_snapshot_transfers();
        freed
    }

    /// On a leader: whether enough followers are replicating and were heard from recently
    /// to commit new entries without the leader's own disk (so its fsync may wait). False on
    /// any other role, and for a single-node cluster.
    pub fn followers_can_commit(&self) -> bool {
        if self.role != Role::Leader {
            return false;
        }
        // A quorum of the whole cluster, from the followers alone.
        self.membership.has_quorum(|id| {
            self.progress
                .get(&id)
                .is_some_and(|p| p.recent_active && p.state == progress::ProgressState::Replicate)
        })
    }

    /// On a leader: whether making its written log durable would advance the commit
    /// index now, i.e. its own copy is on the commit path (the followers that answered
    /// are too few without it: one is slow or gone). The runtime then syncs writes it
    /// deferred at once instead of waiting for the other followers. False on any other
    /// role.
    pub fn own_sync_would_commit(&mut self) -> bool {
        if self.role != Role::Leader || self.log.persisted() >= self.log.last_index() {
            return false;
        }
        self.commit_candidate(self.log.last_index()).is_some()
    }

    /// Where the latest snapshot sits (index 0 when there is none).
    pub fn snapshot_meta(&self) -> crate::types::SnapshotMeta {
        self.log.snapshot_meta()
    }

    /// Whether `ready()` would return something.
    pub fn has_ready(&self) -> bool {
        self.has_pending_output()
    }

    /// Takes the pending output. See the crate docs for what to do with it.
    pub fn ready(&mut self) -> Ready {
        self.take_ready()
    }

    /// The current state.
    pub fn status(&self) -> CoreStatus {
        CoreStatus {
            id: self.id,
            role: self.role,
            term: self.term,
            leader: self.leader,
            commit: self.log.committed(),
            applied: self.log.applied(),
            last_index: self.log.last_index(),
            persisted: self.log.persisted(),
            snapshot_index: self.log.snapshot_meta().index,
            membership: self.membership.clone(),
            membership_index: self.membership_index,
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The leader this node follows (itself when leader), if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Highest committed index.
    pub fn commit_index(&self) -> LogIndex {
        self.log.committed()
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The hard state as it is now (handed out by `ready()` when it changes).
    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed(),
        }
    }

    /// Whether the current term or vote is not known durable yet (changed since the
    /// last Ready, or handed out but not yet reported persisted): anything revealing it
    /// must wait for the persist.
    fn term_or_vote_unpersisted(&self) -> bool {
        !self.persist.is_durable(self.term, self.vote)
    }

    /// Appends an entry of the current term on the leader and schedules replication.
    fn append_leader_entry(&mut self, kind: EntryKind, data: Bytes) -> (LogIndex, Term) {
        let index = self.log.last_index().next();
        self.log.append_new(Entry {
            index,
            term: self.term,
            kind,
            data,
        });
        self.flush.appends = true;
        if self.quorum_is_self() {
            // Single voter: the entry commits as soon as it is durable (on_persist_ready).
            self.maybe_commit();
        }
        (index, self.term)
    }

    /// Whether this node alone is a quorum (a single voter): nothing waits for others.
    fn quorum_is_self(&self) -> bool {
        self.membership.has_quorum(|id| id == self.id)
    }

    /// The cluster's configuration.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
}
