//! Errors of the raft crate. API errors (the caller can act on them: not the leader,
//! a proposal too large) are kept apart from fatal ones (storage failed, node stopped).

use crate::types::{LogIndex, NodeId};
use std::path::PathBuf;

/// A bad [`crate::Config`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid raft config: {0}")]
pub struct ConfigError(pub String);

/// Why a proposal, read or transfer was refused by the core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This node is not the leader. `leader_hint` is the leader it last heard from.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader {
        /// The current leader, when known.
        leader_hint: Option<NodeId>,
    },
    /// A leadership transfer is in progress; proposals are paused until it ends.
    #[error("leadership transfer in progress")]
    TransferInProgress,
    /// A configuration change is in the log and not applied yet: one at a time.
    #[error("the configuration change at index {index} is not applied yet")]
    MembershipChangePending {
        /// The pending change's index.
        index: crate::types::LogIndex,
    },
    /// A new leader accepts no configuration change before it has applied the first
    /// entry of its term (Ongaro's single-server change bug, raft-dev 2015).
    #[error("this leader has not applied the first entry of its term yet")]
    LeaderNotReady,
    /// The configuration changed since the proposer looked at it.
    #[error("the configuration is at index {current}, the change expected {expected}")]
    StaleMembership {
        /// The index the change expected.
        expected: crate::types::LogIndex,
        /// The current configuration's index.
        current: crate::types::LogIndex,
    },
    /// The change is not safe or not possible (`core::membership::ChangeError`).
    #[error("configuration change refused: {0}")]
    MembershipChangeRefused(#[from] crate::core::membership::ChangeError),
    /// The proposal exceeds `Config::max_proposal_bytes`.
    #[error("proposal of {size_bytes} bytes exceeds the limit of {max_bytes}")]
    TooLarge {
        /// Size of the proposal.
        size_bytes: usize,
        /// The configured limit.
        max_bytes: usize,
    },
}

/// Why durable storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O error, with the file it concerned.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A record before the tail of the log is corrupt: data would be lost by skipping it.
    #[error("corrupt write-ahead log {path} at byte {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The log does not hold the requested index (compacted or not yet written).
    #[error("log index {index} is unavailable (first {first}, last {last})")]
    Unavailable {
        /// Requested index.
        index: LogIndex,
        /// First available index.
        first: LogIndex,
        /// Last available index.
        last: LogIndex,
    },
    /// Another process has the data directory open (its `LOCK` file is locked).
    #[error("data directory {path} is in use by another process")]
    InUse {
        /// The data directory.
        path: PathBuf,
    },
    /// The caller broke the storage contract (e.g. a gap between appended entries).
    #[error("storage contract violated: {0}")]
    Contract(String),
    /// A file other than a WAL segment (a snapshot, the identity file) is damaged, or
    /// the files of a data directory contradict each other (e.g. WAL entries missing
    /// between the snapshot and the rest of the log). `path` names the file or directory.
    #[error("corrupt or inconsistent {path}: {reason}")]
    CorruptFile {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An earlier I/O failure left the durable state unknown; the storage refuses all
    /// further work. Restart the node so recovery reads what is really on disk.
    #[error("storage unusable after an earlier failure ({0}); restart the node")]
    Poisoned(String),
    /// The data directory was initialized for this node, but its Raft state (the `wal/`
    /// and `snap/` directories, or every file in them) is gone: starting would forget the node's votes and the
    /// entries it acknowledged, which can elect a leader without committed entries.
    #[error(
        "data directory {path} was initialized for this node but its wal/ and snap/ are gone or \
         empty; refusing to start with no memory of its votes and acknowledged entries: \
         restore the data (a node may rejoin empty only when the whole cluster is \
         bootstrapped anew)"
    )]
    DataMissing {
        /// The data directory.
        path: PathBuf,
    },
    /// The data directory holds no data of this node, and the caller did not say this is
    /// the first start of a new cluster (`DiskOptions::bootstrap`).
    #[error(
        "data directory {path} holds no data of this node; refusing to start it empty: on the \
         first start of a new cluster pass --bootstrap; a node whose data was lost must not \
         rejoin as an empty voter (it would have forgotten its votes and acknowledged entries)"
    )]
    NotBootstrapped {
        /// The data directory.
        path: PathBuf,
    },
    /// The data directory belongs to another cluster or node.
    #[error("data directory {path} belongs to {found}, not {expected}")]
    WrongIdentity {
        /// The data directory.
        path: PathBuf,
        /// What the directory says.
        found: String,
        /// What this node is.
        expected: String,
    },
}
