//! The Wing-Gong/Lowe linearizability search over one partition, with memoization.
//!
//! The history is turned into a doubly linked list of call and return entries sorted by time
//! (calls before returns at equal times, so touching intervals overlap). The search walks the
//! list from the front:
//! - at a call entry, it tries to linearize that operation now: if the model accepts it and
//!   the resulting `(set of linearized operations, state)` was never seen before, the
//!   operation's call and return entries are lifted out of the list, the old state is pushed
//!   on a stack, and the walk restarts from the front;
//! - at a return entry, that operation should already have been linearized (its deadline has
//!   passed), so the search backtracks: it pops the last linearized operation, puts its
//!   entries back, and tries the next candidate after it.
//!
//! The history is linearizable iff the list empties; it is not iff a return entry is reached
//! with nothing left to backtrack. The memo (Lowe's "configurations seen") makes the search
//! visit every `(linearized set, state)` pair at most once.
//!
//! One reduction on top: after each linearization the walk first looks only at state-preserving
//! candidates (`Model::is_read_only`: reads, failed compare-and-swaps). One the model accepts
//! is linearized at once and never swapped for an alternative on backtracking, because any
//! valid continuation stays valid with that read moved to its front. Without this, concurrent
//! writes that the model always accepts (appends) get tried before reads that must precede
//! them, and the search wanders through every subset of those reads.
//!
//! Invariants: list lifts and unlifts are strictly nested (stack order), which is what lets
//! an unlifted entry reuse its stale `prev`/`next` links (dancing links). The linearized set's
//! Zobrist hash is always the XOR of the keys of the operations in the set.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};
use std::time::Instant;

use crate::budget::{Budget, BudgetLimit};
use crate::history::Operation;
use crate::model::Model;

/// Index of the list head sentinel.
const HEAD: usize = 0;
/// "No entry".
const NIL: usize = usize::MAX;
/// How far past the first return entry the search looks for pending reads to ask the model
/// about (`Search::find_hopeless`), and how many it asks about at most. Measured: asking about
/// 4 reads instead of 1 cuts the steps on 10 clients sharing one key by 10x or more; looking
/// further adds little.
const LOOKAHEAD_ENTRIES: usize = 128;
const LOOKAHEAD_READS: usize = 4;
/// How many steps pass between two clock reads when a time limit is set.
const STEPS_PER_CLOCK_READ: u64 = 1024;

/// The furthest point the search reached: the longest linearizable prefix it found and the
/// operation whose return it could not get past.
#[derive(Debug, Clone)]
pub(crate) struct Deepest<S> {
    /// Partition-local indexes of the linearized operations, in linearization order.
    pub linearized: Vec<usize>,
    /// The model state after `linearized`.
    pub state: S,
    /// The operation whose return entry was reached before it could be linearized.
    pub blocked: usize,
    /// Every operation that had been called but not linearized at that point (the ones that
    /// could have been linearized next), in call order. Includes `blocked`.
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
    OutOfBudget(BudgetLimit),
}

/// Counts steps and watches the clock across every partition of one check.
#[derive(Debug)]
pub(crate) struct StepMeter {
    max_steps: u64,
    deadline: Option<Instant>,
    /// Steps taken so far.
    pub steps: u64,
    /// Memo entries created so far.
    pub memo_entries: usize,
}

impl StepMeter {
    pub fn new(budget: &Budget) -> Self {
        let deadline = budget.time_limit.map(|limit| Instant::now() + limit);
        Self {
            max_steps: budget.max_steps,
            deadline,
            steps: 0,
            memo_entries: 0,
        }
    }

    /// Takes one step, or says which limit stops us.
    fn spend(&mut self) -> Result<(), BudgetLimit> {
        if self.steps >= self.max_steps {
            return Err(BudgetLimit::Steps);
        }
        self.steps += 1;
        if let Some(deadline) = self.deadline {
            if self.steps % STEPS_PER_CLOCK_READ == 0 && Instant::now() >= deadline {
                return Err(BudgetLimit::Time);
            }
        }
        Ok(())
    }
}

