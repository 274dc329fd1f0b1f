//! `memguard doctor`: checks, live on this machine, every protection the
//! crate relies on, and says for each what it read and, where something is
//! missing, how to fix it.
//!
//! System checks read the operating system's settings (on Linux `/proc`,
//! `/sys`, rlimits, capabilities; on Windows the working-set quota, WER and
//! the error mode; ...). Self-tests re-run this executable as
//! `memguard selftest <test>` (see [`crate::selftest`]) and judge the child
//! from outside: how it died, what it printed, what its memory holds.
//!
//! This file is the same on every OS: the report, the children, and the
//! checks every OS has (page size, crash handler, guard pages, frozen
//! write, seal/open). Which rows an OS has, in which order, and the rows of
//! its own are in [`crate::platform`] (one module per OS).

use std::io::Read;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::platform;
use crate::selftest::{self, ARMED, CONTROL_OK, SURVIVED};
use crate::ui::{pad, print_report, wrap, Paint, Progress, Style};

/// The longest any self-test child may run before it is killed.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(15);
/// Fewer buffers than this fitting in `RLIMIT_MEMLOCK` is "degraded".
#[cfg_attr(windows, allow(dead_code))]
pub const FEW_BUFFERS: u64 = 16;
/// The fix for a self-test that should never fail.
pub const BUG_FIX: &str = "this protection does not hold here: please report a memguard bug with \
    this output (`memguard doctor --json`) and your kernel version";

/// The result of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The protection holds.
    Ok,
    /// Informational: nothing the crate relies on (a feature it does not
    /// use yet, say); never needs a fix.
    Info,
    /// The protection is weaker than it could be, or could not be checked.
    Degraded,
    /// The protection does not hold.
    Failed,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Info => "info",
            Outcome::Degraded => "degraded",
            Outcome::Failed => "failed",
        }
    }

    fn paint(self) -> Paint {
        match self {
            Outcome::Ok => Paint::Green,
            Outcome::Info => Paint::Dim,
            Outcome::Degraded => Paint::Yellow,
            Outcome::Failed => Paint::Red,
        }
    }
}

/// Whether a check reads the system or runs a self-test in a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Reads a kernel setting or limit.
    System,
    /// Runs in a child process and is judged from outside.
    SelfTest,
}

/// One row of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// The check's name, stable across versions.
    pub name: &'static str,
    /// System check or self-test.
    pub kind: Kind,
    /// ok, degraded or failed.
    pub result: Outcome,
    /// What was read or seen: the number, flag or signal.
    pub evidence: String,
    /// What to do about it; `None` when the result is ok.
    pub fix: Option<String>,
}

impl Check {
    pub fn new(
        name: &'static str,
        kind: Kind,
        result: Outcome,
        evidence: impl Into<String>,
    ) -> Check {
        Check {
            name,
            kind,
            result,
            evidence: evidence.into(),
            fix: None,
        }
    }

    pub fn ok(name: &'static str, kind: Kind, evidence: impl Into<String>) -> Check {
        Check::new(name, kind, Outcome::Ok, evidence)
    }

    /// The fix for a self-test that did not hold: raise the memlock limit
    /// when that is what stopped it, else report a bug.
    pub fn fix_failure(self) -> Check {
        let fix = if self.evidence.contains(platform::LOCK_LIMIT) {
            platform::LOCK_FIX
        } else {
            BUG_FIX
        };
        self.fix(fix)
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Check {
        if matches!(self.result, Outcome::Degraded | Outcome::Failed) {
            self.fix = Some(fix.into());
        }
        self
    }
}

/// The whole report, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Report {
    memguard_version: &'static str,
    /// The OS, kernel, machine, user, and what else the OS's module adds.
    system: Value,
    checks: Vec<Check>,
    summary: Summary,
}

#[derive(Debug, Serialize)]
struct Summary {
    ok: usize,
    info: usize,
    degraded: usize,
    failed: usize,
    /// True when no check failed (the exit status is then 0).
    passed: bool,
    elapsed_ms: u64,
}

