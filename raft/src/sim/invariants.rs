//! Safety invariants, checked after every simulator event, plus the persistence rules
//! checked whenever a message is released to the network.
//!
//! Checked (paper Figure 3 and section 5.4, thesis 6.4, Figure 2's "updated on stable storage
//! before responding to RPCs"):
//! 1. Election safety: at most one node is ever leader in a given term (history, not snapshots).
//! 2. Log matching: two entries with the same (index, term) anywhere (written to a disk or sent
//!    in AppendEntries) have the same data and the same previous term, hence equal prefixes.
//! 3. Leader completeness: an entry known committed while some node was in term `t` is in the
//!    log (or snapshot) of every leader of a term above `t`, checked when a node becomes leader
//!    and when an entry is first seen committed.
//! 4. State machine safety: no two nodes apply (or commit) different entries at one index, and
//!    a restored snapshot agrees with what was committed.
//! 5. Commit durability: when an index is first seen committed, a quorum of the observing
//!    node's configuration (the one it had before this event or the one it has now: applying
//!    a configuration entry can change it in the same round) holds it durably; with every
//!    node a voter, a majority of all disks (a leader counts itself only up to its
//!    persisted index; acks follow fsyncs).
//! 6. Monotonicity: within one incarnation a node's term and commit never decrease; the durable
//!    term and commit never decrease, even across crashes; a durable vote never changes
//!    within a term; a restarted node resumes at least at its durable term; commit <= last index.
//! 7. Applying: per incarnation, applied indexes are contiguous (after a snapshot, from its
//!    index + 1); an applied entry is in the node's log (its written log: a leader applies
//!    before its own fsync, and the application runs behind the node, whose role may have
//!    changed since); an applied snapshot is on the local durable disk.
//! 8. Persistence before revealing (safety-critical, checked by
//!    `persistence_rules::check_release` at the instant the message leaves its sender): a
//!    vote grant or a RequestVote needs the durable vote; an append ack needs its entries and term durable; a snapshot ack needs the
//!    snapshot durable; a leader's messages need its term durable.
//! 9. Persistence before revealing (Figure 2 conformance, [`Checker::set_strict_term_reveal`],
//!    on by default): no released message other than pre-vote traffic carries a term above the
//!    sender's durable term (e.g. a vote rejection or heartbeat response sent while the term
//!    change is still in an unsynced write). Not needed for safety, but Figure 2 says state is
//!    "updated on stable storage before responding to RPCs" and the core brief requires it.
//! 10. ReadIndex: a read's index is at least every index applied anywhere before it started.
//!
//! What "commit" means across restarts: a node restarts from its durable hard state's commit,
//! which may lag its pre-crash commit (a commit-only hard state is not fsynced); it is never
//! compared with the pre-crash value, only with the durable one.

use crate::core::{CoreStatus, ReadState, Role};
use crate::sim::app::SimStateMachine;
use crate::sim::storage_model::DiskState;
use crate::types::{Entry, EntryKind, LogIndex, NodeId, Snapshot, Term};
use bytes::Bytes;
use std::collections::BTreeMap;

/// A violated invariant, described.
pub type Violation = String;

/// What the checker sees of one node at the end of an event.
#[derive(Debug)]
pub struct NodeObs<'a> {
    /// The node.
    pub id: NodeId,
    /// The core's status, or `None` while crashed.
    pub status: Option<CoreStatus>,
    /// What the node has written.
    pub written: &'a DiskState,
    /// What is durable on its disk.
    pub durable: &'a DiskState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct EntryRecord {
    kind: EntryKind,
    data: Bytes,
    prev_term: Option<Term>,
}

#[derive(Clone, Debug)]
struct CommittedRecord {
    term: Term,
    kind: EntryKind,
    data: Bytes,
    /// The lowest term any node was in when it saw this entry committed.
    seen_in_term: Term,
}

#[derive(Clone, Debug, Default)]
pub(super) struct NodeView {
    alive: bool,
    term: Term,
    commit: LogIndex,
    role: Option<Role>,
    commit_checked: LogIndex,
    applied: LogIndex,
    pub(super) durable_term: Term,
    pub(super) durable_vote: Option<NodeId>,
    pub(super) durable_commit: LogIndex,
    /// The configuration the node had at the end of the previous check.
    membership: Option<std::sync::Arc<crate::core::Membership>>,
}

