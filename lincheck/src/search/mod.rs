//! The Wing-Gong/Lowe linearizability search over one partition, with memoization.
//!
//! The partition's call and return entries form a time-ordered list (`entries.rs`). The
//! search walks it from the front:
//! - at a call entry, it tries to linearize that operation now: if the model accepts it and
//!   the resulting `(set of linearized operations, state)` was never seen before (`memo.rs`),
//!   the operation's two entries are lifted out of the list, the old state is pushed on a
//!   stack, and the walk restarts from the front;
//! - at a return entry, that operation should already have been linearized (its deadline has
//!   passed), so the search backtracks: it pops the last linearized operation, puts its
//!   entries back, and tries the next candidate after it.
//!
//! The history is linearizable iff the list empties; it is not iff a return entry is reached
//! with nothing left to backtrack. The memo makes every configuration visited at most once.
//!
//! Two speed-ups on top, neither of which changes a verdict (a property test checks this
//! against the plain search):
//! - Read-first: after each linearization the walk first looks only at state-preserving
//!   candidates (`Model::is_read_only`). One the model accepts is linearized at once and never
//!   swapped for an alternative on backtracking: any valid continuation stays valid with that
//!   read moved to its front (nothing that must precede it is pending, and it changes
//!   nothing). Otherwise writes the model always accepts (appends) get tried before the reads
//!   that must precede them, and the search wanders through subsets of those reads.
//! - Pruning: before trying writes, the search asks the model (`Model::may_become_acceptable`)
//!   whether the operation due first, and the next few reads due, can still be accepted after
//!   some of the operations allowed to precede them. If one cannot, the configuration is a
//!   dead end. A read's value usually fixes the order of the writes before it, so a wrong order
//!   of appends, or an unknown-outcome append that never happened, is abandoned at once
//!   instead of after every order of the other pending writes was tried.
//!
//! The order candidates are tried in (call order) affects only speed. Trying unknown-outcome
//! operations last, or the operation due first before the others, was measured to be much
//! slower.

mod entries;
mod memo;

use crate::budget::StepMeter;
use crate::history::Operation;
use crate::model::Model;
use entries::{EntryList, NIL};
use memo::{LinearizedSet, Memo};

/// How far past the first return entry the search looks for pending reads to ask the model
/// about (`Search::find_hopeless`), and how many it asks about at most. Measured: asking about
/// 4 reads instead of 1 cuts the steps on 10 clients sharing one key by 10x or more; looking
/// further adds little.
const LOOKAHEAD_ENTRIES: usize = 128;
const LOOKAHEAD_READS: usize = 4;

/// The furthest point the search reached: the longest linearizable prefix it found and the
/// operation whose return it could not get past.
#[derive(Debug, Clone)]
pub(crate) struct Deepest<S> {
    /// Partition-local indexes of the linearized operations, in linearization order.
    pub linearized: Vec<usize>,
    /// The model state after `linearized`.
    pub state: S,
    /// The operation that could not be linearized before its return from there.
    pub blocked: usize,
    /// Every operation not linearized at that point whose call entry comes before `blocked`'s
    /// return entry (the ones that could go next), in call order. Includes `blocked`.
    pub candidates: Vec<usize>,
}

/// How the search of one partition ended.
#[derive(Debug)]
pub(crate) enum SearchOutcome<S> {
    /// A linearization exists.
    Linearizable,
    /// No linearization exists; `Deepest` says where every attempt got furthest.
    NotLinearizable(Deepest<S>),
    /// The budget ran out before the search finished.
    OutOfBudget(crate::budget::BudgetLimit),
}

/// One linearized operation on the search stack.
#[derive(Debug)]
struct Frame<S> {
    /// Its call entry.
    call: usize,
    /// The state before it.
    previous: S,
    /// The phase it was linearized in. `Reads` frames were forced by the read-first
    /// reduction: no alternative needs trying in their place.
    phase: Phase,
}

/// Which candidates a walk from the list head considers; also each operation's class.
/// After every linearization the walk restarts in `Reads`; when it reaches the first return
/// entry it asks the model whether that operation can still be linearized in time
/// (`Model::may_become_acceptable`) and, if so, goes on in `Writes`; when it reaches that
/// entry again it backtracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// State-preserving operations (`Model::is_read_only`), committed to as soon as the model
    /// accepts one.
    Reads,
    /// Every other operation, in call order.
    Writes,
}

