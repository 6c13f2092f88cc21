//! `RaftCore`: the pure Raft state machine. (API skeleton; the Raft core issue fills it in.)
//!
//! No threads, clocks, sockets, files or ambient randomness in here.

mod ready;

pub use ready::{ReadState, Ready};

use crate::config::Config;
use crate::error::{ConfigError, ProposeError};
use crate::message::Message;
use crate::types::{InitialState, LogIndex, NodeId, Term};
use bytes::Bytes;

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
}

/// The pure Raft state machine. See the crate docs for its contract.
#[derive(Debug)]
pub struct RaftCore {
    _private: (),
}

impl RaftCore {
    /// Creates a core from its configuration and recovered durable state.
    ///
    /// # Errors
    /// A [`ConfigError`] when the configuration or the recovered state is invalid.
    pub fn new(_config: Config, _initial: InitialState) -> Result<RaftCore, ConfigError> {
        Err(ConfigError("the Raft core is not implemented yet".into()))
    }
    /// Advances logical time by one tick.
    pub fn tick(&mut self) {}
    /// Handles a message from a peer.
    pub fn step(&mut self, _msg: Message) {}
    /// Proposes a command; returns where it will be committed if it commits.
    ///
    /// # Errors
    /// [`ProposeError`] when this node cannot accept proposals.
    pub fn propose(&mut self, _data: Bytes) -> Result<(LogIndex, Term), ProposeError> {
        Err(ProposeError::NotLeader { leader_hint: None })
    }
    /// Starts a linearizable read; a [`ReadState`] with `ctx` comes out of a later Ready.
    ///
    /// # Errors
    /// [`ProposeError::NotLeader`] when this node is not the leader.
    pub fn read_index(&mut self, _ctx: u64) -> Result<(), ProposeError> {
        Err(ProposeError::NotLeader { leader_hint: None })
    }
    /// Starts a leadership transfer to `to`.
    ///
    /// # Errors
    /// [`ProposeError::NotLeader`] when this node is not the leader.
    pub fn transfer_leader(&mut self, _to: NodeId) -> Result<(), ProposeError> {
        Err(ProposeError::NotLeader { leader_hint: None })
    }
    /// Reports that the log is durable up to `(index, term)`.
    pub fn on_persisted(&mut self, _index: LogIndex, _term: Term) {}
    /// The application snapshotted its state at `index`; the log up to it can go.
    pub fn compact(&mut self, _index: LogIndex, _data: Bytes) {}
    /// Whether `ready()` would return something.
    pub fn has_ready(&self) -> bool {
        false
    }
    /// Takes the pending output.
    pub fn ready(&mut self) -> Ready {
        Ready::default()
    }
    /// The current state.
    pub fn status(&self) -> CoreStatus {
        unimplemented!("skeleton")
    }
}
