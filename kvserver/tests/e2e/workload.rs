//! The client side of the crash test: several `kvctl shell --json` processes issuing
//! appends of unique tokens, puts of unique values, compare-and-swaps, deletes and reads,
//! each recorded into one lincheck history, plus the end-of-run checks.
//!
//! Recording rules (lincheck's contract): the call is stamped before the command line is
//! written, the return after the answer line is read. `definite:false` errors, clients
//! SIGKILLed mid-operation and answers that never come are recorded with an unknown
//! outcome; `definite:true` failures are not recorded (they certainly did not happen) but
//! their tokens are remembered, since they must never show up.
//!
//! Keys: appends go only to `a*` keys (so the exactly-once check can count tokens), puts,
//! cas and deletes only to `p*` keys; reads go everywhere. All clients move to a fresh
//! group of keys every epoch (a few seconds): values stay short and each key's history
//! (one lincheck partition) stays small however long the run, which keeps the check's
//! memory and time bounded in soak runs.

use super::rng::Rng;
use super::shell::{Answer, ShellClient};
use lincheck::{KvInput, KvOperation, KvOutput, KvRecorder};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Append keys (and put keys) live at the same time; each group is used for one epoch.
pub const KEYS_PER_EPOCH: u64 = 3;

/// The `k`-th key of `epoch` that only receives appends.
pub fn append_key(epoch: u64, k: u64) -> String {
    format!("a{epoch}-{k}")
}

/// The `k`-th key of `epoch` that receives puts, cas and deletes.
pub fn put_key(epoch: u64, k: u64) -> String {
    format!("p{epoch}-{k}")
}

/// Whether `key` is an append key.
pub fn is_append_key(key: &str) -> bool {
    key.starts_with('a')
}

/// Terminator of every appended token: a value is a sequence of `<token>;`.
pub const TOKEN_END: char = ';';

/// Settings of one client.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    /// History client id (also part of every token and value it writes).
    pub id: u64,
    /// Server endpoints.
    pub endpoints: Vec<String>,
    /// `kvctl --timeout-ms`.
    pub timeout_ms: u64,
    /// Percent chance of SIGKILLing the client right after sending a command.
    pub client_kill_percent: u64,
    /// Where kvctl's stderr goes.
    pub stderr_log: PathBuf,
    /// When the run started (epochs count from here).
    pub started: Instant,
    /// How long one group of keys is used.
    pub epoch: Duration,
}

/// What one client saw.
#[derive(Debug, Default)]
pub struct ClientReport {
    /// Appended tokens acknowledged `ok`, by key.
    pub acked: BTreeMap<String, BTreeSet<String>>,
    /// Appended tokens whose outcome is unknown, by key.
    pub unknown: BTreeMap<String, BTreeSet<String>>,
    /// Appended tokens that failed with `definite:true`, by key.
    pub failed: BTreeMap<String, BTreeSet<String>>,
    /// Operations answered `ok`.
    pub ok_ops: u64,
    /// Writes acknowledged `ok`.
    pub ok_writes: u64,
    /// Operations recorded with an unknown outcome.
    pub unknown_ops: u64,
    /// Times this client killed its own kvctl mid-operation.
    pub client_kills: u64,
    /// Commands that got no answer within the deadline (kvctl ignored --timeout-ms).
    pub hung: Vec<String>,
    /// kvctl processes that exited on their own.
    pub died: u64,
    /// Error messages seen, with counts.
    pub errors: BTreeMap<String, u64>,
}

/// One planned operation: the history input and the shell line.
struct Planned {
    input: KvInput,
    line: String,
    /// The token, for appends.
    token: Option<String>,
}

