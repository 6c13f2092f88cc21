//! `kvctl`: the command-line client of raftkv (see DESIGN.md, "Command-line contract").
//!
//! ```text
//! kvctl [--endpoints HOST:PORT,...] [--config CLUSTER.toml] [--timeout-ms MS] COMMAND
//!   get KEY | put KEY VALUE | append KEY VALUE | delete KEY | cas KEY EXPECTED NEW
//!   status [--json] | shell [--json] | bench [...]
//! kvctl --read-mode lease ...   (reads from the leader lease; default read-index)
//! ```
//! Exit 0 on success; `get` of a missing key prints nothing and exits 1; errors go to
//! stderr (exit 2 for a failed operation, 64 for bad usage).

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod command;
mod output;
mod shell;

use clap::{Parser, Subcommand};
use clerk::{Clerk, ClerkConfig, ReadMode};
use command::{execute, Command, Outcome};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Command-line client of a raftkv cluster.
#[derive(Debug, Parser)]
#[command(name = "kvctl", version, about)]
struct Cli {
    /// Comma-separated server addresses (default: the config's nodes, else 127.0.0.1:7001-7003).
    #[arg(long, value_delimiter = ',', global = true)]
    endpoints: Vec<String>,
    /// Cluster configuration file to take the endpoints from.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Per-operation deadline in milliseconds (default 10000; 0 = retry forever).
    #[arg(long, global = true)]
    timeout_ms: Option<u64>,
    /// How reads confirm leadership: `read-index` (a heartbeat round) or `lease` (the
    /// leader lease when the servers enable it, else read-index). Both are linearizable.
    #[arg(long, value_enum, global = true, default_value_t = ReadModeArg::ReadIndex)]
    read_mode: ReadModeArg,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ReadModeArg {
    ReadIndex,
    Lease,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print the value of KEY (exit 1 if absent).
    Get { key: String },
    /// Set KEY to VALUE.
    Put {
        key: String,
        /// May start with `-` (e.g. a negative number).
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Append VALUE to KEY's value.
    Append {
        key: String,
        /// May start with `-`.
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Delete KEY.
    Delete { key: String },
    /// Set KEY to NEW if its value is EXPECTED ("" = absent).
    Cas {
        key: String,
        /// May start with `-`.
        #[arg(allow_hyphen_values = true)]
        expected: String,
        /// May start with `-`.
        #[arg(allow_hyphen_values = true)]
        new: String,
    },
    /// One line per node: role, term, commit, applied, leader.
    Status {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// The cluster's configuration, and changes to it.
    #[command(subcommand)]
    Member(MemberCmd),
    /// Hand leadership to voter ID and wait until it leads.
    TransferLeader {
        /// The voter to lead.
        id: u64,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Interactive shell on a terminal; one command per line otherwise.
    Shell {
        /// One JSON object per result line.
        #[arg(long)]
        json: bool,
    },
    /// Closed-loop load generator.
    Bench(bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
enum MemberCmd {
    /// The leader's configuration: voters, learners, configuration index.
    List {
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Remove voter or learner ID (the leader hands leadership over first) and wait until
    /// the leader applied it.
    Remove {
        id: u64,
        /// Refuse unless the configuration is still at this index (`member list`).
        #[arg(long, default_value_t = 0)]
        expect_index: u64,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // Not `Cli::parse()`: clap exits with 2 on a usage error, which scripts would take
    // for a failed operation. Usage errors exit 64 (EX_USAGE); --help/--version exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(64)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Color codes only on a terminal, never in a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let endpoints = match endpoints(&cli) {
        Ok(e) => e,
        Err(reason) => {
            eprintln!("kvctl: {reason}");
            return ExitCode::from(64);
        }
    };
    let mut config = ClerkConfig::new(endpoints);
    config.op_timeout = match cli.timeout_ms {
        Some(0) => None,
        Some(ms) => Some(Duration::from_millis(ms)),
        None => Some(Duration::from_secs(10)),
    };
    config.read_mode = match cli.read_mode {
        ReadModeArg::ReadIndex => ReadMode::ReadIndex,
        ReadModeArg::Lease => ReadMode::Lease,
    };
    let run = |config: ClerkConfig| -> Result<ExitCode, String> {
        match cli.command {
            Cmd::Status { json } => Ok(output::print_status(&make_clerk(config)?, json)),
            Cmd::Shell { json } => Ok(shell::run(&make_clerk(config)?, json)),
            Cmd::Member(MemberCmd::List { json }) => {
                Ok(output::print_members(&make_clerk(config)?, json))
            }
            Cmd::Member(MemberCmd::Remove {
                id,
                expect_index,
                json,
            }) => Ok(output::print_removal(
                &make_clerk(config)?,
                id,
                expect_index,
                json,
            )),
            Cmd::TransferLeader { id, json } => {
                Ok(output::print_transfer(&make_clerk(config)?, id, json))
            }
            Cmd::Bench(args) => bench::run(config, &args),
            Cmd::Get { key } => Ok(one(config, Command::Get { key })?),
            Cmd::Put { key, value } => Ok(one(config, Command::Put { key, value })?),
            Cmd::Append { key, value } => Ok(one(config, Command::Append { key, value })?),
            Cmd::Delete { key } => Ok(one(config, Command::Delete { key })?),
            Cmd::Cas { key, expected, new } => {
                Ok(one(config, Command::Cas { key, expected, new })?)
            }
        }
    };
    match run(config) {
        Ok(code) => code,
        Err(reason) => {
            eprintln!("kvctl: {reason}");
            ExitCode::from(64)
        }
    }
}

fn make_clerk(config: ClerkConfig) -> Result<Clerk, String> {
    Clerk::new(config).map_err(|e| e.to_string())
}

/// Runs one operation: value or nothing on stdout, errors on stderr.
fn one(config: ClerkConfig, command: Command) -> Result<ExitCode, String> {
    let clerk = make_clerk(config)?;
    Ok(match execute(&clerk, &command) {
        Outcome::Written => ExitCode::SUCCESS,
        Outcome::Value(Some(v)) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Outcome::Value(None) => ExitCode::from(1),
        Outcome::Swapped(swapped) => {
            println!("{}", if swapped { "swapped" } else { "not swapped" });
            if swapped {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Outcome::Failed(e) => {
            eprintln!("kvctl: {e}");
            ExitCode::from(2)
        }
    })
}

/// The endpoints: --endpoints, else the config file's nodes, else the local default.
fn endpoints(cli: &Cli) -> Result<Vec<String>, String> {
    if !cli.endpoints.is_empty() {
        return Ok(cli
            .endpoints
            .iter()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect());
    }
    if let Some(path) = &cli.config {
        return output::endpoints_from_config(path);
    }
    Ok((7001..=7003).map(|p| format!("127.0.0.1:{p}")).collect())
}
