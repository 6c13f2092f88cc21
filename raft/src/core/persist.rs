//! The core's one record of what is durable: every Ready that asks to persist something
//! leaves a mark keyed by its number, and `RaftCore::on_persist_ready(number)` (raft-rs's
//! name) makes that Ready and every earlier one durable.
//!
//! A mark carries what becomes durable with its Ready: the term and vote as of that Ready,
//! and the log's last position handed out so far (every entry handed out by then is
//! written by then). From the newest durable mark the core learns its durable term and vote
//! (no message may reveal a term or vote before it is on stable storage, paper Figure 2)
//! and the log's durable end (`RaftLog::persisted_to`, which ignores a position the log no
//! longer holds).
//!
//! Invariants: marks are in increasing Ready-number order; the durable term never
//! decreases. Marks beyond `MAX_MARKS` outstanding (an executor that never reports) drop
//! the oldest, which loses nothing: a later mark carries a later position and state.

use crate::types::{HardState, LogIndex, NodeId, Term};
use std::collections::VecDeque;

/// Marks outstanding at most (bounds memory if the executor never reports).
const MAX_MARKS: usize = 1024;

/// What one persisting Ready makes durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mark {
    number: u64,
    term: Term,
    vote: Option<NodeId>,
    /// The log's last (index, term) handed out up to this Ready.
    log_to: (LogIndex, Term),
}

/// The durable term and vote, and the Readies handed out but not yet reported durable.
#[derive(Clone, Debug)]
pub(crate) struct PersistQueue {
    term: Term,
    vote: Option<NodeId>,
    marks: VecDeque<Mark>,
}

impl PersistQueue {
    /// Starts from the recovered (durable) hard state.
    pub(crate) fn recovered(hard_state: &HardState) -> PersistQueue {
        PersistQueue {
            term: hard_state.term,
            vote: hard_state.vote,
            marks: VecDeque::new(),
        }
    }

    /// Ready `number`, which persists something, was handed out while the core was in
    /// `(term, vote)` with its log ending at `log_to`.
    pub(crate) fn handed_out(
        &mut self,
        number: u64,
        term: Term,
        vote: Option<NodeId>,
        log_to: (LogIndex, Term),
    ) {
        if self.marks.len() >= MAX_MARKS {
            self.marks.pop_front();
        }
        self.marks.push_back(Mark {
            number,
            term,
            vote,
            log_to,
        });
    }

    /// Readies up to `number` are durable. Returns the log position they made durable, if
    /// any mark was outstanding.
    pub(crate) fn persisted(&mut self, number: u64) -> Option<(LogIndex, Term)> {
        let mut newest = None;
        while let Some(mark) = self.marks.front().copied() {
            if mark.number > number {
                break;
            }
            self.marks.pop_front();
            newest = Some(mark);
        }
        let mark = newest?;
        if mark.term >= self.term {
            self.term = mark.term;
            self.vote = mark.vote;
        }
        Some(mark.log_to)
    }

    /// Whether `(term, vote)` is durable.
    pub(crate) fn is_durable(&self, term: Term, vote: Option<NodeId>) -> bool {
        self.term == term && self.vote == vote
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(i: u64, t: u64) -> (LogIndex, Term) {
        (LogIndex(i), Term(t))
    }

    #[test]
    fn a_report_makes_its_ready_and_every_earlier_one_durable() {
        let mut q = PersistQueue::recovered(&HardState::default());
        q.handed_out(1, Term(1), Some(NodeId(1)), pos(1, 1));
        q.handed_out(3, Term(2), None, pos(1, 1));
        q.handed_out(4, Term(2), Some(NodeId(3)), pos(2, 2));
        assert!(q.is_durable(Term(0), None));
        assert_eq!(q.persisted(2), Some(pos(1, 1)), "Ready 2 persisted nothing");
        assert!(q.is_durable(Term(1), Some(NodeId(1))));
        assert_eq!(q.persisted(4), Some(pos(2, 2)));
        assert!(q.is_durable(Term(2), Some(NodeId(3))));
        assert_eq!(q.persisted(4), None, "a repeated report changes nothing");
        assert!(q.is_durable(Term(2), Some(NodeId(3))));
    }

    #[test]
    fn too_many_outstanding_marks_drop_the_oldest_without_losing_the_newest_state() {
        let mut q = PersistQueue::recovered(&HardState::default());
        for k in 1..=(MAX_MARKS as u64 + 1) {
            q.handed_out(k, Term(1), None, pos(k, 1));
        }
        assert_eq!(q.persisted(1), None, "mark 1 was dropped");
        assert!(q.is_durable(Term(0), None));
        assert_eq!(q.persisted(5), Some(pos(5, 1)));
        assert!(q.is_durable(Term(1), None));
    }
}