/// Runs every check, prints the table (or JSON) and returns 0 when no
/// check failed, 1 otherwise.
pub fn run(json_output: bool) -> ExitCode {
    let started = Instant::now();
    let mut progress = Progress::new(json_output);
    let system = platform::system_info();

    let total = platform::CHECK_NAMES.len();
    let mut checks = Vec::with_capacity(total);
    // Shows `label` as the current step, then runs the check.
    platform::checks(&mut |label: &str, check: &mut dyn FnMut() -> Check| {
        progress.step(checks.len() + 1, total, label);
        checks.push(check());
    });
    progress.finish();
    debug_assert_eq!(
        checks.iter().map(|c| c.name).collect::<Vec<_>>(),
        platform::CHECK_NAMES
    );

    let count = |o: Outcome| checks.iter().filter(|c| c.result == o).count();
    let summary = Summary {
        ok: count(Outcome::Ok),
        info: count(Outcome::Info),
        degraded: count(Outcome::Degraded),
        failed: count(Outcome::Failed),
        passed: count(Outcome::Failed) == 0,
        elapsed_ms: started.elapsed().as_millis() as u64,
    };
    let passed = summary.passed;
    let report = Report {
        memguard_version: env!("CARGO_PKG_VERSION"),
        system,
        checks,
        summary,
    };
    print_report(&report, json_output, render);
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The table.
fn render(report: &Report, style: Style) -> String {
    let name_w = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let result_w = 8;
    let indent = name_w + 2 + result_w + 2;
    let text_w = style.width.map(|w| w.saturating_sub(indent).max(30));
    let blank = " ".repeat(indent);
    let sys = &report.system;
    let field = |k: &str| sys[k].as_str().unwrap_or("?").to_string();
    let mut s = String::new();
    s.push_str(&style.paint(
        Paint::Bold,
        &format!(
            "memguard doctor: memguard {} on {} {} {}, {}",
            report.memguard_version,
            platform::OS,
            field("kernel"),
            field("machine"),
            field("user")
        ),
    ));
    s.push_str("\n\n");
    s.push_str(&style.paint(
        Paint::Bold,
        &format!(
            "{}  {}  EVIDENCE",
            pad("CHECK", name_w),
            pad("RESULT", result_w)
        ),
    ));
    s.push('\n');
    let mut last_kind = Kind::System;
    for c in &report.checks {
        if c.kind != last_kind {
            last_kind = c.kind;
            s.push_str(&style.paint(Paint::Dim, "  (self-tests, each in a child process)"));
            s.push('\n');
        }
        let evidence = wrap(&c.evidence, text_w);
        for (i, line) in evidence.iter().enumerate() {
            if i == 0 {
                s.push_str(&pad(c.name, name_w));
                s.push_str("  ");
                s.push_str(&style.paint(c.result.paint(), &pad(c.result.word(), result_w)));
                s.push_str("  ");
            } else {
                s.push_str(&blank);
            }
            s.push_str(line);
            s.push('\n');
        }
        if let Some(fix) = &c.fix {
            let text = format!("fix: {fix}");
            for line in wrap(&text, text_w) {
                s.push_str(&blank);
                s.push_str(&style.paint(Paint::Cyan, &line));
                s.push('\n');
            }
        }
    }
    let sum = &report.summary;
    s.push('\n');
    let verdict = if sum.failed > 0 {
        style.paint(Paint::Red, "FAILED")
    } else if sum.degraded > 0 {
        style.paint(Paint::Yellow, "usable, with degraded protections")
    } else {
        style.paint(Paint::Green, "all protections hold")
    };
    s.push_str(&format!(
        "{} checks: {} ok, {} info, {} degraded, {} failed, in {:.2} s: {verdict}\n",
        report.checks.len(),
        sum.ok,
        sum.info,
        sum.degraded,
        sum.failed,
        sum.elapsed_ms as f64 / 1000.0
    ));
    s
}

// ---------------------------------------------------------------------------
// System checks
// ---------------------------------------------------------------------------

/// A byte count in the unit that reads best.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while unit < UNITS.len() - 1 && value >= 1024 && value.is_multiple_of(1024) {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}

/// The `page size` check: informational.
pub fn page_size_check(page: usize) -> Check {
    Check::ok(
        "page size",
        Kind::System,
        format!(
            "{page} bytes: a buffer of up to {page} bytes locks 1 page and maps 3 (a guard page \
             on each side)"
        ),
    )
}

/// The failed `name` check when the hardening child gave no report:
/// `prefix`, then why.
pub fn hardening_failed(name: &'static str, kind: Kind, prefix: &str, why: &str) -> Check {
    Check::new(
        name,
        kind,
        Outcome::Failed,
        format!("{prefix}the hardening child failed: {why}"),
    )
    .fix_failure()
}

/// The `crash handler` check: `crash_handler_installed()` in a child after its first allocation.
pub fn crash_handler_check(hardening: &Result<Value, String>) -> Check {
    let name = "crash handler";
    match hardening {
        Ok(h) if h["after"]["crash_handler"].as_bool() == Some(true) => Check::ok(
            name,
            Kind::SelfTest,
            format!(
                "installed on the first allocation (before: {}): on {} every live buffer is \
                 wiped before the process dies of it",
                h["before"]["crash_handler"],
                platform::CRASH_EVENTS
            ),
        ),
        Ok(h) => Check::new(
            name,
            Kind::SelfTest,
            Outcome::Failed,
            format!(
                "crash_handler_installed() = {} after the first allocation",
                h["after"]["crash_handler"]
            ),
        )
        .fix_failure(),
        Err(e) => hardening_failed(name, Kind::SelfTest, "", e),
    }
}

// ---------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------

/// How a self-test child ended and what it printed.
pub struct ChildRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ChildRun {
    fn marked(&self, marker: &str) -> bool {
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

/// Reads a pipe to the end on a thread of its own.
pub fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for `child` until `deadline`; kills it after that.
pub fn wait_until(child: &mut Child, deadline: Instant) -> Result<ExitStatus, String> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the child was still running after {} s and was killed",
                    CHILD_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("waiting for the child: {e}")),
        }
    }
}

