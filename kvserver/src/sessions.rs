//! Exactly-once client sessions (Ongaro's thesis, section 6.3), extended to concurrent
//! requests per client: each client keeps the replies of its unacknowledged writes, keyed by
//! sequence number, so a retried write gets its first reply instead of being applied again.
//!
//! PURE: sessions change only when a command is applied from the log, so every replica holds
//! the same table. Invariants:
//! - a session's `first_unacked_seq` only grows, and no cached reply has a lower seq;
//! - at most `max_replies_per_session` replies per session (a write beyond that is rejected
//!   with a definite error, deterministically);
//! - `by_activity` holds exactly one `(last_active_index, client_id)` per session; when a new
//!   session would exceed `max_sessions`, the smallest entry (least recently active, ties by
//!   client id) is evicted.
//!
//! Known limit of the scheme: a client evicted before any reply of its was acknowledged
//! (`first_unacked_seq` still 1) looks like a new client when it retries; one evicted later
//! is detected (an unknown client with `first_unacked_seq > 1` gets `SESSION_EXPIRED`).

use std::collections::{BTreeMap, BTreeSet};

use proto::kv::{ErrorCode, WriteResponse};
use raft::LogIndex;

use crate::error::error_response;

/// Default bound on the number of client sessions.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;
/// Default bound on cached (unacknowledged) replies per client.
pub const DEFAULT_MAX_REPLIES_PER_SESSION: usize = 1024;

/// Rough memory cost of one session and one cached reply, for [`Sessions::approx_bytes`].
const SESSION_OVERHEAD_BYTES: usize = 96;
const REPLY_OVERHEAD_BYTES: usize = 64;

/// The session fields of a write: who sent it and what it has already seen answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    /// The clerk's random id.
    pub client_id: u64,
    /// This operation's sequence number (retries reuse it).
    pub seq: u64,
    /// The lowest sequence number whose reply the client has not seen yet.
    pub first_unacked_seq: u64,
}

/// One client's session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    replies: BTreeMap<u64, WriteResponse>,
    first_unacked_seq: u64,
    last_active_index: LogIndex,
}

impl Session {
    /// A session restored from a snapshot. The caller guarantees every reply's seq is at least
    /// `first_unacked_seq`.
    pub(crate) fn from_parts(
        replies: BTreeMap<u64, WriteResponse>,
        first_unacked_seq: u64,
        last_active_index: LogIndex,
    ) -> Self {
        Session {
            replies,
            first_unacked_seq,
            last_active_index,
        }
    }

    /// Cached replies of applied, not yet acknowledged writes, by sequence number.
    pub fn replies(&self) -> &BTreeMap<u64, WriteResponse> {
        &self.replies
    }

    /// Writes below this sequence number were acknowledged and their replies forgotten.
    pub fn first_unacked_seq(&self) -> u64 {
        self.first_unacked_seq
    }

    /// Log index of the last command from this client.
    pub fn last_active_index(&self) -> LogIndex {
        self.last_active_index
    }

    /// Raises the acknowledgement watermark and forgets the replies below it.
    fn acknowledge(&mut self, first_unacked_seq: u64) {
        if first_unacked_seq <= self.first_unacked_seq {
            return;
        }
        self.first_unacked_seq = first_unacked_seq;
        while let Some(entry) = self.replies.first_entry() {
            if *entry.key() >= first_unacked_seq {
                break;
            }
            entry.remove();
        }
    }

    /// The session part of applying a write; `apply_op` runs at most once.
    fn handle<F>(&mut self, id: RequestId, max_replies: usize, apply_op: F) -> WriteResponse
    where
        F: FnOnce() -> WriteResponse,
    {
        if id.seq < self.first_unacked_seq {
            return error_response(
                ErrorCode::SessionExpired,
                format!(
                    "stale request: seq {} is below the acknowledged seq {}",
                    id.seq, self.first_unacked_seq
                ),
            );
        }
        self.acknowledge(id.first_unacked_seq);
        if let Some(reply) = self.replies.get(&id.seq) {
            return reply.clone();
        }
        if self.replies.len() >= max_replies {
            return error_response(
                ErrorCode::Unavailable,
                format!("too many unacknowledged writes for this client (limit {max_replies})"),
            );
        }
        let reply = apply_op();
        self.replies.insert(id.seq, reply.clone());
        reply
    }
}

