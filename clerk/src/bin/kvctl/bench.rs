//! `kvctl bench`: a closed-loop load generator. N client threads share M clerks (M
//! connections per server); each thread issues one operation at a time, picks keys
//! uniformly from a key space, and reads with the given probability. Latencies after
//! the warm-up go into a histogram; progress is printed to stderr every second.

use clap::Args;
use clerk::{Clerk, ClerkConfig};
use hdrhistogram::Histogram;
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `kvctl bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent clients (threads), each with one operation in flight.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Clerks (connections per server) the clients share (default: min(clients, 8)).
    #[arg(long)]
    connections: Option<usize>,
    /// Measure for this many seconds (after the warm-up).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Stop after this many measured operations instead.
    #[arg(long)]
    ops: Option<u64>,
    /// Warm-up seconds, not measured.
    #[arg(long, default_value_t = 1)]
    warmup_secs: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Fraction of reads (0.0 = all writes, 1.0 = all reads).
    #[arg(long, default_value_t = 0.0)]
    read_ratio: f64,
    /// Print the final report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Shared by the client threads.
struct Run {
    measuring: AtomicBool,
    stop: AtomicBool,
    done_ops: AtomicU64,
    errors: AtomicU64,
    ops_limit: Option<u64>,
}

/// Runs the benchmark and prints the report.
pub fn run(config: ClerkConfig, args: &BenchArgs) -> Result<std::process::ExitCode, String> {
    if args.clients == 0 || args.keys == 0 || !(0.0..=1.0).contains(&args.read_ratio) {
        return Err("bench: --clients and --keys must be > 0 and --read-ratio within 0..1".into());
    }
    let connections = args
        .connections
        .unwrap_or(args.clients.min(8))
        .clamp(1, args.clients);
    let clerks: Vec<Clerk> = (0..connections)
        .map(|_| Clerk::new(config.clone()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let run = Arc::new(Run {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        done_ops: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        ops_limit: args.ops,
    });
    let threads: Vec<_> = (0..args.clients)
        .map(|i| {
            let clerk = clerks[i % connections].clone();
            let run = run.clone();
            let (value_size, keys, read_ratio) = (args.value_size, args.keys, args.read_ratio);
            std::thread::spawn(move || {
                client_loop(i as u64, &clerk, &run, value_size, keys, read_ratio)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(args.warmup_secs));
    run.measuring.store(true, Ordering::Release);
    let started = Instant::now();
    progress_until_done(&run, started, Duration::from_secs(args.duration_secs));
    let elapsed = started.elapsed();
    run.stop.store(true, Ordering::Release);
    let mut hist = new_histogram();
    for t in threads {
        if let Ok(h) = t.join() {
            let _ = hist.add(&h);
        }
    }
    report(
        args,
        connections,
        &hist,
        elapsed,
        run.errors.load(Ordering::Relaxed),
    );
    Ok(std::process::ExitCode::SUCCESS)
}

fn new_histogram() -> Histogram<u64> {
    // 1 us .. 60 s, 3 significant digits; the bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

fn progress_until_done(run: &Run, started: Instant, duration: Duration) {
    let mut last = (0u64, started);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let done = run.done_ops.load(Ordering::Relaxed);
        let finished = match run.ops_limit {
            Some(limit) => done >= limit,
            None => started.elapsed() >= duration,
        };
        if last.1.elapsed() >= Duration::from_secs(1) || finished {
            let rate = (done - last.0) as f64 / last.1.elapsed().as_secs_f64();
            eprintln!(
                "[{:>5.1}s] {done} ops, {rate:.0} ops/s, {} errors",
                started.elapsed().as_secs_f64(),
                run.errors.load(Ordering::Relaxed)
            );
            last = (done, Instant::now());
        }
        if finished {
            return;
        }
    }
}

fn client_loop(
    id: u64,
    clerk: &Clerk,
    run: &Run,
    value_size: usize,
    keys: u64,
    read_ratio: f64,
) -> Histogram<u64> {
    let mut hist = new_histogram();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (id + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let value = vec![b'v'; value_size];
    let read_threshold = (read_ratio * u64::MAX as f64) as u64;
    while !run.stop.load(Ordering::Acquire) {
        let key = format!("bench-{:012}", rng.next() % keys).into_bytes();
        let is_read = read_ratio > 0.0 && rng.next() <= read_threshold;
        let start = Instant::now();
        let ok = if is_read {
            clerk.get(key).is_ok()
        } else {
            clerk.put(key, value.clone()).is_ok()
        };
        let micros = start.elapsed().as_micros() as u64;
        if run.measuring.load(Ordering::Acquire) {
            if ok {
                let _ = hist.record(micros.max(1));
                run.done_ops.fetch_add(1, Ordering::Relaxed);
            } else {
                run.errors.fetch_add(1, Ordering::Relaxed);
            }
            if run
                .ops_limit
                .is_some_and(|l| run.done_ops.load(Ordering::Relaxed) >= l)
            {
                break;
            }
        }
    }
    hist
}

fn report(
    args: &BenchArgs,
    connections: usize,
    hist: &Histogram<u64>,
    elapsed: Duration,
    errors: u64,
) {
    let ops = hist.len();
    let throughput = ops as f64 / elapsed.as_secs_f64();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    if args.json {
        println!(
            "{}",
            json!({
                "clients": args.clients, "connections": connections, "value_size": args.value_size,
                "keys": args.keys, "read_ratio": args.read_ratio, "ops": ops, "errors": errors,
                "seconds": elapsed.as_secs_f64(), "throughput": throughput,
                "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99), "p999_ms": ms(0.999),
                "max_ms": hist.max() as f64 / 1000.0,
            })
        );
    } else {
        println!(
            "clients={} connections={} value_size={} read_ratio={} ops={} errors={} seconds={:.2}",
            args.clients,
            connections,
            args.value_size,
            args.read_ratio,
            ops,
            errors,
            elapsed.as_secs_f64()
        );
        println!("throughput {throughput:.0} ops/s");
        println!(
            "latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(0.999),
            hist.max() as f64 / 1000.0
        );
    }
}

/// A tiny PRNG for key choice (xorshift64*).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
