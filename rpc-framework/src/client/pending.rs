//! `PendingCalls`: the calls of one channel that await a reply, keyed by request id, with a
//! deadline index for the calls the I/O thread must time out. PURE: no clock is read here;
//! `now` is passed in.
//!
//! Invariants:
//! - at most `max_calls` entries (an insert over it hands the value back);
//! - every id in `deadlines` is in `calls` with that deadline, and the reverse for entries
//!   with a tracked deadline;
//! - `planned_wake` is when the I/O thread intends to look next; an insert whose deadline
//!   is earlier reports that the thread must be woken.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

#[derive(Debug)]
struct Entry<T> {
    conn_id: u64,
    tracked_deadline: Option<Instant>,
    value: T,
}

/// Calls awaiting replies. See the module docs.
#[derive(Debug)]
pub(crate) struct PendingCalls<T> {
    calls: HashMap<u64, Entry<T>>,
    deadlines: BTreeSet<(Instant, u64)>,
    max_calls: usize,
    /// `None`: the I/O thread sleeps until an event (no timer).
    planned_wake: Option<Instant>,
}

/// The outcome of a successful insert.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Inserted {
    /// The tracked deadline is earlier than the I/O thread's planned wake-up.
    pub(crate) must_wake_io_thread: bool,
}

impl<T> PendingCalls<T> {
    pub(crate) fn new(max_calls: usize) -> Self {
        PendingCalls {
            calls: HashMap::new(),
            deadlines: BTreeSet::new(),
            max_calls,
            planned_wake: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }

    pub(crate) fn max_calls(&self) -> usize {
        self.max_calls
    }

    /// Adds a call sent on connection `conn_id`. A `tracked_deadline` is enforced by the I/O
    /// thread (`remove_expired`); blocking callers enforce their own and pass `None`.
    ///
    /// # Errors
    /// Hands `value` back when `max_calls` calls are already pending.
    ///
    /// # Panics
    /// If `id` is already pending (ids are unique per channel).
    pub(crate) fn insert(
        &mut self,
        id: u64,
        conn_id: u64,
        tracked_deadline: Option<Instant>,
        value: T,
    ) -> Result<Inserted, T> {
        if self.calls.len() >= self.max_calls {
            return Err(value);
        }
        let entry = Entry {
            conn_id,
            tracked_deadline,
            value,
        };
        let previous = self.calls.insert(id, entry);
        assert!(previous.is_none(), "request id {id} reused while pending");
        let mut must_wake_io_thread = false;
        if let Some(deadline) = tracked_deadline {
            self.deadlines.insert((deadline, id));
            must_wake_io_thread = self.planned_wake.is_none_or(|wake| deadline < wake);
            if must_wake_io_thread {
                self.planned_wake = Some(deadline);
            }
        }
        Ok(Inserted {
            must_wake_io_thread,
        })
    }

    /// Removes the call `id`, if still pending.
    pub(crate) fn remove(&mut self, id: u64) -> Option<T> {
        let entry = self.calls.remove(&id)?;
        if let Some(deadline) = entry.tracked_deadline {
            self.deadlines.remove(&(deadline, id));
        }
        Some(entry.value)
    }

    /// Removes the calls whose tracked deadline is at or before `now`.
    pub(crate) fn remove_expired(&mut self, now: Instant) -> Vec<T> {
        let mut expired = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(entry) = self.calls.remove(&id) {
                expired.push(entry.value);
            }
        }
        expired
    }

    /// Removes every call sent on connection `conn_id` (it broke). O(pending calls).
    pub(crate) fn remove_connection(&mut self, conn_id: u64) -> Vec<T> {
        let ids: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, entry)| entry.conn_id == conn_id)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter().filter_map(|id| self.remove(id)).collect()
    }

    /// Removes everything (shutdown).
    pub(crate) fn remove_all(&mut self) -> Vec<T> {
        self.deadlines.clear();
        self.calls.drain().map(|(_, entry)| entry.value).collect()
    }

    /// The earliest tracked deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// Records when the I/O thread will look next (`None`: only on an event).
    pub(crate) fn set_planned_wake(&mut self, wake: Option<Instant>) {
        self.planned_wake = wake;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn insert_is_capped_and_hands_the_value_back() {
        let mut pending = PendingCalls::new(2);
        pending.insert(1, 0, None, "a").unwrap();
        pending.insert(2, 0, None, "b").unwrap();
        assert_eq!(pending.insert(3, 0, None, "c"), Err("c"));
        assert_eq!(pending.remove(1), Some("a"));
        assert!(pending.insert(3, 0, None, "c").is_ok());
    }

    #[test]
    fn expiry_removes_exactly_the_calls_due() {
        let base = Instant::now();
        let mut pending = PendingCalls::new(10);
        pending.insert(1, 0, Some(at(base, 30)), 1).unwrap();
        pending.insert(2, 0, Some(at(base, 10)), 2).unwrap();
        pending.insert(3, 0, None, 3).unwrap();
        pending.insert(4, 0, Some(at(base, 20)), 4).unwrap();
        assert_eq!(pending.next_deadline(), Some(at(base, 10)));
        assert_eq!(pending.remove_expired(at(base, 20)), vec![2, 4]);
        assert_eq!(pending.next_deadline(), Some(at(base, 30)));
        // A removed call leaves the deadline index too.
        assert_eq!(pending.remove(1), Some(1));
        assert_eq!(pending.next_deadline(), None);
        assert!(pending.remove_expired(at(base, 1000)).is_empty());
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn earlier_deadline_than_planned_wake_asks_for_a_wakeup() {
        let base = Instant::now();
        let mut pending = PendingCalls::new(10);
        pending.set_planned_wake(Some(at(base, 50)));
        let later = pending.insert(1, 0, Some(at(base, 60)), ()).unwrap();
        assert!(!later.must_wake_io_thread);
        let earlier = pending.insert(2, 0, Some(at(base, 40)), ()).unwrap();
        assert!(earlier.must_wake_io_thread);
        // The wake-up is now planned at 40: a call due at 45 needs none.
        assert!(
            !pending
                .insert(3, 0, Some(at(base, 45)), ())
                .unwrap()
                .must_wake_io_thread
        );
        assert!(!pending.insert(4, 0, None, ()).unwrap().must_wake_io_thread);
        pending.set_planned_wake(None);
        assert!(
            pending
                .insert(5, 0, Some(at(base, 500)), ())
                .unwrap()
                .must_wake_io_thread
        );
    }

    #[test]
    fn removing_a_connection_takes_only_its_calls() {
        let mut pending = PendingCalls::new(10);
        pending.insert(1, 7, None, 1).unwrap();
        pending.insert(2, 8, Some(Instant::now()), 2).unwrap();
        pending.insert(3, 7, Some(Instant::now()), 3).unwrap();
        let mut removed = pending.remove_connection(7);
        removed.sort_unstable();
        assert_eq!(removed, vec![1, 3]);
        assert_eq!(pending.len(), 1);
        assert_eq!(pending.remove_all(), vec![2]);
        assert_eq!(pending.next_deadline(), None);
    }
}
