//! What a load run does: client count, phases, key space, value size, read ratio.
//! [`LoadSpec::validate`] rejects every combination the engine cannot run honestly.

use super::{KeySpace, LoadError};
use std::time::Duration;

/// When the measured phase ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopAfter {
    /// After this long (operations in flight then still complete and count).
    Elapsed(Duration),
    /// After exactly this many measured operations (successes plus errors).
    Ops(u64),
}

/// The parameters of one closed-loop run. Build with [`LoadSpec::new`] and adjust fields.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadSpec {
    /// Client threads, each with one operation in flight.
    pub clients: usize,
    /// Write every key once (spread over the clients) before the warm-up, so that reads
    /// find values. Not measured.
    pub prefill: bool,
    /// Unmeasured load before the measured phase.
    pub warmup: Duration,
    /// When the measured phase ends.
    pub stop_after: StopAfter,
    /// Number of distinct keys; each operation picks one uniformly.
    pub keys: u64,
    /// Size of every key.
    pub key_bytes: usize,
    /// Size of every written value.
    pub value_bytes: usize,
    /// Probability that an operation is a read (0.0: all writes, 1.0: all reads).
    pub read_ratio: f64,
    /// Seeds key choice and the value bytes; client `i` uses a stream derived from it.
    pub seed: u64,
    /// How often the progress callback runs.
    pub progress_every: Duration,
}

impl LoadSpec {
    /// `clients` clients; 1 s warm-up, 10 s measured, 10,000 keys of 8 bytes, 256-byte
    /// values, writes only, no prefill, progress every second.
    pub fn new(clients: usize) -> LoadSpec {
        LoadSpec {
            clients,
            prefill: false,
            warmup: Duration::from_secs(1),
            stop_after: StopAfter::Elapsed(Duration::from_secs(10)),
            keys: 10_000,
            key_bytes: 8,
            value_bytes: 256,
            read_ratio: 0.0,
            seed: 1,
            progress_every: Duration::from_secs(1),
        }
    }

    /// Checks the spec against `targets` connections; returns the key space.
    ///
    /// # Errors
    /// [`LoadError::InvalidSpec`] naming the first unusable field.
    pub fn validate(&self, targets: usize) -> Result<KeySpace, LoadError> {
        let invalid = |reason: String| Err(LoadError::InvalidSpec(reason));
        if self.clients == 0 {
            return invalid("at least one client is needed".into());
        }
        if targets == 0 {
            return invalid("at least one target (connection) is needed".into());
        }
        if targets > self.clients {
            return invalid(format!(
                "{targets} connections for {} clients: some would stay idle",
                self.clients
            ));
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return invalid(format!(
                "read ratio {} is not within 0..=1",
                self.read_ratio
            ));
        }
        match self.stop_after {
            StopAfter::Elapsed(d) if d.is_zero() => return invalid("zero duration".into()),
            StopAfter::Ops(0) => return invalid("zero operations".into()),
            _ => {}
        }
        if self.progress_every.is_zero() {
            return invalid("zero progress interval".into());
        }
        KeySpace::new(self.keys, self.key_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_is_valid() {
        assert!(LoadSpec::new(64).validate(8).is_ok());
    }

    #[test]
    fn validate_rejects_unusable_specs() {
        let base = LoadSpec::new(4);
        let cases: Vec<(LoadSpec, usize)> = vec![
            (
                LoadSpec {
                    clients: 0,
                    ..base.clone()
                },
                1,
            ),
            (base.clone(), 0),
            (base.clone(), 5),
            (
                LoadSpec {
                    read_ratio: 1.5,
                    ..base.clone()
                },
                1,
            ),
            (
                LoadSpec {
                    read_ratio: f64::NAN,
                    ..base.clone()
                },
                1,
            ),
            (
                LoadSpec {
                    stop_after: StopAfter::Ops(0),
                    ..base.clone()
                },
                1,
            ),
            (
                LoadSpec {
                    stop_after: StopAfter::Elapsed(Duration::ZERO),
                    ..base.clone()
                },
                1,
            ),
            (
                LoadSpec {
                    key_bytes: 3,
                    ..base.clone()
                },
                1,
            ),
            (
                LoadSpec {
                    progress_every: Duration::ZERO,
                    ..base.clone()
                },
                1,
            ),
        ];
        for (spec, targets) in cases {
            assert!(
                matches!(spec.validate(targets), Err(LoadError::InvalidSpec(_))),
                "{spec:?} with {targets} targets was accepted"
            );
        }
    }
}
