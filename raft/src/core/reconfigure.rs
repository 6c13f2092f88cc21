//! Switching the core to another configuration: the voters and learners it replicates
//! to, and the quorum every decision needs from then on (`membership/`).
//!
//! A configuration travels through the log (`EntryKind::Membership`, data
//! [`MembershipChange`]) and takes effect when the core hands the entry out as committed
//! (the etcd-io/raft and raft-rs model), on every node alike. The rules that keep it safe:
//! - one change at a time: a leader refuses a change while its last one is unapplied;
//! - a new leader refuses changes until it has applied the first entry of its term
//!   (Ongaro's single-server bug: an uncommitted change of an earlier leader could
//!   otherwise be overwritten by one whose majorities do not intersect it);
//! - a change names the configuration it expects (`expected_index`) and is refused, at
//!   proposal and again when applied, if that is no longer the configuration;
//! - a node with a committed, unapplied change does not campaign (it would count votes
//!   under a configuration that is already gone);
//! - a leader leaves a joint configuration with `auto_leave` by itself once it is
//!   applied.
//!
//! A leader keeps a progress for every other member: a new member starts probing at the
//! end of the log (it catches up, from a snapshot if the log no longer reaches back far
//! enough); a member that left is forgotten. A new quorum may already hold more of the
//! log, or already confirm a read round, so both are re-checked at once.
//!
//! A leader refuses to remove or demote itself (transfer leadership first). One that ends
//! up outside the voters anyway (an earlier leader's change; elected as an outgoing-only
//! voter of a joint configuration) keeps leading and hands leadership to a caught-up
//! incoming voter (`maybe_hand_off_leadership`).

use super::membership::{ChangeError, MembershipChange};
use super::progress::Progress;
use super::{Membership, RaftCore, Role};
use crate::error::ProposeError;
use crate::types::{ConfState, Entry, EntryKind, LogIndex, NodeId, Term};