/// The invariant checker of one simulated cluster.
#[derive(Debug)]
pub struct Checker {
    leaders_by_term: BTreeMap<Term, NodeId>,
    entries: BTreeMap<(LogIndex, Term), EntryRecord>,
    committed: BTreeMap<LogIndex, CommittedRecord>,
    pending_committed: Vec<(NodeId, Entry, Term)>,
    max_applied_anywhere: LogIndex,
    views: Vec<NodeView>,
    reads: BTreeMap<u64, (NodeId, LogIndex)>,
    pub(super) strict_term_reveal: bool,
}

pub(super) fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<(), Violation> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

impl Checker {
    /// A checker for nodes `1..=nodes`, all alive at term 0.
    pub fn new(nodes: usize) -> Checker {
        Checker {
            leaders_by_term: BTreeMap::new(),
            entries: BTreeMap::new(),
            committed: BTreeMap::new(),
            pending_committed: Vec::new(),
            max_applied_anywhere: LogIndex(0),
            views: vec![
                NodeView {
                    alive: true,
                    ..NodeView::default()
                };
                nodes
            ],
            reads: BTreeMap::new(),
            strict_term_reveal: true,
        }
    }

    /// Turns the Figure 2 conformance check (invariant 9) on or off.
    pub fn set_strict_term_reveal(&mut self, on: bool) {
        self.strict_term_reveal = on;
    }

    pub(super) fn view(&mut self, node: NodeId) -> &mut NodeView {
        &mut self.views[node.0 as usize - 1]
    }

    /// The highest index applied by any node so far (what clients may have seen).
    pub fn max_applied_anywhere(&self) -> LogIndex {
        self.max_applied_anywhere
    }

    /// The leader recorded for `term`, if any node was ever leader in it.
    pub fn leader_of_term(&self, term: Term) -> Option<NodeId> {
        self.leaders_by_term.get(&term).copied()
    }

    /// The entry committed at `index`, as (term, data), if known.
    pub fn committed_entry(&self, index: LogIndex) -> Option<(Term, Bytes)> {
        self.committed.get(&index).map(|c| (c.term, c.data.clone()))
    }

    /// The kind of the entry committed at `index`, if known.
    pub fn committed_kind(&self, index: LogIndex) -> Option<EntryKind> {
        self.committed.get(&index).map(|c| c.kind)
    }

    /// The highest index known committed.
    pub fn max_committed(&self) -> LogIndex {
        self.committed
            .keys()
            .next_back()
            .copied()
            .unwrap_or_default()
    }

    /// Reads started and neither confirmed nor dropped yet (reads of crashed nodes excluded).
    pub fn pending_reads(&self) -> usize {
        self.reads.len()
    }

    /// A node crashed.
    pub fn on_crash(&mut self, node: NodeId) {
        self.view(node).alive = false;
    }

    /// A node restarted from `durable` and its core reports `status`.
    ///
    /// # Errors
    /// When the restarted core forgot its durable term.
    pub fn on_restart(
        &mut self,
        node: NodeId,
        status: &CoreStatus,
        durable: &DiskState,
    ) -> Result<(), Violation> {
        check(status.term >= durable.hard_state.term, || {
            format!(
                "{node:?} restarted at {:?} below its durable term {:?}",
                status.term, durable.hard_state.term
            )
        })?;
        let view = self.view(node);
        *view = NodeView {
            alive: true,
            term: status.term,
            commit: status.commit,
            role: Some(status.role),
            commit_checked: durable.snapshot_index(),
            applied: LogIndex(0),
            ..view.clone()
        };
        Ok(())
    }

    /// Feeds entries a node just wrote after an entry of term `prev` (`None`: unknown).
    ///
    /// # Errors
    /// On a log matching violation.
    pub fn on_entries_written(
        &mut self,
        prev: Option<Term>,
        entries: &[Entry],
    ) -> Result<(), Violation> {
        self.feed_log_matching(prev, entries)
    }

    pub(super) fn feed_log_matching(
        &mut self,
        mut prev: Option<Term>,
        entries: &[Entry],
    ) -> Result<(), Violation> {
        for e in entries {
            let rec = EntryRecord {
                kind: e.kind,
                data: e.data.clone(),
                prev_term: prev,
            };
            match self.entries.get_mut(&(e.index, e.term)) {
                None => {
                    self.entries.insert((e.index, e.term), rec);
                }
                Some(old) => {
                    check(old.kind == rec.kind && old.data == rec.data, || {
                        format!(
                            "log matching: two different entries at {:?}/{:?}",
                            e.index, e.term
                        )
                    })?;
                    match (old.prev_term, prev) {
                        (Some(a), Some(b)) => check(a == b, || {
                            format!(
                                "log matching: entry {:?}/{:?} follows term {a:?} in one log and {b:?} in another",
                                e.index, e.term
                            )
                        })?,
                        (None, Some(b)) => old.prev_term = Some(b),
                        _ => {}
                    }
                }
            }
            prev = Some(e.term);
        }
        Ok(())
    }