/// Call and return entries of one partition as an index-linked list (entry 0 is the head).
#[derive(Debug)]
struct EntryList {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Entry -> partition-local operation index (unused for the head).
    op: Vec<usize>,
    /// Call entry -> its return entry; `NIL` for return entries and the head.
    partner: Vec<usize>,
}

impl EntryList {
    /// Builds the list from each operation's `(call, ret)` times.
    fn new(intervals: &[(u64, u64)]) -> Self {
        // (time, 0 = call / 1 = return, op): calls sort before returns at equal times.
        let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(intervals.len() * 2);
        for (op, &(call, ret)) in intervals.iter().enumerate() {
            events.push((call, 0, op));
            events.push((ret, 1, op));
        }
        events.sort_unstable();
        let len = events.len() + 1;
        let mut list = Self {
            next: (1..=len).map(|i| if i == len { NIL } else { i }).collect(),
            prev: (0..len).map(|i| i.wrapping_sub(1)).collect(),
            op: vec![NIL; len],
            partner: vec![NIL; len],
        };
        let mut call_entry = vec![NIL; intervals.len()];
        for (position, &(_, kind, op)) in events.iter().enumerate() {
            let entry = position + 1;
            list.op[entry] = op;
            if kind == 0 {
                call_entry[op] = entry;
            } else {
                list.partner[call_entry[op]] = entry;
            }
        }
        list
    }

    fn first(&self) -> usize {
        self.next[HEAD]
    }

    fn is_empty(&self) -> bool {
        self.next[HEAD] == NIL
    }

    fn is_call(&self, entry: usize) -> bool {
        self.partner[entry] != NIL
    }

    fn remove(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        self.next[prev] = next;
        if next != NIL {
            self.prev[next] = prev;
        }
    }

    fn restore(&mut self, entry: usize) {
        let (prev, next) = (self.prev[entry], self.next[entry]);
        self.next[prev] = entry;
        if next != NIL {
            self.prev[next] = entry;
        }
    }

    /// Takes a call entry and its return entry out of the list.
    fn lift(&mut self, call: usize) {
        self.remove(call);
        self.remove(self.partner[call]);
    }

    /// Undoes the most recent `lift` (which must have been of `call`).
    fn unlift(&mut self, call: usize) {
        self.restore(self.partner[call]);
        self.restore(call);
    }
}

/// The set of linearized operations, with an incrementally maintained Zobrist hash.
#[derive(Debug)]
struct LinearizedSet {
    words: Vec<u64>,
    keys: Vec<u64>,
    hash: u64,
}

impl LinearizedSet {
    fn new(len: usize) -> Self {
        let keys = (0..len as u64)
            .map(|i| mix64(i.wrapping_add(0x5eed)))
            .collect();
        Self {
            words: vec![0; len.div_ceil(64)],
            keys,
            hash: 0,
        }
    }

    fn insert(&mut self, op: usize) {
        self.words[op / 64] |= 1 << (op % 64);
        self.hash ^= self.keys[op];
    }

    fn remove(&mut self, op: usize) {
        self.words[op / 64] &= !(1 << (op % 64));
        self.hash ^= self.keys[op];
    }
}

/// A `Hasher` for keys that are already well-mixed `u64`s.
#[derive(Debug, Default)]
struct PremixedHasher(u64);

