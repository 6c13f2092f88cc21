//! InstallSnapshot in chunks (paper 7): sending with a window, assembling in order,
//! resuming after rejections and stalls, installing and applying.

use super::*;
use crate::core::progress::ProgressState;
use crate::message::{
    AppendEntriesResponse, HeartbeatResponse, InstallSnapshot, InstallSnapshotResponse,
};
use crate::types::{ReceivedSnapshot, SnapshotMeta};

const DATA: &[u8] = b"abcdefghij";

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        index: i(index),
        term: t(term),
    }
}

fn chunk(meta: SnapshotMeta, offset: u64, data: &'static [u8], total: u64) -> InstallSnapshot {
    let done = offset + data.len() as u64 == total;
    InstallSnapshot {
        meta,
        offset,
        total_bytes: total,
        data: Bytes::from_static(data),
        done,
        conf: None,
    }
}

fn snap_resp(
    meta: SnapshotMeta,
    next_offset: u64,
    done: bool,
    rejected: bool,
) -> InstallSnapshotResponse {
    InstallSnapshotResponse {
        meta,
        next_offset,
        done,
        rejected,
    }
}

/// The InstallSnapshot chunks in `msgs` as (to, offset, done). The core sends them
/// without data (the executor fills them from the storage).
fn chunks(msgs: &[Message]) -> Vec<(u64, u64, bool)> {
    msgs.iter()
        .filter_map(|m| match &m.body {
            MessageBody::InstallSnapshot(c) => {
                assert!(c.data.is_empty(), "the core keeps no snapshot bytes");
                Some((m.to.0, c.offset, c.done))
            }
            _ => None,
        })
        .collect()
}

fn b(data: &'static [u8]) -> Bytes {
    Bytes::from_static(data)
}

/// Node 1 leads a 3-node cluster; entries 1..=4 are committed and applied, the log is
/// compacted at 3 with `data`, and node 3 (which never acknowledged anything past the
/// no-op) has just rejected an append because its log ends at 1.
fn leader_with_lagging_peer(data: &'static [u8], chunk_bytes: usize) -> RaftCore {
    let mut c = config(1, 3);
    c.snapshot_chunk_bytes = chunk_bytes;
    let mut node = leader_with(c);
    for _ in 0..3 {
        node.propose(b(b"e")).unwrap();
    }
    ready_persisted(&mut node);
    node.step(append_ok(2, 1, 1, 4));
    let rd = ready_persisted(&mut node);
    assert_eq!(rd.committed.len(), 3);
    node.compact(i(3), data.len() as u64);
    assert_eq!(node.status().snapshot_index, i(3));
    node.progress.get_mut(&n(3)).unwrap().match_index = i(0);
    let reject = AppendEntriesResponse {
        success: false,
        match_index: i(0),
        conflict_index: i(2),
        conflict_term: t(0),
        last_log_index: i(1),
    };
    node.step(msg(3, 1, 1, MessageBody::AppendEntriesResponse(reject)));
    node
}

fn from3(r: InstallSnapshotResponse) -> Message {
    msg(3, 1, 1, MessageBody::InstallSnapshotResponse(r))
}

// Paper 7: a follower whose next entry was compacted gets the snapshot, in chunks of
// snapshot_chunk_bytes with increasing offsets; the last one says done.
#[test]
fn leader_sends_snapshot_in_chunks_when_next_entry_is_compacted() {
    let mut node = leader_with_lagging_peer(DATA, 4);
    assert_eq!(node.progress[&n(3)].state, ProgressState::Snapshot);
    let rd = node.ready();
    assert_eq!(
        chunks(&rd.messages),
        vec![(3, 0, false), (3, 4, false), (3, 8, true)]
    );
    let first = rd
        .messages
        .iter()
        .find(|m| matches!(m.body, MessageBody::InstallSnapshot(_)))
        .unwrap();
    assert_eq!(
        first.body,
        MessageBody::InstallSnapshot(chunk(meta(3, 1), 0, b"", 10)),
        "sent without data: the executor fills it from the storage"
    );
    assert!(
        appends(&rd.messages).iter().all(|a| a.0 != 3),
        "no appends while sending a snapshot"
    );
}

