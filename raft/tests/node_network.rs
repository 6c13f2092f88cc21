//! Real network: three `RaftNode`s on loopback, each behind its own rpc-framework Provider,
//! talking through `RpcTransport`, persisting to `DiskStorage` in temp dirs (fsync on).
//!
//! Waits are bounded polls on a condition (generous deadlines, clear failure messages);
//! nothing asserts on how long something took.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use crossbeam_channel::Receiver;
use parking_lot::Mutex;
use proto::raft::RaftServiceServer;
use raft::node::{
    ApplyMsg, NodeConfig, NodeError, RaftNode, RaftServiceImpl, RpcTransport, RpcTransportConfig,
};
use raft::storage::{DiskOptions, DiskStorage};
use raft::transport::Transport;
use raft::{Config, LogIndex, Message, NodeId};
use rpc_framework::{Provider, ProviderConfig, ProviderHandle};
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const CLUSTER: &str = "node-network-test";

/// Links that are cut: (from, to) pairs whose messages are dropped.
#[derive(Default)]
struct Cuts(Mutex<BTreeSet<(NodeId, NodeId)>>);

impl Cuts {
    fn isolate(&self, node: NodeId, all: &[NodeId]) {
        let mut cuts = self.0.lock();
        for &other in all {
            if other != node {
                cuts.insert((node, other));
                cuts.insert((other, node));
            }
        }
    }
    fn heal(&self) {
        self.0.lock().clear();
    }
}

/// The real RPC transport, minus the cut links.
struct CuttableTransport {
    inner: RpcTransport,
    cuts: Arc<Cuts>,
}

impl Transport for CuttableTransport {
    fn send(&self, messages: Vec<Message>) {
        let cuts = self.cuts.0.lock();
        let kept: Vec<Message> = messages
            .into_iter()
            .filter(|m| !cuts.contains(&(m.from, m.to)))
            .collect();
        drop(cuts);
        if !kept.is_empty() {
            self.inner.send(kept);
        }
    }
    fn shutdown(&self) {
        self.inner.shutdown();
    }
}

/// What one node's application saw: the state machine is "the list of applied commands".
#[derive(Default)]
struct AppState {
    applied: Vec<(LogIndex, Bytes)>,
    last_index: LogIndex,
    snapshots_installed: usize,
}

struct TestNode {
    node: Arc<RaftNode>,
    provider: Option<ProviderHandle>,
    applier: Option<JoinHandle<()>>,
    app: Arc<Mutex<AppState>>,
}

struct Cluster {
    ids: Vec<NodeId>,
    addrs: BTreeMap<NodeId, String>,
    dirs: BTreeMap<NodeId, PathBuf>,
    cuts: Arc<Cuts>,
    nodes: BTreeMap<NodeId, TestNode>,
    _tmp: tempfile::TempDir,
}

fn encode_snapshot(applied: &[(LogIndex, Bytes)]) -> Bytes {
    let mut out = Vec::new();
    for (index, data) in applied {
        out.extend_from_slice(&index.0.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out.into()
}

fn decode_snapshot(mut data: &[u8]) -> Vec<(LogIndex, Bytes)> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let index = u64::from_le_bytes(data[..8].try_into().unwrap());
        let len = u32::from_le_bytes(data[8..12].try_into().unwrap()) as usize;
        out.push((LogIndex(index), Bytes::copy_from_slice(&data[12..12 + len])));
        data = &data[12 + len..];
    }
    out
}

fn run_app(rx: Receiver<ApplyMsg>, app: Arc<Mutex<AppState>>) {
    for msg in rx {
        let mut a = app.lock();
        match msg {
            ApplyMsg::Command { index, data, .. } => {
                assert_eq!(index, a.last_index.next(), "applied out of order");
                a.applied.push((index, data));
                a.last_index = index;
            }
            ApplyMsg::Noop { index, .. } | ApplyMsg::Membership { index, .. } => {
                assert_eq!(index, a.last_index.next(), "applied out of order");
                a.last_index = index;
            }
            ApplyMsg::Snapshot { index, data, .. } => {
                let data = data
                    .into_bytes()
                    .expect("the snapshot file reads back whole");
                a.applied = decode_snapshot(&data);
                a.last_index = index;
                a.snapshots_installed += 1;
            }
            ApplyMsg::RoleChange { .. } => {}
        }
    }
}

