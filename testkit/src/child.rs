//! Child processes: a test binary re-run for one scenario, any child waited
//! for with a timeout (killed then, never left hanging), its pipes read on
//! threads so that it never blocks on a full one, and the marks a child
//! prints before an action that should kill it.
//!
//! Two layers: [`wait_until`], [`collect`] and [`Live`] (a child talked to
//! while it runs) never panic (the doctor reports what they return); the
//! helpers for tests ([`run`],
//! [`run_child_timeout`], [`wait_with_timeout`], [`assert_killed_by`])
//! panic with a description of the child, as a failed test should.

use std::io::{self, Read};
#[cfg(unix)]
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The environment variable that tells a re-run test binary which child
/// scenario to play.
pub const CHILD_ENV: &str = "MEMGUARD_TEST_CHILD";

/// How long a child may run before it is killed and its test fails.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// The exit code of a Windows process that died of an access violation.
pub const STATUS_ACCESS_VIOLATION: u32 = 0xC000_0005;

/// Printed by a child that got through an action that should have killed it.
pub const SURVIVED: &str = "SURVIVED";

// ---------------------------------------------------------------------------
// Waiting, with a deadline (never panics)
// ---------------------------------------------------------------------------

/// Waits for `child` until `deadline`. `Ok(Some(status))` when it ended,
/// `Ok(None)` when it was still running then: it has been killed and
/// reaped.
pub fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What [`collect`] gathered of a child.
#[derive(Debug)]
pub struct Collected {
    /// How it ended (killed, when `timed_out`) and everything it printed.
    pub output: Output,
    /// Whether it was still running at the timeout and was killed.
    pub timed_out: bool,
}

/// Reads the piped stdout and stderr of `child` on threads while waiting
/// for it for at most `timeout` (then kills it). Pipes that were not piped
/// read as empty.
pub fn collect(mut child: Child, timeout: Duration) -> io::Result<Collected> {
    let out_reader = read_on_thread(child.stdout.take());
    let err_reader = read_on_thread(child.stderr.take());
    let waited = wait_until(&mut child, Instant::now() + timeout);
    // The readers end once the child (and so the pipes' write ends) is gone.
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let (status, timed_out) = match waited? {
        Some(status) => (status, false),
        None => (child.wait()?, true),
    };
    Ok(Collected {
        output: Output {
            status,
            stdout,
            stderr,
        },
        timed_out,
    })
}

/// Reads `pipe` (when there is one) to its end on a thread, so that the
/// child writing to it never blocks on a full pipe; the thread returns the
/// bytes.
pub fn read_on_thread(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Appends what `pipe` gives to `into` as it arrives, on a thread, so that
/// the bytes can be looked at while the child still runs.
pub fn copy_on_thread(
    mut pipe: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => into
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]),
            }
        }
    })
}

// ---------------------------------------------------------------------------
// A live child: talked to while it runs (never panics)
// ---------------------------------------------------------------------------

/// A running child with piped stdin, stdout and stderr: its output is
/// collected on threads as it arrives (so it never blocks on a full pipe),
/// it has a deadline, and it is killed when dropped.
pub struct Live {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    deadline: Instant,
}

/// Why [`Live::wait_for`] did not see what it waited for.
#[derive(Debug)]
pub enum NotSeen {
    /// The child ended first, with this status.
    Ended(ExitStatus),
    /// The child's deadline passed first (it still runs).
    TimedOut,
    /// Asking whether the child had ended failed.
    Wait(io::Error),
}

/// How [`Live::finish_by`] saw the child end, and everything it printed.
#[derive(Debug)]
pub struct Ended {
    /// `Ok(Some(status))` when it ended by itself, `Ok(None)` when it was
    /// still running at the deadline and has been killed.
    pub status: io::Result<Option<ExitStatus>>,
    /// All it wrote to stdout.
    pub stdout: Vec<u8>,
    /// All it wrote to stderr.
    pub stderr: Vec<u8>,
}

