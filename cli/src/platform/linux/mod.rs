//! Linux: its table of rows, [`CHECKS`] (procfs and sysfs settings,
//! capabilities, smaps, wipe on fork, a scan of a child's memory), and the
//! child side of its own self-tests. Swap classification is in `swap`; the
//! smaps reader and the memory scanner are the workspace's testkit's.

mod swap;

use std::io::Read;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use memguard::LockedBuffer;
use memguard_testkit::child::Live;
use memguard_testkit::procfs::{self, Mapping};
use memguard_testkit::scan::{self, Needle};
use serde_json::{json, Value};

use super::unix;
use crate::child::{ended_status, last_line, run_child, selftest_command, ChildRun};
use crate::doctor::{
    self, hardening_failed, Check, Context, Kind, Outcome, Row, Runs, CHILD_TIMEOUT,
};
use crate::selftest::{err, mark, Test};
use swap::classify_swap;

/// Printed by the scan target once it holds the sealed secret.
const READY: &str = "READY";
/// The byte the scan target XORs its control copy with.
const CONTROL_XOR: u8 = 0x5A;
/// Length of the secret the scan target seals.
const SCAN_SECRET_LEN: usize = 64;

/// The OS's name in the report.
pub const OS: &str = "Linux";

/// What a child touching a guard page dies of.
pub const FAULT: &str = "SIGSEGV";

/// What the crash handler catches.
pub const CRASH_EVENTS: &str = "SIGSEGV or SIGBUS";

/// The limit on locked memory, as evidence names it.
pub const LOCK_LIMIT: &str = "RLIMIT_MEMLOCK";

/// The fix for a small `RLIMIT_MEMLOCK`.
pub const LOCK_FIX: &str = "raise RLIMIT_MEMLOCK: `ulimit -l <KiB>` in the shell that starts the \
    program, LimitMEMLOCK= in its systemd unit, --ulimit memlock=<bytes> for a Docker container, \
    or a `memlock` line in /etc/security/limits.conf; or grant CAP_IPC_LOCK \
    (`setcap cap_ipc_lock+ep <binary>`)";

pub use unix::{ending, page_size, terminal_width};

/// Whether a child died of SIGSEGV.
pub fn died_of_fault(status: &ExitStatus) -> bool {
    unix::died_of(status, &[libc::SIGSEGV])
}

/// Why `bytes` of locked memory would not fit, if they would not.
pub fn lock_shortfall(bytes: u64) -> Option<String> {
    unix::memlock_shortfall(bytes, effective_caps().ipc_lock)
}

/// The report's `system` object.
pub fn system_info() -> Value {
    let caps = effective_caps();
    let mut info = unix::system_info_of(OS);
    info["cap_ipc_lock"] = json!(caps.ipc_lock);
    info["cap_sys_ptrace"] = json!(caps.sys_ptrace);
    info
}

/// What the Linux rows read once, before any row runs.
pub struct Shared {
    caps: Caps,
    /// `RLIMIT_CORE`, read before anything could lower it (the doctor itself never
    /// allocates a guarded buffer, so it is never hardened).
    pub core_here: rustix::process::Rlimit,
    /// `/proc/sys/kernel/core_pattern`.
    pattern: Result<String, String>,
}

/// Reads what the Linux rows share.
pub fn shared() -> Shared {
    Shared {
        caps: effective_caps(),
        core_here: rustix::process::getrlimit(rustix::process::Resource::Core),
        pattern: read_trimmed("/proc/sys/kernel/core_pattern"),
    }
}

/// The dumpable flag the hardening child reported after its first
/// allocation.
fn dumpable_after(cx: &mut Context) -> Option<i64> {
    cx.hardening()
        .as_ref()
        .ok()
        .and_then(|h| h["after"]["dumpable"].as_i64())
}

