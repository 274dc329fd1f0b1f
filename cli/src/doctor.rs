//! `memguard doctor`: checks, live on this machine, every protection the
//! crate relies on, and says for each what it read and, where something is
//! missing, how to fix it.
//!
//! System checks read the kernel's settings (`/proc`, `/sys`, rlimits,
//! capabilities, one probing system call). Self-tests re-run this
//! executable as `memguard selftest <test>` (see [`crate::selftest`]) and
//! judge the child from outside: how it died, what it printed, what its
//! memory holds.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::scan;
use crate::selftest::{self, ARMED, CONTROL_OK, CONTROL_XOR, READY, SCAN_SECRET_LEN, SURVIVED};
use crate::ui::{pad, print_report, wrap, Paint, Progress, Style};

/// The longest any self-test child may run before it is killed.
const CHILD_TIMEOUT: Duration = Duration::from_secs(15);
/// Fewer buffers than this fitting in `RLIMIT_MEMLOCK` is "degraded".
const FEW_BUFFERS: u64 = 16;
/// The fix for a small `RLIMIT_MEMLOCK`.
const MEMLOCK_FIX: &str = "raise RLIMIT_MEMLOCK: `ulimit -l <KiB>` in the shell that starts the \
    program, LimitMEMLOCK= in its systemd unit, --ulimit memlock=<bytes> for a Docker container, \
    or a `memlock` line in /etc/security/limits.conf; or grant CAP_IPC_LOCK \
    (`setcap cap_ipc_lock+ep <binary>`)";
/// The fix for a self-test that should never fail.
const BUG_FIX: &str = "this protection does not hold here: please report a memguard bug with \
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
    fn new(name: &'static str, kind: Kind, result: Outcome, evidence: impl Into<String>) -> Check {
        Check {
            name,
            kind,
            result,
            evidence: evidence.into(),
            fix: None,
        }
    }

    fn ok(name: &'static str, kind: Kind, evidence: impl Into<String>) -> Check {
        Check::new(name, kind, Outcome::Ok, evidence)
    }

    /// The fix for a self-test that did not hold: raise the memlock limit
    /// when that is what stopped it, else report a bug.
    fn fix_failure(self) -> Check {
        let fix = if self.evidence.contains("RLIMIT_MEMLOCK") {
            MEMLOCK_FIX
        } else {
            BUG_FIX
        };
        self.fix(fix)
    }

    fn fix(mut self, fix: impl Into<String>) -> Check {
        if matches!(self.result, Outcome::Degraded | Outcome::Failed) {
            self.fix = Some(fix.into());
        }
        self
    }
}

/// The names of every check, in the order they are reported.
pub const CHECK_NAMES: [&str; 17] = [
    "page size",
    "memlock limit",
    "core dump limit",
    "core_pattern",
    "suid_dumpable",
    "dumpable flag",
    "ptrace scope",
    "swap",
    "memfd_secret",
    "transparent huge pages",
    "crash handler",
    "guard pages",
    "frozen write",
    "smaps flags",
    "wipe on fork",
    "seal/open",
    "memory scan",
];

/// The whole report, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Report {
    memguard_version: &'static str,
    system: SystemInfo,
    checks: Vec<Check>,
    summary: Summary,
}

