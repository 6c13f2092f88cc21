//! The client side of exactly-once sessions: a random client id, sequence numbers, and
//! the lowest sequence number still waiting for a reply (which lets the servers forget
//! older replies; Ongaro's thesis 6.3).
//!
//! The servers open a session when they apply a client's first write carrying watermark 1,
//! and read "unknown client with a watermark above 1" as "session evicted" (SESSION_EXPIRED).
//! So the watermark stays 1 until some write of this session got its reply (proof that the
//! servers opened the session): a clerk whose first writes were all abandoned (deadline
//! passed, never applied) would otherwise be refused forever.

use parking_lot::Mutex;
use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};

#[derive(Debug)]
struct Seqs {
    next: u64,
    outstanding: BTreeSet<u64>,
    /// Some write got its reply: the servers hold a session for this client.
    opened: bool,
}

/// Sequence numbers of one client id, safe to use from many threads at once.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) client_id: u64,
    seqs: Mutex<Seqs>,
}

impl Session {
    /// A session with a fresh random 64-bit client id.
    pub(crate) fn new() -> Session {
        Session::with_id(random_u64())
    }

    pub(crate) fn with_id(client_id: u64) -> Session {
        Session {
            client_id,
            seqs: Mutex::new(Seqs {
                next: 1,
                outstanding: BTreeSet::new(),
                opened: false,
            }),
        }
    }

    /// Starts an operation: its sequence number.
    pub(crate) fn begin(&self) -> u64 {
        let mut s = self.seqs.lock();
        let seq = s.next;
        s.next += 1;
        s.outstanding.insert(seq);
        seq
    }

    /// The lowest sequence number not yet finished (at most `seq`); 1 until the servers
    /// are known to hold this session.
    pub(crate) fn first_unacked(&self) -> u64 {
        let s = self.seqs.lock();
        if !s.opened {
            return 1;
        }
        s.outstanding.first().copied().unwrap_or(s.next)
    }

    /// Ends an operation: `answered` when the servers replied to it (it was applied, so
    /// they hold this session), `false` when it was given up on.
    pub(crate) fn end(&self, seq: u64, answered: bool) {
        let mut s = self.seqs.lock();
        s.outstanding.remove(&seq);
        s.opened |= answered;
    }
}

/// 64 random bits from the OS-seeded hasher keys of the standard library.
fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    let id = h.finish();
    if id == 0 {
        1
    } else {
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_is_the_lowest_outstanding_sequence_number() {
        let s = Session::with_id(7);
        let a = s.begin();
        let b = s.begin();
        assert_eq!((a, b), (1, 2));
        assert_eq!(s.first_unacked(), 1);
        s.end(a, true);
        assert_eq!(s.first_unacked(), 2);
        s.end(b, true);
        assert_eq!(s.first_unacked(), 3);
    }

    #[test]
    fn watermark_stays_1_until_a_write_was_answered() {
        let s = Session::with_id(7);
        let abandoned = s.begin();
        s.end(abandoned, false);
        let next = s.begin();
        // The servers may never have seen this client: a watermark above 1 would read as
        // an evicted session.
        assert_eq!(s.first_unacked(), 1);
        s.end(next, true);
        let third = s.begin();
        assert_eq!(s.first_unacked(), third);
    }

    #[test]
    fn client_ids_differ() {
        assert_ne!(Session::new().client_id, Session::new().client_id);
    }
}
