//! The MIT 6.824 tester's API (`config.go`) on top of [`Cluster`], in virtual time: the same
//! waits, budgets and retry rules, so the lab's tests port line by line.
//!
//! Differences from 6.824, by design:
//! - time is virtual: "sleep" means running the simulation;
//! - our leaders append a no-op entry when elected (paper 5.4.2, needed by ReadIndex), so log
//!   indexes count no-ops and tests compare indexes relative to each other, not to 1, 2, 3;
//! - `n_committed` counts a node that installed a snapshot covering the index (6.824's
//!   `applierSnap` forgets those); the command comes from the checker's committed record.

use crate::core::Role;
use crate::sim::app::{cmd, SimStateMachine};
use crate::sim::cluster::Cluster;
use crate::types::{EntryKind, LogIndex, NodeId, Term};
use bytes::Bytes;
use std::collections::BTreeMap;

impl<S: SimStateMachine> Cluster<S> {
    /// 6.824 `Start`: proposes on `node` if it is up; `Some((index, term))` if it accepted.
    pub fn start(&mut self, node: NodeId, data: Bytes) -> Option<(LogIndex, Term)> {
        if !self.is_up(node) {
            return None;
        }
        self.propose(node, data).ok()
    }

    /// 6.824 `checkOneLeader`: up to 10 times, waits 450..550 ms and looks for leaders among
    /// connected nodes; fails if a term has two; returns the leader of the highest term.
    pub fn check_one_leader(&mut self) -> NodeId {
        for _ in 0..10 {
            let ms = 450 + self.rng().below(100);
            self.run_for_ms(ms);
            let mut leaders: BTreeMap<Term, Vec<NodeId>> = BTreeMap::new();
            for id in self.node_ids() {
                if !self.is_connected(id) {
                    continue;
                }
                if let Some(s) = self.status(id).filter(|s| s.role == Role::Leader) {
                    leaders.entry(s.term).or_default().push(id);
                }
            }
            for (term, ids) in &leaders {
                if ids.len() > 1 {
                    self.fail(&format!("term {term:?} has {} leaders: {ids:?}", ids.len()));
                }
            }
            if let Some((_, ids)) = leaders.iter().next_back() {
                return ids[0];
            }
        }
        self.fail("expected one leader, got none")
    }

    /// 6.824 `checkTerms`: every connected node is in the same term; returns it.
    pub fn check_terms(&self) -> Term {
        let mut term = None;
        for id in self.node_ids() {
            if !self.is_connected(id) {
                continue;
            }
            let Some(t) = self.status(id).map(|s| s.term) else {
                continue;
            };
            match term {
                None => term = Some(t),
                Some(t0) if t0 != t => {
                    self.fail(&format!("servers disagree on term: {t0:?} vs {t:?}"))
                }
                Some(_) => {}
            }
        }
        term.unwrap_or_default()
    }

    /// 6.824 `checkNoLeader`: no connected node thinks it is leader.
    pub fn check_no_leader(&self) {
        for id in self.node_ids() {
            if self.is_connected(id) && self.status(id).is_some_and(|s| s.role == Role::Leader) {
                self.fail(&format!(
                    "expected no leader, but {id:?} claims to be leader"
                ));
            }
        }
    }

    /// 6.824 `nCommitted`: how many nodes have applied `index`, and the command there (a
    /// no-op counts as applied but has no command).
    pub fn n_committed(&self, index: LogIndex) -> (usize, Option<Bytes>) {
        let count = self
            .node_ids()
            .into_iter()
            .filter(|id| self.applied_ever(*id) >= index)
            .count();
        if count == 0 {
            return (0, None);
        }
        let data = self.checker().committed_entry(index).and_then(|(_, data)| {
            let is_noop = self.checker().committed_kind(index) == Some(EntryKind::Noop);
            (!is_noop).then_some(data)
        });
        (count, data)
    }

    /// 6.824 `wait`: waits (10 ms doubling to 1 s, 30 rounds) until `n` nodes applied
    /// `index`; `None` if some node moved past `start_term` meanwhile; fails if too few.
    pub fn wait(&mut self, index: LogIndex, n: usize, start_term: Option<Term>) -> Option<Bytes> {
        let mut to_ms = 10;
        for _ in 0..30 {
            if self.n_committed(index).0 >= n {
                break;
            }
            self.run_for_ms(to_ms);
            if to_ms < 1000 {
                to_ms *= 2;
            }
            if let Some(st) = start_term {
                let moved_on = self
                    .node_ids()
                    .into_iter()
                    .any(|id| self.status(id).is_some_and(|s| s.term > st));
                if moved_on {
                    return None;
                }
            }
        }
        let (nd, data) = self.n_committed(index);
        if nd < n {
            self.fail(&format!(
                "only {nd} decided for index {index:?}; wanted {n}"
            ));
        }
        data
    }

    /// 6.824 `one` with an integer command.
    pub fn one(&mut self, value: u64, expected_servers: usize, retry: bool) -> LogIndex {
        self.one_bytes(cmd(value), expected_servers, retry)
    }

    /// 6.824 `one`: submits `data` to the first connected node that accepts it, waits up to
    /// 2 s for `expected_servers` to apply it; with `retry`, keeps trying for 10 s; returns
    /// its index or fails.
    pub fn one_bytes(&mut self, data: Bytes, expected_servers: usize, retry: bool) -> LogIndex {
        let t0 = self.now_ms();
        let n = self.len();
        let mut starts = 0;
        while self.now_ms() < t0 + 10_000 {
            let mut index = None;
            for _ in 0..n {
                starts = (starts + 1) % n;
                let id = NodeId(starts as u64 + 1);
                if self.is_connected(id) {
                    if let Some((i, _)) = self.start(id, data.clone()) {
                        index = Some(i);
                        break;
                    }
                }
            }
            let Some(index) = index else {
                self.run_for_ms(50);
                continue;
            };
            let t1 = self.now_ms();
            while self.now_ms() < t1 + 2_000 {
                let (nd, got) = self.n_committed(index);
                if nd > 0 && nd >= expected_servers && got.as_ref() == Some(&data) {
                    return index;
                }
                self.run_for_ms(20);
            }
            if !retry {
                self.fail(&format!("one({data:?}) failed to reach agreement"));
            }
        }
        self.fail(&format!("one({data:?}) failed to reach agreement in 10 s"))
    }

    /// 6.824 `LogSize`: the largest durable Raft state (hard state and log, not the snapshot)
    /// over all nodes, in approximate encoded bytes.
    pub fn log_size_bytes(&self) -> usize {
        self.node_ids()
            .into_iter()
            .map(|id| {
                let d = self.node(id).disk().durable();
                24 + d.entries.iter().map(|e| e.size_bytes()).sum::<usize>()
            })
            .max()
            .unwrap_or(0)
    }

    /// The leader of the highest term among connected nodes right now, without waiting.
    pub fn current_leader(&self) -> Option<NodeId> {
        self.node_ids()
            .into_iter()
            .filter(|id| self.is_connected(*id))
            .filter_map(|id| {
                self.status(id)
                    .filter(|s| s.role == Role::Leader)
                    .map(|s| (s.term, id))
            })
            .max()
            .map(|(_, id)| id)
    }
}
