//! Configuration changes: from a configuration and a list of single-member changes, the
//! next configuration, or why it would be unsafe. PURE.
//!
//! Three operations (etcd-io/raft's `confchange.Changer`, raft-rs's `Changer`):
//! - [`Membership::apply_simple`]: changes that alter the voters by at most one member
//!   (any two majorities of the old and new voter sets then intersect, thesis 4.2); any
//!   number of learner changes come along;
//! - [`Membership::enter_joint`]: any changes, through a joint configuration whose
//!   decisions need a majority of both the old and the new voters (thesis 4.3);
//! - [`Membership::leave_joint`]: the new voters alone; demoted voters become learners.
//!
//! Each returns a new configuration and leaves `self` untouched; a refused change
//! changes nothing.

use super::Membership;
use crate::types::NodeId;

/// One member's change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberChange {
    /// Make `id` a voter (new, or a promoted learner).
    AddVoter(NodeId),
    /// Make `id` a learner (new, or a demoted voter).
    AddLearner(NodeId),
    /// Remove `id` (voter or learner).
    Remove(NodeId),
}

/// Why a change is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// A joint configuration can only be left, not entered again.
    #[error("the configuration is already joint")]
    AlreadyJoint,
    /// Leaving needs a joint configuration.
    #[error("cannot leave a configuration that is not joint")]
    NotJoint,
    /// A simple change was asked while joint: leave first.
    #[error("cannot apply a simple change to a joint configuration")]
    SimpleInJoint,
    /// A configuration without voters cannot be made joint (it could never decide).
    #[error("cannot make a configuration without voters joint")]
    ZeroVoters,
    /// The change would leave no voter.
    #[error("the change removes every voter")]
    RemovesAllVoters,
    /// A simple change may add or remove one voter at most.
    #[error("more than one voter changed without a joint configuration")]
    TooManyVoterChanges,
    /// The id was removed from the cluster once: ids are never reused.
    #[error("node {0} was removed from the cluster; its id cannot be added again")]
    RemovedId(NodeId),
    /// The leader would remove or demote itself: transfer leadership first (the new
    /// leader then proposes the change).
    #[error("the change removes or demotes the leader: transfer leadership first")]
    RemovesLeader,
    /// A configuration breaks an invariant (`Membership::check`).
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Membership {
    /// The configuration after `changes`, which alter the voters by one member at most.
    ///
    /// # Errors
    /// `SimpleInJoint`, `RemovesAllVoters`, `TooManyVoterChanges`.
    pub fn apply_simple(&self, changes: &[MemberChange]) -> Result<Membership, ChangeError> {
        if self.is_joint() {
            return Err(ChangeError::SimpleInJoint);
        }
        let mut next = self.clone();
        next.apply_all(changes)?;
        if self.voters.symmetric_difference(&next.voters).count() > 1 {
            return Err(ChangeError::TooManyVoterChanges);
        }
        next.check()?;
        Ok(next)
    }

    /// The joint configuration that moves from the current voters to the voters after
    /// `changes`. With `auto_leave`, the leader leaves it by itself once it is applied.
    ///
    /// # Errors
    /// `AlreadyJoint`, `ZeroVoters`, `RemovesAllVoters`.
    pub fn enter_joint(
        &self,
        auto_leave: bool,
        changes: &[MemberChange],
    ) -> Result<Membership, ChangeError> {
        if self.is_joint() {
            return Err(ChangeError::AlreadyJoint);
        }
        if self.voters.is_empty() {
            return Err(ChangeError::ZeroVoters);
        }
        let mut next = self.clone();
        next.voters_outgoing = self.voters.clone();
        next.apply_all(changes)?;
        next.auto_leave = auto_leave;
        next.check()?;
        Ok(next)
    }

    /// The configuration that ends a joint one: the incoming voters alone, and the
    /// demoted voters (`learners_next`) as learners.
    ///
    /// # Errors
    /// `NotJoint`.
    pub fn leave_joint(&self) -> Result<Membership, ChangeError> {
        if !self.is_joint() {
            return Err(ChangeError::NotJoint);
        }
        let mut next = self.clone();
        next.learners.append(&mut next.learners_next);
        next.voters_outgoing.clear();
        next.auto_leave = false;
        next.check()?;
        Ok(next)
    }

    fn apply_all(&mut self, changes: &[MemberChange]) -> Result<(), ChangeError> {
        for change in changes {
            match *change {
                MemberChange::AddVoter(id) | MemberChange::AddLearner(id)
                    if self.removed.contains(&id) =>
                {
                    return Err(ChangeError::RemovedId(id));
                }
                MemberChange::AddVoter(id) => self.make_voter(id),
                MemberChange::AddLearner(id) => self.make_learner(id),
                MemberChange::Remove(id) => {
                    if self.contains(id) {
                        self.removed.insert(id);
                    }
                    self.remove(id);
                }
            }
        }
        if self.voters.is_empty() {
            return Err(ChangeError::RemovesAllVoters);
        }
        Ok(())
    }

    fn make_voter(&mut self, id: NodeId) {
        self.learners.remove(&id);
        self.learners_next.remove(&id);
        self.voters.insert(id);
    }

    fn make_learner(&mut self, id: NodeId) {
        if self.learners.contains(&id) {
            return;
        }
        self.remove(id);
        // Still a voter on the outgoing side: a learner only once the joint configuration
        // is left (a member cannot be both a voter and a learner).
        if self.voters_outgoing.contains(&id) {
            self.learners_next.insert(id);
        } else {
            self.learners.insert(id);
        }
    }

    fn remove(&mut self, id: NodeId) {
        self.voters.remove(&id);
        self.learners.remove(&id);
        self.learners_next.remove(&id);
    }
}

#[cfg(test)]
mod tests;
