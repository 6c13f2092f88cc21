//! Crash recovery of `DiskStorage`: torn tails, corruption before the tail, crashes
//! between write and fsync, crash points around snapshot-then-purge, many segments,
//! identity and directory errors. Real-disk tests use a temp dir; crash tests use the
//! simulated disk (`SimFs`), which drops exactly what was not made durable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use raft::storage::conformance::entries;
use raft::storage::fs::Fs;
use raft::storage::record::{
    encode_record, Decoded, RecordDecoder, WalRecord, DEFAULT_MAX_RECORD_BYTES,
};
use raft::storage::sim_fs::{CrashMode, SimFs};
use raft::storage::{DiskOptions, DiskStorage, MemStorage, SnapshotSource, Storage};
use raft::{
    Entry, HardState, InitialState, LogIndex, NodeId, Snapshot, SnapshotMeta, StorageError, Term,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const DATA: &str = "/data";
/// Bound on the crash points tried for one operation (a save takes a few dozen).
const MAX_CRASH_POINTS: u64 = 500;

/// Defaults, but 256 KiB segments: segments are preallocated, and tests copy and rewrite
/// whole data directories many times.
fn options() -> DiskOptions {
    DiskOptions {
        segment_bytes: 256 << 10,
        ..DiskOptions::new("test-cluster", NodeId(1))
    }
}

fn small_segments(segment_bytes: u64) -> DiskOptions {
    DiskOptions {
        segment_bytes,
        ..options()
    }
}

fn hard_state(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState {
        term: Term(term),
        vote: vote.map(NodeId),
        commit: LogIndex(commit),
    }
}

fn snapshot(index: u64, term: u64) -> Snapshot {
    Snapshot::new(
        SnapshotMeta {
            index: LogIndex(index),
            term: Term(term),
        },
        bytes::Bytes::from(format!("state@{index}@{term}")),
    )
}

fn open_sim(fs: &SimFs, options: DiskOptions) -> Result<DiskStorage, StorageError> {
    DiskStorage::open_with_fs(Arc::new(fs.clone()), Path::new(DATA), options)
}

/// How many WAL segment files a simulated data directory holds.
fn sim_segment_count(fs: &SimFs) -> usize {
    fs.list_files(&Path::new(DATA).join("wal"))
        .unwrap()
        .iter()
        .filter(|name| name.ends_with(".log"))
        .count()
}

/// The WAL segment files in a real data directory, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
}

