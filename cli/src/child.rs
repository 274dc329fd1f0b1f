//! The doctor's self-test children: `memguard selftest <test>` run with a
//! timeout (through the workspace's child runner, `memguard-testkit`), and
//! what the child printed read back: its `MARK` lines and its `RESULT` JSON.

use std::process::{Command, ExitStatus, Stdio};

use memguard_testkit::child as runner;
use serde_json::Value;

use crate::doctor::CHILD_TIMEOUT;
use crate::platform;

/// How a self-test child ended and what it printed.
pub struct ChildRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ChildRun {
    /// Whether the child printed `MARK <marker>...`.
    pub fn marked(&self, marker: &str) -> bool {
        self.stdout.lines().any(|l| {
            l.strip_prefix("MARK ")
                .is_some_and(|m| m.starts_with(marker))
        })
    }

    /// How it ended, in words.
    pub fn ending(&self) -> String {
        platform::ending(&self.status)
    }

    /// The JSON on its `RESULT` line, if it exited 0 with one.
    pub fn result(self) -> Result<Value, String> {
        let line = self
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .map(str::to_owned);
        match (self.status.success(), line) {
            (true, Some(line)) => {
                serde_json::from_str(&line).map_err(|e| format!("bad RESULT line: {e}"))
            }
            _ => Err(format!(
                "the child {}: {}",
                self.ending(),
                last_line(&self.stderr).unwrap_or("no message")
            )),
        }
    }
}

/// The last non-blank line of `text`.
pub fn last_line(text: &str) -> Option<&str> {
    text.lines().rev().find(|l| !l.trim().is_empty())
}

/// The command that runs self-test `test` in a child.
pub fn selftest_command(test: &str, extra: &[&str]) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("selftest")
        .arg(test)
        .args(extra)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(cmd)
}

/// The error of a child killed at its deadline.
fn timed_out() -> String {
    format!(
        "the child was still running after {} s and was killed",
        CHILD_TIMEOUT.as_secs()
    )
}

/// What a wait with a deadline found ([`runner::Live::finish_by`]): the
/// status, or why there is none. (For a child the caller talks to while it
/// runs: the Linux scan target.)
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn ended_status(waited: std::io::Result<Option<ExitStatus>>) -> Result<ExitStatus, String> {
    match waited {
        Ok(Some(status)) => Ok(status),
        Ok(None) => Err(timed_out()),
        Err(e) => Err(format!("waiting for the child: {e}")),
    }
}

/// Runs `memguard selftest <test> <extra...>` with no input and collects
/// what it printed and how it ended (killed after [`CHILD_TIMEOUT`]).
pub fn run_child(test: &str, extra: &[&str]) -> Result<ChildRun, String> {
    let child = selftest_command(test, extra)?
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start a child: {e}"))?;
    let got =
        runner::collect(child, CHILD_TIMEOUT).map_err(|e| format!("waiting for the child: {e}"))?;
    if got.timed_out {
        return Err(timed_out());
    }
    Ok(ChildRun {
        status: got.output.status,
        stdout: String::from_utf8_lossy(&got.output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&got.output.stderr).into_owned(),
    })
}
