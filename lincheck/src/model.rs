//! The sequential specification a history is checked against.
//!
//! A [`Model`] is a deterministic state machine: from a state, an operation's input and its
//! observed output, it either yields the next state or says that output was impossible. The
//! checker ([`crate::check`]) searches for an order of the operations, consistent with real
//! time, that the model accepts step by step.
//!
//! Invariants a model must keep (the checker relies on them):
//! - `step` is a pure function of its arguments: same state, input and output, same answer.
//! - `State`'s `Eq` and `Hash` agree (equal states hash equally): the checker memoizes
//!   `(set of linearized operations, state)` pairs and prunes a branch it has seen before.
//! - `partition` splits the history into independent parts (P-compositionality): a history is
//!   linearizable if and only if every part is. Per-key partitioning of a key-value store is the
//!   classic example (Herlihy and Wing's locality).

use std::fmt::Debug;
use std::hash::Hash;

use crate::history::Operation;

/// A sequential specification: the object a concurrent history must be equivalent to.
///
/// # Correctness
/// - `step` must be deterministic and side-effect free.
/// - `Eq` and `Hash` on [`Model::State`] must agree, and `Eq` must mean "indistinguishable by
///   every future operation" (the checker treats equal states as interchangeable).
/// - An operation whose outcome is unknown (its client timed out or crashed) should be
///   accepted from any state, applying its effect as if it happened: the checker lets it take
///   effect anywhere after its call, and "never happened" is the same as "happened after every
///   observed operation". See [`Operation::unknown`] for how such operations are recorded.
/// - [`Model::partition`] must only group operations that can be checked independently.
/// - [`Model::is_read_only`] may only say `true` for operations that never change the state,
///   and [`Model::may_become_acceptable`] may only say `false` when no pending operations can
///   help.
pub trait Model {
    /// What a client asked for (e.g. `Get(key)`).
    type Input: Debug;
    /// What the client observed (e.g. the value read), or a marker for "unknown".
    type Output: Debug;
    /// The sequential object's state. Cloned on every successful step, so keep it cheap to
    /// clone and hash (share large values behind an `Arc`, cache their hash).
    type State: Clone + Eq + Hash + Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Applies `input` with observed `output` to `state`.
    ///
    /// Returns the next state, or `None` when `output` cannot be produced by `input` from
    /// `state` (e.g. a read returning a value other than the current one).
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;

    /// Whether `input` with `output` never changes the state: for every state `s`, `step`
    /// returns `None` or a state equal to `s` (a read, a failed compare-and-swap).
    ///
    /// Optional, and only a speed-up: the checker linearizes such an operation as soon as the
    /// model accepts it, without trying alternatives first. That is sound because moving an
    /// accepted, state-preserving operation that is free to go next to the front of any valid
    /// continuation leaves that continuation valid. Answering `true` for an operation that
    /// can change the state makes the checker wrong; the default, `false`, is always safe.
    fn is_read_only(&self, _input: &Self::Input, _output: &Self::Output) -> bool {
        false
    }

    /// Optional pruning, purely a speed-up: can `(input, output)` still become acceptable?
    ///
    /// The checker calls this for an operation that still has to be linearized, before its
    /// return, after the current state. `pending` yields every other operation that may still
    /// be linearized before it. Return `false` only if no sequence of some of the `pending`
    /// operations, applied from `state`, reaches a state in which `step` accepts `(input,
    /// output)`; the checker then abandons this branch at once instead of trying every order
    /// of the pending operations first. When unsure, return `true` (the default, which never
    /// prunes). A wrong `false` makes the checker wrong.
    fn may_become_acceptable(
        &self,
        _state: &Self::State,
        _input: &Self::Input,
        _output: &Self::Output,
        _pending: &mut dyn Iterator<Item = (&Self::Input, &Self::Output)>,
    ) -> bool {
        true
    }

    /// Splits a history into independently checkable parts, as lists of indexes into
    /// `history`.
    ///
    /// Every index may appear in at most one part. An operation left out of every part is not
    /// checked, which is only sound if it cannot influence any other operation (e.g. a read
    /// whose result is unknown). The default is one part holding everything.
    fn partition(&self, history: &[Operation<Self::Input, Self::Output>]) -> Vec<Vec<usize>> {
        vec![(0..history.len()).collect()]
    }
}
