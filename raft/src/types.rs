//! The vocabulary of Raft: node ids, terms, log indexes, entries, hard state and
//! snapshots. Plain data, shared by the core, the storage and the runtime.
//!
//! `Term`, `LogIndex` and `NodeId` are newtypes over `u64` so that an index can never be
//! passed where a term is expected. Index 0 and term 0 mean "nothing": the log's first
//! real entry has index 1, and the first real term is 1.

use bytes::Bytes;
use std::fmt;

macro_rules! u64_newtype {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u64);

        impl $name {
            /// The zero value ("none").
            pub const ZERO: $name = $name(0);

            /// The raw number.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl From<u64> for $name {
            fn from(v: u64) -> Self {
                $name(v)
            }
        }
    };
}

u64_newtype!(
    /// A node's id within its cluster. 0 is never a valid id.
    NodeId,
    "n"
);
u64_newtype!(
    /// A Raft term. Terms only grow; 0 is the term before any election.
    Term,
    "t"
);
u64_newtype!(
    /// A position in the replicated log. The first entry has index 1; 0 means "before the log".
    LogIndex,
    "i"
);

impl LogIndex {
    /// The next index.
    pub const fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The previous index (saturating at 0).
    pub const fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

impl Term {
    /// The next term.
    pub const fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum EntryKind {
    /// An application command (`data` is opaque to Raft).
    #[default]
    Normal,
    /// The empty entry a new leader appends to commit earlier terms' entries (paper 5.4.2).
    Noop,
    /// A configuration change (`core::membership::MembershipChange`, encoded); it takes
    /// effect when applied.
    Membership,
}

/// One log entry.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// Position in the log.
    pub index: LogIndex,
    /// Term of the leader that created the entry.
    pub term: Term,
    /// Application command or no-op.
    pub kind: EntryKind,
    /// The command bytes (empty for a no-op).
    pub data: Bytes,
}

impl Entry {
    /// Approximate encoded size, used for batching limits.
    pub fn size_bytes(&self) -> usize {
        self.data.len() + 24
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Entry({:?}, {:?}, {:?}, {} B)",
            self.index,
            self.term,
            self.kind,
            self.data.len()
        )
    }
}

/// The state that must be durable before a node answers anyone (paper Figure 2:
/// currentTerm and votedFor; plus the commit index, which lets a restarted node
/// re-apply without waiting for a leader).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate this node voted for in `term`, if any.
    pub vote: Option<NodeId>,
    /// The highest index known to be committed.
    pub commit: LogIndex,
}

/// Where a snapshot sits in the log: it replaces every entry up to and including `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SnapshotMeta {
    /// The last log index the snapshot covers.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
}

/// A configuration and the index of the entry that made it (zero: the bootstrap voters),
/// as a snapshot records it: the log entries that made it are gone once compacted.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConfState {
    /// Who votes and who learns.
    pub membership: crate::core::Membership,
    /// The index of the configuration entry.
    pub index: LogIndex,
}

/// An application snapshot: opaque bytes covering the log up to `meta.index`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Position in the log.
    pub meta: SnapshotMeta,
    /// The application's encoded state.
    pub data: Bytes,
    /// The configuration at `meta.index`; `None` for a snapshot taken before
    /// configurations were recorded (the bootstrap voters apply).
    pub conf: Option<ConfState>,
}

impl Snapshot {
    /// A snapshot without a recorded configuration.
    pub fn new(meta: SnapshotMeta, data: Bytes) -> Snapshot {
        Snapshot {
            meta,
            data,
            conf: None,
        }
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Snapshot({:?}, {} B", self.meta, self.data.len())?;
        match &self.conf {
            Some(conf) => write!(f, ", {} at {})", conf.membership, conf.index),
            None => write!(f, ")"),
        }
    }
}

/// A piece of a snapshot being received from the leader (`Ready::snapshot_chunks`): the
/// runtime writes it into the storage's incoming snapshot
/// (`Storage::write_incoming_snapshot`), so the core never assembles a snapshot in memory.
#[derive(Clone, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// The snapshot it belongs to.
    pub meta: SnapshotMeta,
    /// Where `data` starts in the snapshot's data. Chunks come in order and contiguous;
    /// offset 0 starts a new incoming snapshot.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
}

impl fmt::Debug for SnapshotChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SnapshotChunk({:?}, {}+{} B)",
            self.meta,
            self.offset,
            self.data.len()
        )
    }
}

/// A snapshot received whole from the leader (`Ready::snapshot`): its chunks were handed
/// out before it; the storage makes it durable and replaces the log with it
/// (`Storage::install_incoming_snapshot`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedSnapshot {
    /// Its position in the log.
    pub meta: SnapshotMeta,
    /// The length of its data: every chunk up to here was handed out.
    pub data_bytes: u64,
    /// The configuration at its index, as the leader sent it.
    pub conf: Option<ConfState>,
}

/// Everything a node recovers from durable storage at start-up.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct InitialState {
    /// The last durable hard state.
    pub hard_state: HardState,
    /// The latest durable snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// The durable entries after the snapshot, contiguous and in order.
    pub entries: Vec<Entry>,
}
