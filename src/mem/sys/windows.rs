//! The Windows backend, through `windows-sys`.
//!
//! - Pages: `VirtualAlloc` (reserved and committed at once, `PAGE_NOACCESS`),
//!   `VirtualProtect`, `VirtualLock`, `VirtualFree`. A lock refused for the
//!   working-set quota grows the quota with `SetProcessWorkingSetSizeEx`
//!   and tries once more (see `quota.rs`). Pages made `PAGE_NOACCESS` lose
//!   their lock, so spares are locked again when taken
//!   ([`Pages::NO_ACCESS_UNLOCKS`]).
//! - Out of crash dumps: `WerRegisterExcludedMemoryBlock`, looked up at run
//!   time (some systems, and wine, lack it: then the protection is not
//!   claimed). Process-wide: `WerSetFlags(WER_FAULT_REPORTING_FLAG_NOHEAP)`,
//!   also looked up at run time. No unprivileged call keeps debuggers of
//!   the same user out.
//! - Fault hook: a vectored exception handler for
//!   `EXCEPTION_ACCESS_VIOLATION` (a fault in memguard's pages is wiped and
//!   left to kill the process with `STATUS_ACCESS_VIOLATION`), and an
//!   unhandled-exception filter that wipes before any other crash.
//! - No `fork`: nothing to hook; the fork generation stays 0.
//! - Termination: `SetConsoleCtrlHandler`.
//! - Terminal: `CONIN$`/`CONOUT$`, echo switched with `SetConsoleMode`.

use std::ffi::c_void;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::io::AsRawHandle;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, Once, OnceLock};

use windows_sys::Win32::Foundation::{
    GetLastError, ERROR_COMMITMENT_LIMIT, ERROR_NOT_ENOUGH_MEMORY, EXCEPTION_ACCESS_VIOLATION,
    HANDLE,
};
use windows_sys::Win32::System::Console::{
    GetConsoleMode, SetConsoleCtrlHandler, SetConsoleMode, CONSOLE_MODE, CTRL_BREAK_EVENT,
    CTRL_CLOSE_EVENT, CTRL_C_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT, ENABLE_ECHO_INPUT,
};
use windows_sys::Win32::System::Diagnostics::Debug::{
    AddVectoredExceptionHandler, SetUnhandledExceptionFilter, EXCEPTION_CONTINUE_SEARCH,
    EXCEPTION_POINTERS, LPTOP_LEVEL_EXCEPTION_FILTER,
};
use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};
use windows_sys::Win32::System::Memory::{
    GetProcessWorkingSetSizeEx, SetProcessWorkingSetSizeEx, VirtualAlloc, VirtualFree, VirtualLock,
    VirtualProtect, MEM_COMMIT, MEM_RELEASE, MEM_RESERVE, PAGE_NOACCESS, PAGE_PROTECTION_FLAGS,
    PAGE_READONLY, PAGE_READWRITE,
};
use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};
use windows_sys::Win32::System::Threading::{
    FlushProcessWriteBuffers, GetCurrentProcess, TerminateProcess,
};

use super::quota::{after_lock_failure, AfterLockFailure};
use super::{Access, Disposition, Fault, Hardened, Pages, Process, Terminal, Termination};
use crate::error::{Error, Result};
use crate::mem::crash_handler;
use crate::mem::protections::Protections;
use crate::signals::Signal;

/// The Windows backend.
pub(crate) struct Windows;

/// The page size, read once.
static PAGE: AtomicUsize = AtomicUsize::new(0);

fn protection(access: Access) -> PAGE_PROTECTION_FLAGS {
    match access {
        Access::None => PAGE_NOACCESS,
        Access::ReadOnly => PAGE_READONLY,
        Access::ReadWrite => PAGE_READWRITE,
    }
}

/// The last error as an [`io::Error`].
fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// A function of kernel32.dll looked up at run time; `None` when this
/// system lacks it. `name` ends with a NUL.
fn kernel32(name: &'static [u8]) -> Option<unsafe extern "system" fn() -> isize> {
    let module: Vec<u16> = "kernel32.dll\0".encode_utf16().collect();
    // SAFETY: a NUL-terminated UTF-16 name; kernel32 is loaded in every
    // process and never unloaded, so the address stays valid.
    unsafe {
        let handle = GetModuleHandleW(module.as_ptr());
        if handle.is_null() {
            return None;
        }
        GetProcAddress(handle, name.as_ptr())
    }
}

type WerRegister = unsafe extern "system" fn(*const c_void, u32) -> i32;
type WerUnregister = unsafe extern "system" fn(*const c_void) -> i32;
type WerSetFlags = unsafe extern "system" fn(u32) -> i32;

