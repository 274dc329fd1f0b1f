//! [`Seal`]: "no access between uses", the opt-in that keeps a buffer's
//! data pages inaccessible (`PROT_NONE`) while no guard is held.
//!
//! The first guard makes the pages readable (a [`Ref`](super::Ref)) or
//! readable and writable (a [`RefMut`](super::RefMut)); the last guard to
//! go makes them inaccessible again. Guards held at the same time, on any
//! number of threads, share one transition: the count of guards and the
//! `mprotect` that goes with its move from or to zero happen under one
//! lock. A stray read through a dangling pointer, an over-read from a
//! neighbouring buffer or a debugger's peek between uses faults (and the
//! crash handler wipes every buffer first). The cost is two `mprotect`s
//! per use (see `BENCHMARKS.md`).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use super::sys::{Access, Os, Pages};
use crate::error::Result;

/// Whether new buffers are sealed between uses (see
/// [`set_no_access_between_uses`](crate::set_no_access_between_uses)).
static DEFAULT: AtomicBool = AtomicBool::new(false);

/// Sets whether buffers made from now on are sealed between uses.
pub(crate) fn set_default(on: bool) {
    DEFAULT.store(on, Ordering::Release);
}

/// Whether buffers made now are sealed between uses.
pub(crate) fn default() -> bool {
    DEFAULT.load(Ordering::Acquire)
}

/// One region's seal: whether it is on, and the guards holding it open.
#[derive(Debug, Default)]
pub(crate) struct Seal {
    on: AtomicBool,
    /// Guards alive now (meaningful only while `on`).
    open: Mutex<u32>,
}

impl Seal {
    pub(crate) fn new() -> Seal {
        Seal::default()
    }

    /// Whether the pages are sealed while no guard is held.
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Turns sealing on or off and sets the pages accordingly (`PROT_NONE`,
    /// or `open` when off).
    ///
    /// # Safety
    /// `pages` (`len` bytes) must be the region's data pages, and no guard
    /// may exist (the caller holds the exclusive borrow, or nobody can
    /// borrow yet).
    pub(crate) unsafe fn set(
        &self,
        on: bool,
        pages: NonNull<u8>,
        len: usize,
        open: Access,
    ) -> Result<()> {
        let access = if on { Access::None } else { open };
        // SAFETY: the caller's contract: our data pages, no reference alive.
        unsafe { Os::protect(pages, len, access) }?;
        if !on {
            // SAFETY: as above; the pages are accessible again.
            unsafe { relock(pages, len) }?;
        }
        self.on.store(on, Ordering::Release);
        Ok(())
    }

    /// A guard begins: the first one opens the pages with `access`.
    ///
    /// # Safety
    /// As for [`Seal::set`], except that guards may exist: the caller holds
    /// a borrow counted in the region's `BorrowState`, and `access` is what
    /// that borrow allows (so the protection never forbids what another
    /// guard alive now does: readers all open read-only, a writer is alone).
    #[inline]
    pub(crate) unsafe fn begin(
        &self,
        pages: NonNull<u8>,
        len: usize,
        access: Access,
    ) -> Result<()> {
        if !self.is_on() {
            return Ok(());
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { self.begin_sealed(pages, len, access) }
    }

    /// [`Seal::begin`] when sealing is on: out of line, so that every
    /// borrow of a buffer that is not sealed pays one atomic load only.
    ///
    /// # Safety
    /// As for [`Seal::begin`].
    #[cold]
    #[inline(never)]
    unsafe fn begin_sealed(&self, pages: NonNull<u8>, len: usize, access: Access) -> Result<()> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if *open == 0 {
            // SAFETY: the caller's contract.
            unsafe { Os::protect(pages, len, access) }?;
            // SAFETY: as above; the pages are accessible now.
            if let Err(e) = unsafe { relock(pages, len) } {
                // SAFETY: as above; no guard uses them (this one failed).
                let _ = unsafe { Os::protect(pages, len, Access::None) };
                return Err(e);
            }
        }
        *open += 1;
        Ok(())
    }

    /// A guard ends: the last one seals the pages again.
    ///
    /// # Safety
    /// As for [`Seal::begin`], called once for each successful `begin`,
    /// after the guard's last use of the pages.
    #[inline]
    pub(crate) unsafe fn end(&self, pages: NonNull<u8>, len: usize) {
        if !self.is_on() {
            return;
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { self.end_sealed(pages, len) }
    }

    /// [`Seal::end`] when sealing is on, out of line (see
    /// [`Seal::begin_sealed`]).
    ///
    /// # Safety
    /// As for [`Seal::end`].
    #[cold]
    #[inline(never)]
    unsafe fn end_sealed(&self, pages: NonNull<u8>, len: usize) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        *open = open.saturating_sub(1);
        if *open == 0 {
            // SAFETY: the caller's contract: no guard is left to use them.
            // A failure leaves the pages open (less protection, nothing
            // unsound); a Drop cannot report it.
            let _ = unsafe { Os::protect(pages, len, Access::None) };
        }
    }
}

/// Locks the pages again where making them inaccessible unlocked them
/// (Windows: `PAGE_NOACCESS` drops the `VirtualLock`); nothing elsewhere.
///
/// # Safety
/// `pages` (`len` bytes) must be a region's data pages, accessible.
unsafe fn relock(pages: NonNull<u8>, len: usize) -> Result<()> {
    if Os::NO_ACCESS_UNLOCKS {
        // SAFETY: the caller's contract.
        unsafe { Os::lock(pages, len) }?;
    }
    Ok(())
}
