//! Loopback echo benchmark: calls/s and p50/p99 latency for 1, 16 and 64 callers sharing
//! one `Channel`, with 64 B and 4 KiB payloads, handlers inline and on the worker pool, and
//! a raw baseline (blocking std `TcpStream` ping-pong with TCP_NODELAY, same payload).
//!
//! Run: `cargo bench -p rpc-framework --bench echo`
//! Env: `RPC_BENCH_SECS` (per run, default 1), `RPC_BENCH_RUNS` (runs per case, the
//! median is reported; default 3), `RPC_BENCH_FILTER` (only rpc cases whose label
//! contains it), `RPC_BENCH_WORKERS` (worker threads, default 4). Measures only; asserts nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use rpc_framework::{
    CallOptions, Channel, ChannelConfig, Provider, ProviderConfig, Responder, Service,
};

struct Echo;

impl Service for Echo {
    fn name(&self) -> &'static str {
        "bench.Echo"
    }
    fn methods(&self) -> &'static [&'static str] {
        &["Echo"]
    }
    fn call(&self, _method: &str, request: Bytes, responder: Responder) {
        responder.respond(Ok(request));
    }
}

/// One run's outcome.
struct Sample {
    calls_per_sec: f64,
    /// Process CPU time (user + system, all threads) per call.
    cpu_us_per_call: f64,
    p50_us: f64,
    p99_us: f64,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).unwrap()
}