fn plan(spec: &ClientSpec, n: u64, rng: &mut Rng, seen: &BTreeMap<String, String>) -> Planned {
    let id = spec.id;
    let epoch = (spec.started.elapsed().as_millis() / spec.epoch.as_millis().max(1)) as u64;
    let roll = rng.below(100);
    let append_key = append_key(epoch, rng.below(KEYS_PER_EPOCH));
    let put_key = put_key(epoch, rng.below(KEYS_PER_EPOCH));
    let fresh = format!("c{id}n{n}");
    let planned = |input: KvInput, line: String| Planned {
        input,
        line,
        token: None,
    };
    match roll {
        0..=44 => {
            let token = format!("{fresh}{TOKEN_END}");
            Planned {
                input: KvInput::append(append_key.as_str(), token.as_str()),
                line: format!("append {append_key} {token}"),
                token: Some(token),
            }
        }
        45..=64 => planned(
            KvInput::put(put_key.as_str(), fresh.as_str()),
            format!("put {put_key} {fresh}"),
        ),
        65..=71 => {
            let expected = seen.get(put_key.as_str()).cloned().unwrap_or_default();
            let shown = if expected.is_empty() {
                "\"\"".to_string()
            } else {
                expected.clone()
            };
            planned(
                KvInput::cas(put_key.as_str(), expected.as_str(), fresh.as_str()),
                format!("cas {put_key} {shown} {fresh}"),
            )
        }
        72..=74 => planned(
            KvInput::delete(put_key.as_str()),
            format!("delete {put_key}"),
        ),
        _ => {
            let key = if rng.chance(50) { append_key } else { put_key };
            planned(KvInput::get(key.as_str()), format!("get {key}"))
        }
    }
}

/// How one command ended, seen from the client process.
enum Fate {
    /// kvctl printed one JSON answer.
    Answered(Value),
    /// We SIGKILLed kvctl after sending the command (a crashed client).
    KilledByUs,
    /// No answer within the deadline: kvctl ignored its own `--timeout-ms`.
    NoAnswer,
    /// kvctl exited on its own.
    Died,
}

/// Runs one client until `stop` is set; returns what it saw.
pub fn run_client(
    spec: ClientSpec,
    recorder: Arc<KvRecorder>,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
) -> ClientReport {
    let answer_deadline = Duration::from_millis(spec.timeout_ms) + super::process::HANG;
    let spawn = || ShellClient::spawn(&spec.endpoints, spec.timeout_ms, Some(&spec.stderr_log));
    let mut shell = spawn();
    let mut report = ClientReport::default();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut n = 0;
    while !stop.load(Ordering::Acquire) {
        n += 1;
        let op = plan(&spec, n, &mut rng, &seen);
        let pending = recorder.begin(spec.id, op.input.clone());
        let fate = if !shell.send(&op.line) {
            Fate::Died
        } else if rng.chance(spec.client_kill_percent) {
            // Let the command get somewhere (or not) before the crash.
            std::thread::sleep(Duration::from_millis(rng.below(40)));
            Fate::KilledByUs
        } else {
            match shell.recv(answer_deadline) {
                Answer::Json(value) => Fate::Answered(value),
                Answer::NoAnswer => Fate::NoAnswer,
                Answer::Closed => Fate::Died,
            }
        };
        let output = match fate {
            Fate::Answered(ref value) => interpret(&op, value, &mut report, &mut seen),
            Fate::KilledByUs => {
                report.client_kills += 1;
                Some(KvOutput::Unknown)
            }
            Fate::NoAnswer => {
                report.hung.push(op.line.clone());
                Some(KvOutput::Unknown)
            }
            Fate::Died => {
                report.died += 1;
                Some(KvOutput::Unknown)
            }
        };
        if !matches!(fate, Fate::Answered(_)) {
            std::mem::replace(&mut shell, spawn()).kill();
        }
        match output {
            Some(KvOutput::Unknown) => {
                recorder.finish_unknown(pending, KvOutput::Unknown);
                report.unknown_ops += 1;
                note_token(&mut report.unknown, &op);
            }
            Some(output) => recorder.finish(pending, output),
            None => drop(pending),
        }
    }
    let _ = shell.finish(super::process::HANG);
    report
}

fn note_token(tokens: &mut BTreeMap<String, BTreeSet<String>>, op: &Planned) {
    if let Some(token) = &op.token {
        let key = String::from_utf8_lossy(op.input.key()).into_owned();
        tokens.entry(key).or_default().insert(token.clone());
    }
}

