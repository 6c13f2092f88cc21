//! 6.824's append checks: every append a client made appears in the key's value exactly
//! once and in order. Extended to appends whose clerk gave up (not in 6.824, whose clerks
//! retry forever):
//! - an append that certainly failed (`Applied::No`) must not appear;
//! - one with an unknown outcome (`Applied::Maybe`) appears at most once, after every
//!   successful append the client made before it (it may take effect any time after its
//!   call, so possibly after the client's later appends too).
//!
//! Values are parsed into `"x <client> <j> y"` tokens; any other text is an error.

use std::collections::BTreeMap;

/// The value a client appends as its `j`-th append: `"x <client> <j> y"`.
pub fn append_value(client: usize, j: usize) -> String {
    format!("x {client} {j} y")
}

/// Whether an append took effect, as its client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Yes,
    Maybe,
    No,
}

/// One append a client made, and how it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendRecord {
    pub j: usize,
    pub applied: Applied,
}

/// Checks a key only `client` appended to (after a `Put(key, "")`).
pub fn check_client_value(
    client: usize,
    value: &str,
    appends: &[AppendRecord],
) -> Result<(), String> {
    check_appends(value, &BTreeMap::from([(client, appends)]))
        .map_err(|e| format!("client {client}: {e} in {value:?}"))
}

/// Checks a key all `appends[client]` went to (6.824's `checkConcurrentAppends`).
pub fn check_concurrent_appends(value: &str, appends: &[Vec<AppendRecord>]) -> Result<(), String> {
    let by_client = appends
        .iter()
        .enumerate()
        .map(|(client, records)| (client, records.as_slice()))
        .collect();
    check_appends(value, &by_client).map_err(|e| format!("{e} in {value:?}"))
}

fn check_appends(value: &str, appends: &BTreeMap<usize, &[AppendRecord]>) -> Result<(), String> {
    let tokens = parse_tokens(value)?;
    // Position of each (client, j) in the value.
    let mut position: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for (pos, &(client, j)) in tokens.iter().enumerate() {
        let record = appends
            .get(&client)
            .and_then(|records| records.iter().find(|r| r.j == j));
        match record {
            None => {
                return Err(format!(
                    "element {:?} was never appended",
                    append_value(client, j)
                ))
            }
            Some(r) if r.applied == Applied::No => {
                return Err(format!(
                    "element {:?} is present, but its append failed definitely",
                    append_value(client, j)
                ))
            }
            Some(_) => {}
        }
        if position.insert((client, j), pos).is_some() {
            return Err(format!("duplicate element {:?}", append_value(client, j)));
        }
    }
    for (&client, records) in appends {
        // The latest position of a successful append so far, in the client's order.
        let mut last_yes: Option<usize> = None;
        for r in records.iter() {
            let at = position.get(&(client, r.j)).copied();
            let wanted = append_value(client, r.j);
            match (r.applied, at) {
                (Applied::Yes, None) => return Err(format!("missing element {wanted:?}")),
                (Applied::Yes | Applied::Maybe, Some(p)) if last_yes.is_some_and(|l| p < l) => {
                    return Err(format!("wrong order for element {wanted:?}"))
                }
                (Applied::Yes, Some(p)) => last_yes = Some(p),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Splits a value into `(client, j)` tokens of the form `"x <client> <j> y"`.
fn parse_tokens(value: &str) -> Result<Vec<(usize, usize)>, String> {
    let mut tokens = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let offset = value.len() - rest.len();
        let bad = || format!("unexpected text at offset {offset}");
        let body = rest.strip_prefix("x ").ok_or_else(bad)?;
        let end = body.find(" y").ok_or_else(bad)?;
        let (client, j) = body[..end].split_once(' ').ok_or_else(bad)?;
        let client: usize = client.parse().map_err(|_| bad())?;
        let j: usize = j.parse().map_err(|_| bad())?;
        tokens.push((client, j));
        rest = &body[end + 2..];
    }
    Ok(tokens)
}
