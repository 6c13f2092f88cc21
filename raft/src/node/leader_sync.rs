//! The leader's deferred fsync: when to write a Ready without syncing it, and when the
//! deferred writes must be synced.
//!
//! A leader commits an entry once a majority holds it durably, and counts its own copy
//! only once that is durable (thesis 10.2.1); it also applies committed entries without
//! waiting for its own disk (see `RaftLog::apply_limit`). So while enough followers are
//! replicating to commit without it, the leader's own fsync is on nobody's path: the
//! executor writes the leader's new entries at once but syncs them only every
//! `max_delay`, giving that disk and CPU time back to replication. As soon as the
//! followers alone cannot form a majority (one is gone), the leader syncs whenever it
//! would otherwise wait for input; and once its own copy is on the commit path (a
//! follower answered and the commit waits for a slower one: `RaftCore::own_sync_would_commit`)
//! it waits only a short grace (a tenth of `max_delay`) for the other follower's answer,
//! which healthy followers give within it, then syncs.
//!
//! This is a latency policy, not a safety rule: a deferred Ready is held in the
//! executor's durability queue (`durability_queue.rs`) and the core hears
//! `on_persist_ready` for it only after the fsync that covers it, so nothing that depends
//! on it is revealed early. Never deferred, because something waits for them: a Ready
//! with messages to send after persisting or with a snapshot, and anything on a
//! follower or candidate (they acknowledge what they write).

use std::time::Duration;

/// When the leader's written-but-not-yet-synced Readies must be synced.
#[derive(Debug)]
pub(crate) struct LeaderSync {
    max_delay: Duration,
    /// When the oldest unsynced Ready was deferred (clock time), if any is.
    deferred_since: Option<Duration>,
    /// Since when the leader's own copy has been on the commit path, if it is.
    on_path_since: Option<Duration>,
}

/// What the executor knows about one Ready that needs an fsync.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadyFacts {
    /// The core is a leader whose followers can commit without it.
    pub(crate) followers_can_commit: bool,
    pub(crate) has_snapshot: bool,
    pub(crate) has_after_persist: bool,
}

impl LeaderSync {
    /// `max_delay == 0` disables deferral.
    pub(crate) fn new(max_delay: Duration) -> LeaderSync {
        LeaderSync {
            max_delay,
            deferred_since: None,
            on_path_since: None,
        }
    }

    /// How long the leader waits for a second follower once its own copy is on the
    /// commit path.
    fn grace(&self) -> Duration {
        self.max_delay / 10
    }

    /// Whether the leader's own copy is on the commit path now (see the module docs).
    pub(crate) fn note_on_path(&mut self, on_path: bool, now: Duration) {
        if on_path && self.deferred_since.is_some() {
            self.on_path_since.get_or_insert(now);
        } else {
            self.on_path_since = None;
        }
    }

    /// When the deferred writes fall due by time alone, to wake up then.
    pub(crate) fn deadline(&self) -> Option<Duration> {
        let since = self.deferred_since?;
        let by_delay = since + self.max_delay;
        Some(match self.on_path_since {
            Some(at) => by_delay.min(at + self.grace()),
            None => by_delay,
        })
    }

    /// Whether a Ready may be written now and synced later.
    pub(crate) fn may_defer(&self, facts: ReadyFacts) -> bool {
        !self.max_delay.is_zero()
            && facts.followers_can_commit
            && !facts.has_snapshot
            && !facts.has_after_persist
    }

    /// A Ready was written without an fsync at `now`.
    pub(crate) fn deferred(&mut self, now: Duration) {
        self.deferred_since.get_or_insert(now);
    }

    /// An fsync made everything written durable.
    pub(crate) fn synced(&mut self) {
        self.deferred_since = None;
        self.on_path_since = None;
    }

    /// Whether the deferred writes must be synced now: they have waited `max_delay`, or
    /// the leader's own copy has been on the commit path for the grace, or the executor is
    /// about to wait for input while the followers cannot commit alone.
    pub(crate) fn due(&self, idle: bool, followers_can_commit: bool, now: Duration) -> bool {
        if self.deferred_since.is_none() {
            return false;
        }
        self.deadline().is_some_and(|at| now >= at) || (idle && !followers_can_commit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn facts() -> ReadyFacts {
        ReadyFacts {
            followers_can_commit: true,
            has_snapshot: false,
            has_after_persist: false,
        }
    }

    #[test]
    fn only_a_ready_nobody_waits_for_may_wait_while_followers_can_commit() {
        let s = LeaderSync::new(10 * MS);
        assert!(s.may_defer(facts()));
        let alone = ReadyFacts {
            followers_can_commit: false,
            ..facts()
        };
        assert!(
            !s.may_defer(alone),
            "followers cannot commit without the leader"
        );
        assert!(!s.may_defer(ReadyFacts {
            has_snapshot: true,
            ..facts()
        }));
        assert!(!s.may_defer(ReadyFacts {
            has_after_persist: true,
            ..facts()
        }));
        assert!(
            !LeaderSync::new(Duration::ZERO).may_defer(facts()),
            "disabled"
        );
    }

    #[test]
    fn deferred_writes_fall_due_when_idle_and_needed_or_after_the_delay_from_the_first() {
        let mut s = LeaderSync::new(2 * MS);
        assert!(!s.due(true, false, MS), "nothing deferred");
        s.deferred(MS);
        s.deferred(2 * MS);
        assert!(
            !s.due(true, true, 2 * MS),
            "idle, but the followers commit without us"
        );
        assert!(s.due(true, false, 2 * MS), "idle and needed");
        assert!(!s.due(false, true, 2 * MS));
        assert!(s.due(false, true, 3 * MS), "even while busy");
        s.synced();
        assert!(!s.due(true, false, 10 * MS));
    }

    #[test]
    fn once_the_leaders_copy_is_on_the_commit_path_it_waits_only_a_grace() {
        let mut s = LeaderSync::new(10 * MS);
        s.note_on_path(true, MS);
        assert_eq!(s.deadline(), None, "nothing deferred");
        s.deferred(MS);
        assert_eq!(s.deadline(), Some(11 * MS));
        s.note_on_path(true, 2 * MS);
        s.note_on_path(true, 3 * MS);
        assert_eq!(
            s.deadline(),
            Some(3 * MS),
            "a tenth of the delay after it got there"
        );
        assert!(!s.due(false, true, 2 * MS + MS / 2));
        assert!(s.due(false, true, 3 * MS));
        s.note_on_path(false, 3 * MS);
        assert!(!s.due(false, true, 3 * MS), "the other follower answered");
        s.note_on_path(true, 4 * MS);
        s.synced();
        assert_eq!(s.deadline(), None);
    }
}