/// Turns kvctl's JSON answer into the history output; `None` for a definite failure
/// (not recorded).
fn interpret(
    op: &Planned,
    answer: &Value,
    report: &mut ClientReport,
    seen: &mut BTreeMap<String, String>,
) -> Option<KvOutput> {
    let key = String::from_utf8_lossy(op.input.key()).into_owned();
    if answer["ok"] != Value::Bool(true) {
        let message = answer["error"]
            .as_str()
            .unwrap_or("<no message>")
            .to_string();
        *report.errors.entry(message).or_default() += 1;
        return match answer["definite"].as_bool() {
            Some(true) => {
                if let Some(token) = &op.token {
                    report.failed.entry(key).or_default().insert(token.clone());
                }
                None
            }
            Some(false) => Some(KvOutput::Unknown),
            None => panic!("answer to {:?} lacks `definite`: {answer}", op.line),
        };
    }
    report.ok_ops += 1;
    let output = match &op.input {
        KvInput::Get { .. } => match &answer["value"] {
            Value::Null => {
                seen.remove(&key);
                KvOutput::not_found()
            }
            Value::String(v) => {
                seen.insert(key, v.clone());
                KvOutput::found(v.as_str())
            }
            other => panic!("get answered a non-string value {other}"),
        },
        KvInput::Cas { new_value, .. } => {
            let swapped = answer["swapped"]
                .as_bool()
                .unwrap_or_else(|| panic!("cas answer lacks `swapped`: {answer}"));
            if swapped {
                seen.insert(key, String::from_utf8_lossy(new_value).into_owned());
            }
            report.ok_writes += 1;
            KvOutput::Swapped(swapped)
        }
        KvInput::Put { value, .. } => {
            seen.insert(key, String::from_utf8_lossy(value).into_owned());
            report.ok_writes += 1;
            KvOutput::Ok
        }
        KvInput::Append { .. } | KvInput::Delete { .. } => {
            if let Some(token) = &op.token {
                report.acked.entry(key).or_default().insert(token.clone());
            } else {
                seen.remove(&key);
            }
            report.ok_writes += 1;
            KvOutput::Ok
        }
    };
    Some(output)
}