impl Cluster {
    fn new(n: u64) -> Cluster {
        let listeners: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let addrs = ids
            .iter()
            .zip(&listeners)
            .map(|(id, l)| (*id, l.local_addr().unwrap().to_string()))
            .collect();
        drop(listeners);
        let tmp = tempfile::tempdir().unwrap();
        let dirs = ids
            .iter()
            .map(|id| (*id, tmp.path().join(format!("node-{id}"))))
            .collect();
        let mut c = Cluster {
            ids: ids.clone(),
            addrs,
            dirs,
            cuts: Arc::default(),
            nodes: BTreeMap::new(),
            _tmp: tmp,
        };
        for id in ids {
            c.start(id);
        }
        c
    }

    fn start(&mut self, id: NodeId) {
        let storage = DiskStorage::open(&self.dirs[&id], DiskOptions::new(CLUSTER, id)).unwrap();
        let raft = Config {
            snapshot_chunk_bytes: 4096,
            seed: id.0 * 7919,
            ..Config::new(id, self.ids.clone())
        };
        let mut config = NodeConfig::new(raft);
        config.tick_interval = Duration::from_millis(5);
        config.raft.election_timeout_ticks = 40;
        config.raft.heartbeat_interval_ticks = 4;
        let transport = CuttableTransport {
            inner: RpcTransport::new(RpcTransportConfig::new(CLUSTER, id), &self.addrs),
            cuts: self.cuts.clone(),
        };
        let (tx, rx) = crossbeam_channel::bounded(1024);
        let node =
            Arc::new(RaftNode::new(config, Box::new(storage), Arc::new(transport), tx).unwrap());
        let app = Arc::new(Mutex::new(AppState::default()));
        let app2 = app.clone();
        let applier = std::thread::spawn(move || run_app(rx, app2));
        let mut provider = Provider::new(ProviderConfig::default());
        provider.register_inline(RaftServiceServer::new(RaftServiceImpl::new(
            node.clone(),
            CLUSTER,
            self.ids.clone(),
        )));
        let provider = provider.serve(self.addrs[&id].parse().unwrap()).unwrap();
        self.nodes.insert(
            id,
            TestNode {
                node,
                provider: Some(provider),
                applier: Some(applier),
                app,
            },
        );
    }

    fn stop(&mut self, id: NodeId) {
        let mut n = self.nodes.remove(&id).unwrap();
        n.provider.take().unwrap().shutdown();
        n.node.shutdown();
        drop(n.node);
        n.applier.take().unwrap().join().unwrap();
    }

    fn node(&self, id: NodeId) -> &RaftNode {
        &self.nodes[&id].node
    }

    /// Polls until `f` holds, or fails with `what` after a generous deadline.
    fn wait_until(&self, what: &str, mut f: impl FnMut(&Cluster) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f(self) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The single leader among `among` (waits for one).
    fn leader(&self, among: &[NodeId]) -> NodeId {
        let mut found = NodeId(0);
        self.wait_until("a leader is elected", |c| {
            let leaders: Vec<NodeId> = among
                .iter()
                .copied()
                .filter(|id| c.node(*id).state().is_leader)
                .collect();
            if let [one] = leaders[..] {
                found = one;
                true
            } else {
                false
            }
        });
        found
    }

    /// Proposes `data` on whichever node of `among` leads, retrying through elections, and
    /// returns its index.
    fn propose(&self, among: &[NodeId], data: &str) -> LogIndex {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let leader = self.leader(among);
            match self
                .node(leader)
                .start(Bytes::copy_from_slice(data.as_bytes()))
            {
                Ok((index, _)) => return index,
                Err(NodeError::NotLeader { .. }) | Err(NodeError::Busy) => {}
                Err(e) => panic!("proposal failed: {e}"),
            }
            assert!(Instant::now() < deadline, "could not propose {data}");
        }
    }

