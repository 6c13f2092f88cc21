//! `kvctl`'s command-line contract (DESIGN.md, "Command-line contract"): arguments, exit
//! codes (0 ok, 1 absent key / failed cas / no leader, 2 failed operation, 64 bad usage),
//! and what goes to stdout and stderr, against a real in-process 3-node cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use kvserver::config::ClusterConfig;
use kvserver::launch::{launch_with, LaunchOptions, RunningNode};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Three nodes in this process, on loopback, with their config file written out.
struct Cluster {
    addrs: Vec<String>,
    config_path: PathBuf,
    _nodes: Vec<RunningNode>,
    _tmp: tempfile::TempDir,
}

// Ports below the ephemeral range (a port from binding to 0 can be taken by any
// outgoing connection before the node binds it); shared with kvserver's process tests.
#[path = "../../kvserver/tests/e2e/ports.rs"]
mod ports;
use ports::free_ports;

impl Cluster {
    fn start() -> Cluster {
        Cluster::start_with("")
    }

    /// Starts three nodes; `extra` is appended to the TOML.
    fn start_with(extra: &str) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let addrs: Vec<String> = free_ports(3)
            .into_iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let mut toml = String::from("cluster_id = \"cli\"\n");
        for (i, addr) in addrs.iter().enumerate() {
            toml.push_str(&format!("[[nodes]]\nid = {}\naddr = \"{addr}\"\n", i + 1));
        }
        toml.push_str(extra);
        let config_path = tmp.path().join("cluster.toml");
        std::fs::write(&config_path, &toml).unwrap();
        let config = ClusterConfig::parse(&toml).unwrap();
        let nodes: Vec<RunningNode> = (1..=3)
            .map(|id| {
                let dir = tmp.path().join(format!("node-{id}"));
                let options = LaunchOptions {
                    bootstrap: true,
                    ..LaunchOptions::default()
                };
                launch_with(&config, id, &dir, options).unwrap()
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !nodes.iter().any(|n| n.node.state().is_leader) {
            assert!(Instant::now() < deadline, "no leader elected");
            std::thread::sleep(Duration::from_millis(10));
        }
        Cluster {
            addrs,
            config_path,
            _nodes: nodes,
            _tmp: tmp,
        }
    }

    /// `kvctl --endpoints ... ARGS`.
    fn kvctl(&self, args: &[&str]) -> Output {
        kvctl(
            &[&["--endpoints", &self.addrs.join(",")], args].concat(),
            None,
        )
    }
}

/// Runs kvctl with `args` (and `stdin` piped in, if given).
fn kvctl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvctl"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        std::io::Write::write_all(&mut input, text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {:?} stderr: {:?}",
        stdout(out),
        stderr(out)
    );
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    for args in [
        &[][..],
        &["get"],
        &["put", "k"],
        &["frob", "k"],
        &["--timeout-ms", "soon", "get", "k"],
        &["cas", "k", "v"],
    ] {
        let out = kvctl(args, None);
        assert_exit(&out, 64);
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
        assert!(
            !stderr(&out).trim().is_empty(),
            "{args:?}: a reason on stderr"
        );
    }
    let help = kvctl(&["--help"], None);
    assert_exit(&help, 0);
    assert!(stdout(&help).contains("Usage"));
    let version = kvctl(&["--version"], None);
    assert_exit(&version, 0);
    assert!(stdout(&version).starts_with("kvctl "));
}

#[test]
fn a_missing_config_file_is_a_usage_error_on_one_line() {
    let out = kvctl(&["--config", "/nonexistent/cluster.toml", "get", "k"], None);
    assert_exit(&out, 64);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("/nonexistent/cluster.toml"), "{err:?}");
}

#[test]
fn no_reachable_server_is_a_failed_operation_exit_2() {
    let port = free_ports(1)[0];
    let endpoint = format!("127.0.0.1:{port}");
    let out = kvctl(
        &[
            "--endpoints",
            &endpoint,
            "--timeout-ms",
            "300",
            "put",
            "k",
            "v",
        ],
        None,
    );
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.contains("timed out") && err.contains("not applied"),
        "{err:?}"
    );
}

