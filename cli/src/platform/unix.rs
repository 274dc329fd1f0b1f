//! What every Unix shares: rlimits, signals, fork.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use serde_json::{json, Value};

use crate::child::{run_child, ChildRun};
use crate::doctor::{hardening_failed, size, Check, Kind, Outcome, Row, Runs, FEW_BUFFERS};
use crate::selftest::filled;

/// A limit as the table shows it: `unlimited`, `0` or a size.
pub fn limit_text(limit: Option<u64>) -> String {
    match limit {
        None => "unlimited".to_string(),
        Some(0) => "0".to_string(),
        Some(n) => size(n),
    }
}

/// The page size.
pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// The width of the terminal on stdout (or stderr), if it is one.
pub fn terminal_width(stdout: bool) -> Option<usize> {
    let size = if stdout {
        rustix::termios::tcgetwinsize(rustix::stdio::stdout())
    } else {
        rustix::termios::tcgetwinsize(rustix::stdio::stderr())
    };
    size.ok().map(|s| usize::from(s.ws_col))
}

/// How a child ended, in words: its exit code or the signal it died of.
pub fn ending(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("died of {}", signal_name(sig)),
        _ => format!("ended with {status:?}"),
    }
}

/// Whether a child died of one of `signals`.
pub fn died_of(status: &ExitStatus, signals: &[i32]) -> bool {
    status.signal().is_some_and(|s| signals.contains(&s))
}

/// `RLIMIT_MEMLOCK`'s soft limit, when it keeps `bytes` from being locked
/// (and `exempt` is false): why.
pub fn memlock_shortfall(bytes: u64, exempt: bool) -> Option<String> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Memlock).current?;
    if exempt || bytes <= limit {
        return None;
    }
    Some(format!(
        "needs about {} KiB of locked memory; RLIMIT_MEMLOCK is {} KiB (raise it with `ulimit -l`)",
        bytes / 1024,
        limit / 1024
    ))
}

