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
use lincheck::{KvInput, KvOutput, KvRecorder};
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
    // Reads are dense on append keys: lincheck's search is exponential in the number of
    // appends between two reads of a key (only a read pins their order).
    match roll {
        0..=34 => {
            let token = format!("{fresh}{TOKEN_END}");
            Planned {
                input: KvInput::append(append_key.as_str(), token.as_str()),
                line: format!("append {append_key} {token}"),
                token: Some(token),
            }
        }
        35..=49 => planned(
            KvInput::put(put_key.as_str(), fresh.as_str()),
            format!("put {put_key} {fresh}"),
        ),
        50..=56 => {
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
        57..=59 => planned(
            KvInput::delete(put_key.as_str()),
            format!("delete {put_key}"),
        ),
        _ => {
            let key = if rng.chance(70) { append_key } else { put_key };
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
    Silence,
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
                Answer::Silence => Fate::Silence,
                Answer::Closed => Fate::Died,
            }
        };
        let output = match fate {
            Fate::Answered(ref value) => interpret(&op, value, &mut report, &mut seen),
            Fate::KilledByUs => {
                report.client_kills += 1;
                Some(KvOutput::Unknown)
            }
            Fate::Silence => {
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
