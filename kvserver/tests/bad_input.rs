//! Bad input to the real binaries: every mistake an operator or client can make ends in
//! a clear refusal (exit code, ONE line on stderr naming the reason) and never in lost or
//! damaged data.
//!
//! kvserver: malformed configs, an id not in the config, unusable data directories, a
//! corrupt WAL segment, a data directory of another cluster or node, a port already in
//! use (including a second instance of a running node), and a node of another cluster
//! talking to the cluster's ports. kvctl: oversized keys and values, and no server at all.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod e2e;

use e2e::cluster::{config_toml, ProcessCluster, FAST_TOML};
use e2e::ports::free_ports;
use e2e::process::{kvctl_command, kvserver_command, run, wait_until, Finished, Signal, HANG};
use e2e::shell::{Answer, ShellClient};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runs `kvserver --config CONFIG --id ID --data-dir DIR` to completion.
fn kvserver(config: &Path, id: u64, data_dir: &Path) -> Finished {
    let mut command = kvserver_command();
    command
        .arg("--config")
        .arg(config)
        .args(["--id", &id.to_string()])
        .arg("--data-dir")
        .arg(data_dir);
    run(command, HANG)
}

/// Asserts exit code 1 and one stderr line `kvserver: ...` containing every `needles`;
/// returns the line.
fn assert_refused(finished: &Finished, needles: &[&str]) -> String {
    assert_eq!(finished.code(), Some(1), "expected exit 1: {finished:?}");
    let line = finished.one_stderr_line();
    assert!(
        line.starts_with("kvserver: "),
        "reason line must start with `kvserver: `: {line}"
    );
    for needle in needles {
        assert!(
            line.contains(needle),
            "reason {line:?} should mention {needle:?}"
        );
    }
    line.to_string()
}

/// Every file under `dir` (relative path -> bytes).
fn dir_contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A config of `n` nodes on fresh ports, written to `dir/name`.
fn write_config(dir: &Path, name: &str, cluster_id: &str, n: usize) -> PathBuf {
    let addrs: Vec<String> = free_ports(n)
        .into_iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, config_toml(cluster_id, &addrs, "")).unwrap();
    path
}

#[test]
fn malformed_configs_exit_1_with_one_line_reasons_and_touch_no_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let good = config_toml(
        "e2e",
        &["127.0.0.1:7001".into(), "127.0.0.1:7002".into()],
        "",
    );
    let cases: Vec<(&str, Option<String>, Vec<&str>)> = vec![
        (
            "syntax",
            Some("cluster_id = \"e2e\n[[nodes]]\nid = 1\n".into()),
            vec!["line 1"],
        ),
        (
            "unknown-top",
            Some(format!("bogus = 1\n{good}")),
            vec!["unknown field", "bogus"],
        ),
        (
            "unknown-node",
            Some(good.replace("id = 2\n", "id = 2\nport = 3\n")),
            vec!["port"],
        ),
        (
            "duplicate-id",
            Some(good.replace("id = 2", "id = 1")),
            vec!["id 1 appears twice"],
        ),
        (
            "no-port",
            Some(good.replace("127.0.0.1:7002", "127.0.0.1")),
            vec!["not host:port"],
        ),
        (
            "bad-port",
            Some(good.replace(":7002", ":99999")),
            vec!["bad port"],
        ),
        (
            "tiny-connection-budget",
            Some(format!("{good}[connections]\nmax_buffered_bytes = 1000\n")),
            vec!["connections.max_buffered_bytes"],
        ),
        (
            "empty-cluster",
            Some(good.replace("\"e2e\"", "\"\"")),
            vec!["cluster_id"],
        ),
        (
            "no-nodes",
            Some("cluster_id = \"e2e\"\nnodes = []\n".into()),
            vec!["nodes"],
        ),
        ("missing", None, vec!["cannot read"]),
    ];
    for (name, text, needles) in cases {
        let path = tmp.path().join(format!("{name}.toml"));
        if let Some(text) = &text {
            std::fs::write(&path, text).unwrap();
        }
        let data_dir = tmp.path().join(format!("data-{name}"));
        let finished = kvserver(&path, 1, &data_dir);
        let mut needles = needles;
        let file_name = format!("{name}.toml");
        needles.push(&file_name);
        assert_refused(&finished, &needles);
        assert!(
            !data_dir.exists(),
            "{name}: a bad config must not create the data directory"
        );
    }
}

