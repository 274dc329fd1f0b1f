//! Helpers shared by the integration tests: running a test's body in a child
//! process (the test binary re-run with an environment variable) and reading
//! how the child ended.
#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

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

/// The signal that killed the child, if one did.
pub fn killed_by(out: &Output) -> Option<i32> {
    out.status.signal()
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
        out.status.signal(),
        stdout(out),
        stderr(out)
    )
}

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
