//! In-process test clusters on loopback: real Providers, real RPC, real disk (temp dirs).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use clerk::{Clerk, ClerkConfig};
use kvserver::config::ClusterConfig;
use kvserver::launch::{launch, RunningNode};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A cluster of `n` nodes in this process.
pub struct TestCluster {
    pub config: ClusterConfig,
    pub dirs: Vec<PathBuf>,
    pub nodes: Vec<Option<RunningNode>>,
    _tmp: tempfile::TempDir,
}

/// `n` distinct free loopback ports.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

impl TestCluster {
    /// Starts `n` nodes; `extra` is appended to the TOML (e.g. a [snapshot] section).
    pub fn start(n: usize, extra: &str) -> TestCluster {
        let ports = free_ports(n);
        let mut toml = String::from("cluster_id = \"test\"\n");
        for (i, port) in ports.iter().enumerate() {
            toml.push_str(&format!(
                "[[nodes]]\nid = {}\naddr = \"127.0.0.1:{port}\"\n",
                i + 1
            ));
        }
        toml.push_str(extra);
        let config = ClusterConfig::parse(&toml).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (1..=n)
            .map(|i| tmp.path().join(format!("node-{i}")))
            .collect();
        let mut cluster = TestCluster {
            config,
            dirs,
            nodes: (0..n).map(|_| None).collect(),
            _tmp: tmp,
        };
        for i in 0..n {
            cluster.start_node(i);
        }
        cluster
    }

    pub fn start_node(&mut self, i: usize) {
        let id = (i + 1) as u64;
        self.nodes[i] = Some(launch(&self.config, id, &self.dirs[i]).unwrap());
    }

    pub fn stop_node(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.shutdown();
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.config.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    pub fn clerk(&self) -> Clerk {
        Clerk::new(ClerkConfig::new(self.endpoints())).unwrap()
    }

    /// Waits (polling real time, bounded) until some node reports itself leader.
    pub fn wait_for_leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            for (i, n) in self.nodes.iter().enumerate() {
                if let Some(n) = n {
                    if n.node.state().is_leader {
                        return i;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader elected within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
    }
}
