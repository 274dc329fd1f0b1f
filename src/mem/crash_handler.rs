//! Wipe before crash: a SIGSEGV/SIGBUS handler that wipes every live buffer
//! (the session key included) before the process dies of the signal, and
//! stays out of the way of faults the process survives.
//!
//! Installed once, on the first allocation, over whatever handler was there
//! (kept as the *earlier handler*; for a Rust program that is at least
//! std's stack-overflow reporter). It runs on the alternate signal stack and
//! uses only async-signal-safe operations: atomics, `mprotect`, `sigaction`,
//! `pthread_sigmask`, `raise`, plain stores, and a call to the earlier
//! handler. It never allocates, takes a lock or touches a file.
//!
//! # Order of operations
//!
//! A signal is a *fault* when the kernel raised it for an instruction
//! (`si_code > 0`); then `si_addr` is the faulting address. A signal sent
//! with `kill`, `raise`, `tgkill` or `sigqueue` (`si_code <= 0`) is not.
//!
//! 1. **A fault in memguard's pages** (the data pages of a live buffer, or
//!    the guard page just before or after them: see
//!    [`crash_table::covers`]) is fatal by design: memguard's own guard pages
//!    and frozen buffers exist to stop the process. The handler wipes every
//!    buffer, then calls the earlier handler (a crash reporter sees the
//!    crash, with the secrets already gone; std's handler restores the
//!    default action and returns), then wipes again (buffers made by other
//!    threads meanwhile) and dies: it restores the default action and
//!    raises the signal again, so the process dies of the same signal. It
//!    dies whatever the earlier handler did, unless that handler never
//!    returns (a `siglongjmp` out of it leaves the process running with its
//!    buffers wiped).
//! 2. **A stack overflow** (a fault within a page of the faulting thread's
//!    stack pointer, read from the signal's context) is wiped first, then
//!    handled as in 3. This is needed because std's handler reports a stack
//!    overflow and calls `abort()` instead of returning, so a wipe after it
//!    would never run. The check is a heuristic, chosen over a SIGABRT
//!    handler: a fault that close to the stack pointer is a stack guard hit
//!    (a thread's guard page, or the main stack's gap), because code does
//!    not otherwise fault there (runtimes that probe for stack room, such as
//!    the JVM's stack banging, touch pages many pages further down), and it
//!    keeps the wipe in the one signal frame: a SIGABRT handler would run
//!    nested in std's handler on the same small alternate stack (8 KiB,
//!    little more than one signal frame on CPUs with large vector state),
//!    and would change what every `abort()` does. Only on x86-64 and
//!    AArch64, where the context layout is known; elsewhere a stack
//!    overflow under std's handler is not wiped.
//! 3. **Any other signal** is the earlier handler's to decide, as if
//!    memguard were not there. If there is one (not `SIG_DFL`, not
//!    `SIG_IGN`), it is called first, directly (the installed disposition
//!    stays memguard's), the `SA_SIGINFO` or the plain way as it was
//!    installed, with its `sa_mask` blocked (and, for `SA_RESETHAND`, the
//!    default action restored first, as the kernel would). When it
//!    returns, the disposition tells what it decided:
//!    - still memguard's handler (or another one it installed): it handled
//!      the fault (a runtime that maps the page, or a garbage collector's
//!      barrier). The handler returns without wiping and without raising;
//!      the faulting instruction runs again;
//!    - `SIG_DFL` (std's handler restores it for any fault that is not a
//!      stack overflow, expecting the fault to recur and kill), or
//!      `SIG_IGN` for a fault (which the kernel never ignores): fatal. The
//!      handler wipes and dies as in 1.
//!
//!    With no earlier handler, or `SIG_DFL`, the signal is fatal: wipe and
//!    die. With `SIG_IGN`, a sent signal is ignored, as it was before
//!    memguard, and a fault is fatal.
//!
//! What is not covered: an earlier handler that ends the process itself on a
//! fault outside memguard's pages (`abort()`, `_exit()`, or unblocking and
//! raising the signal under the default action) kills it before the wipe,
//! as does a stack overflow the heuristic misses (a frame of more than a
//! page that was not probed, in C code) under std's handler. An earlier
//! handler that returns without handling the fault and without restoring
//! the default action makes the fault recur forever, as it would without
//! memguard.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

