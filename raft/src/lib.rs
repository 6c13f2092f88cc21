//! raftkv's consensus crate: a deterministic, sans-IO Raft core ([`RaftCore`]), durable
//! storage ([`storage`]) and the threaded runtime around them.
//!
//! # The Raft core
//!
//! [`RaftCore`] is pure: no threads, clocks, sockets, files or ambient randomness. Time
//! is [`RaftCore::tick`]; randomness (election timeouts) is a PRNG seeded from
//! [`Config::seed`] and the node id; maps are ordered, so the same inputs always give the
//! same outputs. One executor of the Ready contract drives it (`node/executor.rs`): on
//! the node runtime's driver thread, and in the seeded simulator ([`sim`], feature
//! `sim`) on virtual time and a crashable file system.
//!
//! It implements the Raft paper (extended version) and these parts of Ongaro's thesis:
//! leader election with randomized timeouts; PreVote and CheckQuorum with the follower
//! lease (9.6, 6.2); log replication with batching, pipelining, per-peer flow control
//! (Probe / Replicate / Snapshot) and fast backtracking (paper 5.3); the leader writing
//! its log in parallel with replication (10.2.1); chunked InstallSnapshot (paper 7);
//! ReadIndex reads (6.4) and lease reads (6.4.1); leadership transfer (3.10). Membership
//! is fixed.
//!
//! ## Inputs
//!
//! - [`RaftCore::tick`]: one unit of logical time. With [`Config::lease_reads`] the
//!   runtime must deliver one tick per tick period of real time, delivering late the
//!   ones it missed while busy, interleaved with the messages it steps in the order they
//!   happened (the node runtime does; see `node/executor.rs` and `node/tick_clock.rs`):
//!   the leader lease and the followers' promises are counted in ticks.
//! - [`RaftCore::step`]: a [`Message`] from a peer.
//! - [`RaftCore::propose`]: a command; returns the `(index, term)` it will have if it
//!   commits. Refused on non-leaders (`NotLeader { leader_hint }`), during a transfer
//!   (`TransferInProgress`) and over `max_proposal_bytes` (`TooLarge`).
//! - [`RaftCore::read_index`]: a linearizable read with a caller context `ctx`.
//! - [`RaftCore::read_lease`]: the same, served from the leader lease without a
//!   heartbeat round while the lease holds (`core/lease.rs` says why that is safe).
//! - [`RaftCore::transfer_leader`]: hand leadership to another voter.
//! - [`RaftCore::on_persist_ready`]: Ready `number` (and every earlier one) is durable.
//! - [`RaftCore::compact`]: the application snapshotted its state.
//!
//! ## The Ready contract
//!
//! Everything the core wants done comes out of [`RaftCore::ready`] (which takes it;
//! [`RaftCore::has_ready`] says whether there is anything). The driver's loop:
//!
//! 1. Feed inputs (any number), then call `ready()`. Proposals made between two
//!    `ready()` calls go out as one AppendEntries per peer.
//! 2. Send `rd.messages` now: they depend on nothing unpersisted.
//! 3. Write `rd.snapshot_chunks` (pieces of a snapshot the leader is sending, in order,
//!    into the storage's incoming snapshot: `Storage::write_incoming_snapshot`; the core
//!    keeps no snapshot bytes), install `rd.snapshot` (if any: the incoming snapshot is
//!    whole; durable on return), then persist `rd.entries` (truncate,
//!    then append from `entries[0].index`), then `rd.hard_state`; fsync if
//!    `rd.must_sync`. `must_sync` is true when the Ready has entries, a snapshot, or a
//!    term/vote change, and false when only the commit index changed (write it, no
//!    fsync needed). Several Readies may share one fsync (group commit), but they must be
//!    persisted in `rd.number` order.
//! 4. Once this Ready and every earlier one are durable (fsynced if any of them had
//!    `must_sync`): send `rd.messages_after_persist`, then call
//!    `on_persist_ready(rd.number)`. Readies become durable in order, so one call with
//!    the newest durable number covers every earlier Ready (raft-rs's
//!    `on_persist_ready`). The core learns from it which term, vote and log entries are
//!    durable; a Ready whose entries were replaced since does not make the replacing
//!    entries durable.
//! 5. Apply `rd.apply_snapshot` (if any: its data is read from the storage,
//!    `Storage::open_snapshot`), then `rd.committed`, in order. On a follower,
//!    committed entries are handed out only up to the locally persisted index, so
//!    applying never runs ahead of the local disk. A leader hands out every committed
//!    entry (it was written in an earlier or this Ready, and is durable on a majority
//!    without the leader's copy), so its own fsync may lag; a snapshot of the
//!    application must then be saved only after the log it covers is synced, which
//!    `Storage::save_snapshot` does. `apply_snapshot` is handed out only after the
//!    received snapshot was reported persisted. Serve each of `rd.read_states` once the
//!    application has applied its `index`; answer each of `rd.dropped_reads` with "not
//!    leader" (leadership was lost before the read was confirmed).
//! 6. When the application snapshots its state at an applied index and the runtime has
//!    stored it durably through [`storage::Storage`] (it is not in a Ready), call
//!    `compact(index, snapshot_bytes)`: the core drops its in-memory entries up to
//!    `index`. It keeps no snapshot bytes: the InstallSnapshot chunks it sends to laggards
//!    carry empty `data`, which the runtime fills from the storage
//!    (`Storage::read_snapshot_chunk`, the range ending at [`core::chunk_end`]) before
//!    sending. Ignored if `index` is not newer than the current snapshot or not applied.
//!
//! At start-up, [`RaftCore::new`] takes the recovered [`InitialState`]: its entries are
//! durable (persisted = last index), `commit = hard_state.commit`, applied = the
//! snapshot's index. The first Ready hands out the snapshot as `apply_snapshot` (so the
//! application restores it) and the committed entries after it. An inconsistent initial
//! state (a gap in the entries, commit beyond the log, ...) is a [`ConfigError`].
//!
//! ## Which messages wait for the persist
//!
//! 1. `messages` (send now): a leader's AppendEntries, Heartbeat, InstallSnapshot and
//!    TimeoutNow (its term is durable before it can win a vote, except a single voter's,
//!    whose messages to learners wait as in 2 until it is). The leader sends entries before its own write finishes and counts
//!    itself in the commit quorum only up to what `on_persist_ready` reported (thesis
//!    10.2.1). Also pre-vote requests and responses, vote rejections, heartbeat responses
//!    and snapshot chunk acknowledgements, as long as this node's current term and vote
//!    are known durable (reported through `on_persist_ready`); a heartbeat response that
//!    waited for an fsync would slow every ReadIndex down.
//! 2. `messages_after_persist`: AppendEntries responses (they acknowledge entries), vote
//!    grants, a candidate's RequestVote (its new term and self-vote must be durable), the
//!    final snapshot acknowledgement, and every other message produced while this node's
//!    current term or vote is not yet known durable (Figure 2: "updated on stable storage
//!    before responding to RPCs").
//!
//! ## Protocol notes
//!
//! 1. Elections: each node waits a random `[election_timeout_ticks,
//!    2 * election_timeout_ticks)` ticks without hearing from a leader, then campaigns;
//!    with `pre_vote`, first in a pre-vote round that changes nobody's term. A
//!    (pre-)candidate asks voters that have not answered again every heartbeat interval;
//!    requests carry the campaign's number and only answers echoing it are counted (the
//!    pre-vote rounds of one term all ask about the same future term).
//!    A new leader
//!    appends a no-op entry and commits only entries of its own term by counting
//!    replicas (paper Figure 8).
//! 2. CheckQuorum: a leader that did not hear from a majority within an election timeout
//!    steps down; a follower that heard from its leader within an election timeout
//!    ignores (pre-)vote requests of a higher term unless they follow a leadership
//!    transfer.
//! 3. Heartbeats carry `min(leader commit, follower match)`, never more than the follower
//!    is known to share with the leader, and the current ReadIndex round.
//! 4. ReadIndex: a read waits until the leader has committed an entry of its term,
//!    records the commit index, and is released when a majority acknowledged a heartbeat
//!    round started after it. One round serves every read queued before it. A lease read
//!    skips the round while a round sent at most `Config::lease_ticks` ago was
//!    acknowledged by a majority, no TimeoutNow was sent this term, and an entry of the
//!    term is committed; with lease reads on, every heartbeat starts a round and a node
//!    refuses votes for its first election timeout after starting.
//! 5. A message from an older term is not acted on; AppendEntries, heartbeats, snapshot
//!    chunks and pre-votes from an older term are answered with the newer term so a stale
//!    leader or pre-candidate steps down.
//! 6. Flow control per follower: **Probe** (one append outstanding; probe again when the
//!    follower answers a heartbeat), **Replicate** (up to `max_inflight_appends`
//!    pipelined appends; if the match index did not move between two heartbeat responses,
//!    one slot is freed and an append is resent), **Snapshot** (chunks of
//!    `snapshot_chunk_bytes`, a few in flight; resumed at the offset a rejection names, or
//!    from the last acknowledged offset after a stall of a few heartbeat intervals).
//! 7. Requests per command: one AppendEntries per peer per batch of proposals. A commit
//!    advance alone sends nothing; followers learn it from the next append or heartbeat.
//! 8. A received snapshot whose last entry (index and term) is already in the log keeps
//!    the log and only raises the commit index (paper 7, "retain log entries following
//!    it"); otherwise it replaces the log.
//!
//! # Quick start
//!
//! A single-node cluster driven by hand (the runtime does this with a real disk):
//!
//! ```
//! use bytes::Bytes;
//! use raft::{Config, InitialState, NodeId, RaftCore};
//!
//! let config = Config::new(NodeId(1), vec![NodeId(1)]);
//! let mut core = RaftCore::new(config, InitialState::default()).unwrap();
//! let mut applied = Vec::new();
//! let mut drive = |core: &mut RaftCore, applied: &mut Vec<Bytes>| {
//!     while core.has_ready() {
//!         let rd = core.ready();
//!         // (send rd.messages; write rd.snapshot_chunks; persist rd.snapshot, rd.entries,
//!         // rd.hard_state; fsync)
//!         core.on_persist_ready(rd.number);
//!         applied.extend(rd.committed.into_iter().map(|e| e.data).filter(|d| !d.is_empty()));
//!     }
//! };
//! while !core.is_leader() {
//!     core.tick();
//! }
//! drive(&mut core, &mut applied);
//! let (index, _term) = core.propose(Bytes::from_static(b"set x=1")).unwrap();
//! drive(&mut core, &mut applied);
//! assert_eq!(core.commit_index(), index);
//! assert_eq!(applied, vec![Bytes::from_static(b"set x=1")]);
//! ```

#![deny(missing_docs)]

pub mod config;
pub mod core;
pub mod error;
pub mod message;
pub mod node;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod storage;
pub mod transport;
pub mod types;

pub use config::Config;
pub use core::{CoreStatus, RaftCore, ReadState, Ready, Role};
pub use error::{ConfigError, ProposeError, StorageError};
pub use message::{Message, MessageBody};
pub use types::{
    ConfState, Entry, EntryKind, HardState, InitialState, LogIndex, NodeId, ReceivedSnapshot,
    Snapshot, SnapshotChunk, SnapshotMeta, Term,
};
