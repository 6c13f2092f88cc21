//! In-process test clusters on loopback: real Providers, real RPC, real disk (temp dirs),
//! with 6.824-style fault injection: a switchboard for Raft traffic ([`net`]) and per-clerk
//! TCP proxies ([`proxy`]) for client traffic.
//!
//! Node indexes are 0-based (`NodeId(i + 1)`). Every wait here is a bounded poll for a
//! condition, failing with a message that says what did not happen.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

pub mod appends;
pub mod generic;
pub mod history;
pub mod net;
pub mod proxy;
pub mod rng;

use clerk::{Clerk, ClerkConfig};
use kvserver::config::ClusterConfig;
use kvserver::launch::{launch_with, LaunchError, LaunchOptions, RunningNode};
use net::NetControl;
use parking_lot::Mutex;
use proxy::{ClientNet, Proxy};
use raft::LogIndex;
use rng::Rng;
use rpc_framework::ChannelConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Raft timing for the fault tests: 40 ms heartbeats, elections after 200..400 ms.
pub const FAST_RAFT: &str = "[raft]\ntick_ms = 10\nheartbeat_ticks = 4\nelection_ticks = 20\n";
/// The base election timeout of [`FAST_RAFT`].
pub const ELECTION_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a test clerk keeps retrying one operation before reporting it failed (its
/// outcome then is unknown for writes). Generous: only a stuck cluster reaches it.
pub const OP_TIMEOUT: Duration = Duration::from_secs(20);
/// Deadline of the bounded waits for something that must happen eventually.
pub const EVENTUALLY: Duration = Duration::from_secs(60);

/// Polls `cond` every few milliseconds until it holds; panics with `what()` after `within`.
pub fn wait_until(within: Duration, what: impl Fn() -> String, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "not within {within:?}: {}",
            what()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Logs to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=raft=info`).
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A cluster of `n` nodes in this process.
pub struct TestCluster {
    pub config: ClusterConfig,
    pub dirs: Vec<PathBuf>,
    pub nodes: Vec<Option<RunningNode>>,
    /// Raft traffic faults.
    pub net: Arc<NetControl>,
    /// Clerk traffic faults (shared by every proxy of this cluster).
    pub client_net: Arc<ClientNet>,
    pub seed: u64,
    rng: Mutex<Rng>,
    _tmp: tempfile::TempDir,
}

// Ports below the ephemeral range: a port the kernel hands out for binding to 0 can be
// taken by any outgoing connection before the node binds it.
#[path = "../e2e/ports.rs"]
mod ports;
use ports::free_ports;

fn cluster_config(n: usize, extra: &str) -> ClusterConfig {
    let ports = free_ports(n);
    let mut toml = String::from("cluster_id = \"test\"\n");
    for (i, port) in ports.iter().enumerate() {
        toml.push_str(&format!(
            "[[nodes]]\nid = {}\naddr = \"127.0.0.1:{port}\"\n",
            i + 1
        ));
    }
    toml.push_str(extra);
    ClusterConfig::parse(&toml).unwrap()
}

impl TestCluster {
    /// Starts `n` nodes; `extra` is appended to the TOML (e.g. a [snapshot] section).
    pub fn start(n: usize, extra: &str) -> TestCluster {
        init_tracing();
        let seed = rng::run_seed();
        eprintln!("test cluster of {n} nodes, RAFTKV_KV_SEED={seed}");
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (1..=n)
            .map(|i| tmp.path().join(format!("node-{i}")))
            .collect();
        let mut rng = Rng::new(seed);
        let mut cluster = TestCluster {
            config: cluster_config(n, extra),
            dirs,
            nodes: (0..n).map(|_| None).collect(),
            net: NetControl::new(n, rng.next_u64()),
            client_net: Arc::new(ClientNet::default()),
            seed,
            rng: Mutex::new(rng),
            _tmp: tmp,
        };
        for i in 0..n {
            cluster.start_node(i);
        }
        cluster
    }

    pub fn n(&self) -> usize {
        self.nodes.len()
    }

    /// Every node index.
    pub fn all(&self) -> Vec<usize> {
        (0..self.n()).collect()
    }

    /// A child PRNG of this cluster's seed.
    pub fn fork_rng(&self) -> Rng {
        self.rng.lock().fork()
    }

    /// Starts node `i` from its data directory. Retries a port that is briefly taken
    /// (another socket may hold it right after a restart).
    pub fn start_node(&mut self, i: usize) {
        let id = (i + 1) as u64;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let options = LaunchOptions {
                // A node's first start is the cluster's bootstrap; later starts need its data.
                bootstrap: !self.dirs[i].exists(),
                wrap_transport: Some(self.net.wrapper()),
            };
            match launch_with(&self.config, id, &self.dirs[i], options) {
                Ok(node) => {
                    self.nodes[i] = Some(node);
                    return;
                }
                Err(LaunchError::Bind { addr, source }) if Instant::now() < deadline => {
                    eprintln!("node {id}: cannot bind {addr} yet ({source}); retrying");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("node {id} did not start: {e}"),
            }
        }
    }

    /// Shuts node `i` down (its data directory stays: `start_node` restarts it).
    pub fn stop_node(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown();
        }
    }

    /// The servers' own addresses.
    pub fn endpoints(&self) -> Vec<String> {
        self.config.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// A clerk talking to the servers directly (no proxies, no faults).
    pub fn clerk(&self) -> Clerk {
        Clerk::new(ClerkConfig::new(self.endpoints())).unwrap()
    }

    /// A clerk behind its own proxies, able to reach only the servers in `to` (6.824's
    /// `makeClient`). Its traffic is unreliable while the cluster's client net is.
    pub fn make_clerk(&self, to: &[usize]) -> TestClerk {
        self.make_clerk_with_timeout(to, OP_TIMEOUT)
    }

    /// [`TestCluster::make_clerk`] whose operations give up after `op_timeout` (writes then
    /// have an unknown outcome).
    pub fn make_clerk_with_timeout(&self, to: &[usize], op_timeout: Duration) -> TestClerk {
        let mut rng = self.fork_rng();
        let proxies: Vec<Proxy> = self
            .endpoints()
            .iter()
            .map(|e| {
                let target: SocketAddr = e.parse().unwrap();
                Proxy::start(target, self.client_net.clone(), rng.next_u64())
            })
            .collect();
        let endpoints = proxies.iter().map(|p| p.addr().to_string()).collect();
        let mut config = test_clerk_config(endpoints, op_timeout);
        // Half the clerks read through the leader lease, so that both read paths face
        // the partitions and every history check.
        if rng.next_u64() % 2 == 1 {
            config.read_mode = clerk::ReadMode::Lease;
        }
        let clerk = Clerk::new(config).unwrap();
        let test_clerk = TestClerk { clerk, proxies };
        test_clerk.connect(to);
        test_clerk
    }

    /// Makes Raft and clerk traffic unreliable (or reliable again).
    pub fn set_unreliable(&self, on: bool) {
        self.net.set_unreliable(on);
        self.client_net.unreliable.store(on, Ordering::SeqCst);
    }

    /// Splits the servers' Raft traffic into `groups`.
    pub fn partition(&self, groups: &[&[usize]]) {
        self.net.partition(groups);
    }

    /// Reconnects every server.
    pub fn heal(&self) {
        self.net.heal();
    }

    /// Node `i`, which must be running.
    pub fn node(&self, i: usize) -> &RunningNode {
        self.nodes[i]
            .as_ref()
            .unwrap_or_else(|| panic!("node {i} is not running"))
    }

    /// The largest Raft log size (bytes since the last snapshot) over the running nodes.
    pub fn max_log_bytes(&self) -> u64 {
        self.nodes
            .iter()
            .flatten()
            .map(|n| n.node.log_bytes())
            .max()
            .unwrap_or(0)
    }

    /// The latest snapshot index of each running node.
    pub fn snapshot_indexes(&self) -> Vec<LogIndex> {
        self.nodes
            .iter()
            .flatten()
            .map(|n| n.node.status().snapshot_index)
            .collect()
    }

    /// The index of a node that reports itself leader, if any.
    pub fn leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.node.state().is_leader))
    }

    /// Waits (polling real time, bounded) until some node reports itself leader.
    pub fn wait_for_leader(&self, within: Duration) -> usize {
        let mut leader = None;
        wait_until(
            within,
            || "no leader elected".into(),
            || {
                leader = self.leader();
                leader.is_some()
            },
        );
        leader.unwrap()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
    }
}

/// Retry pacing for test clerks: short attempts and pauses, so partitions heal fast.
pub fn test_clerk_config(endpoints: Vec<String>, op_timeout: Duration) -> ClerkConfig {
    ClerkConfig {
        op_timeout: Some(op_timeout),
        attempt_timeout: Duration::from_secs(1),
        backoff_min: Duration::from_millis(5),
        backoff_max: Duration::from_millis(100),
        channel: ChannelConfig {
            connect_timeout: Duration::from_secs(1),
            reconnect_backoff_min: Duration::from_millis(5),
            reconnect_backoff_max: Duration::from_millis(100),
            ..ChannelConfig::default()
        },
        ..ClerkConfig::new(endpoints)
    }
}

/// A clerk with its own proxy in front of each server.
pub struct TestClerk {
    /// Private so closures capture the whole `TestClerk` (with its proxies), never just this
    /// field (edition-2021 closures capture disjoint fields).
    clerk: Clerk,
    /// Dropped after the clerk (field order), so its connections close first.
    proxies: Vec<Proxy>,
}

impl TestClerk {
    pub fn clerk(&self) -> &Clerk {
        &self.clerk
    }

    /// Lets this clerk reach exactly the servers in `to` (6.824's `ConnectClient`).
    pub fn connect(&self, to: &[usize]) {
        for (i, p) in self.proxies.iter().enumerate() {
            p.set_blocked(!to.contains(&i));
        }
    }
}
