//! Histories: what clients asked, what they saw, and when; plus a thread-safe recorder.
//!
//! An [`Operation`] is one client call with its invocation time `call` and response time
//! `ret`. Times are any monotonic counter (the recorder uses a shared atomic counter); only
//! their order matters. Operation A precedes B in real time iff `A.ret < B.call`; equal
//! timestamps count as overlapping.
//!
//! An operation whose outcome is unknown (the client timed out, or crashed, or the server
//! said "may or may not have happened") is recorded with `ret == RETURN_UNKNOWN`
//! (`u64::MAX`, "returns after everything else") and the model's unknown output. It may then
//! take effect at any point after its call, including "never" (which is indistinguishable
//! from "after every other operation"). This is how Porcupine models timed-out calls.
//!
//! A write that *definitely* did not take effect (e.g. rejected by a non-leader) must simply
//! not be recorded.
//!
//! Invariant kept by [`HistoryRecorder`]: every recorded operation has `call < ret`, and
//! timestamps are unique, so the recorded real-time order is exactly the order in which the
//! recorder's `begin`/`finish` calls happened.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// The return time of an operation whose outcome is unknown: after every other event.
pub const RETURN_UNKNOWN: u64 = u64::MAX;

/// One client operation: input, observed output, and its real-time interval `[call, ret]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// The client that issued it (informational: used in explanations only).
    pub client_id: u64,
    /// What was asked.
    pub input: I,
    /// What was observed (or the model's "unknown" marker).
    pub output: O,
    /// Invocation time; must be `<= ret`.
    pub call: u64,
    /// Response time, or [`RETURN_UNKNOWN`] when the outcome is unknown.
    pub ret: u64,
}

impl<I, O> Operation<I, O> {
    /// An operation that completed at `ret` with `output`.
    pub fn new(client_id: u64, input: I, output: O, call: u64, ret: u64) -> Self {
        Self {
            client_id,
            input,
            output,
            call,
            ret,
        }
    }

    /// An operation whose outcome is unknown: it returns "never" ([`RETURN_UNKNOWN`]).
    /// `output` should be the model's unknown marker (e.g. `KvOutput::Unknown`).
    pub fn unknown(client_id: u64, input: I, output: O, call: u64) -> Self {
        Self {
            client_id,
            input,
            output,
            call,
            ret: RETURN_UNKNOWN,
        }
    }

    /// Whether this operation never returned (its return time is [`RETURN_UNKNOWN`]).
    pub fn is_outcome_unknown(&self) -> bool {
        self.ret == RETURN_UNKNOWN
    }
}

/// A call that has started but not yet been finished: hand it back to
/// [`HistoryRecorder::finish`] or [`HistoryRecorder::finish_unknown`].
///
/// Dropping it records nothing, which makes the history miss an operation that may have taken
/// effect; a test should finish every call it begins (use `finish_unknown` when in doubt).
#[derive(Debug)]
#[must_use = "a begun call must be finished (or finished as unknown) to be recorded"]
pub struct PendingCall<I> {
    client_id: u64,
    input: I,
    call: u64,
}

impl<I> PendingCall<I> {
    /// The client that issued the call.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// What was asked.
    pub fn input(&self) -> &I {
        &self.input
    }

    /// The invocation timestamp.
    pub fn call_time(&self) -> u64 {
        self.call
    }
}

/// Records operations from many threads: `begin` before sending a request, `finish` after
/// its response arrives.
///
/// Cheap enough to wrap every client call: one atomic increment per event and one short
/// mutex-protected push per operation.
#[derive(Debug)]
pub struct HistoryRecorder<I, O> {
    clock: AtomicU64,
    // Unbounded on purpose: it holds exactly the operations the test issued, and the test
    // decides how many that is.
    operations: Mutex<Vec<Operation<I, O>>>,
}

impl<I, O> Default for HistoryRecorder<I, O> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I, O> HistoryRecorder<I, O> {
    /// An empty recorder whose clock starts at 1.
    pub fn new() -> Self {
        Self {
            clock: AtomicU64::new(1),
            operations: Mutex::new(Vec::new()),
        }
    }

