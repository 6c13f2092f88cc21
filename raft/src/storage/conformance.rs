//! The storage conformance suite: one set of cases every [`Storage`] must pass, run
//! against `DiskStorage` (real and simulated disk) and `MemStorage`
//! (`raft/tests/storage_conformance.rs`), as openraft's log-store suite does.
//!
//! Each case gets a fresh storage from a [`StorageHarness`], which also knows how to
//! restart a storage (clean process restart after `sync`) and, when it can, how to
//! simulate a power loss that drops unsynced writes. Cases panic with their name on
//! failure: this is test support code (compiled only for tests and the `sim` feature),
//! hence the allowed `unwrap`/`expect`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::Storage;
use crate::error::StorageError;
use crate::types::{
    Entry, HardState, InitialState, LogIndex, NodeId, ReceivedSnapshot, Snapshot, SnapshotChunk,
    SnapshotMeta, Term,
};
use bytes::Bytes;

/// Makes, restarts and crashes storages for the suite.
pub trait StorageHarness {
    /// The storage under test.
    type S: Storage;

    /// A new, empty storage.
    fn fresh(&mut self) -> Self::S;

    /// The same storage after a clean process restart (drops `storage`; what was synced
    /// must come back).
    fn restart(&mut self, storage: Self::S) -> Self::S;

    /// Whether [`StorageHarness::power_loss`] really drops unsynced writes. A real disk
    /// cannot lose power on demand; cases that need it are skipped there.
    fn simulates_power_loss(&self) -> bool;

    /// The same storage after a power loss that drops everything not synced (a plain
    /// restart when `simulates_power_loss` is false).
    fn power_loss(&mut self, storage: Self::S) -> Self::S;
}

/// A suite case.
type Case<H> = fn(&mut H);

/// Builds the (name, case) table from the case functions' names.
macro_rules! case_table {
    ($h:ty; $($case:ident),* $(,)?) => {
        vec![$((stringify!($case), $case::<$h> as Case<$h>)),*]
    };
}

/// Every case, by name.
fn cases<H: StorageHarness>() -> Vec<(&'static str, Case<H>)> {
    case_table![
        H;
        fresh_storage_is_empty,
        append_then_restart_returns_entries,
        overwrite_truncates_the_suffix,
        overwrite_after_sync_survives_restart,
        empty_append_is_a_no_op,
        append_contract_violations_are_errors,
        hard_state_last_write_wins,
        hard_state_contract_violations_are_errors,
        snapshot_keeps_the_matching_suffix,
        snapshot_discards_a_divergent_log,
        snapshot_beyond_the_log_discards_it,
        snapshot_must_move_forward,
        snapshot_is_durable_without_sync,
        snapshot_chunks_read_back_the_latest_snapshot,
        incoming_snapshot_installs_from_its_chunks,
        incoming_snapshot_refuses_gaps_and_other_snapshots,
        incoming_snapshot_is_nothing_until_installed,
        open_snapshot_reads_the_latest_snapshot,
        unsynced_writes_are_lost_on_power_loss,
        synced_state_survives_power_loss,
        one_sync_covers_a_batch,
        many_batches_with_overwrites_survive_restart,
    ]
}

/// Runs every case against `harness`, panicking with the case name on the first failure.
pub fn run_all<H: StorageHarness>(harness: &mut H) {
    for (name, case) in cases::<H>() {
        tracing::debug!(case = name, "storage conformance case");
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(harness)));
        if let Err(panic) = result {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("storage conformance case `{name}` failed: {message}");
        }
    }
}

/// Entries `range` at `term`, with data naming both (so overwrites are visible).
pub fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range
        .map(|i| Entry {
            index: LogIndex(i),
            term: Term(term),
            data: Bytes::from(format!("{i}@{term}")),
            ..Entry::default()
        })
        .collect()
}

/// A snapshot at (`index`, `term`) whose data and recorded configuration name both (so
/// a storage that loses or mixes up either is caught).
fn snapshot(index: u64, term: u64) -> Snapshot {
    let membership =
        crate::core::Membership::from_voters([NodeId(1), NodeId(2), NodeId(index + 2)]);
    Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(index),
            term: Term(term),
        },
        conf: Some(crate::types::ConfState {
            membership,
            index: LogIndex(index - 1),
        }),
        data: Bytes::from(format!("state@{index}")),
    }
}

