//! The fault hook on Unix: a SIGSEGV/SIGBUS handler on the alternate signal
//! stack, which hands each signal to `crash_handler::on_fault` (the
//! decision logic) as a [`Fault`], and chains to the handler that was
//! installed before it.
//!
//! Everything here runs in signal context except [`install`]: only
//! async-signal-safe calls (`sigaction`, `pthread_sigmask`, `raise`),
//! atomics and plain loads; no allocation, lock or file access.

use std::ffi::c_void;
use std::sync::{Once, OnceLock};

use crate::mem::crash_handler;
use crate::mem::sys::os;
use crate::mem::sys::{Disposition, Fault};

static INSTALL: Once = Once::new();
static PREVIOUS_SEGV: OnceLock<libc::sigaction> = OnceLock::new();
static PREVIOUS_BUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Bytes of alternate signal stack given to a thread that has none.
const ALT_STACK: usize = 64 * 1024;

/// Installs the handler for SIGSEGV and SIGBUS, once per process; whether
/// it is in place for both.
pub(super) fn install() -> bool {
    INSTALL.call_once(|| {
        install_for(libc::SIGSEGV, &PREVIOUS_SEGV);
        install_for(libc::SIGBUS, &PREVIOUS_BUS);
        ensure_alternate_stack();
    });
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
        new.sa_sigaction = on_signal as extern "C" fn(_, _, _) as usize;
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
            libc::MAP_PRIVATE | libc::MAP_ANON,
            -1,
            0,
        );
        if stack == libc::MAP_FAILED {
            return;
        }
        let new = libc::stack_t {
            ss_sp: stack.cast(),
            ss_flags: 0,
            ss_size: ALT_STACK,
        };
        libc::sigaltstack(&new, std::ptr::null_mut());
    }
}

/// Whether `handler` is a handler function rather than `SIG_DFL`/`SIG_IGN`.
fn disposition(handler: libc::sighandler_t) -> Disposition {
    match handler {
        libc::SIG_DFL => Disposition::Default,
        libc::SIG_IGN => Disposition::Ignore,
        _ => Disposition::Handler,
    }
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

/// One signal, with the kernel's arguments.
struct UnixFault {
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut c_void,
    previous: Option<&'static libc::sigaction>,
}

impl Fault for UnixFault {
    fn address(&self) -> Option<usize> {
        // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t (or
        // null, handled); the address is read only for a fault (si_code >
        // 0), which carries it.
        unsafe {
            match self.info.as_ref() {
                Some(i) if i.si_code > 0 => Some(i.si_addr() as usize),
                _ => None,
            }
        }
    }

    fn is_stack_overflow(&self, addr: usize, page: usize) -> bool {
        // SAFETY: the kernel's context for this SA_SIGINFO handler.
        match unsafe { os::stack_pointer(self.context) } {
            Some(sp) => addr.wrapping_sub(sp.wrapping_sub(page)) < 2 * page,
            None => false,
        }
    }

    fn earlier(&self) -> Disposition {
        self.previous
            .map_or(Disposition::Default, |p| disposition(p.sa_sigaction))
    }

    /// Calls the earlier handler as the kernel would have: the `SA_SIGINFO`
    /// or the plain way, with its mask blocked, the default action restored
    /// first for `SA_RESETHAND`. memguard's disposition stays installed
    /// otherwise.
    fn call_earlier(&mut self) -> Disposition {
        let Some(previous) = self
            .previous
            .filter(|p| disposition(p.sa_sigaction) == Disposition::Handler)
        else {
            return disposition(current_action(self.signal));
        };
        // SAFETY: pthread_sigmask with initialised sets is async-signal-safe.
        // The earlier handler was installed for this signal with these
        // flags, so it has the signature its flags say, and expects the
        // kernel's arguments, which it gets unchanged.
        unsafe {
            let mut saved: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &previous.sa_mask, &mut saved);
            if previous.sa_flags & libc::SA_RESETHAND != 0 {
                restore_default(self.signal);
            }
            if previous.sa_flags & libc::SA_SIGINFO != 0 {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
                    std::mem::transmute(previous.sa_sigaction);
                f(self.signal, self.info, self.context);
            } else {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(previous.sa_sigaction);
                f(self.signal);
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &saved, std::ptr::null_mut());
        }
        disposition(current_action(self.signal))
    }

    /// Restores the default action and raises the signal. The signal is
    /// blocked while its handler runs, so it stays pending until the
    /// handler returns, and then kills the process (a fault would recur
    /// too; a sent signal would not).
    fn die(&mut self) {
        restore_default(self.signal);
        // SAFETY: raise is async-signal-safe.
        unsafe { libc::raise(self.signal) };
    }
}

extern "C" fn on_signal(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let previous = match signal {
        libc::SIGSEGV => PREVIOUS_SEGV.get(),
        libc::SIGBUS => PREVIOUS_BUS.get(),
        _ => None,
    };
    crash_handler::on_fault(&mut UnixFault {
        signal,
        info,
        context,
        previous,
    });
}
