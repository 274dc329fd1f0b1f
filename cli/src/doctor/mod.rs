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
//! This module is the same on every OS: the table's row type ([`Row`]), the
//! run over the table, and the rows every OS has (page size, crash handler,
//! guard pages, frozen write, seal/open). The report and its table are in
//! `render`, the self-test children in [`crate::child`]. Which rows an OS
//! has, in which order, and the rows of its own are its table,
//! `platform::CHECKS` (one module per OS in [`crate::platform`]).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

mod render;
use render::{render, Report, Summary};

use crate::child::{last_line, run_child, ChildRun};
use crate::platform;
use crate::selftest::{self, ARMED, CONTROL_OK, SURVIVED};
use crate::ui::{print_report, Progress};

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

/// How many child processes a row runs (its progress label says so).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runs {
    /// None: it reads the system from this process.
    Here,
    /// One self-test child (or it is the row that first needs the
    /// hardening child's report, see [`Context::hardening`]).
    Child,
    /// More than one.
    Children,
}

/// One row of the doctor's table of checks: the single place that says
/// which checks there are, in which order, of which kind. The progress
/// labels, the report's order and `memguard doctor --list` (which the CLI's tests
/// read) are all derived from the table of the OS (`platform::CHECKS`).
pub struct Row {
    /// The check's name, stable across versions.
    pub name: &'static str,
    /// System check or self-test.
    pub kind: Kind,
    /// The children it runs.
    pub runs: Runs,
    /// Runs the check; it reports under `name` and `kind`.
    pub check: fn(&mut Context) -> Check,
}

impl Row {
    /// The progress line's label: the name, and the children it runs.
    pub fn label(&self) -> String {
        match self.runs {
            Runs::Here => self.name.to_owned(),
            Runs::Child => format!("{} (child)", self.name),
            Runs::Children => format!("{} (children)", self.name),
        }
    }
}

/// What the rows of one run share.
pub struct Context {
    /// This machine's page size.
    pub page: usize,
    /// What this OS's rows read once, before any row runs (nothing on
    /// Windows).
    #[cfg_attr(windows, allow(dead_code))]
    pub os: platform::Shared,
    /// The hardening self-test's report, once a row has asked for it.
    hardening: Option<Result<Value, String>>,
}

impl Context {
    /// Reads what the rows share; runs no child.
    pub fn read() -> Context {
        Context {
            page: platform::page_size(),
            os: platform::shared(),
            hardening: None,
        }
    }

    /// The hardening self-test's report (the core limit, dumpable flag and
    /// crash handler before and after the first allocation): the child
    /// runs once, for the first row that asks.
    pub fn hardening(&mut self) -> &Result<Value, String> {
        self.hardening
            .get_or_insert_with(|| run_child("hardening", &[]).and_then(ChildRun::result))
    }
}

/// Row `page size` (every OS).
pub const PAGE_SIZE: Row = Row {
    name: "page size",
    kind: Kind::System,
    runs: Runs::Here,
    check: |cx| page_size_check(cx.page),
};
/// Row `crash handler` (every OS).
pub const CRASH_HANDLER: Row = Row {
    name: "crash handler",
    kind: Kind::SelfTest,
    runs: Runs::Here,
    check: |cx| crash_handler_check(cx.hardening()),
};
/// Row `guard pages` (every OS).
pub const GUARD_PAGES: Row = Row {
    name: "guard pages",
    kind: Kind::SelfTest,
    runs: Runs::Children,
    check: |_| guard_pages_check(),
};
/// Row `frozen write` (every OS).
pub const FROZEN_WRITE: Row = Row {
    name: "frozen write",
    kind: Kind::SelfTest,
    runs: Runs::Child,
    check: |_| frozen_write_check(),
};
/// Row `seal/open` (every OS).
pub const SEAL_OPEN: Row = Row {
    name: "seal/open",
    kind: Kind::SelfTest,
    runs: Runs::Child,
    check: |_| seal_open_check(),
};

/// Runs every check, prints the table (or JSON) and returns 0 when no
/// check failed, 1 otherwise.
pub fn run(json_output: bool) -> ExitCode {
    let started = Instant::now();
    let mut progress = Progress::new(json_output);
    let system = platform::system_info();

    let total = platform::CHECKS.len();
    let mut checks = Vec::with_capacity(total);
    let mut cx = Context::read();
    for (i, row) in platform::CHECKS.iter().enumerate() {
        progress.step(i + 1, total, &row.label());
        let check = (row.check)(&mut cx);
        debug_assert_eq!(
            (check.name, check.kind),
            (row.name, row.kind),
            "a row's check reports under the row's name and kind"
        );
        checks.push(check);
    }
    progress.finish();

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

/// Prints the table of checks of this OS as JSON, one object a row:
/// `{name, kind, label}` (`memguard doctor --list`, hidden: the CLI's tests
/// take their expectations from it).
pub fn list() -> ExitCode {
    let rows: Vec<Value> = platform::CHECKS
        .iter()
        .map(|r| serde_json::json!({ "name": r.name, "kind": r.kind, "label": r.label() }))
        .collect();
    println!("{}", Value::Array(rows));
    ExitCode::SUCCESS
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
fn page_size_check(page: usize) -> Check {
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
fn crash_handler_check(hardening: &Result<Value, String>) -> Check {
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
fn guard_pages_check() -> Check {
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
fn frozen_write_check() -> Check {
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
fn seal_open_check() -> Check {
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
    fn the_table_names_each_row_once_and_labels_say_what_runs() {
        let names: Vec<&str> = platform::CHECKS.iter().map(|r| r.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "a row twice: {names:?}");
        for row in platform::CHECKS {
            let label = row.label();
            assert!(label.starts_with(row.name), "{label}");
            assert_eq!(
                label.ends_with("(child)"),
                row.runs == Runs::Child,
                "{label}"
            );
            assert_eq!(
                label.ends_with("(children)"),
                row.runs == Runs::Children,
                "{label}"
            );
        }
        // Self-tests come after every system check (the table prints one
        // heading between them).
        let first_self_test = platform::CHECKS
            .iter()
            .position(|r| r.kind == Kind::SelfTest)
            .expect("self-tests");
        assert!(platform::CHECKS[first_self_test..]
            .iter()
            .all(|r| r.kind == Kind::SelfTest));
    }

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