fn hard_state(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState {
        term: Term(term),
        vote: vote.map(NodeId),
        commit: LogIndex(commit),
    }
}

fn state<S: Storage>(storage: &S) -> InitialState {
    storage.initial_state().unwrap()
}

fn assert_contract<T: std::fmt::Debug>(result: Result<T, StorageError>, what: &str) {
    match result {
        Err(StorageError::Contract(_)) => {}
        other => panic!("{what}: expected a contract error, got {other:?}"),
    }
}

fn fresh_storage_is_empty<H: StorageHarness>(h: &mut H) {
    let s = h.fresh();
    assert_eq!(state(&s), InitialState::default());
}

fn append_then_restart_returns_entries<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1..=5, 1)).unwrap();
    assert_eq!(state(&s).entries, entries(1..=5, 1));
    s.sync().unwrap();
    let s = h.restart(s);
    assert_eq!(state(&s).entries, entries(1..=5, 1));
}

fn overwrite_truncates_the_suffix<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1..=5, 1)).unwrap();
    s.append(&entries(3..=4, 2)).unwrap();
    let expected = [entries(1..=2, 1), entries(3..=4, 2)].concat();
    assert_eq!(state(&s).entries, expected);
    s.sync().unwrap();
    let s = h.restart(s);
    assert_eq!(state(&s).entries, expected);
}

fn overwrite_after_sync_survives_restart<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1..=5, 1)).unwrap();
    s.sync().unwrap();
    s.append(&entries(3..=3, 2)).unwrap();
    s.sync().unwrap();
    let mut s = h.restart(s);
    assert_eq!(
        state(&s).entries,
        [entries(1..=2, 1), entries(3..=3, 2)].concat()
    );
    s.append(&entries(4..=4, 2)).unwrap();
    s.sync().unwrap();
    let s = h.restart(s);
    assert_eq!(
        state(&s).entries,
        [entries(1..=2, 1), entries(3..=4, 2)].concat()
    );
}

fn empty_append_is_a_no_op<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&[]).unwrap();
    s.append(&entries(1..=2, 1)).unwrap();
    s.append(&[]).unwrap();
    assert_eq!(state(&s).entries, entries(1..=2, 1));
}

fn append_contract_violations_are_errors<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1..=3, 2)).unwrap();
    assert_contract(s.append(&entries(5..=6, 2)), "gap after the last index");
    let mut holey = entries(4..=6, 2);
    holey.remove(1);
    assert_contract(s.append(&holey), "non-contiguous batch");
    assert_contract(
        s.append(&entries(4..=4, 1)),
        "term below the previous entry's",
    );
    let mut falling = entries(4..=5, 3);
    falling[1].term = Term(2);
    assert_contract(s.append(&falling), "terms falling within a batch");
    assert_contract(s.append(&entries(4..=4, 0)), "term zero");
    assert_contract(s.append(&entries(0..=1, 2)), "index zero");
    assert_eq!(
        state(&s).entries,
        entries(1..=3, 2),
        "a refused append changed the log"
    );
    s.append(&entries(4..=4, 2)).unwrap();
}

fn hard_state_last_write_wins<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.set_hard_state(hard_state(1, Some(1), 0)).unwrap();
    s.set_hard_state(hard_state(2, None, 3)).unwrap();
    s.set_hard_state(hard_state(2, Some(3), 4)).unwrap();
    assert_eq!(state(&s).hard_state, hard_state(2, Some(3), 4));
    s.sync().unwrap();
    let s = h.restart(s);
    assert_eq!(state(&s).hard_state, hard_state(2, Some(3), 4));
}

fn hard_state_contract_violations_are_errors<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.set_hard_state(hard_state(5, Some(2), 1)).unwrap();
    assert_contract(s.set_hard_state(hard_state(4, None, 1)), "term going back");
    assert_contract(
        s.set_hard_state(hard_state(5, Some(3), 1)),
        "second vote in a term",
    );
    assert_contract(
        s.set_hard_state(hard_state(5, None, 1)),
        "vote withdrawn in a term",
    );
    s.set_hard_state(hard_state(5, Some(2), 0)).unwrap();
    s.set_hard_state(hard_state(6, Some(3), 2)).unwrap();
    assert_eq!(state(&s).hard_state, hard_state(6, Some(3), 2));
}

