//! What Linux does its own way: mappings through `rustix`,
//! `MADV_DONTDUMP` and `MADV_WIPEONFORK` (or `MADV_DONTFORK` before 4.14),
//! `PR_SET_DUMPABLE`, `vm.max_map_count`, and the signal context layout.

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::Errno;
use rustix::mm::{self, Advice, MapFlags, ProtFlags};
use rustix::process::{set_dumpable_behavior, DumpableBehavior};

use super::unix::map_error;
use crate::error::{Error, Result};
use crate::mem::protections::Protections;

/// Set once the kernel has refused `MADV_WIPEONFORK` (before Linux 4.14), so
/// later buffers go straight to `MADV_DONTFORK`.
static WIPEONFORK_REFUSED: AtomicBool = AtomicBool::new(false);

/// Behaves from now on as a kernel without `MADV_WIPEONFORK` (before
/// 4.14): new mappings get `MADV_DONTFORK`.
pub(super) fn simulate_no_wipe_on_fork() {
    WIPEONFORK_REFUSED.store(true, Ordering::Relaxed);
}

/// Who else may lock memory, for the lock advice.
pub(super) const LOCK_PRIVILEGE: &str = " or grant CAP_IPC_LOCK";

/// A fresh private anonymous `PROT_NONE` mapping.
pub(super) fn map(len: usize) -> Result<*mut c_void> {
    // SAFETY: a null hint lets the kernel pick an address that overlaps
    // nothing; the new mapping is private, anonymous and PROT_NONE, so no
    // existing memory or reference is affected.
    unsafe {
        mm::mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::empty(),
            MapFlags::PRIVATE | MapFlags::NORESERVE,
        )
    }
    .map_err(|e| map_error("mmap", e))
}

/// `MADV_DONTDUMP`, then `MADV_WIPEONFORK` or, where the kernel lacks it,
/// `MADV_DONTFORK`.
///
/// # Safety
/// The range must lie in one of our mappings.
pub(super) unsafe fn advise(ptr: NonNull<u8>, len: usize) -> Result<Protections> {
    let addr = ptr.as_ptr().cast::<c_void>();
    // SAFETY: (all three calls) the caller guarantees the range lies in
    // one of our mappings; these advices change no contents in this
    // process, only what core dumps and forked children get.
    unsafe { mm::madvise(addr, len, Advice::LinuxDontDump) }
        .map_err(|e| Error::os("madvise(MADV_DONTDUMP)", e.into()))?;
    if !WIPEONFORK_REFUSED.load(Ordering::Relaxed) {
        // SAFETY: as above.
        match unsafe { mm::madvise(addr, len, Advice::LinuxWipeOnFork) } {
            Ok(()) => return Ok(Protections::OUT_OF_DUMPS | Protections::ZEROED_IN_FORKS),
            Err(Errno::INVAL) => WIPEONFORK_REFUSED.store(true, Ordering::Relaxed),
            Err(e) => return Err(Error::os("madvise(MADV_WIPEONFORK)", e.into())),
        }
    }
    // SAFETY: as above.
    unsafe { mm::madvise(addr, len, Advice::LinuxDontFork) }
        .map_err(|e| Error::os("madvise(MADV_DONTFORK)", e.into()))?;
    Ok(Protections::OUT_OF_DUMPS | Protections::ABSENT_IN_FORKS)
}

/// `PR_SET_DUMPABLE` 0: no core dump even through a `core_pattern` pipe,
/// no ptrace attach or `/proc/<pid>/mem` for processes of the same user.
pub(super) fn harden() -> bool {
    set_dumpable_behavior(DumpableBehavior::NotDumpable).is_ok()
}

/// `vm.max_map_count`, if it can be read.
pub(super) fn max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// What to do when mappings run out.
pub(super) fn mapping_advice(f: &mut fmt::Formatter<'_>, max: Option<u64>) -> fmt::Result {
    write!(
        f,
        "the process has run out of memory mappings or the system out of memory; \
         vm.max_map_count is {}, and each buffer uses up to 3 mappings; destroy buffers you no \
         longer need or raise vm.max_map_count (sysctl vm.max_map_count=...)",
        max.map_or_else(|| "unknown".to_string(), |n| n.to_string())
    )
}

/// The faulting thread's stack pointer, from the context the kernel saved.
///
/// # Safety
/// `context` must be the `ucontext_t` pointer the kernel passed to an
/// `SA_SIGINFO` handler.
#[allow(unused_variables)]
pub(super) unsafe fn stack_pointer(context: *mut c_void) -> Option<usize> {
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

/// Registers the process for `MEMBARRIER_CMD_PRIVATE_EXPEDITED` (Linux
/// 4.14 and later); whether it may use it now. A forked child must register
/// again: the registration belongs to the address space.
pub(super) fn prepare_barrier() -> bool {
    use rustix::thread::{membarrier, membarrier_query, MembarrierCommand};
    membarrier_query().contains_command(MembarrierCommand::RegisterPrivateExpedited)
        && membarrier(MembarrierCommand::RegisterPrivateExpedited).is_ok()
}

/// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`: an interrupt to every
/// CPU running a thread of this process, each executing a full barrier.
pub(super) fn barrier() -> bool {
    use rustix::thread::{membarrier, MembarrierCommand};
    membarrier(MembarrierCommand::PrivateExpedited).is_ok()
}