/// The table of client sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct Sessions {
    sessions: BTreeMap<u64, Session>,
    /// `(last_active_index, client_id)` of every session: the eviction order.
    by_activity: BTreeSet<(LogIndex, u64)>,
    max_sessions: usize,
    max_replies_per_session: usize,
}

impl Sessions {
    /// An empty table with the given bounds (each at least 1; 0 is treated as 1).
    pub fn new(max_sessions: usize, max_replies_per_session: usize) -> Self {
        Sessions {
            sessions: BTreeMap::new(),
            by_activity: BTreeSet::new(),
            max_sessions: max_sessions.max(1),
            max_replies_per_session: max_replies_per_session.max(1),
        }
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The session of `client_id`.
    pub fn get(&self, client_id: u64) -> Option<&Session> {
        self.sessions.get(&client_id)
    }

    /// Sessions in client-id order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &Session)> + '_ {
        self.sessions.iter().map(|(id, session)| (*id, session))
    }

    /// Approximate memory held by the table, in bytes.
    pub fn approx_bytes(&self) -> usize {
        self.sessions
            .values()
            .map(|s| SESSION_OVERHEAD_BYTES + s.replies.len() * REPLY_OVERHEAD_BYTES)
            .sum()
    }

    /// Applies the write `id` at log `index` exactly once: `apply_op` runs only if this
    /// (client, seq) was never applied, and its reply is cached for retries.
    ///
    /// Replies without running `apply_op`:
    /// - `INVALID_ARGUMENT` if `first_unacked_seq > seq` (no session change);
    /// - `SESSION_EXPIRED` for an unknown client with `first_unacked_seq > 1` (its session was
    ///   evicted: the outcome of its writes is unknown), with no session created;
    /// - `SESSION_EXPIRED` for a seq below the session's acknowledged watermark (stale);
    /// - the cached reply for a seq already applied;
    /// - `UNAVAILABLE` when the session already caches `max_replies_per_session` replies.
    ///
    /// A new client's session may evict the least recently active one.
    pub fn apply<F>(&mut self, index: LogIndex, id: RequestId, apply_op: F) -> WriteResponse
    where
        F: FnOnce() -> WriteResponse,
    {
        if id.first_unacked_seq > id.seq {
            return error_response(
                ErrorCode::InvalidArgument,
                format!(
                    "first_unacked_seq {} is above seq {}",
                    id.first_unacked_seq, id.seq
                ),
            );
        }
        if !self.sessions.contains_key(&id.client_id) {
            if id.first_unacked_seq > 1 {
                return error_response(
                    ErrorCode::SessionExpired,
                    format!(
                        "session of client {:#x} expired; outcome unknown",
                        id.client_id
                    ),
                );
            }
            self.open_session(id.client_id, index);
        }
        let max_replies = self.max_replies_per_session;
        let Some(session) = self.sessions.get_mut(&id.client_id) else {
            unreachable!("session of client {} was just opened", id.client_id);
        };
        let previous = std::mem::replace(&mut session.last_active_index, index);
        let reply = session.handle(id, max_replies, apply_op);
        self.by_activity.remove(&(previous, id.client_id));
        self.by_activity.insert((index, id.client_id));
        reply
    }

    /// Adds a session restored from a snapshot, replacing any session of the same client.
    pub(crate) fn insert_restored(&mut self, client_id: u64, session: Session) {
        if let Some(old) = self.sessions.remove(&client_id) {
            self.by_activity.remove(&(old.last_active_index, client_id));
        }
        self.by_activity
            .insert((session.last_active_index, client_id));
        self.sessions.insert(client_id, session);
    }

    /// Opens an empty session, evicting the least recently active ones to stay in bounds.
    fn open_session(&mut self, client_id: u64, index: LogIndex) {
        while self.sessions.len() >= self.max_sessions {
            let Some((last_active_index, evicted)) = self.by_activity.pop_first() else {
                break;
            };
            self.sessions.remove(&evicted);
            tracing::debug!(client = evicted, %last_active_index, %index, "evicted client session");
        }
        let session = Session::from_parts(BTreeMap::new(), 1, index);
        self.sessions.insert(client_id, session);
        self.by_activity.insert((index, client_id));
    }
}