/// `WerRegisterExcludedMemoryBlock` and `WerUnregisterExcludedMemoryBlock`,
/// where the system has both.
fn wer_exclusion() -> Option<(WerRegister, WerUnregister)> {
    static FOUND: OnceLock<Option<(WerRegister, WerUnregister)>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let register = kernel32(b"WerRegisterExcludedMemoryBlock\0")?;
        let unregister = kernel32(b"WerUnregisterExcludedMemoryBlock\0")?;
        // SAFETY: the documented signatures of these two kernel32 functions:
        // HRESULT (const void *, DWORD) and HRESULT (const void *).
        unsafe {
            Some((
                std::mem::transmute::<unsafe extern "system" fn() -> isize, WerRegister>(register),
                std::mem::transmute::<unsafe extern "system" fn() -> isize, WerUnregister>(
                    unregister,
                ),
            ))
        }
    })
}

/// The working-set bounds of this process.
fn working_set() -> Option<(usize, usize)> {
    let (mut min, mut max, mut flags) = (0usize, 0usize, 0u32);
    // SAFETY: the pseudo-handle of this process and pointers to live locals.
    let ok =
        unsafe { GetProcessWorkingSetSizeEx(GetCurrentProcess(), &mut min, &mut max, &mut flags) };
    (ok != 0).then_some((min, max))
}

impl Pages for Windows {
    const BASELINE: Protections = Protections::GUARD_PAGES;
    const NO_ACCESS_UNLOCKS: bool = true;
    const FIXED_LOCK_LIMIT: bool = false;

    fn page_size() -> usize {
        match PAGE.load(Ordering::Relaxed) {
            0 => {
                let mut info = SYSTEM_INFO::default();
                // SAFETY: fills the struct it is given.
                unsafe { GetSystemInfo(&mut info) };
                let page = info.dwPageSize as usize;
                PAGE.store(page, Ordering::Relaxed);
                page
            }
            page => page,
        }
    }

    fn lock_limit() -> Option<usize> {
        working_set().map(|(_, max)| max)
    }

    fn probe_secret_memory() -> std::result::Result<String, String> {
        Err(
            "Windows has no secret memory (memory out of the kernel's reach is Linux's \
             memfd_secret)"
                .to_owned(),
        )
    }

    fn allocate(len: usize) -> Result<NonNull<u8>> {
        // SAFETY: a null address lets the system pick one that overlaps
        // nothing (aligned to the 64 KiB allocation granularity); the new
        // memory is private, committed and PAGE_NOACCESS.
        let ptr = unsafe {
            VirtualAlloc(
                std::ptr::null(),
                len,
                MEM_RESERVE | MEM_COMMIT,
                PAGE_NOACCESS,
            )
        };
        match NonNull::new(ptr.cast::<u8>()) {
            Some(p) => Ok(p),
            None => {
                let source = last_error();
                // SAFETY: reads this thread's last error.
                let code = unsafe { GetLastError() };
                if code == ERROR_NOT_ENOUGH_MEMORY || code == ERROR_COMMITMENT_LIMIT {
                    Err(Error::OutOfMappings {
                        operation: "VirtualAlloc",
                        max_map_count: None,
                        source,
                    })
                } else {
                    Err(Error::os("VirtualAlloc", source))
                }
            }
        }
    }

    unsafe fn protect(ptr: NonNull<u8>, len: usize, access: Access) -> Result<()> {
        // SAFETY: the caller's contract, passed on.
        if unsafe { Windows::protect_raw(ptr, len, access) } {
            Ok(())
        } else {
            Err(Error::os("VirtualProtect", last_error()))
        }
    }

    unsafe fn protect_raw(ptr: NonNull<u8>, len: usize, access: Access) -> bool {
        let mut old: PAGE_PROTECTION_FLAGS = 0;
        // SAFETY: the caller guarantees the range is ours (or released:
        // VirtualProtect then fails) and that no reference is used against
        // the new protection; `old` is a live local. One call, no
        // allocation: usable in the fault hook.
        unsafe { VirtualProtect(ptr.as_ptr().cast(), len, protection(access), &mut old) != 0 }
    }