/// Runs `callers` threads, each doing `one_call` in a closed loop for `duration`.
fn closed_loop<F>(callers: usize, duration: Duration, make_caller: impl Fn() -> F) -> Sample
where
    F: FnMut() + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let cpu_start = process_cpu_secs();
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            let mut one_call = make_caller();
            let stop = stop.clone();
            thread::spawn(move || {
                let mut histogram = new_histogram();
                while !stop.load(Ordering::Relaxed) {
                    let began = Instant::now();
                    one_call();
                    let nanos = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    histogram.saturating_record(nanos.max(1));
                }
                histogram
            })
        })
        .collect();
    thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut total = new_histogram();
    for handle in threads {
        total.add(handle.join().unwrap()).unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = process_cpu_secs() - cpu_start;
    Sample {
        calls_per_sec: total.len() as f64 / elapsed,
        cpu_us_per_call: cpu * 1e6 / total.len().max(1) as f64,
        p50_us: total.value_at_quantile(0.50) as f64 / 1000.0,
        p99_us: total.value_at_quantile(0.99) as f64 / 1000.0,
    }
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, 100 Hz
/// ticks; 0 elsewhere).
fn process_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn report(label: &str, samples: Vec<Sample>) -> f64 {
    let calls = median(samples.iter().map(|s| s.calls_per_sec).collect());
    let p50 = median(samples.iter().map(|s| s.p50_us).collect());
    let p99 = median(samples.iter().map(|s| s.p99_us).collect());
    let cpu = median(samples.iter().map(|s| s.cpu_us_per_call).collect());
    println!("{label:<34} {calls:>12.0} {p50:>10.1} {p99:>10.1} {cpu:>12.1}");
    p50
}

/// How the load is generated.
#[derive(Clone, Copy)]
enum Load {
    /// `callers` threads, each making blocking calls in a closed loop.
    Blocking { callers: usize },
    /// One thread keeping `in_flight` async calls outstanding.
    Async { in_flight: usize },
}

impl Load {
    fn label(self) -> String {
        match self {
            Load::Blocking { callers } => format!("x{callers}"),
            Load::Async { in_flight } => format!("async x{in_flight}"),
        }
    }
}

fn rpc_case(inline: bool, payload: usize, mode: Load, runs: usize, secs: Duration) -> Vec<Sample> {
    let config = ProviderConfig {
        worker_threads: env_or("RPC_BENCH_WORKERS", 4) as usize,
        ..ProviderConfig::default()
    };
    let mut provider = Provider::new(config);
    if inline {
        provider.register_inline(Echo);
    } else {
        provider.register(Echo);
    }
    let server = provider.serve("127.0.0.1:0".parse().unwrap()).unwrap();
    let channel = Channel::new(server.local_addr().to_string(), ChannelConfig::default());
    let body = Bytes::from(vec![7u8; payload]);
    let make_caller = || {
        let channel = channel.clone();
        let body = body.clone();
        let options = CallOptions::default();
        move || {
            let reply = channel
                .call("bench.Echo", "Echo", body.clone(), &options)
                .unwrap();
            assert_eq!(reply.len(), body.len());
        }
    };
    let samples = match mode {
        Load::Blocking { callers } => {
            closed_loop(callers, Duration::from_millis(200), make_caller); // warm-up
            (0..runs)
                .map(|_| closed_loop(callers, secs, make_caller))
                .collect()
        }
        Load::Async { in_flight } => {
            async_pipeline(&channel, &body, in_flight, Duration::from_millis(200));
            (0..runs)
                .map(|_| async_pipeline(&channel, &body, in_flight, secs))
                .collect()
        }
    };
    drop(channel);
    server.shutdown();
    samples
}

/// One thread keeping `in_flight` async calls outstanding on `channel` for `duration`.
fn async_pipeline(channel: &Channel, body: &Bytes, in_flight: usize, duration: Duration) -> Sample {
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<Instant>();
    let options = CallOptions::default();
    let issue = || {
        let done_tx = done_tx.clone();
        let started = Instant::now();
        channel.call_async("bench.Echo", "Echo", body.clone(), &options, move |reply| {
            reply.unwrap();
            done_tx.send(started).unwrap();
        });
    };
    for _ in 0..in_flight {
        issue();
    }
    let start = Instant::now();
    let cpu_start = process_cpu_secs();
    let mut histogram = new_histogram();
    while start.elapsed() < duration {
        let started = done_rx.recv().unwrap();
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        histogram.saturating_record(nanos.max(1));
        issue();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = process_cpu_secs() - cpu_start;
    for _ in 0..in_flight {
        done_rx.recv().unwrap();
    }
    Sample {
        calls_per_sec: histogram.len() as f64 / elapsed,
        cpu_us_per_call: cpu * 1e6 / histogram.len().max(1) as f64,
        p50_us: histogram.value_at_quantile(0.50) as f64 / 1000.0,
        p99_us: histogram.value_at_quantile(0.99) as f64 / 1000.0,
    }
}

/// A blocking echo server: one thread per connection, reads `payload` bytes, writes them.
fn raw_server(payload: usize) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            stream.set_nodelay(true).unwrap();
            thread::spawn(move || {
                let mut buf = vec![0u8; payload];
                while stream.read_exact(&mut buf).is_ok() {
                    if stream.write_all(&buf).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn raw_case(payload: usize, runs: usize, secs: Duration) -> Vec<Sample> {
    let addr = raw_server(payload);
    let make_caller = || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let request = vec![7u8; payload];
        let mut reply = vec![0u8; payload];
        move || {
            stream.write_all(&request).unwrap();
            stream.read_exact(&mut reply).unwrap();
        }
    };
    closed_loop(1, Duration::from_millis(200), make_caller);
    (0..runs)
        .map(|_| closed_loop(1, secs, make_caller))
        .collect()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run tiny then.
    let quick = !std::env::args().any(|arg| arg == "--bench");
    let secs = Duration::from_millis(if quick {
        50
    } else {
        env_or("RPC_BENCH_SECS", 1) * 1000
    });
    let runs = if quick {
        1
    } else {
        env_or("RPC_BENCH_RUNS", 3).max(1) as usize
    };
    println!(
        "echo over loopback: {runs} run(s) of {secs:?} per case, medians; {} cores",
        thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "{:<34} {:>12} {:>10} {:>10} {:>12}",
        "case", "calls/s", "p50 us", "p99 us", "cpu us/call"
    );
    let filter = std::env::var("RPC_BENCH_FILTER").unwrap_or_default();
    for payload in [64, 4096] {
        let raw_p50 = report(
            &format!("raw ping-pong {payload} B"),
            raw_case(payload, runs, secs),
        );
        for inline in [true, false] {
            let mode = if inline { "inline" } else { "pool" };
            let mut single_calls = 0.0;
            let loads = [
                Load::Blocking { callers: 1 },
                Load::Blocking { callers: 16 },
                Load::Blocking { callers: 64 },
                Load::Async { in_flight: 64 },
            ];
            for load in loads {
                let label = format!("rpc {mode} {payload} B {}", load.label());
                if !label.contains(&filter) {
                    continue;
                }
                let samples = rpc_case(inline, payload, load, runs, secs);
                let calls = median(samples.iter().map(|s| s.calls_per_sec).collect());
                let p50 = report(&label, samples);
                if matches!(load, Load::Blocking { callers: 1 }) {
                    single_calls = calls;
                    println!("{:<34} p50 = {:.2} x raw", "", p50 / raw_p50);
                } else if single_calls > 0.0 {
                    println!(
                        "{:<34} {:.2} x single-caller throughput",
                        "",
                        calls / single_calls
                    );
                }
            }
        }
    }
}
