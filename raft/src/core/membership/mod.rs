//! Who is in the cluster, and what a quorum of it is: the voters (one set, or two during
//! a joint change), the learners, and the voters being demoted to learners when a joint
//! change ends. PURE.
//!
//! The model is etcd-io/raft's and raft-rs's: a configuration travels through the log
//! and takes effect when applied; a change of more than one voter goes through a joint
//! configuration (`voters` = the incoming set, `voters_outgoing` = the set it replaces),
//! in which every quorum decision needs a majority of *each* set (thesis 4.3). Learners
//! receive the log but never count. `change.rs` computes configurations from changes and
//! refuses the unsafe ones; `joint.rs` answers the quorum questions (commit index, vote
//! tally, "did a quorum answer?") under the joint rule.
//!
//! Invariants (checked by [`Membership::check`], kept by every change):
//! - a learner is in neither voter set;
//! - `learners_next` holds only outgoing voters that are not incoming voters (demoted
//!   during a joint change: they become learners when it ends);
//! - outside a joint configuration, `voters_outgoing` and `learners_next` are empty and
//!   `auto_leave` is false;
//! - no removed id is an incoming voter or a learner (it may still be an outgoing voter
//!   until the joint configuration is left).

mod change;
mod entry;
mod joint;

pub use change::{ChangeError, MemberChange};
pub use entry::{
    conf_from_wire, conf_to_wire, decode_conf, encode_conf, MembershipChange, Transition,
};

use crate::types::NodeId;
use std::collections::BTreeSet;
use std::fmt;

/// A cluster configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Membership {
    /// The voters (in a joint configuration: the incoming set).
    pub voters: BTreeSet<NodeId>,
    /// In a joint configuration, the voters being replaced; empty otherwise.
    pub voters_outgoing: BTreeSet<NodeId>,
    /// Members that receive the log but do not vote.
    pub learners: BTreeSet<NodeId>,
    /// Outgoing voters that become learners when the joint configuration is left.
    pub learners_next: BTreeSet<NodeId>,
    /// Whether the leader leaves the joint configuration by itself once it is applied.
    pub auto_leave: bool,
    /// Every id ever removed: never added again (a node's id names its data; a removed
    /// node that came back under its old id could vote with a log the cluster forgot).
    /// History, not configuration: [`fmt::Display`] leaves it out.
    pub removed: BTreeSet<NodeId>,
}

impl Membership {
    /// A simple configuration of `voters`.
    pub fn from_voters(voters: impl IntoIterator<Item = NodeId>) -> Membership {
        Membership {
            voters: voters.into_iter().collect(),
            ..Membership::default()
        }
    }

    /// Whether this is a joint configuration.
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// Whether `id` votes (in either set of a joint configuration).
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.voters_outgoing.contains(&id)
    }

    /// Whether `id` is a learner (and not a voter).
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id)
    }

    /// Whether `id` is a member at all (voter or learner).
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Every member, voters and learners, in id order, once each.
    pub fn members(&self) -> BTreeSet<NodeId> {
        self.voters
            .iter()
            .chain(&self.voters_outgoing)
            .chain(&self.learners)
            .copied()
            .collect()
    }

    /// Every voter, of either set, in id order, once each.
    pub fn all_voters(&self) -> BTreeSet<NodeId> {
        self.voters.union(&self.voters_outgoing).copied().collect()
    }

    /// Checks the invariants in the module docs.
    ///
    /// # Errors
    /// The first invariant broken, as a [`ChangeError::Invalid`].
    pub fn check(&self) -> Result<(), ChangeError> {
        let invalid = |what: String| Err(ChangeError::Invalid(what));
        if let Some(id) = self.learners.iter().find(|id| self.is_voter(**id)) {
            return invalid(format!("{id} is both a learner and a voter"));
        }
        if let Some(id) = self
            .removed
            .iter()
            .find(|id| self.voters.contains(id) || self.learners.contains(id))
        {
            return invalid(format!("{id} was removed but is a member"));
        }
        for id in &self.learners_next {
            if !self.voters_outgoing.contains(id) || self.voters.contains(id) {
                return invalid(format!(
                    "{id} is in learners_next but not an outgoing-only voter"
                ));
            }
        }
        if !self.is_joint() && (!self.learners_next.is_empty() || self.auto_leave) {
            return invalid("learners_next or auto_leave outside a joint configuration".into());
        }
        Ok(())
    }
}

/// `voters=(1 2 3)&&(1) learners=(4) learners_next=(5) autoleave`, the notation of
/// etcd-io/raft's and raft-rs's configuration tests.
impl fmt::Display for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |s: &BTreeSet<NodeId>| {
            let ids: Vec<String> = s.iter().map(|id| id.0.to_string()).collect();
            format!("({})", ids.join(" "))
        };
        write!(f, "voters={}", set(&self.voters))?;
        if self.is_joint() {
            write!(f, "&&{}", set(&self.voters_outgoing))?;
        }
        if !self.learners.is_empty() {
            write!(f, " learners={}", set(&self.learners))?;
        }
        if !self.learners_next.is_empty() {
            write!(f, " learners_next={}", set(&self.learners_next))?;
        }
        if self.auto_leave {
            write!(f, " autoleave")?;
        }
        Ok(())
    }
}
