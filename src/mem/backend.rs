//! The small interface every operating-system backend implements.
//!
//! A backend deals in whole pages and knows nothing of canaries, borrows or
//! buffers; [`Region`](super::region::Region) builds those on top. A new
//! backend (memfd_secret, Windows, a pooled allocator) is a new file that
//! implements [`Pages`] and one `cfg` line in `mem/mod.rs`.

use std::ptr::NonNull;

use crate::error::Result;

/// Page protection for [`Pages::protect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Every access faults, as on a guard page.
    None,
    /// Reads succeed, writes fault.
    ReadOnly,
    /// Reads and writes succeed.
    ReadWrite,
}

/// What [`Pages::advise`] managed to arrange for forked children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ForkPolicy {
    /// A forked child sees the pages zero-filled (`MADV_WIPEONFORK`).
    WipeOnFork,
    /// A forked child does not get the pages at all (`MADV_DONTFORK`).
    DontFork,
}

/// Page-level memory operations of one operating system.
///
/// All addresses and lengths passed in are page-aligned and lie inside a
/// mapping returned by [`Pages::allocate`] that has not been freed.
pub(crate) trait Pages {
    /// The page size, read from the system at run time.
    fn page_size() -> usize;

    /// The most bytes this process may lock (`RLIMIT_MEMLOCK`); `None` when
    /// unlimited.
    fn lock_limit() -> Option<usize>;

    /// Maps `len` bytes of fresh, zeroed, private memory with [`Access::None`].
    fn allocate(len: usize) -> Result<NonNull<u8>>;

    /// Changes the protection of `len` bytes at `ptr`.
    ///
    /// # Safety
    /// The range must be inside a live mapping from [`Pages::allocate`], and
    /// no reference to it may be used in a way the new protection forbids.
    unsafe fn protect(ptr: NonNull<u8>, len: usize, access: Access) -> Result<()>;

    /// As [`Pages::protect`], for a signal handler: one system call and
    /// nothing else (no allocation, no file access, no lock, no error
    /// value built), so it is async-signal-safe. Returns whether the
    /// protection was changed; a range that is no longer mapped gives
    /// `false`.
    ///
    /// # Safety
    /// The range must not be memory of anyone else that the new protection
    /// would expose (it may be unmapped: that is reported, not harmful);
    /// no reference to it may be used in a way the new protection forbids.
    unsafe fn protect_raw(ptr: NonNull<u8>, len: usize, access: Access) -> bool;

    /// Locks `len` bytes at `ptr` into RAM (no swapping).
    ///
    /// # Safety
    /// The range must be inside a live mapping from [`Pages::allocate`].
    unsafe fn lock(ptr: NonNull<u8>, len: usize) -> Result<()>;

    /// Keeps `len` bytes at `ptr` out of core dumps and out of forked children.
    ///
    /// # Safety
    /// The range must be inside a live mapping from [`Pages::allocate`].
    unsafe fn advise(ptr: NonNull<u8>, len: usize) -> Result<ForkPolicy>;

    /// Unmaps `len` bytes at `ptr`; locks are released with the mapping.
    ///
    /// # Safety
    /// `ptr` and `len` must be exactly a mapping from [`Pages::allocate`],
    /// and nothing may use it afterwards.
    unsafe fn free(ptr: NonNull<u8>, len: usize);
}
