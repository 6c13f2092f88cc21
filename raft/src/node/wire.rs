//! Conversions between the core's [`Message`] and the wire's `proto::raft::RaftMessage`.
//! Decoding is fallible: a message from the network that does not make sense becomes a
//! [`WireError`], never a panic.

use crate::core::membership::{conf_from_wire, conf_to_wire};
use crate::message::{
    AppendEntries, AppendEntriesResponse, Heartbeat, HeartbeatResponse, InstallSnapshot,
    InstallSnapshotResponse, Message, MessageBody, RequestVote, RequestVoteResponse,
};
use crate::types::{Entry, EntryKind, LogIndex, NodeId, SnapshotMeta, Term};
use proto::raft as pb;
use proto::raft::raft_message::Body;

/// A message from the network that cannot be turned into a core message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed raft message: {0}")]
pub struct WireError(pub String);

/// Encodes a core message for the wire.
pub fn to_wire(msg: Message) -> pb::RaftMessage {
    let body = match msg.body {
        MessageBody::RequestVote(v) => Body::RequestVote(pb::RequestVote {
            pre_vote: v.pre_vote,
            last_log_index: v.last_log_index.0,
            last_log_term: v.last_log_term.0,
            leadership_transfer: v.leadership_transfer,
            campaign: v.campaign,
        }),
        MessageBody::RequestVoteResponse(r) => Body::RequestVoteResponse(pb::RequestVoteResponse {
            pre_vote: r.pre_vote,
            granted: r.granted,
            campaign: r.campaign,
        }),
        MessageBody::AppendEntries(a) => Body::AppendEntries(pb::AppendEntries {
            prev_log_index: a.prev_log_index.0,
            prev_log_term: a.prev_log_term.0,
            entries: a.entries.into_iter().map(entry_to_wire).collect(),
            leader_commit: a.leader_commit.0,
        }),
        MessageBody::AppendEntriesResponse(r) => {
            Body::AppendEntriesResponse(pb::AppendEntriesResponse {
                success: r.success,
                match_index: r.match_index.0,
                conflict_index: r.conflict_index.0,
                conflict_term: r.conflict_term.0,
                last_log_index: r.last_log_index.0,
            })
        }
        MessageBody::Heartbeat(h) => Body::Heartbeat(pb::Heartbeat {
            commit: h.commit.0,
            read_seq: h.read_seq,
        }),
        MessageBody::HeartbeatResponse(h) => Body::HeartbeatResponse(pb::HeartbeatResponse {
            read_seq: h.read_seq,
        }),
        MessageBody::InstallSnapshot(s) => Body::InstallSnapshot(pb::InstallSnapshot {
            meta: Some(meta_to_wire(s.meta)),
            offset: s.offset,
            total_bytes: s.total_bytes,
            data: s.data,
            done: s.done,
            conf: s.conf.as_ref().map(conf_to_wire),
        }),
        MessageBody::InstallSnapshotResponse(r) => {
            Body::InstallSnapshotResponse(pb::InstallSnapshotResponse {
                meta: Some(meta_to_wire(r.meta)),
                next_offset: r.next_offset,
                done: r.done,
                rejected: r.rejected,
            })
        }
        MessageBody::TimeoutNow => Body::TimeoutNow(pb::TimeoutNow {}),
    };
    pb::RaftMessage {
        from: msg.from.0,
        to: msg.to.0,
        term: msg.term.0,
        body: Some(body),
    }
}

