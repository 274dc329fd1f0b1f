//! Helpers shared by the integration tests: running a test's body in a child
//! process (the test binary re-run with an environment variable) and reading
//! how the child ended.
#![allow(dead_code)]

#[cfg(target_os = "linux")]
pub mod procfs;

use std::io::Read;
#[cfg(unix)]
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The environment variable that tells a re-run test binary which child
/// scenario to play.
pub const CHILD_ENV: &str = "MEMGUARD_TEST_CHILD";

/// The scenario this process should play, when it is a child.
pub fn child_scenario() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Re-runs this test binary for exactly the test `test_name`, with
/// `scenario` in [`CHILD_ENV`], and returns what it printed and how it ended.
pub fn run_child(test_name: &str, scenario: &str) -> Output {
    run_child_with(test_name, scenario, &[])
}

/// As [`run_child`], with extra environment variables.
pub fn run_child_with(test_name: &str, scenario: &str, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Command::new(exe);
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, scenario)
        .env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("spawn child test process")
}

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

/// The exit code of a Windows process that died of an access violation.
pub const STATUS_ACCESS_VIOLATION: u32 = 0xC000_0005;

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

#[cfg(target_os = "linux")]
/// Drops `CAP_IPC_LOCK` (and every other capability) from the calling
/// thread, so that `RLIMIT_MEMLOCK` applies to it even when the tests run as
/// root. Only the calling thread is affected.
pub fn drop_capabilities() {
    use rustix::thread::{set_capabilities, CapabilitySet, CapabilitySets};
    set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        },
    )
    .expect("drop capabilities");
}

/// Sets the soft and hard `RLIMIT_MEMLOCK` of this process to `bytes`.
#[cfg(unix)]
pub fn set_memlock_limit(bytes: u64) {
    use rustix::process::{setrlimit, Resource, Rlimit};
    setrlimit(
        Resource::Memlock,
        Rlimit {
            current: Some(bytes),
            maximum: Some(bytes),
        },
    )
    .expect("set RLIMIT_MEMLOCK");
}

/// As [`run_child`], but the child must end within `timeout`: if it is still
/// running then, it is killed and the calling test panics (with what the
/// child printed so far), so that a hanging child cannot hang the suite.
pub fn run_child_timeout(test_name: &str, scenario: &str, timeout: Duration) -> Output {
    let exe = std::env::current_exe().expect("current test binary");
    let child = Command::new(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, scenario)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child test process");
    wait_with_timeout(child, timeout, &format!("child {test_name} [{scenario}]"))
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

/// Waits for `child` (stdout and stderr piped), reading both pipes
/// meanwhile. A child still running after `timeout` is killed and the
/// calling test panics, naming it `what` and showing what it printed.
pub fn wait_with_timeout(mut child: Child, timeout: Duration, what: &str) -> Output {
    let out_reader = read_on_thread(child.stdout.take());
    let err_reader = read_on_thread(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("wait for the child") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let status = child.wait().expect("reap killed child");
                let out = Output {
                    status,
                    stdout: out_reader.join().unwrap_or_default(),
                    stderr: err_reader.join().unwrap_or_default(),
                };
                panic!(
                    "{what} still running after {timeout:?}; killed it\n{}",
                    describe(&out)
                );
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// How long a child may run before it is killed and its test fails.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

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
    match child_scenario() {
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

/// Prints a line and makes sure it has left the process before what comes
/// next (which may kill it).
pub fn mark(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Printed by a child that got through an action that should have killed it.
pub const SURVIVED: &str = "SURVIVED";

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
