//! The provider's memory budget: one process-wide count of the bytes it buffers on behalf
//! of connections (partial request frames being read, request bodies handed to handlers
//! and not yet answered, replies queued for a socket that is not taking them), with a
//! limit for ordinary connections and a reserve above it that only priority connections
//! (see `Responder::promote_connection`: e.g. verified cluster peers) may use.
//!
//! Why one count with a reserve rather than a budget per connection: per-connection caps
//! multiplied by a connection limit give a bound no machine has (1024 connections x
//! 64 MiB partial frames), while one global count bounds the total whatever the number of
//! connections, and the reserve means a flood of clients can never leave the peers without
//! room: clients stop at `limit`, priority connections at `limit + reserve`.
//!
//! Partial frames may fill only `PARTIAL_FRAME_SHARE` of a ceiling: a sender can hold a
//! partial frame until `partial_frame_timeout`, and if such senders could take the whole
//! budget, every small well-formed request would be refused meanwhile. The rest stays for
//! whole requests and replies, which leave as fast as the handlers and sockets allow.
//!
//! Invariants:
//! - `used` never exceeds `limit + reserve`, and never exceeds `limit` through a charge of
//!   an ordinary connection;
//! - every charge is refunded exactly once: an `Account` tracks what its connection holds,
//!   and whatever is still held when the last reference to it goes is refunded by `Drop`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// The fraction (numerator, denominator) of a ceiling that partial frames may fill.
const PARTIAL_FRAME_SHARE: (usize, usize) = (3, 4);

/// What a charge buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Use {
    /// A frame still being received.
    PartialFrame,
    /// A whole request awaiting its reply, or a queued reply.
    Whole,
}

/// The process-wide count (one per `Provider`).
#[derive(Debug)]
pub(crate) struct BufferBudget {
    used: AtomicUsize,
    limit: usize,
    reserve: usize,
}

impl BufferBudget {
    pub(crate) fn new(limit: usize, reserve: usize) -> Arc<BufferBudget> {
        Arc::new(BufferBudget {
            used: AtomicUsize::new(0),
            limit,
            reserve,
        })
    }

    /// Bytes charged right now, by every connection.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    fn try_charge(&self, bytes: usize, priority: bool, use_: Use) -> bool {
        let mut ceiling = if priority {
            self.limit.saturating_add(self.reserve)
        } else {
            self.limit
        };
        if use_ == Use::PartialFrame {
            ceiling = ceiling / PARTIAL_FRAME_SHARE.1 * PARTIAL_FRAME_SHARE.0;
        }
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&after| after <= ceiling)
            })
            .is_ok()
    }

    fn refund(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// One connection's share of the budget: what it holds, and its class.
#[derive(Debug)]
pub(crate) struct Account {
    budget: Arc<BufferBudget>,
    held: AtomicUsize,
    priority: AtomicBool,
}

impl Account {
    pub(crate) fn new(budget: Arc<BufferBudget>) -> Arc<Account> {
        Arc::new(Account {
            budget,
            held: AtomicUsize::new(0),
            priority: AtomicBool::new(false),
        })
    }

    /// Charges `bytes` of a whole request or reply unless that would take the budget past
    /// this connection's ceiling.
    pub(crate) fn try_charge(&self, bytes: usize) -> bool {
        self.charge(bytes, Use::Whole)
    }

    fn charge(&self, bytes: usize, use_: Use) -> bool {
        if bytes == 0 {
            return true;
        }
        if !self.budget.try_charge(bytes, self.is_priority(), use_) {
            return false;
        }
        self.held.fetch_add(bytes, Ordering::AcqRel);
        true
    }

    /// Returns `bytes` charged earlier (never more than is held).
    pub(crate) fn refund(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let previous = self.held.fetch_sub(bytes, Ordering::AcqRel);
        debug_assert!(previous >= bytes, "refunded more than was charged");
        self.budget.refund(bytes);
    }

    /// Moves the charge for a partial frame from `from` bytes to `to` bytes (it grew or
    /// shrank). A growth the budget refuses leaves the charge at `from` and returns false.
    pub(crate) fn try_resize_partial_frame(&self, from: usize, to: usize) -> bool {
        if to >= from {
            self.charge(to - from, Use::PartialFrame)
        } else {
            self.refund(from - to);
            true
        }
    }

    /// Bytes this connection holds now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    pub(crate) fn is_priority(&self) -> bool {
        self.priority.load(Ordering::Acquire)
    }

    /// Lets this connection use the reserve from now on.
    pub(crate) fn promote(&self) {
        self.priority.store(true, Ordering::Release);
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let held = *self.held.get_mut();
        if held > 0 {
            self.budget.refund(held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_connections_stop_at_the_limit_and_priority_ones_use_the_reserve() {
        let budget = BufferBudget::new(100, 50);
        let client = Account::new(budget.clone());
        let peer = Account::new(budget.clone());
        assert!(client.try_charge(80));
        assert!(!client.try_charge(21), "past the limit");
        assert!(client.try_charge(20));
        assert!(!peer.try_charge(1), "not promoted yet");
        peer.promote();
        assert!(peer.try_charge(50));
        assert!(!peer.try_charge(1), "past limit + reserve");
        assert_eq!(budget.used(), 150);
        client.refund(100);
        assert_eq!(client.held(), 0);
        assert_eq!(budget.used(), 50);
        assert!(
            !client.try_charge(51),
            "the peer's use of the reserve counts against clients too"
        );
        assert!(client.try_charge(50));
    }

    #[test]
    fn partial_frames_fill_three_quarters_and_leave_room_for_whole_requests() {
        let budget = BufferBudget::new(100, 0);
        let stalled = Account::new(budget.clone());
        let client = Account::new(budget.clone());
        assert!(stalled.try_resize_partial_frame(0, 60));
        assert!(!stalled.try_resize_partial_frame(60, 76));
        assert_eq!(stalled.held(), 60);
        assert!(stalled.try_resize_partial_frame(60, 75));
        assert!(client.try_charge(25), "whole requests still fit");
        assert!(stalled.try_resize_partial_frame(75, 3));
        assert_eq!(budget.used(), 28);
    }

    #[test]
    fn dropping_an_account_refunds_what_it_still_holds() {
        let budget = BufferBudget::new(10, 0);
        let account = Account::new(budget.clone());
        assert!(account.try_charge(7));
        drop(account);
        assert_eq!(budget.used(), 0);
    }
}
