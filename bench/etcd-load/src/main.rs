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
use clerk::loadgen::{run_load, LoadArgs};
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
    /// Serializable (local, possibly stale) reads instead of linearizable ones.
    #[arg(long)]
    serializable: bool,
    /// Threads of the tokio runtime that drives the connections.
    #[arg(long, default_value_t = 2)]
    io_threads: usize,
    /// The load-shape flags shared with `kvctl bench`.
    #[command(flatten)]
    load: LoadArgs,
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
    let connections = args.load.connection_count();
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
    let quiet = args.load.quiet;
    let report = run_load(&targets, &args.load.spec(), &mut |p| {
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
    if args.load.json {
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
