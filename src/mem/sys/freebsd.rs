//! What FreeBSD does its own way: `MAP_NOCORE` and `MADV_NOCORE` keep pages
//! out of core dumps, `minherit(INHERIT_ZERO)` zero-fills them in forked
//! children, and `procctl(PROC_TRACE_CTL_DISABLE)` keeps debuggers out.

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
    map_with(len, libc::MAP_NOCORE)
}

/// `MADV_NOCORE` (the mapping was made `MAP_NOCORE` too) and
/// `minherit(INHERIT_ZERO)`.
///
/// # Safety
/// The range must lie in one of our mappings.
pub(super) unsafe fn advise(ptr: NonNull<u8>, len: usize) -> Result<Protections> {
    let addr = ptr.as_ptr().cast::<c_void>();
    // SAFETY: (both calls) the caller guarantees the range lies in one of
    // our mappings; neither changes its contents in this process.
    if unsafe { libc::madvise(addr, len, libc::MADV_NOCORE) } != 0 {
        return Err(last_error("madvise(MADV_NOCORE)"));
    }
    // SAFETY: as above.
    if unsafe { libc::minherit(addr, len, libc::INHERIT_ZERO) } != 0 {
        return Err(last_error("minherit(INHERIT_ZERO)"));
    }
    Ok(Protections::OUT_OF_DUMPS | Protections::ZEROED_IN_FORKS)
}

/// `procctl(PROC_TRACE_CTL_DISABLE)`: no tracing by other processes, no
/// core dump.
pub(super) fn harden() -> bool {
    let mut disable: libc::c_int = libc::PROC_TRACE_CTL_DISABLE;
    // SAFETY: PROC_TRACE_CTL reads one int from the pointer, which points
    // to a live local.
    unsafe {
        libc::procctl(
            libc::P_PID,
            0,
            libc::PROC_TRACE_CTL,
            (&mut disable as *mut libc::c_int).cast(),
        ) == 0
    }
}

/// Not read on FreeBSD (`vm.max_proc_mmap` exists; the advice names it).
pub(super) fn max_map_count() -> Option<u64> {
    None
}

/// What to do when mappings run out.
pub(super) fn mapping_advice(f: &mut fmt::Formatter<'_>, _max: Option<u64>) -> fmt::Result {
    f.write_str(
        "the process has run out of memory mappings or the system out of memory; each buffer \
         uses up to 3 mappings; destroy buffers you no longer need or raise vm.max_proc_mmap \
         (sysctl vm.max_proc_mmap=...)",
    )
}

/// The stack pointer at the fault: not read on FreeBSD (the stack-overflow
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