#[test]
fn an_id_not_in_the_config_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "c.toml", "e2e", 3);
    let data_dir = tmp.path().join("data");
    assert_refused(&kvserver(&config, 9, &data_dir), &["node 9", "not listed"]);
    assert!(!data_dir.exists());
}

#[test]
fn unusable_data_directories_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "c.toml", "e2e", 1);
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    // A path whose parent is a regular file: unwritable even for root.
    let under_file = file.join("data");
    assert_refused(
        &kvserver(&config, 1, &under_file),
        &["data directory", "a-file/data"],
    );
    // The data directory itself is a regular file.
    assert_refused(&kvserver(&config, 1, &file), &["data directory", "a-file"]);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"not a directory",
        "the file is untouched"
    );
}

/// A single-node cluster holding `keys` keys `k<i>` = `value-<i>`, stopped cleanly.
fn stopped_node_with_data(keys: usize) -> ProcessCluster {
    let mut cluster = ProcessCluster::start(1, FAST_TOML);
    cluster.wait_for_leader();
    let clerk = cluster.clerk(HANG);
    for i in 0..keys {
        clerk.put(format!("k{i}"), format!("value-{i}")).unwrap();
    }
    let status = cluster.stop_with(0, Signal::Term);
    assert!(status.success(), "SIGTERM: {status}");
    cluster
}

/// Starts the cluster's nodes again and checks that keys `k0..k<keys>` are all there.
fn restart_and_check(cluster: &mut ProcessCluster, keys: usize) {
    for i in 0..cluster.len() {
        if !cluster.is_started(i) {
            cluster.spawn(i);
        }
    }
    cluster.wait_for_leader();
    let clerk = cluster.clerk(HANG);
    for i in 0..keys {
        let value = clerk.get(format!("k{i}")).unwrap();
        assert_eq!(
            value.as_deref(),
            Some(format!("value-{i}").as_bytes()),
            "key k{i}"
        );
    }
}

#[test]
fn a_flipped_byte_inside_a_wal_segment_stops_startup_and_leaves_the_data_alone() {
    let mut cluster = stopped_node_with_data(300);
    let dir = cluster.data_dir(0).to_path_buf();
    let segment = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        // The segment holding the most records (all are preallocated to the same size).
        .max_by_key(|p| std::fs::read(p).unwrap().iter().rposition(|b| *b != 0))
        .unwrap();
    let original = std::fs::read(&segment).unwrap();
    assert!(
        original.len() > 4096,
        "the WAL segment should hold many records"
    );
    let mut flipped = original.clone();
    // The middle of the records: segments are preallocated, so zeros follow the last one.
    let records_end = original.iter().rposition(|b| *b != 0).unwrap() + 1;
    let middle = records_end / 2;
    flipped[middle] ^= 0x5a;
    std::fs::write(&segment, &flipped).unwrap();
    let before = dir_contents(&dir);

    let name = segment.file_name().unwrap().to_str().unwrap();
    let finished = kvserver(&cluster.config_path, 1, &dir);
    assert_refused(&finished, &["corrupt", name]);
    assert_eq!(
        dir_contents(&dir),
        before,
        "a refused start must not change the data directory"
    );

    // Only that byte was wrong: with it repaired, every key is back.
    std::fs::write(&segment, &original).unwrap();
    restart_and_check(&mut cluster, 300);
}