// At most SNAPSHOT_WINDOW_CHUNKS chunks are unacknowledged; acknowledgements free room.
#[test]
fn snapshot_window_limits_chunks_in_flight() {
    let mut node = leader_with_lagging_peer(b"0123456789abcdefghijklmnopqrstuvwxyz", 4);
    let offsets = |rd: &Ready| chunks(&rd.messages).iter().map(|c| c.1).collect::<Vec<_>>();
    assert_eq!(offsets(&node.ready()), vec![0, 4, 8, 12]);
    node.step(from3(snap_resp(meta(3, 1), 8, false, false)));
    assert_eq!(offsets(&node.ready()), vec![16, 20]);
}

// An out-of-order rejection rewinds the leader to the offset the follower expects, once.
#[test]
fn leader_resumes_from_the_offset_a_rejection_names() {
    let mut node = leader_with_lagging_peer(b"0123456789abcdefghijklmnopqrstuvwxyz", 4);
    node.ready();
    // Chunk 4 was lost: the follower rejects chunks 8 and 12, expecting 4.
    node.step(from3(snap_resp(meta(3, 1), 4, false, true)));
    node.step(from3(snap_resp(meta(3, 1), 4, false, true)));
    let rd = node.ready();
    let offsets: Vec<u64> = chunks(&rd.messages).iter().map(|c| c.1).collect();
    assert_eq!(offsets, vec![4, 8, 12, 16], "rewound once, not twice");
}

// A transfer with no progress is resent (from the last acknowledged offset) when the
// follower proves alive after a few heartbeat intervals, so a lost last chunk does not
// stall it forever.
#[test]
fn stalled_snapshot_transfer_is_resent_after_heartbeat_timeout() {
    let mut node = leader_with_lagging_peer(DATA, 4);
    node.ready();
    node.step(from3(snap_resp(meta(3, 1), 4, false, false)));
    node.ready();
    let alive = msg(
        3,
        1,
        1,
        MessageBody::HeartbeatResponse(HeartbeatResponse { read_seq: 0 }),
    );
    node.tick();
    node.step(alive.clone());
    assert!(chunks(&node.ready().messages).is_empty(), "not stalled yet");
    node.tick();
    node.tick();
    node.step(alive);
    assert_eq!(
        chunks(&node.ready().messages),
        vec![(3, 4, false), (3, 8, true)]
    );
}

// If the leader compacts again during a transfer, the transfer restarts with the new
// snapshot.
#[test]
fn compaction_during_a_transfer_restarts_it_with_the_new_snapshot() {
    let mut node = leader_with_lagging_peer(DATA, 4);
    node.ready();
    node.compact(i(4), 3);
    let rd = node.ready();
    let c: Vec<(SnapshotMeta, u64, bool)> = rd
        .messages
        .iter()
        .filter_map(|m| match &m.body {
            MessageBody::InstallSnapshot(c) => Some((c.meta, c.offset, c.done)),
            _ => None,
        })
        .collect();
    assert_eq!(c, vec![(meta(4, 1), 0, true)]);
    // A late acknowledgement of the old snapshot's chunk changes nothing.
    node.step(from3(snap_resp(meta(3, 1), 8, false, false)));
    assert!(chunks(&node.ready().messages).is_empty());
}

// Paper 7: once the follower holds the snapshot durably, replication resumes right after
// it.
#[test]
fn snapshot_done_resumes_replication_after_the_snapshot() {
    let mut node = leader_with_lagging_peer(DATA, 4);
    node.ready();
    node.step(from3(snap_resp(meta(3, 1), 10, true, false)));
    let pr = &node.progress[&n(3)];
    assert_eq!((pr.state, pr.match_index), (ProgressState::Replicate, i(3)));
    assert_eq!(appends(&node.ready().messages), vec![(3, 3, 1, vec![4], 4)]);
}

fn follower() -> RaftCore {
    let mut node = core_with_log(config(3, 3), 1, &[1]);
    ready_persisted(&mut node);
    node
}

fn to_follower(c: InstallSnapshot) -> Message {
    msg(1, 3, 1, MessageBody::InstallSnapshot(c))
}

fn reply(r: InstallSnapshotResponse) -> Message {
    msg(3, 1, 1, MessageBody::InstallSnapshotResponse(r))
}