impl Hasher for PremixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = mix64(self.0 ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Marks the end of a memo bucket's chain.
const NO_ENTRY: usize = usize::MAX;

/// One memoized configuration; its set is `Memo::sets[index * words ..][.. words]`.
#[derive(Debug)]
struct MemoEntry<S> {
    /// The previous entry with the same hash key, or `NO_ENTRY`.
    next: usize,
    state: S,
}

/// Every `(linearized set, state)` configuration the search has reached.
///
/// Stored in flat arrays (a hash table of chain heads, one entry array, one array of set
/// words) so that a step allocates nothing besides the state it creates.
#[derive(Debug)]
struct Memo<S> {
    words: usize,
    // Unbounded on purpose, like `entries` and `sets`: the step budget bounds how many
    // configurations can be added.
    heads: HashMap<u64, usize, BuildHasherDefault<PremixedHasher>>,
    entries: Vec<MemoEntry<S>>,
    sets: Vec<u64>,
}

impl<S: Eq + Hash + Clone> Memo<S> {
    fn new(words: usize) -> Self {
        Self {
            words,
            heads: HashMap::default(),
            entries: Vec::new(),
            sets: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Records the configuration; returns false if it was already recorded.
    fn insert_if_new(&mut self, set: &LinearizedSet, state: &S) -> bool {
        let mut hasher = DefaultHasher::new();
        state.hash(&mut hasher);
        let key = mix64(set.hash ^ hasher.finish().rotate_left(29));
        let head = self.heads.get(&key).copied().unwrap_or(NO_ENTRY);
        let mut cursor = head;
        while cursor != NO_ENTRY {
            let entry = &self.entries[cursor];
            let words = &self.sets[cursor * self.words..(cursor + 1) * self.words];
            if words == set.words.as_slice() && entry.state == *state {
                return false;
            }
            cursor = entry.next;
        }
        self.heads.insert(key, self.entries.len());
        self.entries.push(MemoEntry {
            next: head,
            state: state.clone(),
        });
        self.sets.extend_from_slice(&set.words);
        true
    }
}

/// SplitMix64's finalizer: a cheap, well-distributed 64-bit mix.
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
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
    /// Every other operation, in call order. (Trying operations with unknown outcome last
    /// was measured to be much slower: the ones that did take effect are needed early.)
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
            .map_or(true, |deepest| depth > deepest.linearized.len())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(list: &EntryList) -> Vec<(usize, bool)> {
        let mut out = Vec::new();
        let mut entry = list.first();
        while entry != NIL {
            out.push((list.op[entry], list.is_call(entry)));
            entry = list.next[entry];
        }
        out
    }

    #[test]
    fn entries_sort_by_time_with_calls_before_returns_on_ties() {
        // op 0: [5, 10], op 1: [10, 20] -> touching intervals overlap.
        let list = EntryList::new(&[(5, 10), (10, 20)]);
        assert_eq!(
            walk(&list),
            vec![(0, true), (1, true), (0, false), (1, false)]
        );
    }

    #[test]
    fn nested_lift_and_unlift_restore_the_list() {
        let list_times = [(1, 4), (2, 3), (5, 6)];
        let mut list = EntryList::new(&list_times);
        let original = walk(&list);
        let call_of = |list: &EntryList, op: usize| {
            (1..list.op.len())
                .find(|&e| list.op[e] == op && list.is_call(e))
                .unwrap()
        };
        let (c1, c0, c2) = (call_of(&list, 1), call_of(&list, 0), call_of(&list, 2));
        list.lift(c1);
        assert_eq!(
            walk(&list),
            vec![(0, true), (0, false), (2, true), (2, false)]
        );
        list.lift(c0);
        list.lift(c2);
        assert!(list.is_empty());
        list.unlift(c2);
        list.unlift(c0);
        list.unlift(c1);
        assert_eq!(walk(&list), original);
    }

    #[test]
    fn zobrist_hash_depends_only_on_the_set() {
        let mut set = LinearizedSet::new(130);
        set.insert(3);
        set.insert(129);
        let both = set.hash;
        set.remove(3);
        set.insert(64);
        set.remove(64);
        set.insert(3);
        assert_eq!(set.hash, both);
        set.remove(3);
        set.remove(129);
        assert_eq!(set.hash, 0);
        assert!(set.words.iter().all(|&w| w == 0));
    }

    #[test]
    fn memo_rejects_a_configuration_seen_before() {
        let mut memo = Memo::new(1);
        let mut set = LinearizedSet::new(10);
        set.insert(1);
        assert!(memo.insert_if_new(&set, &7u32));
        assert!(!memo.insert_if_new(&set, &7u32));
        assert!(memo.insert_if_new(&set, &8u32), "same set, different state");
        set.insert(2);
        assert!(memo.insert_if_new(&set, &7u32), "same state, different set");
    }
}