#[test]
fn a_flipped_byte_inside_the_snapshot_stops_startup_and_leaves_the_data_alone() {
    let mut cluster = ProcessCluster::start(1, FAST_TOML);
    cluster.wait_for_leader();
    let clerk = cluster.clerk(HANG);
    let value = |i: usize| format!("value-{i}-{}", "s".repeat(200));
    // Past FAST_TOML's 64 KiB snapshot threshold, from a few writers at once.
    std::thread::scope(|scope| {
        for w in 0..4 {
            let clerk = clerk.clone();
            scope.spawn(move || {
                for i in (w..600).step_by(4) {
                    clerk.put(format!("k{i}"), value(i)).unwrap();
                }
            });
        }
    });
    let snap_dir = cluster.data_dir(0).join("snap");
    let snapshot_file = || {
        std::fs::read_dir(&snap_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "snap"))
    };
    wait_until(HANG, "a snapshot file", || snapshot_file().is_some());
    assert!(cluster.stop_with(0, Signal::Term).success());
    let snapshot = snapshot_file().unwrap();
    let original = std::fs::read(&snapshot).unwrap();
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x5a;
    std::fs::write(&snapshot, &flipped).unwrap();
    let dir = cluster.data_dir(0).to_path_buf();
    let before = dir_contents(&dir);

    let finished = kvserver(&cluster.config_path, 1, &dir);
    assert_eq!(finished.code(), Some(1), "{finished:?}");
    // Storage logs a warning about the snapshot first; the reason is the last line.
    let reasons: Vec<&str> = finished
        .stderr
        .lines()
        .filter(|l| l.starts_with("kvserver: "))
        .collect();
    assert_eq!(reasons.len(), 1, "{}", finished.stderr);
    assert_eq!(finished.stderr.lines().last(), Some(reasons[0]));
    let name = snapshot.file_name().unwrap().to_str().unwrap();
    assert!(
        reasons[0].contains(name) && reasons[0].contains("checksum"),
        "{}",
        reasons[0]
    );
    assert_eq!(
        dir_contents(&dir),
        before,
        "a refused start must not change the data directory"
    );

    std::fs::write(&snapshot, &original).unwrap();
    cluster.spawn(0);
    cluster.wait_for_leader();
    let clerk = cluster.clerk(HANG);
    for i in 0..600 {
        assert_eq!(
            clerk.get(format!("k{i}")).unwrap().as_deref(),
            Some(value(i).as_bytes())
        );
    }
}

/// A node started on a directory holding none of its data (its data directory deleted, or
/// the default relative data directory looked up from another working directory) refuses
/// to start without `--bootstrap` and creates nothing; a data directory whose `wal/` and
/// `snap/` were emptied (directories kept) is refused too. The cluster's data is intact.
#[test]
fn a_node_with_no_data_refuses_to_start_without_bootstrap() {
    let mut cluster = stopped_node_with_data(20);
    let elsewhere = cluster
        .root()
        .join("another-working-directory")
        .join("node-1");
    let finished = kvserver(&cluster.config_path, 1, &elsewhere);
    assert_refused(&finished, &["holds no data of this node", "--bootstrap"]);
    assert!(
        !elsewhere.exists(),
        "a refused start created {}",
        elsewhere.display()
    );

    let dir = cluster.data_dir(0).to_path_buf();
    let kept = tempfile::tempdir().unwrap();
    for sub in ["wal", "snap"] {
        std::fs::create_dir(kept.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::rename(&path, kept.path().join(sub).join(path.file_name().unwrap())).unwrap();
        }
    }
    let finished = kvserver(&cluster.config_path, 1, &dir);
    assert_refused(&finished, &["gone or empty", "refusing to start"]);
    for sub in ["wal", "snap"] {
        std::fs::remove_dir(dir.join(sub)).unwrap();
        std::fs::rename(kept.path().join(sub), dir.join(sub)).unwrap();
    }
    restart_and_check(&mut cluster, 20);
}

