//! A closed-loop load generator shared by `kvctl bench` and the etcd load generator under
//! `bench/etcd-load/`, so that both systems are driven by the same engine and measured
//! with the same histogram.
//!
//! The design (the one etcd's `benchmark` tool uses): `clients` threads, each with exactly
//! one operation in flight, share a bounded number of connections (one [`LoadTarget`]
//! per connection; client `i` uses target `i % targets.len()`). Each client picks keys
//! uniformly from a fixed key space and reads with probability `read_ratio`. An optional
//! prefill writes every key once, then a warm-up runs unmeasured, then the measured phase
//! runs for a duration or an exact operation count. Latencies of the measured phase go
//! into per-client HDR histograms that are merged at the end ([`LoadReport`]).
//!
//! Invariants: an operation is measured if and only if it *started* in the measured
//! phase; with [`StopAfter::Ops`], exactly that many operations are measured (successes
//! plus errors); the reported elapsed time ends when the last measured operation ended.
//!
//! ```no_run
//! use clerk::loadgen::{run_load, LoadSpec, StopAfter};
//! use clerk::{Clerk, ClerkConfig};
//! let targets: Vec<Clerk> = (0..4)
//!     .map(|_| Clerk::new(ClerkConfig::new(vec!["127.0.0.1:7001".into()])))
//!     .collect::<Result<_, _>>()?;
//! let mut spec = LoadSpec::new(16);
//! spec.stop_after = StopAfter::Ops(10_000);
//! let report = run_load(&targets, &spec, &mut |_progress| {})?;
//! println!("{}", report.to_text());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod args;
mod engine;
mod error;
mod keys;
mod prefill;
mod process_cpu;
mod progress;
mod report;
mod shared;
mod spec;

pub use args::LoadArgs;
pub use engine::run_load;
pub use error::LoadError;
pub use keys::KeySpace;
pub use progress::{Phase, Progress};
pub use report::{LatencySummary, LoadReport};
pub use spec::{LoadSpec, StopAfter};

use crate::Clerk;

/// One connection's worth of a system under test, as the load generator sees it.
///
/// # Correctness
/// Implementations are called concurrently from many client threads; each call blocks
/// until the operation finished (closed loop). An `Err` is counted as a failed operation
/// and its latency is not recorded; it must describe the failure on one line.
pub trait LoadTarget: Send + Sync {
    /// Sets `key` to `value`, durably (as the system defines it).
    ///
    /// # Errors
    /// A one-line description of the failure.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), String>;

    /// Reads `key` with the target's read consistency; `Ok(None)` when absent.
    ///
    /// # Errors
    /// A one-line description of the failure.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String>;
}

/// A raftkv [`Clerk`] as a load target: linearizable reads (ReadIndex or lease, as the
/// clerk's `read_mode` says), exactly-once
/// writes. The clerk's own retries are part of the measured latency.
impl LoadTarget for Clerk {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        Clerk::put(
            self,
            bytes::Bytes::copy_from_slice(key),
            bytes::Bytes::copy_from_slice(value),
        )
        .map_err(|e| e.to_string())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        Clerk::get(self, bytes::Bytes::copy_from_slice(key))
            .map(|v| v.map(|b| b.to_vec()))
            .map_err(|e| e.to_string())
    }
}