#[derive(Debug, Serialize)]
struct SystemInfo {
    kernel: String,
    machine: String,
    uid: u32,
    cap_ipc_lock: bool,
    cap_sys_ptrace: bool,
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

/// Effective capabilities that change what the checks mean.
#[derive(Clone, Copy, Debug)]
struct Caps {
    ipc_lock: bool,
    sys_ptrace: bool,
}

/// This process's effective capabilities (none if they cannot be read).
fn effective_caps() -> Caps {
    use rustix::thread::CapabilitySet;
    match rustix::thread::capabilities(None) {
        Ok(sets) => Caps {
            ipc_lock: sets.effective.contains(CapabilitySet::IPC_LOCK),
            sys_ptrace: sets.effective.contains(CapabilitySet::SYS_PTRACE),
        },
        Err(_) => Caps {
            ipc_lock: false,
            sys_ptrace: false,
        },
    }
}

/// Runs every check, prints the table (or JSON) and returns 0 when no
/// check failed, 1 otherwise.
pub fn run(json_output: bool) -> ExitCode {
    let started = Instant::now();
    let mut progress = Progress::new(json_output);

    let caps = effective_caps();
    let page = rustix::param::page_size();
    let uname = rustix::system::uname();
    let system = SystemInfo {
        kernel: uname.release().to_string_lossy().into_owned(),
        machine: uname.machine().to_string_lossy().into_owned(),
        uid: rustix::process::getuid().as_raw(),
        cap_ipc_lock: caps.ipc_lock,
        cap_sys_ptrace: caps.sys_ptrace,
    };
    // Read before anything could lower it (the doctor itself never
    // allocates a guarded buffer, so it is never hardened).
    let core_here = rustix::process::getrlimit(rustix::process::Resource::Core);

    // Shared by several checks; the hardening child runs in its own step.
    let pattern = read_trimmed("/proc/sys/kernel/core_pattern");
    let mut hardening: Result<Value, String> = Err("not run".into());

    let total = CHECK_NAMES.len();
    let mut checks = Vec::with_capacity(total);
    // Shows `label` as the current step, then runs the check.
    let mut run = |label: &str, check: &mut dyn FnMut() -> Check| {
        progress.step(checks.len() + 1, total, label);
        checks.push(check());
    };
    run("page size", &mut || page_size_check(page));
    run("memlock limit", &mut || memlock_check(page, caps));
    // The hardening child's result also feeds the dumpable flag and crash
    // handler rows; the label is the row this step reports.
    run("core dump limit (child)", &mut || {
        hardening = run_child("hardening", &[]).and_then(|c| c.result());
        core_limit_check(core_here, &hardening)
    });
    let dumpable_after = hardening
        .as_ref()
        .ok()
        .and_then(|h| h["after"]["dumpable"].as_i64());
    run("core_pattern", &mut || {
        core_pattern_check(&pattern, dumpable_after)
    });
    run("suid_dumpable", &mut || suid_dumpable_check(&pattern));
    run("dumpable flag", &mut || dumpable_check(&hardening));
    run("ptrace scope", &mut || ptrace_check(dumpable_after));
    run("swap", &mut swap_check);
    run("memfd_secret", &mut memfd_secret_check);
    run("transparent huge pages", &mut thp_check);
    run("crash handler", &mut || crash_handler_check(&hardening));
    run("guard pages (children)", &mut guard_pages_check);
    run("frozen write (child)", &mut frozen_write_check);
    run("smaps flags (child)", &mut smaps_check);
    run("wipe on fork (child)", &mut wipe_on_fork_check);
    run("seal/open (child)", &mut seal_open_check);
    run("memory scan (child)", &mut || memory_scan_check(caps));
    progress.finish();
    debug_assert_eq!(
        checks.iter().map(|c| c.name).collect::<Vec<_>>(),
        CHECK_NAMES
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
    let mut s = String::new();
    s.push_str(&style.paint(
        Paint::Bold,
        &format!(
            "memguard doctor: memguard {} on Linux {} {}, uid {}",
            report.memguard_version, sys.kernel, sys.machine, sys.uid
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

/// A file's contents without surrounding whitespace, or why it could not
/// be read.
fn read_trimmed(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{path}: {e}"))
}

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

/// A limit as the table shows it: `unlimited`, `0` or a size.
fn limit_text(limit: Option<u64>) -> String {
    match limit {
        None => "unlimited".to_string(),
        Some(0) => "0".to_string(),
        Some(n) => size(n),
    }
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

/// Bytes locked by this process already (`VmLck`).
fn locked_now() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmLck:"))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// The `memlock limit` check: how many buffers and enclaves fit in `RLIMIT_MEMLOCK`.
fn memlock_check(page: usize, caps: Caps) -> Check {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Memlock);
    let page = page as u64;
    let limits = format!(
        "RLIMIT_MEMLOCK soft {}, hard {}",
        limit_text(limit.current),
        limit_text(limit.maximum)
    );
    let Some(soft) = limit.current else {
        return Check::ok(
            "memlock limit",
            Kind::System,
            format!("{limits}: buffers are bounded by RAM only"),
        );
    };
    let fit = soft.saturating_sub(locked_now()) / page;
    let mib_pages = (1u64 << 20).div_ceil(page);
    let fits = format!(
        "{fit} small buffers fit at once (1 page each, a 1 MiB buffer takes {mib_pages} pages); \
         enclaves: any number sealed (ciphertext in ordinary memory), {} small ones open at \
         once (the session key takes 1 page)",
        fit.saturating_sub(1)
    );
    if caps.ipc_lock {
        return Check::ok(
            "memlock limit",
            Kind::System,
            format!(
                "{limits}; ok only because this process has CAP_IPC_LOCK (as root has), so \
                 the limit does not apply and buffers are bounded by RAM only. A user without \
                 CAP_IPC_LOCK is held to its own RLIMIT_MEMLOCK (run `memguard doctor` as the \
                 user the program will run as to see it); under the limit above: {fits}"
            ),
        );
    }
    let result = if fit == 0 {
        Outcome::Failed
    } else if fit < FEW_BUFFERS {
        Outcome::Degraded
    } else {
        Outcome::Ok
    };
    Check::new(
        "memlock limit",
        Kind::System,
        result,
        format!("{limits}: {fits}"),
    )
    .fix(MEMLOCK_FIX)
}

/// The soft and hard limits of a `{"soft":..,"hard":..}` object.
fn json_limits(v: &Value) -> (Option<u64>, Option<u64>) {
    (v["soft"].as_u64(), v["hard"].as_u64())
}

/// The `core dump limit` check: `RLIMIT_CORE` here and in a hardened child.
fn core_limit_check(here: rustix::process::Rlimit, hardening: &Result<Value, String>) -> Check {
    let name = "core dump limit";
    let here_text = format!(
        "RLIMIT_CORE here: soft {}, hard {}",
        limit_text(here.current),
        limit_text(here.maximum)
    );
    let h = match hardening {
        Ok(h) => h,
        Err(e) => return hardening_failed(name, Kind::System, &format!("{here_text}; "), e),
    };
    let after = json_limits(&h["after"]["core"]);
    let evidence = format!(
        "{here_text}; after memguard's first allocation (in a child): soft {}, hard {}",
        limit_text(after.0),
        limit_text(after.1)
    );
    if after == (Some(0), Some(0)) {
        Check::ok(
            name,
            Kind::System,
            format!("{evidence}: no core file is ever written"),
        )
    } else {
        Check::new(name, Kind::System, Outcome::Failed, evidence).fix(
            "memguard could not lower RLIMIT_CORE; start the program with `ulimit -c 0` \
             (LimitCORE=0 in a systemd unit)",
        )
    }
}

/// The `core_pattern` check: where core dumps would go, and what stops them.
fn core_pattern_check(pattern: &Result<String, String>, dumpable_after: Option<i64>) -> Check {
    let name = "core_pattern";
    let pattern = match pattern {
        Ok(p) => p,
        Err(e) => {
            return Check::new(
                name,
                Kind::System,
                Outcome::Degraded,
                format!("unreadable: {e}"),
            )
            .fix("mount /proc (procfs) so that kernel.core_pattern can be read")
        }
    };
    let target = if pattern.starts_with('|') {
        Some("a pipe (a crash collector program)")
    } else if pattern.starts_with('@') {
        Some("a socket (a crash collector service)")
    } else {
        None
    };
    let Some(target) = target else {
        return Check::ok(
            name,
            Kind::System,
            format!(
                "`{pattern}`: dumps are written as files, which RLIMIT_CORE=0 and the cleared \
                 dumpable flag both stop"
            ),
        );
    };
    let flag_cleared = dumpable_after == Some(0);
    let evidence = format!(
        "`{pattern}`: dumps go to {target}; the kernel does not apply RLIMIT_CORE=0 to those \
         (only the collector may honour it), so what keeps a memguard process out is its cleared \
         dumpable flag ({}); guarded buffers are MADV_DONTDUMP in any case",
        if flag_cleared {
            "cleared here, see `dumpable flag`"
        } else {
            "NOT cleared here"
        }
    );
    let result = if flag_cleared {
        Outcome::Ok
    } else {
        Outcome::Degraded
    };
    Check::new(name, Kind::System, result, evidence).fix(
        "keep memguard's process hardening on (do not call disable_process_hardening), or stop \
         the collector: `sysctl kernel.core_pattern=core`, or Storage=none in \
         /etc/systemd/coredump.conf",
    )
}

/// The `suid_dumpable` check: what happens to the dumpable flag when a process changes ids.
fn suid_dumpable_check(pattern: &Result<String, String>) -> Check {
    let name = "suid_dumpable";
    let fix = "`sysctl fs.suid_dumpable=0`; or change user and group ids (drop privileges) \
               before memguard's first allocation";
    match read_trimmed("/proc/sys/fs/suid_dumpable").as_deref() {
        Ok("0") => Check::ok(
            name,
            Kind::System,
            "0: a process that changes its user or group ids after memguard's first allocation \
             stays non-dumpable",
        ),
        Ok("2") => {
            let to_collector = pattern
                .as_ref()
                .is_ok_and(|p| p.starts_with('|') || p.starts_with('@'));
            let evidence = "2 (suidsafe): a process that changes its user or group ids after \
                            memguard's first allocation becomes dumpable again (by root, to a \
                            pipe or an absolute path only)";
            if to_collector {
                Check::new(
                    name,
                    Kind::System,
                    Outcome::Degraded,
                    format!("{evidence}, and core_pattern is a collector that would take it"),
                )
                .fix(fix)
            } else {
                Check::ok(
                    name,
                    Kind::System,
                    format!("{evidence}; RLIMIT_CORE=0 still stops a file dump"),
                )
            }
        }
        Ok(v) => Check::new(
            name,
            Kind::System,
            Outcome::Degraded,
            format!(
                "{v}: a process that changes its user or group ids after memguard's first \
                 allocation becomes dumpable again (ptrace, /proc/<pid>/mem, core dumps)"
            ),
        )
        .fix(fix),
        Err(e) => Check::new(
            name,
            Kind::System,
            Outcome::Degraded,
            format!("unreadable: {e}"),
        )
        .fix("mount /proc so that fs.suid_dumpable can be read"),
    }
}

/// The failed `name` check when the hardening child gave no report:
/// `prefix`, then why.
fn hardening_failed(name: &'static str, kind: Kind, prefix: &str, why: &str) -> Check {
    Check::new(
        name,
        kind,
        Outcome::Failed,
        format!("{prefix}the hardening child failed: {why}"),
    )
    .fix_failure()
}

/// The `dumpable flag` check: `PR_GET_DUMPABLE` in a child after its first allocation.
fn dumpable_check(hardening: &Result<Value, String>) -> Check {
    let name = "dumpable flag";
    let h = match hardening {
        Ok(h) => h,
        Err(e) => return hardening_failed(name, Kind::System, "", e),
    };
    let before = &h["before"]["dumpable"];
    let after = &h["after"]["dumpable"];
    let hardened = h["after"]["hardened"].as_bool() == Some(true);
    let evidence = format!(
        "PR_GET_DUMPABLE in a child: {before} before, {after} after memguard's first \
         allocation; is_process_hardened() = {hardened}"
    );
    if after.as_i64() == Some(0) && hardened {
        Check::ok(
            name,
            Kind::System,
            format!(
                "{evidence}: no core dump of any kind, and other processes of the same user can \
                 neither ptrace it nor read /proc/<pid>/mem"
            ),
        )
    } else {
        Check::new(name, Kind::System, Outcome::Failed, evidence).fix_failure()
    }
}

/// The `ptrace scope` check: Yama's `ptrace_scope`. Where Yama allows
/// attaching but a hardened child showed the dumpable flag cleared
/// (`dumpable_after` = 0), the flag already refuses tracers without
/// CAP_SYS_PTRACE: the row is ok, and says so.
fn ptrace_check(dumpable_after: Option<i64>) -> Check {
    let name = "ptrace scope";
    let lsms = read_trimmed("/sys/kernel/security/lsm").ok();
    let covered = dumpable_after == Some(0);
    let scope = read_trimmed("/proc/sys/kernel/yama/ptrace_scope");
    if covered && !matches!(scope.as_deref(), Ok("1" | "2" | "3")) {
        let yama = match scope.as_deref() {
            Ok(v) => format!("kernel.yama.ptrace_scope = {v}"),
            Err(_) => format!(
                "Yama is not enabled{}",
                lsms.as_deref()
                    .map(|l| format!(" (active LSMs: {l})"))
                    .unwrap_or_default()
            ),
        };
        return Check::ok(
            name,
            Kind::System,
            format!(
                "{yama}, so Yama does not stop processes of the same user from attaching; \
                 the dumpable flag does: memguard clears it (the hardened child showed \
                 dumpable = 0), so processes without CAP_SYS_PTRACE can neither attach nor \
                 read /proc/<pid>/mem. Nothing to do; for defence in depth on a host you \
                 administer (not from inside a container or VM guest you do not control), \
                 `sysctl kernel.yama.ptrace_scope=1` where the kernel has Yama"
            ),
        );
    }
    match scope.as_deref() {
        Ok("0") => Check::new(
            name,
            Kind::System,
            Outcome::Degraded,
            "kernel.yama.ptrace_scope = 0 (classic): any process may attach to another of the \
             same user; memguard's cleared dumpable flag still refuses tracers without \
             CAP_SYS_PTRACE",
        )
        .fix("`sysctl kernel.yama.ptrace_scope=1` (or 2; persist it in /etc/sysctl.d/)"),
        Ok(v @ ("1" | "2" | "3")) => {
            let meaning = match v {
                "1" => "only a parent may attach to its descendants",
                "2" => "only processes with CAP_SYS_PTRACE may attach",
                _ => "no process may attach",
            };
            Check::ok(
                name,
                Kind::System,
                format!("kernel.yama.ptrace_scope = {v}: {meaning}"),
            )
        }
        Ok(v) => Check::new(
            name,
            Kind::System,
            Outcome::Degraded,
            format!("kernel.yama.ptrace_scope = {v} (unknown value)"),
        )
        .fix("`sysctl kernel.yama.ptrace_scope=1`"),
        Err(_) => Check::new(
            name,
            Kind::System,
            Outcome::Degraded,
            format!(
                "/proc/sys/kernel/yama/ptrace_scope is missing: Yama is not enabled{}; processes \
                 of the same user may attach to one another, except that memguard's cleared \
                 dumpable flag refuses tracers without CAP_SYS_PTRACE",
                lsms.map(|l| format!(" (active LSMs: {l})"))
                    .unwrap_or_default()
            ),
        )
        .fix(
            "enable Yama: a kernel with CONFIG_SECURITY_YAMA and `yama` in the lsm= boot \
             parameter, then `sysctl kernel.yama.ptrace_scope=1`",
        ),
    }
}

/// `(major, minor)` of a Linux `dev_t`.
fn dev_numbers(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major, minor)
}

/// What is known about the block device at `/sys/dev/block/<maj>:<min>`:
/// whether it or anything below it is dm-crypt, or zram.
fn block_device_kind(dir: &Path, depth: usize) -> Option<&'static str> {
    if depth > 8 {
        return None;
    }
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let name = canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.starts_with("zram") {
        return Some("zram (compressed RAM)");
    }
    if std::fs::read_to_string(canonical.join("dm/uuid")).is_ok_and(|u| u.starts_with("CRYPT-")) {
        return Some("dm-crypt (encrypted)");
    }
    // A partition: look at the whole disk too.
    if canonical.join("partition").exists() {
        if let Some(parent) = canonical.parent() {
            if let Some(kind) = block_device_kind(parent, depth + 1) {
                return Some(kind);
            }
        }
    }
    // A device-mapper or md device: look at what it is built on.
    if let Ok(slaves) = std::fs::read_dir(canonical.join("slaves")) {
        for slave in slaves.flatten() {
            if let Some(kind) = block_device_kind(&slave.path(), depth + 1) {
                return Some(kind);
            }
        }
    }
    None
}

/// Describes one swap area: in RAM or encrypted (`true`), or not known to
/// be (`false`).
fn classify_swap(path: &str) -> (bool, String) {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return (
                false,
                format!("{path}: cannot stat ({e}), encryption unknown"),
            )
        }
    };
    let (dev, what) = if meta.file_type().is_block_device() {
        (meta.rdev(), "partition")
    } else {
        (meta.dev(), "file")
    };
    let (major, minor) = dev_numbers(dev);
    let dir = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    match block_device_kind(&dir, 0) {
        Some(kind) => (true, format!("{path}: {kind}")),
        None => (
            false,
            format!("{path}: {what} on block device {major}:{minor}, not known to be encrypted"),
        ),
    }
}

/// The `swap` check: every swap area in `/proc/swaps`, and whether it is in RAM or encrypted.
fn swap_check() -> Check {
    let name = "swap";
    let text = match std::fs::read_to_string("/proc/swaps") {
        Ok(t) => t,
        Err(e) => {
            return Check::new(
                name,
                Kind::System,
                Outcome::Degraded,
                format!("/proc/swaps unreadable: {e}"),
            )
            .fix("mount /proc so that swap can be checked")
        }
    };
    let areas: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    if areas.is_empty() {
        return Check::ok(
            name,
            Kind::System,
            "no swap: nothing can be swapped out (guarded buffers are mlocked in any case; swap \
             matters for the rest of the process's memory)",
        );
    }
    let described: Vec<(bool, String)> = areas.iter().map(|a| classify_swap(a)).collect();
    let safe = described.iter().all(|(s, _)| *s);
    let list = described
        .iter()
        .map(|(_, d)| d.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if safe {
        Check::ok(
            name,
            Kind::System,
            format!(
                "{list}: swapped memory never reaches a disk in the clear (guarded buffers are \
                 mlocked in any case)"
            ),
        )
    } else {
        Check::new(
            name,
            Kind::System,
            Outcome::Degraded,
            format!(
                "{list}: guarded buffers are mlocked and never swapped, but the rest of the \
                 process's memory may reach this swap in the clear"
            ),
        )
        .fix(
            "encrypt swap with a random key at each boot (crypttab: `swap /dev/<part> \
             /dev/urandom swap,cipher=aes-xts-plain64,size=512`), or use zram, or `swapoff -a`",
        )
    }
}

/// The `memfd_secret` check: informational (the crate does not use it yet).
fn memfd_secret_check() -> Check {
    let name = "memfd_secret";
    // SAFETY: memfd_secret(flags = 0) takes no pointers; it returns a new
    // file descriptor, which is closed at once, or -1 with errno set.
    let fd = unsafe { libc::syscall(libc::SYS_memfd_secret, 0 as libc::c_uint) };
    if fd >= 0 {
        // SAFETY: `fd` is the descriptor just returned to us and used
        // nowhere else.
        unsafe { libc::close(fd as libc::c_int) };
        return Check::new(
            name,
            Kind::System,
            Outcome::Info,
            "available: memory that even the kernel's direct map does not show could hold \
             secrets; memguard does not use it yet, so this row is information only",
        );
    }
    let e = std::io::Error::last_os_error();
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) => "not available (ENOSYS: a kernel older than 5.14, built without \
                               CONFIG_SECRETMEM, or with secretmem.enable=0)"
            .to_string(),
        _ => format!("not usable ({e})"),
    };
    Check::new(
        name,
        Kind::System,
        Outcome::Info,
        format!("{why}; memguard does not use it yet, so no protection is lost"),
    )
}

/// The `transparent huge pages` check: informational.
fn thp_check() -> Check {
    let name = "transparent huge pages";
    let selected = |s: &str| {
        s.split_whitespace()
            .find(|w| w.starts_with('['))
            .map(|w| w.trim_matches(['[', ']']).to_string())
            .unwrap_or_else(|| s.to_string())
    };
    match read_trimmed("/sys/kernel/mm/transparent_hugepage/enabled") {
        Ok(mode) => {
            let mode = selected(&mode);
            let note = if mode == "always" {
                "the kernel may back large anonymous mappings with 2 MiB pages; memguard's \
                 data mappings sit between PROT_NONE guard pages in VMAs of their own, so \
                 guards, mlock and MADV_DONTDUMP still apply page for page"
            } else {
                "memguard never asks for huge pages (no MADV_HUGEPAGE), so its mappings stay \
                 in base pages"
            };
            Check::ok(name, Kind::System, format!("mode `{mode}`: {note}"))
        }
        Err(_) => Check::ok(
            name,
            Kind::System,
            "not built into this kernel: every mapping uses base pages",
        ),
    }
}

/// The `crash handler` check: `crash_handler_installed()` in a child after its first allocation.
fn crash_handler_check(hardening: &Result<Value, String>) -> Check {
    let name = "crash handler";
    match hardening {
        Ok(h) if h["after"]["crash_handler"].as_bool() == Some(true) => Check::ok(
            name,
            Kind::SelfTest,
            format!(
                "installed on the first allocation (before: {}): on SIGSEGV or SIGBUS every \
                 live buffer is wiped before the process dies of the signal",
                h["before"]["crash_handler"]
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
struct ChildRun {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl ChildRun {
    fn marked(&self, marker: &str) -> bool {
        self.stdout.lines().any(|l| {
            l.strip_prefix("MARK ")
                .is_some_and(|m| m.starts_with(marker))
        })
    }

    /// How it ended, in words.
    fn ending(&self) -> String {
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(sig)) => format!("died of {}", signal_name(sig)),
            _ => format!("ended with {:?}", self.status),
        }
    }

    /// The JSON on its `RESULT` line, if it exited 0 with one.
    fn result(self) -> Result<Value, String> {
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
fn last_line(text: &str) -> Option<&str> {
    text.lines().rev().find(|l| !l.trim().is_empty())
}

/// A signal's name.
fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGILL => "SIGILL".into(),
        other => format!("signal {other}"),
    }
}

/// The command that runs self-test `test` in a child.
fn selftest_command(test: &str, extra: &[&str]) -> Result<Command, String> {
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
fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for `child` until `deadline`; kills it after that.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<ExitStatus, String> {
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
fn run_child(test: &str, extra: &[&str]) -> Result<ChildRun, String> {
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

/// Runs a child that must die of SIGSEGV after its control went through
/// and it printed ARMED. `Ok(())` or what happened instead.
fn expect_segv(test: &str) -> Result<(), String> {
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
    match run.status.signal() {
        Some(libc::SIGSEGV) => Ok(()),
        _ => Err(format!(
            "the child {} instead of dying of SIGSEGV",
            run.ending()
        )),
    }
}

/// The `guard pages` check: writes just past either end of a buffer must kill the child.
fn guard_pages_check() -> Check {
    let name = "guard pages";
    let over = expect_segv("guard-overflow");
    let under = expect_segv("guard-underflow");
    match (over, under) {
        (Ok(()), Ok(())) => Check::ok(
            name,
            Kind::SelfTest,
            "a child writing 1 byte past the end of a 32-byte buffer died of SIGSEGV, and one \
             writing 1 byte below its first data page died of SIGSEGV (the in-bounds control \
             writes just before went through)",
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
    match expect_segv("frozen-write") {
        Ok(()) => Check::ok(
            name,
            Kind::SelfTest,
            "a child writing through a raw pointer to a frozen buffer died of SIGSEGV (the same \
             write while melted went through)",
        ),
        Err(e) => Check::new(name, Kind::SelfTest, Outcome::Failed, e).fix_failure(),
    }
}

/// Problems with one placement record from the smaps child.
fn smaps_problems(p: &Value, frozen: bool, what: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let flags: Vec<&str> = p["data"]["flags"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let fork_flag = if p["wipes_on_fork"].as_bool() == Some(true) {
        "wf"
    } else {
        "dc"
    };
    for flag in ["lo", "dd", fork_flag] {
        if !flags.contains(&flag) {
            problems.push(format!(
                "{what}: VmFlags lack `{flag}` ({})",
                flags.join(" ")
            ));
        }
    }
    let want = if frozen { "r--p" } else { "rw-p" };
    if p["data"]["perms"] != want {
        problems.push(format!(
            "{what}: data pages are {} instead of {want}",
            p["data"]["perms"]
        ));
    }
    for side in ["leading", "trailing"] {
        if p[side]["perms"] != "---p" {
            problems.push(format!(
                "{what}: the {side} guard page is {} instead of ---p",
                p[side]["perms"]
            ));
        }
    }
    if p["data_ends_at_page_end"].as_bool() != Some(true) {
        problems.push(format!(
            "{what}: the data does not end at the trailing guard page"
        ));
    }
    problems
}

/// The `smaps flags` check: the flags and permissions a child sees in its own smaps.
fn smaps_check() -> Check {
    let name = "smaps flags";
    let v = match run_child("smaps", &[]).and_then(ChildRun::result) {
        Ok(v) => v,
        Err(e) => return Check::new(name, Kind::SelfTest, Outcome::Failed, e).fix_failure(),
    };
    let mut problems = Vec::new();
    let mut lens = Vec::new();
    let mut flags = String::new();
    for b in v.as_array().into_iter().flatten() {
        let len = b["mutable"]["len"].as_u64().unwrap_or(0);
        lens.push(format!("{len}-byte"));
        problems.extend(smaps_problems(
            &b["mutable"],
            false,
            &format!("{len}-byte buffer"),
        ));
        problems.extend(smaps_problems(
            &b["frozen"],
            true,
            &format!("{len}-byte buffer, frozen"),
        ));
        if flags.is_empty() {
            flags = b["mutable"]["data"]["flags"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .filter(|f| ["lo", "dd", "wf", "dc"].contains(f))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
        }
    }
    if lens.is_empty() {
        problems.push("the child reported no buffers".into());
    }
    if problems.is_empty() {
        Check::ok(
            name,
            Kind::SelfTest,
            format!(
                "{} buffers in /proc/self/smaps: data pages rw-p (r--p when frozen) with \
                 VmFlags {flags} (locked, not dumped, {}), a ---p guard page on each side, data \
                 ending at the trailing guard",
                lens.join(" and "),
                if flags.contains("wf") {
                    "wiped on fork"
                } else {
                    "not inherited on fork"
                }
            ),
        )
    } else {
        Check::new(name, Kind::SelfTest, Outcome::Failed, problems.join("; ")).fix_failure()
    }
}

/// The `wipe on fork` check: what a forked grandchild sees of a buffer.
fn wipe_on_fork_check() -> Check {
    let name = "wipe on fork";
    let v = match run_child("wipe-on-fork", &[]).and_then(ChildRun::result) {
        Ok(v) => v,
        Err(e) => return Check::new(name, Kind::SelfTest, Outcome::Failed, e).fix_failure(),
    };
    let buffer = v["buffer"].as_str().unwrap_or("?");
    let heap = v["heap"].as_str().unwrap_or("?");
    let wf = v["wipes_on_fork"].as_bool() == Some(true);
    let intact = v["parent_copy_intact"].as_bool() == Some(true);
    if heap != "data" {
        return Check::new(
            name,
            Kind::SelfTest,
            Outcome::Failed,
            format!(
                "the control failed: a forked child read `{heap}` from an ordinary heap copy \
                 instead of the parent's bytes"
            ),
        )
        .fix_failure();
    }
    let expected = if wf { "zeros" } else { "signal 11" };
    if buffer == expected && intact {
        Check::ok(
            name,
            Kind::SelfTest,
            if wf {
                "a forked child read zeros where a buffer's data is (MADV_WIPEONFORK), and the \
                 parent's bytes from an ordinary heap copy (control); the parent's buffer was \
                 left intact"
            } else {
                "a forked child faulted reading a buffer (MADV_DONTFORK: this kernel lacks \
                 MADV_WIPEONFORK) and read the parent's bytes from an ordinary heap copy \
                 (control)"
            },
        )
    } else {
        Check::new(
            name,
            Kind::SelfTest,
            Outcome::Failed,
            format!(
                "a forked child saw `{buffer}` of a buffer (expected {expected}); parent's copy \
                 intact: {intact}"
            ),
        )
        .fix_failure()
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

/// The scan target, running: its pid and how to end it.
struct Target {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    lines: mpsc::Receiver<String>,
    err: JoinHandle<String>,
}

impl Target {
    /// Starts the target, hands it `secret` and waits for READY.
    fn start(secret: &[u8], unhardened: bool) -> Result<(Target, String), String> {
        let extra: &[&str] = if unhardened { &["--unhardened"] } else { &[] };
        let mut child = selftest_command("scan-target", extra)?
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start a child: {e}"))?;
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take();
        std::thread::spawn(move || {
            if let Some(out) = stdout {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        });
        let err = drain(child.stderr.take());
        let mut stdin = child.stdin.take();
        let written = stdin
            .as_mut()
            .map(|s| s.write_all(secret).and_then(|()| s.flush()));
        let target = Target {
            child,
            stdin,
            lines,
            err,
        };
        if let Some(Err(e)) = written {
            return Err(target.abort(&format!("cannot hand the secret to the child: {e}")));
        }
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match target.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(READY) => return Ok((target, line)),
                Ok(_) => {}
                Err(_) => return Err(target.abort("the child never became ready")),
            }
        }
    }

    /// Kills the child and describes what went wrong.
    fn abort(mut self, what: &str) -> String {
        drop(self.stdin.take());
        let status = wait_until(&mut self.child, Instant::now() + Duration::from_secs(2));
        let stderr = self.err.join().unwrap_or_default();
        format!(
            "{what} ({}; {})",
            match status {
                Ok(s) => format!("status {s}"),
                Err(e) => e,
            },
            last_line(&stderr).unwrap_or("no message")
        )
    }

    /// Closes the child's stdin, so it exits, and waits for it.
    fn finish(mut self) -> Result<(), String> {
        drop(self.stdin.take());
        let status = wait_until(&mut self.child, Instant::now() + CHILD_TIMEOUT)?;
        let stderr = self.err.join().unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "the child then ended with {status} ({})",
                last_line(&stderr).unwrap_or("no message")
            ))
        }
    }
}

/// The `memory scan` check: a child holding a sealed secret is searched for it.
fn memory_scan_check(caps: Caps) -> Check {
    let name = "memory scan";
    let mut secret = [0u8; SCAN_SECRET_LEN];
    if let Err(e) = memguard::scramble_bytes(&mut secret) {
        return Check::new(name, Kind::SelfTest, Outcome::Failed, e.to_string()).fix_failure();
    }
    let control: Vec<u8> = secret.iter().map(|b| b ^ CONTROL_XOR).collect();
    // Root (CAP_SYS_PTRACE) reads a non-dumpable process anyway, as a root
    // attacker would: the child stays hardened. Without the capability the
    // kernel refuses /proc/<pid>/mem of a non-dumpable process, so the
    // child opts out of the process hardening for this one check.
    let unhardened = !caps.sys_ptrace;
    let who = if unhardened {
        "The child called disable_process_hardening() so that this scanner, without \
         CAP_SYS_PTRACE, could read it; in real use its cleared dumpable flag (see `dumpable \
         flag`) keeps processes of the same user out altogether."
    } else {
        "The child was hardened (not dumpable); this scanner reads it anyway with \
         CAP_SYS_PTRACE, as an attacker with root would."
    };
    let (target, ready) = match Target::start(&secret, unhardened) {
        Ok(t) => t,
        Err(e) => return Check::new(name, Kind::SelfTest, Outcome::Failed, e).fix_failure(),
    };
    let pid = target.child.id();
    let needles: [&[u8]; 2] = [&secret, &control];
    let scanned = scan::scan(pid, &needles);
    memguard::wipe_bytes(&mut secret);
    let finished = target.finish();
    let report = match scanned {
        Ok(r) => r,
        Err(e) => {
            return Check::new(
                name,
                Kind::SelfTest,
                Outcome::Degraded,
                format!("cannot read the child's memory through /proc/{pid}/mem: {e}"),
            )
            .fix(
                "run `memguard doctor` as root (or with CAP_SYS_PTRACE), or with \
                 kernel.yama.ptrace_scope at most 1, to let it scan its own child",
            )
        }
    };
    let hardened = ready.contains("hardened=true");
    let read = format!(
        "read {} mappings ({:.1} MiB) of a child (hardened: {hardened}) holding a sealed \
         64-byte secret that it had opened once and closed again",
        report.mappings,
        report.bytes as f64 / (1 << 20) as f64
    );
    let control_hits = report.hits[1].len();
    if !report.hits[0].is_empty() {
        let wheres: Vec<String> = report.hits[0]
            .iter()
            .take(4)
            .map(|(a, n)| format!("{a:#x} {n}"))
            .collect();
        return Check::new(
            name,
            Kind::SelfTest,
            Outcome::Failed,
            format!(
                "{read}: the secret (16 bytes or more of it) is in memory at {} place(s): {}",
                report.hits[0].len(),
                wheres.join(", ")
            ),
        )
        .fix("plaintext is left behind: please report a memguard bug with this output");
    }
    if control_hits == 0 {
        return Check::new(
            name,
            Kind::SelfTest,
            Outcome::Failed,
            format!(
                "{read}: failed: scanner could not read memory (the control copy, secret XOR \
                 0x5A in a Vec, was not found either){}",
                report
                    .first_error
                    .map(|e| format!("; first read error: {e}"))
                    .unwrap_or_default()
            ),
        )
        .fix_failure();
    }
    let mut evidence = format!(
        "{read}: no 16-byte window of the secret anywhere; the control (secret XOR 0x5A, kept \
         in a Vec) found {control_hits} time(s), so the scan does see the child's memory. {who}"
    );
    if report.unreadable > 0 {
        evidence.push_str(&format!(
            " {} mapping(s) could not be read ({}).",
            report.unreadable,
            report.first_error.unwrap_or_default()
        ));
    }
    if let Err(e) = finished {
        evidence.push_str(&format!(" Note: {e}."));
    }
    Check::ok(name, Kind::SelfTest, evidence)
}

/// Plays the hidden `selftest` subcommand (the child side).
pub fn selftest(test: selftest::Test, unhardened: bool) -> ExitCode {
    selftest::run(test, unhardened)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_dev_numbers() {
        assert_eq!(size(8 << 20), "8 MiB");
        assert_eq!(size(1000), "1000 bytes");
        assert_eq!(dev_numbers(0x0803), (8, 3));
        assert_eq!(dev_numbers((259 << 8) | 1), (259, 1));
    }

    #[test]
    fn swap_on_an_unknown_device_is_not_called_encrypted() {
        // procfs has an anonymous device number: no block device behind it.
        let (safe, text) = classify_swap("/proc/self/status");
        assert!(!safe, "{text}");
        assert!(text.contains("not known to be encrypted"), "{text}");
        let (safe, text) = classify_swap("/no/such/swapfile");
        assert!(!safe && text.contains("cannot stat"), "{text}");
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