/// A node whose `wal/` and `snap/` were deleted (to free space, say) but whose IDENTITY is
/// still there must not come back as an empty voter: it would have forgotten its votes and
/// the entries it acknowledged. It refuses to start, with a one-line reason, and leaves
/// the directory alone; with the data restored it starts and every key is there.
#[test]
fn a_node_whose_raft_data_was_deleted_refuses_to_start() {
    let mut cluster = stopped_node_with_data(50);
    let dir = cluster.data_dir(0).to_path_buf();
    let kept = tempfile::tempdir().unwrap();
    for sub in ["wal", "snap"] {
        std::fs::rename(dir.join(sub), kept.path().join(sub)).unwrap();
    }
    let before = dir_contents(&dir);
    let finished = kvserver(&cluster.config_path, 1, &dir);
    assert_refused(&finished, &["wal/ and snap/ are gone", "refusing to start"]);
    assert_eq!(
        dir_contents(&dir),
        before,
        "a refused start must not change the data directory"
    );
    for sub in ["wal", "snap"] {
        std::fs::rename(kept.path().join(sub), dir.join(sub)).unwrap();
    }
    restart_and_check(&mut cluster, 50);
}

#[test]
fn a_data_dir_of_another_cluster_or_node_is_refused_and_left_alone() {
    let mut cluster = stopped_node_with_data(20);
    let dir = cluster.data_dir(0).to_path_buf();
    let before = dir_contents(&dir);
    let other_cluster = cluster.root().join("other-cluster.toml");
    std::fs::write(&other_cluster, config_toml("other", &cluster.addrs, "")).unwrap();
    let line = assert_refused(
        &kvserver(&other_cluster, 1, &dir),
        &["\"e2e\"", "\"other\""],
    );
    eprintln!("other cluster: {line}");

    let mut addrs = cluster.addrs.clone();
    addrs.push(format!("127.0.0.1:{}", free_ports(1)[0]));
    let two_nodes = cluster.root().join("two-nodes.toml");
    std::fs::write(&two_nodes, config_toml("e2e", &addrs, "")).unwrap();
    let line = assert_refused(&kvserver(&two_nodes, 2, &dir), &["node 1", "node 2"]);
    eprintln!("other node: {line}");

    assert_eq!(
        dir_contents(&dir),
        before,
        "a refused start must not change the data directory"
    );
    restart_and_check(&mut cluster, 20);
}

#[test]
fn a_port_in_use_is_refused_before_the_data_dir_is_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = squatter.local_addr().unwrap().to_string();
    let config = tmp.path().join("c.toml");
    std::fs::write(&config, config_toml("e2e", std::slice::from_ref(&addr), "")).unwrap();
    let data_dir = tmp.path().join("data");
    assert_refused(
        &kvserver(&config, 1, &data_dir),
        &["cannot listen", &addr, "in use"],
    );
    assert!(!data_dir.exists(), "the data directory must not be created");
}

#[test]
fn a_second_instance_of_a_running_node_is_refused_and_leaves_its_data_alone() {
    let mut cluster = ProcessCluster::start(1, FAST_TOML);
    cluster.wait_for_leader();
    let clerk = cluster.clerk(HANG);
    for i in 0..50 {
        clerk.put(format!("k{i}"), format!("value-{i}")).unwrap();
    }
    let dir = cluster.data_dir(0).to_path_buf();
    let files_before: Vec<PathBuf> = dir_contents(&dir).into_keys().collect();
    let second = kvserver(&cluster.config_path, 1, &dir);
    assert_refused(&second, &["cannot listen", &cluster.addrs[0]]);
    let files_after: Vec<PathBuf> = dir_contents(&dir).into_keys().collect();
    assert_eq!(
        files_after, files_before,
        "the second instance must not touch the live data"
    );
    // The first instance is unharmed, and so is its data across a restart.
    clerk.put("k50", "value-50").unwrap();
    let status = cluster.stop_with(0, Signal::Term);
    assert!(status.success(), "SIGTERM: {status}");
    restart_and_check(&mut cluster, 51);
}

