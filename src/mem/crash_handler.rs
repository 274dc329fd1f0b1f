//! Wipe before crash: the decision logic of the fault hook, which wipes
//! every live buffer (the session key included) before the process dies of
//! a memory fault, and stays out of the way of faults the process survives.
//!
//! The platform layer installs the hook once, on the first allocation (see
//! `sys::Process::install_fault_hook`, which also says what may run in
//! it), and hands each fault to [`on_fault`] as a `sys::Fault`. On Unix
//! the hook is a SIGSEGV/SIGBUS handler installed over whatever handler was
//! there (kept as the *earlier handler*; for a Rust program that is at
//! least std's stack-overflow reporter), on the alternate signal stack. On
//! Windows it is a vectored exception handler for access violations, where
//! the *earlier handler* is the rest of the exception handling (structured
//! exception handlers, then the system's crash handling): a fault in
//! memguard's pages is wiped there and then left to kill the process with
//! `STATUS_ACCESS_VIOLATION`; any other fault is left to the rest, and an
//! unhandled-exception filter wipes before the process dies of it. The
//! logic uses atomics, `Pages::protect_raw`, plain stores and the `Fault`
//! methods only: it never allocates, takes a lock or touches a file.
//!
//! # Order of operations
//!
//! A signal is a *fault* when the kernel raised it for an instruction
//! (`si_code > 0` on Unix; every access violation on Windows); then the
//! faulting address is known (`Fault::address`). A signal sent with
//! `kill`, `raise`, `tgkill` or `sigqueue` (`si_code <= 0`) is not.
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
//!    and would change what every `abort()` does. Only on Linux on x86-64
//!    and AArch64, where the context layout is known; elsewhere a stack
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

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

use super::crash_table;
use super::sys::{Disposition, Fault, Os, Pages, Process};

static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The page size, read before the hook goes in (the hook calls nothing to
/// learn it).
static PAGE: AtomicUsize = AtomicUsize::new(4096);

/// Installs the fault hook, once per process.
pub(crate) fn install() {
    if !Os::REAL {
        // Miri has no signals.
        return;
    }
    INSTALL.call_once(|| {
        PAGE.store(Os::page_size(), Ordering::Relaxed);
        INSTALLED.store(Os::install_fault_hook(), Ordering::Release);
    });
}

/// Whether the hook is in place.
pub(crate) fn installed() -> bool {
    INSTALLED.load(Ordering::Acquire)
}

/// What to do about one fault (see the module docs); called by the
/// platform's hook, in its context (no allocation, no lock).
pub(crate) fn on_fault<F: Fault>(fault: &mut F) {
    decide(fault, crash_table::wipe_all);
}

/// [`on_fault`] with the wipe given (a test's counter).
fn decide<F: Fault>(fault: &mut F, wipe_all: impl Fn()) {
    let page = PAGE.load(Ordering::Relaxed);
    let wipe_and_die = |fault: &mut F| {
        wipe_all();
        fault.die();
    };
    let address = fault.address();
    if let Some(addr) = address {
        // 1. memguard's own pages: fatal by design.
        if crash_table::covers(addr, page) {
            wipe_all();
            if fault.earlier() == Disposition::Handler {
                fault.call_earlier();
            }
            wipe_and_die(fault);
            return;
        }
        // 2. A stack overflow: std's handler aborts without returning.
        if fault.is_stack_overflow(addr, page) {
            wipe_all();
        }
    }
    // 3. Anything else: the earlier handler decides.
    match fault.earlier() {
        Disposition::Handler => match fault.call_earlier() {
            Disposition::Default => wipe_and_die(fault),
            Disposition::Ignore if address.is_some() => wipe_and_die(fault),
            _ => {}
        },
        Disposition::Ignore if address.is_none() => {}
        _ => wipe_and_die(fault),
    }
}

/// For a hook that sees a crash only once nothing else handled it (the
/// unhandled-exception filter on Windows): wipe everything.
#[allow(dead_code)]
pub(crate) fn on_unhandled() {
    crash_table::wipe_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted fault: what the platform would report, and what the
    /// logic did.
    struct Scripted {
        address: Option<usize>,
        earlier: Disposition,
        after: Disposition,
        called: usize,
        died: bool,
    }

    impl Fault for Scripted {
        fn address(&self) -> Option<usize> {
            self.address
        }
        fn is_stack_overflow(&self, _addr: usize, _page: usize) -> bool {
            false
        }
        fn earlier(&self) -> Disposition {
            self.earlier
        }
        fn call_earlier(&mut self) -> Disposition {
            self.called += 1;
            self.after
        }
        fn die(&mut self) {
            self.died = true;
        }
    }

    /// How often the earlier handler was called, and whether the process
    /// dies; a death always comes after a wipe, and only then is there one.
    fn run(address: Option<usize>, earlier: Disposition, after: Disposition) -> (usize, bool) {
        let mut f = Scripted {
            address,
            earlier,
            after,
            called: 0,
            died: false,
        };
        let wipes = std::cell::Cell::new(0);
        decide(&mut f, || wipes.set(wipes.get() + 1));
        assert_eq!(
            wipes.get() > 0,
            f.died,
            "a wipe exactly when the process dies"
        );
        (f.called, f.died)
    }

    #[test]
    fn the_earlier_handler_decides_about_foreign_faults() {
        use Disposition::*;
        // An address no region covers (the null page).
        let foreign = Some(8);
        assert_eq!(run(foreign, Handler, Handler), (1, false), "it recovered");
        assert_eq!(run(foreign, Handler, Default), (1, true), "it gave up");
        assert_eq!(run(foreign, Handler, Ignore), (1, true), "a fault recurs");
        assert_eq!(run(None, Handler, Ignore), (1, false), "a sent signal");
        assert_eq!(run(foreign, Default, Default), (0, true));
        assert_eq!(run(None, Ignore, Ignore), (0, false), "ignored as before");
        assert_eq!(run(foreign, Ignore, Ignore), (0, true), "a fault is fatal");
    }
}