/// The doctor's rows on Linux, in the order they are reported.
pub const CHECKS: &[Row] = &[
    doctor::PAGE_SIZE,
    Row {
        name: "memlock limit",
        kind: Kind::System,
        runs: Runs::Here,
        check: |cx| {
            let exempt = cx.os.caps.ipc_lock.then_some("CAP_IPC_LOCK");
            unix::memlock_check(cx.page, locked_now(), exempt)
        },
    },
    unix::CORE_DUMP_LIMIT,
    Row {
        name: "core_pattern",
        kind: Kind::System,
        runs: Runs::Here,
        check: |cx| {
            let after = dumpable_after(cx);
            core_pattern_check(&cx.os.pattern, after)
        },
    },
    Row {
        name: "suid_dumpable",
        kind: Kind::System,
        runs: Runs::Here,
        check: |cx| suid_dumpable_check(&cx.os.pattern),
    },
    Row {
        name: "dumpable flag",
        kind: Kind::System,
        runs: Runs::Here,
        check: |cx| dumpable_check(cx.hardening()),
    },
    Row {
        name: "ptrace scope",
        kind: Kind::System,
        runs: Runs::Here,
        check: |cx| ptrace_check(dumpable_after(cx)),
    },
    Row {
        name: "swap",
        kind: Kind::System,
        runs: Runs::Here,
        check: |_| swap_check(),
    },
    Row {
        name: "memfd_secret",
        kind: Kind::System,
        runs: Runs::Here,
        check: |_| memfd_secret_check(),
    },
    Row {
        name: "transparent huge pages",
        kind: Kind::System,
        runs: Runs::Here,
        check: |_| thp_check(),
    },
    doctor::CRASH_HANDLER,
    doctor::GUARD_PAGES,
    doctor::FROZEN_WRITE,
    Row {
        name: "smaps flags",
        kind: Kind::SelfTest,
        runs: Runs::Child,
        check: |_| smaps_check(),
    },
    unix::WIPE_ON_FORK,
    doctor::SEAL_OPEN,
    Row {
        name: "memory scan",
        kind: Kind::SelfTest,
        runs: Runs::Child,
        check: |cx| memory_scan_check(cx.os.caps),
    },
];

/// The hardening self-test's view of the process: RLIMIT_CORE and the
/// dumpable flag.
pub fn process_state() -> Value {
    json!({ "core": unix::core_limit(), "dumpable": dumpable() })
}

/// The child side of the Linux-only self-tests.
pub fn selftest(test: Test) -> Option<Result<Value, String>> {
    match test {
        Test::Smaps => Some(smaps()),
        Test::WipeOnFork => Some(unix::wipe_on_fork()),
        Test::ScanTarget => Some(scan_target()),
        _ => None,
    }
}

/// Effective capabilities that change what the checks mean.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
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