    unsafe fn lock(ptr: NonNull<u8>, len: usize) -> Result<Protections> {
        let mut grown = false;
        loop {
            // SAFETY: the caller guarantees the range is ours and
            // accessible; VirtualLock changes no contents.
            if unsafe { VirtualLock(ptr.as_ptr().cast(), len) } != 0 {
                return Ok(Protections::LOCKED);
            }
            let source = last_error();
            let code = source.raw_os_error().unwrap_or(0) as u32;
            let (min, max) = working_set().unwrap_or((0, 0));
            match after_lock_failure(code, min, max, len, Windows::page_size(), grown) {
                AfterLockFailure::Grow { min, max } => {
                    grown = true;
                    // SAFETY: the pseudo-handle of this process; flags 0
                    // keep the limits soft, as they were.
                    let set =
                        unsafe { SetProcessWorkingSetSizeEx(GetCurrentProcess(), min, max, 0) };
                    if set == 0 {
                        return Err(Error::MemoryLock {
                            requested: len,
                            limit: Some(max as u64),
                            source,
                        });
                    }
                }
                AfterLockFailure::QuotaExhausted => {
                    return Err(Error::MemoryLock {
                        requested: len,
                        limit: Some(min as u64),
                        source,
                    })
                }
                AfterLockFailure::Other => return Err(Error::os("VirtualLock", source)),
            }
        }
    }

    unsafe fn advise(ptr: NonNull<u8>, len: usize) -> Result<Protections> {
        let Some((register, _)) = wer_exclusion() else {
            return Ok(Protections::empty());
        };
        let Ok(size) = u32::try_from(len) else {
            return Ok(Protections::empty());
        };
        // SAFETY: the documented signature; the range is ours (the
        // caller's contract) and WER only records it.
        let hr = unsafe { register(ptr.as_ptr().cast_const().cast(), size) };
        Ok(if hr >= 0 {
            Protections::OUT_OF_DUMPS
        } else {
            // The system keeps a limited number of blocks: this one is not
            // excluded, and not claimed.
            Protections::empty()
        })
    }

    unsafe fn free(ptr: NonNull<u8>, len: usize) {
        let _ = len;
        if let Some((_, unregister)) = wer_exclusion() {
            // SAFETY: the data pages start one page in; unregistering a
            // block that was never registered only returns an error.
            unsafe {
                let data = ptr.as_ptr().add(Windows::page_size());
                let _ = unregister(data.cast_const().cast());
            }
        }
        // SAFETY: the caller guarantees this is exactly one of our
        // allocations and nothing uses it any more; MEM_RELEASE takes size 0
        // and releases the whole allocation (and its lock).
        let _ = unsafe { VirtualFree(ptr.as_ptr().cast(), 0, MEM_RELEASE) };
    }
}

/// An access violation, as the vectored exception handler sees it.
struct AccessViolation {
    address: usize,
}

impl Fault for AccessViolation {
    fn address(&self) -> Option<usize> {
        Some(self.address)
    }

    fn is_stack_overflow(&self, _addr: usize, _page: usize) -> bool {
        // A stack overflow is EXCEPTION_STACK_OVERFLOW, not an access
        // violation; std reports it. The unhandled-exception filter wipes.
        false
    }

    /// The rest of the exception handling (structured handlers, the
    /// system's crash handling) decides after this handler returns.
    fn earlier(&self) -> Disposition {
        Disposition::Handler
    }

    /// Nothing to call from here: returning `EXCEPTION_CONTINUE_SEARCH`
    /// hands the exception on. A fault outside memguard's pages is thus
    /// left alone (a handler further on may recover from it; if none does,
    /// the unhandled-exception filter wipes).
    fn call_earlier(&mut self) -> Disposition {
        Disposition::Handler
    }

    /// The hook returns `EXCEPTION_CONTINUE_SEARCH`: with no handler for a
    /// fault in memguard's pages, the process dies of it
    /// (`STATUS_ACCESS_VIOLATION`).
    fn die(&mut self) {}
}

unsafe extern "system" fn on_exception(info: *mut EXCEPTION_POINTERS) -> i32 {
    // SAFETY: the system passes valid exception pointers to a vectored
    // handler; the record of an access violation carries the address in
    // ExceptionInformation[1].
    let record = unsafe { info.as_ref().and_then(|i| i.ExceptionRecord.as_ref()) };
    if let Some(r) = record {
        if r.ExceptionCode == EXCEPTION_ACCESS_VIOLATION && r.NumberParameters >= 2 {
            crash_handler::on_fault(&mut AccessViolation {
                address: r.ExceptionInformation[1],
            });
        }
    }
    EXCEPTION_CONTINUE_SEARCH
}

/// The unhandled-exception filter that was there before ours.
static PREVIOUS_FILTER: AtomicPtr<c_void> = AtomicPtr::new(std::ptr::null_mut());

