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
//! Sessions are opened only by an explicit Register command (thesis 6.3), whose log index
//! becomes the client id: a write of an unknown client (never registered, or evicted) is
//! refused with `SESSION_EXPIRED` and never applied. Opening sessions implicitly on a
//! client's first write, as we did before, let an evicted client's retry of an applied
//! write open a fresh session and apply again.

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
    /// - `SESSION_EXPIRED` for an unknown client (never registered, or evicted: the outcome
    ///   of its earlier writes is unknown);
    /// - `SESSION_EXPIRED` for a seq below the session's acknowledged watermark (stale);
    /// - the cached reply for a seq already applied;
    /// - `UNAVAILABLE` when the session already caches `max_replies_per_session` replies.
    ///
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
        let max_replies = self.max_replies_per_session;
        let Some(session) = self.sessions.get_mut(&id.client_id) else {
            return error_response(
                ErrorCode::SessionExpired,
                format!(
                    "no session for client {}: never registered, or expired (the outcome of \
                     its earlier writes is unknown)",
                    id.client_id
                ),
            );
        };
        let previous = std::mem::replace(&mut session.last_active_index, index);
        let reply = session.handle(id, max_replies, apply_op);
        self.by_activity.remove(&(previous, id.client_id));
        self.by_activity.insert((index, id.client_id));
        reply
    }

    /// Applies a Register committed at `index`: opens a session whose client id is the
    /// index (unique, and the same on every replica), evicting the least recently active
    /// sessions to stay within `max_sessions`. Returns the id.
    pub fn register(&mut self, index: LogIndex) -> u64 {
        let client_id = index.0;
        self.open_session(client_id, index);
        client_id
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ok_response;

    /// Applies (client, seq, first_unacked) at `index`; counts real applications in `applied`.
    /// The reply's `swapped` flag is `seq % 2 == 0`, so replies of different seqs differ.
    fn write(
        sessions: &mut Sessions,
        index: u64,
        (client_id, seq, first_unacked_seq): (u64, u64, u64),
        applied: &mut u32,
    ) -> WriteResponse {
        let id = RequestId {
            client_id,
            seq,
            first_unacked_seq,
        };
        sessions.apply(LogIndex(index), id, || {
            *applied += 1;
            ok_response(seq % 2 == 0)
        })
    }

    fn code(reply: &WriteResponse) -> Option<ErrorCode> {
        reply
            .error
            .as_ref()
            .map(|e| ErrorCode::try_from(e.code).unwrap())
    }

    /// Registers a client at `index`; its id is `index`.
    fn register(sessions: &mut Sessions, index: u64) -> u64 {
        let id = sessions.register(LogIndex(index));
        assert_eq!(id, index);
        id
    }

    #[test]
    fn duplicate_returns_cached_reply_and_applies_once() {
        let mut sessions = Sessions::new(10, 10);
        let mut applied = 0;
        let c = register(&mut sessions, 1);
        let first = write(&mut sessions, 2, (c, 2, 1), &mut applied);
        let retry = write(&mut sessions, 3, (c, 2, 1), &mut applied);
        assert_eq!(applied, 1);
        assert_eq!(first, retry);
        assert!(retry.swapped);
    }

    #[test]
    fn concurrent_out_of_order_seqs_both_apply() {
        let mut sessions = Sessions::new(10, 10);
        let mut applied = 0;
        let c = register(&mut sessions, 1);
        let two = write(&mut sessions, 2, (c, 2, 1), &mut applied);
        let one = write(&mut sessions, 3, (c, 1, 1), &mut applied);
        assert_eq!(applied, 2);
        assert!(two.error.is_none() && one.error.is_none());
        assert_eq!(sessions.get(c).unwrap().replies().len(), 2);
    }

    #[test]
    fn watermark_forgets_acknowledged_replies() {
        let mut sessions = Sessions::new(10, 10);
        let mut applied = 0;
        let c = register(&mut sessions, 1);
        for seq in 1..=3 {
            write(&mut sessions, seq + 1, (c, seq, 1), &mut applied);
        }
        write(&mut sessions, 5, (c, 4, 3), &mut applied);
        let session = sessions.get(c).unwrap();
        assert_eq!(session.first_unacked_seq(), 3);
        assert_eq!(
            session.replies().keys().copied().collect::<Vec<_>>(),
            [3, 4]
        );
        // A lower watermark on a later request never lowers it again.
        write(&mut sessions, 6, (c, 5, 2), &mut applied);
        assert_eq!(sessions.get(c).unwrap().first_unacked_seq(), 3);
    }

    #[test]
    fn stale_seq_is_rejected_without_applying() {
        let mut sessions = Sessions::new(10, 10);
        let mut applied = 0;
        let c = register(&mut sessions, 1);
        write(&mut sessions, 2, (c, 1, 1), &mut applied);
        write(&mut sessions, 3, (c, 2, 2), &mut applied);
        let stale = write(&mut sessions, 4, (c, 1, 1), &mut applied);
        assert_eq!(applied, 2);
        assert_eq!(code(&stale), Some(ErrorCode::SessionExpired));
    }

    #[test]
    fn an_unregistered_client_is_refused_and_gets_no_session() {
        let mut sessions = Sessions::new(10, 10);
        let mut applied = 0;
        for first_unacked in [1, 4] {
            let reply = write(&mut sessions, 1, (9, 5, first_unacked), &mut applied);
            assert_eq!(code(&reply), Some(ErrorCode::SessionExpired));
        }
        assert_eq!(applied, 0);
        assert!(sessions.is_empty(), "writes never open a session");
    }

    /// Issue 12 item 6: a write applied (reply lost) while an older one of the same client
    /// is still outstanding (so `first_unacked_seq` stays 1), then the session is evicted:
    /// the retry must not apply again. With sessions opened by a client's first write it
    /// opened a fresh session and applied a second time.
    #[test]
    fn a_retry_after_eviction_never_applies_twice_even_with_an_old_write_outstanding() {
        let mut sessions = Sessions::new(1, 10);
        let mut applied = 0;
        let c = register(&mut sessions, 1);
        // seq 1 hangs somewhere; seq 2 is applied but its reply is lost.
        let first = write(&mut sessions, 2, (c, 2, 1), &mut applied);
        assert!(first.error.is_none());
        register(&mut sessions, 3); // another client's session evicts c's
        assert!(sessions.get(c).is_none());
        let retry = write(&mut sessions, 4, (c, 2, 1), &mut applied);
        assert_eq!(code(&retry), Some(ErrorCode::SessionExpired));
        let hung = write(&mut sessions, 5, (c, 1, 1), &mut applied);
        assert_eq!(code(&hung), Some(ErrorCode::SessionExpired));
        assert_eq!(applied, 1, "applied exactly once");
    }

    #[test]
    fn eviction_removes_least_recently_active_session() {
        let mut sessions = Sessions::new(2, 10);
        let mut applied = 0;
        let one = register(&mut sessions, 1);
        let two = register(&mut sessions, 2);
        write(&mut sessions, 3, (one, 1, 1), &mut applied); // client one active again
        let three = register(&mut sessions, 4); // evicts client two
        assert!(sessions.get(one).is_some() && sessions.get(three).is_some());
        assert!(sessions.get(two).is_none());
        let reply = write(&mut sessions, 5, (two, 1, 1), &mut applied);
        assert_eq!(code(&reply), Some(ErrorCode::SessionExpired));
    }

    #[test]
    fn eviction_ties_break_by_client_id() {
        let mut sessions = Sessions::new(2, 10);
        for client_id in [20, 10] {
            let session = Session::from_parts(BTreeMap::new(), 1, LogIndex(5));
            sessions.insert_restored(client_id, session);
        }
        register(&mut sessions, 6);
        assert!(
            sessions.get(10).is_none(),
            "smaller client id evicted first on a tie"
        );
        assert!(sessions.get(20).is_some() && sessions.get(6).is_some());
    }

    #[test]
    fn same_operations_give_same_table() {
        let run = || {
            let mut sessions = Sessions::new(3, 4);
            let mut applied = 0;
            for i in 0..200u64 {
                let index = i + 1;
                if i % 11 == 0 {
                    sessions.register(LogIndex(index));
                    continue;
                }
                let client = (i * 7 % 5) * 11 + 1; // some registered, some evicted
                write(
                    &mut sessions,
                    index,
                    (client, i / 5 + 1, i / 10 + 1),
                    &mut applied,
                );
            }
            sessions
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn reply_bound_rejects_until_acknowledged() {
        let mut sessions = Sessions::new(10, 2);
        let mut applied = 0;
        let c = register(&mut sessions, 1);
        write(&mut sessions, 2, (c, 1, 1), &mut applied);
        write(&mut sessions, 3, (c, 2, 1), &mut applied);
        let rejected = write(&mut sessions, 4, (c, 3, 1), &mut applied);
        assert_eq!(code(&rejected), Some(ErrorCode::Unavailable));
        assert_eq!(applied, 2);
        // The retry acknowledges seq 1 and 2: room again, and it applies.
        let retried = write(&mut sessions, 5, (c, 3, 3), &mut applied);
        assert!(retried.error.is_none());
        assert_eq!(applied, 3);
    }

    #[test]
    fn first_unacked_above_seq_is_invalid() {
        let mut sessions = Sessions::new(10, 10);
        let mut applied = 0;
        let c = register(&mut sessions, 1);
        let reply = write(&mut sessions, 2, (c, 1, 2), &mut applied);
        assert_eq!(code(&reply), Some(ErrorCode::InvalidArgument));
        assert_eq!(applied, 0);
    }
}
