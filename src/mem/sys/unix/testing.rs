//! Test helpers that need the system: a forked child, raw mappings.

use std::ptr::NonNull;

use super::Unix;
use crate::mem::sys::Pages;

/// Whether [`in_child`] can fork here.
pub(crate) const CAN_FORK: bool = true;

/// Runs `scenario` in a forked child and returns its exit code, or 128
/// plus the signal that killed it. The child runs nothing else (no
/// panics: a failed check is an exit code), has 10 s before SIGALRM
/// kills it, and ends with `_exit`. `scenario` is dropped in the parent
/// before the wait.
pub(crate) fn in_child(scenario: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs only `scenario` (async-signal-safe calls
    // and plain memory accesses, the odd allocation at most, which
    // glibc's fork handlers keep usable) and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: alarm and _exit are async-signal-safe.
        unsafe {
            libc::alarm(10);
            libc::_exit(scenario());
        }
    }
    drop(scenario);
    let mut status = 0;
    // SAFETY: waits for our own child, by its id.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// `pages` fresh readable and writable pages, filled with 0xa5.
pub(crate) fn mapped(pages: usize) -> NonNull<u8> {
    let len = pages * Unix::page_size();
    // SAFETY: a fresh private anonymous mapping at an address the kernel
    // picks; it overlaps nothing.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANON,
            -1,
            0,
        )
    };
    assert_ne!(ptr, libc::MAP_FAILED);
    let ptr = NonNull::new(ptr.cast::<u8>()).expect("mmap gave null");
    // SAFETY: the mapping is ours, readable and writable, `len` bytes.
    unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0xa5, len) };
    ptr
}

/// Unmaps `pages` pages at `ptr` (from [`mapped`], no longer used).
pub(crate) fn unmap(ptr: NonNull<u8>, pages: usize) {
    // SAFETY: pages of a mapping from `mapped`, no longer used.
    unsafe { libc::munmap(ptr.as_ptr().cast(), pages * Unix::page_size()) };
}

/// Whether [`stack_below`] can read the stack here.
pub(crate) const CAN_READ_STACK: bool = true;

/// Copies into `out` the `out.len()` bytes of this thread's stack that lie
/// below this function's own frame: where the frames of the calls the
/// caller made last were, and what a stack scrub should have overwritten.
/// Calls nothing while it copies (volatile byte reads, no `memcpy`), so
/// that no frame of its own lands in the range first.
#[inline(never)]
pub(crate) fn stack_below(out: &mut [u8]) {
    let marker = 0u8;
    let top = std::hint::black_box(&marker as *const u8) as usize;
    // Past the red zone (128 bytes on x86_64) and this frame's own spills.
    let start = top - 512 - out.len();
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: the range is this thread's own stack, below the current
        // frame: mapped (the caller's deeper calls just used it; the stack
        // tests read at most 96 KiB of an 8 MiB main or 2 MiB test-thread
        // stack) and written by no one while this function runs (no
        // signal handler in the tests writes there).
        *b = unsafe { std::ptr::read_volatile((start + i) as *const u8) };
    }
}
