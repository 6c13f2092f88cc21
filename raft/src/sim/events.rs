//! Virtual time: a queue of future events ordered by `(time_us, seq)`.
//!
//! Invariants: time never goes backwards (an event is never scheduled before `now`), and
//! two events at the same instant run in the order they were scheduled (`seq` breaks ties),
//! so a run is a pure function of the seed.

use crate::message::Message;
use crate::types::NodeId;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Something that happens at an instant of virtual time.
#[derive(Clone, Debug)]
pub enum Event {
    /// Node `node`'s thread wakes up and runs a round of its executor (only if it is the
    /// same incarnation and no later wake-up superseded this one).
    Wake {
        /// The node.
        node: NodeId,
        /// The incarnation the wake-up belongs to.
        incarnation: u64,
        /// Which scheduled wake-up this is; only the newest counts.
        generation: u64,
    },
    /// A message reaches its destination (if the link is still up).
    Deliver {
        /// The message.
        msg: Message,
    },
    /// A message a node sent during a round leaves it, at the virtual instant its thread
    /// sent it (after an fsync's latency, say); lost if the node crashed meanwhile.
    Release {
        /// The sender.
        node: NodeId,
        /// The sender's incarnation.
        incarnation: u64,
        /// The message.
        msg: Message,
    },
    /// Node `node`'s application takes what its apply channel holds.
    RunApp {
        /// The node.
        node: NodeId,
        /// The incarnation whose channel it is.
        incarnation: u64,
    },
    /// Node `node` starts for the first time (initial boots are spread over one tick, so
    /// that the nodes' ticks do not fall on the same instants).
    Boot {
        /// The node.
        node: NodeId,
    },
}

#[derive(Debug)]
struct Scheduled {
    time_us: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.time_us == other.time_us && self.seq == other.seq
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and we want the earliest event first.
        (other.time_us, other.seq).cmp(&(self.time_us, self.seq))
    }
}

/// The event queue and the virtual clock.
///
/// Unbounded by design: every event is either a node's wake-up or application run (a few
/// pending per node), or a message in flight, and the number of messages in flight is
/// bounded by what the nodes emit per tick times the longest delay.
#[derive(Debug, Default)]
pub struct EventQueue {
    now_us: u64,
    next_seq: u64,
    heap: BinaryHeap<Scheduled>,
}

impl EventQueue {
    /// An empty queue at time 0.
    pub fn new() -> EventQueue {
        EventQueue::default()
    }

    /// The current virtual time in microseconds.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// Schedules `event` to run `delay_us` from now.
    pub fn schedule(&mut self, delay_us: u64, event: Event) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Scheduled {
            time_us: self.now_us + delay_us,
            seq,
            event,
        });
    }

    /// The time of the next event, if any.
    pub fn peek_time_us(&self) -> Option<u64> {
        self.heap.peek().map(|s| s.time_us)
    }

    /// Removes the next event if it is due at or before `deadline_us`, advancing the clock to it.
    pub fn pop_until(&mut self, deadline_us: u64) -> Option<Event> {
        if self.heap.peek()?.time_us > deadline_us {
            return None;
        }
        let next = self.heap.pop()?;
        assert!(next.time_us >= self.now_us, "virtual time went backwards");
        self.now_us = next.time_us;
        Some(next.event)
    }

    /// Moves the clock forward to `time_us` (after every event before it has run).
    pub fn advance_to(&mut self, time_us: u64) {
        if time_us > self.now_us {
            self.now_us = time_us;
        }
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(n: u64) -> Event {
        Event::Boot { node: NodeId(n) }
    }

    fn node_of(e: &Event) -> u64 {
        match e {
            Event::Boot { node } => node.0,
            _ => 0,
        }
    }

    #[test]
    fn events_run_in_time_then_schedule_order() {
        let mut q = EventQueue::new();
        q.schedule(20, tick(1));
        q.schedule(10, tick(2));
        q.schedule(10, tick(3));
        q.schedule(30, tick(4));
        let mut order = Vec::new();
        while let Some(e) = q.pop_until(25) {
            order.push((q.now_us(), node_of(&e)));
        }
        assert_eq!(order, vec![(10, 2), (10, 3), (20, 1)]);
        assert_eq!(q.len(), 1);
        q.advance_to(25);
        assert_eq!(q.now_us(), 25);
        q.schedule(0, tick(5));
        assert_eq!(q.pop_until(100).map(|e| node_of(&e)), Some(5));
        assert_eq!(q.now_us(), 25);
    }
}