    /// A node hands a committed entry to its application; `durable` is its disk now.
    ///
    /// # Errors
    /// When applying skips or repeats an index, or runs ahead of `holding`: the node's
    /// durable log (its written log on a leader, which may apply committed entries before
    /// its own fsync: they are durable on a majority of followers).
    pub fn on_apply(
        &mut self,
        node: NodeId,
        entry: &Entry,
        term: Term,
        holding: &DiskState,
    ) -> Result<(), Violation> {
        let view = self.view(node);
        check(entry.index == view.applied.next(), || {
            format!(
                "{node:?} applied {:?} after {:?}",
                entry.index, view.applied
            )
        })?;
        view.applied = entry.index;
        check(holding.holds(entry.index, entry.term), || {
            format!(
                "{node:?} applied {:?}/{:?} which is not in its log",
                entry.index, entry.term
            )
        })?;
        self.max_applied_anywhere = self.max_applied_anywhere.max(entry.index);
        self.pending_committed.push((node, entry.clone(), term));
        Ok(())
    }

    /// A node's application restored `snapshot` (already done on `app`).
    ///
    /// # Errors
    /// When the snapshot goes back, is not durable, or disagrees with what was committed.
    pub fn on_apply_snapshot(
        &mut self,
        node: NodeId,
        snapshot: &Snapshot,
        durable: &DiskState,
        app: &dyn SimStateMachine,
    ) -> Result<(), Violation> {
        let index = snapshot.meta.index;
        let view = self.view(node);
        check(index > view.applied, || {
            format!(
                "{node:?} got snapshot {:?} with {:?} already applied",
                snapshot.meta, view.applied
            )
        })?;
        view.applied = index;
        check(durable.holds(index, snapshot.meta.term), || {
            format!(
                "{node:?} applies snapshot {:?} that is not durable",
                snapshot.meta
            )
        })?;
        if let Some(c) = self.committed.get(&index) {
            check(c.term == snapshot.meta.term, || {
                format!(
                    "snapshot {:?} disagrees with committed term {:?}",
                    snapshot.meta, c.term
                )
            })?;
        }
        for (i, c) in self.committed.range(..=index) {
            if let Some(data) = app.applied_data(*i) {
                check(data == c.data, || {
                    format!("{node:?} restored snapshot {:?} whose entry {i:?} differs from the committed one", snapshot.meta)
                })?;
            }
        }
        self.max_applied_anywhere = self.max_applied_anywhere.max(index);
        Ok(())
    }

    /// A read started on `node` with context `ctx`.
    pub fn on_read_started(&mut self, node: NodeId, ctx: u64) {
        self.reads.insert(ctx, (node, self.max_applied_anywhere));
    }

    /// `node` emitted a ReadState.
    ///
    /// # Errors
    /// For an unknown or repeated context, or an index below what was applied before the
    /// read started (a stale read).
    pub fn on_read_state(&mut self, node: NodeId, rs: &ReadState) -> Result<(), Violation> {
        let Some((started_on, min_index)) = self.reads.remove(&rs.ctx) else {
            return Err(format!(
                "{node:?} emitted a ReadState for unknown or finished ctx {}",
                rs.ctx
            ));
        };
        check(started_on == node, || {
            format!(
                "read {} started on {started_on:?} ended on {node:?}",
                rs.ctx
            )
        })?;
        check(rs.index >= min_index, || {
            format!(
                "stale read on {node:?}: ReadState index {:?} but {min_index:?} was applied before the read began",
                rs.index
            )
        })
    }

    /// `node` dropped the read `ctx` (it stopped leading before confirming it).
    ///
    /// # Errors
    /// For a context that is unknown, already finished, or started on another node.
    pub fn on_read_dropped(&mut self, node: NodeId, ctx: u64) -> Result<(), Violation> {
        match self.reads.remove(&ctx) {
            Some((started_on, _)) if started_on == node => Ok(()),
            Some((started_on, _)) => Err(format!(
                "read {ctx} started on {started_on:?} dropped by {node:?}"
            )),
            None => Err(format!("{node:?} dropped unknown or finished read {ctx}")),
        }
    }

    /// Forgets reads of `node` that will never complete (crash, dropped by the core).
    pub fn forget_reads(&mut self, ctxs: impl IntoIterator<Item = u64>) {
        for ctx in ctxs {
            self.reads.remove(&ctx);
        }
    }

