//! The search's view of one partition: call and return entries in time order, as an
//! index-linked list that entries can be lifted out of and put back (dancing links).
//!
//! Order: by time, calls before returns at equal times (so touching intervals overlap).
//! Entry numbers follow that order and never change, so "entry a is before entry b" is
//! `a < b` even after lifts. Invariant: lifts and unlifts are strictly nested (stack order),
//! which is what lets an unlifted entry reuse its stale `prev`/`next` links.

/// Index of the list head sentinel.
pub(super) const HEAD: usize = 0;
/// "No entry".
pub(super) const NIL: usize = usize::MAX;

/// Call and return entries of one partition as an index-linked list (entry 0 is the head).
#[derive(Debug)]
pub(super) struct EntryList {
    /// Entry -> next entry in the list, or `NIL`.
    pub(super) next: Vec<usize>,
    prev: Vec<usize>,
    /// Entry -> partition-local operation index (unused for the head).
    pub(super) op: Vec<usize>,
    /// Call entry -> its return entry; `NIL` for return entries and the head.
    partner: Vec<usize>,
}

impl EntryList {
    /// Builds the list from each operation's `(call, ret)` times.
    pub(super) fn new(intervals: &[(u64, u64)]) -> Self {
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

    pub(super) fn first(&self) -> usize {
        self.next[HEAD]
    }

    pub(super) fn is_empty(&self) -> bool {
        self.next[HEAD] == NIL
    }

    pub(super) fn is_call(&self, entry: usize) -> bool {
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
    pub(super) fn lift(&mut self, call: usize) {
        self.remove(call);
        self.remove(self.partner[call]);
    }

    /// Undoes the most recent `lift` (which must have been of `call`).
    pub(super) fn unlift(&mut self, call: usize) {
        self.restore(self.partner[call]);
        self.restore(call);
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
}