/// What happened when the search tried to linearize one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Linearized,
    Rejected,
    SeenBefore,
}

/// Where the walk is: an entry, and the phase it is in.
type Cursor = (usize, Phase);

/// The state of one partition's search.
struct Search<'a, M: Model> {
    model: &'a M,
    ops: &'a [&'a Operation<M::Input, M::Output>],
    /// Each operation's phase.
    class: Vec<Phase>,
    list: EntryList,
    linearized: LinearizedSet,
    memo: Memo<M::State>,
    /// Linearized operations, in linearization order.
    stack: Vec<Frame<M::State>>,
    state: M::State,
    deepest: Option<Deepest<M::State>>,
}

/// Searches for a linearization of `ops` (one partition) under `model`.
pub(crate) fn search_partition<M: Model>(
    model: &M,
    ops: &[&Operation<M::Input, M::Output>],
    meter: &mut StepMeter,
) -> SearchOutcome<M::State> {
    let intervals: Vec<(u64, u64)> = ops.iter().map(|op| (op.call, op.ret)).collect();
    let class = ops
        .iter()
        .map(|op| match model.is_read_only(&op.input, &op.output) {
            true => Phase::Reads,
            false => Phase::Writes,
        })
        .collect();
    let mut search = Search {
        model,
        ops,
        class,
        list: EntryList::new(&intervals),
        linearized: LinearizedSet::new(ops.len()),
        memo: Memo::new(ops.len().div_ceil(64)),
        stack: Vec::with_capacity(ops.len()),
        state: model.init(),
        deepest: None,
    };
    let outcome = search.run(meter);
    meter.memo_entries += search.memo.len();
    outcome
}