/// (offset, size, record) of every record in a segment's bytes (which may end in
/// preallocated zeros).
fn records_of(bytes: &[u8]) -> Vec<(u64, usize, WalRecord)> {
    RecordDecoder::new(bytes, DEFAULT_MAX_RECORD_BYTES)
        .map_while(|d| match d {
            Decoded::Record {
                offset,
                size_bytes,
                record,
            } => Some((offset, size_bytes, record)),
            Decoded::Corrupt { offset, .. } if bytes[offset as usize..].iter().all(|b| *b == 0) => {
                None
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn state(storage: &impl Storage) -> InitialState {
    storage.initial_state().unwrap()
}

/// Copies a directory tree (for restoring a pristine data directory).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let target = to.join(item.file_name());
        if item.file_type().unwrap().is_dir() {
            copy_dir(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), target).unwrap();
        }
    }
}

#[test]
fn torn_tail_cut_at_every_byte_of_the_last_record_keeps_exactly_the_complete_records() {
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("pristine");
    let mut s = DiskStorage::open(&pristine, options()).unwrap();
    s.append(&entries(1..=4, 1)).unwrap();
    s.set_hard_state(hard_state(1, Some(1), 3)).unwrap();
    s.append(&entries(5..=5, 1)).unwrap();
    s.sync().unwrap();
    drop(s);
    let segment = segment_files(&pristine).pop().unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    let (last_offset, last_size, last) = records_of(&bytes).pop().unwrap();
    assert_eq!(last, WalRecord::Entry(entries(5..=5, 1).remove(0)));
    // The segment was preallocated: only zeros follow its last record.
    let end = last_offset as usize + last_size;
    assert!(bytes[end..].iter().all(|b| *b == 0));
    let bytes = bytes[..end].to_vec();

    for cut in last_offset as usize..=bytes.len() {
        let dir = tmp.path().join(format!("cut-{cut}"));
        copy_dir(&pristine, &dir);
        let segment = dir.join("wal").join(segment.file_name().unwrap());
        std::fs::write(&segment, &bytes[..cut]).unwrap();
        let mut s = DiskStorage::open(&dir, options()).unwrap();
        let complete = if cut == bytes.len() { 5 } else { 4 };
        assert_eq!(
            state(&s).entries,
            entries(1..=complete, 1),
            "cut at byte {cut}"
        );
        assert_eq!(
            state(&s).hard_state,
            hard_state(1, Some(1), 3),
            "cut at byte {cut}"
        );
        let expected_len = if cut == bytes.len() {
            cut
        } else {
            last_offset as usize
        };
        // The torn bytes are gone; the WAL continues the segment (preallocated again).
        let after = std::fs::read(&segment).unwrap();
        assert_eq!(
            after[..expected_len],
            bytes[..expected_len],
            "cut at byte {cut}"
        );
        assert!(
            after[expected_len..].iter().all(|b| *b == 0),
            "cut at byte {cut}"
        );
        // The log continues cleanly after the cut.
        s.append(&entries(complete + 1..=complete + 1, 2)).unwrap();
        s.sync().unwrap();
        drop(s);
        let s = DiskStorage::open(&dir, options()).unwrap();
        let expected = [
            entries(1..=complete, 1),
            entries(complete + 1..=complete + 1, 2),
        ]
        .concat();
        assert_eq!(
            state(&s).entries,
            expected,
            "cut at byte {cut}, after reopening"
        );
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_flipped_byte_in_an_early_record_fails_open_naming_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("pristine");
    let mut s = DiskStorage::open(&pristine, options()).unwrap();
    s.append(&entries(1..=5, 1)).unwrap();
    s.sync().unwrap();
    // The next batch's SyncedUpTo says the first one was fsynced. (Damage to the last
    // synced batch, which no later record vouches for, is taken for a torn tail: see
    // the blind spots in scan.rs.)
    s.append(&entries(6..=6, 1)).unwrap();
    s.sync().unwrap();
    drop(s);
    let segment = segment_files(&pristine).pop().unwrap();
    let bytes = std::fs::read(&segment).unwrap();
    let entry_2 = WalRecord::Entry(entries(2..=2, 1).remove(0));
    let (offset, size, _) = records_of(&bytes)
        .into_iter()
        .find(|(_, _, record)| *record == entry_2)
        .unwrap();

    for at in offset as usize..offset as usize + size {
        let dir = tmp.path().join(format!("flip-{at}"));
        copy_dir(&pristine, &dir);
        let segment = dir.join("wal").join(segment.file_name().unwrap());
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x10;
        std::fs::write(&segment, &damaged).unwrap();
        match DiskStorage::open(&dir, options()) {
            Err(StorageError::Corrupt {
                path,
                offset: found,
                reason,
            }) => {
                assert_eq!(path, segment, "flip at {at}");
                assert_eq!(found, offset, "flip at {at}: {reason}");
            }
            other => panic!("flip at {at}: expected Corrupt, got {other:?}"),
        }
        // The damaged file was not modified by the failed open.
        assert_eq!(std::fs::read(&segment).unwrap(), damaged);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn damage_at_the_end_of_a_sealed_segment_is_corrupt_not_torn() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let mut s = DiskStorage::open(&dir, small_segments(300)).unwrap();
    for i in 1..=40 {
        s.append(&entries(i..=i, 1)).unwrap();
        s.sync().unwrap();
    }
    drop(s);
    let segments = segment_files(&dir);
    assert!(
        segments.len() >= 4,
        "expected several segments, got {}",
        segments.len()
    );
    let sealed = &segments[1];
    let len = std::fs::metadata(sealed).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(sealed)
        .unwrap();
    file.set_len(len - 1).unwrap();
    match DiskStorage::open(&dir, small_segments(300)) {
        Err(StorageError::Corrupt { path, reason, .. }) => {
            assert_eq!(&path, sealed);
            assert!(reason.contains("sealed"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn one_sync_makes_every_segment_written_since_the_last_sync_durable() {
    let fs = SimFs::new();
    // Each append is written at once and segments rotate every few entries, so one
    // sync covers writes that went to several segments.
    let options = DiskOptions {
        write_buffer_bytes: 1,
        segment_bytes: 120,
        ..options()
    };
    let mut s = open_sim(&fs, options.clone()).unwrap();
    for i in 1..=30 {
        s.append(&entries(i..=i, 1)).unwrap();
    }
    s.sync().unwrap();
    assert!(
        s.wal_segment_count() > 5,
        "only {} segments",
        s.wal_segment_count()
    );
    drop(s);
    fs.crash(CrashMode::DropUnsynced);
    let s = open_sim(&fs, options).unwrap();
    assert_eq!(state(&s).entries, entries(1..=30, 1));
}

#[test]
fn a_missing_middle_segment_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let mut s = DiskStorage::open(&dir, small_segments(300)).unwrap();
    for i in 1..=40 {
        s.append(&entries(i..=i, 1)).unwrap();
        s.sync().unwrap();
    }
    drop(s);
    std::fs::remove_file(&segment_files(&dir)[2]).unwrap();
    match DiskStorage::open(&dir, small_segments(300)) {
        Err(StorageError::CorruptFile { reason, .. }) => {
            assert!(reason.contains("missing"), "{reason}")
        }
        other => panic!("expected CorruptFile, got {other:?}"),
    }
}

/// Candidate states after a crash: the synced state plus each prefix of the records
/// written after the last sync (entries one at a time, as the WAL writes them).
enum Write {
    Entries(Vec<Entry>),
    HardState(HardState),
}

fn candidate_states(synced: &MemStorage, unsynced: &[Write]) -> Vec<InitialState> {
    let mut model = synced.clone();
    let mut candidates = vec![state(&model)];
    for write in unsynced {
        match write {
            Write::Entries(batch) => {
                for entry in batch {
                    model.append(std::slice::from_ref(entry)).unwrap();
                    candidates.push(state(&model));
                }
            }
            Write::HardState(hs) => {
                model.set_hard_state(*hs).unwrap();
                candidates.push(state(&model));
            }
        }
    }
    candidates
}

#[test]
fn crash_between_write_and_fsync_recovers_a_prefix_at_or_after_the_last_sync() {
    let unsynced = vec![
        Write::Entries(entries(11..=14, 1)),
        Write::HardState(hard_state(2, None, 8)),
        Write::Entries(entries(12..=13, 2)),
        Write::Entries(entries(14..=16, 2)),
        Write::HardState(hard_state(2, Some(2), 10)),
    ];
    let mut synced_model = MemStorage::new();
    synced_model.append(&entries(1..=10, 1)).unwrap();
    synced_model
        .set_hard_state(hard_state(1, Some(1), 5))
        .unwrap();
    let candidates = candidate_states(&synced_model, &unsynced);
    let mut seen = std::collections::BTreeSet::new();
    let modes = (0..400u64).map(|seed| match seed {
        0 => CrashMode::DropUnsynced,
        _ => CrashMode::TornWrites {
            seed,
            zero_fill: seed % 2 == 0,
            keep_unsynced_names: seed % 3 == 0,
        },
    });
    for mode in modes {
        let fs = SimFs::new();
        // Every append is written at once (not synced), so a crash can tear it.
        let options = DiskOptions {
            write_buffer_bytes: 1,
            ..options()
        };
        let mut s = open_sim(&fs, options.clone()).unwrap();
        s.append(&entries(1..=10, 1)).unwrap();
        s.set_hard_state(hard_state(1, Some(1), 5)).unwrap();
        s.sync().unwrap();
        for write in &unsynced {
            match write {
                Write::Entries(batch) => s.append(batch).unwrap(),
                Write::HardState(hs) => s.set_hard_state(*hs).unwrap(),
            }
        }
        drop(s);
        fs.crash(mode);
        let s = open_sim(&fs, options.clone()).unwrap();
        let recovered = state(&s);
        let Some(position) = candidates.iter().position(|c| *c == recovered) else {
            panic!("{mode:?}: recovered a state that never existed: {recovered:?}");
        };
        if mode == CrashMode::DropUnsynced {
            assert_eq!(
                position, 0,
                "dropping unsynced data must give the synced state"
            );
        }
        seen.insert(position);
        accepts_and_keeps_a_write(&fs, s, options, &format!("{mode:?}"));
    }
    assert!(
        seen.len() >= candidates.len() / 2,
        "torn writes explored too few states: {seen:?}"
    );
}

/// Entries `range` of term 1 with `data_bytes` bytes of data each (so that a few of them
/// fill a page).
fn big_entries(range: std::ops::RangeInclusive<u64>, data_bytes: usize) -> Vec<Entry> {
    range
        .map(|i| Entry {
            index: LogIndex(i),
            term: Term(1),
            data: bytes::Bytes::from(vec![b'a' + (i % 26) as u8; data_bytes]),
            ..Entry::default()
        })
        .collect()
}

/// The bytes of the newest WAL segment on a simulated disk.
fn last_segment_bytes(fs: &SimFs) -> Vec<u8> {
    let mut segments: Vec<PathBuf> = fs
        .all_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    fs.file_bytes(segments.last().unwrap()).unwrap()
}

/// Whether `bytes` hold a lost page (512 zeros in a row) with written data after it.
fn has_hole_before_data(bytes: &[u8]) -> bool {
    bytes
        .windows(512)
        .position(|w| w.iter().all(|&b| b == 0))
        .is_some_and(|hole| bytes[hole..].iter().any(|&b| b != 0))
}

/// After a power loss, a later page of an unsynced write can be on disk while an earlier
/// one is not. That is a torn tail like any other: recovery cuts it at the hole (dropping
/// the unsynced records after it) and gives the synced state plus a prefix of the later
/// writes; it must not refuse to start.
#[test]
fn out_of_order_writeback_of_unsynced_writes_recovers_the_synced_state_plus_a_prefix() {
    let synced = big_entries(1..=20, 200);
    let unsynced: Vec<Write> = (0..6u64)
        .map(|b| Write::Entries(big_entries(21 + b * 8..=28 + b * 8, 200)))
        .collect();
    let mut synced_model = MemStorage::new();
    synced_model.append(&synced).unwrap();
    synced_model
        .set_hard_state(hard_state(1, Some(1), 20))
        .unwrap();
    let candidates = candidate_states(&synced_model, &unsynced);
    let mut holes_before_data = 0;
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..64u64 {
        let fs = SimFs::new();
        // Every append is written at once (not synced): six unsynced batches, ~3 pages.
        let options = DiskOptions {
            write_buffer_bytes: 1,
            ..options()
        };
        let mut s = open_sim(&fs, options.clone()).unwrap();
        s.append(&synced).unwrap();
        s.set_hard_state(hard_state(1, Some(1), 20)).unwrap();
        s.sync().unwrap();
        let synced_bytes = last_segment_bytes(&fs).len();
        for write in &unsynced {
            if let Write::Entries(batch) = write {
                s.append(batch).unwrap();
            }
        }
        drop(s);
        fs.crash(CrashMode::OutOfOrderWriteback {
            seed,
            page_bytes: 4096,
            keep_unsynced_names: seed % 2 == 0,
        });
        let after = last_segment_bytes(&fs);
        holes_before_data += usize::from(has_hole_before_data(&after[synced_bytes..]));
        let s = open_sim(&fs, options.clone())
            .unwrap_or_else(|e| panic!("seed {seed}: a crash made the node refuse to start: {e}"));
        let recovered = state(&s);
        let Some(position) = candidates.iter().position(|c| *c == recovered) else {
            panic!("seed {seed}: recovered a state that never existed: {recovered:?}");
        };
        seen.insert(position);
        accepts_and_keeps_a_write(&fs, s, options, &format!("seed {seed}"));
    }
    assert!(
        holes_before_data >= 8,
        "only {holes_before_data} of 64 crashes kept a page after a lost one"
    );
    assert!(seen.len() >= 4, "too few recovered states: {seen:?}");
}

/// A data directory with a snapshot at 10, entries 11..=30 spread over several
/// segments, and a hard state, all synced.
fn snapshot_setup(fs: &SimFs, segment_bytes: u64) -> DiskStorage {
    let mut s = open_sim(fs, small_segments(segment_bytes)).unwrap();
    for i in (1..=15).step_by(3) {
        s.append(&entries(i..=i + 2, 1)).unwrap();
        s.sync().unwrap();
    }
    s.save_snapshot(&snapshot(10, 1)).unwrap();
    for i in (16..=30).step_by(3) {
        s.append(&entries(i..=i + 2, 1)).unwrap();
        s.sync().unwrap();
    }
    s.set_hard_state(hard_state(1, Some(1), 20)).unwrap();
    s.sync().unwrap();
    s
}

/// Crashes `save_snapshot(new)` after every possible number of file operations and
/// checks that recovery gives exactly the state before or the state after it, and that
/// the recovered log keeps working. The cut points include: after the temp file is
/// written (not synced), after its fsync, after the rename (before the directory
/// fsync), after the snapshot is durable but before its WAL marker, after the marker
/// but before the purge, between purged segments, and before old snapshots are deleted.
fn check_snapshot_crash_points(
    segment_bytes: u64,
    new: Snapshot,
    post_entries: Vec<Entry>,
    next: Entry,
) {
    check_crash_points_of(segment_bytes, new, post_entries, next, |s, new| {
        s.save_snapshot(new)?;
        delete_obsolete_files(s);
        Ok(())
    });
}

/// Deletes what the executor deletes on its background thread after a snapshot.
fn delete_obsolete_files(s: &mut DiskStorage) {
    if let Some(cleanup) = s.take_obsolete_files() {
        cleanup.run();
    }
}

/// `save_snapshot` in its two halves, as the executor runs it: the file job (on another
/// thread in production), then `adopt_snapshot`.
fn save_in_two_halves(s: &mut DiskStorage, new: &Snapshot) -> Result<(), StorageError> {
    let job = s
        .snapshot_file_job(new)
        .expect("a disk storage writes files in jobs");
    let file = job.run()?;
    assert_eq!(file.data_bytes, new.data.len() as u64);
    s.adopt_snapshot(new, file.stats)?;
    delete_obsolete_files(s);
    Ok(())
}

/// As [`save_in_two_halves`], the application streaming its snapshot into the file
/// (`RaftNode::snapshot_streamed`), in small writes; the adoption names only its position.
fn save_streamed_in_two_halves(s: &mut DiskStorage, new: &Snapshot) -> Result<(), StorageError> {
    let data = new.data.clone();
    let source = SnapshotSource::new(move |out| {
        for piece in data.chunks(3) {
            out.write_all(piece)?;
        }
        Ok(())
    });
    let position = Snapshot {
        meta: new.meta,
        data: bytes::Bytes::new(),
        conf: new.conf.clone(),
    };
    let job = s
        .streamed_snapshot_file_job(&position, source)
        .unwrap_or_else(|_| panic!("a disk storage writes files in jobs"));
    let file = job.run()?;
    assert_eq!(file.data_bytes, new.data.len() as u64);
    s.adopt_snapshot(&position, file.stats)?;
    delete_obsolete_files(s);
    Ok(())
}

/// [`check_snapshot_crash_points`] for any way of saving a snapshot.
fn check_crash_points_of(
    segment_bytes: u64,
    new: Snapshot,
    post_entries: Vec<Entry>,
    next: Entry,
    save: impl Fn(&mut DiskStorage, &Snapshot) -> Result<(), StorageError>,
) {
    let opts = small_segments(segment_bytes);
    let pre = InitialState {
        hard_state: hard_state(1, Some(1), 20),
        snapshot: Some(snapshot(10, 1)),
        entries: entries(11..=30, 1),
    };
    let post = InitialState {
        snapshot: Some(new.clone()),
        entries: post_entries,
        ..pre.clone()
    };
    let modes = [
        CrashMode::DropUnsynced,
        CrashMode::TornWrites {
            seed: 7,
            zero_fill: false,
            keep_unsynced_names: true,
        },
        CrashMode::TornWrites {
            seed: 9,
            zero_fill: true,
            keep_unsynced_names: false,
        },
    ];
    let (mut saw_pre, mut saw_post) = (false, false);
    for cut in 0..MAX_CRASH_POINTS {
        let mut finished = false;
        for mode in modes {
            let fs = SimFs::new();
            let mut s = snapshot_setup(&fs, segment_bytes);
            let segments_before = sim_segment_count(&fs);
            let start = fs.mutations();
            fs.cut_power_after(cut);
            let saved = save(&mut s, &new).is_ok();
            // Finished: saved, and the deletions that follow did not reach the cut either
            // (a failed operation does not count, so reaching it exactly is ambiguous).
            finished = saved && fs.mutations() - start < cut;
            if finished {
                assert!(
                    sim_segment_count(&fs) < segments_before,
                    "the purge deleted nothing"
                );
            }
            drop(s);
            fs.crash(mode);
            let s = open_sim(&fs, opts.clone())
                .unwrap_or_else(|e| panic!("cut {cut}, {mode:?}: recovery failed: {e}"));
            let recovered = state(&s);
            // Recovery is stable: a second restart (and crash) gives the same state.
            drop(s);
            fs.crash(CrashMode::DropUnsynced);
            let mut s = open_sim(&fs, opts.clone()).unwrap();
            assert_eq!(
                state(&s),
                recovered,
                "cut {cut}, {mode:?}: second recovery differs"
            );
            let is_pre = recovered == pre;
            assert!(
                is_pre || recovered == post,
                "cut {cut}, {mode:?}: inconsistent {recovered:?}"
            );
            saw_pre |= is_pre;
            saw_post |= !is_pre;
            // Continue the log from whichever state survived.
            let next = if is_pre {
                entries(31..=31, 1).remove(0)
            } else {
                next.clone()
            };
            s.append(std::slice::from_ref(&next)).unwrap();
            s.sync().unwrap();
            drop(s);
            fs.crash(CrashMode::DropUnsynced);
            let s = open_sim(&fs, opts.clone()).unwrap();
            assert_eq!(state(&s).entries.last(), Some(&next), "cut {cut}, {mode:?}");
        }
        if finished {
            break;
        }
        assert!(cut + 1 < MAX_CRASH_POINTS, "save_snapshot never finished");
    }
    assert!(
        saw_pre && saw_post,
        "crash points did not cover both outcomes"
    );
}

#[test]
fn crash_points_around_a_snapshot_that_keeps_the_log_recover_consistently() {
    check_snapshot_crash_points(
        200,
        snapshot(25, 1),
        entries(26..=30, 1),
        entries(31..=31, 1).remove(0),
    );
}

/// Issue 11: the snapshot file written off the driver thread, then adopted. Crash points
/// inside the file write (torn temp file, before and after the rename), between the file
/// and the adoption, and inside the adoption (marker, purge) recover to before or after.
#[test]
fn crash_points_around_a_snapshot_written_in_the_background_recover_consistently() {
    for segment_bytes in [200, 1] {
        let (index, kept_from) = if segment_bytes == 1 {
            (24, 25)
        } else {
            (25, 26)
        };
        check_crash_points_of(
            segment_bytes,
            snapshot(index, 1),
            entries(kept_from..=30, 1),
            entries(31..=31, 1).remove(0),
            save_in_two_halves,
        );
    }
}

/// The same, the snapshot streamed into its file by the application.
#[test]
fn crash_points_around_a_streamed_snapshot_recover_consistently() {
    check_crash_points_of(
        200,
        snapshot(25, 1),
        entries(26..=30, 1),
        entries(31..=31, 1).remove(0),
        save_streamed_in_two_halves,
    );
}

#[test]
fn crash_points_around_a_snapshot_at_a_segment_boundary_recover_consistently() {
    // One segment per synced batch of 3: the snapshot at 24 ends exactly where the
    // segment holding 22..=24 ends, so the purge removes every segment up to it and the
    // kept entries 25..=30 must not depend on anything purged.
    check_snapshot_crash_points(
        1,
        snapshot(24, 1),
        entries(25..=30, 1),
        entries(31..=31, 1).remove(0),
    );
}

#[test]
fn crash_points_around_a_snapshot_that_discards_the_log_recover_consistently() {
    check_snapshot_crash_points(
        200,
        snapshot(25, 2),
        Vec::new(),
        entries(26..=26, 2).remove(0),
    );
}

#[test]
fn a_corrupt_newest_snapshot_without_a_wal_marker_falls_back_to_the_older_one() {
    let fs = SimFs::new();
    let mut s = snapshot_setup(&fs, 200);
    // Find the first crash point at which the new snapshot is durable next to the old
    // one: right after its directory fsync, before its WAL marker is written.
    let mut durable_at = None;
    for cut in 0..MAX_CRASH_POINTS {
        let trial = SimFs::new();
        let mut t = snapshot_setup(&trial, 200);
        trial.cut_power_after(cut);
        let _ = t.save_snapshot(&snapshot(25, 1));
        drop(t);
        trial.crash(CrashMode::DropUnsynced);
        let names: Vec<_> = trial
            .all_files()
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".snap"))
            .collect();
        if names.len() == 2 {
            durable_at = Some(cut);
            break;
        }
    }
    let cut = durable_at.expect("no crash point left both snapshots on disk");
    fs.cut_power_after(cut);
    let _ = s.save_snapshot(&snapshot(25, 1));
    drop(s);
    fs.crash(CrashMode::DropUnsynced);
    let newest = PathBuf::from(DATA)
        .join("snap")
        .join(format!("snap-{:020}-{:020}.snap", 1, 25));
    let mut bytes = fs.file_bytes(&newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs.overwrite_durably(&newest, bytes).unwrap();

    let s = open_sim(&fs, small_segments(200)).unwrap();
    assert_eq!(state(&s).snapshot, Some(snapshot(10, 1)));
    assert_eq!(state(&s).entries, entries(11..=30, 1));
    assert!(
        fs.file_bytes(&newest.with_extension("snap.corrupt"))
            .is_some(),
        "not moved aside"
    );
}

#[test]
fn a_corrupt_snapshot_the_wal_relies_on_is_a_clear_error() {
    let fs = SimFs::new();
    let mut s = snapshot_setup(&fs, 200);
    s.save_snapshot(&snapshot(25, 1)).unwrap();
    drop(s);
    let newest = PathBuf::from(DATA)
        .join("snap")
        .join(format!("snap-{:020}-{:020}.snap", 1, 25));
    let mut bytes = fs.file_bytes(&newest).unwrap();
    bytes[50] ^= 0x01;
    fs.overwrite_durably(&newest, bytes).unwrap();
    match open_sim(&fs, small_segments(200)) {
        Err(StorageError::CorruptFile { path, reason }) => {
            assert_eq!(path, newest);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected CorruptFile, got {other:?}"),
    }
}

#[test]
fn many_segments_with_overwrites_across_boundaries_recover_like_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    // Durability is not under test here (fsync off keeps thousands of batches fast).
    let options = DiskOptions {
        segment_bytes: 1024,
        fsync: false,
        ..options()
    };
    let mut disk = DiskStorage::open(&dir, options.clone()).unwrap();
    let mut model = MemStorage::new();
    let mut term = 1;
    let mut max_segments = 0;
    for round in 0..1500u64 {
        let last = state(&model).entries.last().map_or(
            state(&model).snapshot.map_or(0, |s| s.meta.index.get()),
            |e| e.index.get(),
        );
        let snap_index = state(&model).snapshot.map_or(0, |s| s.meta.index.get());
        let mut start = last + 1;
        if round % 50 == 49 && last > snap_index + 20 {
            term += 1;
            start = last - 15; // overwrite back across several 1 KiB segments
        }
        let batch = entries(start..=start + round % 4, term);
        disk.append(&batch).unwrap();
        model.append(&batch).unwrap();
        disk.set_hard_state(hard_state(term, Some(1), start))
            .unwrap();
        model
            .set_hard_state(hard_state(term, Some(1), start))
            .unwrap();
        disk.sync().unwrap();
        model.sync().unwrap();
        max_segments = max_segments.max(disk.wal_segment_count());
        if round % 400 == 399 {
            let at = start.saturating_sub(10).max(snap_index + 1);
            let snap_term = state(&model)
                .entries
                .iter()
                .find(|e| e.index.get() == at)
                .unwrap()
                .term
                .get();
            let before = disk.wal_segment_count();
            disk.save_snapshot(&snapshot(at, snap_term)).unwrap();
            model.save_snapshot(&snapshot(at, snap_term)).unwrap();
            assert!(
                disk.wal_segment_count() < before,
                "snapshot at {at} purged nothing"
            );
        }
        if round % 300 == 150 {
            drop(disk);
            disk = DiskStorage::open(&dir, options.clone()).unwrap();
        }
        assert_eq!(state(&disk), state(&model), "round {round}");
    }
    assert!(
        max_segments > 20,
        "only {max_segments} segments: boundaries not exercised"
    );
    let entry_count = state(&model).entries.len();
    assert!(
        entry_count > 100,
        "only {entry_count} entries after the last snapshot"
    );
    drop(disk);
    let disk = DiskStorage::open(&dir, options).unwrap();
    assert_eq!(state(&disk), state(&model));
}

#[test]
fn opening_with_another_identity_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let mut s = DiskStorage::open(&dir, options()).unwrap();
    s.append(&entries(1..=2, 1)).unwrap();
    s.sync().unwrap();
    drop(s);
    let other_node = DiskOptions::new("test-cluster", NodeId(2));
    let other_cluster = DiskOptions::new("other-cluster", NodeId(1));
    for wrong in [other_node, other_cluster] {
        match DiskStorage::open(&dir, wrong) {
            Err(StorageError::WrongIdentity {
                path,
                found,
                expected,
            }) => {
                assert_eq!(path, dir);
                assert!(
                    found.contains("test-cluster") && found.contains("node 1"),
                    "{found}"
                );
                assert_ne!(found, expected);
            }
            other => panic!("expected WrongIdentity, got {other:?}"),
        }
    }
    let s = DiskStorage::open(&dir, options()).unwrap();
    assert_eq!(state(&s).entries, entries(1..=2, 1));
}

#[test]
fn a_directory_that_cannot_be_created_or_written_gives_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let under_file = file.join("node");
    match DiskStorage::open(&under_file, options()) {
        Err(err @ StorageError::Io { .. }) => {
            let message = err.to_string();
            assert!(
                message.contains(&under_file.display().to_string()),
                "{message}"
            );
        }
        other => panic!("expected Io, got {other:?}"),
    }

    // A read-only parent directory. Root ignores permissions, so this part only runs
    // when the probe write is actually refused.
    use std::os::unix::fs::PermissionsExt;
    let read_only = tmp.path().join("read-only");
    std::fs::create_dir(&read_only).unwrap();
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(read_only.join("probe"), b"x").is_err() {
        let dir = read_only.join("node");
        match DiskStorage::open(&dir, options()) {
            Err(err @ StorageError::Io { .. }) => {
                assert!(
                    err.to_string().contains(&dir.display().to_string()),
                    "{err}"
                );
            }
            other => panic!("expected Io, got {other:?}"),
        }
    }
    std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn one_batch_costs_one_fsync() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = DiskStorage::open(&tmp.path().join("node"), options()).unwrap();
    let before = s.stats();
    for i in 1..=64 {
        s.append(&entries(i..=i, 1)).unwrap();
    }
    s.set_hard_state(hard_state(1, Some(1), 64)).unwrap();
    s.sync().unwrap();
    let after = s.stats();
    assert_eq!(after.syncs - before.syncs, 1);
    // 64 entries, the hard state, and the batch's SyncedUpTo.
    assert_eq!(after.records_written - before.records_written, 66);
    s.sync().unwrap();
    assert_eq!(
        s.stats().syncs,
        after.syncs,
        "an empty sync issued an fsync"
    );
}

#[test]
fn an_io_failure_poisons_the_storage() {
    let fs = SimFs::new();
    let mut s = open_sim(&fs, options()).unwrap();
    s.append(&entries(1..=2, 1)).unwrap();
    fs.cut_power_after(0);
    assert!(matches!(s.sync(), Err(StorageError::Io { .. })));
    fs.crash(CrashMode::DropUnsynced);
    assert!(matches!(
        s.append(&entries(3..=3, 1)),
        Err(StorageError::Poisoned(_))
    ));
    assert!(matches!(s.sync(), Err(StorageError::Poisoned(_))));
    assert!(matches!(s.initial_state(), Err(StorageError::Poisoned(_))));
    drop(s);
    let s = open_sim(&fs, options()).unwrap();
    assert!(state(&s).entries.is_empty());
}

#[test]
fn leftover_temp_snapshot_files_are_removed_at_open() {
    let fs = SimFs::new();
    let mut s = snapshot_setup(&fs, 200);
    let tmp_name = PathBuf::from(DATA)
        .join("snap")
        .join(format!("snap-{:020}-{:020}.snap.tmp", 1, 25));
    // Crash after the temp file was created and written, with names kept.
    fs.cut_power_after(2);
    assert!(s.save_snapshot(&snapshot(25, 1)).is_err());
    drop(s);
    fs.crash(CrashMode::TornWrites {
        seed: 1,
        zero_fill: false,
        keep_unsynced_names: true,
    });
    assert!(
        fs.file_bytes(&tmp_name).is_some(),
        "the test did not leave a temp file"
    );
    let s = open_sim(&fs, small_segments(200)).unwrap();
    assert!(fs.file_bytes(&tmp_name).is_none());
    assert_eq!(state(&s).snapshot, Some(snapshot(10, 1)));
}

/// Operations of the model test.
#[derive(Clone, Debug)]
enum Op {
    /// Append `len` entries starting `back` before last + 1 (an overwrite when > 0).
    Append {
        back: u64,
        len: u64,
        new_term: bool,
    },
    HardState {
        new_term: bool,
        vote: bool,
    },
    Sync,
    /// Snapshot at last - `back`; with the entry's term (log kept) or a newer one.
    Snapshot {
        back: u64,
        divergent: bool,
    },
    Restart,
    Crash,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4u64, 1..5u64, proptest::bool::weighted(0.2))
            .prop_map(|(back, len, new_term)| Op::Append { back, len, new_term }),
        2 => (proptest::bool::weighted(0.3), any::<bool>()).prop_map(|(new_term, vote)| Op::HardState { new_term, vote }),
        3 => Just(Op::Sync),
        1 => (0..6u64, any::<bool>()).prop_map(|(back, divergent)| Op::Snapshot { back, divergent }),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

fn last_index(s: &InitialState) -> u64 {
    s.entries
        .last()
        .map(|e| e.index.get())
        .or(s.snapshot.as_ref().map(|s| s.meta.index.get()))
        .unwrap_or(0)
}

/// Applies one op to both storages; returns the (possibly reopened) disk storage.
fn apply_op(
    op: &Op,
    fs: &SimFs,
    mut disk: DiskStorage,
    model: &mut MemStorage,
    term: &mut u64,
) -> DiskStorage {
    let now = state(model);
    let snap_index = now.snapshot.as_ref().map_or(0, |s| s.meta.index.get());
    match op {
        Op::Append {
            back,
            len,
            new_term,
        } => {
            *term += u64::from(*new_term);
            let start = (last_index(&now) + 1)
                .saturating_sub(*back)
                .max(snap_index + 1);
            let batch = entries(start..=start + len - 1, *term);
            assert_eq!(disk.append(&batch).is_ok(), model.append(&batch).is_ok());
        }
        Op::HardState { new_term, vote } => {
            let hs_term = now.hard_state.term.get() + u64::from(*new_term);
            let vote = if *vote && now.hard_state.vote.is_none() {
                Some(NodeId(2))
            } else {
                now.hard_state.vote
            };
            let vote = if *new_term { None } else { vote };
            let hs = HardState {
                term: Term(hs_term),
                vote,
                commit: LogIndex(last_index(&now)),
            };
            disk.set_hard_state(hs).unwrap();
            model.set_hard_state(hs).unwrap();
        }
        Op::Sync => {
            disk.sync().unwrap();
            model.sync().unwrap();
        }
        Op::Snapshot { back, divergent } => {
            let at = last_index(&now).saturating_sub(*back);
            if at > snap_index {
                let log_term = now
                    .entries
                    .iter()
                    .find(|e| e.index.get() == at)
                    .unwrap()
                    .term
                    .get();
                let snap_term = if *divergent { *term + 1 } else { log_term };
                *term = (*term).max(snap_term);
                disk.save_snapshot(&snapshot(at, snap_term)).unwrap();
                model.save_snapshot(&snapshot(at, snap_term)).unwrap();
            }
        }
        Op::Restart | Op::Crash => {
            drop(disk);
            if matches!(op, Op::Crash) {
                fs.crash(CrashMode::DropUnsynced);
            }
            model.crash();
            disk = open_sim(fs, small_segments(256)).unwrap();
        }
    }
    disk
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// DiskStorage on a crashable disk behaves exactly like MemStorage, the model, under
    /// random appends, overwrites, hard states, syncs, snapshots, restarts and crashes.
    /// (The write buffer is only flushed by `sync`, so "durable" means the same on both.)
    #[test]
    fn disk_storage_matches_the_model_through_crashes(ops in proptest::collection::vec(arb_op(), 1..60)) {
        let fs = SimFs::new();
        let mut disk = open_sim(&fs, small_segments(256)).unwrap();
        let mut model = MemStorage::new();
        let mut term = 1;
        for (i, op) in ops.iter().enumerate() {
            disk = apply_op(op, &fs, disk, &mut model, &mut term);
            prop_assert_eq!(state(&disk), state(&model), "after op {} {:?}", i, op);
        }
    }
}

#[test]
fn a_deleted_wal_next_to_a_snapshot_is_an_error() {
    let fs = SimFs::new();
    let s = snapshot_setup(&fs, 200);
    drop(s);
    for file in fs.all_files() {
        if file.starts_with(Path::new(DATA).join("wal")) {
            fs.remove_file(&file).unwrap();
        }
    }
    match open_sim(&fs, small_segments(200)) {
        Err(StorageError::CorruptFile { reason, .. }) => {
            assert!(reason.contains("no WAL segments"), "{reason}")
        }
        other => panic!("expected CorruptFile, got {other:?}"),
    }
}

/// (number, total bytes) of the WAL segments on a simulated disk.
fn sim_segments_size(fs: &SimFs) -> (usize, usize) {
    let segments: Vec<PathBuf> = fs
        .all_files()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    let bytes = segments
        .iter()
        .map(|p| fs.file_bytes(p).unwrap().len())
        .sum();
    (segments.len(), bytes)
}

/// A crash-looping node must not fill the disk: every open continues the last segment
/// instead of starting one, so 50 restarts (or crashes) leave one segment, whose size
/// grows only by what was written.
#[test]
fn restarting_again_and_again_does_not_add_segments() {
    for write_each_time in [false, true] {
        let fs = SimFs::new();
        let s = open_sim(&fs, options()).unwrap();
        drop(s);
        let (_, first_bytes) = sim_segments_size(&fs);
        for i in 1..=50u64 {
            let mut s = open_sim(&fs, options()).unwrap();
            if write_each_time {
                s.append(&entries(i..=i, 1)).unwrap();
                s.sync().unwrap();
            }
            drop(s);
            if i % 2 == 0 {
                fs.crash(CrashMode::DropUnsynced);
            }
        }
        let s = open_sim(&fs, options()).unwrap();
        let (count, bytes) = sim_segments_size(&fs);
        assert_eq!(count, 1, "writes: {write_each_time}");
        if write_each_time {
            assert_eq!(state(&s).entries, entries(1..=50, 1));
            // Per restart: the entry's record (36 bytes) and its batch's SyncedUpTo (21).
            assert!(bytes <= first_bytes + 50 * 60, "{bytes} bytes");
        } else {
            assert_eq!(bytes, first_bytes);
        }
    }
}

/// A crash while the WAL creates its next segment leaves that segment with a partial
/// head at most: recovery removes it (it restates what the segment before it says) and
/// continues the one before, so even a node that crashes there again and again gains no
/// segment; nothing synced is lost.
#[test]
fn a_crash_while_rotating_leaves_no_extra_segment_and_loses_nothing_synced() {
    let opts = small_segments(400);
    // A snapshot first, so that heads hold a snapshot marker before the hard state.
    let setup = |fs: &SimFs| {
        let mut s = open_sim(fs, opts.clone()).unwrap();
        s.append(&entries(1..=2, 1)).unwrap();
        s.save_snapshot(&snapshot(1, 1)).unwrap();
        s
    };
    // Appends (each synced) until the WAL rotates, found by a dry run.
    let mut s = setup(&SimFs::new());
    let mut rotating = 2;
    while s.wal_segment_count() == 1 {
        rotating += 1;
        s.append(&entries(rotating..=rotating, 1)).unwrap();
        s.sync().unwrap();
    }
    let mut partial_heads_removed = 0;
    for cut in 0..MAX_CRASH_POINTS {
        let fs = SimFs::new();
        let mut s = setup(&fs);
        for i in 3..rotating {
            s.append(&entries(i..=i, 1)).unwrap();
            s.sync().unwrap();
        }
        fs.cut_power_after(cut);
        s.append(&entries(rotating..=rotating, 1)).unwrap();
        let finished = s.sync().is_ok();
        drop(s);
        fs.crash(CrashMode::TornWrites {
            seed: cut,
            zero_fill: cut % 2 == 0,
            keep_unsynced_names: true,
        });
        let partial_head = sim_segments_size(&fs).0 == 2 && {
            let head = last_segment_bytes(&fs);
            !RecordDecoder::new(&head, DEFAULT_MAX_RECORD_BYTES).any(|d| {
                matches!(
                    d,
                    Decoded::Record {
                        record: WalRecord::HardState(_),
                        ..
                    }
                )
            })
        };
        let s = open_sim(&fs, opts.clone()).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let last = state(&s).entries.last().unwrap().index.get();
        assert!(last + 1 >= rotating, "cut {cut}: synced entries lost");
        let (count, _) = sim_segments_size(&fs);
        assert!(count <= 2, "cut {cut}: {count} segments");
        if partial_head {
            assert_eq!(count, 1, "cut {cut}: the partial head was kept");
            partial_heads_removed += 1;
        }
        drop(s);
        let s = open_sim(&fs, opts.clone()).unwrap();
        assert_eq!(
            sim_segments_size(&fs).0,
            count,
            "cut {cut}: a reopen added a segment"
        );
        assert_eq!(state(&s).entries.last().unwrap().index.get(), last);
        if finished {
            break;
        }
    }
    assert!(
        partial_heads_removed > 0,
        "no crash point left a partial head"
    );
}

/// A segment written before SyncedUpTo records existed is continued like any other, and
/// marked first: a hole in its first new batch (which also took that batch's SyncedUpTo)
/// is then a torn tail, not corruption by the old rule.
#[test]
fn a_segment_from_before_synced_up_to_records_is_continued_and_marked() {
    let fs = SimFs::new();
    let opts = DiskOptions {
        write_buffer_bytes: 1,
        ..options()
    };
    drop(open_sim(&fs, opts.clone()).unwrap());
    let segment = PathBuf::from(DATA)
        .join("wal")
        .join("wal-00000000000000000001.log");
    let mut old = Vec::new();
    let mut old_records = vec![WalRecord::HardState(hard_state(1, Some(1), 3))];
    old_records.extend(entries(1..=3, 1).into_iter().map(WalRecord::Entry));
    for record in &old_records {
        encode_record(record, DEFAULT_MAX_RECORD_BYTES, &mut old).unwrap();
    }
    fs.overwrite_durably(&segment, old).unwrap();
    let mut s = open_sim(&fs, opts.clone()).unwrap();
    assert_eq!(state(&s).entries, entries(1..=3, 1));
    // One unsynced batch over several pages; a power loss keeps all but its first page.
    let batch_start = fs.file_bytes(&segment).unwrap().len();
    s.append(&big_entries(4..=40, 200)).unwrap();
    drop(s);
    let mut torn = fs.file_bytes(&segment).unwrap();
    assert!(batch_start < 4096 && torn.len() > 8192);
    torn[batch_start..4096].fill(0);
    fs.overwrite_durably(&segment, torn).unwrap();
    let s = open_sim(&fs, opts).unwrap();
    assert_eq!(state(&s).entries, entries(1..=3, 1));
    assert_eq!(state(&s).hard_state, hard_state(1, Some(1), 3));
    assert_eq!(sim_segments_size(&fs).0, 1);
}

/// The same on a real disk, where every segment is preallocated.
#[test]
fn restarting_again_and_again_on_a_real_disk_keeps_one_preallocated_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let options = options();
    for i in 1..=50u64 {
        let mut s = DiskStorage::open(&dir, options.clone()).unwrap();
        if i % 2 == 0 {
            s.append(&entries(i / 2..=i / 2, 1)).unwrap();
            s.sync().unwrap();
        }
    }
    let segments = segment_files(&dir);
    let bytes: u64 = segments
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(segments.len(), 1);
    assert!(bytes <= options.segment_bytes, "{bytes} bytes");
    let s = DiskStorage::open(&dir, options).unwrap();
    assert_eq!(state(&s).entries, entries(1..=25, 1));
}

#[test]
fn a_crash_during_the_first_open_leaves_a_directory_that_opens() {
    for cut in 0..MAX_CRASH_POINTS {
        let mut finished = false;
        let torn = CrashMode::TornWrites {
            seed: cut,
            zero_fill: false,
            keep_unsynced_names: true,
        };
        for mode in [CrashMode::DropUnsynced, torn] {
            let fs = SimFs::new();
            fs.cut_power_after(cut);
            finished = open_sim(&fs, options()).is_ok();
            fs.crash(mode);
            let mut s = open_sim(&fs, options()).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            assert_eq!(state(&s), InitialState::default());
            s.append(&entries(1..=1, 1)).unwrap();
            s.sync().unwrap();
        }
        if finished {
            return;
        }
    }
    panic!("open never finished");
}

#[test]
fn records_over_a_lowered_size_limit_are_still_recovered_but_not_accepted() {
    let fs = SimFs::new();
    let big = Entry {
        index: LogIndex(1),
        term: Term(1),
        data: bytes::Bytes::from(vec![9u8; 1000]),
        ..Entry::default()
    };
    let mut s = open_sim(&fs, options()).unwrap();
    s.append(std::slice::from_ref(&big)).unwrap();
    s.sync().unwrap();
    drop(s);
    let lowered = DiskOptions {
        max_record_bytes: 100,
        ..options()
    };
    let mut s = open_sim(&fs, lowered).unwrap();
    assert_eq!(state(&s).entries, vec![big.clone()]);
    let too_big = Entry {
        index: LogIndex(2),
        ..big
    };
    assert!(matches!(
        s.append(&[too_big]),
        Err(StorageError::Contract(_))
    ));
    s.append(&entries(2..=2, 1)).unwrap();
}

/// Segments are preallocated (fsync on): the active segment ends in unused zeros, which
/// recovery takes as its clean end, and a torn record in front of those zeros is cut like
/// any torn tail.
#[test]
fn preallocated_segments_recover_and_a_torn_record_before_the_zeros_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("pristine");
    let options = small_segments(4096);
    let mut s = DiskStorage::open(&pristine, options.clone()).unwrap();
    for i in 1..=400 {
        s.append(&entries(i..=i, 1)).unwrap();
        s.sync().unwrap();
    }
    drop(s);
    let files = segment_files(&pristine);
    assert!(
        files.len() > 2,
        "expected several segments, got {}",
        files.len()
    );
    let active = files.last().unwrap();
    let bytes = std::fs::read(active).unwrap();
    assert!(bytes.len() >= 4096, "segments are preallocated");
    assert_eq!(
        *bytes.last().unwrap(),
        0,
        "the active segment ends in preallocated zeros"
    );
    let (last_offset, last_size, last) = records_of(&bytes).pop().unwrap();
    assert_eq!(last, WalRecord::Entry(entries(400..=400, 1).remove(0)));

    let intact = tmp.path().join("intact");
    copy_dir(&pristine, &intact);
    let s = DiskStorage::open(&intact, options.clone()).unwrap();
    assert_eq!(state(&s).entries, entries(1..=400, 1));
    drop(s);

    // Garbage in place of the last record's second half, zeros after it.
    let torn_dir = tmp.path().join("torn");
    copy_dir(&pristine, &torn_dir);
    let mut torn = bytes.clone();
    let (from, to) = (
        last_offset as usize + last_size / 2,
        last_offset as usize + last_size,
    );
    torn[from..to].fill(0xA5);
    std::fs::write(
        torn_dir.join("wal").join(active.file_name().unwrap()),
        &torn,
    )
    .unwrap();
    let s = DiskStorage::open(&torn_dir, options).unwrap();
    assert_eq!(
        state(&s).entries,
        entries(1..=399, 1),
        "only the torn record is lost"
    );
}

/// The `spare-*.tmp` files in a real data directory's WAL.
fn spare_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("spare-") && n.ends_with(".tmp"))
        })
        .collect()
}