/// Runs `kvctl --endpoints ADDRS --timeout-ms T ARGS...` to completion.
fn kvctl(addrs: &[String], timeout_ms: u64, args: &[&str]) -> Finished {
    let mut command = kvctl_command();
    command
        .arg("--endpoints")
        .arg(addrs.join(","))
        .args(["--timeout-ms", &timeout_ms.to_string()])
        .args(args);
    run(command, Duration::from_millis(timeout_ms) + HANG)
}

/// Asserts a failed kvctl operation: exit 2 and one stderr line with every needle.
fn assert_op_failed(finished: &Finished, needles: &[&str]) {
    assert_eq!(finished.code(), Some(2), "expected exit 2: {finished:?}");
    let line = finished.one_stderr_line();
    assert!(line.starts_with("kvctl: "), "{line}");
    for needle in needles {
        assert!(line.contains(needle), "{line:?} should mention {needle:?}");
    }
    assert!(
        finished.stdout.is_empty(),
        "nothing on stdout: {:?}",
        finished.stdout
    );
}

#[test]
fn oversized_keys_and_values_are_refused_through_kvctl_and_nothing_is_lost() {
    let limits = format!("{FAST_TOML}[limits]\nmax_key_bytes = 64\nmax_value_bytes = 1024\n");
    let cluster = ProcessCluster::start(3, &limits);
    cluster.wait_for_leader();
    let clerk = cluster.clerk(HANG);
    for i in 0..20 {
        clerk.put(format!("k{i}"), format!("value-{i}")).unwrap();
    }
    let full = "x".repeat(1000);
    clerk.put("full", full.clone()).unwrap();
    let addrs = &cluster.addrs;
    let long_key = "K".repeat(65);
    let long_value = "V".repeat(1025);
    let ms = 30_000;
    let refused = "not applied";
    assert_op_failed(
        &kvctl(addrs, ms, &["put", &long_key, "v"]),
        &["key", "65", "64", refused],
    );
    assert_op_failed(&kvctl(addrs, ms, &["get", &long_key]), &["key", "65", "64"]);
    assert_op_failed(
        &kvctl(addrs, ms, &["put", "k0", &long_value]),
        &["1025", "1024", refused],
    );
    assert_op_failed(
        &kvctl(addrs, ms, &["cas", "k1", "value-1", &long_value]),
        &["1025", refused],
    );
    let grow = "y".repeat(25);
    assert_op_failed(
        &kvctl(addrs, ms, &["append", "full", &grow]),
        &["1025", "1024", refused],
    );

    // Through the shell (no argument-length limit): a 3 MiB value, then the same
    // connection keeps working.
    let mut shell = ShellClient::spawn(addrs, ms, None);
    let huge = "H".repeat(3 << 20);
    match shell.call(&format!("put k2 {huge}"), HANG) {
        Answer::Json(v) => {
            assert_eq!(v["ok"], false, "{v}");
            assert_eq!(v["definite"], true, "{v}");
            assert!(v["error"].as_str().unwrap().contains("limit 1024"), "{v}");
        }
        other => panic!("shell gave {other:?}"),
    }
    match shell.call("get k2", HANG) {
        Answer::Json(v) => assert_eq!(v["value"], "value-2", "{v}"),
        other => panic!("shell gave {other:?}"),
    }
    assert!(shell.finish(HANG), "kvctl shell exits 0 at end of input");

    // Nothing was lost or changed, and the cluster still takes writes.
    for i in 0..20 {
        let value = clerk.get(format!("k{i}")).unwrap();
        assert_eq!(
            value.as_deref(),
            Some(format!("value-{i}").as_bytes()),
            "key k{i}"
        );
    }
    assert_eq!(clerk.get("full").unwrap().as_deref(), Some(full.as_bytes()));
    assert_eq!(clerk.get(long_key.clone()).ok().flatten(), None);
    clerk.put("after", "ok").unwrap();
    assert_eq!(clerk.get("after").unwrap().as_deref(), Some(&b"ok"[..]));
}

