//! What OpenBSD does its own way: `MAP_CONCEAL` keeps pages out of core
//! dumps, `minherit(MAP_INHERIT_ZERO)` zero-fills them in forked children.
//! There is no call that keeps debuggers of the same user out.

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;

use super::unix::{last_error, map_with};
use crate::error::Result;
use crate::mem::protections::Protections;

/// Who else may lock memory, for the lock advice.
pub(super) const LOCK_PRIVILEGE: &str = "";

/// A fresh private anonymous `PROT_NONE` mapping, out of core dumps.
pub(super) fn map(len: usize) -> Result<*mut c_void> {
    map_with(len, libc::MAP_CONCEAL)
}

/// `minherit(MAP_INHERIT_ZERO)`; the mapping is `MAP_CONCEAL` already.
///
/// # Safety
/// The range must lie in one of our mappings.
pub(super) unsafe fn advise(ptr: NonNull<u8>, len: usize) -> Result<Protections> {
    // SAFETY: the caller guarantees the range lies in one of our mappings;
    // the inheritance changes nothing in this process.
    if unsafe { libc::minherit(ptr.as_ptr().cast(), len, libc::MAP_INHERIT_ZERO) } != 0 {
        return Err(last_error("minherit(MAP_INHERIT_ZERO)"));
    }
    Ok(Protections::OUT_OF_DUMPS | Protections::ZEROED_IN_FORKS)
}

/// Nothing beyond `RLIMIT_CORE` on OpenBSD.
pub(super) fn harden() -> bool {
    true
}

/// OpenBSD has no limit on mappings per process to report.
pub(super) fn max_map_count() -> Option<u64> {
    None
}

/// What to do when mappings run out.
pub(super) fn mapping_advice(f: &mut fmt::Formatter<'_>, _max: Option<u64>) -> fmt::Result {
    f.write_str(
        "the system is out of memory for new mappings (each buffer uses up to 3); destroy \
         buffers you no longer need or raise the data size limit (ulimit -d)",
    )
}

/// The stack pointer at the fault: not read on OpenBSD (the stack-overflow
/// heuristic is Linux only).
///
/// # Safety
/// None needed; the signature matches the systems that read the context.
pub(super) unsafe fn stack_pointer(_context: *mut c_void) -> Option<usize> {
    None
}

/// No process-wide memory barrier call is used on this system: leases take
/// a full fence on both sides instead (see `mem::lease`).
pub(super) fn prepare_barrier() -> bool {
    false
}

/// See [`prepare_barrier`].
pub(super) fn barrier() -> bool {
    false
}
