//! Saving a recorded history as JSON lines and loading it back, so a failed run's history
//! (kept in the cluster directory) can be re-checked offline with a larger budget.

use lincheck::{KvInput, KvOperation, KvOutput};
use serde_json::Value;

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