fn snapshot_keeps_the_matching_suffix<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1..=10, 1)).unwrap();
    s.save_snapshot(&snapshot(5, 1)).unwrap();
    let expected = InitialState {
        hard_state: HardState::default(),
        snapshot: Some(snapshot(5, 1)),
        entries: entries(6..=10, 1),
    };
    assert_eq!(state(&s), expected);
    s.append(&entries(11..=11, 1)).unwrap();
    s.sync().unwrap();
    let s = h.restart(s);
    let expected = InitialState {
        entries: entries(6..=11, 1),
        ..expected
    };
    assert_eq!(state(&s), expected);
}

fn snapshot_discards_a_divergent_log<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1..=10, 1)).unwrap();
    s.sync().unwrap();
    s.save_snapshot(&snapshot(5, 2)).unwrap();
    assert!(
        state(&s).entries.is_empty(),
        "a log disagreeing with the snapshot was kept"
    );
    assert_contract(s.append(&entries(5..=5, 2)), "append at the snapshot index");
    assert_contract(
        s.append(&entries(7..=7, 2)),
        "append leaving a gap after the snapshot",
    );
    s.append(&entries(6..=7, 2)).unwrap();
    s.sync().unwrap();
    let s = h.restart(s);
    assert_eq!(state(&s).snapshot, Some(snapshot(5, 2)));
    assert_eq!(state(&s).entries, entries(6..=7, 2));
}

fn snapshot_beyond_the_log_discards_it<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1..=3, 1)).unwrap();
    s.save_snapshot(&snapshot(10, 1)).unwrap();
    assert!(state(&s).entries.is_empty());
    s.append(&entries(11..=12, 1)).unwrap();
    s.sync().unwrap();
    let s = h.restart(s);
    assert_eq!(state(&s).snapshot, Some(snapshot(10, 1)));
    assert_eq!(state(&s).entries, entries(11..=12, 1));
}

fn snapshot_must_move_forward<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1..=10, 2)).unwrap();
    s.save_snapshot(&snapshot(5, 2)).unwrap();
    assert_contract(s.save_snapshot(&snapshot(5, 2)), "the same snapshot again");
    assert_contract(s.save_snapshot(&snapshot(4, 2)), "an older snapshot");
    assert_contract(
        s.save_snapshot(&snapshot(8, 1)),
        "a snapshot with a lower term",
    );
    assert_eq!(state(&s).snapshot, Some(snapshot(5, 2)));
    assert_eq!(state(&s).entries, entries(6..=10, 2));
}

fn snapshot_is_durable_without_sync<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1..=6, 1)).unwrap();
    s.set_hard_state(hard_state(1, Some(1), 4)).unwrap();
    s.save_snapshot(&snapshot(4, 1)).unwrap();
    let expected = InitialState {
        hard_state: hard_state(1, Some(1), 4),
        snapshot: Some(snapshot(4, 1)),
        entries: entries(5..=6, 1),
    };
    let s = h.power_loss(s);
    assert_eq!(
        state(&s),
        expected,
        "save_snapshot did not make itself and earlier writes durable"
    );
}

/// The leader's executor fills the chunks it sends to laggards from the storage.
fn snapshot_chunks_read_back_the_latest_snapshot<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    assert!(
        s.read_snapshot_chunk(SnapshotMeta::default(), 0, 0)
            .is_err(),
        "no snapshot yet"
    );
    s.append(&entries(1..=8, 1)).unwrap();
    s.save_snapshot(&snapshot(4, 1)).unwrap();
    s.save_snapshot(&snapshot(6, 1)).unwrap();
    let data = snapshot(6, 1).data;
    let chunked = |s: &H::S| -> Vec<u8> {
        (0..data.len() as u64)
            .step_by(3)
            .flat_map(|offset| {
                let len = (data.len() - offset as usize).min(3);
                s.read_snapshot_chunk(snapshot(6, 1).meta, offset, len)
                    .unwrap()
                    .to_vec()
            })
            .collect()
    };
    assert_eq!(chunked(&s), data.to_vec());
    assert!(
        s.read_snapshot_chunk(snapshot(4, 1).meta, 0, 1).is_err(),
        "only the latest snapshot is served"
    );
    assert!(
        s.read_snapshot_chunk(snapshot(6, 1).meta, data.len() as u64 - 1, 2)
            .is_err(),
        "a range beyond the snapshot"
    );
    let s = h.restart(s);
    assert_eq!(chunked(&s), data.to_vec(), "after a restart too");
}