/// With fsync on, the WAL prepares a zero-filled spare once its segment is half full and
/// renames it into place at the next rotation; the log recovers like the model, and a
/// reopen leaves no spare behind.
#[test]
fn zero_filled_spare_segments_are_renamed_into_the_log_and_recover_like_the_model() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let segment_bytes = 64 << 10;
    let options = small_segments(segment_bytes);
    let mut disk = DiskStorage::open(&dir, options.clone()).unwrap();
    let mut model = MemStorage::new();
    let mut next = 1u64;
    let mut write_batch = |disk: &mut DiskStorage, model: &mut MemStorage| {
        let batch = entries(next..=next + 9, 1);
        next += 10;
        disk.append(&batch).unwrap();
        model.append(&batch).unwrap();
        disk.sync().unwrap();
        model.sync().unwrap();
    };
    // Fill until a spare of the full segment size is on disk (its preparation starts at
    // half a segment), then note its inode.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let spare_inode = loop {
        let ready = spare_files(&dir)
            .into_iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .find(|m| m.len() == segment_bytes);
        if let Some(meta) = ready {
            break meta.ino();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no spare was prepared"
        );
        if disk.wal_segment_count() == 1 {
            write_batch(&mut disk, &mut model);
        } else {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    // The spare is taken at the first rotation after it is ready: write on until it has
    // left the spare names and become a segment.
    while spare_files(&dir)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .any(|m| m.ino() == spare_inode)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the spare was never used"
        );
        write_batch(&mut disk, &mut model);
    }
    let inodes: Vec<u64> = segment_files(&dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().ino())
        .collect();
    assert!(
        inodes.contains(&spare_inode),
        "the prepared spare did not become a segment"
    );
    drop(disk);
    let leftover = dir.join("wal").join("spare-0-0.tmp"); // as a crash would leave it
    std::fs::write(&leftover, b"half-filled").unwrap();
    let reopened = DiskStorage::open(&dir, options).unwrap();
    assert!(!leftover.exists(), "a leftover spare survived the open");
    assert_eq!(state(&reopened), state(&model));
    // Leftovers are deleted at open; a preparation still running for the dropped WAL
    // deletes its own file when nobody takes it.
    while !spare_files(&dir).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "spares left behind: {:?}",
            spare_files(&dir)
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Two processes (or two handles) must never write one data directory: the second open is
/// refused while the first holds it, and succeeds once it is closed.
#[test]
fn a_data_directory_in_use_is_refused_until_it_is_released() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let first = DiskStorage::open(&dir, options()).unwrap();
    match DiskStorage::open(&dir, options()) {
        Err(StorageError::InUse { path }) => assert_eq!(path, dir),
        other => panic!("expected InUse, got {other:?}"),
    }
    drop(first);
    DiskStorage::open(&dir, options()).unwrap();
}

