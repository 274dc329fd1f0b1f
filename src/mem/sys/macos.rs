//! What macOS does its own way: no per-mapping flag keeps pages out of core
//! dumps (only the process-wide `RLIMIT_CORE`, so `OUT_OF_DUMPS` is not
//! claimed), `minherit(VM_INHERIT_NONE)` keeps them out of forked
//! children, and `ptrace(PT_DENY_ATTACH)` keeps debuggers out.

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;

use super::unix::{last_error, map_with};
use crate::error::Result;
use crate::mem::protections::Protections;

/// Who else may lock memory, for the lock advice.
pub(super) const LOCK_PRIVILEGE: &str = "";

/// A fresh private anonymous `PROT_NONE` mapping.
pub(super) fn map(len: usize) -> Result<*mut c_void> {
    map_with(len, 0)
}

/// `minherit(VM_INHERIT_NONE)`: a forked child does not get the pages.
///
/// # Safety
/// The range must lie in one of our mappings.
pub(super) unsafe fn advise(ptr: NonNull<u8>, len: usize) -> Result<Protections> {
    // SAFETY: the caller guarantees the range lies in one of our mappings;
    // the inheritance changes nothing in this process.
    if unsafe { libc::minherit(ptr.as_ptr().cast(), len, libc::VM_INHERIT_NONE) } != 0 {
        return Err(last_error("minherit(VM_INHERIT_NONE)"));
    }
    Ok(Protections::ABSENT_IN_FORKS)
}

/// `ptrace(PT_DENY_ATTACH)`: from now on no debugger can attach (a process
/// already being traced exits instead).
pub(super) fn harden() -> bool {
    // SAFETY: PT_DENY_ATTACH takes no address or data, and touches no
    // memory of this process.
    unsafe { libc::ptrace(libc::PT_DENY_ATTACH, 0, std::ptr::null_mut(), 0) == 0 }
}

/// macOS has no limit on mappings per process to report.
pub(super) fn max_map_count() -> Option<u64> {
    None
}

/// What to do when mappings run out.
pub(super) fn mapping_advice(f: &mut fmt::Formatter<'_>, _max: Option<u64>) -> fmt::Result {
    f.write_str(
        "the system is out of memory for new mappings (each buffer uses up to 3); destroy \
         buffers you no longer need",
    )
}

/// The stack pointer at the fault: not read on macOS (the stack-overflow
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