// The follower assembles chunks in order: it acknowledges each, re-acknowledges
// duplicates, and rejects a chunk past a gap with the offset it expects.
#[test]
fn follower_assembles_in_order_and_rejects_out_of_order_chunks() {
    let mut node = follower();
    let m = meta(5, 1);
    node.step(to_follower(chunk(m, 0, b"abcd", 10)));
    node.step(to_follower(chunk(m, 8, b"ij", 10)));
    node.step(to_follower(chunk(m, 4, b"efgh", 10)));
    node.step(to_follower(chunk(m, 0, b"abcd", 10)));
    let rd = node.ready();
    assert_eq!(
        rd.messages,
        vec![
            reply(snap_resp(m, 4, false, false)),
            reply(snap_resp(m, 4, false, true)),
            reply(snap_resp(m, 8, false, false)),
            reply(snap_resp(m, 8, false, false)),
        ]
    );
    assert!(rd.snapshot.is_none());
    // Only data not handed out before goes out, in order: the store assembles it.
    assert_eq!(
        chunk_offsets_and_data(&rd),
        vec![(0, b"abcd".to_vec()), (4, b"efgh".to_vec())]
    );
    node.step(to_follower(chunk(m, 8, b"ij", 10)));
    let rd = node.ready();
    assert_eq!(chunk_offsets_and_data(&rd), vec![(8, b"ij".to_vec())]);
    let received = ReceivedSnapshot {
        meta: m,
        data_bytes: DATA.len() as u64,
        conf: None,
    };
    assert_eq!(rd.snapshot, Some(received));
    assert!(rd.must_sync);
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: t(1),
            vote: None,
            commit: i(5)
        })
    );
    assert!(rd.apply_snapshot.is_none(), "not before it is durable");
    assert_eq!(
        rd.messages_after_persist,
        vec![reply(snap_resp(m, 10, true, false))]
    );
    assert!(rd.entries.is_empty() && rd.must_sync);
    persist(&mut node, &rd);
    let rd = node.ready();
    assert_eq!(rd.apply_snapshot, Some(m));
    assert!(rd.committed.is_empty());
    let s = node.status();
    assert_eq!(
        (s.snapshot_index, s.applied, s.commit, s.last_index),
        (i(5), i(5), i(5), i(5))
    );
}

fn chunk_offsets_and_data(rd: &crate::core::Ready) -> Vec<(u64, Vec<u8>)> {
    rd.snapshot_chunks
        .iter()
        .map(|c| (c.offset, c.data.to_vec()))
        .collect()
}

// A chunk of another snapshot, not at offset 0, is rejected with offset 0.
#[test]
fn chunk_of_an_unknown_snapshot_is_rejected_from_zero() {
    let mut node = follower();
    node.step(to_follower(chunk(meta(5, 1), 4, b"efgh", 10)));
    assert_eq!(
        node.ready().messages,
        vec![reply(snap_resp(meta(5, 1), 0, false, true))]
    );
}

// Paper 7: "If the follower's log has an entry with the snapshot's index and term, it
// retains the entries after it": here the log is kept and the commit moves up.
#[test]
fn snapshot_matching_the_log_only_advances_the_commit() {
    let mut node = core_with_log(config(3, 3), 1, &[1, 1, 1, 1]);
    ready_persisted(&mut node);
    node.step(to_follower(chunk(meta(3, 1), 0, DATA, 10)));
    let rd = node.ready();
    assert_eq!(rd.snapshot, None);
    assert_eq!(node.commit_index(), i(3));
    assert_eq!(node.log.last_index(), i(4));
    assert_eq!(
        rd.messages_after_persist,
        vec![reply(snap_resp(meta(3, 1), 10, true, false))]
    );
}

// A snapshot we already cover (index <= commit) is acknowledged as done at once.
#[test]
fn snapshot_already_covered_by_the_commit_index_is_acknowledged() {
    let mut node = core_with_log(config(3, 3), 1, &[1, 1, 1]);
    node.step(msg(
        1,
        3,
        1,
        MessageBody::Heartbeat(crate::message::Heartbeat {
            commit: i(3),
            read_seq: 0,
        }),
    ));
    ready_persisted(&mut node);
    node.step(to_follower(chunk(meta(2, 1), 4, b"efgh", 10)));
    assert_eq!(
        node.ready().messages_after_persist,
        vec![reply(snap_resp(meta(2, 1), 10, true, false))]
    );
}