#[test]
fn one_shot_commands_follow_the_exit_code_contract() {
    let cluster = Cluster::start();
    let put = cluster.kvctl(&["put", "greeting", "hello"]);
    assert_exit(&put, 0);
    assert!(put.stdout.is_empty() && put.stderr.is_empty());
    assert_exit(&cluster.kvctl(&["append", "greeting", ", world"]), 0);
    let get = cluster.kvctl(&["get", "greeting"]);
    assert_exit(&get, 0);
    assert_eq!(stdout(&get), "hello, world\n");

    let missing = cluster.kvctl(&["get", "nope"]);
    assert_exit(&missing, 1);
    assert!(missing.stdout.is_empty() && missing.stderr.is_empty());

    let swapped = cluster.kvctl(&["cas", "greeting", "hello, world", "bye"]);
    assert_exit(&swapped, 0);
    assert_eq!(stdout(&swapped), "swapped\n");
    let not_swapped = cluster.kvctl(&["cas", "greeting", "hello, world", "again"]);
    assert_exit(&not_swapped, 1);
    assert_eq!(stdout(&not_swapped), "not swapped\n");
    assert_exit(&cluster.kvctl(&["cas", "fresh", "", "created"]), 0);

    // Values may start with '-' (a negative counter, a dash-prefixed token).
    assert_exit(&cluster.kvctl(&["put", "counter", "-5"]), 0);
    assert_exit(&cluster.kvctl(&["cas", "counter", "-5", "-6"]), 0);
    assert_exit(&cluster.kvctl(&["append", "counter", "-x"]), 0);
    assert_eq!(stdout(&cluster.kvctl(&["get", "counter"])), "-6-x\n");

    assert_exit(&cluster.kvctl(&["delete", "greeting"]), 0);
    assert_exit(&cluster.kvctl(&["get", "greeting"]), 1);

    // Endpoints from the cluster's config file.
    let config = cluster.config_path.to_str().unwrap();
    let via_config = kvctl(&["--config", config, "get", "fresh"], None);
    assert_exit(&via_config, 0);
    assert_eq!(stdout(&via_config), "created\n");
}

#[test]
fn status_prints_one_line_per_node_in_text_and_json() {
    let cluster = Cluster::start();
    let text = cluster.kvctl(&["status"]);
    assert_exit(&text, 0);
    let lines: Vec<String> = stdout(&text).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, addr) in lines.iter().zip(&cluster.addrs) {
        for field in ["id=", "role=", "term=", "commit=", "applied=", "leader="] {
            assert!(line.contains(field), "{line:?} lacks {field}");
        }
        // The bootstrap configuration: three voters, no learners, made by no entry.
        assert!(
            line.contains("voters=(1 2 3) learners=() config_index=0"),
            "{line:?}"
        );
        assert!(line.contains(&format!("addr={addr}")), "{line:?}");
    }
    assert!(lines.iter().any(|l| l.contains("role=leader")), "{lines:?}");

    let json = cluster.kvctl(&["status", "--json"]);
    assert_exit(&json, 0);
    let objects: Vec<Value> = stdout(&json)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 3);
    let leaders = objects.iter().filter(|o| o["role"] == "leader").count();
    assert!(leaders >= 1, "{objects:?}");
    for o in &objects {
        for field in ["id", "addr", "role", "term", "commit", "applied", "leader"] {
            assert!(o.get(field).is_some(), "{o} lacks {field}");
        }
        assert_eq!(o["voters"], serde_json::json!([1, 2, 3]), "{o}");
        assert_eq!(o["learners"], serde_json::json!([]), "{o}");
        assert_eq!(o["config_index"], 0, "{o}");
    }
}

#[test]
fn shell_reads_one_command_per_line_and_answers_one_line_each() {
    let cluster = Cluster::start();
    let endpoints = cluster.addrs.join(",");
    let script = "put a 1\nappend a  two words\n\n# a comment\nget a\nget nope\nfrob\n";
    let text = kvctl(&["--endpoints", &endpoints, "shell"], Some(script));
    assert_exit(&text, 0);
    let lines: Vec<&str> = stdout_lines(&text);
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(&lines[..4], &["OK", "OK", "1two words", "(nil)"]);
    assert!(lines[4].starts_with("error: "), "{lines:?}");

    let script = "put b x\ncas b x y\ncas b x z\nget b\nget nope\ndelete b\nget \"unterminated\n";
    let json = kvctl(
        &["--endpoints", &endpoints, "shell", "--json"],
        Some(script),
    );
    assert_exit(&json, 0);
    let answers: Vec<Value> = stdout_lines(&json)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let expected = [
        r#"{"ok":true}"#,
        r#"{"ok":true,"swapped":true}"#,
        r#"{"ok":true,"swapped":false}"#,
        r#"{"ok":true,"value":"y"}"#,
        r#"{"ok":true,"value":null}"#,
        r#"{"ok":true}"#,
    ];
    assert_eq!(answers.len(), expected.len() + 1, "{answers:?}");
    for (answer, want) in answers.iter().zip(expected) {
        assert_eq!(*answer, serde_json::from_str::<Value>(want).unwrap());
    }
    let bad = &answers[expected.len()];
    assert_eq!(bad["ok"], false);
    assert_eq!(
        bad["definite"], true,
        "a line that does not parse did nothing"
    );
    assert!(bad["error"].as_str().unwrap().contains("quote"), "{bad}");
}

fn stdout_lines(out: &Output) -> Vec<&str> {
    std::str::from_utf8(&out.stdout).unwrap().lines().collect()
}