unsafe extern "system" fn on_unhandled(info: *const EXCEPTION_POINTERS) -> i32 {
    crash_handler::on_unhandled();
    let previous = PREVIOUS_FILTER.load(Ordering::Acquire);
    if previous.is_null() {
        return EXCEPTION_CONTINUE_SEARCH;
    }
    // SAFETY: the pointer is the filter SetUnhandledExceptionFilter gave
    // back, a function of this signature, passed the system's argument.
    unsafe {
        let f: unsafe extern "system" fn(*const EXCEPTION_POINTERS) -> i32 =
            std::mem::transmute(previous);
        f(info)
    }
}

impl Process for Windows {
    const REAL: bool = true;

    fn harden() -> Hardened {
        let complete = kernel32(b"WerSetFlags\0").is_some_and(|f| {
            // SAFETY: the documented signature, HRESULT (DWORD); flag 1 is
            // WER_FAULT_REPORTING_FLAG_NOHEAP.
            let f: WerSetFlags = unsafe { std::mem::transmute(f) };
            // SAFETY: as above.
            unsafe { f(1) >= 0 }
        });
        Hardened { complete }
    }

    fn lock_advice(f: &mut fmt::Formatter<'_>, limit: Option<u64>) -> fmt::Result {
        match limit {
            Some(limit) => write!(
                f,
                "the process's working-set quota ({}) does not let it lock more, even after \
                 memguard raised it with SetProcessWorkingSetSizeEx; destroy buffers you no \
                 longer need, or free memory (the system refuses a larger minimum working set \
                 when memory is short)",
                crate::error::Size(limit)
            ),
            None => write!(
                f,
                "the process's working-set quota does not let it lock more; destroy buffers \
                 you no longer need"
            ),
        }
    }

    fn mapping_advice(f: &mut fmt::Formatter<'_>, _max: Option<u64>) -> fmt::Result {
        f.write_str(
            "the system is out of memory or of commit charge (each buffer commits up to 3 \
             mappings' pages); destroy buffers you no longer need or enlarge the page file",
        )
    }

    fn install_fault_hook() -> bool {
        static INSTALLED: OnceLock<bool> = OnceLock::new();
        *INSTALLED.get_or_init(|| {
            // SAFETY: registers a handler that lives as long as the
            // program; 1 puts it first in the chain.
            let handle = unsafe { AddVectoredExceptionHandler(1, Some(on_exception)) };
            let filter: LPTOP_LEVEL_EXCEPTION_FILTER = Some(on_unhandled);
            // SAFETY: as above; the previous filter is kept and called.
            let previous = unsafe { SetUnhandledExceptionFilter(filter) };
            if let Some(p) = previous {
                PREVIOUS_FILTER.store(p as *mut c_void, Ordering::Release);
            }
            !handle.is_null()
        })
    }

    fn install_fork_hooks(_prepare: fn(), _parent: fn(), _child: fn()) -> bool {
        // No fork on Windows.
        true
    }

    fn on_signal_in_child(_signal: i32, _action: fn(i32)) -> Result<()> {
        // No fork, so no child to terminate.
        Ok(())
    }

    fn exit_now(code: i32) -> ! {
        // SAFETY: ends this process at once; nothing runs afterwards.
        unsafe { TerminateProcess(GetCurrentProcess(), code as u32) };
        std::process::abort()
    }

    fn prepare_barrier() -> bool {
        // FlushProcessWriteBuffers needs no registration (Vista and later).
        true
    }

    fn barrier() -> bool {
        // SAFETY: no arguments, no preconditions: it interrupts every
        // processor running a thread of this process, each flushing its
        // write buffer, and returns once they have.
        unsafe { FlushProcessWriteBuffers() };
        true
    }
}

/// The numbers of the portable requests (the C runtime's `SIGINT` and
/// `SIGTERM`; the Unix numbers for the two that never arrive here).
const INTERRUPT: i32 = 2;
const TERMINATE: i32 = 15;
const HANGUP: i32 = 1;
const QUIT: i32 = 3;

/// A listener's id, the numbers it catches, and what to call.
type Listening = (u64, Vec<i32>, fn(i32));

/// The listener now.
static LISTENING: Mutex<Option<Listening>> = Mutex::new(None);
static LISTENERS: AtomicU64 = AtomicU64::new(0);

/// A console control handler's listener.
pub(crate) struct CtrlListener(u64);

/// Runs on a thread the system starts for the event (not in signal
/// context).
unsafe extern "system" fn on_ctrl(event: u32) -> windows_sys::core::BOOL {
    let number = match event {
        CTRL_C_EVENT | CTRL_BREAK_EVENT => INTERRUPT,
        CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT => TERMINATE,
        _ => return 0,
    };
    let action = {
        let listening = LISTENING.lock().unwrap_or_else(|p| p.into_inner());
        listening
            .as_ref()
            .filter(|(_, caught, _)| caught.contains(&number))
            .map(|&(_, _, f)| f)
    };
    match action {
        Some(f) => {
            f(number);
            1
        }
        // Not caught: the default handling (the process ends).
        None => 0,
    }
}

