//! The result of a load run: throughput, latency percentiles from merged HDR histograms
//! (microsecond resolution, 3 significant digits), error counts and the load generator's
//! own CPU use. Serializes to one JSON object for scripts; [`LoadReport::to_text`] for
//! people.

use super::LoadError;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency a histogram tracks exactly; longer ones are recorded as this (60 s).
const LATENCY_MAX_US: u64 = 60_000_000;

/// An empty latency histogram in microseconds (1 us .. 60 s, 3 significant digits).
pub(crate) fn new_latency_histogram() -> Result<Histogram<u64>, LoadError> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
        .map_err(|e| LoadError::InvalidSpec(format!("latency histogram: {e:?}")))
}

/// Latency percentiles of one kind of operation, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Operations recorded.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarizes a histogram of microseconds; `None` when it is empty.
    pub fn from_histogram_us(hist: &Histogram<u64>) -> Option<LatencySummary> {
        if hist.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(LatencySummary {
            count: hist.len(),
            mean_ms: hist.mean() / 1000.0,
            p50_ms: ms(hist.value_at_quantile(0.5)),
            p90_ms: ms(hist.value_at_quantile(0.9)),
            p99_ms: ms(hist.value_at_quantile(0.99)),
            p999_ms: ms(hist.value_at_quantile(0.999)),
            max_ms: ms(hist.max()),
        })
    }

    fn to_text(self) -> String {
        format!(
            "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms, self.mean_ms
        )
    }
}

/// What a load run measured. Latencies cover successful measured operations only.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoadReport {
    /// Client threads.
    pub clients: usize,
    /// Targets (connections) the clients shared.
    pub connections: usize,
    /// Distinct keys.
    pub keys: u64,
    /// Key size.
    pub key_bytes: usize,
    /// Value size.
    pub value_bytes: usize,
    /// Configured probability of a read.
    pub read_ratio: f64,
    /// Operations done by the prefill (0 without one).
    pub prefill_ops: u64,
    /// Operations done during the warm-up (successes plus errors).
    pub warmup_ops: u64,
    /// Length of the measured phase, up to the end of its last operation.
    pub seconds: f64,
    /// Successful measured operations.
    pub ops: u64,
    /// Failed measured operations.
    pub errors: u64,
    /// The first error seen in the measured phase, if any.
    pub first_error: Option<String>,
    /// Successful measured operations per second.
    pub throughput_ops_per_sec: f64,
    /// All successful measured operations.
    pub latency: Option<LatencySummary>,
    /// Reads only.
    pub read_latency: Option<LatencySummary>,
    /// Writes only.
    pub write_latency: Option<LatencySummary>,
    /// CPU time this process used during the measured phase (Linux only), in seconds.
    pub client_cpu_secs: Option<f64>,
}

impl LoadReport {
    /// One JSON object on one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A few lines for people.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "clients={} connections={} keys={} key_bytes={} value_bytes={} read_ratio={} \
             ops={} errors={} seconds={:.2}\nthroughput {:.0} ops/s",
            self.clients,
            self.connections,
            self.keys,
            self.key_bytes,
            self.value_bytes,
            self.read_ratio,
            self.ops,
            self.errors,
            self.seconds,
            self.throughput_ops_per_sec
        );
        if let Some(cpu) = self.client_cpu_secs {
            let per_op_us = cpu * 1e6 / self.ops.max(1) as f64;
            out += &format!(
                "  (load generator CPU {:.2} cores, {per_op_us:.0} us/op)",
                cpu / self.seconds.max(1e-9)
            );
        }
        let lines = [
            ("latency ms", self.latency),
            (
                "  reads   ",
                self.read_latency.filter(|_| self.read_ratio > 0.0),
            ),
            (
                "  writes  ",
                self.write_latency.filter(|_| self.read_ratio > 0.0),
            ),
        ];
        for (name, summary) in lines {
            if let Some(s) = summary {
                out += &format!("\n{name}: {}", s.to_text());
            }
        }
        if let Some(e) = &self.first_error {
            out += &format!("\nfirst error: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_an_empty_histogram_is_none() {
        assert_eq!(
            LatencySummary::from_histogram_us(&new_latency_histogram().unwrap()),
            None
        );
    }

    #[test]
    fn summary_reports_percentiles_in_milliseconds() {
        let mut hist = new_latency_histogram().unwrap();
        for us in 1..=1000 {
            hist.record(us).unwrap();
        }
        let s = LatencySummary::from_histogram_us(&hist).unwrap();
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 0.5).abs() < 0.001, "{s:?}");
        assert!((s.p99_ms - 0.99).abs() < 0.001, "{s:?}");
        assert!((s.max_ms - 1.0).abs() < 0.001, "{s:?}");
        assert!((s.mean_ms - 0.5005).abs() < 0.001, "{s:?}");
    }

    #[test]
    fn latencies_beyond_the_bound_saturate_instead_of_failing() {
        let mut hist = new_latency_histogram().unwrap();
        hist.saturating_record(LATENCY_MAX_US * 10);
        let s = LatencySummary::from_histogram_us(&hist).unwrap();
        assert!(s.max_ms >= 59_000.0, "{s:?}");
    }
}