/// Bytes locked by this process already (`VmLck`; 0 when unreadable).
fn locked_now() -> u64 {
    procfs::status_field_of("self", "VmLck")
        .ok()
        .flatten()
        .and_then(|v| procfs::kb_to_bytes(&v))
        .unwrap_or(0)
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

/// The `memfd_secret` check: the memory backend memguard uses in this
/// process, and why (secret memory where the kernel gives it; the
/// `MEMGUARD_MEMORY_BACKEND` variable or the application may choose
/// anonymous memory instead).
fn memfd_secret_check() -> Check {
    let name = "memfd_secret";
    let backend = memguard::memory_backend();
    let reason = memguard::memory_backend_reason();
    match backend {
        memguard::MemoryBackend::SecretMemory => Check::new(
            name,
            Kind::System,
            Outcome::Ok,
            format!(
                "backend: {backend}; {reason}. Buffers are out of reach of root's \
                 /proc/<pid>/mem, process_vm_readv and ptrace, and of the kernel's direct map \
                 (while any exists, the system will not hibernate)"
            ),
        ),
        memguard::MemoryBackend::Anonymous => Check::new(
            name,
            Kind::System,
            Outcome::Info,
            format!(
                "backend: {backend}; {reason}. Root and the kernel can read buffers (as with \
                 every library that uses plain mlock'ed memory)"
            ),
        ),
    }
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
    // Secret memory (memfd_secret) can only be mapped shared: `s`. The
    // child decides its backend as this process did (same environment).
    let shared = memguard::memory_backend() == memguard::MemoryBackend::SecretMemory;
    let want = match (frozen, shared) {
        (true, true) => "r--s",
        (false, true) => "rw-s",
        (true, false) => "r--p",
        (false, false) => "rw-p",
    };
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
                "{} buffers in /proc/self/smaps: data pages {} with \
                 VmFlags {flags} (locked, not dumped, {}), a ---p guard page on each side, data \
                 ending at the trailing guard",
                lens.join(" and "),
                if memguard::memory_backend() == memguard::MemoryBackend::SecretMemory {
                    "rw-s (r--s when frozen: a shared mapping of the secret-memory file)"
                } else {
                    "rw-p (r--p when frozen)"
                },
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

/// The scan target, running ([`Live`]: killed when dropped): its pid and
/// how to end it.
struct Target {
    live: Live,
}

impl Target {
    /// Starts the target, hands it `secret` and waits for READY.
    fn start(secret: &[u8], unhardened: bool) -> Result<(Target, String), String> {
        let extra: &[&str] = if unhardened { &["--unhardened"] } else { &[] };
        let live = Live::start(&mut selftest_command("scan-target", extra)?, CHILD_TIMEOUT)
            .map_err(|e| format!("cannot start a child: {e}"))?;
        let mut target = Target { live };
        if let Err(e) = target.live.send(secret) {
            return Err(target.abort(&format!("cannot hand the secret to the child: {e}")));
        }
        let ready = target.live.wait_for(|text| {
            text.lines()
                .find(|line| line.starts_with(READY))
                .map(str::to_owned)
        });
        match ready {
            Ok(line) => Ok((target, line)),
            Err(_) => Err(target.abort("the child never became ready")),
        }
    }

    /// The child's process id.
    fn id(&self) -> u32 {
        self.live.id()
    }

    /// Kills the child and describes what went wrong.
    fn abort(mut self, what: &str) -> String {
        let ended = self.live.finish_by(Instant::now() + Duration::from_secs(2));
        let stderr = String::from_utf8_lossy(&ended.stderr).into_owned();
        format!(
            "{what} ({}; {})",
            match ended_status(ended.status) {
                Ok(s) => format!("status {s}"),
                Err(e) => e,
            },
            last_line(&stderr).unwrap_or("no message")
        )
    }

    /// Closes the child's stdin, so it exits, and waits for it.
    fn finish(mut self) -> Result<(), String> {
        let ended = self.live.finish_by(Instant::now() + CHILD_TIMEOUT);
        let status = ended_status(ended.status)?;
        let stderr = String::from_utf8_lossy(&ended.stderr).into_owned();
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
    let pid = target.id();
    let needles = [
        Needle {
            name: "secret",
            bytes: &secret,
        },
        Needle {
            name: "control",
            bytes: &control,
        },
    ];
    let scanned = scan::scan(pid as i32, &needles);
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
    // Where each copy of 16 or more bytes of a needle starts, and in which
    // mapping.
    let places = |n: usize| -> Vec<(usize, String)> {
        report.found[n]
            .runs()
            .into_iter()
            .map(|a| {
                let name = procfs::mapping_of(&report.maps, a).map_or("", |m| m.path.as_str());
                (a, name.to_owned())
            })
            .collect()
    };
    let secret_hits = places(0);
    let readable = report.mappings - report.unreadable_mappings;
    let hardened = ready.contains("hardened=true");
    let read = format!(
        "read {} mappings ({:.1} MiB) of a child (hardened: {hardened}) holding a sealed \
         64-byte secret that it had opened once and closed again",
        readable,
        report.bytes as f64 / (1 << 20) as f64
    );
    let control_hits = places(1).len();
    if !secret_hits.is_empty() {
        let wheres: Vec<String> = secret_hits
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
                secret_hits.len(),
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
                    .as_ref()
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
    if report.unreadable_mappings > 0 {
        evidence.push_str(&format!(
            " {} mapping(s) could not be read ({}).",
            report.unreadable_mappings,
            report.first_error.clone().unwrap_or_default()
        ));
    }
    if let Err(e) = finished {
        evidence.push_str(&format!(" Note: {e}."));
    }
    Check::ok(name, Kind::SelfTest, evidence)
}

/// A file's contents without surrounding whitespace, or why it could not
/// be read.
fn read_trimmed(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{path}: {e}"))
}

/// `PR_GET_DUMPABLE`: 0, 1 or 2, or the error.
fn dumpable() -> Value {
    use rustix::process::DumpableBehavior;
    match rustix::process::dumpable_behavior() {
        Ok(DumpableBehavior::NotDumpable) => json!(0),
        Ok(DumpableBehavior::Dumpable) => json!(1),
        Ok(DumpableBehavior::DumpableReadableOnlyByRoot) => json!(2),
        Err(e) => json!(format!("error: {e}")),
    }
}

/// The permissions (and flags) of the mapping that holds `address`.
fn mapping_at(maps: &[Mapping], address: usize) -> Value {
    match procfs::mapping_of(maps, address) {
        Some(m) => json!({ "perms": m.perms, "flags": m.vm_flags }),
        None => json!({ "perms": "unmapped", "flags": [] }),
    }
}

/// What smaps says about `buf`'s data pages and the pages on either side.
fn placement(buf: &LockedBuffer) -> Result<Value, String> {
    let len = buf.len();
    let page = buf.page_size();
    let data = buf.bytes().as_ptr() as usize;
    let first_page = data + len - len.div_ceil(page) * page;
    let end = data + len;
    let maps = procfs::read_smaps("self")?;
    Ok(json!({
        "len": len,
        "data_ends_at_page_end": end.is_multiple_of(page),
        "data": mapping_at(&maps, first_page),
        "leading": mapping_at(&maps, first_page - 1),
        "trailing": mapping_at(&maps, end),
        "wipes_on_fork": buf.wipes_on_fork(),
    }))
}

/// Self-test `smaps`: placement records of a small and a multi-page buffer, mutable and frozen.
fn smaps() -> Result<Value, String> {
    let mut out = Vec::new();
    for len in [32, 3 * 4096 + 5] {
        let mut buf = LockedBuffer::new(len).map_err(err("LockedBuffer::new"))?;
        let mutable = placement(&buf)?;
        buf.freeze().map_err(err("freeze"))?;
        let frozen = placement(&buf)?;
        out.push(json!({ "mutable": mutable, "frozen": frozen }));
    }
    Ok(Value::Array(out))
}

/// Unbuffered reads from file descriptor 0 (std's `Stdin` keeps a copy of
/// what it reads in its buffer, which the scan would rightly find).
struct RawStdin;

impl Read for RawStdin {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Ok(rustix::io::read(rustix::stdio::stdin(), buf)?)
    }
}

/// Self-test `scan-target`: holds a sealed secret (and a transformed control
/// copy) until stdin ends.
fn scan_target() -> Result<Value, String> {
    // The secret goes from the pipe straight into guarded memory.
    let plain = LockedBuffer::from_reader(RawStdin, SCAN_SECRET_LEN)
        .map_err(err("LockedBuffer::from_reader(stdin)"))?;
    // The positive control: a transformed copy in ordinary heap memory,
    // which the parent's scan must find.
    let control: Vec<u8> = plain.bytes().iter().map(|b| b ^ CONTROL_XOR).collect();
    // Seal (this destroys, so wipes and unmaps, the plaintext buffer).
    let sealed = plain.seal().map_err(err("seal"))?;
    // Open once and close again, so that opening leaves nothing behind
    // either.
    {
        let opened = sealed.open().map_err(err("open"))?;
        let same = opened
            .bytes()
            .iter()
            .zip(&control)
            .all(|(p, c)| p ^ CONTROL_XOR == *c);
        if !same {
            return Err("the opened enclave differs from the secret".into());
        }
    }
    mark(&format!(
        "{READY} pid={} hardened={}",
        std::process::id(),
        memguard::is_process_hardened()
    ));
    // Hold the enclave and the control until the parent closes our stdin.
    let mut byte = [0u8; 1];
    while matches!(RawStdin.read(&mut byte), Ok(n) if n > 0) {}
    std::hint::black_box(&control);
    std::hint::black_box(&sealed);
    Ok(json!({ "held": sealed.len() }))
}
