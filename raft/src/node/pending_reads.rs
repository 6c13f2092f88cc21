//! Reads waiting for the core to confirm leadership, each with its deadline.
//!
//! A read is keyed by the context the executor gave the core; it ends once: served when
//! its `ReadState` comes out of a Ready, failed when the core drops it or leadership is
//! lost, or timed out. Bounded by the node's input queue: each read entered through it.

use super::input::ReadDone;
use super::types::NodeError;
use crate::types::LogIndex;
use std::collections::BTreeMap;
use std::time::Duration;

struct PendingRead {
    done: ReadDone,
    deadline: Duration,
}

/// Reads in flight in the core.
#[derive(Default)]
pub(crate) struct PendingReads {
    reads: BTreeMap<u64, PendingRead>,
    next_ctx: u64,
}

impl std::fmt::Debug for PendingReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingReads")
            .field("in_flight", &self.reads.len())
            .finish()
    }
}

impl PendingReads {
    /// The context for the next read.
    pub(crate) fn next_ctx(&mut self) -> u64 {
        self.next_ctx += 1;
        self.next_ctx
    }

    /// The core took read `ctx`; it must end by `deadline` (clock time).
    pub(crate) fn started(&mut self, ctx: u64, done: ReadDone, deadline: Duration) {
        self.reads.insert(ctx, PendingRead { done, deadline });
    }

    /// Ends read `ctx` with `result` (ignored if it already ended).
    pub(crate) fn finish(&mut self, ctx: u64, result: Result<LogIndex, NodeError>) {
        if let Some(read) = self.reads.remove(&ctx) {
            (read.done)(result);
        }
    }

    /// Fails the reads whose deadline passed at `now`.
    pub(crate) fn expire(&mut self, now: Duration) {
        let expired: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(ctx, _)| *ctx)
            .collect();
        for ctx in expired {
            self.finish(ctx, Err(NodeError::Timeout));
        }
    }

    /// Fails every read with `error`.
    pub(crate) fn fail_all(&mut self, error: &NodeError) {
        for (_, read) in std::mem::take(&mut self.reads) {
            (read.done)(Err(error.clone()));
        }
    }
}
