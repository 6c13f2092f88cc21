//! 6.824 lab 3B (kvraft with snapshots) on real loopback clusters. `maxraftstate` is our
//! `[snapshot] threshold_bytes`, at its minimum of 4096 bytes; the Raft state size is
//! `RaftNode::log_bytes()` (log bytes since the last snapshot), which must stay under 8x it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod support;

use raft::LogIndex;
use support::generic::{cluster_extra, generic_test, get_until_done, put_until_done, Generic};
use support::history::History;
use support::{wait_until, TestClerk, TestCluster, EVENTUALLY};

/// The snapshot threshold of these tests (the configuration's minimum).
const MAXRAFTSTATE: u64 = 4096;

fn assert_get(history: &History, clerk: &TestClerk, client: u64, key: &str, want: &str) {
    let value = get_until_done(history, clerk, client, key);
    assert_eq!(value.as_deref(), Some(want.as_bytes()), "get {key}");
}

/// A server that falls behind while the others compact their logs catches up through
/// InstallSnapshot; the majority trims its log even though the minority does not answer.
#[test]
fn snapshot_rpc_brings_a_lagging_server_up_to_date() {
    let cluster = TestCluster::start(3, &cluster_extra(Some(MAXRAFTSTATE)));
    let history = History::new();
    let ck = cluster.make_clerk(&cluster.all());
    put_until_done(&history, &ck, 0, "a", "A");
    assert_get(&history, &ck, 0, "a", "A");

    // Many puts into the majority {0, 1}; node 2 falls behind.
    cluster.partition(&[&[0, 1], &[2]]);
    let lagging_last = {
        let ck1 = cluster.make_clerk(&[0, 1]);
        for i in 0..200 {
            put_until_done(&history, &ck1, 1, &i.to_string(), &i.to_string());
        }
        put_until_done(&history, &ck1, 1, "b", "B");
        cluster.node(2).node.status().last_index
    };
    // The majority threw most of its log away, past everything node 2 has.
    wait_until(
        EVENTUALLY,
        || {
            format!(
                "logs were not trimmed ({} > 8*{MAXRAFTSTATE})",
                cluster.max_log_bytes()
            )
        },
        || cluster.max_log_bytes() <= 8 * MAXRAFTSTATE,
    );
    wait_until(
        EVENTUALLY,
        || format!("node 0 did not snapshot past node 2's last index {lagging_last}"),
        || cluster.node(0).node.status().snapshot_index > lagging_last,
    );
    let compacted_to = cluster.node(0).node.status().snapshot_index;

    // A majority that needs the lagging server: it must catch up, and can only do so from
    // node 0's snapshot (node 0 no longer has the entries node 2 lacks).
    cluster.partition(&[&[0, 2], &[1]]);
    {
        let ck1 = cluster.make_clerk(&[0, 2]);
        put_until_done(&history, &ck1, 2, "c", "C");
        put_until_done(&history, &ck1, 2, "d", "D");
        assert_get(&history, &ck1, 2, "a", "A");
        assert_get(&history, &ck1, 2, "b", "B");
        assert_get(&history, &ck1, 2, "1", "1");
        assert_get(&history, &ck1, 2, "49", "49");
    }
    let lagging = &cluster.node(2).node;
    assert!(
        lagging.status().snapshot_index >= compacted_to,
        "node 2 caught up without a snapshot? snapshot index {} < {compacted_to}",
        lagging.status().snapshot_index
    );

    // Now everybody.
    cluster.heal();
    put_until_done(&history, &ck, 0, "e", "E");
    assert_get(&history, &ck, 0, "c", "C");
    assert_get(&history, &ck, 0, "e", "E");
    assert_get(&history, &ck, 0, "1", "1");
    history.assert_linearizable();
}

