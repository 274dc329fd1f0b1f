//! A stand-in backend for Miri, which cannot make the real system calls:
//! pages come from the global allocator, page-aligned; protection, locking
//! and advice do nothing, and nothing is claimed for them; there is no
//! process to harden, no fault hook and no fork. It exists so that the pure
//! logic (layout, canary placement, borrow guards, the registry, stream
//! bookkeeping) can be checked for undefined behaviour under Miri. It is
//! never used in a real build.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::fmt;
use std::ptr::NonNull;

use super::{Access, Disposition, Fault, Hardened, Pages, Process};
use crate::error::{Error, Result};
use crate::mem::protections::Protections;

const PAGE: usize = 4096;

/// Simulated pages on the global allocator.
pub(crate) struct Simulated;

fn layout(len: usize) -> Result<Layout> {
    Layout::from_size_align(len, PAGE).map_err(|_| Error::TooLarge { size: len })
}

impl Pages for Simulated {
    const BASELINE: Protections = Protections::empty();
    const NO_ACCESS_UNLOCKS: bool = false;
    const FIXED_LOCK_LIMIT: bool = true;

    fn page_size() -> usize {
        PAGE
    }

    fn lock_limit() -> Option<usize> {
        None
    }

    fn probe_secret_memory() -> std::result::Result<String, String> {
        Err("Miri simulates the pages (no secret memory in the interpreter)".to_owned())
    }

    fn allocate(len: usize) -> Result<NonNull<u8>> {
        // SAFETY: the layout has a non-zero size (a mapping is at least
        // three pages).
        let ptr = unsafe { alloc_zeroed(layout(len)?) };
        NonNull::new(ptr).ok_or_else(|| {
            Error::os(
                "alloc_zeroed",
                std::io::Error::from(std::io::ErrorKind::OutOfMemory),
            )
        })
    }

    unsafe fn protect(_ptr: NonNull<u8>, _len: usize, _access: Access) -> Result<()> {
        Ok(())
    }

    unsafe fn protect_raw(_ptr: NonNull<u8>, _len: usize, _access: Access) -> bool {
        true
    }

    unsafe fn lock(_ptr: NonNull<u8>, _len: usize) -> Result<Protections> {
        Ok(Protections::empty())
    }

    unsafe fn advise(_ptr: NonNull<u8>, _len: usize) -> Result<Protections> {
        Ok(Protections::empty())
    }

    unsafe fn free(ptr: NonNull<u8>, len: usize) {
        if let Ok(l) = layout(len) {
            // SAFETY: the caller passes exactly what allocate() returned.
            unsafe { dealloc(ptr.as_ptr(), l) };
        }
    }
}

impl Process for Simulated {
    const REAL: bool = false;

    fn harden() -> Hardened {
        Hardened { complete: false }
    }

    fn lock_advice(f: &mut fmt::Formatter<'_>, _limit: Option<u64>) -> fmt::Result {
        f.write_str("simulated memory cannot run out of locks")
    }

    fn mapping_advice(f: &mut fmt::Formatter<'_>, _max: Option<u64>) -> fmt::Result {
        f.write_str("simulated memory has no limit on mappings")
    }

    fn install_fault_hook() -> bool {
        // No signals under Miri: nothing calls the decision logic.
        let _ = crate::mem::crash_handler::on_fault::<NoFault>;
        false
    }

    fn install_fork_hooks(_prepare: fn(), _parent: fn(), _child: fn()) -> bool {
        // No fork: the generation never changes.
        true
    }

    fn on_signal_in_child(_signal: i32, _action: fn(i32)) -> Result<()> {
        Ok(())
    }

    fn exit_now(code: i32) -> ! {
        std::process::exit(code)
    }

    fn prepare_barrier() -> bool {
        // No process-wide barrier under Miri: leases take a full fence on
        // both sides instead, which Miri checks.
        false
    }

    fn barrier() -> bool {
        false
    }
}

/// The fault Miri never delivers (there is no hook to deliver it).
struct NoFault;

impl Fault for NoFault {
    fn address(&self) -> Option<usize> {
        None
    }
    fn is_stack_overflow(&self, _addr: usize, _page: usize) -> bool {
        false
    }
    fn earlier(&self) -> Disposition {
        Disposition::Default
    }
    fn call_earlier(&mut self) -> Disposition {
        Disposition::Default
    }
    fn die(&mut self) {}
}
