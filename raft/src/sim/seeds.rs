//! Running a scenario over many seeds, and replaying one.
//!
//! `run_seeds(name, default_count, |seed| ...)` runs seeds `0..count`, where `count` is
//! `RAFTKV_SIM_SEEDS` if set (the long mode, e.g. 5000; a range `a..b` also works) or
//! `default_count`; with `RAFTKV_SIM_SEED=<n>` it runs only seed `n`. A failing seed
//! re-panics with `RAFTKV_SIM_SEED=<n> scenario=<name>` in front of the original message, so
//! the line to replay it is in the test output. With `RAFTKV_SIM_KEEP_GOING=1` every seed runs
//! and the failure lists all failing seeds (first line of each message).

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// Environment variable: run only this seed.
pub const SEED_ENV: &str = "RAFTKV_SIM_SEED";
/// Environment variable: run this many seeds per scenario (or a range `a..b`).
pub const SEEDS_ENV: &str = "RAFTKV_SIM_SEEDS";
/// Environment variable: do not stop at the first failing seed.
pub const KEEP_GOING_ENV: &str = "RAFTKV_SIM_KEEP_GOING";

/// The seeds a scenario should run: `RAFTKV_SIM_SEED` alone, else `RAFTKV_SIM_SEEDS` (a count
/// or a range `a..b`), else `0..default_count`.
pub fn seeds_from_env(default_count: u64) -> Vec<u64> {
    if let Some(seed) = env_u64(SEED_ENV) {
        return vec![seed];
    }
    if let Ok(spec) = std::env::var(SEEDS_ENV) {
        if let Some((a, b)) = spec.trim().split_once("..") {
            if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
                return (a..b).collect();
            }
        }
    }
    let count = env_u64(SEEDS_ENV).unwrap_or(default_count);
    (0..count).collect()
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
}

/// Runs `scenario` for every seed from [`seeds_from_env`]; on a failure, panics with the
/// seed and scenario name prefixed to the original panic message.
pub fn run_seeds(name: &str, default_count: u64, mut scenario: impl FnMut(u64)) {
    let keep_going = std::env::var(KEEP_GOING_ENV).is_ok();
    let mut failures = Vec::new();
    for seed in seeds_from_env(default_count) {
        let Err(payload) = catch_unwind(AssertUnwindSafe(|| scenario(seed))) else {
            continue;
        };
        let text = match panic_text(payload.as_ref()) {
            Some(msg) if msg.contains(SEED_ENV) => msg.to_string(),
            Some(msg) => format!("{SEED_ENV}={seed} scenario={name}: {msg}"),
            None => format!("{SEED_ENV}={seed} scenario={name}: (non-string panic)"),
        };
        if !keep_going {
            if panic_text(payload.as_ref()).is_some_and(|m| m.contains(SEED_ENV)) {
                resume_unwind(payload);
            }
            panic!("{text}");
        }
        failures.push(text.lines().next().unwrap_or_default().to_string());
    }
    if !failures.is_empty() {
        panic!("{} failing seeds:\n{}", failures.len(), failures.join("\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_seed_is_named_in_the_panic() {
        if std::env::var(SEED_ENV).is_ok() || std::env::var(SEEDS_ENV).is_ok() {
            return; // the seed list comes from the environment then
        }
        let result = catch_unwind(|| {
            run_seeds("demo", 5, |seed| assert!(seed != 3, "boom"));
        });
        let payload = result.expect_err("seed 3 fails");
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            msg.starts_with("RAFTKV_SIM_SEED=3 scenario=demo: boom"),
            "{msg}"
        );
    }
}
