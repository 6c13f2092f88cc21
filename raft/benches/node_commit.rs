//! Entries committed per second by three real `RaftNode`s on loopback (rpc-framework,
//! `DiskStorage` with fsync ON), with 1 and 64 concurrent proposers of 256 B entries, and
//! the leader's fsyncs per committed entry (group commit at work).
//!
//! `cargo bench -p raft --bench node_commit` (env `NODE_BENCH_SECS`, default 5;
//! `NODE_BENCH_DIR` for the data directory's parent, default the system temp dir).
//! A measurement, not a test: it asserts nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use proto::raft::RaftServiceServer;
use raft::node::{
    ApplyMsg, NodeConfig, RaftNode, RaftServiceImpl, RpcTransport, RpcTransportConfig,
};
use raft::storage::{DiskOptions, DiskStorage};
use raft::{Config, LogIndex, NodeId, Term};
use rpc_framework::{Provider, ProviderConfig, ProviderHandle};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLUSTER: &str = "node-bench";

/// The leader's applied index, with a condvar proposers wait on.
#[derive(Default)]
struct Applied {
    index: Mutex<(LogIndex, Term)>,
    changed: Condvar,
}

struct Node {
    node: Arc<RaftNode>,
    _provider: ProviderHandle,
    applied: Arc<Applied>,
}

fn start_cluster(dir: &std::path::Path) -> Vec<Node> {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let addrs: BTreeMap<NodeId, String> = ids
        .iter()
        .zip(&listeners)
        .map(|(id, l)| (*id, l.local_addr().unwrap().to_string()))
        .collect();
    drop(listeners);
    ids.iter()
        .map(|&id| {
            let storage = DiskStorage::open(
                &dir.join(format!("node-{id}")),
                DiskOptions::new(CLUSTER, id),
            )
            .unwrap();
            let config = NodeConfig::new(Config {
                seed: id.0,
                ..Config::new(id, ids.clone())
            });
            let transport = RpcTransport::new(RpcTransportConfig::new(CLUSTER, id), &addrs);
            let (tx, rx) = crossbeam_channel::bounded(4096);
            let node = Arc::new(
                RaftNode::new(config, Box::new(storage), Arc::new(transport), tx).unwrap(),
            );
            let applied = Arc::new(Applied::default());
            let a = applied.clone();
            std::thread::spawn(move || {
                for msg in rx {
                    let at = match msg {
                        ApplyMsg::Command { index, term, .. }
                        | ApplyMsg::Noop { index, term }
                        | ApplyMsg::Membership { index, term, .. } => (index, term),
                        ApplyMsg::Snapshot { index, term, .. } => (index, term),
                        ApplyMsg::RoleChange { .. } => continue,
                    };
                    *a.index.lock() = at;
                    a.changed.notify_all();
                }
            });
            let mut provider = Provider::new(ProviderConfig::default());
            provider.register_inline(RaftServiceServer::new(RaftServiceImpl::new(
                node.clone(),
                CLUSTER,
                ids.clone(),
            )));
            let provider = provider.serve(addrs[&id].parse().unwrap()).unwrap();
            Node {
                node,
                _provider: provider,
                applied,
            }
        })
        .collect()
}

fn leader(nodes: &[Node]) -> &Node {
    loop {
        if let Some(n) = nodes.iter().find(|n| n.node.state().is_leader) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn run(nodes: &[Node], proposers: usize, secs: u64) {
    let leader = leader(nodes);
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let (syncs0, entries0) = leader.node.persist_counters();
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..proposers {
            let (stop, committed) = (stop.clone(), committed.clone());
            s.spawn(move || {
                let data = Bytes::from(vec![7u8; 256]);
                while !stop.load(Ordering::Relaxed) {
                    let Ok((index, term)) = leader.node.start(data.clone()) else {
                        return;
                    };
                    let mut at = leader.applied.index.lock();
                    while at.0 < index && !stop.load(Ordering::Relaxed) {
                        leader
                            .applied
                            .changed
                            .wait_for(&mut at, Duration::from_millis(50));
                    }
                    if at.0 >= index && at.1 >= term {
                        committed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = start.elapsed().as_secs_f64();
    let (syncs1, entries1) = leader.node.persist_counters();
    let n = committed.load(Ordering::Relaxed);
    println!(
        "proposers={proposers:>3}  committed/s={:>8.0}  leader fsyncs={}  entries persisted={}  fsyncs/committed entry={:.4}",
        n as f64 / elapsed,
        syncs1 - syncs0,
        entries1 - entries0,
        (syncs1 - syncs0) as f64 / n.max(1) as f64
    );
}

fn main() {
    let secs = std::env::var("NODE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let parent = std::env::var("NODE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let dir = tempfile::tempdir_in(parent).unwrap();
    let nodes = start_cluster(dir.path());
    for proposers in [1, 64] {
        run(&nodes, proposers, secs);
    }
    for n in &nodes {
        n.node.shutdown();
    }
}
