//! A configuration change as it travels through the log: the data of an
//! `EntryKind::Membership` entry (`raftkv.raft.MembershipChange`, protobuf, so that it
//! can gain fields without breaking logs already written). Every node applies the same
//! entry to the same configuration, so they all reach the same next one.

use super::{ChangeError, MemberChange, Membership};
use crate::types::{ConfState, LogIndex, NodeId};
use bytes::Bytes;
use prost::Message as _;
use proto::raft as pb;

/// How a change moves the configuration (see `change.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// At most one voter added or removed.
    Simple,
    /// Any change, through a joint configuration; with `auto_leave` the leader ends it by
    /// itself once it is applied.
    EnterJoint {
        /// Leave automatically.
        auto_leave: bool,
    },
    /// End the joint configuration.
    LeaveJoint,
}

/// A configuration change to propose (`RaftCore::propose_membership`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipChange {
    /// How.
    pub transition: Transition,
    /// Which members change (empty to leave a joint configuration).
    pub changes: Vec<MemberChange>,
    /// The index of the configuration entry the proposer saw: refused if the
    /// configuration changed since (optimistic concurrency). Zero accepts any.
    pub expected_index: LogIndex,
    /// Opaque to Raft: for the application (new members' addresses, say).
    pub context: Bytes,
}

impl MembershipChange {
    /// The change that ends a joint configuration.
    pub fn leave_joint() -> MembershipChange {
        MembershipChange {
            transition: Transition::LeaveJoint,
            changes: Vec::new(),
            expected_index: LogIndex::ZERO,
            context: Bytes::new(),
        }
    }

    /// The configuration this change makes of `current`.
    ///
    /// # Errors
    /// Why the change is refused (`change.rs`).
    pub fn apply_to(&self, current: &Membership) -> Result<Membership, ChangeError> {
        match self.transition {
            Transition::Simple => current.apply_simple(&self.changes),
            Transition::EnterJoint { auto_leave } => current.enter_joint(auto_leave, &self.changes),
            Transition::LeaveJoint => current.leave_joint(),
        }
    }

    /// The entry data.
    pub fn encode(&self) -> Bytes {
        let (transition, auto_leave) = match self.transition {
            Transition::Simple => (pb::membership_change::Transition::Simple, false),
            Transition::EnterJoint { auto_leave } => {
                (pb::membership_change::Transition::EnterJoint, auto_leave)
            }
            Transition::LeaveJoint => (pb::membership_change::Transition::LeaveJoint, false),
        };
        let changes = self
            .changes
            .iter()
            .map(|c| {
                let (kind, id) = match *c {
                    MemberChange::AddVoter(id) => (pb::member_change::Kind::AddVoter, id),
                    MemberChange::AddLearner(id) => (pb::member_change::Kind::AddLearner, id),
                    MemberChange::Remove(id) => (pb::member_change::Kind::Remove, id),
                };
                pb::MemberChange {
                    kind: kind as i32,
                    node_id: id.0,
                }
            })
            .collect();
        let msg = pb::MembershipChange {
            transition: transition as i32,
            auto_leave,
            changes,
            expected_index: self.expected_index.0,
            context: self.context.clone(),
        };
        Bytes::from(msg.encode_to_vec())
    }

