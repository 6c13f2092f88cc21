//! [`ShellClient`]: one `kvctl shell --json` process, driven one command line at a time.
//!
//! A reader thread forwards each stdout line into a bounded channel, so the test can wait
//! for an answer with a deadline and, if none comes, kill the client (SIGKILL) and treat
//! the operation's outcome as unknown.

use super::process::kvctl_command;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::time::Duration;

/// What came back for one command.
#[derive(Debug)]
pub enum Answer {
    /// One JSON object.
    Json(Value),
    /// No line within the deadline.
    Silence,
    /// The client's stdout closed (it exited).
    Closed,
}

/// A running `kvctl shell --json`.
#[derive(Debug)]
pub struct ShellClient {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl ShellClient {
    /// Starts `kvctl --endpoints .. --timeout-ms T shell --json`; its stderr goes to
    /// `stderr_log` (appended) when given, else is discarded. Every other shell started
    /// by this process adds `--read-mode lease`, so that both read paths face the
    /// crashes and pauses and every history check.
    pub fn spawn(
        endpoints: &[String],
        timeout_ms: u64,
        stderr_log: Option<&std::path::Path>,
    ) -> ShellClient {
        let stderr = match stderr_log {
            Some(path) => Stdio::from(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap(),
            ),
            None => Stdio::null(),
        };
        let mut child = kvctl_command()
            .arg("--endpoints")
            .arg(endpoints.join(","))
            .args(["--timeout-ms", &timeout_ms.to_string()])
            .args(next_read_mode())
            .args(["shell", "--json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = bounded(16);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ShellClient {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// Writes one command line (and flushes). `false` if the client is gone.
    pub fn send(&mut self, line: &str) -> bool {
        assert!(!line.contains('\n'), "one command per line");
        match self.stdin.as_mut() {
            Some(stdin) => writeln!(stdin, "{line}")
                .and_then(|_| stdin.flush())
                .is_ok(),
            None => false,
        }
    }

    /// Waits up to `within` for the next answer line.
    pub fn recv(&self, within: Duration) -> Answer {
        match self.lines.recv_timeout(within) {
            Ok(line) => match serde_json::from_str(&line) {
                Ok(value) => Answer::Json(value),
                Err(e) => panic!("kvctl printed a line that is not JSON ({e}): {line:?}"),
            },
            Err(RecvTimeoutError::Timeout) => Answer::Silence,
            Err(RecvTimeoutError::Disconnected) => Answer::Closed,
        }
    }

    /// Sends `line` and waits up to `within` for its answer.
    pub fn call(&mut self, line: &str, within: Duration) -> Answer {
        if !self.send(line) {
            return Answer::Closed;
        }
        self.recv(within)
    }

    /// SIGKILLs the client (an operation in flight is left with an unknown outcome).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes stdin and waits for a clean exit; `true` if it exited 0.
    pub fn finish(mut self, within: Duration) -> bool {
        drop(self.stdin.take());
        super::process::wait_exit(&mut self.child, within).is_some_and(|s| s.success())
    }
}

impl Drop for ShellClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Alternates `kvctl --read-mode` between the shells of this test process.
fn next_read_mode() -> [&'static str; 2] {
    static SHELLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    if SHELLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2 == 0 {
        ["--read-mode", "read-index"]
    } else {
        ["--read-mode", "lease"]
    }
}
