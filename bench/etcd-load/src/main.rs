//! `etcd-load`: closed-loop load against an etcd cluster with the engine `kvctl bench`
//! uses (`clerk::loadgen`), same flags and same report, so bench/compare-etcd.sh can put
//! the two systems side by side.
//!
//! ```text
//! etcd-load --endpoints http://127.0.0.1:32379,... [--target leader|all] --clients 64
//!           [--connections 8] [--duration-secs 10 | --ops N] [--warmup-secs 1]
//!           [--value-size 256] [--key-size 8] [--keys 10000] [--read-ratio 0.0]
//!           [--serializable] [--prefill] [--seed 1] [--json] [--quiet]
//! ```
//! `--target leader` (the default) sends every connection to the leader, as raftkv's
//! clerk does; `--target all` spreads connections over the members round-robin, as
//! etcd's own benchmark tool does (followers then forward writes to the leader).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod metrics;
mod target;

use clap::{Parser, ValueEnum};
use clerk::loadgen::{run_load, LoadSpec, StopAfter};
use metrics::PersistCounters;
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;
use target::{find_leader, EtcdTarget};

/// Where the connections go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TargetMode {
    /// Every connection to the current leader.
    Leader,
    /// Connection i to member i % members.
    All,
}

/// Closed-loop load generator for etcd (v3 API over gRPC).
#[derive(Debug, Parser)]
#[command(name = "etcd-load", version, about)]
struct Args {
    /// Comma-separated client URLs of the members.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// Which members the connections go to.
    #[arg(long, value_enum, default_value_t = TargetMode::Leader)]
    target: TargetMode,
    /// Concurrent clients (threads), each with one operation in flight.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// gRPC connections the clients share (default: min(clients, 8)).
    #[arg(long)]
    connections: Option<usize>,
    /// Measure for this many seconds (after the warm-up).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Stop after exactly this many measured operations instead.
    #[arg(long)]
    ops: Option<u64>,
    /// Warm-up seconds, not measured.
    #[arg(long, default_value_t = 1)]
    warmup_secs: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Key size in bytes (keys are `k` + zero-padded index).
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    /// Number of distinct keys (each operation picks one uniformly).
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Fraction of reads (0.0 = all writes, 1.0 = all reads).
    #[arg(long, default_value_t = 0.0)]
    read_ratio: f64,
    /// Serializable (local, possibly stale) reads instead of linearizable ones.
    #[arg(long)]
    serializable: bool,
    /// Write every key once before the warm-up (so that reads find values).
    #[arg(long)]
    prefill: bool,
    /// Seed of key choice and value bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Threads of the tokio runtime that drives the connections.
    #[arg(long, default_value_t = 2)]
    io_threads: usize,
    /// Print the final report as one JSON object.
    #[arg(long)]
    json: bool,
    /// No live progress on stderr.
    #[arg(long)]
    quiet: bool,
}

impl Args {
    fn spec(&self) -> LoadSpec {
        LoadSpec {
            clients: self.clients,
            prefill: self.prefill,
            warmup: Duration::from_secs(self.warmup_secs),
            stop_after: match self.ops {
                Some(n) => StopAfter::Ops(n),
                None => StopAfter::Elapsed(Duration::from_secs(self.duration_secs)),
            },
            keys: self.keys,
            key_bytes: self.key_size,
            value_bytes: self.value_size,
            read_ratio: self.read_ratio,
            seed: self.seed,
            progress_every: Duration::from_secs(1),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("etcd-load: {reason}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.io_threads.max(1))
        .thread_name("etcd-load-io")
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let handle = runtime.handle().clone();
    let leader = find_leader(&handle, &args.endpoints)?;
    let connections = args
        .connections
        .unwrap_or(args.clients.min(8))
        .clamp(1, args.clients.max(1));
    let targets = (0..connections)
        .map(|i| {
            let endpoint = match args.target {
                TargetMode::Leader => &leader,
                TargetMode::All => &args.endpoints[i % args.endpoints.len()],
            };
            EtcdTarget::connect(&handle, endpoint, args.serializable)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let before = PersistCounters::fetch(&leader);
    let quiet = args.quiet;
    let report = run_load(&targets, &args.spec(), &mut |p| {
        if !quiet {
            eprintln!("{p}");
        }
    })
    .map_err(|e| e.to_string())?;
    let after = PersistCounters::fetch(&leader);
    let persist = match (&before, &after) {
        (Ok(b), Ok(a)) => a.delta_json(b, &leader),
        _ => json!(null),
    };
    if args.json {
        let mut value = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        if let Some(object) = value.as_object_mut() {
            object.insert("system".into(), json!("etcd"));
            object.insert("leader_persist".into(), persist);
        }
        println!("{value}");
    } else {
        println!("{}", report.to_text());
        println!("leader {leader} persist (prefill and warm-up included): {persist}");
    }
    drop(targets);
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
