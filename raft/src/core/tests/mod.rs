//! Unit tests of the core's exact outputs, named after the paper/thesis claim they check
//! (raft-rs / openraft style), plus a tiny lock-step network (`Net`) for multi-node
//! scenarios. The network follows the Ready contract to the letter: send `messages`,
//! persist, send `messages_after_persist`, report `on_persist_ready`. The seeded simulator with
//! faults lives elsewhere (`raft::sim`).

mod election;
mod lease;
mod read_index;
mod ready;
mod replication;
mod snapshot;
mod transfer;

use super::{RaftCore, Ready, Role};
use crate::config::Config;
use crate::message::{Message, MessageBody};
use crate::types::{Entry, EntryKind, HardState, InitialState, LogIndex, NodeId, Snapshot, Term};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub(super) fn n(id: u64) -> NodeId {
    NodeId(id)
}

pub(super) fn t(term: u64) -> Term {
    Term(term)
}

pub(super) fn i(index: u64) -> LogIndex {
    LogIndex(index)
}

/// A config for node `id` of voters `1..=voters`: election timeout 10, heartbeat 1,
/// pre-vote and check-quorum off (tests turn them on explicitly).
pub(super) fn config(id: u64, voters: u64) -> Config {
    let mut c = Config::new(NodeId(id), (1..=voters).map(NodeId).collect());
    c.pre_vote = false;
    c.check_quorum = false;
    c
}

pub(super) fn core_with(config: Config) -> RaftCore {
    RaftCore::new(config, InitialState::default()).unwrap()
}

pub(super) fn core(id: u64, voters: u64) -> RaftCore {
    core_with(config(id, voters))
}

pub(super) fn msg(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body,
    }
}

pub(super) fn entry(index: u64, term: u64, data: &'static [u8]) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        kind: EntryKind::Normal,
        data: Bytes::from_static(data),
    }
}

pub(super) fn noop(index: u64, term: u64) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        kind: EntryKind::Noop,
        data: Bytes::new(),
    }
}

/// A core recovered with `entries` (terms as given, starting at index 1) in `term`.
pub(super) fn core_with_log(config: Config, term: u64, terms: &[u64]) -> RaftCore {
    let entries = terms
        .iter()
        .enumerate()
        .map(|(k, tm)| noop(k as u64 + 1, *tm))
        .collect();
    let hard_state = HardState {
        term: Term(term),
        vote: None,
        commit: LogIndex::ZERO,
    };
    RaftCore::new(
        config,
        InitialState {
            hard_state,
            snapshot: None,
            entries,
        },
    )
    .unwrap()
}

/// `msgs` with every (pre-)vote request's campaign number cleared, to compare with
/// expected messages (the numbers start at a seeded value).
pub(super) fn sans_campaign(msgs: &[Message]) -> Vec<Message> {
    let mut out = msgs.to_vec();
    for m in &mut out {
        if let MessageBody::RequestVote(rv) = &mut m.body {
            rv.campaign = 0;
        }
    }
    out
}

/// Persists a Ready: reports it (and every earlier one) durable.
pub(super) fn persist(core: &mut RaftCore, rd: &Ready) {
    core.on_persist_ready(rd.number);
}

/// Takes a Ready, "persists" it, and returns it.
pub(super) fn ready_persisted(core: &mut RaftCore) -> Ready {
    let rd = core.ready();
    persist(core, &rd);
    rd
}

/// Ticks until the election timer fires (at most 2 * election timeout).
pub(super) fn tick_until_campaign(core: &mut RaftCore) {
    for _ in 0..core.config.election_timeout_ticks * 2 {
        core.tick();
        if core.role() != Role::Follower {
            return;
        }
    }
    panic!("node {} never campaigned", core.id());
}

/// Makes node 1 of a fresh `voters`-node cluster the leader in term 1 (votes stepped in
/// by hand), with its no-op persisted and acknowledged by every peer, and the Readies
/// drained.
pub(super) fn leader(voters: u64) -> RaftCore {
    leader_with(config(1, voters))
}