/// A process killed (SIGKILL) and reaped when dropped.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Replaces node 3 of `cluster` (stopped) by a process started with `config` on
/// `data_dir`, waits until both peers log a rejected batch whose reason contains `needle`,
/// and returns the process with its log file.
fn start_rejected_node_3(
    cluster: &ProcessCluster,
    name: &str,
    config: &Path,
    data_dir: &Path,
    needle: &str,
) -> (Reaped, PathBuf) {
    let log_path = cluster.root().join(format!("{name}.log"));
    let mut command = kvserver_command();
    if !data_dir.exists() {
        command.arg("--bootstrap");
    }
    let node = Reaped(
        command
            .arg("--config")
            .arg(config)
            .args(["--id", "3", "--data-dir"])
            .arg(data_dir)
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let rejection = |i: usize| {
        cluster
            .log(i)
            .lines()
            .find(|l| l.contains("rejected raft batch") && l.contains(needle))
            .map(str::to_string)
    };
    wait_until(HANG, "both peers to log node 3's rejection", || {
        rejection(0).is_some() && rejection(1).is_some()
    });
    eprintln!("peer log: {}", rejection(0).unwrap_or_default());
    (node, log_path)
}

/// Stops a rejected node with SIGTERM and checks from its log that it never led.
fn stop_rejected_node(mut node: Reaped, log_path: &Path) -> String {
    e2e::process::send_signal(node.0.id(), Signal::Term);
    let status = e2e::process::wait_exit(&mut node.0, HANG).expect("the node exits");
    assert!(status.success(), "on SIGTERM: {status}");
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(
        !log.contains("became leader"),
        "the rejected node became leader"
    );
    log
}

/// Settings every member must share (here `[limits] max_value_bytes`) are checked at every
/// Raft batch: a node restarted with another value is rejected by its peers (and rejects
/// them), never leads or votes, and cannot apply a write the others accepted but it would
/// refuse (replicas would hold different data). With its configuration fixed it catches up.
#[test]
fn a_node_with_different_shared_settings_is_rejected_and_changes_nothing() {
    let mut cluster = ProcessCluster::start(3, FAST_TOML);
    cluster.wait_for_leader();
    let clerk = cluster.clerk(HANG);
    for i in 0..10 {
        clerk.put(format!("k{i}"), format!("value-{i}")).unwrap();
    }
    assert!(cluster.stop_with(2, Signal::Term).success());
    let config = cluster.root().join("small-values.toml");
    let extra = format!("{FAST_TOML}[limits]\nmax_value_bytes = 10\n");
    std::fs::write(&config, config_toml("e2e", &cluster.addrs, &extra)).unwrap();
    let data_dir = cluster.data_dir(2).to_path_buf();
    let (node, log_path) = start_rejected_node_3(
        &cluster,
        "small-values",
        &config,
        &data_dir,
        "settings digest",
    );
    let long = "x".repeat(100);
    for i in 10..20 {
        clerk.put(format!("k{i}"), long.clone()).unwrap();
        let status = cluster.statuses()[2].clone();
        assert!(
            status.as_ref().is_none_or(|s| s.role != "leader"),
            "the mismatched node leads: {status:?}"
        );
    }
    let log = stop_rejected_node(node, &log_path);
    assert!(
        log.contains("settings digest"),
        "node 3 logged no rejection"
    );

    cluster.spawn(2);
    let leader = cluster.wait_for_leader();
    let commit = cluster.statuses()[leader].as_ref().unwrap().commit;
    cluster.wait_applied(commit);
    for i in 10..20 {
        assert_eq!(
            clerk.get(format!("k{i}")).unwrap().as_deref(),
            Some(long.as_bytes())
        );
    }
}

#[test]
fn a_node_of_another_cluster_is_rejected_by_the_peers_and_changes_nothing() {
    let mut cluster = ProcessCluster::start(3, FAST_TOML);
    cluster.wait_for_leader();
    let clerk = cluster.clerk(HANG);
    for i in 0..20 {
        clerk.put(format!("k{i}"), format!("value-{i}")).unwrap();
    }
    // Node 3 is replaced by a node that believes it is node 3 of cluster "intruder".
    assert!(cluster.stop_with(2, Signal::Term).success());
    let root = cluster.root().to_path_buf();
    let config = root.join("intruder.toml");
    std::fs::write(&config, config_toml("intruder", &cluster.addrs, FAST_TOML)).unwrap();
    let (intruder, log_path) = start_rejected_node_3(
        &cluster,
        "intruder",
        &config,
        &root.join("intruder-data"),
        "\"intruder\"",
    );

    // The cluster keeps working meanwhile, and the intruder never leads.
    for i in 20..40 {
        clerk.put(format!("k{i}"), format!("value-{i}")).unwrap();
        let status = cluster.statuses()[2].clone();
        assert!(
            status.as_ref().is_none_or(|s| s.role != "leader"),
            "the intruder leads: {status:?}"
        );
    }
    stop_rejected_node(intruder, &log_path);

    // The real node 3 comes back and catches up; every key is intact.
    cluster.spawn(2);
    let leader = cluster.wait_for_leader();
    let commit = cluster.statuses()[leader].as_ref().unwrap().commit;
    cluster.wait_applied(commit);
    for i in 0..40 {
        let value = clerk.get(format!("k{i}")).unwrap();
        assert_eq!(
            value.as_deref(),
            Some(format!("value-{i}").as_bytes()),
            "key k{i}"
        );
    }
}

#[test]
fn kvctl_with_no_server_fails_with_exit_2_once_its_deadline_passes() {
    let addrs: Vec<String> = free_ports(2)
        .into_iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let timeout = Duration::from_millis(700);
    for args in [
        &["get", "k"][..],
        &["put", "k", "v"],
        &["cas", "k", "", "v"],
    ] {
        let finished = kvctl(&addrs, timeout.as_millis() as u64, args);
        assert_op_failed(&finished, &["timed out", "not applied"]);
        assert!(
            finished.elapsed >= timeout,
            "{args:?}: gave up before its deadline"
        );
        assert!(
            finished.elapsed < timeout + Duration::from_secs(10),
            "{args:?}: {finished:?}"
        );
    }
    let status = kvctl(&addrs, 700, &["status"]);
    assert_eq!(
        status.code(),
        Some(1),
        "status without a leader exits 1: {status:?}"
    );
    assert_eq!(status.stdout.lines().count(), 2, "{status:?}");
    assert!(
        status
            .stdout
            .lines()
            .all(|l| l.contains("role=unreachable")),
        "{status:?}"
    );
}

#[test]
fn kvctl_against_a_frozen_server_times_out_and_reports_an_unknown_write_outcome() {
    let mut cluster = ProcessCluster::start(1, FAST_TOML);
    cluster.wait_for_leader();
    cluster.pause(0);
    let timeout = Duration::from_millis(1000);
    let ms = timeout.as_millis() as u64;
    let put = kvctl(&cluster.addrs, ms, &["put", "k", "v"]);
    assert_op_failed(&put, &["timed out", "outcome unknown"]);
    assert!(
        put.elapsed >= timeout,
        "gave up before its deadline: {put:?}"
    );
    let get = kvctl(&cluster.addrs, ms, &["get", "k"]);
    assert_op_failed(&get, &["timed out", "not applied"]);
    cluster.resume(0);
    // The put may or may not have happened; either way the node serves again.
    let clerk = cluster.clerk(HANG);
    let value = clerk.get("k").unwrap();
    assert!(
        value.is_none() || value.as_deref() == Some(&b"v"[..]),
        "{value:?}"
    );
}
