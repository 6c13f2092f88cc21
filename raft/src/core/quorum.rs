//! Majority arithmetic for a fixed set of voters: the highest log index a majority
//! holds (the commit candidate) and the outcome of a (pre-)vote tally.
//!
//! Invariant: a majority of `n` voters is `n / 2 + 1`, so any two majorities intersect
//! (paper 5.2, 5.4). Both functions are checked against brute force by proptest.

use crate::types::{LogIndex, NodeId};
use std::collections::BTreeMap;

/// The smallest number of voters that forms a majority of `voters`.
pub(crate) fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// The highest index that at least a majority of the voters hold, given each voter's
/// match index. `matches` is reordered in place (callers pass a scratch buffer so the
/// hot path does not allocate). An empty slice gives index 0.
pub(crate) fn majority_index(matches: &mut [LogIndex]) -> LogIndex {
    if matches.is_empty() {
        return LogIndex::ZERO;
    }
    matches.sort_unstable_by(|a, b| b.cmp(a));
    matches[majority(matches.len()) - 1]
}

/// Where an election stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VoteOutcome {
    /// Neither a majority of grants nor of rejections yet.
    Pending,
    /// A majority granted.
    Won,
    /// A majority rejected: this election cannot be won.
    Lost,
}

/// Tallies `votes` (voter -> granted) among `voters` voters.
pub(crate) fn vote_outcome(votes: &BTreeMap<NodeId, bool>, voters: usize) -> VoteOutcome {
    let granted = votes.values().filter(|g| **g).count();
    let rejected = votes.len() - granted;
    let needed = majority(voters);
    if granted >= needed {
        VoteOutcome::Won
    } else if rejected >= needed || voters - rejected < needed {
        VoteOutcome::Lost
    } else {
        VoteOutcome::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Brute force: the largest `i` such that at least a majority hold an index >= i.
    fn brute_majority_index(matches: &[u64]) -> u64 {
        let candidates = matches.iter().copied().chain(std::iter::once(0));
        candidates
            .filter(|i| matches.iter().filter(|m| **m >= *i).count() >= majority(matches.len()))
            .max()
            .unwrap_or(0)
    }

    /// Brute force: won if some majority subset all granted, lost if no completion of
    /// the missing votes can reach a majority of grants.
    fn brute_outcome(granted: usize, rejected: usize, voters: usize) -> VoteOutcome {
        let can_win_with = |extra: usize| granted + extra > voters / 2;
        if can_win_with(0) {
            VoteOutcome::Won
        } else if !can_win_with(voters - granted - rejected) {
            VoteOutcome::Lost
        } else {
            VoteOutcome::Pending
        }
    }

    #[test]
    fn majority_of_small_clusters() {
        assert_eq!([1, 2, 3, 4, 5, 6, 7].map(majority), [1, 2, 2, 3, 3, 4, 4]);
    }

    #[test]
    fn majority_index_of_five() {
        let mut m = [5, 1, 4, 2, 3].map(LogIndex);
        assert_eq!(majority_index(&mut m), LogIndex(3));
    }

    proptest! {
        #[test]
        fn majority_index_matches_brute_force(raw in proptest::collection::vec(0u64..20, 1..8)) {
            let mut matches: Vec<LogIndex> = raw.iter().copied().map(LogIndex).collect();
            prop_assert_eq!(majority_index(&mut matches).0, brute_majority_index(&raw));
        }

        #[test]
        fn vote_outcome_matches_brute_force(voters in 1usize..8, votes in proptest::collection::vec(any::<bool>(), 0..8)) {
            let votes: Vec<bool> = votes.into_iter().take(voters).collect();
            let map: BTreeMap<NodeId, bool> =
                votes.iter().enumerate().map(|(i, g)| (NodeId(i as u64 + 1), *g)).collect();
            let granted = votes.iter().filter(|g| **g).count();
            prop_assert_eq!(
                vote_outcome(&map, voters),
                brute_outcome(granted, votes.len() - granted, voters)
            );
        }
    }
}