impl Live {
    /// Starts `cmd` with all three pipes, to be finished within `timeout`.
    pub fn start(cmd: &mut Command, timeout: Duration) -> io::Result<Live> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(pipe) = child.stdout.take() {
            readers.push(copy_on_thread(pipe, Arc::clone(&stdout)));
        }
        if let Some(pipe) = child.stderr.take() {
            readers.push(copy_on_thread(pipe, Arc::clone(&stderr)));
        }
        Ok(Live {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            readers,
            deadline: Instant::now() + timeout,
        })
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What the child has written to stdout so far, as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// What the child has written to stderr so far, as text.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Writes `bytes` to the child's stdin (and flushes).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        match self.stdin.as_mut() {
            Some(pipe) => pipe.write_all(bytes).and_then(|()| pipe.flush()),
            None => Err(io::Error::other("stdin already closed")),
        }
    }

    /// Waits, until the deadline, for `seen` to find something in the
    /// child's stdout: it is given the complete lines written so far (once
    /// the child has ended, all of it).
    pub fn wait_for<T>(&mut self, mut seen: impl FnMut(&str) -> Option<T>) -> Result<T, NotSeen> {
        loop {
            let text = self.stdout_text();
            let lines = text.rfind('\n').map_or("", |end| &text[..=end]);
            if let Some(found) = seen(lines) {
                return Ok(found);
            }
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    // Let the readers catch up with the last output.
                    std::thread::sleep(Duration::from_millis(50));
                    return seen(&self.stdout_text()).ok_or(NotSeen::Ended(status));
                }
                Ok(None) => {}
                Err(e) => return Err(NotSeen::Wait(e)),
            }
            if Instant::now() > self.deadline {
                return Err(NotSeen::TimedOut);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Closes the child's stdin and waits for it until `deadline` (then
    /// kills it), and returns how it ended and all it printed. Once it has
    /// returned, the child is gone: the `Live` has nothing more to give.
    pub fn finish_by(&mut self, deadline: Instant) -> Ended {
        drop(self.stdin.take());
        let status = wait_until(&mut self.child, deadline);
        // The readers end once the child (and so the pipes' write ends) is
        // gone.
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let take = |buf: &Mutex<Vec<u8>>| {
            std::mem::take(&mut *buf.lock().unwrap_or_else(|e| e.into_inner()))
        };
        Ended {
            status,
            stdout: take(&self.stdout),
            stderr: take(&self.stderr),
        }
    }

    /// [`finish_by`](Live::finish_by) the deadline given at the start.
    pub fn finish(&mut self) -> Ended {
        self.finish_by(self.deadline)
    }

    /// Kills the child (if it still runs) and reaps it.
    pub fn kill(&mut self) {
        // A child already reaped is not signalled again (std keeps its
        // status), so this never reaches a reused process id.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// How a child ended, in words
// ---------------------------------------------------------------------------

/// The signal that killed the child, if one did (never on Windows, where
/// a crash is an exit code: see [`STATUS_ACCESS_VIOLATION`]).
pub fn killed_by(out: &Output) -> Option<i32> {
    #[cfg(unix)]
    return out.status.signal();
    #[cfg(not(unix))]
    {
        let _ = out;
        None
    }
}

/// The child's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The child's stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A description of how the child ended, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?} (signal {:?})\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        killed_by(out),
        stdout(out),
        stderr(out)
    )
}

// ---------------------------------------------------------------------------
// A test binary re-run for one scenario (panics: for tests)
// ---------------------------------------------------------------------------

/// The scenario this process should play, when it is a child.
pub fn child_scenario() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// The command that re-runs this test binary for exactly the test
/// `test_name`, with `scenario` in [`CHILD_ENV`].
pub fn child_command(test_name: &str, scenario: &str) -> Command {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Command::new(exe);
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, scenario)
        .env("RUST_BACKTRACE", "0");
    cmd
}

/// Re-runs this test binary for exactly the test `test_name`, with
/// `scenario` in [`CHILD_ENV`], and returns what it printed and how it ended.
pub fn run_child(test_name: &str, scenario: &str) -> Output {
    run_child_with(test_name, scenario, &[])
}

/// As [`run_child`], with extra environment variables.
pub fn run_child_with(test_name: &str, scenario: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = child_command(test_name, scenario);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("spawn child test process")
}

/// As [`run_child`], but the child must end within `timeout`: if it is still
/// running then, it is killed and the calling test panics (with what the
/// child printed so far), so that a hanging child cannot hang the suite.
pub fn run_child_timeout(test_name: &str, scenario: &str, timeout: Duration) -> Output {
    let child = child_command(test_name, scenario)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child test process");
    wait_with_timeout(child, timeout, &format!("child {test_name} [{scenario}]"))
}

