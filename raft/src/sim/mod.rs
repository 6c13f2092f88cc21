//! A deterministic simulator for Raft clusters (TigerBeetle / FoundationDB style), and the MIT
//! 6.824 tester API on top of it.
//!
//! It runs the code that ships: every node is the node runtime's own executor of the Ready
//! contract (`node/executor.rs`: group commit, the leader's deferred fsync, holding
//! Readies until durable, the apply backlog, tick catch-up) over `DiskStorage` on a
//! crashable in-memory file system (`SimFs`), with virtual time and a simulated network
//! behind the executor's seams (`Clock`, `Transport`, `Storage`).
//!
//! One `u64` seed decides everything: boot phases, clock rates, network delays, loss,
//! duplication and reordering, fsync durations, what survives a crash, and the tests' own
//! random choices. A run is a pure function of the seed, so a failure replays exactly:
//!
//! ```text
//! RAFTKV_SIM_SEED=17 cargo test -p raft --test persistence figure_8
//! ```
//!
//! Pieces:
//! - [`rng`]: the seeded PRNG (splitmix64 + xoshiro256**).
//! - [`events`]: virtual time, an event queue ordered by (time, sequence number).
//! - [`network`]: delay with jitter, loss, duplication, long reordering, disconnection and
//!   partitions, modelled on 6.824's `labrpc`.
//! - [`host`]: one node: its executor, its `SimFs` (fsyncs take virtual time, crashes lose
//!   unsynced data or tear it), its thread's busy time (stalls, slow rounds), and its
//!   application ([`app`]) on the other side of the apply channel, snapshotting every N
//!   entries; `clock` (the node's thread position and local clock) and `transport` (what
//!   it sends, checked for persistence-before-revealing at the instant it leaves).
//! - [`storage_model`]: the checker's oracle of each disk (written vs durable per the
//!   `Storage` contract), itself checked against what `DiskStorage` recovers after a crash.
//! - [`invariants`]: election safety, log matching, leader completeness, state machine
//!   safety, commit durability, monotonic terms/commits, contiguous applying, persistence
//!   before revealing, ReadIndex freshness; checked after every event.
//!   The persistence rules (what a message may reveal given what is durable) live in a
//!   private `persistence_rules` module of the checker.
//! - [`config`]: the knobs of a run ([`SimConfig`]); [`cluster`]: the cluster, its clock and
//!   event loop; test-facing faults and client actions (crash, restart, stall, slow disk,
//!   slow node, partition, propose, read, transfer) in a private `control` module;
//!   [`harness`]: 6.824's `checkOneLeader`, `one`, `nCommitted`, `wait`...; [`seeds`]:
//!   `run_seeds` and env seeds; [`trace`]: the ring of recent events printed on failure.
//! - [`nemesis`]: random faults and client actions, then healing and a convergence check.
//!
//! Time: a tick is 10 ms of virtual time; heartbeats every 10 ticks (10/s, 6.824's limit),
//! election timeouts of 30..60 ticks, so a leader is elected well within 6.824's 5 s.
//!
//! A quick look:
//!
//! ```
//! use raft::sim::{run_seeds, Cluster, SimConfig};
//!
//! run_seeds("doc_example", 1, |seed| {
//!     let mut cluster = Cluster::new(SimConfig::new(3, seed).scenario("doc_example"));
//!     let leader = cluster.check_one_leader();
//!     let index = cluster.one(100, 3, false);
//!     assert_eq!(cluster.n_committed(index).0, 3);
//!     assert!(cluster.is_up(leader));
//! });
//! ```

pub mod app;
mod background;
#[cfg(test)]
mod checker_tests;
mod clock;
pub mod cluster;
pub mod config;
mod control;
pub mod events;
pub mod harness;
pub mod host;
pub mod invariants;
pub mod nemesis;
pub mod network;
mod persistence_rules;
pub mod rng;
pub mod seeds;
pub mod storage_model;
mod streamed_copy;
pub mod trace;
mod transport;

pub use app::{cmd, cmd_value, CommandLog, SimStateMachine};
pub use cluster::{AppFactory, Cluster, MessageTap};
pub use config::{default_raft_config, SimConfig};
pub use harness::OneClient;
pub use host::{CompletedRead, FsyncLatency, SimNode};
pub use network::{NetStats, Network, NetworkConfig};
pub use rng::SimRng;
pub use seeds::{run_seeds, seeds_from_env};
pub use storage_model::{DiskState, StorageModel};
