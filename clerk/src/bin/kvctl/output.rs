//! Output formats: text and `--json` lines for results and status, and reading endpoints
//! from a cluster configuration file.

use crate::command::Outcome;
use clerk::Clerk;
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// One result as a JSON object (DESIGN.md's shell contract).
pub fn outcome_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Written => json!({"ok": true}),
        Outcome::Value(v) => json!({"ok": true, "value": v}),
        Outcome::Swapped(s) => json!({"ok": true, "swapped": s}),
        Outcome::Failed(e) => json!({"ok": false, "error": e.message, "definite": e.definite}),
    }
}

/// One result as a text line.
pub fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Written => "OK".into(),
        Outcome::Value(Some(v)) => v.clone(),
        Outcome::Value(None) => "(nil)".into(),
        Outcome::Swapped(true) => "swapped".into(),
        Outcome::Swapped(false) => "not swapped".into(),
        Outcome::Failed(e) => format!("error: {e}"),
    }
}

/// `kvctl status`: one line per node; exit 0 if a leader answered, else 1.
pub fn print_status(clerk: &Clerk, json: bool) -> ExitCode {
    let mut saw_leader = false;
    let mut out = std::io::stdout().lock();
    for (i, (endpoint, result)) in clerk.status_all().into_iter().enumerate() {
        let line = match result {
            Ok(s) => {
                saw_leader |= s.role == "leader";
                let leader = if s.leader_id == 0 {
                    "none".to_string()
                } else {
                    s.leader_id.to_string()
                };
                if json {
                    json!({"id": s.id, "addr": endpoint, "role": s.role, "term": s.term, "commit": s.commit,
                           "applied": s.applied, "leader": if s.leader_id == 0 { Value::Null } else { json!(s.leader_id) },
                           "voters": s.voters, "voters_outgoing": s.voters_outgoing, "learners": s.learners,
                           "config_index": s.config_index})
                    .to_string()
                } else {
                    format!(
                        "id={} addr={} role={} term={} commit={} applied={} leader={} {}",
                        s.id,
                        endpoint,
                        s.role,
                        s.term,
                        s.commit,
                        s.applied,
                        leader,
                        configuration_text(&s)
                    )
                }
            }
            Err(e) => {
                if json {
                    json!({"id": Value::Null, "addr": endpoint, "role": "unreachable", "error": e.to_string()})
                        .to_string()
                } else {
                    format!(
                        "id=? addr={endpoint} role=unreachable error={:?}",
                        e.to_string()
                    )
                }
            }
        };
        let _ = writeln!(out, "{line}");
        let _ = i;
    }
    if saw_leader {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One configuration line: `voters=(1 2 3) learners=(4) config_index=17` (or JSON).
fn configuration(s: &proto::kv::StatusResponse, json: bool) -> String {
    if json {
        return json!({"leader": s.id, "voters": s.voters, "voters_outgoing": s.voters_outgoing,
                       "learners": s.learners, "config_index": s.config_index})
        .to_string();
    }
    format!("leader={} {}", s.id, configuration_text(s))
}

/// `voters=(1 2 4)&&(1 2 3) learners=(5) config_index=17` (the `&&` part only during a
/// joint change), the notation of the Raft core's `Membership`.
fn configuration_text(s: &proto::kv::StatusResponse) -> String {
    let ids = |v: &[u64]| {
        let ids: Vec<String> = v.iter().map(u64::to_string).collect();
        format!("({})", ids.join(" "))
    };
    let outgoing = if s.voters_outgoing.is_empty() {
        String::new()
    } else {
        format!("&&{}", ids(&s.voters_outgoing))
    };
    format!(
        "voters={}{} learners={} config_index={}",
        ids(&s.voters),
        outgoing,
        ids(&s.learners),
        s.config_index
    )
}

/// `kvctl member list`: the leader's configuration; exit 2 if no leader answered.
pub fn print_members(clerk: &Clerk, json: bool) -> ExitCode {
    match clerk.leader_status() {
        Some(s) => {
            println!("{}", configuration(&s, json));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("kvctl: no leader answered");
            ExitCode::from(2)
        }
    }
}

/// `kvctl member remove ID`: the configuration once the leader applied the removal;
/// exit 2 when it was refused or not applied in time.
pub fn print_removal(clerk: &Clerk, id: u64, expect_index: u64, json: bool) -> ExitCode {
    match clerk.remove_member(id, expect_index) {
        Ok(s) => {
            println!("{}", configuration(&s, json));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kvctl: {e}");
            ExitCode::from(2)
        }
    }
}

/// `kvctl transfer-leader ID`: exit 0 once ID leads; 2, as every failed operation, when it
/// cannot lead (not another voter), no leader took the transfer, or it did not lead in time.
pub fn print_transfer(clerk: &Clerk, to: u64, json: bool) -> ExitCode {
    let result = clerk.transfer_leader(to);
    let line = match &result {
        Ok(term) if json => json!({"leader": to, "term": term}).to_string(),
        Ok(term) => format!("node {to} leads (term {term})"),
        Err(e) if json => json!({"error": e.to_string()}).to_string(),
        Err(e) => format!("error: {e}"),
    };
    match result {
        Ok(_) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(_) => {
            eprintln!("{line}");
            ExitCode::from(2)
        }
    }
}

#[derive(Deserialize)]
struct ConfigFile {
    nodes: Vec<ConfigNode>,
}

#[derive(Deserialize)]
struct ConfigNode {
    addr: String,
}

/// The `addr` of every `[[nodes]]` entry of a cluster configuration file.
pub fn endpoints_from_config(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config: ConfigFile = toml::from_str(&text)
        .map_err(|e| format!("{}: {}", path.display(), e.message().replace('\n', " ")))?;
    if config.nodes.is_empty() {
        return Err(format!("{}: no [[nodes]]", path.display()));
    }
    Ok(config.nodes.into_iter().map(|n| n.addr).collect())
}
