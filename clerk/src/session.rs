//! The client side of exactly-once sessions: a random client id, sequence numbers, and
//! the lowest sequence number still waiting for a reply (which lets the servers forget
//! older replies; Ongaro's thesis 6.3).
//!
//! Until one write of the session has been applied (answered by a server), the watermark
//! stays 1: the servers create a session only for a client whose watermark is 1, and take
//! an unknown client with a higher one for an evicted session (SESSION_EXPIRED). Without
//! this, a clerk whose first write was refused (too large) or abandoned (timed out before
//! it was applied) would be told SESSION_EXPIRED for every later write.

use parking_lot::Mutex;
use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};

#[derive(Debug)]
struct Seqs {
    next: u64,
    outstanding: BTreeSet<u64>,
    /// Whether a write of this session got its reply from a server (so it has a session).
    applied_any: bool,
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
                applied_any: false,
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

    /// The lowest sequence number not yet finished (at most `seq`), or 1 while no write of
    /// this session has been applied.
    pub(crate) fn first_unacked(&self) -> u64 {
        let s = self.seqs.lock();
        if !s.applied_any {
            return 1;
        }
        s.outstanding.first().copied().unwrap_or(s.next)
    }

    /// Ends an operation: `applied` when a server answered it (it was applied), false
    /// when it failed or was given up on.
    pub(crate) fn end(&self, seq: u64, applied: bool) {
        let mut s = self.seqs.lock();
        s.outstanding.remove(&seq);
        s.applied_any |= applied;
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
    fn watermark_stays_1_until_a_write_was_applied() {
        let s = Session::with_id(7);
        let refused = s.begin();
        s.end(refused, false);
        let abandoned = s.begin();
        s.end(abandoned, false);
        let next = s.begin();
        assert_eq!(next, 3);
        assert_eq!(s.first_unacked(), 1, "the servers may have no session yet");
        s.end(next, true);
        assert_eq!(s.first_unacked(), 4);
    }

    #[test]
    fn client_ids_differ() {
        assert_ne!(Session::new().client_id, Session::new().client_id);
    }
}
