//! Checks on the state a node recovers from disk before the core trusts it: a broken
//! recovered state is a [`ConfigError`], never a panic later.
//!
//! Invariants established for `RaftCore::new`: entries are contiguous right after the
//! snapshot, their terms never decrease, the commit index is within the log, and a
//! recorded vote names a voter.
//!
//! Entries (or a snapshot) of a term newer than the recovered hard state's are legal: a
//! Ready persists its snapshot and entries before its hard state, and a crash between
//! the records keeps the former only. [`current_term`] then starts the node in the newest
//! term it has seen, with no vote — safe, because nothing revealing that term or a vote in
//! it was sent before it was durable.

use crate::error::ConfigError;
use crate::types::InitialState;

/// Checks that the recovered state is internally consistent.
pub(super) fn validate_initial_state(initial: &InitialState) -> Result<(), ConfigError> {
    let meta = initial
        .snapshot
        .as_ref()
        .map(|s| s.meta)
        .unwrap_or_default();
    let mut expected = meta.index.next();
    let mut prev_term = meta.term;
    for entry in &initial.entries {
        if entry.index != expected {
            return Err(ConfigError(format!(
                "recovered entries are not contiguous: expected index {expected}, found {}",
                entry.index
            )));
        }
        if entry.term < prev_term {
            return Err(ConfigError(format!(
                "recovered entry {} has term {} after term {prev_term}",
                entry.index, entry.term
            )));
        }
        prev_term = entry.term;
        expected = expected.next();
    }
    let last = expected.prev();
    if initial.hard_state.commit > last {
        return Err(ConfigError(format!(
            "recovered commit index {} is beyond the last index {last}",
            initial.hard_state.commit
        )));
    }
    // A recovered vote may name any node: configurations change through the log, so the
    // candidate may be a member that `config.voters` does not list.
    Ok(())
}

/// The term a recovering node starts in: the newest of the hard state's, the snapshot's
/// and the last entry's. Returns the hard state to run with, which differs from the
/// durable one (term raised, vote cleared) when the log is ahead of it.
pub(super) fn current_term(initial: &InitialState) -> crate::types::HardState {
    let hs = initial.hard_state;
    let snapshot_term = initial
        .snapshot
        .as_ref()
        .map(|s| s.meta.term)
        .unwrap_or_default();
    let log_term = initial.entries.last().map(|e| e.term).unwrap_or_default();
    let newest = hs.term.max(snapshot_term).max(log_term);
    if newest > hs.term {
        crate::types::HardState {
            term: newest,
            vote: None,
            commit: hs.commit,
        }
    } else {
        hs
    }
}
