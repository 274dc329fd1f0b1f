//! Process-wide hardening applied once, on first use of the crate.
//!
//! On the first allocation the platform layer turns core dumps off and
//! keeps other processes of the same user from attaching a debugger or
//! reading memory, as far as the system lets an unprivileged process (see
//! `sys::Process::harden`; per system in the README's platform table).
//!
//! An application that needs core dumps or debugger access calls
//! [`disable_process_hardening`] before any other function of this crate.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Once;

use super::sys::{Os, Process};
use crate::error::{Error, Result};

const UNTOUCHED: u8 = 0;
const DISABLED: u8 = 1;
const APPLYING: u8 = 2;
const APPLIED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(UNTOUCHED);
static APPLY: Once = Once::new();
/// 1 when a step of the hardening failed.
static FAILURES: AtomicU8 = AtomicU8::new(0);

/// Opts this process out of the hardening the crate applies on first use.
///
/// By default the first buffer this crate allocates also hardens the
/// process, so that no crash writes secrets to disk and no other process of
/// the same user can read this one's memory:
///
/// - Linux: the core-dump limit (`RLIMIT_CORE`, soft and hard) to zero and
///   the dumpable flag cleared (`PR_SET_DUMPABLE`);
/// - macOS: `RLIMIT_CORE` to zero and `ptrace(PT_DENY_ATTACH)` (no debugger
///   can attach from then on; one already attached makes the process exit);
/// - FreeBSD: `RLIMIT_CORE` to zero and
///   `procctl(PROC_TRACE_CTL_DISABLE)` (no tracing, no core dump);
/// - OpenBSD: `RLIMIT_CORE` to zero;
/// - Windows: the heap left out of Windows Error Reporting's reports
///   (`WerSetFlags(WER_FAULT_REPORTING_FLAG_NOHEAP)`). A process cannot
///   keep debuggers of its own user out without administrator rights.
///
/// Call this function first, before anything else in the crate, to keep
/// core dumps and debugger access; guarded buffers are still excluded from
/// core dumps one by one where the system can (see
/// [`Protections::OUT_OF_DUMPS`](crate::Protections::OUT_OF_DUMPS)).
///
/// Returns [`Error::HardeningAlreadyApplied`] when the hardening has already
/// happened; the process stays hardened in that case.
///
/// ```
/// // At the very top of main(), before any other memguard call:
/// match memguard::disable_process_hardening() {
///     Ok(()) => assert!(!memguard::is_process_hardened()),
///     Err(memguard::Error::HardeningAlreadyApplied) => assert!(memguard::is_process_hardened()),
///     Err(e) => panic!("{e}"),
/// }
/// ```
pub fn disable_process_hardening() -> Result<()> {
    match STATE.compare_exchange(UNTOUCHED, DISABLED, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) | Err(DISABLED) => Ok(()),
        Err(_) => Err(Error::HardeningAlreadyApplied),
    }
}

/// Whether the process hardening has been applied, every step of it (see
/// [`disable_process_hardening`] for the steps on each system). It is
/// applied on the first allocation unless [`disable_process_hardening`]
/// was called before.
///
/// ```
/// let _key = memguard::LockedBuffer::new(32)?;
/// # let hardened = memguard::is_process_hardened();
/// # let _ = hardened;
/// # Ok::<(), memguard::Error>(())
/// ```
pub fn is_process_hardened() -> bool {
    STATE.load(Ordering::Acquire) == APPLIED && FAILURES.load(Ordering::Acquire) == 0
}

/// Applies the hardening once, unless the application opted out. Cheap after
/// the first call. A caller that arrives while another thread is applying it
/// waits until it is done, so no buffer exists in an unhardened process.
pub(crate) fn ensure() {
    if !Os::REAL {
        // Miri cannot make these calls; there is no process to harden.
        return;
    }
    if matches!(STATE.load(Ordering::Acquire), APPLIED | DISABLED) {
        return;
    }
    APPLY.call_once(|| {
        if STATE
            .compare_exchange(UNTOUCHED, APPLYING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let failures = u8::from(!Os::harden().complete);
        FAILURES.store(failures, Ordering::Release);
        // Published only now that every call is made.
        STATE.store(APPLIED, Ordering::Release);
    });
}
