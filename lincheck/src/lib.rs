//! lincheck: a linearizability checker for the histories raftkv's tests record.
//!
//! A history is linearizable if every operation appears to take effect at one instant between
//! its call and its return, in an order the sequential specification (the [`Model`]) accepts.
//! This crate checks that with the Wing-Gong/Lowe search (as in Porcupine): a depth-first
//! search for such an order that linearizes operations "just in time" (before the first
//! pending return), memoizes every `(set of linearized operations, model state)` it reaches,
//! and checks each partition of the history separately (P-compositionality; for the KV model,
//! one partition per key).
//!
//! # Pieces
//! - [`Model`]: the sequential specification; [`KvModel`] is raftkv's (Get, Put, Append,
//!   Delete, Cas, with unknown outcomes).
//! - [`Operation`] and [`HistoryRecorder`]: a history and a thread-safe way to record one.
//!   Operations whose outcome is unknown (timeouts, crashes) return at [`RETURN_UNKNOWN`].
//! - [`check`] with a [`Budget`] -> [`CheckResult`]: `Ok`, `Illegal` (with an
//!   [`Explanation`]), or `Unknown` when the budget ran out. **`Unknown` is never a pass**:
//!   fail the test (its `Display` says why) or retry with a larger budget.
//!
//! # Keys and values
//! [`KvInput`] and [`KvOutput`] hold bytes (`Vec<u8>`), as on the wire; their constructors
//! take anything `Into<Vec<u8>>` (`KvInput::put("k", "v")`), and `Debug` prints bytes as
//! escaped text. A `Cas` with an empty `expected` means "the key is absent".
//!
//! # Recording a history from a test
//! Wrap every client call: `begin` just before the request goes out, `finish` after the
//! reply. If the call's outcome is unknown (deadline passed, leadership lost, session expired),
//! use `finish_unknown` with [`KvOutput::Unknown`]. If it definitely did not take effect
//! (e.g. `NOT_LEADER` before anything was proposed), do not record it at all.
//!
//! # Cost
//! Checking is NP-complete in general; what matters in practice is how many operations on
//! one key are in flight at once, and how many operations with unknown outcome are pending.
//! Measured on a shared 2-core machine (release build; `cargo bench -p lincheck`):
//! 5 clients x 2000 operations over 10 keys (~1000 per key, 6.824-sized) checks in ~15 ms
//! (~23k search steps), also with 2% unknown outcomes; 8 clients on one key with 4% unknown
//! outcomes, or 10 clients on one key, in ~15 ms; appends growing one value to 150 KB in
//! ~0.1-0.3 s. Much heavier histories (20 clients hammering one key) can exhaust the default
//! budget: that is reported as [`CheckResult::Unknown`], never as a pass. Spread load over
//! keys, or pass a bigger [`Budget`].
//!
//! # Quick start
//! ```
//! use lincheck::{check, Budget, CheckResult, KvInput, KvModel, KvOutput, KvRecorder};
//!
//! let recorder = KvRecorder::new(); // share it between client threads with an Arc
//!
//! // Client 1 writes x = "1"; client 2 reads concurrently and sees it.
//! let put = recorder.begin(1, KvInput::put("x", "1"));
//! let get = recorder.begin(2, KvInput::get("x"));
//! recorder.finish(put, KvOutput::Ok);
//! recorder.finish(get, KvOutput::found("1"));
//!
//! // Client 1 appends but times out: the append may or may not have happened.
//! let append = recorder.begin(1, KvInput::append("x", "2"));
//! recorder.finish_unknown(append, KvOutput::Unknown);
//!
//! let history = recorder.into_history();
//! let result = check(&KvModel, &history, Budget::default());
//! assert!(result.is_ok(), "{result}");
//!
//! // A read of a value nobody wrote is caught, with an explanation.
//! let mut broken = history.clone();
//! broken[1].output = KvOutput::found("never written");
//! match check(&KvModel, &broken, Budget::default()) {
//!     CheckResult::Illegal { explanation, .. } => assert_eq!(explanation.blocked, 1),
//!     other => panic!("expected Illegal, got {other}"),
//! }
//! ```

#![deny(missing_docs)]

mod budget;
mod checker;
mod history;
mod kv;
mod model;
mod report;
mod search;

pub use budget::{Budget, BudgetLimit};
pub use checker::{check, check_with_stats, CheckResult, CheckStats};
pub use history::{HistoryRecorder, Operation, PendingCall, RETURN_UNKNOWN};
pub use kv::{KvInput, KvModel, KvOperation, KvOutput, KvRecorder, KvState};
pub use model::Model;
pub use report::{Candidate, Explanation};
