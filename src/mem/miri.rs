//! A stand-in backend for Miri, which cannot make the real system calls:
//! pages come from the global allocator, page-aligned; protection, locking
//! and advice do nothing. It exists so that the pure logic (layout, canary
//! placement, borrow guards, the registry, stream bookkeeping) can be checked
//! for undefined behaviour under Miri. It is never used in a real build.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

use super::backend::{Access, ForkPolicy, Pages};
use crate::error::{Error, Result};

const PAGE: usize = 4096;

/// Simulated pages on the global allocator.
pub(crate) struct Simulated;

fn layout(len: usize) -> Result<Layout> {
    Layout::from_size_align(len, PAGE).map_err(|_| Error::TooLarge { size: len })
}

impl Simulated {
    /// Nothing to simulate: Miri has no fork.
    pub(crate) fn simulate_no_wipe_on_fork() {}
}

impl Pages for Simulated {
    fn page_size() -> usize {
        PAGE
    }

    fn lock_limit() -> Option<usize> {
        None
    }

    fn allocate(len: usize) -> Result<NonNull<u8>> {
        // SAFETY: the layout has a non-zero size (a mapping is at least
        // three pages).
        let ptr = unsafe { alloc_zeroed(layout(len)?) };
        NonNull::new(ptr).ok_or(Error::TooLarge { size: len })
    }

    unsafe fn protect(_ptr: NonNull<u8>, _len: usize, _access: Access) -> Result<()> {
        Ok(())
    }

    unsafe fn protect_raw(_ptr: NonNull<u8>, _len: usize, _access: Access) -> bool {
        true
    }

    unsafe fn lock(_ptr: NonNull<u8>, _len: usize) -> Result<()> {
        Ok(())
    }

    unsafe fn advise(_ptr: NonNull<u8>, _len: usize) -> Result<ForkPolicy> {
        Ok(ForkPolicy::WipeOnFork)
    }

    unsafe fn free(ptr: NonNull<u8>, len: usize) {
        if let Ok(l) = layout(len) {
            // SAFETY: the caller passes exactly what allocate() returned.
            unsafe { dealloc(ptr.as_ptr(), l) };
        }
    }
}