/// Decodes a message from the wire.
///
/// # Errors
/// [`WireError`] when a field is missing or out of range.
pub fn from_wire(msg: pb::RaftMessage) -> Result<Message, WireError> {
    let body = match msg
        .body
        .ok_or_else(|| WireError("message has no body".into()))?
    {
        Body::RequestVote(v) => MessageBody::RequestVote(RequestVote {
            pre_vote: v.pre_vote,
            last_log_index: LogIndex(v.last_log_index),
            last_log_term: Term(v.last_log_term),
            leadership_transfer: v.leadership_transfer,
            campaign: v.campaign,
        }),
        Body::RequestVoteResponse(r) => MessageBody::RequestVoteResponse(RequestVoteResponse {
            pre_vote: r.pre_vote,
            granted: r.granted,
            campaign: r.campaign,
        }),
        Body::AppendEntries(a) => MessageBody::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(a.prev_log_index),
            prev_log_term: Term(a.prev_log_term),
            entries: entries_from_wire(a.entries, a.prev_log_index)?,
            leader_commit: LogIndex(a.leader_commit),
        }),
        Body::AppendEntriesResponse(r) => {
            MessageBody::AppendEntriesResponse(AppendEntriesResponse {
                success: r.success,
                match_index: LogIndex(r.match_index),
                conflict_index: LogIndex(r.conflict_index),
                conflict_term: Term(r.conflict_term),
                last_log_index: LogIndex(r.last_log_index),
            })
        }
        Body::Heartbeat(h) => MessageBody::Heartbeat(Heartbeat {
            commit: LogIndex(h.commit),
            read_seq: h.read_seq,
        }),
        Body::HeartbeatResponse(h) => MessageBody::HeartbeatResponse(HeartbeatResponse {
            read_seq: h.read_seq,
        }),
        Body::InstallSnapshot(s) => MessageBody::InstallSnapshot(InstallSnapshot {
            meta: meta_from_wire(s.meta)?,
            offset: s.offset,
            total_bytes: s.total_bytes,
            data: s.data,
            done: s.done,
            conf: s.conf.map(conf_from_wire).transpose().map_err(WireError)?,
        }),
        Body::InstallSnapshotResponse(r) => {
            MessageBody::InstallSnapshotResponse(InstallSnapshotResponse {
                meta: meta_from_wire(r.meta)?,
                next_offset: r.next_offset,
                done: r.done,
                rejected: r.rejected,
            })
        }
        Body::TimeoutNow(_) => MessageBody::TimeoutNow,
    };
    if msg.from == 0 || msg.to == 0 {
        return Err(WireError("node id 0".into()));
    }
    Ok(Message {
        from: NodeId(msg.from),
        to: NodeId(msg.to),
        term: Term(msg.term),
        body,
    })
}

fn entry_to_wire(e: Entry) -> pb::Entry {
    let kind = match e.kind {
        EntryKind::Normal => pb::EntryKind::Normal,
        EntryKind::Noop => pb::EntryKind::Noop,
        EntryKind::Membership => pb::EntryKind::Membership,
    };
    pb::Entry {
        index: e.index.0,
        term: e.term.0,
        kind: kind as i32,
        data: e.data,
    }
}

/// Entries must be contiguous right after `prev_log_index`: the core relies on it.
fn entries_from_wire(
    entries: Vec<pb::Entry>,
    prev_log_index: u64,
) -> Result<Vec<Entry>, WireError> {
    let mut expected = prev_log_index;
    entries
        .into_iter()
        .map(|e| {
            expected = expected
                .checked_add(1)
                .ok_or_else(|| WireError("index overflow".into()))?;
            if e.index != expected {
                return Err(WireError(format!(
                    "entry index {} where {} was expected",
                    e.index, expected
                )));
            }
            let kind = match pb::EntryKind::try_from(e.kind) {
                Ok(pb::EntryKind::Normal) => EntryKind::Normal,
                Ok(pb::EntryKind::Noop) => EntryKind::Noop,
                Ok(pb::EntryKind::Membership) => EntryKind::Membership,
                Err(_) => return Err(WireError(format!("unknown entry kind {}", e.kind))),
            };
            Ok(Entry {
                index: LogIndex(e.index),
                term: Term(e.term),
                kind,
                data: e.data,
            })
        })
        .collect()
}

fn meta_to_wire(m: SnapshotMeta) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        index: m.index.0,
        term: m.term.0,
    }
}