impl<M: Model> Search<'_, M> {
    /// The walk; see [`Phase`] for the order candidates are tried in.
    fn run(&mut self, meter: &mut StepMeter) -> SearchOutcome<M::State> {
        let mut cursor = (self.list.first(), Phase::Reads);
        while !self.list.is_empty() {
            if let Err(limit) = meter.spend() {
                return SearchOutcome::OutOfBudget(limit);
            }
            let (entry, phase) = cursor;
            assert!(
                entry != NIL,
                "lincheck: the walk ran off the end of the entry list"
            );
            let next = if self.list.is_call(entry) {
                self.visit_call(entry, phase)
            } else if phase == Phase::Writes {
                // A return entry: its operation's deadline passed before it was linearized.
                self.note_depth(entry);
                None
            } else if let Some(hopeless) = self.find_hopeless(entry) {
                self.note_depth(hopeless);
                None
            } else {
                Some((self.list.first(), Phase::Writes))
            };
            cursor = match next.or_else(|| self.backtrack()) {
                Some(cursor) => cursor,
                None => return SearchOutcome::NotLinearizable(self.take_deepest(entry)),
            };
        }
        SearchOutcome::Linearizable
    }

    /// Visits a call entry in `phase`; returns where to go next, or `None` if this
    /// configuration is a dead end.
    fn visit_call(&mut self, call: usize, phase: Phase) -> Option<Cursor> {
        if self.class[self.list.op[call]] != phase {
            return Some((self.list.next[call], phase));
        }
        match self.attempt(call, phase) {
            Attempt::Linearized => Some((self.list.first(), Phase::Reads)),
            Attempt::Rejected => Some((self.list.next[call], phase)),
            // Committing to a read is sound (see the module docs), so if the configuration
            // after it was already explored and failed, this one fails too.
            Attempt::SeenBefore if phase == Phase::Reads => None,
            Attempt::SeenBefore => Some((self.list.next[call], phase)),
        }
    }

    /// Before exploring writes at this configuration, asks the model whether the operation
    /// with the earliest pending return (`first_return`), or one of the next few pending reads
    /// to return, can no longer be linearized in time; returns that one's return entry. Reads
    /// are worth asking about because each one usually fixes the order of the writes before
    /// it, long before the walk reaches it.
    fn find_hopeless(&self, first_return: usize) -> Option<usize> {
        let blocked = self.ops[self.list.op[first_return]];
        // A read-only one reaching here was already rejected by the `Reads` walk.
        let rejected = self.class[self.list.op[first_return]] == Phase::Reads
            || self
                .model
                .step(&self.state, &blocked.input, &blocked.output)
                .is_none();
        if rejected && !self.may_be_linearized_in_time(first_return) {
            return Some(first_return);
        }
        let mut entry = self.list.next[first_return];
        let mut reads_left = LOOKAHEAD_READS;
        for _ in 0..LOOKAHEAD_ENTRIES {
            if entry == NIL || reads_left == 0 {
                break;
            }
            if !self.list.is_call(entry) && self.class[self.list.op[entry]] == Phase::Reads {
                if !self.may_be_linearized_in_time(entry) {
                    return Some(entry);
                }
                reads_left -= 1;
            }
            entry = self.list.next[entry];
        }
        None
    }

    /// Asks the model whether the operation of return entry `ret` can still be accepted
    /// after some of the operations that may be linearized before it (every other one whose
    /// call entry comes before `ret`).
    fn may_be_linearized_in_time(&self, ret: usize) -> bool {
        let target = self.list.op[ret];
        let op = self.ops[target];
        let (list, ops) = (&self.list, self.ops);
        let mut entry = list.first();
        let mut pending = std::iter::from_fn(move || {
            while entry != ret && entry != NIL {
                let current = entry;
                entry = list.next[current];
                if list.is_call(current) && list.op[current] != target {
                    let op = ops[list.op[current]];
                    return Some((&op.input, &op.output));
                }
            }
            None
        });
        self.model
            .may_become_acceptable(&self.state, &op.input, &op.output, &mut pending)
    }

    /// Tries to linearize the operation of `call` now.
    fn attempt(&mut self, call: usize, phase: Phase) -> Attempt {
        let op_index = self.list.op[call];
        let op = self.ops[op_index];
        let Some(next_state) = self.model.step(&self.state, &op.input, &op.output) else {
            return Attempt::Rejected;
        };
        self.linearized.insert(op_index);
        if !self.memo.insert_if_new(&self.linearized, &next_state) {
            self.linearized.remove(op_index);
            return Attempt::SeenBefore;
        }
        let previous = std::mem::replace(&mut self.state, next_state);
        self.stack.push(Frame {
            call,
            previous,
            phase,
        });
        self.list.lift(call);
        Attempt::Linearized
    }

    /// Undoes linearizations up to and including the last one that had alternatives; returns
    /// the cursor just after it (its next alternative), or `None` if nothing is left to undo.
    fn backtrack(&mut self) -> Option<Cursor> {
        loop {
            let Frame {
                call,
                previous,
                phase,
            } = self.stack.pop()?;
            self.state = previous;
            self.linearized.remove(self.list.op[call]);
            self.list.unlift(call);
            if phase != Phase::Reads {
                return Some((self.list.next[call], phase));
            }
        }
    }

    /// Remembers this point if it is the deepest the search has reached.
    fn note_depth(&mut self, blocked_return: usize) {
        let depth = self.stack.len();
        if self
            .deepest
            .as_ref()
            .is_none_or(|deepest| depth > deepest.linearized.len())
        {
            self.deepest = Some(self.snapshot(blocked_return));
        }
    }

    fn take_deepest(&mut self, entry: usize) -> Deepest<M::State> {
        match self.deepest.take() {
            Some(deepest) => deepest,
            None => self.snapshot(entry),
        }
    }

    fn snapshot(&self, blocked: usize) -> Deepest<M::State> {
        let mut candidates = Vec::new();
        let mut entry = self.list.first();
        while entry != blocked && entry != NIL {
            if self.list.is_call(entry) {
                candidates.push(self.list.op[entry]);
            }
            entry = self.list.next[entry];
        }
        Deepest {
            linearized: self
                .stack
                .iter()
                .map(|frame| self.list.op[frame.call])
                .collect(),
            state: self.state.clone(),
            blocked: self.list.op[blocked],
            candidates,
        }
    }
}
