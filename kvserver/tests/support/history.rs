//! Records every clerk operation of a test into a lincheck history and checks it.
//!
//! Each call is stamped just before the clerk is called and just after it returns. A
//! success is recorded with its output; a failure whose outcome is unknown
//! (`definite == false`) is recorded with `KvOutput::Unknown` and return time infinity (it
//! may take effect any time after its call, or never); a failure that certainly did not take
//! effect (`definite == true`) is not recorded. A test never loses track of a call.

use bytes::Bytes;
use clerk::{Clerk, ClerkError};
use lincheck::{check_with_stats, Budget, CheckResult, KvInput, KvModel, KvOutput, KvRecorder};
use std::sync::Arc;

/// Search steps allowed for one check. The histories of these tests need far fewer (per-key
/// partitions, a few thousand operations); a run out of budget fails the test, never passes.
pub const CHECK_STEPS: u64 = 2_000_000;

/// How one recorded call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Done(T),
    /// May or may not have taken effect (recorded as unknown).
    Unknown(ClerkError),
    /// Certainly did not take effect (not recorded).
    Failed(ClerkError),
}

impl<T> Outcome<T> {
    pub fn is_done(&self) -> bool {
        matches!(self, Outcome::Done(_))
    }

    /// Whether a write with this outcome took effect.
    pub fn applied(&self) -> super::appends::Applied {
        match self {
            Outcome::Done(_) => super::appends::Applied::Yes,
            Outcome::Unknown(_) => super::appends::Applied::Maybe,
            Outcome::Failed(_) => super::appends::Applied::No,
        }
    }
}

/// A shared recorder of one test's operations.
#[derive(Debug, Clone, Default)]
pub struct History {
    recorder: Arc<KvRecorder>,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    /// `Get(key)` by test client `client`.
    pub fn get(&self, clerk: &Clerk, client: u64, key: &str) -> Outcome<Option<Bytes>> {
        let call = self.recorder.begin(client, KvInput::get(key));
        match clerk.get(key.to_owned()) {
            Ok(value) => {
                self.recorder
                    .finish(call, KvOutput::Value(value.as_ref().map(|v| v.to_vec())));
                Outcome::Done(value)
            }
            Err(e) => self.failed(call, e),
        }
    }

    /// `Put(key, value)` by test client `client`.
    pub fn put(&self, clerk: &Clerk, client: u64, key: &str, value: &str) -> Outcome<()> {
        let call = self.recorder.begin(client, KvInput::put(key, value));
        match clerk.put(key.to_owned(), value.to_owned()) {
            Ok(()) => {
                self.recorder.finish(call, KvOutput::Ok);
                Outcome::Done(())
            }
            Err(e) => self.failed(call, e),
        }
    }

    /// `Append(key, value)` by test client `client`.
    pub fn append(&self, clerk: &Clerk, client: u64, key: &str, value: &str) -> Outcome<()> {
        let call = self.recorder.begin(client, KvInput::append(key, value));
        match clerk.append(key.to_owned(), value.to_owned()) {
            Ok(()) => {
                self.recorder.finish(call, KvOutput::Ok);
                Outcome::Done(())
            }
            Err(e) => self.failed(call, e),
        }
    }

    fn failed<T>(&self, call: lincheck::PendingCall<KvInput>, e: ClerkError) -> Outcome<T> {
        if e.definite {
            // Never took effect: leaving it out is exact. (`call` is dropped unrecorded.)
            drop(call);
            Outcome::Failed(e)
        } else {
            self.recorder.finish_unknown(call, KvOutput::Unknown);
            Outcome::Unknown(e)
        }
    }

    /// The operations recorded so far.
    pub fn operations(&self) -> Vec<lincheck::KvOperation> {
        self.recorder.snapshot()
    }

    /// Checks the history; panics with the checker's explanation unless it is proven
    /// linearizable (a budget run out is a failure too).
    pub fn assert_linearizable(&self) {
        let ops = self.operations();
        let (result, stats) = check_with_stats(&KvModel, &ops, Budget::steps(CHECK_STEPS));
        match result {
            CheckResult::Ok => {
                let unknown = ops.iter().filter(|o| o.is_outcome_unknown()).count();
                eprintln!(
                    "history: {} operations ({unknown} unknown), {} keys, linearizable \
                     ({} search steps)",
                    ops.len(),
                    stats.partitions,
                    stats.steps
                );
            }
            other => panic!(
                "history of {} operations failed the linearizability check:\n{other}",
                ops.len()
            ),
        }
    }
}
