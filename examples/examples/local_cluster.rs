//! Runs a 3-node raftkv cluster on 127.0.0.1:7001-7003 in this process, with data under
//! `./data` (or the directory given as the first argument), until Ctrl-C.
//!
//! ```text
//! cargo run --release -p raftkv-examples --example local_cluster
//! ```
//! Then, in another terminal: `cargo run --release -p clerk --bin kvctl -- shell`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use kvserver::config::ClusterConfig;
use kvserver::launch::{data_dir_for, launch_with, LaunchOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CONFIG: &str = r#"# Written by the local_cluster example.
cluster_id = "local-dev"
[[nodes]]
id = 1
addr = "127.0.0.1:7001"
[[nodes]]
id = 2
addr = "127.0.0.1:7002"
[[nodes]]
id = 3
addr = "127.0.0.1:7003"
"#;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local_cluster: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let base = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("data"), PathBuf::from);
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    let config_path = base.join("cluster.toml");
    // The first run creates the cluster; later runs restart it and must find every node's
    // data (a node whose data was deleted refuses to start instead of voting empty).
    let bootstrap = !config_path.exists();
    std::fs::write(&config_path, CONFIG).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let mut config = ClusterConfig::parse(CONFIG)?;
    config.data_dir = Some(base.clone());
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone()).map_err(|e| e.to_string())?;
    }
    let mut nodes = Vec::new();
    for node in &config.nodes {
        let dir = data_dir_for(&config, node.id, None);
        let options = LaunchOptions {
            bootstrap,
            ..LaunchOptions::default()
        };
        let launched = launch_with(&config, node.id, &dir, options);
        nodes.push(launched.map_err(|e| format!("node {}: {e}", node.id))?);
    }
    println!(
        "raftkv: 3 nodes serving on 127.0.0.1:7001, :7002, :7003 (data in {})",
        base.display()
    );
    println!(
        "connect:  cargo run --release -p clerk --bin kvctl -- --config {} shell",
        config_path.display()
    );
    println!("status:   cargo run --release -p clerk --bin kvctl -- status");
    println!("Ctrl-C stops the cluster.");
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("stopping...");
    for node in nodes {
        node.shutdown();
    }
    println!("stopped.");
    Ok(())
}