impl RaftCore {
    /// Proposes a configuration change (leader only). It takes effect when applied.
    ///
    /// # Errors
    /// `NotLeader`, `TransferInProgress`, `LeaderNotReady` (a new leader that has not
    /// applied its first entry), `MembershipChangePending` (one change at a time),
    /// `StaleMembership` (the configuration is not at `expected_index`),
    /// `MembershipChangeRefused` (an unsafe or impossible change).
    pub fn propose_membership(
        &mut self,
        change: MembershipChange,
    ) -> Result<(LogIndex, Term), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader_hint: self.leader,
            });
        }
        if self.transfer.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        if self.log.applied() < self.term_start_index {
            return Err(ProposeError::LeaderNotReady);
        }
        if self.pending_membership_index > self.log.applied() {
            return Err(ProposeError::MembershipChangePending {
                index: self.pending_membership_index,
            });
        }
        self.check_expected(&change)?;
        let next = change.apply_to(&self.membership)?;
        if !next.voters.contains(&self.id) {
            return Err(ChangeError::RemovesLeader.into());
        }
        let (index, term) = self.append_leader_entry(EntryKind::Membership, change.encode());
        self.pending_membership_index = index;
        tracing::info!(node = %self.id, %index, ?change, "configuration change proposed");
        Ok((index, term))
    }

    /// The configuration's own index (that of the entry that made it; zero for the
    /// bootstrap voters).
    pub fn membership_index(&self) -> LogIndex {
        self.membership_index
    }

    fn check_expected(&self, change: &MembershipChange) -> Result<(), ProposeError> {
        if change.expected_index != LogIndex::ZERO && change.expected_index != self.membership_index
        {
            return Err(ProposeError::StaleMembership {
                expected: change.expected_index,
                current: self.membership_index,
            });
        }
        Ok(())
    }

    /// Takes the configuration entries among `committed` (being handed out) into effect,
    /// in order. An entry that no longer applies (it could only be refused the same way
    /// on every node) is skipped with a warning.
    pub(super) fn apply_membership_entries(&mut self, committed: &[Entry]) {
        for entry in committed.iter().filter(|e| e.kind == EntryKind::Membership) {
            let next = MembershipChange::decode(&entry.data)
                .map_err(|reason| format!("cannot decode it: {reason}"))
                .and_then(|change| {
                    self.check_expected(&change).map_err(|e| e.to_string())?;
                    change.apply_to(&self.membership).map_err(|e| e.to_string())
                });
            match next {
                Ok(next) => {
                    self.set_membership(next.clone());
                    self.membership_index = entry.index;
                    self.conf_history.push(ConfState {
                        membership: next,
                        index: entry.index,
                    });
                }
                Err(reason) => {
                    tracing::warn!(node = %self.id, index = %entry.index, %reason,
                        "configuration entry skipped");
                }
            }
        }
        self.maybe_auto_leave();
    }

    /// A leader in a joint configuration with `auto_leave`, once it is applied, proposes
    /// to leave it.
    fn maybe_auto_leave(&mut self) {
        if !self.membership.voters.contains(&self.id) {
            // An outgoing-only leader does not leave the joint configuration itself: it
            // hands leadership to an incoming voter, which will.
            self.maybe_hand_off_leadership();
            return;
        }
        let ready = self.role == Role::Leader
            && self.membership.is_joint()
            && self.membership.auto_leave
            && self.transfer.is_none()
            && self.pending_membership_index <= self.log.applied()
            && self.log.applied() >= self.term_start_index;
        if !ready {
            return;
        }
        let leave = MembershipChange::leave_joint();
        let (index, _) = self.append_leader_entry(EntryKind::Membership, leave.encode());
        self.pending_membership_index = index;
        tracing::info!(node = %self.id, %index, "leaving the joint configuration");
    }

    /// Whether a committed configuration entry waits to be applied.
    pub(super) fn has_unapplied_membership_change(&self) -> bool {
        self.log.has_kind_in(
            self.log.applied(),
            self.log.committed(),
            EntryKind::Membership,
        )
    }

    /// Switches to `membership`.
    pub(crate) fn set_membership(&mut self, membership: Membership) {
        tracing::info!(node = %self.id, from = %self.membership, to = %membership, "configuration changed");
        self.membership = std::sync::Arc::new(membership);
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
        self.maybe_hand_off_leadership();
    }

    /// A leader that is no longer a voter (removed or demoted by a change an earlier
    /// leader proposed) keeps leading, so that the voters learn the commit index and
    /// the log it holds, and hands leadership to the most caught-up voter (retried every
    /// heartbeat until one takes over). Stepping down at once could leave the voters
    /// unable to elect anyone: a voter still in the configuration before the change may
    /// need this node's vote, which its longer log would refuse.
    pub(super) fn maybe_hand_off_leadership(&mut self) {
        if self.role != Role::Leader || self.transfer.is_some() {
            return;
        }
        let leaving = !self.membership.is_voter(self.id)
            || (self.membership.is_joint() && !self.membership.voters.contains(&self.id));
        if !leaving {
            return;
        }
        // Prefer the incoming voters: they stay.
        let target = self
            .membership
            .voters
            .iter()
            .filter(|v| **v != self.id)
            .max_by_key(|v| {
                self.progress
                    .get(v)
                    .map_or(LogIndex::ZERO, |p| p.match_index)
            })
            .copied();
        if let Some(target) = target {
            tracing::info!(node = %self.id, %target, "leaving the configuration: handing leadership over");
            self.start_transfer(target);
        }
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

    use crate::core::membership::Transition;
    use crate::error::ProposeError;
    use crate::message::{AppendEntries, MessageBody};

    fn change(transition: Transition, changes: &[MemberChange]) -> MembershipChange {
        MembershipChange {
            transition,
            changes: changes.to_vec(),
            expected_index: LogIndex::ZERO,
            context: Bytes::new(),
        }
    }

    fn simple(changes: &[MemberChange]) -> MembershipChange {
        change(Transition::Simple, changes)
    }

    /// Nodes 1..=`nodes` that all start from the voters (1 2 3); node 1 leads.
    fn cluster_of_three_and_spares(nodes: u64) -> Net {
        let mut net = Net::with_voters(nodes, |_| {});
        let three = Membership::from_voters([n(1), n(2), n(3)]);
        for id in 1..=nodes {
            net.core(id).set_membership(three.clone());
        }
        net.elect(1);
        net
    }

    fn memberships(net: &mut Net, ids: &[u64]) -> Vec<String> {
        ids.iter()
            .map(|id| net.core(*id).membership().to_string())
            .collect()
    }

    #[test]
    fn a_learner_is_added_catches_up_and_is_promoted() {
        let mut net = cluster_of_three_and_spares(4);
        let (index, _) = net
            .core(1)
            .propose_membership(simple(&[MemberChange::AddLearner(n(4))]))
            .unwrap();
        net.settle();
        heartbeat(&mut net);
        assert_eq!(
            memberships(&mut net, &[1, 2, 3, 4]),
            vec!["voters=(1 2 3) learners=(4)"; 4],
            "applied everywhere, the learner included"
        );
        assert_eq!(net.core(4).membership_index(), index);
        assert_eq!(net.core(4).commit_index(), net.core(1).commit_index());
        net.core(1)
            .propose_membership(simple(&[MemberChange::AddVoter(n(4))]))
            .unwrap();
        net.settle();
        heartbeat(&mut net);
        assert_eq!(
            memberships(&mut net, &[1, 2, 3, 4]),
            vec!["voters=(1 2 3 4)"; 4]
        );
    }

    #[test]
    fn one_change_at_a_time_and_never_a_stale_one() {
        let mut net = cluster_of_three_and_spares(5);
        let (first, _) = net
            .core(1)
            .propose_membership(simple(&[MemberChange::AddLearner(n(4))]))
            .unwrap();
        assert_eq!(
            net.core(1)
                .propose_membership(simple(&[MemberChange::AddLearner(n(5))])),
            Err(ProposeError::MembershipChangePending { index: first })
        );
        net.settle();
        let mut stale = simple(&[MemberChange::AddLearner(n(5))]);
        stale.expected_index = LogIndex::ZERO.next();
        assert_eq!(
            net.core(1).propose_membership(stale.clone()),
            Err(ProposeError::StaleMembership {
                expected: LogIndex::ZERO.next(),
                current: first
            })
        );
        stale.expected_index = first;
        net.core(1).propose_membership(stale).unwrap();
        net.settle();
        assert_eq!(
            net.core(1).membership().to_string(),
            "voters=(1 2 3) learners=(4 5)"
        );
        assert!(matches!(
            net.core(1).propose_membership(simple(&[
                MemberChange::Remove(n(1)),
                MemberChange::Remove(n(2)),
                MemberChange::Remove(n(3))
            ])),
            Err(ProposeError::MembershipChangeRefused(_))
        ));
    }

    /// Ongaro's single-server change bug needs a new leader to change the configuration
    /// before it has committed an entry of its own term; that is refused here.
    #[test]
    fn a_new_leader_refuses_changes_until_its_first_entry_is_applied() {
        let mut core = core(1, 3);
        core.campaign(true);
        core.step(vote_grant(2, 1, 1));
        assert!(core.is_leader());
        let rd = ready_persisted(&mut core);
        assert_eq!(rd.entries.len(), 1, "the no-op");
        assert_eq!(
            core.propose_membership(simple(&[MemberChange::AddLearner(n(4))])),
            Err(ProposeError::LeaderNotReady)
        );
        core.step(append_ok(2, 1, 1, 1));
        ready_persisted(&mut core);
        core.propose_membership(simple(&[MemberChange::AddLearner(n(4))]))
            .unwrap();
    }

    #[test]
    fn a_joint_change_with_auto_leave_ends_by_itself() {
        let mut net = cluster_of_three_and_spares(4);
        net.core(1)
            .propose_membership(change(
                Transition::EnterJoint { auto_leave: true },
                &[MemberChange::AddVoter(n(4)), MemberChange::Remove(n(3))],
            ))
            .unwrap();
        net.settle();
        heartbeat(&mut net);
        heartbeat(&mut net);
        assert_eq!(
            memberships(&mut net, &[1, 2, 4]),
            vec!["voters=(1 2 4)"; 3],
            "entered, then left without being asked"
        );
        // Node 3 may or may not have seen the leave (it is out of the configuration); it
        // never campaigns once it is out.
        if !net.core(3).membership().is_voter(n(3)) {
            let term = net.core(3).term();
            for _ in 0..100 {
                net.core(3).tick();
            }
            assert_eq!(net.core(3).term(), term, "a removed node never campaigns");
        }
    }

    #[test]
    fn a_node_with_a_committed_unapplied_change_does_not_campaign() {
        let mut follower = core(2, 3);
        let entry = Entry {
            index: LogIndex(1),
            term: Term(1),
            kind: EntryKind::Membership,
            data: simple(&[MemberChange::AddLearner(n(4))]).encode(),
        };
        let ae = AppendEntries {
            prev_log_index: LogIndex::ZERO,
            prev_log_term: Term(0),
            entries: vec![entry],
            leader_commit: LogIndex(1),
        };
        follower.step(msg(1, 2, 1, MessageBody::AppendEntries(ae)));
        for _ in 0..100 {
            follower.tick();
        }
        assert_eq!(
            follower.term(),
            Term(1),
            "no campaign before the change is applied"
        );
        ready_persisted(&mut follower);
        ready_persisted(&mut follower);
        assert_eq!(
            follower.membership().to_string(),
            "voters=(1 2 3) learners=(4)"
        );
        tick_until_campaign(&mut follower);
        assert!(follower.term() > Term(1), "campaigns once it is applied");
    }

    /// A snapshot records the configuration in effect at its index; a node restarted
    /// from it, or a follower that installs it, takes that configuration, not the
    /// bootstrap voters.
    #[test]
    fn the_configuration_travels_in_snapshots() {
        let mut net = cluster_of_three_and_spares(4);
        net.isolate(4);
        let (index, _) = net
            .core(1)
            .propose_membership(simple(&[MemberChange::AddLearner(n(4))]))
            .unwrap();
        net.settle();
        let applied = net.core(1).status().applied;
        net.compact(1, applied, Bytes::from_static(b"state"));
        let stored = net.stored_snapshots[&n(1)].clone();
        let conf = stored.conf.clone().expect("the configuration is recorded");
        assert_eq!(conf.membership.to_string(), "voters=(1 2 3) learners=(4)");
        assert_eq!(conf.index, index);

        let initial = crate::types::InitialState {
            hard_state: crate::types::HardState {
                term: net.core(1).term(),
                vote: None,
                commit: stored.meta.index,
            },
            snapshot: Some(stored),
            entries: Vec::new(),
        };
        let restarted = RaftCore::new(config(1, 3), initial).unwrap();
        assert_eq!(
            restarted.membership().to_string(),
            "voters=(1 2 3) learners=(4)"
        );
        assert_eq!(restarted.membership_index(), index);

        assert_eq!(net.core(4).membership().to_string(), "voters=(1 2 3)");
        net.heal();
        heartbeat(&mut net);
        heartbeat(&mut net);
        assert_eq!(
            net.core(4).membership().to_string(),
            "voters=(1 2 3) learners=(4)",
            "the learner learned of itself from the snapshot"
        );
        assert_eq!(net.core(4).membership_index(), index);
    }
}
