//! The simulator's [`Transport`]: what a node's executor sends is stamped with the
//! virtual instant its thread sent it, checked against the node's durable state at that
//! very moment (persistence before revealing, invariants 8 and 9), and queued for the
//! cluster, which hands it to the simulated network once the round is over.
//!
//! Checking at send time matters: a message released before the fsync that should
//! precede it would pass a check made after the round, when the fsync has happened.

use crate::message::Message;
use crate::sim::clock::SimClock;
use crate::sim::invariants::Violation;
use crate::sim::persistence_rules::check_release;
use crate::sim::storage_model::StorageModel;
use crate::transport::Transport;
use parking_lot::Mutex;
use std::sync::Arc;

/// A message as it left its sender.
#[derive(Debug)]
pub(crate) struct Sent {
    /// Virtual time it left.
    pub(crate) at_us: u64,
    pub(crate) msg: Message,
    /// What it revealed too early, if anything.
    pub(crate) violation: Option<Violation>,
}

/// One node incarnation's outgoing messages.
pub(crate) struct SimTransport {
    clock: SimClock,
    model: Arc<Mutex<StorageModel>>,
    strict_term_reveal: bool,
    sent: Arc<Mutex<Vec<Sent>>>,
}

impl SimTransport {
    pub(crate) fn new(
        clock: SimClock,
        model: Arc<Mutex<StorageModel>>,
        strict_term_reveal: bool,
        sent: Arc<Mutex<Vec<Sent>>>,
    ) -> SimTransport {
        SimTransport {
            clock,
            model,
            strict_term_reveal,
            sent,
        }
    }
}

impl Transport for SimTransport {
    fn send(&self, messages: Vec<Message>) {
        let at_us = self.clock.thread_us();
        let model = self.model.lock();
        let mut sent = self.sent.lock();
        for msg in messages {
            let violation = check_release(&msg, model.durable(), self.strict_term_reveal).err();
            sent.push(Sent {
                at_us,
                msg,
                violation,
            });
        }
    }
}
