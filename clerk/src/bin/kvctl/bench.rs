//! `kvctl bench`: closed-loop load against a raftkv cluster, using the engine in
//! `clerk::loadgen` (the etcd load generator in `bench/etcd-load/` uses the same one).
//! N client threads share M clerks (M connections per server, default min(N, 8)); live
//! progress goes to stderr; the report (text, or one JSON object with `--json`) to stdout.
//! Around the run it reads the leader's persist counters through `Status`, to report
//! fsyncs per committed entry. Reads are linearizable: ReadIndex, or the leader lease with
//! the global `--read-mode lease`; the report names the mode.

use clap::Args;
use clerk::loadgen::{run_load, LoadArgs};
use clerk::{Clerk, ClerkConfig, StatusResponse};
use serde_json::json;

/// Options of `kvctl bench` (the load-shape flags shared with `bench/etcd-load`).
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    load: LoadArgs,
}

/// Runs the benchmark and prints the report.
pub fn run(config: ClerkConfig, args: &BenchArgs) -> Result<std::process::ExitCode, String> {
    let args = &args.load;
    let read_mode = read_mode_name(config.read_mode);
    let connections = args.connection_count();
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
            object.insert("read_mode".into(), json!(read_mode));
            object.insert(
                "leader_persist".into(),
                persist.map_or(json!(null), |p| p.json()),
            );
        }
        println!("{value}");
    } else {
        println!("{}", report.to_text());
        if args.read_ratio > 0.0 {
            println!("reads: {read_mode}");
        }
        match persist {
            Some(p) => println!("{}", p.text()),
            None => println!("leader persist counters: unavailable (no stable leader)"),
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn read_mode_name(mode: clerk::ReadMode) -> &'static str {
    match mode {
        clerk::ReadMode::ReadIndex => "read-index",
        clerk::ReadMode::Lease => "lease",
    }
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
