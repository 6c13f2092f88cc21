//! What the executor hands the application: committed entries, snapshots and role
//! changes, in log order, over the bounded apply channel, with a backlog in front of it.
//!
//! The backlog lets a slow application fall behind without stopping the executor (and
//! with it heartbeats): messages wait here and move into the channel as the application
//! drains it. It grows only with entries the core committed, which the application must
//! eventually apply; the core stops handing out more than the log holds.

use super::ApplyMsg;
use crate::storage::SnapshotReader;
use crate::types::{Entry, EntryKind, SnapshotMeta};
use crossbeam_channel::{Sender, TrySendError};
use std::collections::VecDeque;

/// The apply channel and its backlog.
#[derive(Debug)]
pub(crate) struct ApplyQueue {
    tx: Sender<ApplyMsg>,
    backlog: VecDeque<ApplyMsg>,
}

impl ApplyQueue {
    pub(crate) fn new(tx: Sender<ApplyMsg>) -> ApplyQueue {
        ApplyQueue {
            tx,
            backlog: VecDeque::new(),
        }
    }

    /// Queues a snapshot for the application to install.
    pub(crate) fn push_snapshot(&mut self, meta: SnapshotMeta, data: SnapshotReader) {
        self.backlog.push_back(ApplyMsg::Snapshot {
            index: meta.index,
            term: meta.term,
            data,
        });
    }

    /// Queues committed entries, in order.
    pub(crate) fn push_entries(&mut self, entries: Vec<Entry>) {
        self.backlog
            .extend(entries.into_iter().map(|entry| match entry.kind {
                EntryKind::Normal => ApplyMsg::Command {
                    index: entry.index,
                    term: entry.term,
                    data: entry.data,
                },
                EntryKind::Noop => ApplyMsg::Noop {
                    index: entry.index,
                    term: entry.term,
                },
                EntryKind::Membership => ApplyMsg::Membership {
                    index: entry.index,
                    term: entry.term,
                    data: entry.data,
                },
            }));
    }

    /// Queues any other message (a role change).
    pub(crate) fn push(&mut self, msg: ApplyMsg) {
        self.backlog.push_back(msg);
    }

    /// The channel, while messages wait for room in it (to wake up when there is some).
    pub(crate) fn waiting_for_room(&self) -> Option<&Sender<ApplyMsg>> {
        (!self.backlog.is_empty()).then_some(&self.tx)
    }

    /// Moves as much of the backlog into the channel as fits. If the application is gone,
    /// the backlog is dropped: nothing more can be applied.
    pub(crate) fn flush(&mut self) {
        while let Some(msg) = self.backlog.pop_front() {
            match self.tx.try_send(msg) {
                Ok(()) => {}
                Err(TrySendError::Full(msg)) => {
                    self.backlog.push_front(msg);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.backlog.clear();
                    break;
                }
            }
        }
    }
}
