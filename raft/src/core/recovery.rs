//! Checks on the state a node recovers from disk before the core trusts it: a broken
//! recovered state is a [`ConfigError`], never a panic later.
//!
//! Invariants established for `RaftCore::new`: entries are contiguous right after the
//! snapshot, their terms never decrease and never exceed the recovered term, the commit
//! index is within the log, and a recorded vote names a voter.

use crate::config::Config;
use crate::error::ConfigError;
use crate::types::InitialState;

/// Checks that the recovered state is internally consistent.
pub(super) fn validate_initial_state(
    config: &Config,
    initial: &InitialState,
) -> Result<(), ConfigError> {
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
        if entry.term < prev_term || entry.term > initial.hard_state.term {
            return Err(ConfigError(format!(
                "recovered entry {} has term {} (previous {prev_term}, current term {})",
                entry.index, entry.term, initial.hard_state.term
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
    if meta.term > initial.hard_state.term {
        return Err(ConfigError(format!(
            "recovered snapshot term {} is beyond the current term {}",
            meta.term, initial.hard_state.term
        )));
    }
    if let Some(vote) = initial.hard_state.vote {
        if !config.voters.contains(&vote) {
            return Err(ConfigError(format!(
                "recovered vote for {vote}, which is not a voter"
            )));
        }
    }
    Ok(())
}
