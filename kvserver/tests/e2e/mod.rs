//! Shared helpers of the process-level tests (`crash_process.rs`, `bad_input.rs`): real
//! `kvserver` and `kvctl` processes on loopback, with temporary data directories.
//!
//! - [`ports`]: free loopback ports outside the kernel's ephemeral range;
//! - [`process`]: binary paths, signals (`kill -s SIG pid`, no unsafe), bounded waits;
//! - [`cluster`]: [`cluster::ProcessCluster`], N `kvserver` processes with per-node logs;
//! - [`shell`]: [`shell::ShellClient`], one `kvctl shell --json` process driven line by line;
//! - [`rng`]: a small seeded PRNG for workloads and fault schedules;
//! - [`workload`]: the crash test's clients (unique tokens, recorded history);
//! - [`checks`]: exactly-once appends, exact append-order check, unknown-outcome tightening;
//! - [`history_file`]: a history as JSON lines, for re-checking a failed run offline;
//! - [`nemesis`]: the crash test's fault schedule (SIGKILL + restart, SIGSTOP/SIGCONT).
//!
//! Invariant: every process started here is killed and reaped when its owner is dropped,
//! so a failing test never leaves servers behind. Every wait is a bounded poll.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod checks;
pub mod cluster;
pub mod history_file;
pub mod nemesis;
pub mod ports;
pub mod process;
pub mod rng;
pub mod shell;
pub mod workload;