/// Chunks of `snapshot`'s data, `size` bytes each (the first at offset 0, even if empty).
fn chunks_of(snapshot: &Snapshot, size: usize) -> Vec<SnapshotChunk> {
    let len = snapshot.data.len();
    (0..len.max(1))
        .step_by(size)
        .map(|offset| SnapshotChunk {
            meta: snapshot.meta,
            offset: offset as u64,
            data: snapshot.data.slice(offset..(offset + size).min(len)),
        })
        .collect()
}

fn received(snapshot: &Snapshot) -> ReceivedSnapshot {
    ReceivedSnapshot {
        meta: snapshot.meta,
        data_bytes: snapshot.data.len() as u64,
        conf: snapshot.conf.clone(),
    }
}

fn read_snapshot<S: Storage>(s: &S, meta: SnapshotMeta) -> Bytes {
    s.open_snapshot(meta).unwrap().into_bytes().unwrap()
}

/// A follower writes a leader's snapshot chunk by chunk, then installs it: as
/// `save_snapshot` of the whole, durable without a sync, the divergent log replaced.
fn incoming_snapshot_installs_from_its_chunks<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1..=6, 1)).unwrap();
    s.set_hard_state(hard_state(2, Some(2), 3)).unwrap();
    let snap = snapshot(5, 2);
    for chunk in chunks_of(&snap, 3) {
        s.write_incoming_snapshot(&chunk).unwrap();
    }
    s.install_incoming_snapshot(received(&snap)).unwrap();
    let expected = InitialState {
        hard_state: hard_state(2, Some(2), 3),
        snapshot: Some(snap.clone()),
        entries: vec![],
    };
    assert_eq!(state(&s), expected);
    assert_eq!(read_snapshot(&s, snap.meta), snap.data);
    let s = h.power_loss(s);
    assert_eq!(state(&s), expected, "installed without a sync, yet durable");
    assert_eq!(read_snapshot(&s, snap.meta), snap.data);
}

/// Chunks must continue the incoming snapshot; installing needs all of it. A refused
/// call changes nothing, and offset 0 starts over.
fn incoming_snapshot_refuses_gaps_and_other_snapshots<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    let snap = snapshot(5, 2);
    let chunks = chunks_of(&snap, 2);
    assert_contract(
        s.write_incoming_snapshot(&chunks[1]),
        "a chunk with nothing before it",
    );
    s.write_incoming_snapshot(&chunks[0]).unwrap();
    assert_contract(s.write_incoming_snapshot(&chunks[2]), "a gap");
    let mut other = chunks[1].clone();
    other.meta = snapshot(6, 2).meta;
    assert_contract(
        s.write_incoming_snapshot(&other),
        "another snapshot's chunk",
    );
    assert_contract(
        s.install_incoming_snapshot(received(&snap)),
        "a snapshot not received whole",
    );
    // Offset 0 starts over, and the rest then installs.
    for chunk in &chunks {
        s.write_incoming_snapshot(chunk).unwrap();
    }
    assert_contract(
        s.install_incoming_snapshot(received(&snapshot(6, 2))),
        "another snapshot than the one received",
    );
    s.install_incoming_snapshot(received(&snap)).unwrap();
    assert_eq!(state(&s).snapshot, Some(snap.clone()));
    assert_contract(
        s.install_incoming_snapshot(received(&snap)),
        "the same snapshot twice",
    );
}

/// An incoming snapshot not installed is not recovered: not after a restart, not after
/// a power loss.
fn incoming_snapshot_is_nothing_until_installed<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1..=3, 1)).unwrap();
    s.sync().unwrap();
    let snap = snapshot(9, 2);
    for chunk in chunks_of(&snap, 4) {
        s.write_incoming_snapshot(&chunk).unwrap();
    }
    let s = h.restart(s);
    assert_eq!(state(&s).snapshot, None);
    assert_eq!(state(&s).entries, entries(1..=3, 1));
    let mut s = h.power_loss(s);
    assert_eq!(state(&s).snapshot, None);
    assert_contract(
        s.install_incoming_snapshot(received(&snap)),
        "the chunks before the restart are gone",
    );
}