/// Snapshots keep the Raft state small, and the snapshots themselves stay small for a
/// workload that rewrites one key (6.824 allows 500 bytes; ours also holds the session table
/// and a header, so the bound is 1 KiB).
#[test]
fn snapshot_size_is_reasonable() {
    const MAX_SNAPSHOT_BYTES: u64 = 1024;
    let cluster = TestCluster::start(3, &cluster_extra(Some(MAXRAFTSTATE)));
    let history = History::new();
    let ck = cluster.make_clerk(&cluster.all());
    for _ in 0..100 {
        put_until_done(&history, &ck, 0, "x", "0");
        assert_get(&history, &ck, 0, "x", "0");
        put_until_done(&history, &ck, 0, "x", "1");
        assert_get(&history, &ck, 0, "x", "1");
    }
    wait_until(
        EVENTUALLY,
        || {
            format!(
                "logs were not trimmed ({} > 8*{MAXRAFTSTATE})",
                cluster.max_log_bytes()
            )
        },
        || cluster.max_log_bytes() <= 8 * MAXRAFTSTATE,
    );
    let indexes = cluster.snapshot_indexes();
    assert!(
        indexes.iter().all(|&i| i > LogIndex::ZERO),
        "a node never snapshotted: {indexes:?}"
    );
    for dir in &cluster.dirs {
        let bytes = snapshot_file_bytes(dir);
        assert!(
            bytes > 0 && bytes <= MAX_SNAPSHOT_BYTES,
            "snapshot in {} is {bytes} bytes (bound {MAX_SNAPSHOT_BYTES})",
            dir.display()
        );
    }
    history.assert_linearizable();
}

/// Total size of the snapshot files in a node's data directory.
fn snapshot_file_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("snap"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn snapshot_recover_one_client() {
    generic_test(&Generic {
        crash: true,
        maxraftstate: Some(MAXRAFTSTATE),
        ..Generic::new(1, 5)
    });
}

#[test]
fn snapshot_recover_many_clients() {
    generic_test(&Generic {
        crash: true,
        maxraftstate: Some(MAXRAFTSTATE),
        ..Generic::new(20, 5)
    });
}

#[test]
fn snapshot_unreliable() {
    generic_test(&Generic {
        unreliable: true,
        maxraftstate: Some(MAXRAFTSTATE),
        ..Generic::new(5, 5)
    });
}

#[test]
fn snapshot_unreliable_recover() {
    generic_test(&Generic {
        unreliable: true,
        crash: true,
        maxraftstate: Some(MAXRAFTSTATE),
        ..Generic::new(5, 5)
    });
}

#[test]
fn snapshot_unreliable_recover_concurrent_partition() {
    generic_test(&Generic {
        unreliable: true,
        crash: true,
        partitions: true,
        maxraftstate: Some(MAXRAFTSTATE),
        ..Generic::new(5, 5)
    });
}

#[test]
fn snapshot_unreliable_recover_concurrent_partition_linearizable() {
    generic_test(&Generic {
        unreliable: true,
        crash: true,
        partitions: true,
        maxraftstate: Some(MAXRAFTSTATE),
        randomkeys: true,
        ..Generic::new(15, 7)
    });
}

/// Not in 6.824: servers are restarted one at a time while clients run, over an unreliable
/// network, with snapshots; writes in flight on a stopping server end with an unknown outcome
/// and must not be lost or applied twice.
#[test]
fn snapshot_unreliable_restarts_during_load_linearizable() {
    generic_test(&Generic {
        unreliable: true,
        restarts_during_load: true,
        maxraftstate: Some(MAXRAFTSTATE),
        randomkeys: true,
        ..Generic::new(5, 5)
    });
}

/// As above with each client on its own key, so 6.824's append checks apply.
#[test]
fn snapshot_restarts_during_load_appends_exactly_once() {
    generic_test(&Generic {
        restarts_during_load: true,
        maxraftstate: Some(MAXRAFTSTATE),
        ..Generic::new(5, 5)
    });
}

/// 6.824's full-length version (5 s of load per round) of the hardest 3B test.
#[test]
#[ignore = "soak: ~20 s"]
fn soak_snapshot_unreliable_recover_concurrent_partition_linearizable() {
    generic_test(&Generic {
        unreliable: true,
        crash: true,
        partitions: true,
        maxraftstate: Some(MAXRAFTSTATE),
        randomkeys: true,
        load: std::time::Duration::from_secs(5),
        ..Generic::new(15, 7)
    });
}
