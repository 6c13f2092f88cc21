//! Deferred leader fsyncs.
//!
//! A leader commits an entry once a majority holds it durably, and counts its own copy
//! only once that is durable (thesis 10.2.1); it also applies committed entries without
//! waiting for its own disk (see `RaftLog::apply_limit`). So while enough followers are
//! replicating to commit without it, the leader's own fsync is on nobody's path: the
//! driver writes the leader's new entries at once but fsyncs them only every `max_delay`,
//! giving that disk and CPU time back to replication. As soon as the followers alone cannot
//! form a majority (one is slow or gone), the leader fsyncs whenever it would otherwise
//! wait for input, as before.
//!
//! Never deferred: a Ready that changes the term or the vote, carries a snapshot, or has
//! messages to send after persisting (those reveal state that must be durable first), and
//! anything on a follower or candidate. The core hears `on_persist_ready` for deferred Readies
//! only after the fsync that covers them.

use crate::types::{HardState, NodeId, Term};
use std::time::{Duration, Instant};

/// Tracks the leader's written-but-not-yet-fsynced entries.
#[derive(Debug)]
pub(crate) struct LeaderSync {
    max_delay: Duration,
    /// The term and vote of the last hard state made durable.
    durable: (Term, Option<NodeId>),
    /// The number of the newest deferred Ready, and when deferring began.
    pending: Option<(u64, Instant)>,
}

/// What the driver knows about one Ready that must be persisted with an fsync.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadyFacts<'a> {
    pub(crate) followers_can_commit: bool,
    pub(crate) hard_state: Option<&'a HardState>,
    pub(crate) has_snapshot: bool,
    pub(crate) has_after_persist: bool,
}

impl LeaderSync {
    /// `max_delay == 0` disables deferral.
    pub(crate) fn new(max_delay: Duration, durable: &HardState) -> LeaderSync {
        LeaderSync {
            max_delay,
            durable: (durable.term, durable.vote),
            pending: None,
        }
    }

    /// Whether a Ready may be written now and fsynced later.
    pub(crate) fn may_defer(&self, facts: ReadyFacts<'_>) -> bool {
        let term_vote_unchanged = facts
            .hard_state
            .is_none_or(|hs| (hs.term, hs.vote) == self.durable);
        !self.max_delay.is_zero()
            && facts.followers_can_commit
            && term_vote_unchanged
            && !facts.has_snapshot
            && !facts.has_after_persist
    }

    /// Ready `number` was written without an fsync.
    pub(crate) fn deferred(&mut self, number: u64, now: Instant) {
        let since = self.pending.map_or(now, |(_, since)| since);
        self.pending = Some((number, since));
    }

    /// An fsync made everything written durable, including `hard_state` if given. Returns
    /// the number of the newest deferred Ready it covered, to report to the core.
    pub(crate) fn synced(&mut self, hard_state: Option<&HardState>) -> Option<u64> {
        if let Some(hs) = hard_state {
            self.durable = (hs.term, hs.vote);
        }
        self.pending.take().map(|(target, _)| target)
    }

    /// Whether the deferred writes must be fsynced now: they have waited `max_delay`, or
    /// the driver is about to wait for input while the followers cannot commit alone.
    pub(crate) fn due(&self, idle: bool, followers_can_commit: bool, now: Instant) -> bool {
        match self.pending {
            Some((_, since)) => {
                now.saturating_duration_since(since) >= self.max_delay
                    || (idle && !followers_can_commit)
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::LogIndex;

    fn hs(term: u64, vote: Option<u64>, commit: u64) -> HardState {
        HardState {
            term: Term(term),
            vote: vote.map(NodeId),
            commit: LogIndex(commit),
        }
    }

    fn facts(hard_state: Option<&HardState>) -> ReadyFacts<'_> {
        ReadyFacts {
            followers_can_commit: true,
            hard_state,
            has_snapshot: false,
            has_after_persist: false,
        }
    }

    #[test]
    fn only_a_ready_that_reveals_nothing_new_may_wait_while_followers_can_commit() {
        let s = LeaderSync::new(Duration::from_millis(10), &hs(3, Some(1), 5));
        assert!(s.may_defer(facts(None)));
        assert!(
            s.may_defer(facts(Some(&hs(3, Some(1), 9)))),
            "commit-only change"
        );
        let alone = ReadyFacts {
            followers_can_commit: false,
            ..facts(None)
        };
        assert!(
            !s.may_defer(alone),
            "followers cannot commit without the leader"
        );
        assert!(!s.may_defer(facts(Some(&hs(4, None, 9)))), "new term");
        assert!(!s.may_defer(facts(Some(&hs(3, Some(2), 9)))), "new vote");
        assert!(!s.may_defer(ReadyFacts {
            has_snapshot: true,
            ..facts(None)
        }));
        assert!(!s.may_defer(ReadyFacts {
            has_after_persist: true,
            ..facts(None)
        }));
        let off = LeaderSync::new(Duration::ZERO, &hs(3, Some(1), 5));
        assert!(!off.may_defer(facts(None)), "disabled");
    }

    #[test]
    fn a_sync_reports_the_newest_deferred_target_once() {
        let now = Instant::now();
        let mut s = LeaderSync::new(Duration::from_secs(3600), &hs(1, Some(1), 0));
        assert!(!s.due(true, false, now), "nothing deferred");
        s.deferred(4, now);
        s.deferred(5, now);
        s.deferred(7, now);
        assert!(
            !s.due(true, true, now),
            "idle, but the followers commit without us"
        );
        assert!(s.due(true, false, now), "idle and needed");
        assert_eq!(s.synced(None), Some(7));
        assert_eq!(s.synced(None), None);
        s.synced(Some(&hs(2, None, 0)));
        assert!(!s.may_defer(facts(Some(&hs(1, Some(1), 0)))));
        assert!(s.may_defer(facts(Some(&hs(2, None, 0)))));
    }

    #[test]
    fn deferred_writes_fall_due_after_the_maximum_delay_counted_from_the_first() {
        let t0 = Instant::now();
        let delay = Duration::from_millis(2);
        let mut s = LeaderSync::new(delay, &hs(1, Some(1), 0));
        s.deferred(1, t0);
        s.deferred(2, t0 + delay / 2);
        assert!(!s.due(false, true, t0 + delay / 2));
        assert!(s.due(false, true, t0 + delay), "even while busy");
    }
}