/// Runs `memguard selftest <test> <extra...>` with no input and collects
/// what it printed and how it ended.
pub fn run_child(test: &str, extra: &[&str]) -> Result<ChildRun, String> {
    let mut child = selftest_command(test, extra)?
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start a child: {e}"))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_until(&mut child, Instant::now() + CHILD_TIMEOUT);
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok(ChildRun {
        status: status?,
        stdout,
        stderr,
    })
}

/// Runs a child that must die of an access violation (SIGSEGV;
/// STATUS_ACCESS_VIOLATION on Windows) after its control went through and
/// it printed ARMED. `Ok(())` or what happened instead.
fn expect_fault(test: &str) -> Result<(), String> {
    let run = run_child(test, &[])?;
    if !run.marked(CONTROL_OK) || !run.marked(ARMED) {
        return Err(format!(
            "the child {} before the forbidden access ({})",
            run.ending(),
            last_line(&run.stderr).unwrap_or("no message")
        ));
    }
    if run.marked(SURVIVED) {
        return Err(format!(
            "the child survived the forbidden access and {}",
            run.ending()
        ));
    }
    if platform::died_of_fault(&run.status) {
        Ok(())
    } else {
        Err(format!(
            "the child {} instead of dying of {}",
            run.ending(),
            platform::FAULT
        ))
    }
}

/// The `guard pages` check: writes just past either end of a buffer must kill the child.
pub fn guard_pages_check() -> Check {
    let name = "guard pages";
    let over = expect_fault("guard-overflow");
    let under = expect_fault("guard-underflow");
    match (over, under) {
        (Ok(()), Ok(())) => Check::ok(
            name,
            Kind::SelfTest,
            format!(
                "a child writing 1 byte past the end of a 32-byte buffer died of {f}, and one \
                 writing 1 byte below its first data page died of {f} (the in-bounds control \
                 writes just before went through)",
                f = platform::FAULT
            ),
        ),
        (over, under) => {
            let mut parts = Vec::new();
            if let Err(e) = over {
                parts.push(format!("1 byte past the end: {e}"));
            }
            if let Err(e) = under {
                parts.push(format!("1 byte below the data pages: {e}"));
            }
            Check::new(name, Kind::SelfTest, Outcome::Failed, parts.join("; ")).fix_failure()
        }
    }
}

/// The `frozen write` check: a write to a frozen buffer must kill the child.
pub fn frozen_write_check() -> Check {
    let name = "frozen write";
    match expect_fault("frozen-write") {
        Ok(()) => Check::ok(
            name,
            Kind::SelfTest,
            format!(
                "a child writing through a raw pointer to a frozen buffer died of {} (the same \
                 write while melted went through)",
                platform::FAULT
            ),
        ),
        Err(e) => Check::new(name, Kind::SelfTest, Outcome::Failed, e).fix_failure(),
    }
}

/// The `seal/open` check: the steps of a seal/open round trip in a child.
pub fn seal_open_check() -> Check {
    let name = "seal/open";
    let v = match run_child("seal-open", &[]).and_then(ChildRun::result) {
        Ok(v) => v,
        Err(e) => return Check::new(name, Kind::SelfTest, Outcome::Failed, e).fix_failure(),
    };
    let steps: Vec<&Value> = v.as_array().into_iter().flatten().collect();
    let failed: Vec<String> = steps
        .iter()
        .filter(|s| s["ok"].as_bool() != Some(true))
        .map(|s| {
            format!(
                "{} ({})",
                s["step"].as_str().unwrap_or("?"),
                s["detail"].as_str().unwrap_or("")
            )
        })
        .collect();
    let names: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
    if failed.is_empty() && !steps.is_empty() {
        Check::ok(
            name,
            Kind::SelfTest,
            format!(
                "a 64-byte secret, {} steps held: {}",
                steps.len(),
                names.join(", ")
            ),
        )
    } else {
        Check::new(
            name,
            Kind::SelfTest,
            Outcome::Failed,
            format!("failed: {}", failed.join("; ")),
        )
        .fix_failure()
    }
}

/// Plays the hidden `selftest` subcommand (the child side).
pub fn selftest(test: selftest::Test, unhardened: bool) -> ExitCode {
    selftest::run(test, unhardened)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size(8 << 20), "8 MiB");
        assert_eq!(size(1000), "1000 bytes");
    }

    #[test]
    fn a_fix_is_kept_only_when_not_ok() {
        let ok = Check::ok("x", Kind::System, "e").fix("f");
        assert!(ok.fix.is_none());
        let bad = Check::new("x", Kind::System, Outcome::Degraded, "e").fix("f");
        assert_eq!(bad.fix.as_deref(), Some("f"));
    }

    #[test]
    fn json_shape() {
        let c = Check::new("swap", Kind::SelfTest, Outcome::Failed, "e").fix("f");
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["result"], "failed");
        assert_eq!(v["kind"], "self-test");
        assert_eq!(v["fix"], "f");
    }
}