use super::backend::Pages;
use super::{crash_table, Os};

static INSTALL: Once = Once::new();
static PREVIOUS_SEGV: OnceLock<libc::sigaction> = OnceLock::new();
static PREVIOUS_BUS: OnceLock<libc::sigaction> = OnceLock::new();
/// The page size, read before the handler goes in (the handler calls
/// nothing to learn it).
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// Bytes of alternate signal stack given to a thread that has none.
const ALT_STACK: usize = 64 * 1024;

/// Installs the handler for SIGSEGV and SIGBUS, once per process.
pub(crate) fn install() {
    if cfg!(miri) {
        // Miri has no signals.
        return;
    }
    INSTALL.call_once(|| {
        PAGE.store(Os::page_size(), Ordering::Relaxed);
        install_for(libc::SIGSEGV, &PREVIOUS_SEGV);
        install_for(libc::SIGBUS, &PREVIOUS_BUS);
        ensure_alternate_stack();
    });
}

/// Whether the handler is in place for both signals.
pub(crate) fn installed() -> bool {
    PREVIOUS_SEGV.get().is_some() && PREVIOUS_BUS.get().is_some()
}

fn install_for(signal: libc::c_int, previous: &OnceLock<libc::sigaction>) {
    // SAFETY: sigaction is called with valid pointers to initialised
    // structs; the previous action is read first and stored before our
    // handler goes in, so the handler always finds it.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signal, std::ptr::null(), &mut old) != 0 {
            return;
        }
        let _ = previous.set(old);
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = on_fault as extern "C" fn(_, _, _) as usize;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut new.sa_mask);
        libc::sigaction(signal, &new, std::ptr::null_mut());
    }
}

/// Gives the calling thread an alternate signal stack if it has none (Rust
/// gives one to the main thread and to the threads it spawns; threads made
/// elsewhere may lack one).
fn ensure_alternate_stack() {
    // SAFETY: sigaltstack with a null new stack only reads the current one.
    // The new stack is a fresh mapping that is never freed, as a signal
    // stack must outlive every signal the thread may take.
    unsafe {
        let mut current: libc::stack_t = std::mem::zeroed();
        if libc::sigaltstack(std::ptr::null(), &mut current) != 0
            || current.ss_flags & libc::SS_DISABLE == 0
        {
            return;
        }
        let stack = libc::mmap(
            std::ptr::null_mut(),
            ALT_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if stack == libc::MAP_FAILED {
            return;
        }
        let new = libc::stack_t {
            ss_sp: stack,
            ss_flags: 0,
            ss_size: ALT_STACK,
        };
        libc::sigaltstack(&new, std::ptr::null_mut());
    }
}

/// The faulting thread's stack pointer, from the context the kernel saved.
///
/// # Safety
/// `context` must be the `ucontext_t` pointer the kernel passed to an
/// `SA_SIGINFO` handler.
#[allow(unused_variables)]
unsafe fn stack_pointer(context: *mut libc::c_void) -> Option<usize> {
    let context = context.cast::<libc::ucontext_t>().cast_const();
    if context.is_null() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller passes the kernel's context, a valid ucontext_t.
    return Some(unsafe { (*context).uc_mcontext.gregs[libc::REG_RSP as usize] } as usize);
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above.
    return Some(unsafe { (*context).uc_mcontext.sp } as usize);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    None
}

/// Whether a fault at `addr` is a stack overflow: within a page either side
/// of the stack pointer (see the module docs).
///
/// # Safety
/// As for [`stack_pointer`].
unsafe fn is_stack_overflow(addr: usize, context: *mut libc::c_void, page: usize) -> bool {
    // SAFETY: the caller's contract, passed on.
    match unsafe { stack_pointer(context) } {
        Some(sp) => addr.wrapping_sub(sp.wrapping_sub(page)) < 2 * page,
        None => false,
    }
}

/// Whether `action` is a handler function rather than `SIG_DFL`/`SIG_IGN`.
fn is_function(action: &libc::sigaction) -> bool {
    action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN
}

/// The handler currently installed for `signal` (`SIG_DFL` if it cannot be
/// read).
fn current_action(signal: libc::c_int) -> libc::sighandler_t {
    // SAFETY: sigaction with a null new action only reads the current one
    // into an initialised struct; async-signal-safe.
    unsafe {
        let mut now: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signal, std::ptr::null(), &mut now) != 0 {
            return libc::SIG_DFL;
        }
        now.sa_sigaction
    }
}

