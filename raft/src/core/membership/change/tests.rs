//! The corner cases of raft-rs's `src/confchange/testdata` (joint_autoleave,
//! joint_learners_next, joint_safety, simple_safety, simple_promote_demote), replayed
//! step by step: each step is an operation, its changes (`v2` add voter 2, `l3` add
//! learner 3, `r1` remove 1) and the configuration or error it must give. A refused step
//! leaves the configuration as it was.

use super::*;
use std::fmt::Write as _;

enum Op {
    Simple,
    EnterJoint { auto_leave: bool },
    LeaveJoint,
}

fn changes(spec: &str) -> Vec<MemberChange> {
    spec.split_whitespace()
        .map(|c| {
            let (kind, id) = c.split_at(1);
            let id = NodeId(id.parse().unwrap());
            match kind {
                "v" => MemberChange::AddVoter(id),
                "l" => MemberChange::AddLearner(id),
                "r" => MemberChange::Remove(id),
                other => panic!("unknown change kind {other}"),
            }
        })
        .collect()
}

/// Runs `steps` from an empty configuration; returns the transcript (one line per step).
fn run(steps: &[(Op, &str)]) -> String {
    let mut current = Membership::default();
    let mut out = String::new();
    for (op, spec) in steps {
        let changes = changes(spec);
        let result = match op {
            Op::Simple => current.apply_simple(&changes),
            Op::EnterJoint { auto_leave } => current.enter_joint(*auto_leave, &changes),
            Op::LeaveJoint => current.leave_joint(),
        };
        match result {
            Ok(next) => {
                next.check().unwrap();
                current = next;
                writeln!(out, "{current}").unwrap();
            }
            Err(e) => writeln!(out, "error: {e:?}").unwrap(),
        }
    }
    out
}

fn expect(steps: &[(Op, &str)], transcript: &str) {
    let want: String = transcript
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(run(steps), want);
}

use Op::{EnterJoint, LeaveJoint, Simple};
const JOINT: Op = EnterJoint { auto_leave: false };

#[test]
fn joint_autoleave() {
    expect(
        &[
            (Simple, "v1"),
            (EnterJoint { auto_leave: true }, "v2 v3"),
            (JOINT, ""),
            (LeaveJoint, ""),
        ],
        "voters=(1)
         voters=(1 2 3)&&(1) autoleave
         error: AlreadyJoint
         voters=(1 2 3)",
    );
}

#[test]
fn joint_learners_next() {
    expect(
        &[(Simple, "v1"), (JOINT, "v2 l1"), (LeaveJoint, "")],
        "voters=(1)
         voters=(2)&&(1) learners_next=(1)
         voters=(2) learners=(1)",
    );
}

#[test]
fn joint_safety() {
    expect(
        &[
            (LeaveJoint, ""),
            (JOINT, ""),
            (JOINT, "v1"),
            (Simple, "v1"),
            (LeaveJoint, ""),
            (JOINT, ""),
            (JOINT, ""),
            (LeaveJoint, ""),
            (LeaveJoint, ""),
            (JOINT, "r1 v2 v3 l4"),
            (JOINT, ""),
            (JOINT, "v12"),
            (Simple, "l15"),
            (LeaveJoint, ""),
            (Simple, "l9"),
        ],
        "error: NotJoint
         error: ZeroVoters
         error: ZeroVoters
         voters=(1)
         error: NotJoint
         voters=(1)&&(1)
         error: AlreadyJoint
         voters=(1)
         error: NotJoint
         voters=(2 3)&&(1) learners=(4)
         error: AlreadyJoint
         error: AlreadyJoint
         error: SimpleInJoint
         voters=(2 3) learners=(4)
         voters=(2 3) learners=(4 9)",
    );
}

#[test]
fn simple_safety() {
    expect(
        &[
            (Simple, "l1"),
            (Simple, "v1"),
            (Simple, "v2 l3"),
            (Simple, "r1 v5"),
            (Simple, "r1 r2"),
            (Simple, "v3 v4"),
            (Simple, "l1 v5"),
            (Simple, "l1 l2"),
            (Simple, "l2 l3 l4 l5"),
            (Simple, "r1"),
            (Simple, "r2 r3 r4 r5"),
        ],
        "error: RemovesAllVoters
         voters=(1)
         voters=(1 2) learners=(3)
         error: TooManyVoterChanges
         error: RemovesAllVoters
         error: TooManyVoterChanges
         error: TooManyVoterChanges
         error: RemovesAllVoters
         voters=(1) learners=(2 3 4 5)
         error: RemovesAllVoters
         voters=(1)",
    );
}

#[test]
fn simple_promote_demote() {
    expect(
        &[
            (Simple, "v1"),
            (Simple, "v2"),
            (Simple, "v3"),
            (Simple, "l1 v1"),
            (Simple, "l2"),
            (Simple, "v2 l2"),
            (Simple, "v2"),
        ],
        "voters=(1)
         voters=(1 2)
         voters=(1 2 3)
         voters=(1 2 3)
         voters=(1 3) learners=(2)
         voters=(1 3) learners=(2)
         voters=(1 2 3)",
    );
}

/// Replacing one voter by another is one joint change: both majorities decide until it
/// is left.
#[test]
fn replace_a_voter_through_a_joint_configuration() {
    expect(
        &[
            (Simple, "v1"),
            (Simple, "v2"),
            (Simple, "v3"),
            (Simple, "r3 v4"),
            (EnterJoint { auto_leave: true }, "r3 v4"),
            (LeaveJoint, ""),
        ],
        "voters=(1)
         voters=(1 2)
         voters=(1 2 3)
         error: TooManyVoterChanges
         voters=(1 2 4)&&(1 2 3) autoleave
         voters=(1 2 4)",
    );
}

/// A learner being promoted while a voter is demoted, through a joint configuration; a
/// voter removed during a joint change is gone for good once it is left.
#[test]
fn joint_promote_and_demote() {
    expect(
        &[
            (Simple, "v1"),
            (Simple, "v2"),
            (Simple, "v3"),
            (Simple, "l4"),
            (JOINT, "v4 l3 r2"),
            (LeaveJoint, ""),
        ],
        "voters=(1)
         voters=(1 2)
         voters=(1 2 3)
         voters=(1 2 3) learners=(4)
         voters=(1 4)&&(1 2 3) learners_next=(3)
         voters=(1 4) learners=(3)",
    );
}

/// Issue 13: a removed id is never added again, as a voter or a learner, in a simple or a
/// joint change; an id merely demoted to learner is not removed.
#[test]
fn a_removed_id_is_never_added_again() {
    expect(
        &[
            (Simple, "v1"),
            (Simple, "v2"),
            (Simple, "v3"),
            (Simple, "r3"),
            (Simple, "v3"),
            (Simple, "l3"),
            (JOINT, "v4 l3"),
            (Simple, "l2"),
            (Simple, "v2"),
        ],
        "voters=(1)
         voters=(1 2)
         voters=(1 2 3)
         voters=(1 2)
         error: RemovedId(n3)
         error: RemovedId(n3)
         error: RemovedId(n3)
         voters=(1) learners=(2)
         voters=(1 2)",
    );
}