/// The `memlock limit` check: how many buffers and enclaves fit in `RLIMIT_MEMLOCK`.
///
/// `locked_now`: bytes this process has locked already; `privilege`: the
/// privilege this process has that lifts the limit (Linux's CAP_IPC_LOCK),
/// if it has one.
pub fn memlock_check(page: usize, locked_now: u64, privilege: Option<&str>) -> Check {
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
    let fit = soft.saturating_sub(locked_now) / page;
    let mib_pages = (1u64 << 20).div_ceil(page);
    let (own, compact, automatic) = secrets_that_fit(soft, locked_now, page);
    let fits = format!(
        "32-byte secrets that fit at once: {own} with a page each (CompactMode::Never, 1 page \
         each, a 1 MiB buffer takes {mib_pages} pages), about {compact} compact \
         (CompactMode::Always, {} per page), about {automatic} by default \
         (CompactMode::Automatic: pages of their own within a quarter of the limit, then \
         compact); enclaves: any number sealed (ciphertext in ordinary memory)",
        memguard::compact_slots_per_page(32, page as usize),
    );
    if let Some(p) = privilege {
        return Check::ok(
            "memlock limit",
            Kind::System,
            format!(
                "{limits}; ok only because this process has {p} (as root has), so the limit \
                 does not apply and buffers are bounded by RAM only. A user without {p} is \
                 held to its own RLIMIT_MEMLOCK (run `memguard doctor` as the user the program \
                 will run as to see it); under the limit above: {fits}"
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
    .fix(super::LOCK_FIX)
}

/// How many open 32-byte secrets fit under a lock limit of `soft` bytes
/// with `locked` bytes already locked, in pages of `page` bytes: each with
/// a page of its own, all compact, and by default (own pages within a
/// quarter of the limit, then compact). One page goes to the session key,
/// and one compact page to the writable slab that `Enclave::open` decrypts
/// into before the secret moves to a frozen slab.
pub fn secrets_that_fit(soft: u64, locked: u64, page: u64) -> (u64, u64, u64) {
    let pages = soft.saturating_sub(locked) / page;
    let slots = memguard::compact_slots_per_page(32, page as usize) as u64;
    let own = pages.saturating_sub(1);
    let compact = pages.saturating_sub(2) * slots;
    let own_auto = (soft / 4 / page)
        .saturating_sub(locked.div_ceil(page) + 1)
        .min(own);
    let automatic = own_auto + pages.saturating_sub(2 + own_auto) * slots;
    (own, compact, automatic)
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

/// Whether a child died of SIGSEGV or SIGBUS (macOS and the BSDs raise
/// either for a guard page).
#[cfg(not(target_os = "linux"))]
pub fn died_of_fault(status: &ExitStatus) -> bool {
    died_of(status, &[libc::SIGSEGV, libc::SIGBUS])
}

/// Why `bytes` of locked memory would not fit, if they would not, where no
/// privilege lifts `RLIMIT_MEMLOCK` (macOS, the BSDs).
#[cfg(not(target_os = "linux"))]
pub fn lock_shortfall(bytes: u64) -> Option<String> {
    memlock_shortfall(bytes, false)
}

/// The report's `system` object as every Unix starts it: the OS's name
/// `os`, the kernel release, the machine and the user.
pub fn system_info_of(os: &str) -> Value {
    let uname = rustix::system::uname();
    let uid = rustix::process::getuid().as_raw();
    json!({
        "os": os,
        "kernel": uname.release().to_string_lossy(),
        "machine": uname.machine().to_string_lossy(),
        "user": format!("uid {uid}"),
        "uid": uid,
    })
}

/// What the rows read once, before any row runs, on a Unix with no rows of
/// its own that need more (macOS, the BSDs; Linux has its own).
#[cfg(not(target_os = "linux"))]
pub struct Shared {
    /// `RLIMIT_CORE`, read before anything could lower it (the doctor
    /// itself never allocates a guarded buffer, so it is never hardened).
    pub core_here: rustix::process::Rlimit,
}

/// Reads what the rows share.
#[cfg(not(target_os = "linux"))]
pub fn shared() -> Shared {
    Shared {
        core_here: rustix::process::getrlimit(rustix::process::Resource::Core),
    }
}

/// The child side of the self-tests of a Unix whose only one of its own is
/// `wipe on fork` (macOS, the BSDs).
#[cfg(not(target_os = "linux"))]
pub fn selftest(test: crate::selftest::Test) -> Option<Result<Value, String>> {
    match test {
        crate::selftest::Test::WipeOnFork => Some(wipe_on_fork()),
        _ => None,
    }
}

/// Row `core dump limit` (every Unix): the first row that needs the
/// hardening child, so it runs it. Reads `core_here`, this process's
/// `RLIMIT_CORE`, from the OS's `Shared`.
pub const CORE_DUMP_LIMIT: Row = Row {
    name: "core dump limit",
    kind: Kind::System,
    runs: Runs::Child,
    check: |cx| {
        let here = cx.os.core_here;
        core_limit_check(here, cx.hardening())
    },
};

/// Row `memlock limit` where nothing exempts a process from
/// `RLIMIT_MEMLOCK` and nothing is locked yet (macOS, the BSDs).
#[cfg(not(target_os = "linux"))]
pub const MEMLOCK_LIMIT: Row = Row {
    name: "memlock limit",
    kind: Kind::System,
    runs: Runs::Here,
    check: |cx| memlock_check(cx.page, 0, None),
};

/// Row `wipe on fork` (every Unix).
pub const WIPE_ON_FORK: Row = Row {
    name: "wipe on fork",
    kind: Kind::SelfTest,
    runs: Runs::Child,
    check: |_| wipe_on_fork_check(),
};

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
    let faulted = [libc::SIGSEGV, libc::SIGBUS]
        .iter()
        .any(|s| buffer == format!("signal {s}"));
    let expected = if wf { "zeros" } else { "a fault" };
    if (if wf { buffer == "zeros" } else { faulted }) && intact {
        Check::ok(
            name,
            Kind::SelfTest,
            if wf {
                "a forked child read zeros where a buffer's data is (wiped on fork), and the \
                 parent's bytes from an ordinary heap copy (control); the parent's buffer was \
                 left intact"
            } else {
                "a forked child faulted reading a buffer (not inherited: secret memory, a \
                 shared mapping, is kept out of children with MADV_DONTFORK, as is any buffer \
                 where the kernel cannot wipe on fork) and read the parent's bytes from an \
                 ordinary heap copy (control)"
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

/// A signal's name.
pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGILL => "SIGILL".into(),
        other => format!("signal {other}"),
    }
}

/// The soft and hard RLIMIT_CORE, `null` meaning unlimited.
pub fn core_limit() -> Value {
    let l = rustix::process::getrlimit(rustix::process::Resource::Core);
    json!({ "soft": l.current, "hard": l.maximum })
}

/// Forks; the forked child reads `len` bytes at `ptr` and reports through
/// its exit code: 0 all zeros, 1 all `fill`, 2 anything else. Returns
/// "zeros", "data", "mixed" or "signal N".
fn fork_and_probe(ptr: *const u8, len: usize, fill: u8) -> Result<String, String> {
    let _ = std::io::stdout().flush();
    // SAFETY: this process has a single thread (the self-test spawns none),
    // and the forked child only reads memory and calls _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let (mut zeros, mut same) = (0, 0);
        for i in 0..len {
            // SAFETY: `ptr..ptr+len` is mapped in the parent; if the child
            // does not have it the read faults, which the parent sees.
            match unsafe { ptr.add(i).read_volatile() } {
                0 => zeros += 1,
                b if b == fill => same += 1,
                _ => {}
            }
        }
        let code = if zeros == len {
            0
        } else if same == len {
            1
        } else {
            2
        };
        // SAFETY: ends the forked child at once, running nothing of the
        // parent's (atexit handlers, destructors, stdio flushes).
        unsafe { libc::_exit(code) }
    }
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked; `status` is a valid int.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
    }
    Ok(if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => "zeros".into(),
            1 => "data".into(),
            _ => "mixed".into(),
        }
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status}")
    })
}

