//! [`ProcessCluster`]: N real `kvserver` processes on loopback, each with its own data
//! directory and an append-only log file (stderr of every incarnation), plus the fault
//! actions of a nemesis: SIGKILL, restart, SIGSTOP/SIGCONT, SIGTERM.
//!
//! Node `i` (0-based) has id `i + 1`. Dropping the cluster SIGKILLs and reaps every node;
//! when the test is panicking it prints the tail of every node's log and keeps the
//! directory for inspection.

use super::ports::free_ports;
use super::process::{kvserver_command, send_signal, wait_exit, wait_until, Signal, HANG};
use clerk::{Clerk, ClerkConfig, StatusResponse};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

/// Raft timing used by the process tests: 10 ms ticks, 50 ms heartbeats, 300-600 ms
/// election timeouts; small WAL segments and snapshot threshold so that rotation,
/// snapshots and snapshot transfer happen within a short run.
pub const FAST_TOML: &str = "[raft]\ntick_ms = 10\nheartbeat_ticks = 5\nelection_ticks = 30\n\
[storage]\nsegment_bytes = 65536\n[snapshot]\nthreshold_bytes = 65536\n";

/// A cluster configuration file's text.
pub fn config_toml(cluster_id: &str, addrs: &[String], extra: &str) -> String {
    let mut toml = format!("cluster_id = \"{cluster_id}\"\n");
    for (i, addr) in addrs.iter().enumerate() {
        toml.push_str(&format!("[[nodes]]\nid = {}\naddr = \"{addr}\"\n", i + 1));
    }
    toml.push_str(extra);
    toml
}

/// One node's process and files.
#[derive(Debug)]
struct Node {
    child: Option<Child>,
    paused: bool,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// Length of the log when the current incarnation started.
    log_offset: usize,
}

/// N `kvserver` processes sharing one configuration file.
#[derive(Debug)]
pub struct ProcessCluster {
    tmp: Option<tempfile::TempDir>,
    root: PathBuf,
    /// The configuration file every node reads.
    pub config_path: PathBuf,
    /// `host:port` of node `i` at index `i`.
    pub addrs: Vec<String>,
    nodes: Vec<Node>,
}

impl ProcessCluster {
    /// A configured cluster of `n` nodes (cluster id `e2e`), none started yet. `extra` is
    /// appended to the TOML.
    pub fn new(n: usize, extra: &str) -> ProcessCluster {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let addrs: Vec<String> = free_ports(n)
            .into_iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let config_path = root.join("cluster.toml");
        std::fs::write(&config_path, config_toml("e2e", &addrs, extra)).unwrap();
        let nodes = (1..=n)
            .map(|id| Node {
                child: None,
                paused: false,
                data_dir: root.join(format!("node-{id}")),
                log_path: root.join(format!("node-{id}.log")),
                log_offset: 0,
            })
            .collect();
        ProcessCluster {
            tmp: Some(tmp),
            root,
            config_path,
            addrs,
            nodes,
        }
    }

    /// [`ProcessCluster::new`], then starts every node.
    pub fn start(n: usize, extra: &str) -> ProcessCluster {
        let mut cluster = ProcessCluster::new(n, extra);
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster
    }

