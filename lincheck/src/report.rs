//! Turns a failed search into an explanation a person can act on.
//!
//! The explanation names, by index into the checked history: the longest linearizable prefix
//! the search found, the operation that could not be linearized before its return from there
//! (the "blocked" one), and every operation that could have gone next at that point (before
//! the blocked one returns), each marked with whether the model accepts it from the state
//! after the prefix. Rendering is done once,
//! when the explanation is built, so [`Explanation`] does not depend on the model's types.

use std::fmt::{self, Debug, Write as _};

use crate::history::Operation;
use crate::model::Model;
use crate::search::Deepest;

/// How many operations of the linearized prefix the rendered text shows (the last ones).
const PREFIX_OPS_SHOWN: usize = 20;
/// Longest rendered line, in characters; longer ones are cut with an ellipsis.
const LINE_CHARS_MAX: usize = 400;

/// An operation that could have been linearized next when the search got stuck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Index into the checked history.
    pub op: usize,
    /// Whether the model accepts this operation from the state after the prefix. `true`
    /// means it could go next, but every way of continuing after it failed.
    pub accepted_by_model: bool,
}

/// Why a partition is not linearizable: where the search got furthest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// Number of operations in the partition.
    pub partition_len: usize,
    /// The longest linearizable prefix found, as indexes into the history, in order.
    pub linearized: Vec<usize>,
    /// The model state after that prefix (its `Debug` rendering).
    pub state_after: String,
    /// The operation that could not be linearized before its return, after the prefix.
    pub blocked: usize,
    /// Every operation not linearized at that point that could have gone next (its call comes
    /// before `blocked` returns), in call order; includes `blocked`.
    pub candidates: Vec<Candidate>,
    text: String,
}

impl Explanation {
    /// Builds the explanation for `deepest`, whose indexes are positions in `partition`,
    /// which holds indexes into `history`.
    pub(crate) fn new<M: Model>(
        model: &M,
        history: &[Operation<M::Input, M::Output>],
        partition: &[usize],
        deepest: &Deepest<M::State>,
    ) -> Self {
        let candidates = deepest
            .candidates
            .iter()
            .map(|&local| {
                let op = &history[partition[local]];
                let accepted = model.step(&deepest.state, &op.input, &op.output).is_some();
                Candidate {
                    op: partition[local],
                    accepted_by_model: accepted,
                }
            })
            .collect();
        let mut explanation = Self {
            partition_len: partition.len(),
            linearized: deepest
                .linearized
                .iter()
                .map(|&local| partition[local])
                .collect(),
            state_after: format!("{:?}", deepest.state),
            blocked: partition[deepest.blocked],
            candidates,
            text: String::new(),
        };
        explanation.text = explanation.render(history);
        explanation
    }

    fn render<I: Debug, O: Debug>(&self, history: &[Operation<I, O>]) -> String {
        let mut text = String::new();
        let prefix_len = self.linearized.len();
        let _ = writeln!(
            text,
            "longest linearizable prefix: {prefix_len} of {} operations",
            self.partition_len
        );
        let shown = prefix_len.min(PREFIX_OPS_SHOWN);
        if shown < prefix_len {
            let _ = writeln!(
                text,
                "  ... {} earlier operations omitted",
                prefix_len - shown
            );
        }
        for &op in &self.linearized[prefix_len - shown..] {
            let _ = writeln!(text, "  {}", clip(describe(history, op)));
        }
        let _ = writeln!(
            text,
            "state after the prefix: {}",
            clip(self.state_after.clone())
        );
        let _ = writeln!(
            text,
            "operation {} cannot be linearized before it returns; operations that could go next:",
            clip(describe(history, self.blocked))
        );
        for candidate in &self.candidates {
            let verdict = if candidate.accepted_by_model {
                "accepted here, but no continuation after it works"
            } else {
                "rejected by the model in this state"
            };
            let _ = writeln!(
                text,
                "  {}: {verdict}",
                clip(describe(history, candidate.op))
            );
        }
        text
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// One line describing operation `index` of `history`.
pub(crate) fn describe<I: Debug, O: Debug>(history: &[Operation<I, O>], index: usize) -> String {
    let op = &history[index];
    let ret = if op.is_outcome_unknown() {
        "unknown".to_owned()
    } else {
        op.ret.to_string()
    };
    format!(
        "#{index} client {} [call {}, ret {ret}] {:?} -> {:?}",
        op.client_id, op.call, op.input, op.output
    )
}

/// Cuts `line` to at most [`LINE_CHARS_MAX`] characters.
fn clip(line: String) -> String {
    match line.char_indices().nth(LINE_CHARS_MAX) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_short_lines_and_cuts_long_ones_on_char_boundaries() {
        assert_eq!(clip("short".to_owned()), "short");
        let long = "é".repeat(LINE_CHARS_MAX + 5);
        let clipped = clip(long);
        assert_eq!(clipped.chars().count(), LINE_CHARS_MAX + 3);
        assert!(clipped.ends_with("..."));
    }

    #[test]
    fn describe_marks_unknown_returns() {
        let history = vec![Operation::unknown(4, "put", "?", 9)];
        assert_eq!(
            describe(&history, 0),
            "#0 client 4 [call 9, ret unknown] \"put\" -> \"?\""
        );
    }
}