/// Restores the default action for `signal`.
fn restore_default(signal: libc::c_int) {
    // SAFETY: sigaction with an initialised struct; async-signal-safe.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut default.sa_mask);
        libc::sigaction(signal, &default, std::ptr::null_mut());
    }
}

/// Calls the earlier handler as the kernel would have: the `SA_SIGINFO` or
/// the plain way, with its mask blocked, the default action restored first
/// for `SA_RESETHAND`. memguard's disposition stays installed otherwise.
///
/// # Safety
/// `previous` must be a handler function (see [`is_function`]) that was
/// installed for `signal`; `info` and `context` the kernel's arguments.
unsafe fn call_earlier(
    previous: &libc::sigaction,
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: pthread_sigmask with initialised sets is async-signal-safe.
    // The earlier handler was installed for this signal with these flags, so
    // it has the signature its flags say, and expects the kernel's
    // arguments, which it gets unchanged.
    unsafe {
        let mut saved: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &previous.sa_mask, &mut saved);
        if previous.sa_flags & libc::SA_RESETHAND != 0 {
            restore_default(signal);
        }
        if previous.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(previous.sa_sigaction);
            f(signal, info, context);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(previous.sa_sigaction);
            f(signal);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &saved, std::ptr::null_mut());
    }
}

/// Wipes every buffer, restores the default action and raises `signal`.
/// The signal is blocked while its handler runs, so it stays pending until
/// the handler returns, and then kills the process (a fault would recur
/// too; a sent signal would not).
fn wipe_and_die(signal: libc::c_int) {
    crash_table::wipe_all();
    restore_default(signal);
    // SAFETY: raise is async-signal-safe.
    unsafe { libc::raise(signal) };
}

extern "C" fn on_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let previous = match signal {
        libc::SIGSEGV => PREVIOUS_SEGV.get(),
        libc::SIGBUS => PREVIOUS_BUS.get(),
        _ => None,
    };
    let earlier = previous.filter(|p| is_function(p));
    let page = PAGE.load(Ordering::Relaxed);
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t; si_addr
    // is read only for a fault (si_code > 0), which carries it.
    let fault = unsafe {
        match info.as_ref() {
            Some(i) if i.si_code > 0 => Some(i.si_addr() as usize),
            _ => None,
        }
    };
    if let Some(addr) = fault {
        // 1. memguard's own pages: fatal by design.
        if crash_table::covers(addr, page) {
            crash_table::wipe_all();
            if let Some(earlier) = earlier {
                // SAFETY: a handler function installed for this signal,
                // given the kernel's arguments.
                unsafe { call_earlier(earlier, signal, info, context) };
            }
            wipe_and_die(signal);
            return;
        }
        // 2. A stack overflow: std's handler aborts without returning.
        // SAFETY: the kernel's context for this SA_SIGINFO handler.
        if unsafe { is_stack_overflow(addr, context, page) } {
            crash_table::wipe_all();
        }
    }
    // 3. Anything else: the earlier handler decides.
    match earlier {
        Some(earlier) => {
            // SAFETY: as above.
            unsafe { call_earlier(earlier, signal, info, context) };
            let now = current_action(signal);
            if now == libc::SIG_DFL || (now == libc::SIG_IGN && fault.is_some()) {
                wipe_and_die(signal);
            }
        }
        None => {
            let ignored = previous.is_some_and(|p| p.sa_sigaction == libc::SIG_IGN);
            if !(ignored && fault.is_none()) {
                wipe_and_die(signal);
            }
        }
    }
}
