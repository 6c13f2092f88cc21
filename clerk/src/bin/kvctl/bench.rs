//! `kvctl bench`: closed-loop load against a raftkv cluster, using the engine in
//! `clerk::loadgen` (the etcd load generator in `bench/etcd-load/` uses the same one).
//! N client threads share M clerks (M connections per server, default min(N, 8)); live
//! progress goes to stderr; the report (text, or one JSON object with `--json`) to stdout.
//! Around the run it reads the leader's persist counters through `Status`, to report
//! fsyncs per committed entry. Reads are linearizable (ReadIndex); the server has no
//! lease reads, so there is no option for them.

use clap::Args;
use clerk::loadgen::{run_load, LoadSpec, StopAfter};
use clerk::{Clerk, ClerkConfig, StatusResponse};
use serde_json::json;
use std::time::Duration;

/// Options of `kvctl bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent clients (threads), each with one operation in flight.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Clerks (connections per server) the clients share (default: min(clients, 8)).
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
    /// Fraction of reads (0.0 = all writes, 1.0 = all reads). Reads are linearizable.
    #[arg(long, default_value_t = 0.0)]
    read_ratio: f64,
    /// Write every key once before the warm-up (so that reads find values).
    #[arg(long)]
    prefill: bool,
    /// Seed of key choice and value bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the final report as one JSON object.
    #[arg(long)]
    json: bool,
    /// No live progress on stderr.
    #[arg(long)]
    quiet: bool,
}

impl BenchArgs {
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

/// Runs the benchmark and prints the report.
pub fn run(config: ClerkConfig, args: &BenchArgs) -> Result<std::process::ExitCode, String> {
    let connections = args
        .connections
        .unwrap_or(args.clients.min(8))
        .clamp(1, args.clients.max(1));
    let clerks: Vec<Clerk> = (0..connections)
        .map(|_| Clerk::new(config.clone()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let before = leader_counters(&clerks[0]);
    let quiet = args.quiet;
    let report = run_load(&clerks, &args.spec(), &mut |p| {
        if !quiet {
            eprintln!("{p}");
        }
    })
    .map_err(|e| format!("bench: {e}"))?;
    let after = leader_counters(&clerks[0]);
    let persist = persist_delta(before, after);
    if args.json {
        let mut value = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        if let Some(object) = value.as_object_mut() {
            object.insert("system".into(), json!("raftkv"));
            object.insert(
                "leader_persist".into(),
                persist.map_or(json!(null), |p| p.json()),
            );
        }
        println!("{value}");
    } else {
        println!("{}", report.to_text());
        match persist {
            Some(p) => println!("{}", p.text()),
            None => println!("leader persist counters: unavailable (no stable leader)"),
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The leader's (id, term, commit, persist_syncs, persisted_entries), if one answers.
fn leader_counters(clerk: &Clerk) -> Option<StatusResponse> {
    clerk
        .status_all()
        .into_iter()
        .filter_map(|(_, r)| r.ok())
        .find(|s| s.role == "leader")
}

/// What the leader's persister did during the run (prefill and warm-up included).
#[derive(Clone, Copy, Debug)]
struct PersistDelta {
    leader_id: u64,
    syncs: u64,
    persisted_entries: u64,
    committed_entries: u64,
}

/// The counters' growth, if the same leader in the same term answered both times.
fn persist_delta(
    before: Option<StatusResponse>,
    after: Option<StatusResponse>,
) -> Option<PersistDelta> {
    let (b, a) = (before?, after?);
    if a.id != b.id || a.term != b.term {
        return None;
    }
    Some(PersistDelta {
        leader_id: a.id,
        syncs: a.persist_syncs.saturating_sub(b.persist_syncs),
        persisted_entries: a.persisted_entries.saturating_sub(b.persisted_entries),
        committed_entries: a.commit.saturating_sub(b.commit),
    })
}

impl PersistDelta {
    fn syncs_per_entry(&self) -> f64 {
        self.syncs as f64 / self.committed_entries.max(1) as f64
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "leader_id": self.leader_id, "fsyncs": self.syncs,
            "persisted_entries": self.persisted_entries,
            "committed_entries": self.committed_entries,
            "fsyncs_per_committed_entry": self.syncs_per_entry(),
        })
    }

    fn text(&self) -> String {
        format!(
            "leader {} persist: {} fsyncs for {} committed entries ({:.3} fsyncs/entry, \
             prefill and warm-up included)",
            self.leader_id,
            self.syncs,
            self.committed_entries,
            self.syncs_per_entry()
        )
    }
}
