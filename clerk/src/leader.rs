//! The leader cache: which endpoint to try first. Shared by every thread of a clerk;
//! updated from leader hints and rotated on failures.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Index of the endpoint believed to be the leader.
#[derive(Debug)]
pub(crate) struct LeaderCache {
    current: AtomicUsize,
    endpoints: Vec<String>,
}

impl LeaderCache {
    pub(crate) fn new(endpoints: Vec<String>) -> LeaderCache {
        LeaderCache {
            current: AtomicUsize::new(0),
            endpoints,
        }
    }

    /// The endpoint to try.
    pub(crate) fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.endpoints.len().max(1)
    }

    /// `tried` failed: move on to the next endpoint, unless another thread already did.
    pub(crate) fn rotate_from(&self, tried: usize) {
        let next = (tried + 1) % self.endpoints.len().max(1);
        let _ = self
            .current
            .compare_exchange(tried, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A server named the leader's address: switch to it if we know it. Returns whether
    /// the hint was usable.
    pub(crate) fn follow_hint(&self, leader_addr: &str) -> bool {
        match self.endpoints.iter().position(|e| e == leader_addr) {
            Some(i) => {
                self.current.store(i, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_and_hints() {
        let c = LeaderCache::new(vec!["a:1".into(), "b:2".into(), "c:3".into()]);
        assert_eq!(c.current(), 0);
        c.rotate_from(0);
        assert_eq!(c.current(), 1);
        c.rotate_from(0); // stale: another thread already moved on
        assert_eq!(c.current(), 1);
        assert!(c.follow_hint("c:3"));
        assert_eq!(c.current(), 2);
        assert!(!c.follow_hint("d:4"));
        c.rotate_from(2);
        assert_eq!(c.current(), 0);
    }
}
