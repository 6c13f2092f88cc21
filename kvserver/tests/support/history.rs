//! Records every clerk operation of a test into a lincheck history and checks it.
//!
//! Each call is stamped just before the clerk is called and just after it returns. A
//! success is recorded with its output; a failure whose outcome is unknown
//! (`definite == false`) is recorded with `KvOutput::Unknown` and return time infinity (it
//! may take effect any time after its call, or never); a failure that certainly did not take
//! effect (`definite == true`) is not recorded. A test never loses track of a call.

use bytes::Bytes;
use clerk::{Clerk, ClerkError};
use lincheck::{
    check_with_stats, Budget, CheckResult, KvInput, KvModel, KvOperation, KvOutput, KvRecorder,
};
use parking_lot::Mutex;
use std::collections::BTreeMap;
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
    /// Writes that failed definitely (not in the history), kept to explain a failed check.
    definite_failures: Arc<Mutex<Vec<String>>>,
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

    /// `Delete(key)` by test client `client`; `Done(existed)`.
    pub fn delete(&self, clerk: &Clerk, client: u64, key: &str) -> Outcome<bool> {
        let call = self.recorder.begin(client, KvInput::delete(key));
        match clerk.delete(key.to_owned()) {
            Ok(existed) => {
                self.recorder.finish(call, KvOutput::Swapped(existed));
                Outcome::Done(existed)
            }
            Err(e) => self.failed(call, e),
        }
    }

    /// `Cas(key, expected, new_value)` by test client `client`; `Done(swapped)`.
    pub fn cas(
        &self,
        clerk: &Clerk,
        client: u64,
        key: &str,
        expected: &str,
        new_value: &str,
    ) -> Outcome<bool> {
        let call = self
            .recorder
            .begin(client, KvInput::cas(key, expected, new_value));
        match clerk.cas(key.to_owned(), expected.to_owned(), new_value.to_owned()) {
            Ok(swapped) => {
                self.recorder.finish(call, KvOutput::Swapped(swapped));
                Outcome::Done(swapped)
            }
            Err(e) => self.failed(call, e),
        }
    }

    fn failed<T>(&self, call: lincheck::PendingCall<KvInput>, e: ClerkError) -> Outcome<T> {
        if e.definite {
            // Never took effect: leaving it out is exact. (`call` is dropped unrecorded.)
            if !matches!(call.input(), KvInput::Get { .. }) {
                let line = format!("client {} {:?}: {e}", call.client_id(), call.input());
                self.definite_failures.lock().push(line);
            }
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
        let all = self.operations();
        let unknown = all.iter().filter(|o| o.is_outcome_unknown()).count();
        let ops = without_unobserved_unknown_appends(&all);
        let (result, stats) = check_with_stats(&KvModel, &ops, Budget::steps(CHECK_STEPS));
        match result {
            CheckResult::Ok => eprintln!(
                "history: {} operations ({unknown} unknown, {} of them unobserved appends left \
                 out), {} keys, linearizable ({} search steps)",
                all.len(),
                all.len() - ops.len(),
                stats.partitions,
                stats.steps
            ),
            other => panic!(
                "history of {} operations failed the linearizability check:\n{other}\n\
                 writes that failed definitely (not in the history):\n{}",
                ops.len(),
                self.definite_failures.lock().join("\n")
            ),
        }
    }
}

/// Leaves out the Appends with an unknown outcome whose appended bytes no completed Get of
/// that key ever returned. Checking the rest is equivalent, and avoids a search that tries
/// every never-applied append at every point of the history (exponential in their number).
///
/// Why it is equivalent (for histories of Get, Put and Append only): an operation with an
/// unknown outcome may also never take effect, so a linearization without it is one with it.
/// Conversely, take a linearization that applies such an Append `u`: its bytes stay in the
/// value until a later Put replaces it, and no Get is placed in between (it would have
/// returned them). Drop `u`: every Get still sees the same value, and Puts and Appends
/// accept any state. With Cas or Delete (whose results depend on the state) this does not
/// hold, so such histories are checked whole.
fn without_unobserved_unknown_appends(ops: &[KvOperation]) -> Vec<KvOperation> {
    let only_get_put_append = ops.iter().all(|o| {
        matches!(
            o.input,
            KvInput::Get { .. } | KvInput::Put { .. } | KvInput::Append { .. }
        )
    });
    if !only_get_put_append {
        return ops.to_vec();
    }
    let mut seen: BTreeMap<&[u8], Vec<&[u8]>> = BTreeMap::new();
    for o in ops {
        if let (KvInput::Get { key }, KvOutput::Value(Some(value))) = (&o.input, &o.output) {
            seen.entry(key.as_slice())
                .or_default()
                .push(value.as_slice());
        }
    }
    let observed = |key: &[u8], bytes: &[u8]| {
        seen.get(key)
            .is_some_and(|values| values.iter().any(|v| contains(v, bytes)))
    };
    ops.iter()
        .filter(|o| match &o.input {
            KvInput::Append { key, value } if o.is_outcome_unknown() => observed(key, value),
            _ => true,
        })
        .cloned()
        .collect()
}

/// Whether `needle` occurs in `haystack` (through `str::contains`, which the prebuilt,
/// optimized std runs fast even in debug builds, when both are UTF-8).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    match (std::str::from_utf8(haystack), std::str::from_utf8(needle)) {
        (Ok(h), Ok(n)) => h.contains(n),
        _ => haystack.windows(needle.len().max(1)).any(|w| w == needle),
    }
}