// A snapshot replacing a divergent log: later appends build on it, and entries after it
// are applied once the snapshot was handed out.
#[test]
fn entries_after_an_installed_snapshot_apply_after_it() {
    let mut node = follower();
    node.step(to_follower(chunk(meta(5, 1), 0, b"s", 1)));
    let ae = crate::message::AppendEntries {
        prev_log_index: i(5),
        prev_log_term: t(1),
        entries: vec![entry(6, 1, b"x")],
        leader_commit: i(6),
    };
    node.step(msg(1, 3, 1, MessageBody::AppendEntries(ae)));
    let rd = node.ready();
    assert_eq!(rd.snapshot.as_ref().map(|s| s.meta), Some(meta(5, 1)));
    assert_eq!(rd.entries, vec![entry(6, 1, b"x")]);
    assert!(rd.must_sync);
    persist(&mut node, &rd);
    let rd = node.ready();
    assert_eq!(rd.apply_snapshot, Some(meta(5, 1)));
    assert_eq!(rd.committed, vec![entry(6, 1, b"x")]);
}

// Compaction is ignored unless it is newer than the snapshot and already applied.
#[test]
fn compact_ignores_unapplied_or_old_indexes() {
    let mut node = leader(1);
    node.propose(b(b"x")).unwrap();
    let rd = node.ready();
    node.compact(i(2), 1);
    assert_eq!(
        node.status().snapshot_index,
        i(0),
        "index 2 not applied yet"
    );
    persist(&mut node, &rd);
    node.ready();
    node.compact(i(2), 1);
    assert_eq!(node.status().snapshot_index, i(2));
    node.compact(i(1), 3);
    assert_eq!(node.status().snapshot_index, i(2));
}

// End to end: a node cut off while the leader compacted catches up by snapshot.
#[test]
fn isolated_node_catches_up_by_snapshot_after_compaction() {
    let mut net = Net::with_voters(3, |c| c.snapshot_chunk_bytes = 3);
    net.elect(1);
    net.isolate(3);
    for k in 0..10u8 {
        net.core(1).propose(Bytes::from(vec![k])).unwrap();
    }
    net.settle();
    let applied = net.core(1).status().applied;
    assert_eq!(applied, i(11));
    net.compact(1, applied, Bytes::from_static(b"state-at-11"));
    net.heal();
    for _ in 0..5 {
        net.tick_all();
    }
    let s = net.core(3).status();
    assert_eq!(
        (s.snapshot_index, s.applied, s.commit),
        (i(11), i(11), i(11))
    );
    assert_eq!(
        net.installed.get(&n(3)),
        Some(&Bytes::from_static(b"state-at-11")),
        "the chunks, filled from the leader's stored snapshot, reassemble it"
    );
    net.core(1).propose(Bytes::from_static(b"after")).unwrap();
    net.settle();
    net.tick_all();
    assert_eq!(
        net.applied[&n(3)].last().map(|e| e.data.clone()),
        Some(Bytes::from_static(b"after"))
    );
}

// A late append acknowledgement that already covers the compacted prefix ends the
// snapshot transfer: the follower needs only entries.
#[test]
fn late_append_ack_past_the_snapshot_ends_the_transfer() {
    let mut node = leader_with_lagging_peer(DATA, 4);
    node.ready();
    node.step(append_ok(3, 1, 1, 4));
    let pr = &node.progress[&n(3)];
    assert_eq!((pr.state, pr.match_index), (ProgressState::Replicate, i(4)));
    assert!(chunks(&node.ready().messages).is_empty());
}

// Found by the membership nemesis (seed 623): a snapshot completed in a batch and the first
// chunk of another in the same batch; the storage writes a Ready's chunks before it installs
// its snapshot, so the second chunk would have replaced the incoming file being installed.
// Chunks wait (are dropped, the leader resends) until the completed snapshot is handed out.
#[test]
fn a_chunk_after_a_completed_snapshot_waits_for_its_ready() {
    let mut node = follower();
    node.step(to_follower(chunk(meta(5, 1), 0, b"small", 5)));
    node.step(to_follower(chunk(meta(9, 1), 0, b"abcd", 10)));
    let rd = node.ready();
    assert_eq!(chunk_offsets_and_data(&rd), vec![(0, b"small".to_vec())]);
    assert_eq!(rd.snapshot.as_ref().map(|s| s.meta), Some(meta(5, 1)));
    persist(&mut node, &rd);
    node.step(to_follower(chunk(meta(9, 1), 0, b"abcd", 10)));
    assert_eq!(
        chunk_offsets_and_data(&node.ready()),
        vec![(0, b"abcd".to_vec())],
        "taken once the first is handed out"
    );
}