/// The application installs the latest snapshot from `open_snapshot`, whichever way it
/// was stored; an older one is refused.
fn open_snapshot_reads_the_latest_snapshot<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    assert!(
        s.open_snapshot(SnapshotMeta::default()).is_err(),
        "none yet"
    );
    s.append(&entries(1..=8, 1)).unwrap();
    s.save_snapshot(&snapshot(4, 1)).unwrap();
    assert_eq!(read_snapshot(&s, snapshot(4, 1).meta), snapshot(4, 1).data);
    let reader = s.open_snapshot(snapshot(4, 1).meta).unwrap();
    s.save_snapshot(&snapshot(6, 1)).unwrap();
    assert_eq!(
        reader.into_bytes().unwrap(),
        snapshot(4, 1).data,
        "a reader opened before a newer snapshot still reads its own"
    );
    assert!(
        s.open_snapshot(snapshot(4, 1).meta).is_err(),
        "not the latest"
    );
    let s = h.restart(s);
    assert_eq!(read_snapshot(&s, snapshot(6, 1).meta), snapshot(6, 1).data);
}

fn unsynced_writes_are_lost_on_power_loss<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1..=3, 1)).unwrap();
    s.set_hard_state(hard_state(1, Some(1), 2)).unwrap();
    s.sync().unwrap();
    s.append(&entries(4..=5, 1)).unwrap();
    s.append(&entries(2..=2, 2)).unwrap();
    s.set_hard_state(hard_state(2, Some(2), 2)).unwrap();
    if !h.simulates_power_loss() {
        return;
    }
    let s = h.power_loss(s);
    let expected = InitialState {
        hard_state: hard_state(1, Some(1), 2),
        snapshot: None,
        entries: entries(1..=3, 1),
    };
    assert_eq!(state(&s), expected);
}

fn synced_state_survives_power_loss<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.append(&entries(1..=3, 1)).unwrap();
    s.append(&entries(3..=4, 2)).unwrap();
    s.set_hard_state(hard_state(2, Some(2), 3)).unwrap();
    s.sync().unwrap();
    let before = state(&s);
    let mut s = h.power_loss(s);
    assert_eq!(state(&s), before);
    s.append(&entries(5..=5, 2)).unwrap();
    s.sync().unwrap();
    let s = h.power_loss(s);
    assert_eq!(state(&s).entries.last().map(|e| e.index), Some(LogIndex(5)));
}

fn one_sync_covers_a_batch<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    s.sync().unwrap();
    let before = s.stats();
    s.sync().unwrap();
    assert_eq!(
        s.stats().syncs,
        before.syncs,
        "a sync with nothing to do issued an fsync"
    );
    for i in 1..=10 {
        s.append(&entries(i..=i, 1)).unwrap();
    }
    s.set_hard_state(hard_state(1, None, 10)).unwrap();
    s.sync().unwrap();
    let after = s.stats();
    assert!(
        after.syncs - before.syncs <= 1,
        "one sync issued {} fsyncs",
        after.syncs - before.syncs
    );
    assert!(after.records_written - before.records_written >= 11);
}

fn many_batches_with_overwrites_survive_restart<H: StorageHarness>(h: &mut H) {
    let mut s = h.fresh();
    let mut expected: Vec<Entry> = Vec::new();
    let mut term = 1;
    let mut next = 1u64;
    for round in 0..60u64 {
        if round % 7 == 6 && next > 4 {
            term += 1;
            next -= 3;
        }
        let batch = entries(next..=next + round % 5, term);
        s.append(&batch).unwrap();
        expected.truncate(next as usize - 1);
        expected.extend(batch);
        next = expected.len() as u64 + 1;
        if round % 3 == 0 {
            s.sync().unwrap();
        }
    }
    s.sync().unwrap();
    let s = h.restart(s);
    assert_eq!(state(&s).entries, expected);
}
