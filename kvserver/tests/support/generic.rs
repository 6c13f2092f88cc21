//! 6.824 lab 3's `GenericTest`, on a real loopback cluster.
//!
//! Clients submit Append/Get (and, with random keys, Put) for a while; meanwhile the
//! servers may be repartitioned and the network may be unreliable; afterwards the servers
//! may all be shut down and restarted from their data directories. Each of
//! [`ITERATIONS`] rounds then checks that every client's appends are present exactly once
//! and in order, and (with snapshots) that the Raft log was trimmed. At the end the whole
//! history must be linearizable.
//!
//! Deviations from 6.824, all for speed on two cores: 1 s of load per round instead of 5 s,
//! elections after 200..400 ms instead of ~1 s (and repartitions scaled to match), and
//! `maxraftstate` is our `[snapshot] threshold_bytes` (minimum 4096 bytes), with `log_percent = 0` (the
//! 6.824 bound is on the log size alone, not relative to the snapshot).

use super::appends::{append_value, check_client_value, AppendRecord};
use super::history::{History, Outcome};
use super::net::NetControl;
use super::rng::Rng;
use super::{
    wait_until, TestClerk, TestCluster, ELECTION_TIMEOUT, EVENTUALLY, FAST_RAFT, OP_TIMEOUT,
};
use bytes::Bytes;
use raft::LogIndex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Rounds of load per test (as 6.824).
pub const ITERATIONS: usize = 3;
/// Load per round.
pub const LOAD: Duration = Duration::from_millis(1000);
/// Load before the partitioner starts.
pub const PARTITION_START: Duration = Duration::from_millis(200);

/// The knobs of one generic test (6.824's `GenericTest` arguments).
#[derive(Clone, Debug)]
pub struct Generic {
    pub nclients: usize,
    pub nservers: usize,
    pub unreliable: bool,
    pub crash: bool,
    pub partitions: bool,
    /// Snapshot threshold in bytes; `None`: snapshots must not be used.
    pub maxraftstate: Option<u64>,
    pub randomkeys: bool,
    /// Load per round.
    pub load: Duration,
    /// Restart one server at a time while the clients run (not in 6.824, which restarts
    /// only between rounds).
    pub restarts_during_load: bool,
    /// When the clients give up on an operation (not in 6.824, whose clerks retry forever):
    /// short ones leave many writes with unknown outcomes in the history.
    pub op_timeout: Duration,
}

impl Generic {
    /// `nclients` clients on `nservers` servers, no faults, no snapshots, own keys.
    pub fn new(nclients: usize, nservers: usize) -> Generic {
        Generic {
            nclients,
            nservers,
            unreliable: false,
            crash: false,
            partitions: false,
            maxraftstate: None,
            randomkeys: false,
            load: LOAD,
            restarts_during_load: false,
            op_timeout: OP_TIMEOUT,
        }
    }
}

/// The cluster TOML for `maxraftstate`.
pub fn cluster_extra(maxraftstate: Option<u64>) -> String {
    match maxraftstate {
        Some(bytes) => {
            format!("{FAST_RAFT}[snapshot]\nthreshold_bytes = {bytes}\nlog_percent = 0\n")
        }
        None => FAST_RAFT.to_string(),
    }
}

/// Runs the generic test described by `g`; returns its (checked) history.
pub fn generic_test(g: &Generic) -> History {
    let mut cluster = TestCluster::start(g.nservers, &cluster_extra(g.maxraftstate));
    cluster.set_unreliable(g.unreliable);
    let history = History::new();
    let checker = cluster.make_clerk(&cluster.all());
    for round in 0..ITERATIONS {
        let appends = run_round(g, &mut cluster, &history);
        // Each client's key holds exactly its appends (6.824's checkClntAppends).
        for (cli, records) in appends.iter().enumerate() {
            let value = get_until_done(&history, &checker, g.nclients as u64, &cli.to_string());
            if !g.randomkeys {
                let value = String::from_utf8_lossy(value.as_deref().unwrap_or_default());
                if let Err(e) = check_client_value(cli, &value, records) {
                    panic!("round {round}: {e}");
                }
            }
        }
        check_raft_state(&cluster, g.maxraftstate, round);
    }
    if g.op_timeout < OP_TIMEOUT {
        abandon_a_write(g, &cluster, &history);
    }
    history.assert_linearizable();
    check_faults_happened(&cluster, g);
    history
}

