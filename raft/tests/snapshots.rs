//! MIT 6.824 Lab 2D (log compaction), ported to the seeded simulator. Applications snapshot
//! every 10 entries (6.824's `SnapShotInterval`, `applierSnap`); their snapshot encodes every
//! applied command, so a node that installs one is checked entry by entry against what the
//! cluster committed. Snapshots travel in 1 KiB chunks, so most transfers are chunked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use raft::sim::{cmd, run_seeds, Cluster, SimConfig};

const SNAPSHOT_INTERVAL: u64 = 10;
/// 6.824's `MAXLOGSIZE`: the Raft state (without snapshot) must stay below this.
const MAX_LOG_SIZE_BYTES: usize = 2000;
const SEEDS: u64 = 30;

fn snapshot_cluster(seed: u64, scenario: &str) -> Cluster {
    let mut config = SimConfig::new(3, seed).scenario(scenario);
    config.snapshot_interval = SNAPSHOT_INTERVAL;
    Cluster::new(config)
}

fn random_cmd(c: &mut Cluster) -> u64 {
    c.rng().next_u64() >> 1
}

// snapcommon
fn snapcommon(scenario: &str, disconnect: bool, reliable: bool, crash: bool) {
    run_seeds(scenario, SEEDS, |seed| {
        let iters = 30;
        let mut c = snapshot_cluster(seed, scenario);
        c.set_unreliable(!reliable);
        let servers = c.len();
        let v = random_cmd(&mut c);
        c.one(v, servers, true);
        let mut leader1 = c.check_one_leader();
        for i in 0..iters {
            let mut victim = c.peer(leader1, 1);
            let mut sender = leader1;
            if i % 3 == 1 {
                sender = c.peer(leader1, 1);
                victim = leader1;
            }
            if disconnect {
                c.disconnect(victim);
                let v = random_cmd(&mut c);
                c.one(v, servers - 1, true);
            }
            if crash {
                c.crash(victim);
                let v = random_cmd(&mut c);
                c.one(v, servers - 1, true);
            }
            // Perhaps send enough to get a snapshot.
            let nn = SNAPSHOT_INTERVAL / 2 + c.rng().below(SNAPSHOT_INTERVAL);
            for _ in 0..nn {
                let v = random_cmd(&mut c);
                c.start(sender, cmd(v));
            }
            // Let applier threads catch up with the Start()s.
            let v = random_cmd(&mut c);
            if !disconnect && !crash {
                // Make sure all followers have caught up, so that an InstallSnapshot RPC
                // isn't required for the basic test.
                c.one(v, servers, true);
            } else {
                c.one(v, servers - 1, true);
            }
            let size = c.log_size_bytes();
            c.ensure(size < MAX_LOG_SIZE_BYTES, || {
                format!("log size too large: {size} bytes")
            });
            if disconnect {
                // Reconnect a follower, who may be behind and need a snapshot to catch up.
                c.connect(victim);
                let v = random_cmd(&mut c);
                c.one(v, servers, true);
                leader1 = c.check_one_leader();
            }
            if crash {
                c.restart(victim);
                c.connect(victim);
                let v = random_cmd(&mut c);
                c.one(v, servers, true);
                leader1 = c.check_one_leader();
            }
        }
        if disconnect || crash {
            // Our check that the scenario did what its name says.
            let chunks = c.net_stats().snapshot_chunks;
            c.ensure(chunks > 0, || "no InstallSnapshot was ever sent".into());
        }
    });
}

// TestSnapshotBasic2D
#[test]
fn snapshot_basic() {
    snapcommon("snapshot_basic", false, true, false);
}

// TestSnapshotInstall2D
#[test]
fn snapshot_install() {
    snapcommon("snapshot_install", true, true, false);
}

// TestSnapshotInstallUnreliable2D
#[test]
fn snapshot_install_unreliable() {
    snapcommon("snapshot_install_unreliable", true, false, false);
}

// TestSnapshotInstallCrash2D
#[test]
fn snapshot_install_crash() {
    snapcommon("snapshot_install_crash", false, true, true);
}

// TestSnapshotInstallUnCrash2D
#[test]
fn snapshot_install_unreliable_crash() {
    snapcommon("snapshot_install_unreliable_crash", false, false, true);
}

// TestSnapshotAllCrash2D: do the servers persist the snapshots, and restart using the
// snapshot along with the tail of the log?
#[test]
fn snapshot_all_crash() {
    run_seeds("snapshot_all_crash", SEEDS, |seed| {
        let mut c = snapshot_cluster(seed, "snapshot_all_crash");
        let servers = c.len();
        let v = random_cmd(&mut c);
        c.one(v, servers, true);
        for _ in 0..5 {
            // Perhaps enough to get a snapshot.
            let nn = SNAPSHOT_INTERVAL / 2 + c.rng().below(SNAPSHOT_INTERVAL);
            for _ in 0..nn {
                let v = random_cmd(&mut c);
                c.one(v, servers, true);
            }
            let v = random_cmd(&mut c);
            let index1 = c.one(v, servers, true);
            // Crash all, then revive all.
            for id in c.node_ids() {
                c.crash(id);
            }
            for id in c.node_ids() {
                c.restart(id);
                c.connect(id);
            }
            let v = random_cmd(&mut c);
            let index2 = c.one(v, servers, true);
            c.ensure(index2 > index1, || {
                format!("index decreased from {index1:?} to {index2:?}")
            });
        }
    });
}

// TestSnapshotInit2D: do servers correctly initialize their in-memory copy of the snapshot,
// making sure that future writes to persistent state don't lose state?
#[test]
fn snapshot_init() {
    run_seeds("snapshot_init", SEEDS, |seed| {
        let mut c = snapshot_cluster(seed, "snapshot_init");
        let servers = c.len();
        let v = random_cmd(&mut c);
        c.one(v, servers, true);
        // Enough ops to make a snapshot.
        for _ in 0..=SNAPSHOT_INTERVAL {
            let v = random_cmd(&mut c);
            c.one(v, servers, true);
        }
        for round in 0..2 {
            for id in c.node_ids() {
                c.crash(id);
            }
            for id in c.node_ids() {
                c.restart(id);
                c.connect(id);
            }
            // Round 0: a single op, to get something written back to persistent storage.
            // Round 1: another op to trigger the potential bug.
            let v = random_cmd(&mut c);
            c.one(v, servers, true);
            let _ = round;
        }
    });
}