    fn wait_applied(&self, ids: &[NodeId], data: &str, index: LogIndex) {
        for id in ids {
            self.wait_until(&format!("node {id} applies {data:?} at {index}"), |c| {
                let a = c.nodes[id].app.lock();
                a.last_index >= index
            });
            let a = self.nodes[id].app.lock();
            let at = a
                .applied
                .iter()
                .find(|(i, _)| *i == index)
                .map(|(_, d)| d.clone());
            assert_eq!(
                at.as_deref(),
                Some(data.as_bytes()),
                "node {id} applied something else at {index}"
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id);
        }
    }
}

#[test]
fn three_nodes_elect_replicate_and_restart_without_losing_committed_entries() {
    let mut c = Cluster::new(3);
    let all = c.ids.clone();
    let mut committed = Vec::new();
    for i in 0..20 {
        let data = format!("cmd-{i}");
        let index = c.propose(&all, &data);
        c.wait_applied(&all, &data, index);
        committed.push((index, data));
    }
    // Stop a follower, keep writing with the other two, restart it from its directory.
    let leader = c.leader(&all);
    let follower = *all.iter().find(|id| **id != leader).unwrap();
    c.stop(follower);
    let alive: Vec<NodeId> = all.iter().copied().filter(|id| *id != follower).collect();
    for i in 20..30 {
        let data = format!("cmd-{i}");
        let index = c.propose(&alive, &data);
        c.wait_applied(&alive, &data, index);
        committed.push((index, data));
    }
    c.start(follower);
    // Then restart every node: nothing committed may be lost.
    for id in all.clone() {
        c.stop(id);
    }
    for id in all.clone() {
        c.start(id);
    }
    let index = c.propose(&all, "after-restart");
    c.wait_applied(&all, "after-restart", index);
    for (index, data) in &committed {
        c.wait_applied(&all, data, *index);
    }
}

#[test]
fn a_partitioned_leader_steps_down_and_the_majority_elects_another() {
    let c = Cluster::new(3);
    let all = c.ids.clone();
    let index = c.propose(&all, "before");
    c.wait_applied(&all, "before", index);
    let old = c.leader(&all);
    c.cuts.isolate(old, &all);
    // CheckQuorum: the isolated leader must stop believing it leads.
    c.wait_until("the isolated leader steps down", |c| {
        !c.node(old).state().is_leader
    });
    let rest: Vec<NodeId> = all.iter().copied().filter(|id| *id != old).collect();
    let new = c.leader(&rest);
    assert_ne!(new, old);
    let index = c.propose(&rest, "during");
    c.wait_applied(&rest, "during", index);
    assert!(c.node(new).state().term > c.node(old).state().term || !c.node(old).state().is_leader);
    c.cuts.heal();
    c.wait_applied(&all, "during", index);
}

#[test]
fn a_lagging_node_catches_up_by_install_snapshot_over_the_wire() {
    let mut c = Cluster::new(3);
    let all = c.ids.clone();
    let index = c.propose(&all, "first");
    c.wait_applied(&all, "first", index);
    let leader = c.leader(&all);
    let lagging = *all.iter().find(|id| **id != leader).unwrap();
    c.stop(lagging);
    let alive: Vec<NodeId> = all.iter().copied().filter(|id| *id != lagging).collect();
    let mut last = (LogIndex(0), String::new());
    for i in 0..200 {
        let data = format!("bulk-{i:04}-{}", "x".repeat(100));
        last = (c.propose(&alive, &data), data);
    }
    c.wait_applied(&alive, &last.1, last.0);
    // Every live node snapshots its applied state and compacts its log.
    for id in &alive {
        let (index, data) = {
            let a = c.nodes[id].app.lock();
            (a.last_index, encode_snapshot(&a.applied))
        };
        c.node(*id).snapshot(index, data);
        c.wait_until("the snapshot is taken", |c| {
            c.node(*id).status().snapshot_index >= index
        });
    }
    c.start(lagging);
    c.wait_applied(&[lagging], &last.1, last.0);
    let a = c.nodes[&lagging].app.lock();
    assert!(
        a.snapshots_installed >= 1,
        "the lagging node must have installed a snapshot"
    );
    assert!(a.applied.iter().any(|(_, d)| d.as_ref() == b"first"));
}
