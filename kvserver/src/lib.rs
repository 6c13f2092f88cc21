//! kvserver: raftkv's key-value state machine, its client sessions and snapshot format,
//! the KV service, and the `kvserver` binary.
//!
//! The state-machine pieces are pure: no threads, clocks, files or sockets, so every
//! replica that applies the same log gets the same state, and tests drive them directly:
//!
//! - [`skiplist`]: `SkipList<K, V>`, the ordered map holding the data;
//! - [`sessions`]: exactly-once client sessions (Ongaro's thesis, 6.3);
//! - [`state_machine`]: `StateMachine`, which applies `WriteRequest`s from the Raft log;
//! - [`snapshot`]: the versioned, checksummed encoding of a whole state machine;
//! - [`error`]: error types and reply helpers.
//!
//! The running server is not pure: [`server`] (`KvServer`, whose applier thread owns the
//! state machine's writes), [`service`] (the KV service on the rpc event loop), [`launch`]
//! (opens the data directory, starts the Raft node and the Provider) and [`config`] (the
//! cluster file). ARCHITECTURE.md at the repository root draws the threads and paths.
//!
//! ```
//! use kvserver::state_machine::{register_request, Limits, StateMachine};
//! use proto::kv::{write_request::Op, Put, WriteRequest};
//! use raft::LogIndex;
//!
//! let mut sm = StateMachine::new(Limits::default());
//! let client_id = sm.apply(LogIndex(1), &register_request()).client_id; // 1: its index
//! let put = WriteRequest {
//!     client_id,
//!     seq: 1,
//!     first_unacked_seq: 1,
//!     op: Some(Op::Put(Put { key: "k".into(), value: "v".into() })),
//! };
//! assert!(sm.apply(LogIndex(2), &put).error.is_none());
//! assert_eq!(sm.get(b"k").as_deref(), Some(&b"v"[..]));
//!
//! let bytes = kvserver::snapshot::encode(&sm);
//! let restored = kvserver::snapshot::decode(&bytes).unwrap();
//! assert_eq!(restored, sm);
//! ```

#![deny(missing_docs)]

pub mod command;
pub mod config;
pub mod error;
pub mod launch;
pub mod server;
pub mod service;
pub mod sessions;
pub mod skiplist;
pub mod snapshot;
pub mod snapshot_policy;
pub mod state_machine;
mod waiters;
