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
        let mut clients = [OneClient::new(data, expected_servers, retry)];
        self.run_clients(&mut clients, |c| c[0].done().is_some());
        clients[0].done().unwrap_or_default()
    }

    /// Runs several 6.824 `one` calls concurrently (as the lab's goroutines do) until
    /// `stop(clients)` holds. A client that cannot get its command committed fails the run,
    /// as `one` does.
    pub fn run_clients(
        &mut self,
        clients: &mut [OneClient],
        mut stop: impl FnMut(&[OneClient]) -> bool,
    ) {
        let now = self.now_ms();
        for c in clients.iter_mut().filter(|c| c.started_ms.is_none()) {
            c.started_ms = Some(now);
            c.wake_ms = now;
        }
        loop {
            if stop(clients) {
                return;
            }
            let Some(next) = clients
                .iter()
                .filter(|c| c.done.is_none())
                .map(|c| c.wake_ms)
                .min()
            else {
                return;
            };
            if next > self.now_ms() {
                self.run_for_ms(next - self.now_ms());
            }
            let now = self.now_ms();
            for c in clients
                .iter_mut()
                .filter(|c| c.done.is_none() && c.wake_ms <= now)
            {
                let delay = self.step_client(c);
                c.wake_ms = now + delay;
            }
        }
    }

    /// One step of a [`OneClient`] at the current instant; returns ms until its next step.
    fn step_client(&mut self, c: &mut OneClient) -> u64 {
        let now = self.now_ms();
        if let Some((index, since)) = c.waiting {
            let (nd, got) = self.n_committed(index);
            if nd > 0 && nd >= c.expected && got.as_ref() == Some(&c.data) {
                c.done = Some(index);
                return 0;
            }
            if now < since + 2_000 {
                return 20;
            }
            if !c.retry {
                self.fail(&format!("one({:?}) failed to reach agreement", c.data));
            }
            c.waiting = None;
        }
        if now >= c.started_ms.unwrap_or(now) + 10_000 {
            self.fail(&format!(
                "one({:?}) failed to reach agreement in 10 s",
                c.data
            ));
        }
        let n = self.len();
        for _ in 0..n {
            c.starts = (c.starts + 1) % n;
            let id = NodeId(c.starts as u64 + 1);
            if self.is_connected(id) {
                if let Some((index, _)) = self.start(id, c.data.clone()) {
                    c.waiting = Some((index, now));
                    // 6.824 checks right away, then every 20 ms; nothing can commit at the
                    // instant of the proposal, so the first check is after 20 ms.
                    return 20;
                }
            }
        }
        50
    }

    /// 6.824 `LogSize`: the largest durable Raft state (hard state and log, not the snapshot)
    /// over all nodes, in approximate encoded bytes.
    pub fn log_size_bytes(&self) -> usize {
        self.node_ids()
            .into_iter()
            .map(|id| {
                let model = self.node(id).model().lock();
                let entries = &model.durable().entries;
                24 + entries.iter().map(|e| e.size_bytes()).sum::<usize>()
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

/// A 6.824 `one` call in progress, for running several concurrently with
/// [`Cluster::run_clients`].
#[derive(Clone, Debug)]
pub struct OneClient {
    data: Bytes,
    expected: usize,
    retry: bool,
    starts: usize,
    started_ms: Option<u64>,
    wake_ms: u64,
    waiting: Option<(LogIndex, u64)>,
    done: Option<LogIndex>,
}

impl OneClient {
    /// A client that will submit `data` and wait for `expected` servers (6.824 `one` args).
    pub fn new(data: Bytes, expected: usize, retry: bool) -> OneClient {
        OneClient {
            data,
            expected,
            retry,
            starts: 0,
            started_ms: None,
            wake_ms: 0,
            waiting: None,
            done: None,
        }
    }

    /// The index the command was committed at, once done.
    pub fn done(&self) -> Option<LogIndex> {
        self.done
    }

    /// The command.
    pub fn data(&self) -> &Bytes {
        &self.data
    }
}
