//! The Linux backend: anonymous private mappings through `rustix`.

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::Errno;
use rustix::mm::{self, Advice, MapFlags, MprotectFlags, ProtFlags};
use rustix::process::{getrlimit, Resource};

use super::backend::{Access, ForkPolicy, Pages};
use crate::error::{Error, Result};

/// Set once the kernel has refused `MADV_WIPEONFORK` (before Linux 4.14), so
/// later buffers go straight to `MADV_DONTFORK`.
static WIPEONFORK_REFUSED: AtomicBool = AtomicBool::new(false);

/// ENOMEM from mmap or mprotect (which splits mappings) most often means
/// `vm.max_map_count`; say so, with the number.
fn map_error(operation: &'static str, e: Errno) -> Error {
    if e != Errno::NOMEM {
        return Error::os(operation, e);
    }
    let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    Error::OutOfMappings {
        operation,
        max_map_count,
        source: e.into(),
    }
}

/// The bare `mprotect` system call, shared by [`Pages::protect`] and the
/// async-signal-safe [`Pages::protect_raw`]: rustix issues it directly (or
/// through libc's `mprotect`, itself async-signal-safe), with no allocation
/// and no lock.
///
/// # Safety
/// As for [`Pages::protect_raw`].
unsafe fn mprotect(ptr: NonNull<u8>, len: usize, access: Access) -> std::result::Result<(), Errno> {
    let flags = match access {
        Access::None => MprotectFlags::empty(),
        Access::ReadOnly => MprotectFlags::READ,
        Access::ReadWrite => MprotectFlags::READ | MprotectFlags::WRITE,
    };
    // SAFETY: the caller guarantees the range is ours (or unmapped) and that
    // no reference is used against the new protection.
    unsafe { mm::mprotect(ptr.as_ptr().cast::<c_void>(), len, flags) }
}

/// Page operations on Linux.
pub(crate) struct Linux;

impl Linux {
    /// Behaves from now on as a kernel without `MADV_WIPEONFORK` (before
    /// 4.14): new mappings get `MADV_DONTFORK`.
    pub(crate) fn simulate_no_wipe_on_fork() {
        WIPEONFORK_REFUSED.store(true, Ordering::Relaxed);
    }
}

impl Pages for Linux {
    fn page_size() -> usize {
        rustix::param::page_size()
    }

    fn lock_limit() -> Option<usize> {
        getrlimit(Resource::Memlock)
            .current
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn allocate(len: usize) -> Result<NonNull<u8>> {
        // SAFETY: a null hint lets the kernel pick an address that overlaps
        // nothing; the new mapping is private, anonymous and PROT_NONE, so no
        // existing memory or reference is affected.
        let ptr = unsafe {
            mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|e| map_error("mmap", e))?;
        NonNull::new(ptr.cast::<u8>()).ok_or(Error::Os {
            operation: "mmap",
            source: std::io::Error::other("the kernel returned a null mapping"),
        })
    }

    unsafe fn protect(ptr: NonNull<u8>, len: usize, access: Access) -> Result<()> {
        // SAFETY: the caller guarantees the range lies in one of our mappings
        // and that no reference is used against the new protection.
        unsafe { mprotect(ptr, len, access) }.map_err(|e| map_error("mprotect", e))
    }

    unsafe fn protect_raw(ptr: NonNull<u8>, len: usize, access: Access) -> bool {
        // SAFETY: the caller guarantees the range is not someone else's
        // memory and that no reference is used against the new protection.
        // The error is only looked at, not mapped (map_error allocates and
        // reads a file, which a signal handler must not).
        unsafe { mprotect(ptr, len, access) }.is_ok()
    }

    unsafe fn lock(ptr: NonNull<u8>, len: usize) -> Result<()> {
        // SAFETY: the caller guarantees the range lies in one of our mappings;
        // mlock changes no contents.
        unsafe { mm::mlock(ptr.as_ptr().cast::<c_void>(), len) }.map_err(|e| match e {
            Errno::NOMEM | Errno::AGAIN | Errno::PERM => Error::MemoryLock {
                requested: len,
                limit: getrlimit(Resource::Memlock).current,
                source: e.into(),
            },
            other => Error::os("mlock", other),
        })
    }

    unsafe fn advise(ptr: NonNull<u8>, len: usize) -> Result<ForkPolicy> {
        let addr = ptr.as_ptr().cast::<c_void>();
        // SAFETY (all three calls): the caller guarantees the range lies in
        // one of our mappings; these advices change no contents in this
        // process, only what core dumps and forked children get.
        unsafe { mm::madvise(addr, len, Advice::LinuxDontDump) }
            .map_err(|e| Error::os("madvise(MADV_DONTDUMP)", e))?;
        if !WIPEONFORK_REFUSED.load(Ordering::Relaxed) {
            // SAFETY: as above.
            match unsafe { mm::madvise(addr, len, Advice::LinuxWipeOnFork) } {
                Ok(()) => return Ok(ForkPolicy::WipeOnFork),
                Err(Errno::INVAL) => WIPEONFORK_REFUSED.store(true, Ordering::Relaxed),
                Err(e) => return Err(Error::os("madvise(MADV_WIPEONFORK)", e)),
            }
        }
        // SAFETY: as above.
        unsafe { mm::madvise(addr, len, Advice::LinuxDontFork) }
            .map_err(|e| Error::os("madvise(MADV_DONTFORK)", e))?;
        Ok(ForkPolicy::DontFork)
    }

    unsafe fn free(ptr: NonNull<u8>, len: usize) {
        // SAFETY: the caller guarantees this is exactly one of our mappings
        // and that nothing uses it any more. munmap also drops the mlock, so
        // a separate munlock would be a wasted system call. It can only fail
        // for arguments we never pass, and nothing could be done about it in
        // a destructor anyway.
        let _ = unsafe { mm::munmap(ptr.as_ptr().cast::<c_void>(), len) };
    }
}
