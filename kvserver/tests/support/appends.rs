//! 6.824's append checks: every append a client made appears in its key's value exactly
//! once and in order. Appends whose outcome is unknown may be missing, but appear at most
//! once and never out of order (Raft applies a client's abandoned write, if ever, before
//! anything the client did later).

/// The value a client appends as its `j`-th append: `"x <client> <j> y"`.
pub fn append_value(client: usize, j: usize) -> String {
    format!("x {client} {j} y")
}

/// One append a client made, and whether it certainly took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendRecord {
    pub j: usize,
    /// `true`: the append succeeded. `false`: its outcome is unknown.
    pub definite: bool,
}

/// Checks that `value` is exactly the concatenation of `appends` (client `client`'s, in
/// order), where unknown ones may be left out. Returns what is wrong, if anything.
pub fn check_client_value(
    client: usize,
    value: &str,
    appends: &[AppendRecord],
) -> Result<(), String> {
    let mut rest = value;
    for a in appends {
        let wanted = append_value(client, a.j);
        if let Some(after) = rest.strip_prefix(wanted.as_str()) {
            rest = after;
        } else if a.definite {
            return Err(format!(
                "client {client}: append {wanted:?} missing or out of order at offset {} of {value:?}",
                value.len() - rest.len()
            ));
        }
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "client {client}: unexpected text {rest:?} at offset {} of {value:?} \
             (a duplicate, or an append out of order)",
            value.len() - rest.len()
        ))
    }
}

/// 6.824's `checkClntAppends`/`checkConcurrentAppends` on one key shared by many clients:
/// each client's appends appear at most once, in order, and every definite one appears.
pub fn check_concurrent_appends(value: &str, appends: &[Vec<AppendRecord>]) -> Result<(), String> {
    for (client, records) in appends.iter().enumerate() {
        let mut last_offset: Option<usize> = None;
        for a in records {
            let wanted = append_value(client, a.j);
            let first = value.find(&wanted);
            let last = value.rfind(&wanted);
            match first {
                None if a.definite => {
                    return Err(format!(
                        "client {client}: missing element {wanted:?} in {value:?}"
                    ))
                }
                None => continue,
                Some(off) => {
                    if last != Some(off) {
                        return Err(format!("client {client}: duplicate element {wanted:?}"));
                    }
                    if last_offset.is_some_and(|l| off <= l) {
                        return Err(format!(
                            "client {client}: wrong order for element {wanted:?}"
                        ));
                    }
                    last_offset = Some(off);
                }
            }
        }
    }
    Ok(())
}