/// Waits for `child` (stdout and stderr piped), reading both pipes
/// meanwhile. A child still running after `timeout` is killed and the
/// calling test panics, naming it `what` and showing what it printed.
pub fn wait_with_timeout(child: Child, timeout: Duration, what: &str) -> Output {
    let got = collect(child, timeout).expect("wait for the child");
    assert!(
        !got.timed_out,
        "{what} still running after {timeout:?}; killed it\n{}",
        describe(&got.output)
    );
    got.output
}

/// What this process does for the test function `test`.
pub enum Role {
    /// The ordinary test run: spawn children and judge them.
    Parent,
    /// A child spawned for one of `test`'s scenarios: play it.
    Child(String),
    /// A child spawned for another test's scenario: do nothing.
    Bystander,
}

/// This process's role for `test`, from [`CHILD_ENV`] (`<test>/<scenario>`).
pub fn role(test: &str) -> Role {
    role_in(child_scenario().as_deref(), test)
}

/// The role that the [`CHILD_ENV`] value `env` gives a process for `test`.
pub fn role_in(env: Option<&str>, test: &str) -> Role {
    match env {
        None => Role::Parent,
        Some(s) => match s.strip_prefix(test).and_then(|rest| rest.strip_prefix('/')) {
            Some(scenario) => Role::Child(scenario.to_owned()),
            None => Role::Bystander,
        },
    }
}

/// Runs `scenario` of `test` in a child (killed, and the test failed, after
/// [`CHILD_TIMEOUT`]) and checks that the child really ran that one test, so
/// a misspelt test name cannot pass as a clean exit.
pub fn run(test: &str, scenario: &str) -> Output {
    let out = run_child_timeout(test, &format!("{test}/{scenario}"), CHILD_TIMEOUT);
    assert!(
        stdout(&out).contains("running 1 test"),
        "child for {test} [{scenario}] did not run exactly one test (test name wrong?)\n{}",
        describe(&out)
    );
    out
}

/// Whether the child exited 0 after printing `marker`.
pub fn passed(out: &Output, marker: &str) -> bool {
    out.status.success() && stdout(out).contains(marker)
}

/// Asserts the child [`passed`]: exited 0 after printing `marker`; `what`
/// names it in the message.
pub fn assert_passed(out: &Output, marker: &str, what: &str) {
    assert!(
        passed(out, marker),
        "{what}: expected a clean exit with {marker:?}\n{}",
        describe(out)
    );
}

/// [`run`]s `scenario` of `test` and asserts it exited 0 after printing
/// `marker` (see [`assert_passed`]).
pub fn run_passing(test: &str, scenario: &str, marker: &str) {
    let out = run(test, scenario);
    assert_passed(&out, marker, &format!("{test} [{scenario}]"));
}

/// The whole of a test that runs in children and must pass there: in the
/// parent, each of `scenarios` of `test` is [`run_passing`] (exit 0 after
/// printing `marker`); in a child for one of them, `body` plays it; in a
/// child for another test, nothing happens.
pub fn passes_in_children(test: &str, scenarios: &[&str], marker: &str, body: impl FnOnce(&str)) {
    match role(test) {
        Role::Bystander => {}
        Role::Child(scenario) => body(&scenario),
        Role::Parent => {
            for scenario in scenarios {
                run_passing(test, scenario, marker);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Marks: what a child prints before an action that should kill it
// ---------------------------------------------------------------------------

/// Prints a line and makes sure it has left the process before what comes
/// next (which may block, crash or exit).
pub fn mark(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Called right after an action that should have killed the process.
pub fn survived(action: &str) -> ! {
    mark(&format!("{SURVIVED}: {action}"));
    std::process::exit(3)
}

/// Asserts the child was killed by `signal` after printing `marker`.
pub fn assert_killed_by(out: &Output, signal: i32, marker: &str, what: &str) {
    let text = stdout(out);
    assert!(
        text.contains(marker),
        "{what}: the child never reached the action (marker {marker:?} missing)\n{}",
        describe(out)
    );
    assert!(
        !text.contains(SURVIVED),
        "{what}: the child survived the action\n{}",
        describe(out)
    );
    assert_eq!(
        killed_by(out),
        Some(signal),
        "{what}: expected the child to be killed by signal {signal}\n{}",
        describe(out)
    );
}