    /// The temporary directory holding configs, data and logs.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> &Path {
        &self.nodes[i].data_dir
    }

    /// Everything node `i` has logged, over all its incarnations.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log_path).unwrap_or_default()
    }

    /// Starts node `i` from its data directory (appending to its log).
    ///
    /// # Panics
    /// If it is already running.
    pub fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none(), "node {} is already running", i + 1);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .unwrap();
        node.log_offset = log.metadata().unwrap().len() as usize;
        let mut command = kvserver_command();
        if !node.data_dir.exists() {
            command.arg("--bootstrap"); // the node's first start: the cluster's bootstrap
        }
        let child = command
            .arg("--config")
            .arg(&self.config_path)
            .args(["--id", &(i + 1).to_string()])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        node.child = Some(child);
        node.paused = false;
    }

    /// Whether node `i` has a process (running or paused).
    pub fn is_started(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Whether node `i` is paused.
    pub fn is_paused(&self, i: usize) -> bool {
        self.nodes[i].paused
    }

    /// Node `i`'s process id.
    pub fn pid(&self, i: usize) -> u32 {
        self.nodes[i].child.as_ref().expect("node not running").id()
    }

    /// SIGKILLs node `i` and reaps it (no-op if it is not running).
    pub fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
    }

    /// Freezes node `i` with SIGSTOP.
    pub fn pause(&mut self, i: usize) {
        send_signal(self.pid(i), Signal::Stop);
        self.nodes[i].paused = true;
    }

    /// Unfreezes node `i` with SIGCONT.
    pub fn resume(&mut self, i: usize) {
        send_signal(self.pid(i), Signal::Cont);
        self.nodes[i].paused = false;
    }

    /// What node `i` has logged since it was last started.
    pub fn incarnation_log(&self, i: usize) -> String {
        let log = self.log(i);
        log.get(self.nodes[i].log_offset..)
            .unwrap_or_default()
            .to_string()
    }

    /// Sends `signal` (SIGTERM or SIGINT) to node `i` and waits for it to exit. First waits
    /// until the node has installed its signal handlers (it logs WAL recovery after that):
    /// a signal that arrives before, right after exec, takes the default action.
    ///
    /// # Panics
    /// If it does not get that far or does not exit within [`HANG`].
    pub fn stop_with(&mut self, i: usize, signal: Signal) -> ExitStatus {
        if self.nodes[i].paused {
            self.resume(i);
        }
        wait_until(HANG, &format!("node {} to start", i + 1), || {
            self.incarnation_log(i)
                .contains("write-ahead log recovered")
        });
        send_signal(self.pid(i), signal);
        let node = &mut self.nodes[i];
        let mut child = node.child.take().unwrap();
        match wait_exit(&mut child, HANG) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node {} ignored {signal:?} for {HANG:?}", i + 1);
            }
        }
    }

    /// If node `i`'s process has exited on its own, reaps it and returns its status.
    pub fn exited(&mut self, i: usize) -> Option<ExitStatus> {
        let node = &mut self.nodes[i];
        let status = node.child.as_mut()?.try_wait().unwrap()?;
        node.child = None;
        node.paused = false;
        Some(status)
    }

    /// A clerk for the whole cluster: 1 s attempts, `op_timeout` overall.
    pub fn clerk(&self, op_timeout: Duration) -> Clerk {
        let mut config = ClerkConfig::new(self.addrs.clone());
        config.op_timeout = Some(op_timeout);
        config.attempt_timeout = Duration::from_secs(1);
        Clerk::new(config).unwrap()
    }

    /// Every node's status (`None` for nodes that do not answer within 500 ms).
    pub fn statuses(&self) -> Vec<Option<StatusResponse>> {
        let mut config = ClerkConfig::new(self.addrs.clone());
        config.attempt_timeout = Duration::from_millis(500);
        let clerk = Clerk::new(config).unwrap();
        clerk
            .status_all()
            .into_iter()
            .map(|(_, status)| status.ok())
            .collect()
    }

    /// The index of a node that reports itself leader, if any answers so.
    pub fn leader(&self) -> Option<usize> {
        self.statuses()
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.role == "leader"))
    }

    /// Waits (bounded) until some node reports itself leader; returns its index.
    pub fn wait_for_leader(&self) -> usize {
        let mut leader = None;
        wait_until(HANG, "a leader", || {
            leader = self.leader();
            leader.is_some()
        });
        leader.unwrap()
    }

    /// Waits (bounded) until every running node has applied at least `index`.
    pub fn wait_applied(&self, index: u64) {
        wait_until(HANG, &format!("every node to apply index {index}"), || {
            self.statuses()
                .iter()
                .zip(&self.nodes)
                .all(|(s, n)| n.child.is_none() || s.as_ref().is_some_and(|s| s.applied >= index))
        });
    }

    /// The last `lines` lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let log = self.log(i);
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            for i in 0..self.nodes.len() {
                eprintln!(
                    "---- node {} log (tail) ----\n{}",
                    i + 1,
                    self.log_tail(i, 40)
                );
            }
            if let Some(tmp) = self.tmp.take() {
                eprintln!("---- cluster files kept in {}", tmp.keep().display());
            }
        }
    }
}