    /// Stamps the invocation of `input` by `client_id`. Call it before the request leaves.
    pub fn begin(&self, client_id: u64, input: I) -> PendingCall<I> {
        PendingCall {
            client_id,
            input,
            call: self.tick(),
        }
    }

    /// Records `pending` as completed with `output`. Call it after the response arrived.
    pub fn finish(&self, pending: PendingCall<I>, output: O) {
        let ret = self.tick();
        self.push(pending, output, ret);
    }

    /// Records `pending` as having an unknown outcome (timed out, client crashed): it may
    /// take effect at any point after its call, or never. `output` should be the model's
    /// unknown marker (e.g. `KvOutput::Unknown`).
    pub fn finish_unknown(&self, pending: PendingCall<I>, output: O) {
        self.push(pending, output, RETURN_UNKNOWN);
    }

    /// The number of operations recorded so far.
    pub fn len(&self) -> usize {
        self.operations.lock().len()
    }

    /// Whether nothing has been recorded yet.
    pub fn is_empty(&self) -> bool {
        self.operations.lock().is_empty()
    }

    /// A copy of the operations recorded so far, in the order they finished.
    pub fn snapshot(&self) -> Vec<Operation<I, O>>
    where
        I: Clone,
        O: Clone,
    {
        self.operations.lock().clone()
    }

    /// Consumes the recorder and returns the history, in the order operations finished.
    pub fn into_history(self) -> Vec<Operation<I, O>> {
        self.operations.into_inner()
    }

    fn tick(&self) -> u64 {
        // SeqCst read-modify-writes form one total order that respects real time across
        // threads, which is what the real-time order of the history is built from.
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    fn push(&self, pending: PendingCall<I>, output: O, ret: u64) {
        let PendingCall {
            client_id,
            input,
            call,
        } = pending;
        let operation = Operation {
            client_id,
            input,
            output,
            call,
            ret,
        };
        self.operations.lock().push(operation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sequential_calls_get_increasing_disjoint_intervals() {
        let recorder = HistoryRecorder::<&str, u32>::new();
        let first = recorder.begin(1, "a");
        recorder.finish(first, 10);
        let second = recorder.begin(1, "b");
        recorder.finish(second, 20);
        let history = recorder.into_history();
        assert_eq!(history.len(), 2);
        assert!(history[0].call < history[0].ret);
        assert!(
            history[0].ret < history[1].call,
            "second call starts after first returns"
        );
        assert!(history[1].call < history[1].ret);
    }

    #[test]
    fn finish_unknown_records_infinite_return() {
        let recorder = HistoryRecorder::<&str, &str>::new();
        let pending = recorder.begin(7, "put");
        assert_eq!(pending.client_id(), 7);
        assert_eq!(*pending.input(), "put");
        recorder.finish_unknown(pending, "unknown");
        let history = recorder.snapshot();
        assert_eq!(history[0].ret, RETURN_UNKNOWN);
        assert!(history[0].is_outcome_unknown());
    }

    #[test]
    fn concurrent_threads_record_every_operation_with_unique_timestamps() {
        let recorder = Arc::new(HistoryRecorder::<u64, u64>::new());
        let threads: Vec<_> = (0..4u64)
            .map(|client| {
                let recorder = Arc::clone(&recorder);
                std::thread::spawn(move || {
                    for i in 0..250 {
                        let pending = recorder.begin(client, i);
                        recorder.finish(pending, i);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let history = Arc::into_inner(recorder).unwrap().into_history();
        assert_eq!(history.len(), 1000);
        let mut stamps: Vec<u64> = history.iter().flat_map(|op| [op.call, op.ret]).collect();
        stamps.sort_unstable();
        stamps.dedup();
        assert_eq!(stamps.len(), 2000, "every event has its own timestamp");
        // Each client's operations are sequential, so its intervals must not overlap.
        for client in 0..4 {
            let mut own: Vec<_> = history.iter().filter(|op| op.client_id == client).collect();
            own.sort_by_key(|op| op.call);
            assert!(own.windows(2).all(|pair| pair[0].ret < pair[1].call));
        }
    }
}