pub(super) fn leader_with(config: Config) -> RaftCore {
    let voters = config.voters.len() as u64;
    let mut c = core_with(config);
    c.campaign(true);
    for peer in 2..=voters {
        c.step(vote_grant(peer, 1, 1));
    }
    assert_eq!(c.role(), Role::Leader);
    let rd = ready_persisted(&mut c);
    for peer in 2..=voters {
        c.step(append_ok(peer, 1, 1, 1));
    }
    assert_eq!(c.commit_index(), i(1), "no-op committed: {rd:?}");
    ready_persisted(&mut c);
    c
}

/// Node `from`'s answer to node 1's heartbeat of `read_seq`, in `term`.
pub(super) fn hb_resp(from: u64, term: u64, read_seq: u64) -> Message {
    use crate::message::HeartbeatResponse;
    msg(
        from,
        1,
        term,
        MessageBody::HeartbeatResponse(HeartbeatResponse { read_seq }),
    )
}

/// A read confirmed at `index`.
pub(super) fn rs(ctx: u64, index: u64) -> super::ReadState {
    super::ReadState {
        ctx,
        index: i(index),
    }
}

pub(super) fn vote_grant(from: u64, to: u64, term: u64) -> Message {
    use crate::message::RequestVoteResponse;
    msg(
        from,
        to,
        term,
        MessageBody::RequestVoteResponse(RequestVoteResponse {
            pre_vote: false,
            granted: true,
            campaign: 0,
        }),
    )
}

pub(super) fn append_ok(from: u64, to: u64, term: u64, match_index: u64) -> Message {
    use crate::message::AppendEntriesResponse;
    msg(
        from,
        to,
        term,
        MessageBody::AppendEntriesResponse(AppendEntriesResponse {
            success: true,
            match_index: LogIndex(match_index),
            conflict_index: LogIndex::ZERO,
            conflict_term: Term::ZERO,
            last_log_index: LogIndex(match_index),
        }),
    )
}

/// Only the AppendEntries bodies of `msgs`, as (to, prev index, prev term, entry indexes, commit).
pub(super) fn appends(msgs: &[Message]) -> Vec<(u64, u64, u64, Vec<u64>, u64)> {
    msgs.iter()
        .filter_map(|m| match &m.body {
            MessageBody::AppendEntries(ae) => Some((
                m.to.0,
                ae.prev_log_index.0,
                ae.prev_log_term.0,
                ae.entries.iter().map(|e| e.index.0).collect(),
                ae.leader_commit.0,
            )),
            _ => None,
        })
        .collect()
}

/// A lock-step network of cores that follows the Ready contract, with cut links.
pub(super) struct Net {
    pub(super) cores: BTreeMap<NodeId, RaftCore>,
    pub(super) cut: BTreeSet<(NodeId, NodeId)>,
    pub(super) applied: BTreeMap<NodeId, Vec<Entry>>,
    /// Every message delivered, in order (for counting).
    pub(super) delivered: Vec<Message>,
    /// Each node's stored snapshot (compacted or received), from which its outgoing
    /// snapshot chunks are filled, as the executor fills them from the storage.
    pub(super) stored_snapshots: BTreeMap<NodeId, Snapshot>,
    /// The data of the last snapshot each node handed to its application.
    pub(super) installed: BTreeMap<NodeId, Bytes>,
    /// Chunks of a snapshot each node is receiving, as its storage would assemble them.
    incoming: BTreeMap<NodeId, Vec<u8>>,
    chunk_bytes: BTreeMap<NodeId, u64>,
}

impl Net {
    pub(super) fn new(configs: Vec<Config>) -> Net {
        let chunk_bytes = configs
            .iter()
            .map(|c| (c.id, c.snapshot_chunk_bytes as u64))
            .collect();
        let cores: BTreeMap<NodeId, RaftCore> =
            configs.into_iter().map(|c| (c.id, core_with(c))).collect();
        let applied = cores.keys().map(|id| (*id, Vec::new())).collect();
        Net {
            cores,
            cut: BTreeSet::new(),
            applied,
            delivered: Vec::new(),
            stored_snapshots: BTreeMap::new(),
            installed: BTreeMap::new(),
            incoming: BTreeMap::new(),
            chunk_bytes,
        }
    }

