//! A bounded ring of recent simulator events, printed when a run fails so that a failing
//! seed can be read without re-running it under a debugger.
//!
//! Records are compact (no message payloads) and formatted only on failure; the ring keeps
//! the last [`TRACE_CAPACITY`] records.

use crate::core::{CoreStatus, Role};
use crate::message::{Message, MessageBody};
use crate::types::{NodeId, Term};
use std::collections::VecDeque;
use std::fmt::Write as _;

/// How many records the ring keeps.
pub const TRACE_CAPACITY: usize = 600;

/// What became of a message copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Handed to the destination's core.
    Delivered,
    /// The link was down when it arrived.
    LinkDown,
    /// The destination was crashed.
    NodeDown,
    /// Lost when sent (loss, or the link was down).
    Lost,
}

#[derive(Clone, Debug)]
enum Record {
    Message {
        from: NodeId,
        to: NodeId,
        term: Term,
        kind: &'static str,
        a: u64,
        b: u64,
        c: u64,
        fate: Fate,
    },
    Role {
        node: NodeId,
        role: Role,
        term: Term,
        commit: u64,
        last: u64,
    },
    Action(String),
}

/// The ring of recent events.
#[derive(Debug, Default)]
pub struct Trace {
    ring: VecDeque<(u64, Record)>,
}

impl Trace {
    fn push(&mut self, time_us: u64, record: Record) {
        if self.ring.len() == TRACE_CAPACITY {
            self.ring.pop_front();
        }
        self.ring.push_back((time_us, record));
    }

    /// A message copy reached its destination (or not).
    pub fn message(&mut self, time_us: u64, msg: &Message, fate: Fate) {
        let (kind, a, b, c) = summarize(&msg.body);
        let record = Record::Message {
            from: msg.from,
            to: msg.to,
            term: msg.term,
            kind,
            a,
            b,
            c,
            fate,
        };
        self.push(time_us, record);
    }

    /// A node changed role or term.
    pub fn role(&mut self, time_us: u64, status: &CoreStatus) {
        let record = Record::Role {
            node: status.id,
            role: status.role,
            term: status.term,
            commit: status.commit.0,
            last: status.last_index.0,
        };
        self.push(time_us, record);
    }

    /// A test or nemesis action (crash, partition, propose, ...).
    pub fn action(&mut self, time_us: u64, what: String) {
        self.push(time_us, Record::Action(what));
    }

    /// The ring, one record per line, oldest first.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (t, r) in &self.ring {
            let ms = *t as f64 / 1000.0;
            let _ = match r {
                Record::Message {
                    from,
                    to,
                    term,
                    kind,
                    a,
                    b,
                    c,
                    fate,
                } => writeln!(
                    out,
                    "{ms:>10.3}ms {from:?}->{to:?} {term:?} {kind} [{a} {b} {c}] {fate:?}"
                ),
                Record::Role {
                    node,
                    role,
                    term,
                    commit,
                    last,
                } => {
                    writeln!(
                        out,
                        "{ms:>10.3}ms {node:?} is {role:?} in {term:?} commit={commit} last={last}"
                    )
                }
                Record::Action(s) => writeln!(out, "{ms:>10.3}ms ** {s}"),
            };
        }
        out
    }
}

/// A message kind and its three most telling numbers.
fn summarize(body: &MessageBody) -> (&'static str, u64, u64, u64) {
    match body {
        MessageBody::RequestVote(r) => {
            let kind = if r.pre_vote { "PreVote" } else { "RequestVote" };
            (
                kind,
                r.last_log_index.0,
                r.last_log_term.0,
                u64::from(r.leadership_transfer),
            )
        }
        MessageBody::RequestVoteResponse(r) => {
            let kind = if r.pre_vote {
                "PreVoteResp"
            } else {
                "RequestVoteResp"
            };
            (kind, u64::from(r.granted), 0, 0)
        }
        MessageBody::AppendEntries(a) => {
            let last = a.entries.last().map_or(a.prev_log_index.0, |e| e.index.0);
            (
                "Append(prev,last,commit)",
                a.prev_log_index.0,
                last,
                a.leader_commit.0,
            )
        }
        MessageBody::AppendEntriesResponse(r) => {
            let kind = if r.success {
                "AppendOk(match,last,-)"
            } else {
                "AppendReject(ci,ct,last)"
            };
            let (a, b) = if r.success {
                (r.match_index.0, 0)
            } else {
                (r.conflict_index.0, r.conflict_term.0)
            };
            (kind, a, b, r.last_log_index.0)
        }
        MessageBody::Heartbeat(h) => ("Heartbeat(commit,seq)", h.commit.0, h.read_seq, 0),
        MessageBody::HeartbeatResponse(h) => ("HeartbeatResp(seq)", h.read_seq, 0, 0),
        MessageBody::InstallSnapshot(s) => (
            "Snapshot(index,offset,done)",
            s.meta.index.0,
            s.offset,
            u64::from(s.done),
        ),
        MessageBody::InstallSnapshotResponse(r) => (
            "SnapshotResp(index,next,done|rej<<1)",
            r.meta.index.0,
            r.next_offset,
            u64::from(r.done) | (u64::from(r.rejected) << 1),
        ),
        MessageBody::TimeoutNow => ("TimeoutNow", 0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_only_the_most_recent_records() {
        let mut trace = Trace::default();
        for i in 0..(TRACE_CAPACITY as u64 + 10) {
            trace.action(i, format!("a{i}"));
        }
        let text = trace.render();
        assert_eq!(text.lines().count(), TRACE_CAPACITY);
        assert!(!text.contains("** a9\n"));
        assert!(text.contains(&format!("** a{}", TRACE_CAPACITY + 9)));
    }
}
