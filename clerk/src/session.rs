//! The client side of exactly-once sessions (Ongaro's thesis 6.3): the session id the
//! cluster assigned at registration, sequence numbers, and the lowest sequence number
//! still waiting for a reply (which lets the servers forget older replies).
//!
//! The session is registered before its first write (`Clerk::session`), so the servers
//! know it before any write of it is applied: a write of a session they do not know (it
//! was evicted) is refused, never applied as if from a new client.

use parking_lot::Mutex;
use std::collections::BTreeSet;

#[derive(Debug)]
struct Seqs {
    next: u64,
    outstanding: BTreeSet<u64>,
}

/// Sequence numbers of one registered session, safe to use from many threads at once.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) client_id: u64,
    seqs: Mutex<Seqs>,
}

impl Session {
    /// The session the cluster registered as `client_id`.
    pub(crate) fn with_id(client_id: u64) -> Session {
        Session {
            client_id,
            seqs: Mutex::new(Seqs {
                next: 1,
                outstanding: BTreeSet::new(),
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

    /// The lowest sequence number not yet finished (the next one if none is outstanding).
    pub(crate) fn first_unacked(&self) -> u64 {
        let s = self.seqs.lock();
        s.outstanding.first().copied().unwrap_or(s.next)
    }

    /// Ends an operation, answered or given up on: the servers may forget its reply.
    pub(crate) fn end(&self, seq: u64) {
        self.seqs.lock().outstanding.remove(&seq);
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
        s.end(b);
        assert_eq!(s.first_unacked(), 1, "seq 1 is still outstanding");
        s.end(a);
        assert_eq!(s.first_unacked(), 3);
    }
}