    /// Checks every invariant that needs the whole cluster, after one event.
    ///
    /// # Errors
    /// The first violation found.
    pub fn after_event(&mut self, nodes: &[NodeObs<'_>]) -> Result<(), Violation> {
        for (node, entry, term) in std::mem::take(&mut self.pending_committed) {
            self.record_committed(node, entry.index, &entry, term, nodes)?;
        }
        for obs in nodes {
            if let Some(status) = &obs.status {
                self.check_node(obs, status, nodes)?;
            }
        }
        Ok(())
    }

    fn check_node(
        &mut self,
        obs: &NodeObs<'_>,
        status: &CoreStatus,
        nodes: &[NodeObs<'_>],
    ) -> Result<(), Violation> {
        let id = obs.id;
        let view = self.view(id).clone();
        check(status.term >= view.term, || {
            format!(
                "{id:?} term went back from {:?} to {:?}",
                view.term, status.term
            )
        })?;
        check(status.commit >= view.commit, || {
            format!(
                "{id:?} commit went back from {:?} to {:?}",
                view.commit, status.commit
            )
        })?;
        check(status.commit <= obs.written.last_index(), || {
            format!(
                "{id:?} commit {:?} beyond its last index {:?}",
                status.commit,
                obs.written.last_index()
            )
        })?;
        if status.role == Role::Leader {
            let first = *self.leaders_by_term.entry(status.term).or_insert(id);
            check(first == id, || {
                format!(
                    "election safety: {first:?} and {id:?} both leaders in {:?}",
                    status.term
                )
            })?;
            if view.role != Some(Role::Leader) || view.term != status.term {
                self.check_new_leader(id, status.term, obs.written)?;
            }
        }
        let mut i = view.commit_checked.max(obs.written.snapshot_index());
        while i < status.commit {
            i = i.next();
            if let Some(e) = obs.written.entry(i) {
                let e = e.clone();
                self.record_committed(id, i, &e, status.term, nodes)?;
            }
        }
        let v = self.view(id);
        v.membership = Some(status.membership.clone());
        v.term = status.term;
        v.commit = status.commit;
        v.role = Some(status.role);
        v.commit_checked = status.commit.max(v.commit_checked);
        Ok(())
    }

    fn check_new_leader(&self, id: NodeId, term: Term, log: &DiskState) -> Result<(), Violation> {
        for (index, c) in self.committed.range(log.snapshot_index().next()..) {
            if c.seen_in_term < term {
                check(log.holds(*index, c.term), || {
                    format!(
                        "leader completeness: {id:?} became leader of {term:?} without committed entry {index:?}/{:?}",
                        c.term
                    )
                })?;
            }
        }
        Ok(())
    }

    fn record_committed(
        &mut self,
        node: NodeId,
        index: LogIndex,
        entry: &Entry,
        term: Term,
        nodes: &[NodeObs<'_>],
    ) -> Result<(), Violation> {
        if let Some(c) = self.committed.get_mut(&index) {
            check(
                c.term == entry.term && c.kind == entry.kind && c.data == entry.data,
                || {
                    format!(
                    "state machine safety: {node:?} has {:?}/{:?} committed at {index:?}, others {:?}",
                    entry.index, entry.term, c.term
                )
                },
            )?;
            c.seen_in_term = c.seen_in_term.min(term);
            return Ok(());
        }
        let durable_on = |id: NodeId| {
            nodes
                .iter()
                .any(|o| o.id == id && o.durable.holds(index, entry.term))
        };
        let before = self.view(node).membership.clone();
        let now = nodes
            .iter()
            .find(|o| o.id == node)
            .and_then(|o| o.status.as_ref())
            .map(|s| s.membership.clone());
        let quorum = [before, now]
            .iter()
            .flatten()
            .any(|m| m.has_quorum(durable_on));
        check(quorum, || {
            let holders: Vec<NodeId> = nodes
                .iter()
                .map(|o| o.id)
                .filter(|id| durable_on(*id))
                .collect();
            format!(
                "commit durability: {index:?}/{:?} seen committed on {node:?} but durable only on {holders:?}, no quorum of its configuration",
                entry.term
            )
        })?;
        for obs in nodes {
            let Some(s) = &obs.status else { continue };
            if s.role == Role::Leader && s.term > term {
                check(obs.written.holds(index, entry.term), || {
                    format!(
                        "leader completeness: leader {:?} of {:?} lacks committed {index:?}",
                        obs.id, s.term
                    )
                })?;
            }
        }
        let rec = CommittedRecord {
            term: entry.term,
            kind: entry.kind,
            data: entry.data.clone(),
            seen_in_term: term,
        };
        self.committed.insert(index, rec);
        Ok(())
    }
}