    /// Node `id`'s application snapshotted `data` at `index`: stored, then compacted.
    pub(super) fn compact(&mut self, id: u64, index: LogIndex, data: Bytes) {
        let core = self.core(id);
        let meta = core.compaction_meta(index).expect("a compactable index");
        let conf = core.conf_at(index);
        core.compact(index, data.len() as u64);
        self.stored_snapshots
            .insert(NodeId(id), Snapshot { meta, data, conf });
    }

    /// Fills a snapshot chunk from its sender's stored snapshot.
    fn fill(&self, mut m: Message) -> Message {
        if let MessageBody::InstallSnapshot(c) = &mut m.body {
            let stored = &self.stored_snapshots[&m.from];
            assert_eq!(
                stored.meta, c.meta,
                "chunks are cut from the stored snapshot"
            );
            let end = super::chunk_end(c.offset, c.total_bytes, self.chunk_bytes[&m.from]);
            c.data = stored.data.slice(c.offset as usize..end as usize);
        }
        m
    }

    pub(super) fn with_voters(voters: u64, tweak: impl Fn(&mut Config)) -> Net {
        Net::new(
            (1..=voters)
                .map(|id| {
                    let mut c = config(id, voters);
                    tweak(&mut c);
                    c
                })
                .collect(),
        )
    }

    pub(super) fn core(&mut self, id: u64) -> &mut RaftCore {
        self.cores.get_mut(&NodeId(id)).unwrap()
    }

    pub(super) fn isolate(&mut self, id: u64) {
        for other in self.cores.keys().copied().collect::<Vec<_>>() {
            if other != NodeId(id) {
                self.cut.insert((NodeId(id), other));
                self.cut.insert((other, NodeId(id)));
            }
        }
    }

    pub(super) fn heal(&mut self) {
        self.cut.clear();
    }

    /// Processes every node's Readies and delivers messages until nothing is left.
    pub(super) fn settle(&mut self) {
        let mut queue: VecDeque<Message> = VecDeque::new();
        for _round in 0..10_000 {
            let ids: Vec<NodeId> = self.cores.keys().copied().collect();
            for id in ids {
                let core = self.cores.get_mut(&id).unwrap();
                while core.has_ready() {
                    let rd = core.ready();
                    for chunk in &rd.snapshot_chunks {
                        let incoming = self.incoming.entry(id).or_default();
                        if chunk.offset == 0 {
                            incoming.clear();
                        }
                        assert_eq!(chunk.offset, incoming.len() as u64, "chunks in order");
                        incoming.extend_from_slice(&chunk.data);
                    }
                    if let Some(s) = &rd.snapshot {
                        let data = Bytes::from(self.incoming.remove(&id).unwrap_or_default());
                        assert_eq!(data.len() as u64, s.data_bytes, "every chunk handed out");
                        let snapshot = Snapshot {
                            meta: s.meta,
                            data,
                            conf: s.conf.clone(),
                        };
                        self.stored_snapshots.insert(id, snapshot);
                    }
                    if let Some(meta) = &rd.apply_snapshot {
                        let stored = &self.stored_snapshots[&id];
                        assert_eq!(stored.meta, *meta, "the snapshot applied is the one stored");
                        self.installed.insert(id, stored.data.clone());
                    }
                    queue.extend(rd.messages.iter().cloned());
                    persist(core, &rd);
                    queue.extend(rd.messages_after_persist.iter().cloned());
                    self.applied
                        .get_mut(&id)
                        .unwrap()
                        .extend(rd.committed.iter().cloned());
                }
            }
            let Some(m) = queue.pop_front() else { return };
            if self.cut.contains(&(m.from, m.to)) {
                continue;
            }
            let m = self.fill(m);
            self.delivered.push(m.clone());
            self.cores.get_mut(&m.to).unwrap().step(m);
        }
        panic!("network did not settle");
    }

    /// Ticks every node once, then settles.
    pub(super) fn tick_all(&mut self) {
        for core in self.cores.values_mut() {
            core.tick();
        }
        self.settle();
    }

    /// Ticks `id` until it campaigns, then settles.
    pub(super) fn elect(&mut self, id: u64) {
        tick_until_campaign(self.core(id));
        self.settle();
    }

    pub(super) fn leaders(&self) -> Vec<(NodeId, Term)> {
        self.cores
            .values()
            .filter(|c| c.is_leader())
            .map(|c| (c.id(), c.term()))
            .collect()
    }
}
