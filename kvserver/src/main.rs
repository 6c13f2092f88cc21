//! The `kvserver` binary: runs one node of a raftkv cluster.
//!
//! `kvserver --config CLUSTER.toml --id N [--data-dir DIR] [--bootstrap]`. A bad configuration or data
//! directory exits non-zero with a one-line reason; SIGTERM/SIGINT shut down cleanly.

use clap::Parser;
use kvserver::config::ClusterConfig;
use kvserver::launch::{data_dir_for, launch_with, LaunchOptions};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Runs one node of a raftkv cluster.
#[derive(Debug, Parser)]
#[command(name = "kvserver", version, about)]
struct Args {
    /// The cluster configuration file (TOML).
    #[arg(long)]
    config: PathBuf,
    /// This node's id (one of the config's [[nodes]]).
    #[arg(long)]
    id: u64,
    /// Data directory (default: <config data_dir or ./data>/node-<id>).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// First start of a new cluster: initialise this node's empty data directory. Without
    /// it a node refuses to start with no data (lost, or looked for in the wrong place);
    /// once the directory holds the node's data it is ignored.
    #[arg(long)]
    bootstrap: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Color codes only on a terminal, never in a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("kvserver: {reason}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let config = ClusterConfig::load(&args.config).map_err(|e| e.to_string())?;
    raise_open_file_limit(config.connections.max_clients);
    let dir = data_dir_for(&config, args.id, args.data_dir.as_deref());
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    let options = LaunchOptions {
        bootstrap: args.bootstrap,
        ..LaunchOptions::default()
    };
    let node = launch_with(&config, args.id, &dir, options).map_err(|e| e.to_string())?;
    let failure = loop {
        if stop.load(Ordering::Relaxed) {
            break None;
        }
        if let Some(reason) = node.server.fatal_error() {
            break Some(reason);
        }
        if let (true, Some(reason)) = node.node.stopped() {
            break Some(reason);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    tracing::info!(node = args.id, "shutting down");
    node.shutdown();
    match failure {
        None => Ok(()),
        Some(reason) => Err(reason),
    }
}

/// Raises the soft limit on open files to the hard limit (as Go programs such as etcd do
/// at start-up): the default soft limit (often 1024) is below what `[connections]
/// max_clients` plus the peers and the WAL need, and a process out of descriptors cannot
/// accept a restarted peer. Logged; never fatal.
fn raise_open_file_limit(max_clients: usize) {
    let open_files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!("could not read or raise the open-file limit: {e}");
            return;
        }
    };
    if open_files < max_clients as u64 + 256 {
        tracing::warn!(
            open_files,
            max_clients,
            "the open-file limit is below connections.max_clients + 256: when descriptors run \
             out, the quietest client connection is closed to let newcomers in"
        );
    }
}
