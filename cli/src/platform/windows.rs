//! Windows: the working-set quota (what VirtualLock is held to), whether
//! WER can be told to leave buffers out of crash dumps, and the crash
//! dialog; the self-tests every OS has.
//!
//! Under wine (scripts/windows.sh) VirtualLock and SetProcessWorkingSetSize
//! succeed without effect and WerRegisterExcludedMemoryBlock is missing, so
//! the `WER exclusion` row is degraded there.

use std::process::ExitStatus;

use serde_json::{json, Value};
use windows_sys::Win32::System::Diagnostics::Debug::{GetErrorMode, SEM_NOGPFAULTERRORBOX};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Registry::{
    RegGetValueW, HKEY, HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE, RRF_RT_REG_DWORD,
};
use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, GetProcessWorkingSetSize};

use crate::doctor::{self, size, Check, Kind, Outcome, Row, Runs};
use crate::selftest::Test;

/// The OS's name in the report.
pub const OS: &str = "Windows";

/// What a child touching a guard page dies of.
pub const FAULT: &str = "STATUS_ACCESS_VIOLATION";

/// What the crash handler catches.
pub const CRASH_EVENTS: &str = "an access violation (its vectored exception handler)";

/// The limit on locked memory, as evidence names it.
pub const LOCK_LIMIT: &str = "working-set";

/// The fix for a small working-set quota.
pub const LOCK_FIX: &str = "memguard raises the process's minimum working set \
    (SetProcessWorkingSetSizeEx) when VirtualLock runs out of it; if that fails too, the \
    quota is capped by the system (ask the administrator for the \"Increase a process working \
    set\" right, SeIncreaseWorkingSetPrivilege) or memory is short";

/// STATUS_ACCESS_VIOLATION as an exit code.
const ACCESS_VIOLATION: u32 = 0xC000_0005;

/// The page size.
pub fn page_size() -> usize {
    // SAFETY: GetSystemInfo fills the struct it is given and cannot fail.
    let info: SYSTEM_INFO = unsafe {
        let mut info = std::mem::zeroed();
        GetSystemInfo(&mut info);
        info
    };
    info.dwPageSize as usize
}

/// No terminal width from the console here (COLUMNS is used).
pub fn terminal_width(_stdout: bool) -> Option<usize> {
    None
}

/// How a child ended, in words: its exit code, an NTSTATUS by name.
pub fn ending(status: &ExitStatus) -> String {
    match status.code().map(|c| c as u32) {
        Some(ACCESS_VIOLATION) => "died of STATUS_ACCESS_VIOLATION (0xC0000005)".into(),
        Some(c) if c >= 0xC000_0000 => format!("died with status {c:#010X}"),
        Some(c) => format!("exited with code {c}"),
        None => format!("ended with {status:?}"),
    }
}

/// Whether a child died of an access violation.
pub fn died_of_fault(status: &ExitStatus) -> bool {
    status.code().map(|c| c as u32) == Some(ACCESS_VIOLATION)
}

/// memguard grows the working-set quota itself: nothing to skip up front.
pub fn lock_shortfall(_bytes: u64) -> Option<String> {
    None
}

/// The report's `system` object.
pub fn system_info() -> Value {
    json!({
        "os": OS,
        "kernel": std::env::var("OS").unwrap_or_else(|_| "Windows".into()),
        "machine": std::env::consts::ARCH,
        "user": std::env::var("USERNAME").unwrap_or_else(|_| "?".into()),
    })
}

/// The hardening self-test's view of the process: its error mode.
pub fn process_state() -> Value {
    // SAFETY: GetErrorMode only reads the process's error mode.
    let mode = unsafe { GetErrorMode() };
    json!({ "error_mode": mode })
}

/// No Windows-only self-tests.
pub fn selftest(_test: Test) -> Option<Result<Value, String>> {
    None
}

/// What the rows read once, before any row runs: nothing on Windows.
pub struct Shared;

/// Reads what the rows share.
pub fn shared() -> Shared {
    Shared
}

/// The doctor's rows on Windows, in the order they are reported.
pub const CHECKS: &[Row] = &[
    doctor::PAGE_SIZE,
    Row {
        name: "working-set quota",
        kind: Kind::System,
        runs: Runs::Here,
        check: |cx| working_set_check(cx.page),
    },
    Row {
        name: "WER exclusion",
        kind: Kind::System,
        runs: Runs::Here,
        check: |_| wer_check(),
    },
    // The first row that needs the hardening child, so it runs it.
    Row {
        name: "crash dialog",
        kind: Kind::System,
        runs: Runs::Child,
        check: |cx| crash_dialog_check(cx.hardening()),
    },
    doctor::CRASH_HANDLER,
    doctor::GUARD_PAGES,
    doctor::FROZEN_WRITE,
    doctor::SEAL_OPEN,
];

