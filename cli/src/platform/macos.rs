//! macOS: RLIMIT_MEMLOCK, RLIMIT_CORE (the only way out of core dumps), and
//! PT_DENY_ATTACH (the debugger-attach block of the process hardening); the
//! self-tests every Unix has. Compile-checked only in CI.

use serde_json::{json, Value};

use super::unix;
use crate::doctor::{self, hardening_failed, Check, Kind, Outcome, Row, Runs};

/// The OS's name in the report.
pub const OS: &str = "macOS";

/// What a child touching a guard page dies of.
pub const FAULT: &str = "SIGSEGV or SIGBUS";

/// What the crash handler catches.
pub const CRASH_EVENTS: &str = "SIGSEGV or SIGBUS";

/// The limit on locked memory, as evidence names it.
pub const LOCK_LIMIT: &str = "RLIMIT_MEMLOCK";

/// The fix for a small `RLIMIT_MEMLOCK`.
pub const LOCK_FIX: &str = "raise RLIMIT_MEMLOCK: `ulimit -l <KiB>` in the shell that starts the \
    program, or HardResourceLimits/SoftResourceLimits in its launchd plist";

pub use unix::{
    died_of_fault, ending, lock_shortfall, page_size, selftest, shared, terminal_width, Shared,
};

/// The report's `system` object.
pub fn system_info() -> Value {
    unix::system_info_of(OS)
}

/// The hardening self-test's view of the process: RLIMIT_CORE and whether
/// debuggers are refused (P_LNOATTACH, set by PT_DENY_ATTACH).
pub fn process_state() -> Value {
    json!({ "core": unix::core_limit(), "deny_attach": deny_attach() })
}

/// P_LNOATTACH in this process's `kern.proc.pid` flags, or the error.
fn deny_attach() -> Value {
    const P_LNOATTACH: i32 = 0x0000_1000;
    let mut mib = [
        libc::CTL_KERN,
        libc::KERN_PROC,
        libc::KERN_PROC_PID,
        std::process::id() as libc::c_int,
    ];
    // The `libc` crate has no `kinfo_proc` for macOS: read it as bytes.
    // `kp_proc` (`struct extern_proc`, sys/proc.h) comes first, and its
    // `int p_flag` sits after a 16-byte union and two pointers: offset 32
    // on 64-bit macOS. The whole struct is 648 bytes there.
    const P_FLAG_OFFSET: usize = 32;
    let mut info = [0u64; 128];
    let mut len = std::mem::size_of_val(&info);
    // SAFETY: a four-element MIB, an output buffer of `len` bytes, no new
    // value.
    let r = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            4,
            info.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if r != 0 {
        return json!(format!("error: {}", std::io::Error::last_os_error()));
    }
    if len < P_FLAG_OFFSET + 4 {
        return json!(format!("error: kern.proc.pid returned {len} bytes"));
    }
    let bytes: Vec<u8> = info.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let mut flag = [0u8; 4];
    flag.copy_from_slice(&bytes[P_FLAG_OFFSET..P_FLAG_OFFSET + 4]);
    json!(i32::from_ne_bytes(flag) & P_LNOATTACH != 0)
}

/// The doctor's rows on macOS, in the order they are reported.
pub const CHECKS: &[Row] = &[
    doctor::PAGE_SIZE,
    unix::MEMLOCK_LIMIT,
    unix::CORE_DUMP_LIMIT,
    Row {
        name: "debugger attach",
        kind: Kind::System,
        runs: Runs::Here,
        check: |cx| deny_attach_check(cx.hardening()),
    },
    doctor::CRASH_HANDLER,
    doctor::GUARD_PAGES,
    doctor::FROZEN_WRITE,
    unix::WIPE_ON_FORK,
    doctor::SEAL_OPEN,
];

/// The `debugger attach` check: P_LNOATTACH in a child after its first
/// allocation.
fn deny_attach_check(hardening: &Result<Value, String>) -> Check {
    let name = "debugger attach";
    let h = match hardening {
        Ok(h) => h,
        Err(e) => return hardening_failed(name, Kind::System, "", e),
    };
    let after = &h["after"]["deny_attach"];
    let evidence = format!(
        "P_LNOATTACH in a child: {} before, {after} after memguard's first allocation",
        h["before"]["deny_attach"]
    );
    if after.as_bool() == Some(true) {
        Check::ok(
            name,
            Kind::System,
            format!("{evidence}: PT_DENY_ATTACH refuses debuggers (and dtrace)"),
        )
    } else {
        Check::new(name, Kind::System, Outcome::Degraded, evidence)
            .fix("keep memguard's process hardening on (do not call disable_process_hardening)")
    }
}
