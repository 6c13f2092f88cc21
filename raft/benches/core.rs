//! Throughput and CPU cost of the Raft core in a 3-node cluster, with batching: each round
//! the leader gets 64 proposals at once, and the round ends when all 64 are committed.
//!
//! - `core/raw_3_nodes_batch_64`: three `RaftCore`s driven by a minimal synchronous loop
//!   (instant delivery, instant persistence): the CPU time of the consensus logic itself.
//!   Time per round / 64 = CPU time per committed entry (single thread).
//! - `core/sim_3_nodes_batch_64`: the same through the seeded simulator (network delays,
//!   async fsync, invariants checked after every event): what a simulated second costs.
//!
//! Run: `cargo bench -p raft --bench core`. Measures only; asserts nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use raft::sim::{cmd, Cluster, FsyncLatency, SimConfig};
use raft::{Config, InitialState, LogIndex, Message, NodeId, RaftCore};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

const BATCH: u64 = 64;
const COMPACT_EVERY: u64 = 4096;

/// Three cores wired together with instant delivery and instant persistence.
struct RawCluster {
    cores: Vec<RaftCore>,
    applied: Vec<LogIndex>,
    compacted: Vec<LogIndex>,
    inbox: VecDeque<Message>,
}

impl RawCluster {
    fn new() -> RawCluster {
        let voters: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let cores = voters
            .iter()
            .map(|id| {
                let mut c = Config::new(*id, voters.clone());
                c.election_timeout_ticks = 10;
                c.heartbeat_interval_ticks = 1;
                RaftCore::new(c, InitialState::default()).unwrap()
            })
            .collect();
        RawCluster {
            cores,
            applied: vec![LogIndex(0); 3],
            compacted: vec![LogIndex(0); 3],
            inbox: VecDeque::new(),
        }
    }

    /// Delivers messages and handles Readies until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.cores.len() {
                while self.cores[i].has_ready() {
                    moved = true;
                    let rd = self.cores[i].ready();
                    self.inbox.extend(rd.messages);
                    self.inbox.extend(rd.messages_after_persist);
                    self.cores[i].on_persist_ready(rd.number);
                    if let Some(s) = rd.apply_snapshot {
                        self.applied[i] = s.index;
                    }
                    if let Some(last) = rd.committed.last() {
                        self.applied[i] = last.index;
                    }
                }
                if self.applied[i].0 >= self.compacted[i].0 + COMPACT_EVERY {
                    self.compacted[i] = self.applied[i];
                    self.cores[i].compact(self.applied[i], 0);
                }
            }
            while let Some(m) = self.inbox.pop_front() {
                moved = true;
                let to = m.to.0 as usize - 1;
                self.cores[to].step(m);
            }
            if !moved {
                return;
            }
        }
    }

    fn elect(&mut self) -> usize {
        loop {
            for c in &mut self.cores {
                c.tick();
            }
            self.pump();
            if let Some(i) = self.cores.iter().position(RaftCore::is_leader) {
                return i;
            }
        }
    }
}

fn raw_rounds(iters: u64) -> Duration {
    let mut cluster = RawCluster::new();
    let leader = cluster.elect();
    let start = Instant::now();
    for round in 0..iters {
        let mut last = LogIndex(0);
        for k in 0..BATCH {
            last = cluster.cores[leader]
                .propose(cmd(round * BATCH + k))
                .unwrap()
                .0;
        }
        while cluster.cores[leader].commit_index() < last {
            cluster.pump();
            cluster.cores[leader].tick();
        }
    }
    start.elapsed()
}

fn sim_rounds(iters: u64) -> Duration {
    let mut config = SimConfig::new(3, 7).scenario("bench");
    config.fsync_latency = FsyncLatency {
        min_us: 100,
        max_us: 500,
    };
    config.snapshot_interval = COMPACT_EVERY;
    let mut c = Cluster::new(config);
    let leader = c.check_one_leader();
    let start = Instant::now();
    for round in 0..iters {
        let mut last = LogIndex(0);
        for k in 0..BATCH {
            last = c
                .start(leader, cmd(round * BATCH + k))
                .expect("stable leader")
                .0;
        }
        c.run_until(10_000, 1, |c| {
            c.status(leader).is_some_and(|s| s.commit >= last)
        });
    }
    start.elapsed()
}

fn bench_core(c: &mut Criterion) {
    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(BATCH));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("raw_3_nodes_batch_64", |b| b.iter_custom(raw_rounds));
    group.sample_size(20);
    group.bench_function("sim_3_nodes_batch_64", |b| b.iter_custom(sim_rounds));
    group.finish();
}

criterion_group!(benches, bench_core);
criterion_main!(benches);