/// Self-test `wipe-on-fork`: what forked children see of a buffer and of a heap copy.
pub fn wipe_on_fork() -> Result<Value, String> {
    const FILL: u8 = 0xAA;
    let (buf, ptr) = filled(64, FILL)?;
    let heap = Box::new([FILL; 64]);
    let buffer_seen = fork_and_probe(ptr, buf.len(), FILL)?;
    // Control: ordinary memory is copied into the forked child, so the
    // probe really reads the parent's bytes.
    let heap_seen = fork_and_probe(heap.as_ptr(), heap.len(), FILL)?;
    let intact = buf.bytes().iter().all(|&b| b == FILL);
    Ok(json!({
        "buffer": buffer_seen,
        "heap": heap_seen,
        "wipes_on_fork": buf.wipes_on_fork(),
        "parent_copy_intact": intact,
    }))
}

#[cfg(test)]
mod tests {
    use super::secrets_that_fit;

    #[test]
    fn secrets_that_fit_64_kib_and_8_mib() {
        // 16 pages: the key takes one; compact: one writable slab page, 14
        // frozen pages of 102 slots; by default 3 own pages first.
        assert_eq!(secrets_that_fit(64 << 10, 0, 4096), (15, 1428, 1125));
        let (own, compact, auto) = secrets_that_fit(8 << 20, 0, 4096);
        assert_eq!(own, 2047);
        assert!(compact > 200_000 && auto > 100_000, "{compact} {auto}");
        assert_eq!(secrets_that_fit(0, 0, 4096), (0, 0, 0));
    }
}