/// A `kvctl shell --json` driven one line at a time.
struct Shell {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Shell {
    fn spawn(cluster: &Cluster) -> Shell {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kvctl"))
            .args([
                "--endpoints",
                &cluster.addrs.join(","),
                "--timeout-ms",
                "30000",
            ])
            .args(["shell", "--json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Shell { child, lines }
    }

    /// Sends one command and reads its answer (kvctl answers within its --timeout-ms).
    fn call(&mut self, line: &str) -> Value {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        serde_json::from_str(&self.lines.next().unwrap().unwrap()).unwrap()
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ok() -> Value {
    serde_json::json!({"ok": true})
}

/// Regression: the clerk moved its acknowledgement watermark past a first write that was
/// never applied; the servers took the unknown client with a watermark above 1 for an
/// evicted one and refused every later write with SESSION_EXPIRED.
#[test]
fn a_shell_keeps_writing_after_its_first_write_was_refused() {
    let cluster = Cluster::start_with("[limits]\nmax_value_bytes = 1024\n");
    let mut shell = Shell::spawn(&cluster);
    let refused = shell.call(&format!("put big {}", "x".repeat(2000)));
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["definite"], true, "{refused}");
    assert_eq!(shell.call("put a 1"), ok());
    assert_eq!(shell.call("append a 2"), ok());
    assert_eq!(shell.call("get a")["value"], "12");
}

/// Regression: a clerk whose session the servers evicted (more clients than
/// `max_sessions`) was refused with SESSION_EXPIRED forever. Sessions are registered now:
/// the evicted shell's next write is refused unapplied, so the clerk registers a new
/// session and applies it there, once.
#[test]
fn a_shell_whose_session_was_evicted_continues_with_a_new_one() {
    let cluster = Cluster::start_with("[limits]\nmax_sessions = 2\n");
    let mut shell = Shell::spawn(&cluster);
    assert_eq!(shell.call("put a 1"), ok());
    // Two other clients: the second one's session evicts the shell's (least recent).
    assert_exit(&cluster.kvctl(&["put", "b", "1"]), 0);
    assert_exit(&cluster.kvctl(&["put", "c", "1"]), 0);
    assert_eq!(shell.call("append a 2"), ok());
    assert_eq!(shell.call("append a 3"), ok());
    assert_eq!(shell.call("get a")["value"], "123");
}

/// Issue 13: `kvctl transfer-leader ID` hands leadership over and returns once ID leads;
/// a target that is not another voter is refused.
#[test]
fn transfer_leader_hands_leadership_to_the_named_voter() {
    let cluster = Cluster::start();
    let json = cluster.kvctl(&["status", "--json"]);
    let objects: Vec<Value> = stdout(&json)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let leader = objects
        .iter()
        .find(|o| o["role"] == "leader")
        .and_then(|o| o["id"].as_u64())
        .expect("a leader");
    let target = (1..=3).find(|id| *id != leader).unwrap();
    let out = cluster.kvctl(&["transfer-leader", &target.to_string(), "--json"]);
    assert_exit(&out, 0);
    let reply: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(reply["leader"], target, "{reply}");
    let status = cluster.kvctl(&["status"]);
    assert!(
        stdout(&status)
            .lines()
            .any(|l| l.contains(&format!("id={target} ")) && l.contains("role=leader")),
        "{}",
        stdout(&status)
    );
    let refused = cluster.kvctl(&["transfer-leader", "9"]);
    assert_exit(&refused, 2);
}

/// Issue 13: `kvctl member remove` takes a follower out, then the leader (which hands
/// leadership over first); the cluster keeps serving writes with the voters left, and a
/// stale expected index or the last voter is refused.
#[test]
fn member_remove_shrinks_the_cluster_and_removes_the_leader_through_a_transfer() {
    let cluster = Cluster::start();
    let list = cluster.kvctl(&["member", "list", "--json"]);
    assert_exit(&list, 0);
    let before: Value = serde_json::from_str(stdout(&list).trim()).unwrap();
    assert_eq!(before["voters"], serde_json::json!([1, 2, 3]), "{before}");
    let leader = before["leader"].as_u64().unwrap();
    let follower = (1..=3).find(|id| *id != leader).unwrap();

    let stale = cluster.kvctl(&[
        "member",
        "remove",
        &follower.to_string(),
        "--expect-index",
        "7",
    ]);
    assert_exit(&stale, 2);

    let out = cluster.kvctl(&["member", "remove", &follower.to_string(), "--json"]);
    assert_exit(&out, 0);
    let after: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let voters: Vec<u64> = (1..=3).filter(|id| *id != follower).collect();
    assert_eq!(after["voters"], serde_json::json!(voters), "{after}");
    assert!(after["config_index"].as_u64().unwrap() > 0, "{after}");
    assert_exit(&cluster.kvctl(&["put", "k", "v1"]), 0);

    let out = cluster.kvctl(&["member", "remove", &leader.to_string(), "--json"]);
    assert_exit(&out, 0);
    let last: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let remaining = voters.iter().copied().find(|id| *id != leader).unwrap();
    assert_eq!(last["voters"], serde_json::json!([remaining]), "{last}");
    assert_eq!(last["leader"], remaining, "{last}");
    assert_exit(&cluster.kvctl(&["put", "k", "v2"]), 0);
    let get = cluster.kvctl(&["get", "k"]);
    assert_exit(&get, 0);
    assert_eq!(stdout(&get).trim(), "v2");

    let refused = cluster.kvctl(&["member", "remove", &remaining.to_string()]);
    assert_exit(&refused, 2);
}