    /// Decodes entry data.
    ///
    /// # Errors
    /// A reason when `data` is not a change this build understands (it would have to be
    /// skipped; a node that cannot read its log's configuration must not guess it).
    pub fn decode(data: &[u8]) -> Result<MembershipChange, String> {
        let msg = pb::MembershipChange::decode(data).map_err(|e| e.to_string())?;
        let transition = match pb::membership_change::Transition::try_from(msg.transition) {
            Ok(pb::membership_change::Transition::Simple) => Transition::Simple,
            Ok(pb::membership_change::Transition::EnterJoint) => Transition::EnterJoint {
                auto_leave: msg.auto_leave,
            },
            Ok(pb::membership_change::Transition::LeaveJoint) => Transition::LeaveJoint,
            Err(_) => return Err(format!("unknown transition {}", msg.transition)),
        };
        let changes = msg
            .changes
            .iter()
            .map(|c| {
                if c.node_id == 0 {
                    return Err("node id 0".to_string());
                }
                let id = NodeId(c.node_id);
                match pb::member_change::Kind::try_from(c.kind) {
                    Ok(pb::member_change::Kind::AddVoter) => Ok(MemberChange::AddVoter(id)),
                    Ok(pb::member_change::Kind::AddLearner) => Ok(MemberChange::AddLearner(id)),
                    Ok(pb::member_change::Kind::Remove) => Ok(MemberChange::Remove(id)),
                    Err(_) => Err(format!("unknown member change kind {}", c.kind)),
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(MembershipChange {
            transition,
            changes,
            expected_index: LogIndex(msg.expected_index),
            context: msg.context,
        })
    }
}

/// A recorded configuration, for the wire and the snapshot file.
pub fn conf_to_wire(conf: &ConfState) -> pb::ConfState {
    let ids = |s: &std::collections::BTreeSet<NodeId>| s.iter().map(|id| id.0).collect();
    let m = &conf.membership;
    pb::ConfState {
        voters: ids(&m.voters),
        voters_outgoing: ids(&m.voters_outgoing),
        learners: ids(&m.learners),
        learners_next: ids(&m.learners_next),
        auto_leave: m.auto_leave,
        index: conf.index.0,
        removed: ids(&m.removed),
    }
}

/// A recorded configuration from the wire or a snapshot file.
///
/// # Errors
/// A reason when it breaks a configuration's invariants (a node id 0, a learner that
/// votes, ...): a node must not take on a configuration it cannot trust.
pub fn conf_from_wire(conf: pb::ConfState) -> Result<ConfState, String> {
    let ids = |v: Vec<u64>| -> Result<std::collections::BTreeSet<NodeId>, String> {
        v.into_iter()
            .map(|id| {
                if id == 0 {
                    Err("node id 0 in a configuration".to_string())
                } else {
                    Ok(NodeId(id))
                }
            })
            .collect()
    };
    let membership = Membership {
        voters: ids(conf.voters)?,
        voters_outgoing: ids(conf.voters_outgoing)?,
        learners: ids(conf.learners)?,
        learners_next: ids(conf.learners_next)?,
        auto_leave: conf.auto_leave,
        removed: ids(conf.removed)?,
    };
    membership.check().map_err(|e| e.to_string())?;
    Ok(ConfState {
        membership,
        index: LogIndex(conf.index),
    })
}

/// A recorded configuration as bytes (in a snapshot file).
pub fn encode_conf(conf: &ConfState) -> Vec<u8> {
    conf_to_wire(conf).encode_to_vec()
}

/// A recorded configuration from bytes.
///
/// # Errors
/// As [`conf_from_wire`], or when the bytes do not decode.
pub fn decode_conf(bytes: &[u8]) -> Result<ConfState, String> {
    conf_from_wire(pb::ConfState::decode(bytes).map_err(|e| e.to_string())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_and_garbage_is_refused() {
        let change = MembershipChange {
            transition: Transition::EnterJoint { auto_leave: true },
            changes: vec![
                MemberChange::AddVoter(NodeId(4)),
                MemberChange::AddLearner(NodeId(5)),
                MemberChange::Remove(NodeId(3)),
            ],
            expected_index: LogIndex(17),
            context: Bytes::from_static(b"127.0.0.1:7004"),
        };
        assert_eq!(MembershipChange::decode(&change.encode()), Ok(change));
        let leave = MembershipChange::leave_joint();
        assert_eq!(MembershipChange::decode(&leave.encode()), Ok(leave));
        assert!(MembershipChange::decode(&[0xff, 0xff, 0xff]).is_err());
        let zero = pb::MembershipChange {
            changes: vec![pb::MemberChange {
                kind: 0,
                node_id: 0,
            }],
            ..Default::default()
        };
        assert!(MembershipChange::decode(&zero.encode_to_vec()).is_err());
    }

    #[test]
    fn recorded_configurations_round_trip_and_invalid_ones_are_refused() {
        let mut membership = Membership::from_voters([NodeId(1), NodeId(2)]);
        membership = membership
            .enter_joint(
                true,
                &[
                    MemberChange::AddVoter(NodeId(3)),
                    MemberChange::AddLearner(NodeId(2)),
                ],
            )
            .unwrap();
        membership.removed.insert(NodeId(7));
        let conf = ConfState {
            membership,
            index: LogIndex(9),
        };
        assert_eq!(decode_conf(&encode_conf(&conf)), Ok(conf));
        let both = pb::ConfState {
            voters: vec![1],
            learners: vec![1],
            ..Default::default()
        };
        assert!(decode_conf(&both.encode_to_vec()).is_err());
    }
}
