//! Process-wide hardening applied once, on first use of the crate.
//!
//! On the first allocation the process sets `RLIMIT_CORE` to 0 (soft and
//! hard) and `PR_SET_DUMPABLE` to 0, so a crash writes no core file, no
//! crash collector receives the process's memory, and other processes of
//! the same user cannot attach with ptrace or read `/proc/<pid>/mem`.
//!
//! An application that needs core dumps or debugger access calls
//! [`disable_process_hardening`] before any other function of this crate.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Once;

use rustix::process::{set_dumpable_behavior, setrlimit, DumpableBehavior, Resource, Rlimit};

use crate::error::{Error, Result};

const UNTOUCHED: u8 = 0;
const DISABLED: u8 = 1;
const APPLYING: u8 = 2;
const APPLIED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(UNTOUCHED);
static APPLY: Once = Once::new();
/// Bit 0: setting RLIMIT_CORE failed; bit 1: PR_SET_DUMPABLE failed.
static FAILURES: AtomicU8 = AtomicU8::new(0);

/// Opts this process out of the hardening the crate applies on first use.
///
/// By default the first buffer this crate allocates also sets the process's
/// core-dump limit (`RLIMIT_CORE`, soft and hard) to zero and clears its
/// dumpable flag (`PR_SET_DUMPABLE`), so that no crash writes secrets to
/// disk and no other process of the same user can read this one's memory.
/// Call this function first, before anything else in the crate, to keep
/// core dumps and debugger access; guarded buffers are still excluded from
/// core dumps one by one (`MADV_DONTDUMP`).
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

/// Whether the process hardening has been applied (core dumps off, process
/// not dumpable). It is applied on the first allocation unless
/// [`disable_process_hardening`] was called before.
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
    if cfg!(miri) {
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
        let no_core = Rlimit {
            current: Some(0),
            maximum: Some(0),
        };
        let mut failures = 0;
        if setrlimit(Resource::Core, no_core).is_err() {
            failures |= 1;
        }
        if set_dumpable_behavior(DumpableBehavior::NotDumpable).is_err() {
            failures |= 2;
        }
        FAILURES.store(failures, Ordering::Release);
        // Published only now that both calls are made.
        STATE.store(APPLIED, Ordering::Release);
    });
}
