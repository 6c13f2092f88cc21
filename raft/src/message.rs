//! The messages Raft nodes exchange. The core produces and consumes these; the runtime
//! converts them to and from `proto::raft::RaftMessage` for the wire, and the simulator
//! delivers them directly.
//!
//! All messages are one-way. A response (vote, append acknowledgement) is a message of
//! its own sent back to the requester, so the transport never has to match replies to
//! requests.

use crate::types::{Entry, LogIndex, NodeId, SnapshotMeta, Term};
use bytes::Bytes;

/// A message from one node to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// The sender's term (for a pre-vote request: the term the sender would campaign in).
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of Raft messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    /// RequestVote, or PreVote when `pre_vote` is set (thesis 9.6).
    RequestVote(RequestVote),
    /// The answer to a (pre-)vote request.
    RequestVoteResponse(RequestVoteResponse),
    /// AppendEntries carrying entries (possibly none when probing).
    AppendEntries(AppendEntries),
    /// The answer to AppendEntries.
    AppendEntriesResponse(AppendEntriesResponse),
    /// A leader's heartbeat: commit index and the latest ReadIndex round.
    Heartbeat(Heartbeat),
    /// The answer to a heartbeat.
    HeartbeatResponse(HeartbeatResponse),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshot),
    /// The answer to a snapshot chunk.
    InstallSnapshotResponse(InstallSnapshotResponse),
    /// Leadership transfer: "start an election now" (thesis 3.10).
    TimeoutNow,
}

/// RequestVote / PreVote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestVote {
    /// A pre-vote: asks "would you vote for me?" without anyone changing term.
    pub pre_vote: bool,
    /// Index of the candidate's last log entry.
    pub last_log_index: LogIndex,
    /// Term of the candidate's last log entry.
    pub last_log_term: Term,
    /// The election follows a TimeoutNow, so voters must ignore their leader lease.
    pub leadership_transfer: bool,
    /// Which of the sender's campaigns (pre-vote rounds and elections) this request
    /// belongs to; the response echoes it, so that a late answer to an earlier pre-vote
    /// round (same term) is not counted in a later one. 0 = unknown (counted by term).
    pub campaign: u64,
}

/// The answer to a (pre-)vote request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestVoteResponse {
    /// Answers a pre-vote.
    pub pre_vote: bool,
    /// The vote was granted.
    pub granted: bool,
    /// The `campaign` of the request this answers.
    pub campaign: u64,
}

/// AppendEntries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendEntries {
    /// Index of the entry just before `entries`.
    pub prev_log_index: LogIndex,
    /// Term of that entry.
    pub prev_log_term: Term,
    /// Entries to store, contiguous from `prev_log_index + 1`.
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub leader_commit: LogIndex,
}

/// The answer to AppendEntries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendEntriesResponse {
    /// The follower's log now matches the leader's up to `match_index`.
    pub success: bool,
    /// On success, the last index known to match the leader.
    pub match_index: LogIndex,
    /// On rejection, the first index of the conflicting term (or the follower's
    /// last index + 1 when its log is too short).
    pub conflict_index: LogIndex,
    /// On rejection, the term of the conflicting entry (0 when the log is too short).
    pub conflict_term: Term,
    /// The follower's last log index.
    pub last_log_index: LogIndex,
}

/// A heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// `min(leader commit, follower's match index)`: never more than the follower is
    /// known to hold, so a follower with a divergent tail never commits it.
    pub commit: LogIndex,
    /// The latest ReadIndex round the leader wants confirmed (0 = none).
    pub read_seq: u64,
}

/// The answer to a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// Echo of the heartbeat's `read_seq`.
    pub read_seq: u64,
}

/// One chunk of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallSnapshot {
    /// Which snapshot.
    pub meta: SnapshotMeta,
    /// Byte offset of `data` within the snapshot.
    pub offset: u64,
    /// The snapshot's total size in bytes.
    pub total_bytes: u64,
    /// The chunk.
    pub data: Bytes,
    /// This is the last chunk.
    pub done: bool,
    /// The configuration at the snapshot's index.
    pub conf: Option<crate::types::ConfState>,
}

/// The answer to a snapshot chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstallSnapshotResponse {
    /// Which snapshot.
    pub meta: SnapshotMeta,
    /// The offset of the next chunk the follower expects.
    pub next_offset: u64,
    /// The whole snapshot is received and durable.
    pub done: bool,
    /// The follower refused the chunk (out of order, or a different snapshot in progress);
    /// the leader restarts from `next_offset`.
    pub rejected: bool,
}

impl Message {
    /// Whether this message is a request (as opposed to a response). The 6.824 RPC
    /// budgets count requests.
    pub fn is_request(&self) -> bool {
        matches!(
            self.body,
            MessageBody::RequestVote(_)
                | MessageBody::AppendEntries(_)
                | MessageBody::Heartbeat(_)
                | MessageBody::InstallSnapshot(_)
                | MessageBody::TimeoutNow
        )
    }
}