/// Abandonment scenarios (short `op_timeout`) must leave a write with an unknown outcome
/// whatever the machine's speed: cut the leader off with a clerk that reaches only it, and
/// write until one write is taken there and abandoned. It may or may not take effect once
/// the partition heals; the history check allows both.
fn abandon_a_write(g: &Generic, cluster: &TestCluster, history: &History) {
    let unknown = |h: &History| {
        h.operations()
            .iter()
            .filter(|o| o.is_outcome_unknown())
            .count()
    };
    let before = unknown(history);
    cluster.set_unreliable(false);
    let client = g.nclients as u64 + 1; // the checker clerk is `nclients`
    for attempt in 0..10 {
        let leader = cluster.wait_for_leader(EVENTUALLY);
        let others: Vec<usize> = (0..cluster.n()).filter(|i| *i != leader).collect();
        cluster.partition(&[&[leader], &others]);
        let clerk = cluster.make_clerk_with_timeout(&[leader], g.op_timeout);
        let _ = history.put(clerk.clerk(), client, "abandoned", &format!("a{attempt}"));
        cluster.heal();
        if unknown(history) > before {
            return;
        }
    }
    panic!("no write could be left with an unknown outcome in 10 attempts");
}

/// One round: clients run for `g.load` under the faults `g` asks for, then the network
/// heals and (with `g.crash`) every server restarts. Returns each client's appends.
fn run_round(g: &Generic, cluster: &mut TestCluster, history: &History) -> Vec<Vec<AppendRecord>> {
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<JoinHandle<Vec<AppendRecord>>> = (0..g.nclients)
        .map(|cli| spawn_client(g, cluster, history, &done, cli))
        .collect();
    let partitioner = g.partitions.then(|| {
        std::thread::sleep(PARTITION_START);
        let (net, n, rng, done) = (
            cluster.net.clone(),
            g.nservers,
            cluster.fork_rng(),
            done.clone(),
        );
        std::thread::spawn(move || partitioner(&net, n, rng, &done))
    });
    if g.restarts_during_load {
        restart_servers_until(cluster, Instant::now() + g.load);
    } else {
        std::thread::sleep(g.load);
    }
    done.store(true, Ordering::SeqCst);
    if let Some(p) = partitioner {
        p.join().expect("the partitioner panicked");
        // A client may have a request in a minority; it completes once healed.
        cluster.heal();
    }
    if g.crash {
        for i in 0..g.nservers {
            cluster.stop_node(i);
        }
        for i in 0..g.nservers {
            cluster.start_node(i);
        }
    }
    clients
        .into_iter()
        .enumerate()
        .map(|(cli, h)| h.join().unwrap_or_else(|_| panic!("client {cli} failed")))
        .collect()
}

/// One client's loop (6.824's client function in `GenericTest`); returns its appends.
fn spawn_client(
    g: &Generic,
    cluster: &TestCluster,
    history: &History,
    done: &Arc<AtomicBool>,
    cli: usize,
) -> JoinHandle<Vec<AppendRecord>> {
    let clerk = cluster.make_clerk_with_timeout(&cluster.all(), g.op_timeout);
    let (g, history, done, rng) = (g.clone(), history.clone(), done.clone(), cluster.fork_rng());
    std::thread::Builder::new()
        .name(format!("test-client-{cli}"))
        .spawn(move || client_loop(&g, &clerk, &history, &done, cli, rng))
        .expect("spawn a client")
}

fn client_loop(
    g: &Generic,
    clerk: &TestClerk,
    history: &History,
    done: &AtomicBool,
    cli: usize,
    mut rng: Rng,
) -> Vec<AppendRecord> {
    let id = cli as u64;
    let own_key = cli.to_string();
    let mut appends = Vec::new();
    if !g.randomkeys {
        put_until_done(history, clerk, id, &own_key, "");
    }
    let mut j = 0;
    while !done.load(Ordering::SeqCst) {
        let key = if g.randomkeys {
            rng.below(g.nclients as u64).to_string()
        } else {
            own_key.clone()
        };
        let nv = append_value(cli, j);
        if rng.chance(500) {
            let outcome = history.append(clerk.clerk(), id, &key, &nv);
            if !g.randomkeys {
                appends.push(AppendRecord {
                    j,
                    applied: outcome.applied(),
                });
            }
            j += 1;
        } else if g.randomkeys && rng.chance(100) {
            history.put(clerk.clerk(), id, &key, &nv);
            j += 1;
        } else if let Outcome::Done(value) = history.get(clerk.clerk(), id, &key) {
            if !g.randomkeys {
                let value = String::from_utf8_lossy(value.as_deref().unwrap_or_default());
                if let Err(e) = check_client_value(cli, &value, &appends) {
                    panic!("client {cli}: get wrong value: {e}");
                }
            }
        }
    }
    appends
}