fn without_bootstrap() -> DiskOptions {
    DiskOptions {
        bootstrap: false,
        ..options()
    }
}

/// Issue 12 item 5: a node's data must not silently start over. Without `bootstrap`, a
/// missing or empty data directory is refused and nothing is created; a directory whose
/// identity remains but whose wal/ and snap/ were emptied (directories kept) is refused
/// whatever `bootstrap` says.
#[test]
fn a_node_without_its_data_refuses_to_start_empty() {
    let fs = SimFs::new();
    match open_sim(&fs, without_bootstrap()) {
        Err(StorageError::NotBootstrapped { .. }) => {}
        other => panic!("expected NotBootstrapped, got {other:?}"),
    }
    assert!(fs.all_files().is_empty(), "{:?}", fs.all_files());

    let mut s = open_sim(&fs, options()).unwrap();
    s.set_hard_state(HardState {
        term: Term(3),
        vote: Some(NodeId(2)),
        commit: LogIndex::ZERO,
    })
    .unwrap();
    s.append(&entries(1..=3, 3)).unwrap();
    s.sync().unwrap();
    drop(s);
    let reopened = open_sim(&fs, without_bootstrap()).unwrap();
    assert_eq!(state(&reopened).hard_state.term, Term(3));
    drop(reopened);

    for file in fs.all_files() {
        let in_raft_dirs = ["wal", "snap"]
            .iter()
            .any(|sub| file.starts_with(Path::new(DATA).join(sub)));
        if in_raft_dirs {
            fs.remove_file(&file).unwrap();
        }
    }
    for opts in [options(), without_bootstrap()] {
        match open_sim(&fs, opts) {
            Err(StorageError::DataMissing { .. }) => {}
            other => panic!("expected DataMissing, got {other:?}"),
        }
    }
}