fn meta_from_wire(m: Option<pb::SnapshotMeta>) -> Result<SnapshotMeta, WireError> {
    let m = m.ok_or_else(|| WireError("snapshot message without meta".into()))?;
    Ok(SnapshotMeta {
        index: LogIndex(m.index),
        term: Term(m.term),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn roundtrip(body: MessageBody) {
        let msg = Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(7),
            body,
        };
        assert_eq!(from_wire(to_wire(msg.clone())).unwrap(), msg);
    }

    #[test]
    fn every_message_kind_round_trips() {
        roundtrip(MessageBody::RequestVote(RequestVote {
            pre_vote: true,
            last_log_index: LogIndex(3),
            last_log_term: Term(2),
            leadership_transfer: true,
            campaign: 0,
        }));
        roundtrip(MessageBody::RequestVoteResponse(RequestVoteResponse {
            pre_vote: false,
            granted: true,
            campaign: 0,
        }));
        roundtrip(MessageBody::AppendEntries(AppendEntries {
            prev_log_index: LogIndex(4),
            prev_log_term: Term(1),
            entries: vec![
                Entry {
                    index: LogIndex(5),
                    term: Term(7),
                    kind: EntryKind::Noop,
                    data: Bytes::new(),
                },
                Entry {
                    index: LogIndex(6),
                    term: Term(7),
                    kind: EntryKind::Normal,
                    data: Bytes::from_static(b"x"),
                },
            ],
            leader_commit: LogIndex(4),
        }));
        roundtrip(MessageBody::AppendEntriesResponse(AppendEntriesResponse {
            success: false,
            match_index: LogIndex(0),
            conflict_index: LogIndex(3),
            conflict_term: Term(2),
            last_log_index: LogIndex(9),
        }));
        roundtrip(MessageBody::Heartbeat(Heartbeat {
            commit: LogIndex(8),
            read_seq: 4,
        }));
        roundtrip(MessageBody::HeartbeatResponse(HeartbeatResponse {
            read_seq: 4,
        }));
        roundtrip(MessageBody::InstallSnapshot(InstallSnapshot {
            meta: SnapshotMeta {
                index: LogIndex(10),
                term: Term(3),
            },
            offset: 5,
            total_bytes: 20,
            data: Bytes::from_static(b"chunk"),
            done: false,
            conf: Some(crate::types::ConfState {
                membership: crate::core::Membership::from_voters([NodeId(1), NodeId(2)]),
                index: LogIndex(7),
            }),
        }));
        roundtrip(MessageBody::InstallSnapshotResponse(
            InstallSnapshotResponse {
                meta: SnapshotMeta {
                    index: LogIndex(10),
                    term: Term(3),
                },
                next_offset: 10,
                done: false,
                rejected: true,
            },
        ));
        roundtrip(MessageBody::TimeoutNow);
    }

    #[test]
    fn malformed_messages_are_errors() {
        let mut m = to_wire(Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(1),
            body: MessageBody::TimeoutNow,
        });
        m.body = None;
        assert!(from_wire(m).is_err());
        let gap = pb::RaftMessage {
            from: 1,
            to: 2,
            term: 1,
            body: Some(Body::AppendEntries(pb::AppendEntries {
                prev_log_index: 1,
                prev_log_term: 1,
                entries: vec![pb::Entry {
                    index: 3,
                    term: 1,
                    kind: 0,
                    data: Bytes::new(),
                }],
                leader_commit: 0,
            })),
        };
        assert!(from_wire(gap).is_err());
        let bad_kind = pb::RaftMessage {
            from: 1,
            to: 2,
            term: 1,
            body: Some(Body::AppendEntries(pb::AppendEntries {
                prev_log_index: 0,
                prev_log_term: 0,
                entries: vec![pb::Entry {
                    index: 1,
                    term: 1,
                    kind: 99,
                    data: Bytes::new(),
                }],
                leader_commit: 0,
            })),
        };
        assert!(from_wire(bad_kind).is_err());
        let snap_without_meta = pb::RaftMessage {
            from: 1,
            to: 2,
            term: 1,
            body: Some(Body::InstallSnapshot(pb::InstallSnapshot::default())),
        };
        assert!(from_wire(snap_without_meta).is_err());
    }
}