/// Puts until one attempt certainly succeeded (an earlier attempt with an unknown outcome,
/// if it ever applies, applies before it).
pub fn put_until_done(history: &History, clerk: &TestClerk, client: u64, key: &str, value: &str) {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        match history.put(clerk.clerk(), client, key, value) {
            Outcome::Done(()) => return,
            other => assert!(
                Instant::now() < deadline,
                "put {key} never succeeded: {other:?}"
            ),
        }
    }
}

/// Gets until one attempt succeeds (bounded).
pub fn get_until_done(
    history: &History,
    clerk: &TestClerk,
    client: u64,
    key: &str,
) -> Option<Bytes> {
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        match history.get(clerk.clerk(), client, key) {
            Outcome::Done(value) => return value,
            other => assert!(
                Instant::now() < deadline,
                "get {key} never succeeded: {other:?}"
            ),
        }
    }
}

/// Until `until`: stops a random server, lets the others run without it for a moment, and
/// restarts it from its data directory (at most one server is down at a time).
fn restart_servers_until(cluster: &mut TestCluster, until: Instant) {
    let mut rng = cluster.fork_rng();
    while Instant::now() < until {
        let victim = rng.below(cluster.n() as u64) as usize;
        cluster.stop_node(victim);
        std::thread::sleep(ELECTION_TIMEOUT / 2 + Duration::from_millis(rng.below(200)));
        cluster.start_node(victim);
        std::thread::sleep(ELECTION_TIMEOUT + Duration::from_millis(rng.below(200)));
    }
}

/// Repartitions the servers at random every two election timeouts or so (6.824's
/// `partitioner`), until `done`. Runs at least once.
pub fn partitioner(net: &NetControl, n: usize, mut rng: Rng, done: &AtomicBool) {
    loop {
        // Random sides, as 6.824, but never everyone on one side (that would be no cut).
        let mut sides: Vec<u64> = (0..n).map(|_| rng.below(2)).collect();
        while sides.iter().all(|&s| s == sides[0]) {
            sides = (0..n).map(|_| rng.below(2)).collect();
        }
        let group = |side: u64| -> Vec<usize> { (0..n).filter(|&i| sides[i] == side).collect() };
        let (a, b) = (group(0), group(1));
        net.partition(&[&a, &b]);
        let pause = 2 * ELECTION_TIMEOUT + Duration::from_millis(rng.below(200));
        let until = Instant::now() + pause;
        while Instant::now() < until && !done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if done.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// With snapshots: every node's log shrinks to at most 8x the threshold once the load is
/// over (polled: a node may be about to snapshot). Without: no node ever snapshotted.
fn check_raft_state(cluster: &TestCluster, maxraftstate: Option<u64>, iteration: usize) {
    match maxraftstate {
        Some(max) => wait_until(
            EVENTUALLY,
            || {
                format!(
                    "round {iteration}: logs were not trimmed ({} > 8*{max})",
                    cluster.max_log_bytes()
                )
            },
            || cluster.max_log_bytes() <= 8 * max,
        ),
        None => {
            let indexes = cluster.snapshot_indexes();
            assert!(
                indexes.iter().all(|&i| i == LogIndex::ZERO),
                "round {iteration}: snapshots were taken without a threshold: {indexes:?}"
            );
        }
    }
}

/// The test's name promises faults; make sure they really happened.
fn check_faults_happened(cluster: &TestCluster, g: &Generic) {
    let stats = &cluster.net.stats;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    eprintln!(
        "raft net: {} sent, {} cut, {} dropped, {} duplicated, {} delayed; clerk connections killed: {}",
        load(&stats.sent),
        load(&stats.cut),
        load(&stats.dropped),
        load(&stats.duplicated),
        load(&stats.delayed),
        load(&cluster.client_net.kills)
    );
    if g.unreliable {
        assert!(
            load(&stats.dropped) > 0 && load(&stats.delayed) > 0,
            "no Raft message was dropped or delayed"
        );
        assert!(
            load(&cluster.client_net.kills) > 0,
            "no clerk connection was killed"
        );
    }
    if g.partitions {
        assert!(
            load(&stats.cut) > 0,
            "no Raft message was cut by a partition"
        );
    }
}