/// A first open cut short by a crash leaves a WAL with nothing in it and no identity file:
/// that directory never held any vote or entry, so it opens (and is identified) even
/// without `bootstrap`.
#[test]
fn an_interrupted_first_open_completes_without_bootstrap() {
    let mut completed = 0;
    for cut in 0..MAX_CRASH_POINTS {
        let fs_cut = SimFs::new();
        fs_cut.cut_power_after(cut);
        if open_sim(&fs_cut, options()).is_ok() {
            break;
        }
        fs_cut.crash(CrashMode::DropUnsynced);
        match open_sim(&fs_cut, without_bootstrap()) {
            Ok(s) => {
                assert_eq!(state(&s), InitialState::default());
                completed += 1;
            }
            Err(StorageError::NotBootstrapped { .. }) => {} // nothing durable yet
            Err(e) => panic!("cut {cut}: {e}"),
        }
    }
    assert!(
        completed > 0,
        "no crash point left a half-initialised directory"
    );
}

/// A recovered log accepts one more entry, and a crash after its sync keeps it.
fn accepts_and_keeps_a_write(fs: &SimFs, mut s: DiskStorage, options: DiskOptions, case: &str) {
    let next = state(&s).entries.last().unwrap().index.get() + 1;
    s.append(&entries(next..=next, 3)).unwrap();
    s.sync().unwrap();
    drop(s);
    fs.crash(CrashMode::DropUnsynced);
    let s = open_sim(fs, options).unwrap();
    assert_eq!(
        state(&s).entries.last().unwrap().index,
        LogIndex(next),
        "{case}"
    );
}

/// While a snapshot's file is written in the background the log goes on growing: a crash
/// before the adoption recovers the snapshot (its file is durable) with every synced entry
/// after it, and an adoption after those appends keeps them too.
#[test]
fn appends_while_a_snapshot_file_is_written_survive_with_it() {
    let later = entries(31..=40, 1);
    for adopt in [false, true] {
        let fs = SimFs::new();
        let mut s = snapshot_setup(&fs, 200);
        let new = snapshot(25, 1);
        let file = s.snapshot_file_job(&new).unwrap().run().unwrap();
        s.append(&later).unwrap();
        s.sync().unwrap();
        if adopt {
            s.adopt_snapshot(&new, file.stats).unwrap();
        }
        drop(s);
        fs.crash(CrashMode::DropUnsynced);
        let s = open_sim(&fs, small_segments(200)).unwrap();
        let recovered = state(&s);
        assert_eq!(
            recovered.snapshot.map(|s| s.meta),
            Some(new.meta),
            "adopted: {adopt}"
        );
        assert_eq!(recovered.entries, entries(26..=40, 1), "adopted: {adopt}");
    }
}