/// The `working-set quota` check: what VirtualLock is held to.
fn working_set_check(page: usize) -> Check {
    let name = "working-set quota";
    let (mut min, mut max) = (0usize, 0usize);
    // SAFETY: the pseudo-handle of this process; two valid out-pointers.
    let ok = unsafe { GetProcessWorkingSetSize(GetCurrentProcess(), &mut min, &mut max) };
    if ok == 0 {
        return Check::new(
            name,
            Kind::System,
            Outcome::Degraded,
            format!(
                "GetProcessWorkingSetSize failed: {}",
                std::io::Error::last_os_error()
            ),
        )
        .fix(LOCK_FIX);
    }
    Check::ok(
        name,
        Kind::System,
        format!(
            "minimum working set {}, maximum {}: VirtualLock can lock up to about the minimum \
             less what the process already uses ({} pages of {page} bytes); memguard raises \
             the minimum when a lock fails (untested on real Windows: under wine VirtualLock \
             and SetProcessWorkingSetSize succeed without effect)",
            size(min as u64),
            size(max as u64),
            min / page.max(1)
        ),
    )
}

/// The `WER exclusion` check: whether kernel32 has
/// WerRegisterExcludedMemoryBlock, which keeps a buffer out of WER's dumps.
fn wer_check() -> Check {
    let name = "WER exclusion";
    let kernel32: Vec<u16> = "kernel32.dll\0".encode_utf16().collect();
    // SAFETY: a NUL-terminated UTF-16 name; kernel32 is always loaded, and
    // the symbol name is a NUL-terminated ASCII string.
    let found = unsafe {
        let module = GetModuleHandleW(kernel32.as_ptr());
        !module.is_null()
            && GetProcAddress(module, c"WerRegisterExcludedMemoryBlock".as_ptr().cast()).is_some()
    };
    if found {
        Check::ok(
            name,
            Kind::System,
            "kernel32 has WerRegisterExcludedMemoryBlock: buffers are registered as excluded \
             from Windows Error Reporting's crash dumps",
        )
    } else {
        Check::new(
            name,
            Kind::System,
            Outcome::Degraded,
            "kernel32 has no WerRegisterExcludedMemoryBlock (an old Windows, or wine): a crash \
             dump written by WER could contain the pages of live buffers (memguard still wipes \
             them before the process dies of a fault it catches)",
        )
        .fix("use Windows 10 or later, or turn off WER's local dumps (no LocalDumps key)")
    }
}

/// A DWORD registry value, if present.
fn reg_dword(root: HKEY, key: &str, value: &str) -> Option<u32> {
    let key: Vec<u16> = key.encode_utf16().chain([0]).collect();
    let value: Vec<u16> = value.encode_utf16().chain([0]).collect();
    let mut data = 0u32;
    let mut len = 4u32;
    // SAFETY: NUL-terminated UTF-16 strings; `data` holds the 4 bytes a
    // REG_DWORD needs and `len` says so.
    let r = unsafe {
        RegGetValueW(
            root,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_DWORD,
            std::ptr::null_mut(),
            (&mut data as *mut u32).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(data)
}

/// The `crash dialog` check: whether a crash waits for a dialog (and WER
/// settings that write dumps).
fn crash_dialog_check(hardening: &Result<Value, String>) -> Check {
    let name = "crash dialog";
    const WER: &str = r"Software\Microsoft\Windows\Windows Error Reporting";
    let dont_show = reg_dword(HKEY_CURRENT_USER, WER, "DontShowUI")
        .or_else(|| reg_dword(HKEY_LOCAL_MACHINE, WER, "DontShowUI"));
    let local_dumps = reg_dword(
        HKEY_LOCAL_MACHINE,
        &format!(r"{WER}\LocalDumps"),
        "DumpType",
    );
    let mode = hardening
        .as_ref()
        .ok()
        .and_then(|h| h["after"]["error_mode"].as_u64());
    let no_box = mode.is_some_and(|m| m as u32 & SEM_NOGPFAULTERRORBOX != 0);
    let evidence = format!(
        "error mode after memguard's first allocation (in a child): {}; WER DontShowUI: {}; \
         WER LocalDumps DumpType: {}",
        mode.map_or("unknown".into(), |m| format!("{m:#x}")),
        dont_show.map_or("not set".into(), |v| v.to_string()),
        local_dumps.map_or("not set".into(), |v| v.to_string()),
    );
    if local_dumps == Some(2) {
        return Check::new(
            name,
            Kind::System,
            Outcome::Degraded,
            format!("{evidence}: WER writes full dumps of crashing processes"),
        )
        .fix(r"remove HKLM\...\Windows Error Reporting\LocalDumps or set DumpType to 1 (mini)");
    }
    Check::new(
        name,
        Kind::System,
        Outcome::Info,
        format!(
            "{evidence}: {}",
            if no_box || dont_show == Some(1) {
                "a crash does not wait for a dialog"
            } else {
                "a crash may show WER's dialog before the process ends (buffers are wiped \
                 before that, by the crash handler)"
            }
        ),
    )
}
