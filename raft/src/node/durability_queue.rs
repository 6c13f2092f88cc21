//! The executor's durability queue: Readies written but not yet durable, held with their
//! `messages_after_persist` until the fsync that covers them (Ready contract, step 4).
//!
//! Writes reach the disk in Ready order and one fsync makes every earlier write durable,
//! so the queue only needs to know whether a sync is outstanding: while one is, every
//! newly written Ready waits behind it (even one that needs no sync itself, so that
//! messages and reports leave in Ready order); once it is done, everything held is
//! durable and is released at once, reported to the core with the newest Ready number
//! (`RaftCore::on_persist_ready`).
//!
//! Invariant: held Ready numbers increase; nothing is held unless a sync is outstanding.
//! Bounded by the Readies written between two syncs (the leader defers at most
//! `leader_sync_delay`).

use crate::message::Message;

/// Readies waiting for an fsync.
#[derive(Debug, Default)]
pub(crate) struct DurabilityQueue {
    /// (Ready number, its after-persist messages), oldest first.
    held: Vec<(u64, Vec<Message>)>,
    /// Some held Ready still needs an fsync.
    awaiting_sync: bool,
    /// The newest Ready number written.
    last_written: u64,
}

/// Readies that became durable: their messages, in order, and the newest number.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Durable {
    pub(crate) number: u64,
    pub(crate) messages_after_persist: Vec<Message>,
}

impl DurabilityQueue {
    /// Ready `number` was written; `needs_sync` when it is durable only after an fsync.
    ///
    /// # Panics
    /// If Readies are written out of order (a bug in the executor).
    pub(crate) fn written(&mut self, number: u64, needs_sync: bool, messages: Vec<Message>) {
        assert!(
            number > self.last_written,
            "Ready {number} written after Ready {}",
            self.last_written
        );
        self.last_written = number;
        self.awaiting_sync |= needs_sync;
        self.held.push((number, messages));
    }

    /// Whether written Readies wait for an fsync.
    pub(crate) fn awaiting_sync(&self) -> bool {
        self.awaiting_sync
    }

    /// An fsync (or a snapshot save, which syncs) made every written Ready durable.
    pub(crate) fn synced(&mut self) {
        self.awaiting_sync = false;
    }

    /// Takes the Readies that are durable now, if any.
    pub(crate) fn take_durable(&mut self) -> Option<Durable> {
        if self.awaiting_sync || self.held.is_empty() {
            return None;
        }
        let mut number = 0;
        let mut messages_after_persist = Vec::new();
        for (n, messages) in self.held.drain(..) {
            number = n;
            messages_after_persist.extend(messages);
        }
        Some(Durable {
            number,
            messages_after_persist,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::MessageBody;
    use crate::types::{NodeId, Term};

    fn msg(to: u64) -> Message {
        Message {
            from: NodeId(1),
            to: NodeId(to),
            term: Term(1),
            body: MessageBody::TimeoutNow,
        }
    }

    #[test]
    fn a_ready_that_needs_no_sync_is_durable_at_once_unless_an_earlier_one_waits() {
        let mut q = DurabilityQueue::default();
        q.written(1, false, vec![msg(2)]);
        assert_eq!(
            q.take_durable(),
            Some(Durable {
                number: 1,
                messages_after_persist: vec![msg(2)]
            })
        );
        q.written(2, true, vec![msg(3)]);
        q.written(3, false, vec![msg(4)]);
        assert_eq!(q.take_durable(), None, "Ready 3 waits behind Ready 2");
        assert!(q.awaiting_sync());
        q.synced();
        assert_eq!(
            q.take_durable(),
            Some(Durable {
                number: 3,
                messages_after_persist: vec![msg(3), msg(4)]
            }),
            "released together, in order, reported with the newest number"
        );
        assert_eq!(q.take_durable(), None);
    }

    #[test]
    #[should_panic(expected = "written after")]
    fn readies_out_of_order_are_a_bug() {
        let mut q = DurabilityQueue::default();
        q.written(2, false, Vec::new());
        q.written(2, false, Vec::new());
    }
}