impl Termination for Windows {
    type Listener = CtrlListener;

    const TERMINATING: &'static [i32] = &[INTERRUPT, TERMINATE];

    fn refused(signal: i32) -> bool {
        ![INTERRUPT, TERMINATE, HANGUP, QUIT].contains(&signal)
    }

    fn number(signal: Signal) -> i32 {
        match signal {
            Signal::Interrupt => INTERRUPT,
            Signal::Terminate => TERMINATE,
            Signal::Hangup => HANGUP,
            Signal::Quit => QUIT,
        }
    }

    fn signal(number: i32) -> Option<Signal> {
        match number {
            INTERRUPT => Some(Signal::Interrupt),
            TERMINATE => Some(Signal::Terminate),
            HANGUP => Some(Signal::Hangup),
            QUIT => Some(Signal::Quit),
            _ => None,
        }
    }

    fn listen(signals: &[i32], on_signal: fn(i32)) -> Result<CtrlListener> {
        static ADDED: Once = Once::new();
        let mut added = true;
        ADDED.call_once(|| {
            // SAFETY: registers a handler that lives as long as the program.
            added = unsafe { SetConsoleCtrlHandler(Some(on_ctrl), 1) } != 0;
        });
        if !added {
            return Err(Error::os("SetConsoleCtrlHandler", last_error()));
        }
        let id = LISTENERS.fetch_add(1, Ordering::Relaxed) + 1;
        *LISTENING.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((id, signals.to_vec(), on_signal));
        Ok(CtrlListener(id))
    }

    fn close(listener: CtrlListener) {
        let mut listening = LISTENING.lock().unwrap_or_else(|p| p.into_inner());
        if listening
            .as_ref()
            .is_some_and(|(id, _, _)| *id == listener.0)
        {
            *listening = None;
        }
    }

    fn claim(_caught: &[i32]) -> Result<()> {
        // Events no listener catches get the default handling already.
        Ok(())
    }
}

impl Terminal for Windows {
    type Saved = CONSOLE_MODE;

    fn open() -> io::Result<(File, File)> {
        let input = OpenOptions::new().read(true).write(true).open("CONIN$")?;
        let output = OpenOptions::new().write(true).open("CONOUT$")?;
        Ok((input, output))
    }

    fn echo_off(input: &File) -> io::Result<CONSOLE_MODE> {
        let handle = input.as_raw_handle() as HANDLE;
        let mut mode: CONSOLE_MODE = 0;
        // SAFETY: a console handle this File owns, a pointer to a local.
        if unsafe { GetConsoleMode(handle, &mut mode) } == 0 {
            return Err(last_error());
        }
        // SAFETY: as above.
        if unsafe { SetConsoleMode(handle, mode & !ENABLE_ECHO_INPUT) } == 0 {
            return Err(last_error());
        }
        Ok(mode)
    }

    fn restore(input: &File, saved: &CONSOLE_MODE) {
        // SAFETY: a console handle this File owns. Nothing better to do on
        // failure than to leave the console as is.
        let _ = unsafe { SetConsoleMode(input.as_raw_handle() as HANDLE, *saved) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_names_map_to_numbers_and_back() {
        for signal in [
            Signal::Interrupt,
            Signal::Terminate,
            Signal::Hangup,
            Signal::Quit,
        ] {
            let n = Windows::number(signal);
            assert_eq!(Windows::signal(n), Some(signal));
            assert!(!Windows::refused(n));
        }
        assert!(Windows::refused(9));
        assert_eq!(Windows::TERMINATING, &[INTERRUPT, TERMINATE]);
    }

    #[test]
    fn a_closed_listener_catches_nothing_and_a_later_one_survives_it() {
        fn nothing(_: i32) {}
        let first = Windows::listen(&[INTERRUPT], nothing).expect("listen");
        let second = Windows::listen(&[TERMINATE], nothing).expect("listen");
        // Closing the replaced listener leaves the current one alone.
        Windows::close(first);
        let current = LISTENING
            .lock()
            .unwrap()
            .as_ref()
            .map(|(_, c, _)| c.clone());
        assert_eq!(current, Some(vec![TERMINATE]));
        Windows::close(second);
        assert!(LISTENING.lock().unwrap().is_none());
    }

    #[test]
    fn the_page_size_is_the_systems() {
        let page = Windows::page_size();
        assert!(page.is_power_of_two() && page >= 4096, "{page}");
    }
}
