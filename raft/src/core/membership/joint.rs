//! Quorum questions under a configuration: a majority of the voters, or, in a joint
//! configuration, a majority of each voter set (thesis 4.3). Learners never count. An
//! empty voter set (the outgoing side of a simple configuration) agrees to everything,
//! so a simple configuration reduces to plain majorities. PURE.

use super::Membership;
use crate::core::quorum::{self, VoteOutcome};
use crate::types::{LogIndex, NodeId};
use std::collections::{BTreeMap, BTreeSet};

impl Membership {
    /// The highest index a quorum holds, given each voter's match index (`match_of`,
    /// which the leader answers for itself too). `scratch` is reused between calls so
    /// the commit path does not allocate. A configuration without voters gives the
    /// maximum index: no voter can hold anything back.
    pub(crate) fn committed_index(
        &self,
        match_of: impl Fn(NodeId) -> LogIndex,
        scratch: &mut Vec<LogIndex>,
    ) -> LogIndex {
        let side = |voters: &BTreeSet<NodeId>, scratch: &mut Vec<LogIndex>| {
            if voters.is_empty() {
                return LogIndex(u64::MAX);
            }
            scratch.clear();
            scratch.extend(voters.iter().map(|v| match_of(*v)));
            quorum::majority_index(scratch)
        };
        side(&self.voters, scratch).min(side(&self.voters_outgoing, scratch))
    }

    /// Where an election stands, given the votes received (voter -> granted; votes of
    /// non-voters are ignored): won once each voter set has a majority of grants, lost
    /// once one of them cannot reach it any more.
    pub(crate) fn vote_outcome(&self, votes: &BTreeMap<NodeId, bool>) -> VoteOutcome {
        let side = |voters: &BTreeSet<NodeId>| {
            if voters.is_empty() {
                return VoteOutcome::Won;
            }
            let cast: BTreeMap<NodeId, bool> = votes
                .iter()
                .filter(|(id, _)| voters.contains(id))
                .map(|(id, granted)| (*id, *granted))
                .collect();
            quorum::vote_outcome(&cast, voters.len())
        };
        match (side(&self.voters), side(&self.voters_outgoing)) {
            (VoteOutcome::Won, VoteOutcome::Won) => VoteOutcome::Won,
            (VoteOutcome::Lost, _) | (_, VoteOutcome::Lost) => VoteOutcome::Lost,
            _ => VoteOutcome::Pending,
        }
    }

    /// Whether the voters for which `ok` holds form a quorum (CheckQuorum's "heard
    /// from", a read round's acknowledgements).
    pub(crate) fn has_quorum(&self, ok: impl Fn(NodeId) -> bool) -> bool {
        let side = |voters: &BTreeSet<NodeId>| {
            voters.is_empty()
                || voters.iter().filter(|v| ok(**v)).count() >= quorum::majority(voters.len())
        };
        side(&self.voters) && side(&self.voters_outgoing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(bits: u8) -> BTreeSet<NodeId> {
        (0..7)
            .filter(|i| bits & (1 << i) != 0)
            .map(|i| NodeId(i + 1))
            .collect()
    }

    fn joint(incoming: u8, outgoing: u8) -> Membership {
        Membership {
            voters: set(incoming),
            voters_outgoing: set(outgoing),
            ..Membership::default()
        }
    }

    /// Brute force: does every non-empty side have a majority satisfying `ok`?
    fn brute_quorum(m: &Membership, ok: impl Fn(NodeId) -> bool) -> bool {
        [&m.voters, &m.voters_outgoing]
            .iter()
            .all(|side| side.is_empty() || 2 * side.iter().filter(|v| ok(**v)).count() > side.len())
    }

    #[test]
    fn a_joint_commit_needs_both_majorities() {
        // (1 2 3)&&(3 4 5): 1, 2 and 3 at 9 is a majority of the new set only.
        let m = joint(0b00111, 0b11100);
        let matches = |id: NodeId| LogIndex(if id.0 <= 3 { 9 } else { 4 });
        assert_eq!(m.committed_index(matches, &mut Vec::new()), LogIndex(4));
        let matches = |id: NodeId| LogIndex(if id.0 <= 4 { 9 } else { 4 });
        assert_eq!(m.committed_index(matches, &mut Vec::new()), LogIndex(9));
    }

    #[test]
    fn learners_never_count() {
        let mut m = Membership::from_voters([NodeId(1)]);
        m.learners = [NodeId(2), NodeId(3)].into();
        let mut votes = BTreeMap::new();
        votes.insert(NodeId(2), true);
        votes.insert(NodeId(3), true);
        assert_eq!(m.vote_outcome(&votes), VoteOutcome::Pending);
        assert!(!m.has_quorum(|id| id != NodeId(1)));
        let matches = |id: NodeId| LogIndex(if id == NodeId(1) { 3 } else { 8 });
        assert_eq!(m.committed_index(matches, &mut Vec::new()), LogIndex(3));
    }

    proptest! {
        #[test]
        fn commit_index_matches_brute_force(
            incoming in 1u8..128, outgoing in 0u8..128, raw in prop::collection::vec(0u64..6, 7),
        ) {
            let m = joint(incoming, outgoing);
            let match_of = |id: NodeId| LogIndex(raw[(id.0 - 1) as usize]);
            let brute = (0..6u64)
                .filter(|i| brute_quorum(&m, |id| match_of(id).0 >= *i))
                .max()
                .unwrap_or(0);
            prop_assert_eq!(m.committed_index(match_of, &mut Vec::new()), LogIndex(brute));
        }

        #[test]
        fn vote_outcome_matches_brute_force(
            incoming in 1u8..128, outgoing in 0u8..128, raw in prop::collection::vec(0u8..3, 7),
        ) {
            // 0: no vote yet, 1: granted, 2: rejected; votes of non-voters included.
            let m = joint(incoming, outgoing);
            let votes: BTreeMap<NodeId, bool> = raw.iter().enumerate()
                .filter(|(_, v)| **v != 0)
                .map(|(i, v)| (NodeId(i as u64 + 1), *v == 1))
                .collect();
            let granted = |id: NodeId| votes.get(&id) == Some(&true);
            let not_rejected = |id: NodeId| votes.get(&id) != Some(&false);
            let brute = if brute_quorum(&m, granted) {
                VoteOutcome::Won
            } else if !brute_quorum(&m, not_rejected) {
                VoteOutcome::Lost
            } else {
                VoteOutcome::Pending
            };
            prop_assert_eq!(m.vote_outcome(&votes), brute);
        }

        #[test]
        fn has_quorum_matches_brute_force(incoming in 1u8..128, outgoing in 0u8..128, ok in 0u8..128) {
            let m = joint(incoming, outgoing);
            let ok = set(ok);
            prop_assert_eq!(m.has_quorum(|id| ok.contains(&id)), brute_quorum(&m, |id| ok.contains(&id)));
        }
    }
}
