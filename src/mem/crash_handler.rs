//! Wipe before crash: a SIGSEGV/SIGBUS handler that wipes every live buffer
//! (the session key included) before the process dies of the signal.
//!
//! Installed once, on the first allocation. When a fault arrives (a guard
//! page hit, a write to a frozen buffer, any other crash) the handler, on
//! the alternate signal stack, using only async-signal-safe operations:
//!
//! 1. wipes the data pages of every live buffer (see `crash_table`);
//! 2. calls the handler that was installed before this one, if any (Rust's
//!    own stack-overflow reporter, say);
//! 3. restores the default action and raises the signal again, so the
//!    process still dies of the same signal, with the same exit status.

use std::sync::{Once, OnceLock};

use super::crash_table;

static INSTALL: Once = Once::new();
static PREVIOUS_SEGV: OnceLock<libc::sigaction> = OnceLock::new();
static PREVIOUS_BUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Bytes of alternate signal stack given to a thread that has none.
const ALT_STACK: usize = 64 * 1024;

/// Installs the handler for SIGSEGV and SIGBUS, once per process.
pub(crate) fn install() {
    if cfg!(miri) {
        // Miri has no signals.
        return;
    }
    INSTALL.call_once(|| {
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

extern "C" fn on_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    crash_table::wipe_all();
    let previous = match signal {
        libc::SIGSEGV => PREVIOUS_SEGV.get(),
        libc::SIGBUS => PREVIOUS_BUS.get(),
        _ => None,
    };
    // SAFETY: everything below is async-signal-safe: sigaction, raise, and
    // a call to the handler the process had installed before ours, with the
    // arguments the kernel gave us, as that handler expects.
    unsafe {
        if let Some(prev) = previous {
            let action = prev.sa_sigaction;
            if action != libc::SIG_DFL && action != libc::SIG_IGN {
                libc::sigaction(signal, prev, std::ptr::null_mut());
                if prev.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(action);
                    f(signal, info, context);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(action);
                    f(signal);
                }
            }
        }
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut default.sa_mask);
        libc::sigaction(signal, &default, std::ptr::null_mut());
        // Pending until this handler returns, then fatal. A fault would also
        // recur on return; a signal sent with kill() would not.
        libc::raise(signal);
    }
}
