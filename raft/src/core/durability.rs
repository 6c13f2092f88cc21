//! Which term and vote are known durable, so that no message reveals a term or vote
//! before it is on stable storage (paper Figure 2: "updated on stable storage before
//! responding to RPCs").
//!
//! Every Ready with a `persist_target()` leaves a mark: its target and the (term, vote)
//! it carries. The driver reports Readies durable in order, so a report of a target
//! makes that mark and every earlier one durable. Marks beyond `MAX_MARKS` outstanding
//! (a driver far behind, or one that never reports) drop the oldest, which only makes
//! the core more conservative: it then waits for a later report.
//!
//! Invariant: the durable term never decreases and never exceeds the current term.

use crate::types::{HardState, LogIndex, NodeId, Term};
use std::collections::VecDeque;

/// Marks outstanding at most (bounds memory if the driver never reports).
const MAX_MARKS: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mark {
    target: (LogIndex, Term),
    term: Term,
    vote: Option<NodeId>,
}

/// The durable (term, vote) and the Readies not yet reported durable.
#[derive(Clone, Debug)]
pub(crate) struct Durability {
    term: Term,
    vote: Option<NodeId>,
    marks: VecDeque<Mark>,
}

impl Durability {
    /// Starts from the recovered (durable) hard state.
    pub(crate) fn recovered(hard_state: &HardState) -> Durability {
        Durability {
            term: hard_state.term,
            vote: hard_state.vote,
            marks: VecDeque::new(),
        }
    }

    /// A Ready with `target` carrying `(term, vote)` was handed out.
    pub(crate) fn handed_out(
        &mut self,
        target: (LogIndex, Term),
        term: Term,
        vote: Option<NodeId>,
    ) {
        if self.marks.len() >= MAX_MARKS {
            self.marks.pop_front();
        }
        self.marks.push_back(Mark { target, term, vote });
    }

    /// The Ready with `target` (the oldest outstanding one with it) is durable.
    pub(crate) fn persisted(&mut self, target: (LogIndex, Term)) {
        let Some(pos) = self.marks.iter().position(|m| m.target == target) else {
            return;
        };
        let mark = self.marks[pos];
        self.marks.drain(..=pos);
        if mark.term >= self.term {
            self.term = mark.term;
            self.vote = mark.vote;
        }
    }

    /// Whether `(term, vote)` is durable.
    pub(crate) fn is_durable(&self, term: Term, vote: Option<NodeId>) -> bool {
        self.term == term && self.vote == vote
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(i: u64, t: u64) -> (LogIndex, Term) {
        (LogIndex(i), Term(t))
    }

    #[test]
    fn a_report_makes_its_ready_and_every_earlier_one_durable() {
        let mut d = Durability::recovered(&HardState::default());
        d.handed_out(target(1, 1), Term(1), Some(NodeId(1)));
        d.handed_out(target(1, 1), Term(2), None);
        d.handed_out(target(2, 2), Term(2), Some(NodeId(3)));
        assert!(d.is_durable(Term(0), None));
        d.persisted(target(1, 1));
        assert!(
            d.is_durable(Term(1), Some(NodeId(1))),
            "the oldest mark with that target"
        );
        d.persisted(target(2, 2));
        assert!(d.is_durable(Term(2), Some(NodeId(3))));
        d.persisted(target(1, 1));
        assert!(
            d.is_durable(Term(2), Some(NodeId(3))),
            "stale report changes nothing"
        );
    }

    #[test]
    fn too_many_outstanding_marks_drop_the_oldest() {
        let mut d = Durability::recovered(&HardState::default());
        for k in 0..(MAX_MARKS as u64 + 1) {
            d.handed_out(target(k, 1), Term(1), None);
        }
        d.persisted(target(0, 1));
        assert!(d.is_durable(Term(0), None), "mark 0 was dropped");
        d.persisted(target(5, 1));
        assert!(d.is_durable(Term(1), None));
    }
}
