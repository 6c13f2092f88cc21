//! Processes: where the binaries are, sending signals without `unsafe` (the `kill`
//! command), bounded waits, and one-shot runs with captured output.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// How long any single wait in these tests may take before it is called a hang. Generous
/// on purpose: the tests assert what happens, not how fast.
pub const HANG: Duration = Duration::from_secs(60);

/// The `kvserver` binary built for this test.
pub fn kvserver_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kvserver"))
}

/// Sources `kvctl` is built from, relative to the workspace root.
const KVCTL_SOURCES: [&str; 5] = [
    "clerk/src",
    "clerk/Cargo.toml",
    "rpc-framework/src",
    "proto/src",
    "proto/proto",
];

/// The `kvctl` binary, next to `kvserver` (cargo builds it for clerk's integration tests,
/// but `cargo test -p kvserver` does not rebuild it).
///
/// # Panics
/// When it has not been built, or is older than its sources, with the command that
/// builds it.
pub fn kvctl_bin() -> PathBuf {
    let path = kvserver_bin().with_file_name(format!("kvctl{}", std::env::consts::EXE_SUFFIX));
    let build = "run `cargo build -p clerk --bin kvctl` (same CARGO_TARGET_DIR and profile) \
                 or `cargo test --workspace`";
    assert!(
        path.is_file(),
        "kvctl not found at {}: {build}",
        path.display()
    );
    let built = modified(&path);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let Some(newer) = KVCTL_SOURCES
        .iter()
        .find_map(|s| newer_file(&root.join(s), built))
    {
        panic!(
            "kvctl at {} is older than {}: {build}",
            path.display(),
            newer.display()
        );
    }
    path
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).and_then(|m| m.modified()).unwrap()
}

/// A file under `path` (a file or a directory) modified after `than`, if any.
fn newer_file(path: &Path, than: SystemTime) -> Option<PathBuf> {
    if path.is_file() {
        return (modified(path) > than).then(|| path.to_path_buf());
    }
    std::fs::read_dir(path)
        .ok()?
        .find_map(|entry| newer_file(&entry.ok()?.path(), than))
}

/// A signal sent with the `kill` command (std can only SIGKILL a child).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Graceful shutdown.
    Term,
    /// Ctrl-C.
    Int,
    /// Freeze the process (it keeps its sockets; peers see silence).
    Stop,
    /// Unfreeze.
    Cont,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Term => "TERM",
            Signal::Int => "INT",
            Signal::Stop => "STOP",
            Signal::Cont => "CONT",
        }
    }
}

/// Sends `signal` to process `pid`.
///
/// # Panics
/// When `kill` cannot be run or fails.
pub fn send_signal(pid: u32, signal: Signal) {
    let status = Command::new("kill")
        .args(["-s", signal.name(), &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run `kill` to send SIG{}: {e}", signal.name()));
    assert!(
        status.success(),
        "kill -s {} {pid} failed: {status}",
        signal.name()
    );
}

/// Polls `child` until it exits or `within` passes.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `condition` every 20 ms until it holds; panics after `within` naming `what`.
pub fn wait_until(within: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a finished process printed.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Finished {
    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The single line of stderr.
    ///
    /// # Panics
    /// When stderr is not exactly one non-empty line.
    pub fn one_stderr_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(
            lines.len() == 1 && !lines[0].trim().is_empty(),
            "stderr must be exactly one line, got {} lines:\n{}",
            lines.len(),
            self.stderr
        );
        lines[0]
    }
}

/// Runs `command` to completion (stdin closed, output captured); kills it and panics if
/// it runs longer than `within`.
pub fn run(mut command: Command, within: Duration) -> Finished {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let status = wait_exit(&mut child, within);
    let elapsed = started.elapsed();
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{command:?} did not exit within {within:?}");
    };
    Finished {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        elapsed,
    }
}

/// Reads a pipe to the end on its own thread (so a full pipe never blocks the child).
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// A `kvserver` command line with the default logging environment (what a user gets:
/// `info`, and colors decided by the binary).
pub fn kvserver_command() -> Command {
    let mut command = Command::new(kvserver_bin());
    command.env_remove("RUST_LOG").env_remove("NO_COLOR");
    command
}

/// A `kvctl` command line with the default logging environment.
pub fn kvctl_command() -> Command {
    let mut command = Command::new(kvctl_bin());
    command.env_remove("RUST_LOG").env_remove("NO_COLOR");
    command
}
