//! The crash test's verdicts on what the clients recorded: exactly-once appends, an exact
//! polynomial linearizability check of append keys, and the tightening of unknown
//! outcomes that keeps lincheck's search small.
//!
//! Every written token and value is unique (see workload.rs), which is what makes these
//! checks exact.

use super::workload::{ClientReport, TOKEN_END};
use lincheck::{KvInput, KvOperation, KvOutput};
use std::collections::{BTreeMap, BTreeSet};

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

/// Linearizability of one append key, decided exactly in polynomial time (lincheck's
/// search is exponential; this names the exact operations). With unique tokens, the final
/// value fixes the order of the applied appends and each read's place (after the appends
/// its value holds); a linearization exists iff that order agrees with real time pair by
/// pair (real time is an interval order, so any longer cycle implies a 2-cycle): every
/// read is a prefix of the final value, holds every token acknowledged before the read
/// was called and none appended after it returned, applied appends keep their real-time
/// order, and reads that follow each other never shrink.
pub fn check_append_order(key: &str, final_value: &str, history: &[KvOperation]) -> Vec<String> {
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
    let position: BTreeMap<&str, usize> = final_value
        .split_inclusive(TOKEN_END)
        .enumerate()
        .map(|(i, token)| (token, i))
        .collect();
    for (first, a) in &appends {
        for (second, b) in &appends {
            let order = (position.get(a.as_str()), position.get(b.as_str()));
            if let (Some(pa), Some(pb)) = order {
                if first.ret < second.call && pa > pb {
                    problems.push(format!(
                        "{key}: {second:?} is applied before the earlier {first:?}"
                    ));
                }
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

/// Uses what later reads observed to bound when unknown-outcome writes took effect, so
/// lincheck does not have to consider every later point for them (its search is
/// exponential in the number of operations that overlap, and an unknown operation
/// overlaps everything after its call). Because every written token and value is unique,
/// the tightened history is linearizable iff the recorded one is:
/// - an unknown append or put (or cas) whose token/value a read saw, or a put whose value
///   a successful cas expected, took effect before that observer did, hence before the
///   observer returned: its return time becomes the earliest such observer's return;
/// - likewise an unknown append took effect before every acknowledged append whose token
///   comes after its own in the longest value read of the key;
/// - an unknown append whose token is in no read at all (the history ends with a read of
///   every key after all clients stopped) can only take effect after every read of its
///   key, which is the same as never: it is dropped.
///
/// Whatever the history, this is safe: an earlier return time only adds constraints, and
/// an unknown operation may always be placed last, so a tightened history that passes
/// means the recorded one does too.
pub fn tighten_unknown_writes(history: &[KvOperation]) -> Vec<KvOperation> {
    // (key, observed bytes) -> earliest return of an operation that observed them.
    let mut first_seen_values: BTreeMap<(&[u8], &[u8]), u64> = BTreeMap::new();
    let mut first_seen_tokens: BTreeMap<(&[u8], &[u8]), u64> = BTreeMap::new();
    let note = |map: &mut BTreeMap<_, u64>, entry, ret: u64| {
        let seen = map.entry(entry).or_insert(ret);
        *seen = (*seen).min(ret);
    };
    for op in history.iter().filter(|op| !op.is_outcome_unknown()) {
        let key = op.input.key();
        match (&op.input, &op.output) {
            (KvInput::Get { .. }, KvOutput::Value(Some(value))) => {
                note(&mut first_seen_values, (key, value.as_slice()), op.ret);
                for token in value.split_inclusive(|b| *b == TOKEN_END as u8) {
                    note(&mut first_seen_tokens, (key, token), op.ret);
                }
            }
            (KvInput::Cas { expected, .. }, KvOutput::Swapped(true)) if !expected.is_empty() => {
                note(&mut first_seen_values, (key, expected.as_slice()), op.ret);
            }
            _ => {}
        }
    }
    let followers = acked_followers(history);
    let mut tightened = Vec::with_capacity(history.len());
    for op in history {
        let mut op = op.clone();
        if op.output == KvOutput::Unknown {
            let key = op.input.key();
            let seen = match &op.input {
                KvInput::Append { value, .. } => {
                    let token = (key, value.as_slice());
                    match first_seen_tokens.get(&token) {
                        Some(ret) => {
                            Some((*ret).min(followers.get(&token).copied().unwrap_or(u64::MAX)))
                        }
                        None => continue, // never observed: the same as never applied
                    }
                }
                KvInput::Put { value, .. } => {
                    first_seen_values.get(&(key, value.as_slice())).copied()
                }
                KvInput::Cas { new_value, .. } => {
                    first_seen_values.get(&(key, new_value.as_slice())).copied()
                }
                _ => None,
            };
            // An observer that returned before the write was called is a violation that
            // lincheck must see as it is: leave such a write alone.
            if let Some(ret) = seen.filter(|ret| *ret > op.call) {
                op.ret = ret;
            }
        }
        tightened.push(op);
    }
    tightened
}

/// For every token of every append key's longest read value: the earliest return among
/// the acknowledged appends whose tokens come after it in that value.
fn acked_followers(history: &[KvOperation]) -> BTreeMap<(&[u8], &[u8]), u64> {
    let mut longest: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
    let mut acked_ret: BTreeMap<(&[u8], &[u8]), u64> = BTreeMap::new();
    for op in history {
        match (&op.input, &op.output) {
            (KvInput::Get { key }, KvOutput::Value(Some(value))) => {
                let best = longest.entry(key).or_default();
                if value.len() > best.len() {
                    *best = value;
                }
            }
            (KvInput::Append { key, value }, KvOutput::Ok) => {
                acked_ret.insert((key, value), op.ret);
            }
            _ => {}
        }
    }
    let mut followers = BTreeMap::new();
    for (key, value) in longest {
        let tokens: Vec<&[u8]> = value.split_inclusive(|b| *b == TOKEN_END as u8).collect();
        let mut earliest_after = u64::MAX;
        for token in tokens.into_iter().rev() {
            followers.insert((key, token), earliest_after);
            if let Some(ret) = acked_ret.get(&(key, token)) {
                earliest_after = earliest_after.min(*ret);
            }
        }
    }
    followers
}
