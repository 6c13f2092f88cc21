//! Switching the core to another configuration: the voters and learners it replicates
//! to, and the quorum every decision needs from then on (`membership/`).
//!
//! A leader keeps a progress for every other member: a new member starts probing at the
//! end of the log (it catches up, from a snapshot if the log no longer reaches back far
//! enough); a member that left is forgotten. A new quorum may already hold more of the
//! log, or already confirm a read round, so both are re-checked at once.

use super::progress::Progress;
use super::{Membership, RaftCore, Role};
use crate::types::NodeId;

impl RaftCore {
    /// Switches to `membership`.
    // Called by the tests until configuration entries apply through it.
    #[allow(dead_code)]
    pub(crate) fn set_membership(&mut self, membership: Membership) {
        tracing::info!(node = %self.id, from = %self.membership, to = %membership, "configuration changed");
        self.membership = membership;
        let id = self.id;
        self.peers = self
            .membership
            .members()
            .into_iter()
            .filter(|m| *m != id)
            .collect();
        if self.role != Role::Leader {
            return;
        }
        let peers: Vec<NodeId> = self.peers.clone();
        self.progress.retain(|p, _| peers.contains(p));
        let next = self.log.last_index().next();
        let max_inflight = self.config.max_inflight_appends;
        for peer in peers {
            self.progress
                .entry(peer)
                .or_insert_with(|| Progress::new(next, max_inflight));
        }
        self.maybe_commit();
        self.maybe_finish_read_round();
        self.flush.appends = true;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;
    use crate::core::membership::MemberChange;
    use bytes::Bytes;

    /// One heartbeat interval of the leader (node 1): followers learn the commit index,
    /// and peers whose messages were cut are probed again.
    fn heartbeat(net: &mut Net) {
        for _ in 0..net.core(1).config.heartbeat_interval_ticks {
            net.core(1).tick();
        }
        net.settle();
    }

    fn joint(net: &mut Net, changes: &[MemberChange]) -> Membership {
        let m = net
            .core(1)
            .membership()
            .enter_joint(false, changes)
            .unwrap();
        for id in 1..=net.cores.len() as u64 {
            net.core(id).set_membership(m.clone());
        }
        m
    }

    /// (1 2 3)&&(1 4 5)... here (1 2 4 5)&&(1 2 3): with 3 cut off, the outgoing set still
    /// has a majority (1, 2); cut 4 and 5 too and the incoming set has none, so nothing
    /// new commits, though 1, 2 and 3 were a majority of the old configuration.
    #[test]
    fn a_joint_configuration_commits_only_with_both_majorities() {
        let mut net = Net::with_voters(5, |_| {});
        let simple = Membership::from_voters([n(1), n(2), n(3)]);
        for id in 1..=5 {
            net.core(id).set_membership(simple.clone());
        }
        net.elect(1);
        let m = joint(
            &mut net,
            &[
                MemberChange::AddVoter(n(4)),
                MemberChange::AddVoter(n(5)),
                MemberChange::Remove(n(3)),
            ],
        );
        assert_eq!(m.to_string(), "voters=(1 2 4 5)&&(1 2 3)");
        net.settle();
        net.isolate(3);
        let (index, _) = net.core(1).propose(Bytes::from_static(b"a")).unwrap();
        net.settle();
        assert_eq!(
            net.core(1).commit_index(),
            index,
            "1, 2 are a majority of (1 2 3); 1, 2, 4, 5 of the new set"
        );
        net.heal();
        net.isolate(4);
        net.isolate(5);
        let (index, _) = net.core(1).propose(Bytes::from_static(b"b")).unwrap();
        net.settle();
        assert!(
            net.core(1).commit_index() < index,
            "1, 2, 3 are no majority of (1 2 4 5)"
        );
        net.heal();
        // A replicating peer counts as stalled after a heartbeat without progress.
        heartbeat(&mut net);
        heartbeat(&mut net);
        assert_eq!(
            net.core(1).commit_index(),
            index,
            "committed once 4 and 5 are back"
        );
    }

    /// A learner receives the log but never counts and never campaigns.
    #[test]
    fn learners_replicate_but_never_count_or_campaign() {
        let mut net = Net::with_voters(3, |_| {});
        let mut m = Membership::from_voters([n(1), n(2)]);
        m.learners.insert(n(3));
        for id in 1..=3 {
            net.core(id).set_membership(m.clone());
        }
        net.elect(1);
        let (index, _) = net.core(1).propose(Bytes::from_static(b"x")).unwrap();
        net.settle();
        heartbeat(&mut net);
        assert_eq!(net.core(3).commit_index(), index, "the learner has the log");
        net.isolate(2);
        let (index, _) = net.core(1).propose(Bytes::from_static(b"y")).unwrap();
        net.settle();
        assert!(
            net.core(1).commit_index() < index,
            "the learner's copy does not count"
        );
        let term = net.core(3).term();
        for _ in 0..100 {
            net.core(3).tick();
        }
        assert_eq!(net.core(3).term(), term, "a learner never campaigns");
    }
}
