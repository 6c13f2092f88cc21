//! Requests waiting on the Raft log: writes wait for their exact (index, term) to be
//! applied; reads wait for the applied index to reach their read index.
//!
//! Both maps sit behind one small mutex with the applied index itself, so "check the
//! applied index, else register" and "advance the applied index, take who is now
//! satisfied" can never interleave badly. The lock is never held while replying.

use parking_lot::Mutex;
use proto::kv::{ErrorCode, GetResponse, KvError, WriteResponse};
use raft::{LogIndex, Term};
use rpc_framework::Reply;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A write waiting for its entry.
#[derive(Debug)]
pub(crate) struct WriteWaiter {
    pub(crate) term: Term,
    pub(crate) reply: Reply<WriteResponse>,
    pub(crate) deadline: Instant,
}

/// A read waiting for the applied index.
#[derive(Debug)]
pub(crate) struct ReadWaiter {
    pub(crate) key: bytes::Bytes,
    pub(crate) reply: ReadReply,
}

/// The reply of a Get, counted from the moment the read starts until it is answered, so
/// the number of reads in flight stays bounded. Dropping it unanswered answers
/// UNAVAILABLE (never leaves a client hanging) and uncounts it.
#[derive(Debug)]
pub(crate) struct ReadReply {
    reply: Option<Reply<GetResponse>>,
    inflight: Arc<AtomicUsize>,
}

impl ReadReply {
    /// Counts a new read in flight.
    pub(crate) fn new(reply: Reply<GetResponse>, inflight: Arc<AtomicUsize>) -> ReadReply {
        inflight.fetch_add(1, Ordering::Relaxed);
        ReadReply {
            reply: Some(reply),
            inflight,
        }
    }

    /// Answers the read.
    pub(crate) fn ok(mut self, response: GetResponse) {
        if let Some(reply) = self.reply.take() {
            reply.ok(response);
        }
    }
}

impl Drop for ReadReply {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            reply.ok(GetResponse {
                error: kv_error(ErrorCode::Unavailable, "read abandoned by the server"),
                found: false,
                value: bytes::Bytes::new(),
            });
        }
        self.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Inner {
    applied: LogIndex,
    writes: BTreeMap<LogIndex, WriteWaiter>,
    reads: BTreeMap<LogIndex, Vec<ReadWaiter>>,
}

/// The waiters of one server.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    inner: Mutex<Inner>,
}

/// An error reply.
pub(crate) fn kv_error(code: ErrorCode, message: impl Into<String>) -> Option<KvError> {
    Some(KvError {
        code: code as i32,
        message: message.into(),
        leader_id: 0,
        leader_addr: String::new(),
    })
}

impl Waiters {
    /// Registers a write proposed at (index, term). If a waiter already sat at `index`
    /// (an older term's proposal that lost its slot), it is returned to be failed.
    pub(crate) fn add_write(&self, index: LogIndex, waiter: WriteWaiter) -> Option<WriteWaiter> {
        self.inner.lock().writes.insert(index, waiter)
    }

    /// Number of writes waiting.
    pub(crate) fn pending_writes(&self) -> usize {
        self.inner.lock().writes.len()
    }

    /// Takes the write waiting at `index`, if any.
    pub(crate) fn take_write(&self, index: LogIndex) -> Option<WriteWaiter> {
        self.inner.lock().writes.remove(&index)
    }

    /// Takes every write waiter (leadership lost).
    pub(crate) fn take_all_writes(&self) -> Vec<WriteWaiter> {
        std::mem::take(&mut self.inner.lock().writes)
            .into_values()
            .collect()
    }

    /// Takes the writes whose deadline passed.
    pub(crate) fn take_expired_writes(&self, now: Instant) -> Vec<WriteWaiter> {
        let mut inner = self.inner.lock();
        let expired: Vec<LogIndex> = inner
            .writes
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(i, _)| *i)
            .collect();
        expired
            .into_iter()
            .filter_map(|i| inner.writes.remove(&i))
            .collect()
    }

    /// Returns the read back if it can be served now (applied >= index), else keeps it.
    pub(crate) fn add_read(&self, index: LogIndex, waiter: ReadWaiter) -> Option<ReadWaiter> {
        let mut inner = self.inner.lock();
        if inner.applied >= index {
            return Some(waiter);
        }
        inner.reads.entry(index).or_default().push(waiter);
        None
    }

    /// Queues every read from now on, whatever its index, until the next
    /// [`Waiters::advance_applied`] (the state is being replaced by a snapshot).
    pub(crate) fn hold_reads(&self) {
        self.inner.lock().applied = LogIndex::ZERO;
    }

    /// Records the new applied index; returns the reads that may now be served.
    pub(crate) fn advance_applied(&self, applied: LogIndex) -> Vec<ReadWaiter> {
        let mut inner = self.inner.lock();
        inner.applied = applied;
        let later = inner.reads.split_off(&applied.next());
        let ready = std::mem::replace(&mut inner.reads, later);
        ready.into_values().flatten().collect()
    }

    /// Takes every read (shutdown).
    pub(crate) fn take_all_reads(&self) -> Vec<ReadWaiter> {
        std::mem::take(&mut self.inner.lock().reads)
            .into_values()
            .flatten()
            .collect()
    }
}