/// Checks one append key's final value against what the clients saw. Returns the
/// problems found (empty when every acknowledged token is there exactly once, every
/// unknown one at most once, and nothing else is).
pub fn check_appends(key: &str, value: &str, reports: &[ClientReport]) -> Vec<String> {
    let mut problems = Vec::new();
    if !value.is_empty() && !value.ends_with(TOKEN_END) {
        problems.push(format!("{key}: value does not end with a token: {value:?}"));
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for token in value.split_inclusive(TOKEN_END) {
        *counts.entry(token).or_default() += 1;
    }
    let of = |pick: fn(&ClientReport) -> &BTreeMap<String, BTreeSet<String>>| -> BTreeSet<String> {
        reports
            .iter()
            .filter_map(|r| pick(r).get(key))
            .flatten()
            .cloned()
            .collect()
    };
    let (acked, unknown, failed) = (of(|r| &r.acked), of(|r| &r.unknown), of(|r| &r.failed));
    for token in &acked {
        match counts.get(token.as_str()) {
            None => problems.push(format!("{key}: acknowledged append {token:?} is LOST")),
            Some(1) => {}
            Some(n) => problems.push(format!(
                "{key}: acknowledged append {token:?} applied {n} times"
            )),
        }
    }
    for (token, n) in &counts {
        let token = token.to_string();
        if failed.contains(&token) {
            problems.push(format!(
                "{key}: append {token:?} failed with definite:true but is present"
            ));
        } else if unknown.contains(&token) && *n > 1 {
            problems.push(format!(
                "{key}: unknown-outcome append {token:?} applied {n} times"
            ));
        } else if !acked.contains(&token) && !unknown.contains(&token) {
            problems.push(format!(
                "{key}: token {token:?} was never appended by anyone"
            ));
        }
    }
    problems
}

/// Real-time checks of one append key's reads, in polynomial time (lincheck's search can
/// blow up; these name the exact operations): with appends only, every read is a prefix
/// of the final value, contains every token acknowledged before the read was called, no
/// token whose append was called after the read returned, and reads that follow each
/// other in real time never shrink.
pub fn check_append_reads(key: &str, final_value: &str, history: &[KvOperation]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut reads = Vec::new();
    let mut appends = Vec::new();
    for op in history.iter().filter(|op| op.input.key() == key.as_bytes()) {
        match (&op.input, &op.output) {
            (KvInput::Get { .. }, KvOutput::Value(v)) => {
                let v = String::from_utf8_lossy(v.as_deref().unwrap_or_default()).into_owned();
                reads.push((op, v));
            }
            (KvInput::Append { value, .. }, _) => {
                appends.push((op, String::from_utf8_lossy(value).into_owned()))
            }
            _ => {}
        }
    }
    for (read, value) in &reads {
        if !final_value.starts_with(value.as_str()) {
            problems.push(format!(
                "{key}: read {read:?} is not a prefix of the final value"
            ));
        }
        let tokens: BTreeSet<&str> = value.split_inclusive(TOKEN_END).collect();
        for (append, token) in &appends {
            let acked_before = append.output == KvOutput::Ok && append.ret < read.call;
            if acked_before && !tokens.contains(token.as_str()) {
                problems.push(format!("{key}: STALE read {read:?} misses {append:?}"));
            }
            if append.call > read.ret && tokens.contains(token.as_str()) {
                problems.push(format!("{key}: read {read:?} sees the later {append:?}"));
            }
        }
    }
    for (first, a) in &reads {
        for (second, b) in &reads {
            if first.ret < second.call && a.len() > b.len() {
                problems.push(format!(
                    "{key}: read {second:?} is shorter than the earlier {first:?}"
                ));
            }
        }
    }
    problems
}

/// Writes `history` as JSON lines (for re-checking with `recheck_saved_history`).
pub fn save_history(path: &std::path::Path, history: &[KvOperation]) {
    use std::io::Write as _;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for op in history {
        let input = match &op.input {
            KvInput::Get { key } => serde_json::json!({"get": text(key)}),
            KvInput::Put { key, value } => {
                serde_json::json!({"put": text(key), "value": text(value)})
            }
            KvInput::Append { key, value } => {
                serde_json::json!({"append": text(key), "value": text(value)})
            }
            KvInput::Delete { key } => serde_json::json!({"delete": text(key)}),
            KvInput::Cas {
                key,
                expected,
                new_value,
            } => serde_json::json!({
                "cas": text(key), "expected": text(expected), "new": text(new_value)}),
        };
        let output = match &op.output {
            KvOutput::Ok => serde_json::json!("ok"),
            KvOutput::Value(v) => serde_json::json!({"value": v.as_deref().map(text)}),
            KvOutput::Swapped(s) => serde_json::json!({"swapped": s}),
            KvOutput::Unknown => serde_json::json!("unknown"),
        };
        let line = serde_json::json!({
            "client": op.client_id, "call": op.call, "ret": op.ret, "input": input, "output": output,
        });
        writeln!(out, "{line}").unwrap();
    }
}

/// Reads a history written by [`save_history`].
pub fn load_history(path: &std::path::Path) -> Vec<KvOperation> {
    let text = std::fs::read_to_string(path).unwrap();
    let s = |v: &Value| v.as_str().unwrap().to_string();
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let i = &v["input"];
            let input = if let Some(k) = i.get("get") {
                KvInput::get(s(k))
            } else if let Some(k) = i.get("put") {
                KvInput::put(s(k), s(&i["value"]))
            } else if let Some(k) = i.get("append") {
                KvInput::append(s(k), s(&i["value"]))
            } else if let Some(k) = i.get("delete") {
                KvInput::delete(s(k))
            } else {
                KvInput::cas(s(&i["cas"]), s(&i["expected"]), s(&i["new"]))
            };
            let o = &v["output"];
            let output = match o.as_str() {
                Some("ok") => KvOutput::Ok,
                Some(_) => KvOutput::Unknown,
                None if o.get("swapped").is_some() => KvOutput::Swapped(o["swapped"] == true),
                None => KvOutput::Value(o["value"].as_str().map(|v| v.as_bytes().to_vec())),
            };
            let n = |f: &str| v[f].as_u64().unwrap();
            lincheck::Operation::new(n("client"), input, output, n("call"), n("ret"))
        })
        .collect()
}
